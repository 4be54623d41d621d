//! The durable store of tagcast: accounts with dense per-app ids, their tags and attributes,
//! each app's attribute names, push tasks with their frozen audiences, deliveries and cursors;
//! and the in-memory audience index of every app, kept exact with every acknowledged write.
//!
//! Two engines keep the records, behind one seam (`engine::Engine`, `tables`): the embedded
//! redb file (the default) and PostgreSQL (`Location`). Everything else is the same for both:
//! the domain logic (`write_ops`, `tags`, `tasks`, `read`) is written once against the record
//! traits, and one writer thread applies every write waiting in its queue inside one
//! transaction and commits once (group commit); each caller is answered only after that commit,
//! and after the index has learnt it. Reads run on one consistent snapshot each, on tokio's
//! blocking pool, so that no engine's I/O stalls the async runtime's workers.
//!
//! The writer is supervised: a panic fails only the batch it happened in, and a storage failure
//! (a full disk, an I/O error after which redb must be reopened, a lost connection to
//! PostgreSQL) is recovered from in the background. `Store::health` tells which state the store
//! is in. Corrupt stored data is reported (`StoreError::Corrupt`), never read as a default.

mod audience;
mod codec;
mod devices;
mod engine;
mod error;
mod events;
mod fanout;
mod faults;
mod health;
mod migrate;
mod outbox;
mod postgres;
mod read;
mod redb;
mod schema;
mod tables;
mod tags;
mod tasks;
mod write_ops;
mod writer;

pub use write_ops::{BulkAccount, SlotUpdate, TagEdit};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tagcast_audience::AppIndex;

pub use crate::postgres::redact as redact_url;
pub use crate::redb::FILE_NAME;
pub use devices::{
    AccountKind, Device, DeviceCensus, NewDevice, Platform, Registered, is_registration_id,
    registration_id,
};
pub use error::{ItemError, RequestError, StoreError};
pub use events::{Event, Feed, Taken};
pub use fanout::{
    BatchDevices, DeviceReport, DeviceSend, Dispatch, DueSends, FanOut, Overwrite, OverwriteBatch,
    Progress, ProviderReport, SendStatus,
};
pub use faults::{FAULT_INJECTION, Fault, FaultAction, FaultPlan};
pub use health::{Failure, HealthStatus, StoreHealth};
pub use migrate::{Migrated, RecordCounts, migrate};
pub use outbox::{CallbackBatch, MAX_CALLBACK_BATCHES, Settled};
pub use roaring::RoaringBitmap;
pub use schema::{ATTR_SLOTS, AttrSchema, AttrSlot};
pub use tables::Callback;
pub use tasks::{
    Created, Deliveries, NewTask, PushPolicy, Revoked, TaskIdFormat, TaskIdParts, TaskKind,
    TaskMeta,
};

use engine::Engine;
use tables::ReadTables;

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

/// A node of the cluster, as the nodes see it in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// How long ago it last said it was alive.
    pub heartbeat_age: std::time::Duration,
    /// It said it held the leadership at its last heartbeat.
    pub leader: bool,
}

/// How long a node that stopped heartbeating is still taken for alive, unless configured.
pub const DEFAULT_NODE_GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Page cache of the database.
    pub cache_bytes: usize,
    /// This node's name among those sharing a PostgreSQL store; by default the host's name and
    /// the process id.
    pub node_id: Option<String>,
    /// A node whose heartbeat is older than this is gone (PostgreSQL).
    pub node_gone_after: std::time::Duration,
    /// Faults to inject (tests only): refused unless built with the `fault-injection` feature.
    pub faults: FaultPlan,
}

impl StoreOptions {
    /// `node_id`, or the host's name and this process's id.
    pub fn node_id(&self) -> String {
        self.node_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()))
    }
}

/// This machine's name, for node ids ("tagcast" if it has none).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tagcast".into())
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            node_id: None,
            node_gone_after: DEFAULT_NODE_GONE_AFTER,
            faults: FaultPlan::default(),
        }
    }
}

/// Where the store keeps its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded store: one redb file (`FILE_NAME`) in this directory, created if missing.
    Embedded(PathBuf),
    /// A PostgreSQL database, as a connection URL (`postgres://user@host:port/db`); its schema
    /// is created or migrated at open.
    Postgres(String),
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writer: writer::WriterHandle,
    released: Arc<Signal>,
}

/// What the handles and the writer thread share.
pub(crate) struct Shared {
    pub engine: Box<dyn Engine>,
    pub audiences: audience::Audiences,
    pub health: health::HealthCell,
    pub faults: faults::Faults,
    pub node_id: String,
    /// Set by `Store::stop_following`: the follower stops, and says so in `followed`.
    pub stop_following: std::sync::atomic::AtomicBool,
    followed: Signal,
    /// Dropped last, after the engine: tells `Store::close` the data is let go of.
    _released: ReleaseOnDrop,
}

/// Something that happens once (the shared state dropped, the follower stopped), waited for.
#[derive(Default)]
struct Signal {
    done: std::sync::Mutex<bool>,
    happened: std::sync::Condvar,
}

impl Signal {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.happened.notify_all();
    }

    /// Whether it happened within `timeout`.
    fn wait(&self, timeout: std::time::Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = self
            .happened
            .wait_timeout_while(done, timeout, |done| !*done)
            .unwrap_or_else(|p| p.into_inner());
        *done
    }
}

/// Keeps the index level with the commits of the other nodes sharing the records, until the
/// store is closed.
fn spawn_follower(shared: std::sync::Weak<Shared>) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("tagcast-follower".into())
        .spawn(move || {
            while let Some(shared) = shared.upgrade() {
                let stop = &shared.stop_following;
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    shared.followed.set();
                    break;
                }
                let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    shared.engine.follow(&shared.audiences, stop)
                }));
                if round.is_err() {
                    tracing::error!("the change log's follower panicked; going on");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
        })?;
    Ok(())
}

struct ReleaseOnDrop(Arc<Signal>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

impl Store {
    /// Opens (or creates) the embedded store in `data_dir`, which is created if missing.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// `open`, with redb's page cache limited to `cache_bytes`.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        Self::open_with(
            data_dir,
            StoreOptions {
                cache_bytes,
                ..StoreOptions::default()
            },
        )
    }

    /// `open`, with `options`.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let faults = faults::Faults::new(options.faults.clone())?;
        let engine = redb::RedbEngine::open(data_dir, &options)?;
        Self::start(Box::new(engine), faults, options.node_id())
    }

    /// Opens the store at `location`. PostgreSQL needs a multi-threaded tokio runtime: call it
    /// from within one.
    pub async fn open_at(location: &Location, options: StoreOptions) -> Result<Self, StoreError> {
        match location {
            Location::Embedded(data_dir) => {
                let data_dir = data_dir.clone();
                tokio::task::spawn_blocking(move || Self::open_with(&data_dir, options)).await?
            }
            Location::Postgres(url) => {
                let url = url.clone();
                tokio::task::spawn_blocking(move || {
                    let faults = faults::Faults::new(options.faults.clone())?;
                    let options = StoreOptions {
                        node_id: Some(options.node_id()),
                        ..options
                    };
                    let engine = postgres::PgEngine::connect(&url, &options)?;
                    Self::start(Box::new(engine), faults, options.node_id())
                })
                .await?
            }
        }
    }

    /// Builds the audience index from the engine's records and starts the writer.
    fn start(
        engine: Box<dyn Engine>,
        faults: faults::Faults,
        node_id: String,
    ) -> Result<Self, StoreError> {
        let started = std::time::Instant::now();
        let audiences = engine.index_parts()?.finish();
        tracing::info!(
            accounts = audiences.account_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "audience index rebuilt"
        );
        if faults.is_armed() {
            tracing::warn!(
                "the store runs with a fault plan: reads and writes will fail on purpose"
            );
        }
        let released = Arc::new(Signal::default());
        let shared = Arc::new(Shared {
            engine,
            audiences,
            health: health::HealthCell::default(),
            faults,
            node_id,
            stop_following: Default::default(),
            followed: Signal::default(),
            _released: ReleaseOnDrop(released.clone()),
        });
        let writer = writer::spawn(shared.clone())?;
        if shared.engine.is_shared() {
            spawn_follower(Arc::downgrade(&shared))?;
        } else {
            shared.followed.set();
        }
        Ok(Self {
            shared,
            writer,
            released,
        })
    }

    /// Whether the store commits writes now, and the counts of its failures since it was
    /// opened; see `StoreHealth`.
    pub fn health(&self) -> StoreHealth {
        self.shared.health.snapshot()
    }

    /// Adds `fault` to the store's fault plan (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.arm(fault);
    }

    /// Runs `read` (the read operation `op`) on one consistent snapshot on the blocking pool,
    /// off the runtime's workers.
    pub(crate) async fn read<T, F>(&self, op: &'static str, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn ReadTables) -> Result<T, StoreError> + Send + 'static,
    {
        self.shared.faults.before_read(op)?;
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut read = Some(read);
            let mut value = None;
            shared.engine.read(&mut |tables| {
                if let Some(read) = read.take() {
                    value = Some(read(tables)?);
                }
                Ok(())
            })?;
            value.ok_or_else(|| StoreError::Interrupted("the engine skipped the read".into()))
        })
        .await?;
        if let Err(StoreError::Storage(error)) = &result {
            // The writer finds out about a failed storage when it next tries to write, and
            // recovers; have it try now.
            tracing::warn!(op, %error, "a read failed in the storage");
            self.writer.check();
        }
        result
    }

    /// Runs `f` on `app`'s audience index, which reflects every acknowledged write.
    pub fn with_audience<R>(&self, app: AppId, f: impl FnOnce(&AppIndex) -> R) -> R {
        self.shared.audiences.read(app, f)
    }

    /// Drops this handle and, if it was the last one, waits up to `timeout` for the writer to
    /// stop and the engine to let go of its data (the embedded file's lock included), so that
    /// another process can open it at once. False if it was not closed in time, or other
    /// handles keep it open.
    pub fn close(self, timeout: std::time::Duration) -> bool {
        let released = self.released.clone();
        drop(self);
        released.wait(timeout)
    }

    /// Stops following the other nodes' commits (the index then reflects this node's writes
    /// only) and waits up to `timeout` until the follower has stopped: call it while shutting
    /// down, before the tokio runtime goes away. Reads and writes go on working.
    pub async fn stop_following(&self, timeout: std::time::Duration) -> bool {
        let shared = self.shared.clone();
        shared
            .stop_following
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || shared.followed.wait(timeout))
            .await
            .unwrap_or(false)
    }

    /// The events of every commit the index has applied, this node's and the others', in
    /// commit order (see `events`).
    pub fn events(&self) -> &Feed {
        self.shared.audiences.feed()
    }

    /// Tells every node that `account` connected in `session` (see `Event::Login`); once this
    /// returns, the event is in this node's feed. On a store no other node shares, nothing is
    /// written.
    pub async fn login(
        &self,
        app: AppId,
        account: AccountId,
        session: u64,
    ) -> Result<(), StoreError> {
        let event = Event::Login { account, session };
        if !self.shared.engine.is_shared() {
            self.events().push(app, [event]);
            return Ok(());
        }
        self.writer
            .write("login", move |ctx| {
                ctx.announce(app, event);
                Ok(())
            })
            .await
    }

    /// This node's name among the nodes sharing the store.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Whether this node runs the duties that must run once among the nodes sharing the store
    /// (always, on the embedded store).
    pub fn is_leader(&self) -> bool {
        self.shared.engine.is_leader()
    }

    /// The live nodes sharing the store, this one included, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            Ok(shared.engine.nodes()?.unwrap_or_else(|| {
                vec![NodeInfo {
                    id: shared.node_id.clone(),
                    heartbeat_age: std::time::Duration::ZERO,
                    leader: true,
                }]
            }))
        })
        .await?
    }

    /// Write transactions committed since this store was opened. Each commit may carry many
    /// writes (group commit), so this counts fsyncs, not requests.
    pub fn commit_count(&self) -> u64 {
        self.shared.health.commits()
    }
}
