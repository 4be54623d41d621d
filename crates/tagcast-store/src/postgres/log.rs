//! The ordered per-app change log: every committed transaction that changes an app's audience
//! or announces one of its events (see `events`) appends one entry, numbered from the app's
//! head row. The head row is updated in the writing
//! transaction, so its lock orders the writers: commit order is log order, with no gap (a
//! transaction that rolls back gives its position back).

use std::collections::BTreeMap;

use tagcast_audience::Change;

use tokio_postgres::Row;

use super::tables::{Db, Pipeline};
use crate::codec::{decode_entry, encode_entry};
use crate::engine::Changes;
use crate::events::Event;
use crate::health::now_ms;
use crate::tables::Result;
use crate::{AppId, StoreError};

/// How long entries are kept: long enough to catch up after an outage, short enough that a
/// write-heavy app's log stays small; an index further behind is rebuilt instead.
pub(crate) const RETENTION_MS: u64 = 10 * 60 * 1000;

/// One app's part of a commit.
#[derive(Default)]
struct Entry<'a> {
    changes: Vec<&'a Change>,
    events: Vec<&'a Event>,
}

/// Adds to `pipeline` the statements that append `changes` to the log, one entry per app they
/// touch; returns those apps, in the order of the statements (each answers with its position).
pub(crate) fn append(pipeline: &mut Pipeline, changes: &Changes) -> Vec<AppId> {
    let mut by_app: BTreeMap<AppId, Entry<'_>> = BTreeMap::new();
    for (app, change) in &changes.index {
        by_app.entry(*app).or_default().changes.push(change);
    }
    for (app, event) in &changes.events {
        by_app.entry(*app).or_default().events.push(event);
    }
    let committed_ms = now_ms() as i64;
    for (app, entry) in &by_app {
        pipeline.push(
            "WITH head AS (\
               INSERT INTO change_log_heads (app, position) VALUES ($1, 1) \
               ON CONFLICT (app) DO UPDATE SET position = change_log_heads.position + 1 \
               RETURNING app, position) \
             INSERT INTO change_log (app, position, committed_ms, changes) \
             SELECT app, position, $2, $3 FROM head RETURNING position",
            vec![
                Box::new(*app as i64),
                Box::new(committed_ms),
                Box::new(encode_entry(
                    entry.changes.iter().copied(),
                    entry.events.iter().copied(),
                )),
            ],
        );
    }
    by_app.into_keys().collect()
}

/// The position an append statement of `append` answered with.
pub(crate) fn position_of(rows: &[Row]) -> Result<u64> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Storage("a change log append returned no position".into()))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Every app's last position.
pub(crate) fn heads(db: Db<'_>) -> Result<Vec<(AppId, u64)>> {
    let rows = db.query("SELECT app, position FROM change_log_heads", &[])?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
        .collect())
}

/// The entries of `app` after `position`, in order, as the commits they came from.
pub(crate) fn entries_after(db: Db<'_>, app: AppId, position: u64) -> Result<Vec<(u64, Changes)>> {
    let rows = db.query(
        "SELECT position, changes FROM change_log WHERE app = $1 AND position > $2 \
         ORDER BY position",
        &[&(app as i64), &(position as i64)],
    )?;
    rows.iter()
        .map(|row| {
            let position = row.get::<_, i64>(0) as u64;
            let (changes, events) =
                decode_entry(row.get(1)).map_err(|e| e.at("change log entry", (app, position)))?;
            let changes = Changes {
                index: changes.into_iter().map(|c| (app, c)).collect(),
                events: events.into_iter().map(|e| (app, e)).collect(),
            };
            Ok((position, changes))
        })
        .collect()
}

/// Removes entries older than `RETENTION_MS`.
pub(crate) fn trim(db: Db<'_>) -> Result<u64> {
    let before = now_ms().saturating_sub(RETENTION_MS) as i64;
    db.execute("DELETE FROM change_log WHERE committed_ms < $1", &[&before])
}
