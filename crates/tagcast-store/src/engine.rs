//! What the store needs of a storage engine. An engine keeps records (see `tables`) and runs
//! transactions; everything else (group commit, supervision, the audience index, the domain
//! logic) is the store's, the same for every engine.
//!
//! Engines are synchronous: reads run on tokio's blocking pool, writes on the writer thread, so
//! neither ever stalls the async runtime.

use std::sync::atomic::AtomicBool;

use tagcast_audience::Change;

use crate::audience::{Audiences, IndexParts};
use crate::events::Event;
use crate::health::HealthCell;
use crate::migrate::{Record, RecordCounts};
use crate::tables::{ReadTables, Result, Tables};
use crate::{AppId, NodeInfo, StoreError};

/// What one write transaction recorded for the audience index and for the nodes, each in
/// the order it happened.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub index: Vec<(AppId, Change)>,
    pub events: Vec<(AppId, Event)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.index.is_empty() && self.events.is_empty()
    }
}

/// What a committed write transaction tells the index.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub changes: Changes,
    /// The change-log position the commit took in each app it changed; empty for an engine
    /// without a change log.
    pub positions: Vec<(AppId, u64)>,
}

/// Why a write transaction failed, and whether its commit had begun (then it may be stored
/// after all, and the index must be brought level with the records).
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: StoreError,
    pub at_commit: bool,
}

impl Failed {
    pub fn before_commit(error: StoreError) -> Self {
        Self {
            error,
            at_commit: false,
        }
    }

    pub fn at_commit(error: StoreError) -> Self {
        Self {
            error,
            at_commit: true,
        }
    }
}

/// A write transaction's work: it changes records and records what the index must learn.
pub(crate) type Apply<'a> = dyn FnMut(&mut dyn Tables, &mut Changes) -> Result<()> + 'a;

pub(crate) trait Engine: Send + Sync + 'static {
    /// Runs `read` on one consistent snapshot.
    fn read(&self, read: &mut dyn FnMut(&mut dyn ReadTables) -> Result<()>) -> Result<()>;

    /// Runs `apply` inside one write transaction and commits it durably; nothing of it is
    /// stored unless this returns `Ok`.
    fn write(&self, apply: &mut Apply<'_>) -> std::result::Result<Committed, Failed>;

    /// Reads every record the audience index is built from, in one snapshot.
    fn index_parts(&self) -> Result<IndexParts>;

    /// How many records of each kind it holds.
    fn counts(&self) -> Result<RecordCounts>;

    /// Every record, from one snapshot, in an order a target can write them in.
    fn dump(&self, sink: &mut dyn FnMut(Record) -> Result<()>) -> Result<()>;

    /// One attempt to make the engine commit again after a failure (reopening or reconnecting
    /// where needed, counted in `health`), proven by a write.
    fn recover(&self, health: &HealthCell) -> Result<()>;

    /// Brings `audiences` level with the committed records, after a commit whose outcome is
    /// unknown or changes that arrived out of order. By default, a full rebuild.
    fn resync(&self, audiences: &Audiences) -> Result<()> {
        audiences.replace(self.index_parts()?.finish());
        Ok(())
    }

    /// Whether other processes (nodes) write the same records; then the store runs `follow` on
    /// a thread of its own.
    fn is_shared(&self) -> bool {
        false
    }

    /// One round of following the other nodes: waits (about a second at most) for their
    /// commits, then brings `audiences` level with the change log; returns early, doing
    /// nothing more, once `stop` is set.
    fn follow(&self, _audiences: &Audiences, _stop: &AtomicBool) {}

    /// Whether this node runs the duties that must run once among the nodes.
    fn is_leader(&self) -> bool {
        true
    }

    /// The live nodes sharing the records; `None` when only this process uses them.
    fn nodes(&self) -> Result<Option<Vec<NodeInfo>>> {
        Ok(None)
    }
}
