//! The PostgreSQL engine: the records in a versioned relational schema (see `migrations/`),
//! each write batch in one transaction committed with `synchronous_commit = on`, and an ordered
//! per-app change log appended in the same transaction, from which an index that missed a
//! commit (its outcome unknown when the connection broke) catches up.
//!
//! While PostgreSQL is down or unreachable every statement fails within `STATEMENT_TIMEOUT`
//! (a connection within a shorter one); the writer's recovery reconnects by itself.

mod connection;
mod copy;
mod dump;
mod log;
mod migrations;
mod scan;
mod tables;

use std::sync::Mutex;
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

/// How often the writer trims the change log.
const TRIM_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct PgEngine {
    pg: Pg,
    last_trim: Mutex<Instant>,
}

impl PgEngine {
    /// Connects to `url` and brings its schema up to date. Blocks: call it off the runtime's
    /// workers, inside the runtime.
    pub fn connect(url: &str, _options: &StoreOptions) -> Result<Self> {
        let pg = Pg::new(url)?;
        let found = migrations::migrate(&pg)?;
        tracing::info!(
            url = %pg.redacted_url,
            schema = migrations::SCHEMA_VERSION,
            migrated_from = found,
            "PostgreSQL store ready"
        );
        Ok(Self {
            pg,
            last_trim: Mutex::new(Instant::now()),
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
    /// or the index is ahead of the database), and only a rebuild will do.
    fn catch_up(&self, audiences: &Audiences) -> Result<bool> {
        let conn = self.pg.connection()?;
        let db = Db {
            pg: &self.pg,
            client: conn.client(),
        };
        db.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let applied = audiences.positions();
        for (app, head) in log::heads(db)? {
            let from = applied.get(&app).copied().unwrap_or(0);
            if head == from {
                continue;
            }
            let entries = log::entries_after(db, app, from)?;
            if head < from || entries.len() as u64 != head - from {
                return Ok(false);
            }
            for (position, changes) in entries {
                let changes: Vec<_> = changes.into_iter().map(|c| (app, c)).collect();
                if audiences.apply(&changes, &[(app, position)]).is_err() {
                    return Ok(false);
                }
            }
        }
        db.batch("COMMIT")?;
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
            db.batch("BEGIN")?;
            let mut tables = PgTables::new(db);
            apply(&mut tables, &mut committed.changes)?;
            tables.changes()
        })();
        let mut pipeline = prepared.map_err(Failed::before_commit)?;
        let apps = log::append(&mut pipeline, &committed.changes);
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
        let appended = &outcomes[outcomes.len() - apps.len()..];
        for (app, outcome) in apps.into_iter().zip(appended) {
            let rows = outcome
                .as_ref()
                .map_err(|e| Failed::at_commit(connection::pg_error_ref(e)))?;
            let position = log::position_of(rows).map_err(Failed::at_commit)?;
            committed.positions.push((app, position));
        }
        conn.done();
        self.trim_if_due();
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
}
