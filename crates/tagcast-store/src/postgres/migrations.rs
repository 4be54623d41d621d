//! The versioned schema: migrations run at open, one node at a time, each in the transaction
//! that records its version. A database whose schema is newer than this build knows is refused.

use crate::StoreError;
use crate::tables::Result;

use super::connection::{Conn, Pg};

/// Every migration, in order; the schema's version is the number of migrations applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_nodes.sql"),
    include_str!("migrations/0003_log_events.sql"),
    include_str!("migrations/0004_callback_outbox.sql"),
    include_str!("migrations/0005_devices.sql"),
    include_str!("migrations/0006_device_fanout.sql"),
    include_str!("migrations/0007_registration_tags.sql"),
    include_str!("migrations/0008_task_catch_ups.sql"),
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock that makes nodes starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x7461_6763_6173_7401;

/// Brings the database's schema to `SCHEMA_VERSION`; returns the version it found.
pub(crate) fn migrate(pg: &Pg) -> Result<i32> {
    let conn = pg.connection()?;
    let found = pg.block(migrate_on(&conn))??;
    conn.done();
    Ok(found)
}

async fn migrate_on(conn: &Conn) -> std::result::Result<Result<i32>, tokio_postgres::Error> {
    let client = conn.client();
    // The lock comes first: two nodes creating the table at once collide even with IF NOT EXISTS.
    client.batch_execute("BEGIN").await?;
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS tagcast_schema (version integer NOT NULL)")
        .await?;
    let found: i32 = client
        .query_opt("SELECT version FROM tagcast_schema", &[])
        .await?
        .map_or(0, |row| row.get(0));
    if found > SCHEMA_VERSION {
        client.batch_execute("ROLLBACK").await?;
        return Ok(Err(StoreError::Schema(format!(
            "the database's tagcast schema is version {found}, newer than this tagcast knows \
             ({SCHEMA_VERSION}); run the newer tagcast that migrated it"
        ))));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(version = version + 1, "migrating the PostgreSQL schema");
        client.batch_execute(sql).await?;
    }
    client.execute("DELETE FROM tagcast_schema", &[]).await?;
    client
        .execute(
            "INSERT INTO tagcast_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
    client.batch_execute("COMMIT").await?;
    Ok(Ok(found))
}
