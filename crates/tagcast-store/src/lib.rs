//! The durable embedded store of tagcast: accounts with dense per-app ids, their tags and
//! attributes, and each app's attribute names, kept in one redb file.
//!
//! Reads run on their own MVCC snapshot, on tokio's blocking pool so that redb's synchronous
//! I/O never stalls the async runtime's workers. Writes go to a single writer thread that applies every
//! write waiting in its queue inside one transaction and makes them durable with one commit
//! (group commit); each caller is answered only after that commit.

mod audience;
mod codec;
mod error;
mod read;
mod schema;
mod tags;
mod tasks;
mod write_ops;
mod writer;

pub use write_ops::{BulkAccount, SlotUpdate, TagEdit};

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase};
use tagcast_audience::AppIndex;

pub use error::{ItemError, RequestError, StoreError};
pub use roaring::RoaringBitmap;
pub use schema::{ATTR_SLOTS, AttrSchema, AttrSlot};
pub use tasks::{
    Created, Deliveries, NewTask, PushPolicy, Revoked, TaskKind, TaskMeta, parse_task_id, task_id,
};

/// An app's `sdkappid`.
pub type AppId = u64;
/// A dense account id, unique inside its app; the audience index is built on it.
pub type AccountId = u32;
/// The result for one account of a multi-account write; failures go to `ErrorList`.
pub type ItemResult = Result<(), ItemError>;

/// The limits a tag write is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagLimits {
    pub max_tags_per_account: usize,
    pub max_tags_per_app: usize,
}

/// Page cache of the store unless configured: reads of hot accounts stay in memory while the
/// audience index, not the cache, answers the big questions.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: writer::WriterHandle,
    audiences: Arc<audience::Audiences>,
}

impl Store {
    /// Opens (or creates) the store in `data_dir`, which is created if missing.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// `open`, with redb's page cache limited to `cache_bytes`.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(data_dir.join("tagcast.redb"))?;
        let db = Arc::new(db);
        schema::create_tables(&db)?;
        let started = std::time::Instant::now();
        let audiences = Arc::new(audience::Audiences::rebuild(&db)?);
        tracing::info!(
            accounts = audiences.account_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "audience index rebuilt"
        );
        let writer = writer::spawn(db.clone(), audiences.clone());
        Ok(Self {
            db,
            writer,
            audiences,
        })
    }

    /// Runs `read` on a fresh read snapshot on the blocking pool, off the runtime's workers.
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || read(&db.begin_read()?)).await?
    }

    /// Runs `f` on `app`'s audience index, which reflects every acknowledged write.
    pub fn with_audience<R>(&self, app: AppId, f: impl FnOnce(&AppIndex) -> R) -> R {
        self.audiences.read(app, f)
    }

    /// Write transactions committed since this store was opened. Each commit may carry many
    /// writes (group commit), so under concurrent load this grows far slower than the writes.
    pub fn commit_count(&self) -> u64 {
        self.writer.commits()
    }
}
