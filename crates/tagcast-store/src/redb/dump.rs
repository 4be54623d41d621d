//! Every record of the file, in one snapshot, for `migrate`.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::schema::{
    ACCOUNT_ATTRS, ACCOUNT_NAMES, ACCOUNT_TAGS, APPS, ATTR_SCHEMAS, CALLBACKS, CURSORS,
    DEVICE_SENDS, DEVICES, DISPATCHES, MSG_RANDOMS, PUSH_STATE, REGISTRATION_TAGS, TAGS,
    TASK_AUDIENCES, TASK_CATCH_UPS, TASK_DELIVERIES, TASKS,
};
use crate::AccountKind;
use crate::codec::{
    decode_attrs, decode_bitmap, decode_callback, decode_device, decode_json, decode_meta,
    decode_schema, decode_tag_ids,
};
use crate::migrate::{Record, RecordCounts};
use crate::tables::{AppCounters, PushState, Result, SeenMsgRandom, TagEntry};

pub(crate) fn counts(txn: &ReadTransaction) -> Result<RecordCounts> {
    Ok(RecordCounts {
        apps: txn.open_table(APPS)?.len()?,
        accounts: txn.open_table(ACCOUNT_NAMES)?.len()?,
        tagged_accounts: txn.open_table(ACCOUNT_TAGS)?.len()?,
        accounts_with_attrs: txn.open_table(ACCOUNT_ATTRS)?.len()?,
        tags: txn.open_table(TAGS)?.len()?,
        attr_schemas: named_schemas(txn)?,
        push_states: txn.open_table(PUSH_STATE)?.len()?,
        msg_randoms: txn.open_table(MSG_RANDOMS)?.len()?,
        tasks: txn.open_table(TASKS)?.len()?,
        audiences: txn.open_table(TASK_AUDIENCES)?.len()?,
        deliveries: txn.open_table(TASK_DELIVERIES)?.len()?,
        cursors: txn.open_table(CURSORS)?.len()?,
        callbacks: txn.open_table(CALLBACKS)?.len()?,
        devices: txn.open_table(DEVICES)?.len()?,
        dispatches: txn.open_table(DISPATCHES)?.len()?,
        device_sends: txn.open_table(DEVICE_SENDS)?.len()?,
        catch_ups: txn.open_table(TASK_CATCH_UPS)?.len()?,
    })
}

/// Apps with at least one named attribute (a schema row may have none left).
fn named_schemas(txn: &ReadTransaction) -> Result<u64> {
    let mut count = 0;
    for entry in txn.open_table(ATTR_SCHEMAS)?.iter()? {
        let (app, bytes) = entry?;
        let schema =
            decode_schema(bytes.value()).map_err(|e| e.at("attribute schema", app.value()))?;
        count += u64::from(schema.named().next().is_some());
    }
    Ok(count)
}

pub(crate) fn dump(
    txn: &ReadTransaction,
    sink: &mut dyn FnMut(Record) -> Result<()>,
) -> Result<()> {
    for entry in txn.open_table(APPS)?.iter()? {
        let (app, value) = entry?;
        let (app, (next_account, next_tag, live_tags)) = (app.value(), value.value());
        let counters = AppCounters {
            next_account,
            next_tag,
            live_tags,
        };
        sink(Record::App(app, counters))?;
    }
    for entry in txn.open_table(ACCOUNT_NAMES)?.iter()? {
        let (key, name) = entry?;
        let (app, id) = key.value();
        sink(Record::Account(app, id, name.value().to_string()))?;
    }
    for entry in txn.open_table(ACCOUNT_TAGS)?.iter()? {
        let (key, bytes) = entry?;
        let (app, id) = key.value();
        let ids = decode_tag_ids(bytes.value()).map_err(|e| e.at("account tag list", (app, id)))?;
        sink(Record::AccountTags(app, id, ids))?;
    }
    for entry in txn.open_table(ACCOUNT_ATTRS)?.iter()? {
        let (key, bytes) = entry?;
        let (app, id) = key.value();
        let attrs =
            decode_attrs(bytes.value()).map_err(|e| e.at("account attributes", (app, id)))?;
        sink(Record::AccountAttrs(app, id, attrs.into_iter().collect()))?;
    }
    let registration_tags = txn.open_table(REGISTRATION_TAGS)?;
    for entry in txn.open_table(TAGS)?.iter()? {
        let (key, value) = entry?;
        let (app, name) = key.value();
        let (id, accounts) = value.value();
        let kind = match registration_tags.get((app, id))? {
            Some(_) => AccountKind::RegistrationId,
            None => AccountKind::UserId,
        };
        let entry = TagEntry { id, accounts, kind };
        sink(Record::Tag(app, name.to_string(), entry))?;
    }
    for entry in txn.open_table(ATTR_SCHEMAS)?.iter()? {
        let (app, bytes) = entry?;
        let app = app.value();
        let schema = decode_schema(bytes.value()).map_err(|e| e.at("attribute schema", app))?;
        if schema.named().next().is_some() {
            sink(Record::Schema(app, Box::new(schema)))?;
        }
    }
    for entry in txn.open_table(PUSH_STATE)?.iter()? {
        let (app, value) = entry?;
        let (app, (next_seq, day, today, last_ms)) = (app.value(), value.value());
        let state = PushState {
            next_seq,
            day,
            today,
            last_ms,
        };
        sink(Record::PushState(app, state))?;
    }
    for entry in txn.open_table(MSG_RANDOMS)?.iter()? {
        let (key, value) = entry?;
        let ((app, random), (seq, created_ms)) = (key.value(), value.value());
        sink(Record::MsgRandom(
            app,
            random,
            SeenMsgRandom { seq, created_ms },
        ))?;
    }
    for entry in txn.open_table(TASKS)?.iter()? {
        let (key, bytes) = entry?;
        let (app, seq) = key.value();
        let meta = decode_meta(bytes.value()).map_err(|e| e.at("push task", (app, seq)))?;
        sink(Record::Task(app, Box::new(meta)))?;
    }
    for entry in txn.open_table(TASK_AUDIENCES)?.iter()? {
        let (key, bytes) = entry?;
        let (app, seq) = key.value();
        let audience =
            decode_bitmap(bytes.value()).map_err(|e| e.at("task audience", (app, seq)))?;
        sink(Record::Audience(app, seq, audience))?;
    }
    for entry in txn.open_table(TASK_DELIVERIES)?.iter()? {
        let (key, bytes) = entry?;
        let (app, seq, second) = key.value();
        let accounts = decode_bitmap(bytes.value())
            .map_err(|e| e.at("delivery record", (app, seq, second)))?;
        sink(Record::Delivered(app, seq, second, accounts))?;
    }
    for entry in txn.open_table(TASK_CATCH_UPS)?.iter()? {
        let (key, bytes) = entry?;
        let (app, seq) = key.value();
        let accounts =
            decode_bitmap(bytes.value()).map_err(|e| e.at("catch-up record", (app, seq)))?;
        sink(Record::CaughtUp(app, seq, accounts))?;
    }
    for entry in txn.open_table(CURSORS)?.iter()? {
        let (key, value) = entry?;
        let ((app, account), seq) = (key.value(), value.value());
        sink(Record::Cursor(app, account, seq))?;
    }
    for entry in txn.open_table(CALLBACKS)?.iter()? {
        let (key, bytes) = entry?;
        let (app, id) = key.value();
        let callback =
            decode_callback(bytes.value()).map_err(|e| e.at("callback batch", (app, id)))?;
        sink(Record::Callback(app, id, callback))?;
    }
    for entry in txn.open_table(DEVICES)?.iter()? {
        let (key, bytes) = entry?;
        let (app, id) = key.value();
        let device = decode_device(bytes.value()).map_err(|e| e.at("device", (app, id)))?;
        sink(Record::Device(app, Box::new(device)))?;
    }
    for entry in txn.open_table(DISPATCHES)?.iter()? {
        let (key, bytes) = entry?;
        let (app, seq) = key.value();
        let dispatch =
            decode_json("fan-out", bytes.value()).map_err(|e| e.at("fan-out", (app, seq)))?;
        sink(Record::Dispatch(app, seq, Box::new(dispatch)))?;
    }
    for entry in txn.open_table(DEVICE_SENDS)?.iter()? {
        let (key, bytes) = entry?;
        let (app, seq, account) = key.value();
        let sends = decode_json("device sends", bytes.value())
            .map_err(|e| e.at("device sends", (app, seq, account)))?;
        sink(Record::DeviceSends(app, seq, account, sends))?;
    }
    Ok(())
}
