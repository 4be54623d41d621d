use thiserror::Error;

/// The store could not do its job: I/O, corruption, or the writer stopped.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// Storage work on the blocking pool did not finish (it panicked, or the runtime is
    /// shutting down).
    #[error("storage work was interrupted: {0}")]
    Interrupted(String),
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        let what = if e.is_panic() {
            "it panicked"
        } else {
            "it was cancelled"
        };
        StoreError::Interrupted(what.into())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why one account of a multi-account write was not changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ItemError {
    #[error("account does not exist")]
    AccountNotFound,
    #[error("account would have {would_have} tags, more than the limit of {limit}")]
    TooManyTagsForAccount { would_have: usize, limit: usize },
    #[error("app would have more than {limit} distinct tags")]
    TooManyTagsForApp { limit: usize },
    #[error("attribute '{0}' is reserved for RegistrationID accounts")]
    AccountTypeMismatch(String),
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
}
