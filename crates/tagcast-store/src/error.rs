use std::sync::Arc;

use thiserror::Error;

use crate::devices::AccountKind;

/// The store could not do its job. Backend-neutral: no variant carries a storage engine's types,
/// so every backend reports its failures the same way.
///
/// The server answers all of them with the family's internal-error code (91000, 70500): the
/// request may be retried.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The storage backend failed (I/O error, full disk, lost connection, ...). The store
    /// recovers by itself where it can (see `Store::health`).
    #[error("storage error: {0}")]
    Storage(String),
    /// Creating the data directory, or another file operation around the backend, failed.
    #[error("i/o error: {0}")]
    Io(Arc<std::io::Error>),
    /// Stored data could not be decoded: a damaged file, or a bug that wrote bad bytes. Never
    /// silently replaced by a default; logged at error level where it is found.
    #[error("corrupt {what} in the store: {detail}")]
    Corrupt {
        /// What was being decoded, e.g. "account tag list".
        what: &'static str,
        /// Where (the record's key) and what is wrong with it.
        detail: String,
    },
    /// The store is recovering from a storage failure and takes no requests until it has.
    #[error("storage unavailable while recovering from: {0}")]
    Unavailable(String),
    /// The write was not committed (nothing of it is stored).
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// Storage work on the blocking pool did not finish (it panicked, or the runtime is
    /// shutting down).
    #[error("storage work was interrupted: {0}")]
    Interrupted(String),
    /// A failure made by the store's fault plan (tests only, see `FaultPlan`).
    #[error("injected fault: {0}")]
    Injected(String),
    /// The database holds a schema this build cannot use (e.g. a newer one).
    #[error("incompatible store schema: {0}")]
    Schema(String),
    /// `StoreOptions` the store cannot honour.
    #[error("invalid store options: {0}")]
    Options(String),
}

impl StoreError {
    /// A corruption found while decoding `what` at `key`; logged at error level here, once.
    pub(crate) fn corrupt(
        what: &'static str,
        key: impl std::fmt::Debug,
        problem: impl std::fmt::Display,
    ) -> Self {
        let detail = format!("at {key:?}: {problem}");
        tracing::error!(what, %detail, "corrupt data in the store");
        StoreError::Corrupt { what, detail }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(Arc::new(e))
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        if e.is_panic() {
            tracing::error!(error = %e, "a storage read panicked");
            StoreError::Interrupted("it failed (panicked); nothing was changed".into())
        } else {
            StoreError::Interrupted("it was cancelled".into())
        }
    }
}

/// Why one account of a multi-account write was not changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ItemError {
    #[error("account does not exist")]
    AccountNotFound,
    #[error("account would have {would_have} tags, more than the limit of {limit}")]
    TooManyTagsForAccount { would_have: usize, limit: usize },
    #[error("app would have more than {limit} distinct tags")]
    TooManyTagsForApp { limit: usize },
    #[error("{what} '{name}' is bound to {bound_to} accounts")]
    AccountTypeMismatch {
        /// "tag" or "attribute".
        what: &'static str,
        name: String,
        bound_to: AccountKind,
    },
}

/// Why a whole write was refused; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("attribute '{0}' is not defined for this app")]
    UnknownAttribute(String),
    #[error("attrName:{name} already exists at index:{slot}")]
    DuplicateAttrName { name: String, slot: u8 },
    #[error("AttrTypes of index:{slot} is {current} and cannot be changed")]
    AttrTypeChange { slot: u8, current: u8 },
    #[error("'{0}' is a RegistrationID account: it has only its own device")]
    OwnDeviceOnly(String),
    #[error(
        "'{0}' is a UserID account: a device registered without an account cannot take its name"
    )]
    NameOfUserId(String),
}
