//! The records of `tables`, kept in redb tables: one implementation of the reads for read and
//! write transactions alike, and the writes for write transactions.

use std::collections::BTreeMap;

use redb::{Key, ReadTransaction, ReadableTable, TableDefinition, Value, WriteTransaction};
use roaring::RoaringBitmap;

use super::schema::{
    ACCOUNT_ATTRS, ACCOUNT_NAMES, ACCOUNT_TAGS, ACCOUNTS, APPS, ATTR_SCHEMAS, CURSORS, MSG_RANDOMS,
    PUSH_STATE, TAG_NAMES, TAGS, TASK_AUDIENCES, TASK_DELIVERIES, TASKS,
};
use crate::codec::{
    decode_attrs, decode_bitmap, decode_meta, decode_schema, decode_tag_ids, encode_attrs,
    encode_bitmap, encode_meta, encode_schema, encode_tag_ids,
};
use crate::tables::{
    AppCounters, PushState, ReadTables, Result, SeenMsgRandom, Tables, TagEntry, TaskFilter,
};
use crate::{AccountId, AppId, AttrSchema, TaskMeta};

/// A redb transaction seen as `tables`' records.
pub(crate) struct Redb<'a, T>(pub &'a T);

/// Opening a table for reading, in either kind of transaction.
pub(crate) trait OpenTable {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_>;
}

impl OpenTable for ReadTransaction {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_> {
        Ok(self.open_table(definition)?)
    }
}

impl OpenTable for WriteTransaction {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_> {
        Ok(self.open_table(definition)?)
    }
}

impl<T: OpenTable> ReadTables for Redb<'_, T> {
    fn account_id(&mut self, app: AppId, name: &str) -> Result<Option<AccountId>> {
        Ok(self.0.table(ACCOUNTS)?.get((app, name))?.map(|g| g.value()))
    }

    fn account_name(&mut self, app: AppId, id: AccountId) -> Result<Option<String>> {
        let names = self.0.table(ACCOUNT_NAMES)?;
        Ok(names.get((app, id))?.map(|g| g.value().to_string()))
    }

    fn account_tag_ids(&mut self, app: AppId, id: AccountId) -> Result<Vec<u32>> {
        match self.0.table(ACCOUNT_TAGS)?.get((app, id))? {
            Some(g) => decode_tag_ids(g.value()).map_err(|e| e.at("account tag list", (app, id))),
            None => Ok(Vec::new()),
        }
    }

    fn account_attrs(&mut self, app: AppId, id: AccountId) -> Result<BTreeMap<u8, String>> {
        match self.0.table(ACCOUNT_ATTRS)?.get((app, id))? {
            Some(g) => Ok(decode_attrs(g.value())
                .map_err(|e| e.at("account attributes", (app, id)))?
                .into_iter()
                .collect()),
            None => Ok(BTreeMap::new()),
        }
    }

    fn app_counters(&mut self, app: AppId) -> Result<AppCounters> {
        let counters = self.0.table(APPS)?.get(app)?.map(|g| g.value());
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
        let entry = self.0.table(TAGS)?.get((app, name))?.map(|g| g.value());
        Ok(entry.map(|(id, accounts)| TagEntry { id, accounts }))
    }

    fn tag_name(&mut self, app: AppId, id: u32) -> Result<Option<String>> {
        let names = self.0.table(TAG_NAMES)?;
        Ok(names.get((app, id))?.map(|g| g.value().to_string()))
    }

    fn attr_schema(&mut self, app: AppId) -> Result<AttrSchema> {
        match self.0.table(ATTR_SCHEMAS)?.get(app)? {
            Some(g) => decode_schema(g.value()).map_err(|e| e.at("attribute schema", app)),
            None => Ok(AttrSchema::default()),
        }
    }

    fn push_state(&mut self, app: AppId) -> Result<PushState> {
        let state = self.0.table(PUSH_STATE)?.get(app)?.map(|g| g.value());
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
        let table = self.0.table(MSG_RANDOMS)?;
        let seen = table.get((app, msg_random))?.map(|g| g.value());
        Ok(seen.map(|(seq, created_ms)| SeenMsgRandom { seq, created_ms }))
    }

    fn task(&mut self, app: AppId, seq: u64) -> Result<Option<TaskMeta>> {
        match self.0.table(TASKS)?.get((app, seq))? {
            Some(g) => Ok(Some(meta_in(g.value(), (app, seq))?)),
            None => Ok(None),
        }
    }

    fn task_audience(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>> {
        match self.0.table(TASK_AUDIENCES)?.get((app, seq))? {
            Some(g) => Ok(Some(
                decode_bitmap(g.value()).map_err(|e| e.at("task audience", (app, seq)))?,
            )),
            None => Ok(None),
        }
    }

    fn tasks(&mut self, filter: TaskFilter) -> Result<Vec<(AppId, TaskMeta)>> {
        let table = self.0.table(TASKS)?;
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

    fn delivered(&mut self, app: AppId, seq: u64, second: u64) -> Result<Option<RoaringBitmap>> {
        let key = (app, seq, second);
        match self.0.table(TASK_DELIVERIES)?.get(key)? {
            Some(g) => Ok(Some(delivered_in(g.value(), key)?)),
            None => Ok(None),
        }
    }

    fn deliveries(&mut self, app: AppId, seq: u64) -> Result<Vec<(u64, RoaringBitmap)>> {
        let table = self.0.table(TASK_DELIVERIES)?;
        let mut out = Vec::new();
        for entry in table.range((app, seq, 0)..=(app, seq, u64::MAX))? {
            let (key, value) = entry?;
            out.push((key.value().2, delivered_in(value.value(), key.value())?));
        }
        Ok(out)
    }

    fn cursor(&mut self, app: AppId, account: AccountId) -> Result<u64> {
        let table = self.0.table(CURSORS)?;
        Ok(table.get((app, account))?.map_or(0, |g| g.value()))
    }
}

impl Tables for Redb<'_, WriteTransaction> {
    fn insert_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()> {
        self.0.open_table(ACCOUNTS)?.insert((app, name), id)?;
        self.0.open_table(ACCOUNT_NAMES)?.insert((app, id), name)?;
        Ok(())
    }

    fn remove_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()> {
        self.0.open_table(ACCOUNT_NAMES)?.remove((app, id))?;
        self.0.open_table(ACCOUNTS)?.remove((app, name))?;
        Ok(())
    }

    fn set_account_tag_ids(&mut self, app: AppId, id: AccountId, ids: &[u32]) -> Result<()> {
        let mut table = self.0.open_table(ACCOUNT_TAGS)?;
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
        let mut table = self.0.open_table(ACCOUNT_ATTRS)?;
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
        self.0.open_table(APPS)?.insert(app, value)?;
        Ok(())
    }

    fn put_tag(&mut self, app: AppId, name: &str, entry: TagEntry) -> Result<()> {
        let mut tags = self.0.open_table(TAGS)?;
        let is_new = tags
            .insert((app, name), (entry.id, entry.accounts))?
            .is_none();
        drop(tags);
        if is_new {
            self.0
                .open_table(TAG_NAMES)?
                .insert((app, entry.id), name)?;
        }
        Ok(())
    }

    fn remove_tag(&mut self, app: AppId, name: &str, id: u32) -> Result<()> {
        self.0.open_table(TAGS)?.remove((app, name))?;
        self.0.open_table(TAG_NAMES)?.remove((app, id))?;
        Ok(())
    }

    fn set_attr_schema(&mut self, app: AppId, schema: &AttrSchema) -> Result<()> {
        self.0
            .open_table(ATTR_SCHEMAS)?
            .insert(app, encode_schema(schema).as_slice())?;
        Ok(())
    }

    fn set_push_state(&mut self, app: AppId, state: PushState) -> Result<()> {
        let value = (state.next_seq, state.day, state.today, state.last_ms);
        self.0.open_table(PUSH_STATE)?.insert(app, value)?;
        Ok(())
    }

    fn set_msg_random(&mut self, app: AppId, msg_random: u32, seen: SeenMsgRandom) -> Result<()> {
        self.0
            .open_table(MSG_RANDOMS)?
            .insert((app, msg_random), (seen.seq, seen.created_ms))?;
        Ok(())
    }

    fn put_task(&mut self, app: AppId, meta: &TaskMeta) -> Result<()> {
        let bytes = encode_meta(meta)?;
        self.0
            .open_table(TASKS)?
            .insert((app, meta.seq), bytes.as_slice())?;
        Ok(())
    }

    fn put_task_audience(&mut self, app: AppId, seq: u64, audience: &RoaringBitmap) -> Result<()> {
        self.0
            .open_table(TASK_AUDIENCES)?
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
        self.0
            .open_table(TASK_DELIVERIES)?
            .insert((app, seq, second), encode_bitmap(accounts).as_slice())?;
        Ok(())
    }

    fn set_cursor(&mut self, app: AppId, account: AccountId, seq: u64) -> Result<()> {
        self.0.open_table(CURSORS)?.insert((app, account), seq)?;
        Ok(())
    }
}

fn meta_in(bytes: &[u8], key: (AppId, u64)) -> Result<TaskMeta> {
    decode_meta(bytes).map_err(|e| e.at("push task", key))
}

fn delivered_in(bytes: &[u8], key: (AppId, u64, u64)) -> Result<RoaringBitmap> {
    decode_bitmap(bytes).map_err(|e| e.at("delivery record", key))
}
