//! The redb file's tables.
//!
//! Every key starts with the app id, so no lookup can cross from one app into another.

use redb::{Database, TableDefinition};

use crate::{AccountId, AppId, StoreError};

/// Per app: (next account id, next tag id, number of distinct tags in use).
pub(crate) const APPS: TableDefinition<AppId, (u32, u32, u32)> = TableDefinition::new("apps");
/// (app, account name) -> account id.
pub(crate) const ACCOUNTS: TableDefinition<(AppId, &str), AccountId> =
    TableDefinition::new("accounts");
/// (app, account id) -> account name.
pub(crate) const ACCOUNT_NAMES: TableDefinition<(AppId, AccountId), &str> =
    TableDefinition::new("account_names");
/// (app, account id) -> the account's tag ids, in the order they were added (see `codec`).
pub(crate) const ACCOUNT_TAGS: TableDefinition<(AppId, AccountId), &[u8]> =
    TableDefinition::new("account_tags");
/// (app, account id) -> the account's attribute values by slot (see `codec`).
pub(crate) const ACCOUNT_ATTRS: TableDefinition<(AppId, AccountId), &[u8]> =
    TableDefinition::new("account_attrs");
/// (app, tag) -> (tag id, number of accounts that have it).
pub(crate) const TAGS: TableDefinition<(AppId, &str), (u32, u32)> = TableDefinition::new("tags");
/// (app, tag id) -> tag.
pub(crate) const TAG_NAMES: TableDefinition<(AppId, u32), &str> = TableDefinition::new("tag_names");
/// (app, tag id) of the tags bound to RegistrationID accounts (the others are for UserIDs).
pub(crate) const REGISTRATION_TAGS: TableDefinition<(AppId, u32), ()> =
    TableDefinition::new("registration_tags");
/// app -> the app's attribute slots (see `codec`).
pub(crate) const ATTR_SCHEMAS: TableDefinition<AppId, &[u8]> = TableDefinition::new("attr_schemas");

/// Per app: (next task sequence number, day number of `pushes_today`, pushes_today, time of the
/// last counted push in ms).
pub(crate) const PUSH_STATE: TableDefinition<AppId, (u64, u32, u32, u64)> =
    TableDefinition::new("push_state");
/// (app, task seq) -> the task's metadata as JSON (see `tasks::TaskMeta`).
pub(crate) const TASKS: TableDefinition<(AppId, u64), &[u8]> = TableDefinition::new("tasks");
/// (app, task seq) -> the frozen audience, a serialized roaring bitmap of account ids.
pub(crate) const TASK_AUDIENCES: TableDefinition<(AppId, u64), &[u8]> =
    TableDefinition::new("task_audiences");
/// (app, MsgRandom) -> (task seq, creation time in ms): the idempotency window.
pub(crate) const MSG_RANDOMS: TableDefinition<(AppId, u32), (u64, u64)> =
    TableDefinition::new("msg_randoms");
/// (app, task seq, unix second) -> accounts the task reached during that second (roaring).
pub(crate) const TASK_DELIVERIES: TableDefinition<(AppId, u64, u64), &[u8]> =
    TableDefinition::new("task_deliveries");
/// (app, task seq) -> accounts the task reached when they connected, from their backlog
/// (roaring): a subset of its deliveries.
pub(crate) const TASK_CATCH_UPS: TableDefinition<(AppId, u64), &[u8]> =
    TableDefinition::new("task_catch_ups");
/// (app, account id) -> sequence number of the last task delivered to the account.
pub(crate) const CURSORS: TableDefinition<(AppId, AccountId), u64> =
    TableDefinition::new("cursors");

/// (app, batch id) -> a callback batch waiting to be sent (see `codec::encode_callback`).
pub(crate) const CALLBACKS: TableDefinition<(AppId, u64), &[u8]> =
    TableDefinition::new("callbacks");

/// (app, RegistrationID) -> the device as JSON (see `devices::Device`).
pub(crate) const DEVICES: TableDefinition<(AppId, &str), &[u8]> = TableDefinition::new("devices");
/// (app, account id, RegistrationID): the devices of each account.
pub(crate) const ACCOUNT_DEVICES: TableDefinition<(AppId, AccountId, &str), ()> =
    TableDefinition::new("account_devices");

/// (app, task seq) -> a push's fan-out to devices as JSON (see `fanout::Dispatch`).
pub(crate) const DISPATCHES: TableDefinition<(AppId, u64), &[u8]> =
    TableDefinition::new("dispatches");
/// (app, task seq): the fan-outs not finished.
pub(crate) const OPEN_DISPATCHES: TableDefinition<(AppId, u64), ()> =
    TableDefinition::new("open_dispatches");
/// (app, task seq, account id) -> the account's device sends of the task as JSON.
pub(crate) const DEVICE_SENDS: TableDefinition<(AppId, u64, AccountId), &[u8]> =
    TableDefinition::new("device_sends");
/// (app, task seq, account id) -> when the account's next retry is due (ms), while it has one.
pub(crate) const SENDS_DUE: TableDefinition<(AppId, u64, AccountId), u64> =
    TableDefinition::new("sends_due");

/// Written and deleted by the writer to prove it can commit again after a failure.
pub(crate) const PROBE: TableDefinition<u8, &[u8]> = TableDefinition::new("health_probe");

/// Creates every table, so readers never meet a missing one.
pub(crate) fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(APPS)?;
    txn.open_table(ACCOUNTS)?;
    txn.open_table(ACCOUNT_NAMES)?;
    txn.open_table(ACCOUNT_TAGS)?;
    txn.open_table(ACCOUNT_ATTRS)?;
    txn.open_table(TAGS)?;
    txn.open_table(TAG_NAMES)?;
    txn.open_table(REGISTRATION_TAGS)?;
    txn.open_table(ATTR_SCHEMAS)?;
    txn.open_table(PUSH_STATE)?;
    txn.open_table(TASKS)?;
    txn.open_table(TASK_AUDIENCES)?;
    txn.open_table(MSG_RANDOMS)?;
    txn.open_table(TASK_DELIVERIES)?;
    txn.open_table(TASK_CATCH_UPS)?;
    txn.open_table(CURSORS)?;
    txn.open_table(CALLBACKS)?;
    txn.open_table(DEVICES)?;
    txn.open_table(ACCOUNT_DEVICES)?;
    txn.open_table(DISPATCHES)?;
    txn.open_table(OPEN_DISPATCHES)?;
    txn.open_table(DEVICE_SENDS)?;
    txn.open_table(SENDS_DUE)?;
    txn.open_table(PROBE)?;
    txn.commit()?;
    Ok(())
}
