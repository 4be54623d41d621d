//! Every record of the database, in one snapshot, for `migrate`.

use tokio_postgres::Row;

use super::scan::each_row;
use super::tables::{
    Db, attrs_of, bitmap_of, callback_of, device_of, json_of, meta_of, schema_of, tag_of, tags_of,
};
use crate::AppId;
use crate::migrate::{Record, RecordCounts};
use crate::tables::{AppCounters, PushState, Result, SeenMsgRandom};

pub(crate) fn counts(db: Db<'_>) -> Result<RecordCounts> {
    let rows = db.query(
        "SELECT (SELECT count(*) FROM apps), (SELECT count(*) FROM accounts), \
         (SELECT count(*) FROM account_tags), (SELECT count(*) FROM account_attrs), \
         (SELECT count(*) FROM tags), (SELECT count(DISTINCT app) FROM attr_names), \
         (SELECT count(*) FROM push_state), (SELECT count(*) FROM msg_randoms), \
         (SELECT count(*) FROM tasks), (SELECT count(*) FROM task_audiences), \
         (SELECT count(*) FROM task_deliveries), (SELECT count(*) FROM cursors), \
         (SELECT count(*) FROM callback_outbox), (SELECT count(*) FROM devices), \
         (SELECT count(*) FROM dispatches), (SELECT count(*) FROM device_sends), \
         (SELECT count(*) FROM task_catch_ups)",
        &[],
    )?;
    let n = |i: usize| rows[0].get::<_, i64>(i) as u64;
    Ok(RecordCounts {
        apps: n(0),
        accounts: n(1),
        tagged_accounts: n(2),
        accounts_with_attrs: n(3),
        tags: n(4),
        attr_schemas: n(5),
        push_states: n(6),
        msg_randoms: n(7),
        tasks: n(8),
        audiences: n(9),
        deliveries: n(10),
        cursors: n(11),
        callbacks: n(12),
        devices: n(13),
        dispatches: n(14),
        device_sends: n(15),
        catch_ups: n(16),
    })
}

pub(crate) fn dump(db: Db<'_>, sink: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
    each_row(
        db,
        "SELECT app, next_account, next_tag, live_tags FROM apps",
        |row| {
            let counters = AppCounters {
                next_account: u32_at(row, 1),
                next_tag: u32_at(row, 2),
                live_tags: u32_at(row, 3),
            };
            sink(Record::App(app(row), counters))
        },
    )?;
    each_row(db, "SELECT app, id, name FROM accounts", |row| {
        sink(Record::Account(app(row), u32_at(row, 1), row.get(2)))
    })?;
    each_row(db, "SELECT app, id, tag_ids FROM account_tags", |row| {
        let (app, id) = (app(row), u32_at(row, 1));
        let ids = tags_of(row, (app, id))?.unwrap_or_default();
        sink(Record::AccountTags(app, id, ids))
    })?;
    each_row(db, "SELECT app, id, attrs FROM account_attrs", |row| {
        let (app, id) = (app(row), u32_at(row, 1));
        let attrs = attrs_of(row, (app, id))?.unwrap_or_default();
        sink(Record::AccountAttrs(app, id, attrs))
    })?;
    each_row(
        db,
        "SELECT app, id, name, accounts, kind FROM tags",
        |row| {
            let (name, entry) = tag_of(row);
            sink(Record::Tag(app(row), name, entry))
        },
    )?;
    let mut schemas: Vec<(AppId, Vec<Row>)> = Vec::new();
    each_row(
        db,
        "SELECT app, slot, name, account_type FROM attr_names ORDER BY app",
        |row| {
            let app = app(row);
            match schemas.last_mut() {
                Some((last, rows)) if *last == app => rows.push(row.clone()),
                _ => schemas.push((app, vec![row.clone()])),
            }
            Ok(())
        },
    )?;
    for (app, rows) in schemas {
        sink(Record::Schema(app, Box::new(schema_of(app, &rows, 1)?)))?;
    }
    each_row(
        db,
        "SELECT app, next_seq, day, today, last_ms FROM push_state",
        |row| {
            let state = PushState {
                next_seq: row.get::<_, i64>(1) as u64,
                day: u32_at(row, 2),
                today: u32_at(row, 3),
                last_ms: row.get::<_, i64>(4) as u64,
            };
            sink(Record::PushState(app(row), state))
        },
    )?;
    each_row(
        db,
        "SELECT app, msg_random, seq, created_ms FROM msg_randoms",
        |row| {
            let seen = SeenMsgRandom {
                seq: row.get::<_, i64>(2) as u64,
                created_ms: row.get::<_, i64>(3) as u64,
            };
            sink(Record::MsgRandom(
                app(row),
                row.get::<_, i64>(1) as u32,
                seen,
            ))
        },
    )?;
    each_row(
        db,
        "SELECT app, seq, meta::text AS meta FROM tasks",
        |row| {
            let (app, seq) = (app(row), row.get::<_, i64>(1) as u64);
            sink(Record::Task(app, Box::new(meta_of(row, (app, seq))?)))
        },
    )?;
    each_row(db, "SELECT app, seq, audience FROM task_audiences", |row| {
        let (app, seq) = (app(row), row.get::<_, i64>(1) as u64);
        let audience = bitmap_of(row, "audience", "task audience", (app, seq))?;
        sink(Record::Audience(app, seq, audience))
    })?;
    each_row(
        db,
        "SELECT app, seq, second, accounts FROM task_deliveries",
        |row| {
            let (app, seq) = (app(row), row.get::<_, i64>(1) as u64);
            let second = row.get::<_, i64>(2) as u64;
            let accounts = bitmap_of(row, "accounts", "delivery record", (app, seq, second))?;
            sink(Record::Delivered(app, seq, second, accounts))
        },
    )?;
    each_row(db, "SELECT app, seq, accounts FROM task_catch_ups", |row| {
        let (app, seq) = (app(row), row.get::<_, i64>(1) as u64);
        let accounts = bitmap_of(row, "accounts", "catch-up record", (app, seq))?;
        sink(Record::CaughtUp(app, seq, accounts))
    })?;
    each_row(db, "SELECT app, account, seq FROM cursors", |row| {
        let seq = row.get::<_, i64>(2) as u64;
        sink(Record::Cursor(app(row), u32_at(row, 1), seq))
    })?;
    each_row(
        db,
        "SELECT app, id, body, attempts, next_attempt_ms FROM callback_outbox",
        |row| {
            let id = row.get::<_, i64>(1) as u64;
            sink(Record::Callback(app(row), id, callback_of(row)))
        },
    )?;
    each_row(
        db,
        "SELECT app, registration_id, device FROM devices",
        |row| {
            let key = (app(row), row.get::<_, String>(1));
            sink(Record::Device(key.0, Box::new(device_of(row, 2, &key)?)))
        },
    )?;
    each_row(db, "SELECT app, seq, dispatch FROM dispatches", |row| {
        let key = (app(row), row.get::<_, i64>(1) as u64);
        let dispatch = json_of(row, 2, "fan-out", key)?;
        sink(Record::Dispatch(key.0, key.1, Box::new(dispatch)))
    })?;
    each_row(
        db,
        "SELECT app, seq, account, sends FROM device_sends",
        |row| {
            let key = (app(row), row.get::<_, i64>(1) as u64, u32_at(row, 2));
            let sends = json_of(row, 3, "device sends", key)?;
            sink(Record::DeviceSends(key.0, key.1, key.2, sends))
        },
    )
}

fn app(row: &Row) -> AppId {
    row.get::<_, i64>(0) as u64
}

fn u32_at(row: &Row, column: usize) -> u32 {
    row.get::<_, i32>(column) as u32
}
