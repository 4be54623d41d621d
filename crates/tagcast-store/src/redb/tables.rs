//! The records of `tables`, kept in redb tables: one implementation of the reads for read and
//! write transactions alike, and the writes for write transactions.

use std::collections::BTreeMap;

use redb::{Key, ReadOnlyTable, ReadTransaction, ReadableTable, Table, Value, WriteTransaction};
use roaring::RoaringBitmap;

use super::schema::{
    ACCOUNT_ATTRS, ACCOUNT_DEVICES, ACCOUNT_NAMES, ACCOUNT_TAGS, ACCOUNTS, APPS, ATTR_SCHEMAS,
    CALLBACKS, CURSORS, DEVICE_SENDS, DEVICES, DISPATCHES, MSG_RANDOMS, OPEN_DISPATCHES,
    PUSH_STATE, REGISTRATION_TAGS, SENDS_DUE, TAG_NAMES, TAGS, TASK_AUDIENCES, TASK_CATCH_UPS,
    TASK_DELIVERIES, TASKS,
};
use crate::codec::{
    decode_attrs, decode_bitmap, decode_callback, decode_device, decode_json, decode_meta,
    decode_schema, decode_tag_ids, encode_attrs, encode_bitmap, encode_callback, encode_device,
    encode_json, encode_meta, encode_schema, encode_tag_ids,
};
use crate::fanout::{DeviceSend, Dispatch, DueSends, next_due};
use crate::tables::{
    AppCounters, Callback, PushState, ReadTables, Result, SeenMsgRandom, Tables, TagEntry,
    TaskFilter,
};
use crate::{AccountId, AccountKind, AppId, AttrSchema, Device, TaskMeta};

/// The tables of one transaction, each opened once for the whole transaction (opening a table
/// costs a lookup, and a request reads or writes hundreds of records).
pub(crate) struct Redb<F: Family> {
    accounts: F::Table<(AppId, &'static str), AccountId>,
    account_names: F::Table<(AppId, AccountId), &'static str>,
    account_tags: F::Table<(AppId, AccountId), &'static [u8]>,
    account_attrs: F::Table<(AppId, AccountId), &'static [u8]>,
    apps: F::Table<AppId, (u32, u32, u32)>,
    tags: F::Table<(AppId, &'static str), (u32, u32)>,
    tag_names: F::Table<(AppId, u32), &'static str>,
    registration_tags: F::Table<(AppId, u32), ()>,
    attr_schemas: F::Table<AppId, &'static [u8]>,
    push_state: F::Table<AppId, (u64, u32, u32, u64)>,
    msg_randoms: F::Table<(AppId, u32), (u64, u64)>,
    tasks: F::Table<(AppId, u64), &'static [u8]>,
    task_audiences: F::Table<(AppId, u64), &'static [u8]>,
    task_deliveries: F::Table<(AppId, u64, u64), &'static [u8]>,
    task_catch_ups: F::Table<(AppId, u64), &'static [u8]>,
    cursors: F::Table<(AppId, AccountId), u64>,
    callbacks: F::Table<(AppId, u64), &'static [u8]>,
    devices: F::Table<(AppId, &'static str), &'static [u8]>,
    account_devices: F::Table<(AppId, AccountId, &'static str), ()>,
    dispatches: F::Table<(AppId, u64), &'static [u8]>,
    open_dispatches: F::Table<(AppId, u64), ()>,
    device_sends: F::Table<(AppId, u64, AccountId), &'static [u8]>,
    sends_due: F::Table<(AppId, u64, AccountId), u64>,
}

/// What kind of table a transaction opens: read-only, or writable within a write transaction.
pub(crate) trait Family {
    type Table<K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>;
}

pub(crate) struct ReadOnly;

impl Family for ReadOnly {
    type Table<K: Key + 'static, V: Value + 'static> = ReadOnlyTable<K, V>;
}

pub(crate) struct Writable<'txn>(std::marker::PhantomData<&'txn ()>);

impl<'txn> Family for Writable<'txn> {
    type Table<K: Key + 'static, V: Value + 'static> = Table<'txn, K, V>;
}

/// Opens every table in `$txn`, a read or a write transaction.
macro_rules! open_all {
    ($txn:expr) => {
        Redb {
            accounts: $txn.open_table(ACCOUNTS)?,
            account_names: $txn.open_table(ACCOUNT_NAMES)?,
            account_tags: $txn.open_table(ACCOUNT_TAGS)?,
            account_attrs: $txn.open_table(ACCOUNT_ATTRS)?,
            apps: $txn.open_table(APPS)?,
            tags: $txn.open_table(TAGS)?,
            tag_names: $txn.open_table(TAG_NAMES)?,
            registration_tags: $txn.open_table(REGISTRATION_TAGS)?,
            attr_schemas: $txn.open_table(ATTR_SCHEMAS)?,
            push_state: $txn.open_table(PUSH_STATE)?,
            msg_randoms: $txn.open_table(MSG_RANDOMS)?,
            tasks: $txn.open_table(TASKS)?,
            task_audiences: $txn.open_table(TASK_AUDIENCES)?,
            task_deliveries: $txn.open_table(TASK_DELIVERIES)?,
            task_catch_ups: $txn.open_table(TASK_CATCH_UPS)?,
            cursors: $txn.open_table(CURSORS)?,
            callbacks: $txn.open_table(CALLBACKS)?,
            devices: $txn.open_table(DEVICES)?,
            account_devices: $txn.open_table(ACCOUNT_DEVICES)?,
            dispatches: $txn.open_table(DISPATCHES)?,
            open_dispatches: $txn.open_table(OPEN_DISPATCHES)?,
            device_sends: $txn.open_table(DEVICE_SENDS)?,
            sends_due: $txn.open_table(SENDS_DUE)?,
        }
    };
}

impl Redb<ReadOnly> {
    pub fn open(txn: &ReadTransaction) -> Result<Self> {
        Ok(open_all!(txn))
    }
}

impl<'txn> Redb<Writable<'txn>> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Ok(open_all!(txn))
    }
}

impl<F: Family> ReadTables for Redb<F> {
    fn account_id(&mut self, app: AppId, name: &str) -> Result<Option<AccountId>> {
        Ok(self.accounts.get((app, name))?.map(|g| g.value()))
    }

    fn account_name(&mut self, app: AppId, id: AccountId) -> Result<Option<String>> {
        let names = &self.account_names;
        Ok(names.get((app, id))?.map(|g| g.value().to_string()))
    }

    fn account_tag_ids(&mut self, app: AppId, id: AccountId) -> Result<Vec<u32>> {
        match self.account_tags.get((app, id))? {
            Some(g) => decode_tag_ids(g.value()).map_err(|e| e.at("account tag list", (app, id))),
            None => Ok(Vec::new()),
        }
    }

    fn account_attrs(&mut self, app: AppId, id: AccountId) -> Result<BTreeMap<u8, String>> {
        match self.account_attrs.get((app, id))? {
            Some(g) => Ok(decode_attrs(g.value())
                .map_err(|e| e.at("account attributes", (app, id)))?
                .into_iter()
                .collect()),
            None => Ok(BTreeMap::new()),
        }
    }

    fn app_counters(&mut self, app: AppId) -> Result<AppCounters> {
        let counters = self.apps.get(app)?.map(|g| g.value());
        Ok(
            counters.map_or_else(AppCounters::default, |(next_account, next_tag, live)| {
                AppCounters {
                    next_account,
                    next_tag,
                    live_tags: live,
                }
            }),
        )
    }

    fn tag(&mut self, app: AppId, name: &str) -> Result<Option<TagEntry>> {
        let Some((id, accounts)) = self.tags.get((app, name))?.map(|g| g.value()) else {
            return Ok(None);
        };
        let kind = match self.registration_tags.get((app, id))? {
            Some(_) => AccountKind::RegistrationId,
            None => AccountKind::UserId,
        };
        Ok(Some(TagEntry { id, accounts, kind }))
    }

    fn tag_name(&mut self, app: AppId, id: u32) -> Result<Option<String>> {
        let names = &self.tag_names;
        Ok(names.get((app, id))?.map(|g| g.value().to_string()))
    }

    fn attr_schema(&mut self, app: AppId) -> Result<AttrSchema> {
        match self.attr_schemas.get(app)? {
            Some(g) => decode_schema(g.value()).map_err(|e| e.at("attribute schema", app)),
            None => Ok(AttrSchema::default()),
        }
    }

    fn push_state(&mut self, app: AppId) -> Result<PushState> {
        let state = self.push_state.get(app)?.map(|g| g.value());
        Ok(
            state.map_or_else(PushState::default, |(next_seq, day, today, last_ms)| {
                PushState {
                    next_seq,
                    day,
                    today,
                    last_ms,
                }
            }),
        )
    }

    fn msg_random(&mut self, app: AppId, msg_random: u32) -> Result<Option<SeenMsgRandom>> {
        let table = &self.msg_randoms;
        let seen = table.get((app, msg_random))?.map(|g| g.value());
        Ok(seen.map(|(seq, created_ms)| SeenMsgRandom { seq, created_ms }))
    }

    fn task(&mut self, app: AppId, seq: u64) -> Result<Option<TaskMeta>> {
        match self.tasks.get((app, seq))? {
            Some(g) => Ok(Some(meta_in(g.value(), (app, seq))?)),
            None => Ok(None),
        }
    }

    fn task_audience(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>> {
        match self.task_audiences.get((app, seq))? {
            Some(g) => Ok(Some(
                decode_bitmap(g.value()).map_err(|e| e.at("task audience", (app, seq)))?,
            )),
            None => Ok(None),
        }
    }

    fn tasks(&mut self, filter: TaskFilter) -> Result<Vec<(AppId, TaskMeta)>> {
        let table = &self.tasks;
        let entries = match filter {
            TaskFilter::CreatedBetween { app, .. } => table.range((app, 0)..=(app, u64::MAX))?,
            TaskFilter::LiveAt { .. } => table.range::<(AppId, u64)>(..)?,
        };
        let mut out = Vec::new();
        for entry in entries {
            let (key, value) = entry?;
            let (app, seq) = key.value();
            let meta = meta_in(value.value(), (app, seq))?;
            if filter.admits(app, &meta) {
                out.push((app, meta));
            }
        }
        Ok(out)
    }

    fn ended_tasks(&mut self, before_ms: u64, limit: usize) -> Result<Vec<(AppId, u64)>> {
        let mut ended = Vec::new();
        for entry in self.tasks.iter()? {
            if ended.len() == limit {
                break;
            }
            let (key, value) = entry?;
            let meta = meta_in(value.value(), key.value())?;
            if meta.expires_ms < before_ms && self.open_dispatches.get(key.value())?.is_none() {
                ended.push(key.value());
            }
        }
        Ok(ended)
    }

    fn delivered(&mut self, app: AppId, seq: u64, second: u64) -> Result<Option<RoaringBitmap>> {
        let key = (app, seq, second);
        match self.task_deliveries.get(key)? {
            Some(g) => Ok(Some(delivered_in(g.value(), key)?)),
            None => Ok(None),
        }
    }

    fn deliveries(&mut self, app: AppId, seq: u64) -> Result<Vec<(u64, RoaringBitmap)>> {
        let table = &self.task_deliveries;
        let mut out = Vec::new();
        for entry in table.range((app, seq, 0)..=(app, seq, u64::MAX))? {
            let (key, value) = entry?;
            out.push((key.value().2, delivered_in(value.value(), key.value())?));
        }
        Ok(out)
    }

    fn caught_up(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>> {
        match self.task_catch_ups.get((app, seq))? {
            Some(g) => Ok(Some(
                decode_bitmap(g.value()).map_err(|e| e.at("catch-up record", (app, seq)))?,
            )),
            None => Ok(None),
        }
    }

    fn cursor(&mut self, app: AppId, account: AccountId) -> Result<u64> {
        let table = &self.cursors;
        Ok(table.get((app, account))?.map_or(0, |g| g.value()))
    }

    fn callback(&mut self, app: AppId, id: u64) -> Result<Option<Callback>> {
        match self.callbacks.get((app, id))? {
            Some(g) => Ok(Some(callback_in(g.value(), (app, id))?)),
            None => Ok(None),
        }
    }

    /// A scan of the whole outbox: it holds what is being sent or retried, a few batches.
    fn callbacks_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<(AppId, u64, Callback)>> {
        let mut due = Vec::new();
        for entry in self.callbacks.iter()? {
            let (key, value) = entry?;
            let (app, id) = key.value();
            let callback = callback_in(value.value(), (app, id))?;
            if callback.next_attempt_ms <= now_ms {
                due.push((app, id, callback));
            }
        }
        due.sort_by_key(|(app, id, c)| (c.next_attempt_ms, *app, *id));
        due.truncate(limit);
        Ok(due)
    }

    fn callback_count(&mut self, app: AppId) -> Result<u64> {
        let mut count = 0;
        for entry in self.callbacks.range((app, 0)..=(app, u64::MAX))? {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    fn device(&mut self, app: AppId, registration_id: &str) -> Result<Option<Device>> {
        match self.devices.get((app, registration_id))? {
            Some(g) => Ok(Some(
                decode_device(g.value()).map_err(|e| e.at("device", (app, registration_id)))?,
            )),
            None => Ok(None),
        }
    }

    fn account_devices(&mut self, app: AppId, account: AccountId) -> Result<Vec<String>> {
        // RegistrationIDs are ASCII: every one sorts below U+007F.
        let range = (app, account, "")..=(app, account, "\u{7f}");
        let mut ids = Vec::new();
        for entry in self.account_devices.range(range)? {
            ids.push(entry?.0.value().2.to_string());
        }
        Ok(ids)
    }

    fn device_owners(&mut self, app: AppId) -> Result<RoaringBitmap> {
        let range = (app, 0, "")..=(app, AccountId::MAX, "\u{7f}");
        let mut owners = RoaringBitmap::new();
        for entry in self.account_devices.range(range)? {
            owners.insert(entry?.0.value().1);
        }
        Ok(owners)
    }

    fn each_device(&mut self, app: AppId, visit: &mut dyn FnMut(Device)) -> Result<()> {
        for entry in self.devices.range((app, "")..=(app, "\u{7f}"))? {
            let (key, value) = entry?;
            let key = key.value();
            visit(decode_device(value.value()).map_err(|e| e.at("device", key))?);
        }
        Ok(())
    }

    fn dispatch(&mut self, app: AppId, seq: u64) -> Result<Option<Dispatch>> {
        match self.dispatches.get((app, seq))? {
            Some(g) => Ok(Some(
                decode_json("fan-out", g.value()).map_err(|e| e.at("fan-out", (app, seq)))?,
            )),
            None => Ok(None),
        }
    }

    fn open_dispatches(&mut self) -> Result<Vec<(AppId, u64)>> {
        let mut open = Vec::new();
        for entry in self.open_dispatches.iter()? {
            open.push(entry?.0.value());
        }
        Ok(open)
    }

    fn device_sends(
        &mut self,
        app: AppId,
        seq: u64,
        account: AccountId,
    ) -> Result<Option<Vec<DeviceSend>>> {
        match self.device_sends.get((app, seq, account))? {
            Some(g) => Ok(Some(sends_in(g.value(), (app, seq, account))?)),
            None => Ok(None),
        }
    }

    /// A scan of the due times: they exist only while a provider asks to try again.
    fn sends_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<DueSends>> {
        let mut due = Vec::new();
        for entry in self.sends_due.iter()? {
            let (key, at) = entry?;
            if at.value() <= now_ms {
                due.push((at.value(), key.value()));
            }
        }
        due.sort_unstable();
        due.truncate(limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, (app, seq, account)) in due {
            if let Some(sends) = self.device_sends(app, seq, account)? {
                out.push(DueSends {
                    app,
                    seq,
                    account,
                    sends,
                });
            }
        }
        Ok(out)
    }
}

fn sends_in(bytes: &[u8], key: (AppId, u64, AccountId)) -> Result<Vec<DeviceSend>> {
    decode_json("device sends", bytes).map_err(|e| e.at("device sends", key))
}

impl Tables for Redb<Writable<'_>> {
    fn insert_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()> {
        self.accounts.insert((app, name), id)?;
        self.account_names.insert((app, id), name)?;
        Ok(())
    }

    fn remove_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()> {
        self.account_names.remove((app, id))?;
        self.accounts.remove((app, name))?;
        Ok(())
    }

    fn set_account_tag_ids(&mut self, app: AppId, id: AccountId, ids: &[u32]) -> Result<()> {
        let table = &mut self.account_tags;
        if ids.is_empty() {
            table.remove((app, id))?;
        } else {
            table.insert((app, id), encode_tag_ids(ids).as_slice())?;
        }
        Ok(())
    }

    fn set_account_attrs(
        &mut self,
        app: AppId,
        id: AccountId,
        values: &BTreeMap<u8, String>,
    ) -> Result<()> {
        let table = &mut self.account_attrs;
        if values.is_empty() {
            table.remove((app, id))?;
        } else {
            let values: Vec<(u8, String)> = values.iter().map(|(s, v)| (*s, v.clone())).collect();
            table.insert((app, id), encode_attrs(&values).as_slice())?;
        }
        Ok(())
    }

    fn set_app_counters(&mut self, app: AppId, counters: AppCounters) -> Result<()> {
        let value = (counters.next_account, counters.next_tag, counters.live_tags);
        self.apps.insert(app, value)?;
        Ok(())
    }

    fn put_tag(&mut self, app: AppId, name: &str, entry: TagEntry) -> Result<()> {
        let previous = self.tags.insert((app, name), (entry.id, entry.accounts))?;
        if previous.is_none() {
            self.tag_names.insert((app, entry.id), name)?;
            if entry.kind == AccountKind::RegistrationId {
                self.registration_tags.insert((app, entry.id), ())?;
            }
        }
        Ok(())
    }

    fn remove_tag(&mut self, app: AppId, name: &str, id: u32) -> Result<()> {
        self.tags.remove((app, name))?;
        self.tag_names.remove((app, id))?;
        self.registration_tags.remove((app, id))?;
        Ok(())
    }

    fn set_attr_schema(&mut self, app: AppId, schema: &AttrSchema) -> Result<()> {
        self.attr_schemas
            .insert(app, encode_schema(schema).as_slice())?;
        Ok(())
    }

    fn set_push_state(&mut self, app: AppId, state: PushState) -> Result<()> {
        let value = (state.next_seq, state.day, state.today, state.last_ms);
        self.push_state.insert(app, value)?;
        Ok(())
    }

    fn set_msg_random(&mut self, app: AppId, msg_random: u32, seen: SeenMsgRandom) -> Result<()> {
        self.msg_randoms
            .insert((app, msg_random), (seen.seq, seen.created_ms))?;
        Ok(())
    }

    fn put_task(&mut self, app: AppId, meta: &TaskMeta) -> Result<()> {
        let bytes = encode_meta(meta)?;
        self.tasks.insert((app, meta.seq), bytes.as_slice())?;
        Ok(())
    }

    fn put_task_audience(&mut self, app: AppId, seq: u64, audience: &RoaringBitmap) -> Result<()> {
        self.task_audiences
            .insert((app, seq), encode_bitmap(audience).as_slice())?;
        Ok(())
    }

    fn set_delivered(
        &mut self,
        app: AppId,
        seq: u64,
        second: u64,
        accounts: &RoaringBitmap,
    ) -> Result<()> {
        self.task_deliveries
            .insert((app, seq, second), encode_bitmap(accounts).as_slice())?;
        Ok(())
    }

    fn set_caught_up(&mut self, app: AppId, seq: u64, accounts: &RoaringBitmap) -> Result<()> {
        self.task_catch_ups
            .insert((app, seq), encode_bitmap(accounts).as_slice())?;
        Ok(())
    }

    fn set_cursor(&mut self, app: AppId, account: AccountId, seq: u64) -> Result<()> {
        self.cursors.insert((app, account), seq)?;
        Ok(())
    }

    fn put_callback(&mut self, app: AppId, id: u64, callback: &Callback) -> Result<()> {
        self.callbacks
            .insert((app, id), encode_callback(callback).as_slice())?;
        Ok(())
    }

    fn remove_callback(&mut self, app: AppId, id: u64) -> Result<()> {
        self.callbacks.remove((app, id))?;
        Ok(())
    }

    fn put_device(&mut self, app: AppId, device: &Device) -> Result<()> {
        let id = device.registration_id.as_str();
        self.devices
            .insert((app, id), encode_device(device)?.as_slice())?;
        self.account_devices.insert((app, device.account, id), ())?;
        Ok(())
    }

    fn remove_device(&mut self, app: AppId, device: &Device) -> Result<()> {
        let id = device.registration_id.as_str();
        self.devices.remove((app, id))?;
        self.account_devices.remove((app, device.account, id))?;
        Ok(())
    }

    fn remove_task(&mut self, app: AppId, seq: u64) -> Result<()> {
        self.tasks.remove((app, seq))?;
        self.task_audiences.remove((app, seq))?;
        self.task_catch_ups.remove((app, seq))?;
        self.dispatches.remove((app, seq))?;
        self.open_dispatches.remove((app, seq))?;
        let (first, last) = ((app, seq, 0), (app, seq, u64::MAX));
        self.task_deliveries.retain_in(first..=last, |_, _| false)?;
        let (first, last) = ((app, seq, AccountId::MIN), (app, seq, AccountId::MAX));
        self.device_sends.retain_in(first..=last, |_, _| false)?;
        self.sends_due.retain_in(first..=last, |_, _| false)?;
        Ok(())
    }

    fn put_dispatch(&mut self, app: AppId, seq: u64, dispatch: &Dispatch) -> Result<()> {
        let bytes = encode_json("fan-out", dispatch)?;
        self.dispatches.insert((app, seq), bytes.as_slice())?;
        if !dispatch.is_open() {
            self.open_dispatches.remove((app, seq))?;
        } else {
            self.open_dispatches.insert((app, seq), ())?;
        }
        Ok(())
    }

    fn put_device_sends(
        &mut self,
        app: AppId,
        seq: u64,
        account: AccountId,
        sends: &[DeviceSend],
    ) -> Result<()> {
        let bytes = encode_json("device sends", &sends)?;
        self.device_sends
            .insert((app, seq, account), bytes.as_slice())?;
        match next_due(sends) {
            Some(at) => self.sends_due.insert((app, seq, account), at)?,
            None => self.sends_due.remove((app, seq, account))?,
        };
        Ok(())
    }
}

fn callback_in(bytes: &[u8], key: (AppId, u64)) -> Result<Callback> {
    decode_callback(bytes).map_err(|e| e.at("callback batch", key))
}

fn meta_in(bytes: &[u8], key: (AppId, u64)) -> Result<TaskMeta> {
    decode_meta(bytes).map_err(|e| e.at("push task", key))
}

fn delivered_in(bytes: &[u8], key: (AppId, u64, u64)) -> Result<RoaringBitmap> {
    decode_bitmap(bytes).map_err(|e| e.at("delivery record", key))
}
