//! The embedded engine: every record in one redb file.
//!
//! After an I/O error redb refuses every later transaction until the file is reopened, and it
//! opens a file only once per process; recovery therefore waits for the reads still using the
//! failed handle, opens the file again, and proves with a probe write of `PROBE_BYTES` that it
//! can commit.

mod dump;
mod error;
mod schema;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use crate::audience::IndexParts;
use crate::codec::{attrs_in, tag_ids_in};
use crate::engine::{Apply, Committed, Engine, Failed};
use crate::health::HealthCell;
use crate::migrate::{Record, RecordCounts};
use crate::tables::{ReadTables, Result};
use crate::{StoreError, StoreOptions};
use schema::{ACCOUNT_ATTRS, ACCOUNT_NAMES, ACCOUNT_TAGS, PROBE, TAG_NAMES};
use tables::Redb;

/// The store's file inside its data directory.
pub const FILE_NAME: &str = "tagcast.redb";

/// What a recovery probe writes (and then deletes): a commit that allocates pages, not only an
/// empty one, so a still-full disk fails it.
const PROBE_BYTES: usize = 64 << 10;

pub(crate) struct RedbEngine {
    /// The database handle, swapped when the database is reopened; empty while the last reads
    /// of a failed handle finish and the file is opened again.
    db: RwLock<Option<Arc<Database>>>,
    /// The failed handle, kept until the last read using it is done.
    retired: Mutex<Option<Arc<Database>>>,
    file: PathBuf,
    cache_bytes: usize,
}

impl RedbEngine {
    /// Opens (or creates) the database in `data_dir`, which is created if missing.
    pub fn open(data_dir: &Path, options: &StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let file = data_dir.join(FILE_NAME);
        let db = open_database(&file, options.cache_bytes)?;
        Ok(Self {
            db: RwLock::new(Some(Arc::new(db))),
            retired: Mutex::default(),
            file,
            cache_bytes: options.cache_bytes,
        })
    }

    fn db(&self) -> Result<Arc<Database>> {
        let slot = self.db.read().unwrap_or_else(|p| p.into_inner());
        slot.clone()
            .ok_or_else(|| StoreError::Unavailable("the database is being reopened".into()))
    }

    /// Reopens the file once no read uses the failed handle any more.
    fn reopen(&self, health: &HealthCell) -> Result<()> {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = retired.take() {
            // redb opens a file once per process: the old handle must be gone first.
            if Arc::strong_count(&old) > 1 {
                *retired = Some(old);
                return Err(StoreError::Unavailable(
                    "reads still use the failed database handle".into(),
                ));
            }
        }
        let db = open_database(&self.file, self.cache_bytes)?;
        tracing::info!(file = %self.file.display(), "database reopened");
        health.reopened();
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        Ok(())
    }
}

/// Opens (or creates) the database file with every table.
fn open_database(file: &Path, cache_bytes: usize) -> Result<Database> {
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(file)?;
    schema::create_tables(&db)?;
    Ok(db)
}

impl Engine for RedbEngine {
    fn read(&self, read: &mut dyn FnMut(&mut dyn ReadTables) -> Result<()>) -> Result<()> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        read(&mut Redb::<tables::ReadOnly>::open(&txn)?)
    }

    fn write(&self, apply: &mut Apply<'_>) -> std::result::Result<Committed, Failed> {
        let db = self.db().map_err(Failed::before_commit)?;
        let txn = db
            .begin_write()
            .map_err(|e| Failed::before_commit(e.into()))?;
        let mut committed = Committed::default();
        let mut tables = Redb::<tables::Writable<'_>>::open(&txn).map_err(Failed::before_commit)?;
        apply(&mut tables, &mut committed.changes).map_err(Failed::before_commit)?;
        drop(tables);
        txn.commit().map_err(|e| Failed::at_commit(e.into()))?;
        Ok(committed)
    }

    /// Accounts and tags on one thread, attributes on another, each on its own snapshot of the
    /// same committed state.
    fn index_parts(&self) -> Result<IndexParts> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let (tags, attrs) = std::thread::scope(|scope| {
            let attrs = scope.spawn(|| scan_attrs(&txn));
            (scan_accounts_and_tags(&txn), attrs.join())
        });
        let mut parts = tags?;
        parts.merge(
            attrs.map_err(|_| {
                StoreError::Interrupted("the index rebuild thread panicked".into())
            })??,
        );
        for entry in txn.open_table(TAG_NAMES)?.iter()? {
            let (key, name) = entry?;
            let (app, tag) = key.value();
            parts.tag_name(app, tag, name.value().to_string());
        }
        Ok(parts)
    }

    fn counts(&self) -> Result<RecordCounts> {
        dump::counts(&self.db()?.begin_read()?)
    }

    fn dump(&self, sink: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        dump::dump(&self.db()?.begin_read()?, sink)
    }

    fn recover(&self, health: &HealthCell) -> Result<()> {
        if let Ok(db) = self.db()
            && let Err(error) = db.begin_write()
        {
            tracing::warn!(%error, "the database refuses new transactions; reopening it");
            drop(db);
            let failed = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
            *self.retired.lock().unwrap_or_else(|p| p.into_inner()) = failed;
        }
        if self.db().is_err() {
            self.reopen(health)?;
        }
        probe(&*self.db()?)
    }
}

/// Writes `PROBE_BYTES` and deletes them, in two commits.
fn probe(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    txn.open_table(PROBE)?
        .insert(0, vec![0u8; PROBE_BYTES].as_slice())?;
    txn.commit()?;
    let txn = db.begin_write()?;
    txn.open_table(PROBE)?.remove(0)?;
    txn.commit()?;
    Ok(())
}

fn scan_accounts_and_tags(txn: &ReadTransaction) -> Result<IndexParts> {
    let mut parts = IndexParts::default();
    for entry in txn.open_table(ACCOUNT_NAMES)?.iter()? {
        let (key, _) = entry?;
        let (app, account) = key.value();
        parts.account(app, account);
    }
    for entry in txn.open_table(ACCOUNT_TAGS)?.iter()? {
        let (key, tags) = entry?;
        let (app, account) = key.value();
        let ids = tag_ids_in(tags.value()).map_err(|e| e.at("account tag list", (app, account)))?;
        for tag in ids {
            parts.tag(app, account, tag);
        }
    }
    Ok(parts)
}

fn scan_attrs(txn: &ReadTransaction) -> Result<IndexParts> {
    let mut parts = IndexParts::default();
    for entry in txn.open_table(ACCOUNT_ATTRS)?.iter()? {
        let (key, attrs) = entry?;
        let (app, account) = key.value();
        for attr in attrs_in(attrs.value()) {
            let (slot, value) = attr.map_err(|e| e.at("account attributes", (app, account)))?;
            parts.attr(app, account, slot, value);
        }
    }
    Ok(parts)
}
