//! redb's errors as the store's backend-neutral `StoreError`.

use crate::StoreError;

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(detail) => {
                tracing::error!(%detail, "the database file is corrupted");
                StoreError::Corrupt {
                    what: "database file",
                    detail,
                }
            }
            other => StoreError::Storage(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                redb::Error::from(e).into()
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
