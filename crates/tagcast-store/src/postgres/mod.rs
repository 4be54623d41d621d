//! The PostgreSQL engine: the records in a versioned relational schema (see `migrations/`),
//! each write batch in one transaction committed with `synchronous_commit = on`, and an ordered
//! per-app change log appended in the same transaction, from which an index that missed a
//! commit (its outcome unknown when the connection broke) catches up.
//!
//! While PostgreSQL is down or unreachable every statement fails within `STATEMENT_TIMEOUT`
//! (a connection within a shorter one); the writer's recovery reconnects by itself.
//!
//! Several nodes may share the database (see `cluster`). Their write transactions take one
//! advisory lock first, so they run one after the other: each reads what the one before it
//! committed, the records stay exact without retries, and no two can deadlock. Each node's
//! index follows the others' commits through the change log.

mod cluster;
mod connection;
mod copy;
mod dump;
mod log;
mod migrations;
mod scan;
mod tables;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::StoreOptions;
use crate::audience::{Audiences, IndexParts};
use crate::engine::{Apply, Committed, Engine, Failed};
use crate::health::HealthCell;
use crate::migrate::{Record, RecordCounts};
use crate::tables::{ReadTables, Result};
use connection::Pg;
use tables::{Db, PgTables};

pub use connection::redact;

/// How often the leader trims the change log.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Longest wait for the other nodes' commits in one round of `follow`: how stale the index can
/// be if a notification is lost.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// Key of the transaction advisory lock every write transaction takes first.
const WRITE_LOCK: i64 = 0x7461_6763_6173_7403;

pub(crate) struct PgEngine {
    pg: Pg,
    node: cluster::Node,
    last_trim: Mutex<Instant>,
    /// Held while the change log is applied to the index: by the writer after a commit of
    /// unknown outcome or out of order, and by the follower.
    catching_up: Mutex<()>,
}

impl PgEngine {
    /// Connects to `url` and brings its schema up to date. Blocks: call it off the runtime's
    /// workers, inside the runtime.
    pub fn connect(url: &str, options: &StoreOptions) -> Result<Self> {
        let pg = Pg::new(url)?;
        let found = migrations::migrate(&pg)?;
        let id = options.node_id();
        tracing::info!(
            url = %pg.redacted_url,
            schema = migrations::SCHEMA_VERSION,
            migrated_from = found,
            node = %id,
            "PostgreSQL store ready"
        );
        Ok(Self {
            pg,
            node: cluster::Node::new(id, options.node_gone_after),
            last_trim: Mutex::new(Instant::now()),
            catching_up: Mutex::new(()),
        })
    }

    fn trim_if_due(&self) {
        let mut last = self.last_trim.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < TRIM_EVERY {
            return;
        }
        *last = Instant::now();
        let trimmed = self.pg.connection().and_then(|conn| {
            let db = Db {
                pg: &self.pg,
                client: conn.client(),
            };
            let trimmed = log::trim(db)?;
            conn.done();
            Ok(trimmed)
        });
        match trimmed {
            Ok(entries) => tracing::debug!(entries, "change log trimmed"),
            Err(error) => tracing::warn!(%error, "could not trim the change log"),
        }
    }

    /// Applies the log entries each app's index has not seen; false if some are gone (trimmed,
    /// or the index is ahead of the database), and only a rebuild will do. Entries are never
    /// removed before their position is a head, so every entry up to a head read first is
    /// there to read after it.
    fn catch_up(&self, audiences: &Audiences) -> Result<bool> {
        let _one_at_a_time = self.catching_up.lock().unwrap_or_else(|p| p.into_inner());
        let conn = self.pg.connection()?;
        let db = Db {
            pg: &self.pg,
            client: conn.client(),
        };
        let applied = audiences.positions();
        for (app, head) in log::heads(db)? {
            let from = applied.get(&app).copied().unwrap_or(0);
            if head == from {
                continue;
            }
            let entries = log::entries_after(db, app, from)?;
            if head < from || (entries.len() as u64) < head - from {
                return Ok(false);
            }
            for (position, changes) in entries {
                if audiences.apply(&changes, &[(app, position)]).is_err() {
                    return Ok(false);
                }
            }
        }
        conn.done();
        Ok(true)
    }
}

impl Engine for PgEngine {
    fn read(&self, read: &mut dyn FnMut(&mut dyn ReadTables) -> Result<()>) -> Result<()> {
        let conn = self.pg.connection()?;
        let db = Db {
            pg: &self.pg,
            client: conn.client(),
        };
        db.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        read(&mut PgTables::new(db))?;
        db.batch("COMMIT")?;
        conn.done();
        Ok(())
    }

    /// One round trip for `BEGIN`, those the reads of the batch need, and one more for all its
    /// writes, its change log entries and the `COMMIT`, sent together.
    fn write(&self, apply: &mut Apply<'_>) -> std::result::Result<Committed, Failed> {
        let conn = self.pg.connection().map_err(Failed::before_commit)?;
        let db = Db {
            pg: &self.pg,
            client: conn.client(),
        };
        let mut committed = Committed::default();
        let prepared = (|| {
            // Every node's write transactions take turns (see the module's comment).
            db.batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
            ))?;
            let mut tables = PgTables::new(db);
            apply(&mut tables, &mut committed.changes)?;
            tables.changes()
        })();
        let mut pipeline = prepared.map_err(Failed::before_commit)?;
        let apps = log::append(&mut pipeline, &committed.changes);
        if !apps.is_empty() {
            // Delivered at commit, to the nodes that follow the log.
            let node: tables::Param = Box::new(self.node.id.clone());
            pipeline.push(
                format!("SELECT pg_notify('{}', $1)", cluster::CHANNEL),
                vec![node],
            );
        }
        pipeline.push("COMMIT", vec![]);
        // Unanswered, the COMMIT may have happened.
        let mut outcomes = db.send(&pipeline).map_err(Failed::at_commit)?;
        let commit = outcomes.pop();
        // A failed statement aborts the transaction: its COMMIT then rolls back.
        for outcome in &outcomes {
            if let Err(error) = outcome {
                return Err(Failed::before_commit(connection::pg_error_ref(error)));
            }
        }
        if let Some(Err(error)) = &commit {
            return Err(Failed::at_commit(connection::pg_error_ref(error)));
        }
        // The appends answered just before the notification.
        let notified = usize::from(!apps.is_empty());
        let end = outcomes.len() - notified;
        let appended = &outcomes[end - apps.len()..end];
        for (app, outcome) in apps.into_iter().zip(appended) {
            let rows = outcome
                .as_ref()
                .map_err(|e| Failed::at_commit(connection::pg_error_ref(e)))?;
            let position = log::position_of(rows).map_err(Failed::at_commit)?;
            committed.positions.push((app, position));
        }
        conn.done();
        Ok(committed)
    }

    fn index_parts(&self) -> Result<IndexParts> {
        scan::index_parts(&self.pg)
    }

    fn counts(&self) -> Result<RecordCounts> {
        let conn = self.pg.connection()?;
        let counts = dump::counts(Db {
            pg: &self.pg,
            client: conn.client(),
        })?;
        conn.done();
        Ok(counts)
    }

    fn dump(&self, sink: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        let conn = self.pg.connection()?;
        let db = Db {
            pg: &self.pg,
            client: conn.client(),
        };
        db.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        dump::dump(db, sink)?;
        db.batch("COMMIT")?;
        conn.done();
        Ok(())
    }

    fn recover(&self, _health: &HealthCell) -> Result<()> {
        let conn = self.pg.connection()?;
        let db = Db {
            pg: &self.pg,
            client: conn.client(),
        };
        db.batch("BEGIN; UPDATE tagcast_schema SET version = version; COMMIT")?;
        conn.done();
        Ok(())
    }

    fn resync(&self, audiences: &Audiences) -> Result<()> {
        if self.catch_up(audiences)? {
            return Ok(());
        }
        tracing::warn!("the change log no longer covers the index; rebuilding it");
        audiences.replace(self.index_parts()?.finish());
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn follow(&self, audiences: &Audiences, stop: &AtomicBool) {
        self.node.wait_for_others(&self.pg, FOLLOW_POLL, stop);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if self.node.is_leader() {
            self.trim_if_due();
        }
        if let Err(error) = self.resync(audiences) {
            tracing::debug!(%error, "could not follow the change log; will retry");
        }
    }

    fn is_leader(&self) -> bool {
        self.node.is_leader()
    }

    fn nodes(&self) -> Result<Option<Vec<crate::NodeInfo>>> {
        self.node.live_nodes(&self.pg).map(Some)
    }
}
