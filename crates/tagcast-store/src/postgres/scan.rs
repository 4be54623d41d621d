//! Reading every record the audience index is built from, in one snapshot: accounts (with tag
//! names and log positions), account tags and attributes each on a connection of its own, the
//! second and third importing the first one's snapshot, so the three scans run in parallel and
//! see the same committed state. The big tables are read with binary COPY (see `copy`).

use std::pin::pin;

use futures_util::StreamExt;
use tokio_postgres::{Row, RowStream};

use super::connection::{Conn, Pg, pg_error};
use super::copy::{each_tuple, int4, int8, quiet};
use super::tables::Db;
use crate::audience::IndexParts;
use crate::codec::{attrs_in, tag_ids_in};
use crate::tables::Result;
use crate::{AppId, StoreError};

const READ_ONLY_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// One part of the rebuild, reading on its own connection.
type Scan = fn(Db<'_>) -> Result<IndexParts>;

const SCANS: [Scan; 3] = [scan_accounts, scan_account_tags, scan_attrs];

pub(crate) fn index_parts(pg: &Pg) -> Result<IndexParts> {
    let conns: Vec<Conn> = SCANS
        .iter()
        .map(|_| pg.connection())
        .collect::<Result<_>>()?;
    let dbs: Vec<Db<'_>> = conns
        .iter()
        .map(|conn| Db {
            pg,
            client: conn.client(),
        })
        .collect();
    dbs[0].batch(READ_ONLY_SNAPSHOT)?;
    let snapshot: String = dbs[0].query("SELECT pg_export_snapshot()", &[])?[0].get(0);
    for db in &dbs[1..] {
        db.batch(&format!(
            "{READ_ONLY_SNAPSHOT}; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))?;
    }
    let scanned: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = SCANS
            .iter()
            .zip(&dbs)
            .map(|(scan, db)| {
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let mut parts = scan(*db)?;
                    parts.compact();
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    tracing::debug!(elapsed_ms, "index rebuild scan done");
                    Ok::<_, StoreError>(parts)
                })
            })
            .collect();
        running.into_iter().map(|scan| scan.join()).collect()
    });
    let mut parts = IndexParts::default();
    for part in scanned {
        parts.merge(
            part.map_err(|_| StoreError::Interrupted("an index rebuild thread panicked".into()))??,
        );
    }
    for db in &dbs {
        db.batch("COMMIT")?;
    }
    conns.into_iter().for_each(Conn::done);
    Ok(parts)
}

fn scan_accounts(db: Db<'_>) -> Result<IndexParts> {
    let mut parts = IndexParts::default();
    each_row(db, "SELECT app, position FROM change_log_heads", |row| {
        parts.position(app(row), row.get::<_, i64>(1) as u64);
        Ok(())
    })?;
    each_tuple(db, "SELECT app, id FROM accounts", |fields| {
        parts.account(int8(fields[0])? as AppId, int4(fields[1])? as u32);
        Ok(())
    })?;
    each_row(db, "SELECT app, id, name FROM tags", |row| {
        parts.tag_name(app(row), row.get::<_, i32>(1) as u32, row.get(2));
        Ok(())
    })?;
    Ok(parts)
}

fn scan_account_tags(db: Db<'_>) -> Result<IndexParts> {
    let mut parts = IndexParts::default();
    each_tuple(db, "SELECT app, id, tag_ids FROM account_tags", |fields| {
        let (app, account) = (int8(fields[0])? as AppId, int4(fields[1])? as u32);
        let bytes = fields[2].unwrap_or_default();
        let ids = tag_ids_in(bytes).map_err(|e| e.at("account tag list", (app, account)))?;
        for tag in ids {
            parts.tag(app, account, tag);
        }
        Ok(())
    })?;
    Ok(parts)
}

fn scan_attrs(db: Db<'_>) -> Result<IndexParts> {
    let mut parts = IndexParts::default();
    each_tuple(db, "SELECT app, id, attrs FROM account_attrs", |fields| {
        let (app, account) = (int8(fields[0])? as AppId, int4(fields[1])? as u32);
        for attr in attrs_in(fields[2].unwrap_or_default()) {
            let (slot, value) = attr.map_err(|e| e.at("account attributes", (app, account)))?;
            parts.attr(app, account, slot, value);
        }
        Ok(())
    })?;
    Ok(parts)
}

fn app(row: &Row) -> AppId {
    row.get::<_, i64>(0) as u64
}

/// Streams the rows of `sql` into `visit`, never holding them all; fails if PostgreSQL goes
/// quiet for `STATEMENT_TIMEOUT` between two rows.
pub(crate) fn each_row(
    db: Db<'_>,
    sql: &str,
    mut visit: impl FnMut(&Row) -> Result<()>,
) -> Result<()> {
    db.pg.run(async {
        let stream: RowStream = quiet(db.client.query_raw(sql, std::iter::empty::<i32>()))
            .await?
            .map_err(pg_error)?;
        let mut stream = pin!(stream);
        while let Some(row) = quiet(stream.next()).await? {
            visit(&row.map_err(pg_error)?)?;
        }
        Ok(())
    })
}
