//! The records of `tables` in PostgreSQL, inside one transaction of one connection.
//!
//! Reads go through a cache that the prefetch hints fill with one query for many records;
//! writes stay in the cache until `flush`, which writes every changed record with a few set-wise
//! statements (deletes first, then upserts), so a batch of many requests costs a handful of
//! round trips rather than one per record.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use roaring::RoaringBitmap;
use tokio_postgres::{Error as PgError, Row};

type PgResult<T> = std::result::Result<T, PgError>;
use tokio_postgres::types::ToSql;

use futures_util::future::{join_all, try_join_all};

use super::connection::{Pg, pg_error};
use crate::codec::{
    decode_attrs, decode_bitmap, decode_device, decode_json, decode_meta, decode_tag_ids,
    encode_attrs, encode_bitmap, encode_json, encode_meta, encode_tag_ids,
};
use crate::fanout::{DeviceSend, Dispatch, DueSends, next_due};
use crate::tables::{
    AppCounters, Callback, PushState, ReadTables, Result, SeenMsgRandom, Tables, TagEntry,
    TaskFilter, With,
};
use crate::{
    ATTR_SLOTS, AccountId, AccountKind, AppId, AttrSchema, AttrSlot, Device, StoreError, TaskMeta,
};

/// One statement's parameters.
type Params<'a> = [&'a (dyn ToSql + Sync)];

/// A parameter a pipeline owns.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Statements to send together: PostgreSQL runs them in order while the client waits once.
#[derive(Default)]
pub(crate) struct Pipeline {
    statements: Vec<(Cow<'static, str>, Vec<Param>)>,
}

impl Pipeline {
    pub fn push(&mut self, sql: impl Into<Cow<'static, str>>, params: Vec<Param>) {
        self.statements.push((sql.into(), params));
    }
}

/// A connection's client and the bridge that runs its statements.
#[derive(Clone, Copy)]
pub(crate) struct Db<'c> {
    pub pg: &'c Pg,
    pub client: &'c deadpool_postgres::Client,
}

impl Db<'_> {
    pub fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        self.pg.block(async {
            let statement = self.client.prepare_cached(sql).await?;
            self.client.query(&statement, params).await
        })
    }

    pub fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64> {
        self.pg.block(async {
            let statement = self.client.prepare_cached(sql).await?;
            self.client.execute(&statement, params).await
        })
    }

    /// Runs `pipeline`'s statements, sent together; fails with the first that failed.
    pub fn run(&self, pipeline: &Pipeline) -> Result<()> {
        for outcome in self.send(pipeline)? {
            outcome.map_err(pg_error)?;
        }
        Ok(())
    }

    /// Sends `pipeline`'s statements together and returns each one's rows or error, in order
    /// (after a failed statement, the rest of the transaction fails too). Fails as a whole if
    /// PostgreSQL does not answer them all within `STATEMENT_TIMEOUT`.
    pub fn send(&self, pipeline: &Pipeline) -> Result<Vec<PgResult<Vec<Row>>>> {
        self.pg.block(async {
            let prepared = try_join_all(
                pipeline
                    .statements
                    .iter()
                    .map(|(sql, _)| self.client.prepare_cached(sql)),
            )
            .await?;
            let runs = prepared
                .iter()
                .zip(&pipeline.statements)
                .map(|(statement, (_, params))| {
                    let params: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    async move { self.client.query(statement, &params).await }
                });
            Ok(join_all(runs).await)
        })
    }

    pub fn batch(&self, sql: &str) -> Result<()> {
        self.pg.block(self.client.batch_execute(sql))
    }

    fn query_opt(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// Records read (None: known to be absent) and which of them were changed.
struct Cached<K, V> {
    values: HashMap<K, Option<V>>,
    dirty: BTreeSet<K>,
}

impl<K, V> Default for Cached<K, V> {
    fn default() -> Self {
        Self {
            values: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

impl<K: Hash + Eq + Ord + Clone, V: Clone> Cached<K, V> {
    fn get(&mut self, key: K, fetch: impl FnOnce() -> Result<Option<V>>) -> Result<Option<V>> {
        if let Some(value) = self.values.get(&key) {
            return Ok(value.clone());
        }
        let value = fetch()?;
        self.values.insert(key, value.clone());
        Ok(value)
    }

    /// `get`, fetching the one row `sql` finds with `params` and reading it with `read`.
    fn row(
        &mut self,
        key: K,
        db: Db<'_>,
        sql: &str,
        params: &Params<'_>,
        read: impl FnOnce(&Row) -> Result<V>,
    ) -> Result<Option<V>> {
        self.get(key, || {
            db.query_opt(sql, params)?.as_ref().map(read).transpose()
        })
    }

    fn contains(&self, key: &K) -> bool {
        self.values.contains_key(key)
    }

    /// Keeps what a prefetch read, unless this transaction already knows better.
    fn fill(&mut self, key: K, value: Option<V>) {
        self.values.entry(key).or_insert(value);
    }

    /// The record is deleted by other means: it reads as none, and no change of it is written.
    fn gone(&mut self, key: K) {
        self.dirty.remove(&key);
        self.values.insert(key, None);
    }

    /// Forgets what it holds for the keys `removed` picks, changes included.
    fn forget(&mut self, removed: impl Fn(&K) -> bool) {
        self.values.retain(|key, _| !removed(key));
        self.dirty.retain(|key| !removed(key));
    }

    fn set(&mut self, key: K, value: Option<V>) {
        self.values.insert(key.clone(), value);
        self.dirty.insert(key);
    }

    /// The changed records in key order (a stable lock order), then forgets they changed.
    fn take_changed(&mut self) -> (Vec<(K, V)>, Vec<K>) {
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            match self.values.get(&key) {
                Some(Some(value)) => upserts.push((key, value.clone())),
                _ => deletes.push(key),
            }
        }
        (upserts, deletes)
    }
}

/// Prefetch hints not acted on yet: what they name is fetched together, at the first read that
/// needs it, so the hints of a whole batch cost one query.
#[derive(Default)]
struct Pending {
    accounts: BTreeMap<AppId, BTreeMap<String, With>>,
    tags: BTreeMap<AppId, BTreeSet<String>>,
    cursors: BTreeMap<AppId, BTreeSet<AccountId>>,
}

/// A transaction's records, cached.
pub(crate) struct PgTables<'c> {
    db: Db<'c>,
    pending: Pending,
    account_ids: Cached<(AppId, String), AccountId>,
    account_names: Cached<(AppId, AccountId), String>,
    account_tags: Cached<(AppId, AccountId), Vec<u32>>,
    account_attrs: Cached<(AppId, AccountId), BTreeMap<u8, String>>,
    apps: Cached<AppId, AppCounters>,
    tags: Cached<(AppId, String), TagEntry>,
    tag_names: Cached<(AppId, u32), String>,
    schemas: Cached<AppId, AttrSchema>,
    push_states: Cached<AppId, PushState>,
    msg_randoms: Cached<(AppId, u32), SeenMsgRandom>,
    tasks: Cached<(AppId, u64), TaskMeta>,
    audiences: Cached<(AppId, u64), RoaringBitmap>,
    delivered: Cached<(AppId, u64, u64), RoaringBitmap>,
    catch_ups: Cached<(AppId, u64), RoaringBitmap>,
    cursors: Cached<(AppId, AccountId), u64>,
    callbacks: Cached<(AppId, u64), Callback>,
    devices: Cached<(AppId, String), Device>,
    dispatches: Cached<(AppId, u64), Dispatch>,
    device_sends: Cached<(AppId, u64, AccountId), Vec<DeviceSend>>,
}

impl<'c> PgTables<'c> {
    pub fn new(db: Db<'c>) -> Self {
        Self {
            db,
            pending: Pending::default(),
            account_ids: Cached::default(),
            account_names: Cached::default(),
            account_tags: Cached::default(),
            account_attrs: Cached::default(),
            apps: Cached::default(),
            tags: Cached::default(),
            tag_names: Cached::default(),
            schemas: Cached::default(),
            push_states: Cached::default(),
            msg_randoms: Cached::default(),
            tasks: Cached::default(),
            audiences: Cached::default(),
            delivered: Cached::default(),
            catch_ups: Cached::default(),
            cursors: Cached::default(),
            callbacks: Cached::default(),
            devices: Cached::default(),
            dispatches: Cached::default(),
            device_sends: Cached::default(),
        }
    }

    /// Fetches the accounts of every prefetch hint so far, in one query per app.
    fn fetch_pending_accounts(&mut self) -> Result<()> {
        for (app, names) in std::mem::take(&mut self.pending.accounts) {
            let mut with = With::ID;
            let mut wanted: Vec<&str> = Vec::with_capacity(names.len());
            for (name, records) in &names {
                if !self.account_ids.contains(&(app, name.to_string())) {
                    with = with.and(*records);
                    wanted.push(name);
                }
            }
            if wanted.is_empty() {
                continue;
            }
            let rows = self
                .db
                .query(accounts_query(with), &[&(app as i64), &wanted])?;
            for name in &wanted {
                self.account_ids.fill((app, name.to_string()), None);
            }
            let mut tag_ids = Vec::new();
            for row in rows {
                let name: String = row.get("name");
                let id = row.get::<_, i32>("id") as u32;
                if with.tags {
                    let tags = tags_of(&row, (app, id))?;
                    tag_ids.extend(tags.iter().flatten().copied());
                    self.account_tags.fill((app, id), tags);
                }
                if with.attrs {
                    let attrs = attrs_of(&row, (app, id))?;
                    self.account_attrs.fill((app, id), attrs);
                }
                self.account_ids
                    .values
                    .insert((app, name.clone()), Some(id));
                self.account_names.fill((app, id), Some(name));
            }
            self.prefetch_tag_ids(app, tag_ids.into_iter())?;
        }
        Ok(())
    }

    /// Fetches the tags of every prefetch hint so far, in one query per app.
    fn fetch_pending_tags(&mut self) -> Result<()> {
        for (app, tags) in std::mem::take(&mut self.pending.tags) {
            let wanted: Vec<&str> = tags
                .iter()
                .filter(|tag| !self.tags.contains(&(app, tag.to_string())))
                .map(String::as_str)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let rows = self.db.query(
                "SELECT t.id, t.name, t.accounts, t.kind FROM unnest($2::text[]) AS n(name) \
                 JOIN tags t ON t.app = $1 AND t.name = n.name",
                &[&(app as i64), &wanted],
            )?;
            for tag in &wanted {
                self.tags.fill((app, tag.to_string()), None);
            }
            for row in rows {
                let (name, entry) = tag_of(&row);
                self.tags.values.insert((app, name.clone()), Some(entry));
                self.tag_names.fill((app, entry.id), Some(name));
            }
        }
        Ok(())
    }

    /// Fetches the cursors of every prefetch hint so far, in one query per app.
    fn fetch_pending_cursors(&mut self) -> Result<()> {
        for (app, accounts) in std::mem::take(&mut self.pending.cursors) {
            let wanted: Vec<i32> = accounts
                .iter()
                .filter(|id| !self.cursors.contains(&(app, **id)))
                .map(|id| *id as i32)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let rows = self.db.query(
                "SELECT c.account, c.seq FROM unnest($2::int4[]) AS n(account) \
                 JOIN cursors c ON c.app = $1 AND c.account = n.account",
                &[&(app as i64), &wanted],
            )?;
            for id in &wanted {
                self.cursors.fill((app, *id as u32), None);
            }
            for row in rows {
                let account = row.get::<_, i32>("account") as u32;
                let seq = row.get::<_, i64>("seq") as u64;
                self.cursors.values.insert((app, account), Some(seq));
            }
        }
        Ok(())
    }

    /// Fills the tag caches with the tags of these ids not known yet.
    fn prefetch_tag_ids(&mut self, app: AppId, ids: impl Iterator<Item = u32>) -> Result<()> {
        let wanted: Vec<i32> = ids
            .filter(|id| !self.tag_names.contains(&(app, *id)))
            .map(|id| id as i32)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let rows = self.db.query(
            "SELECT t.id, t.name, t.accounts, t.kind FROM unnest($2::int4[]) AS n(id) \
             JOIN tags t ON t.app = $1 AND t.id = n.id",
            &[&(app as i64), &wanted],
        )?;
        for row in rows {
            self.fill_tag(app, &row);
        }
        Ok(())
    }

    fn fill_tag(&mut self, app: AppId, row: &Row) {
        let (name, entry) = tag_of(row);
        self.tag_names.fill((app, entry.id), Some(name.clone()));
        self.tags.fill((app, name), Some(entry));
    }

    /// Writes every changed record; the cache stays valid.
    pub fn flush(&mut self) -> Result<()> {
        let changes = self.changes()?;
        self.db.run(&changes)
    }

    /// The statements that write every changed record (deletes first, then upserts), sent
    /// together by the caller; the cache stays valid.
    pub fn changes(&mut self) -> Result<Pipeline> {
        let mut p = Pipeline::default();
        let (accounts, removed_accounts) = self.account_names.take_changed();
        self.account_ids.take_changed();
        // Tag rows are written from the entries by name; the changes by id only tell which
        // rows go away.
        let (_, removed_tags) = self.tag_names.take_changed();
        let tag_entries = std::mem::take(&mut self.tags.dirty);
        let (account_tags, untagged) = self.account_tags.take_changed();
        let (account_attrs, unattributed) = self.account_attrs.take_changed();
        delete_pairs(&mut p, "accounts", "id", &removed_accounts)?;
        delete_pairs(&mut p, "tags", "id", &removed_tags)?;
        delete_pairs(&mut p, "account_tags", "id", &untagged)?;
        delete_pairs(&mut p, "account_attrs", "id", &unattributed)?;
        upsert_apps(&mut p, self.apps.take_changed().0)?;
        insert_accounts(&mut p, accounts)?;
        let entries = tag_entries
            .iter()
            .filter_map(|key| Some((key.0, key.1.as_str(), self.tags.values.get(key)?.as_ref()?)));
        upsert_tags(&mut p, entries)?;
        upsert_account_tags(&mut p, account_tags)?;
        upsert_account_attrs(&mut p, account_attrs)?;
        write_schemas(&mut p, self.schemas.take_changed().0)?;
        upsert_push_states(&mut p, self.push_states.take_changed().0)?;
        upsert_msg_randoms(&mut p, self.msg_randoms.take_changed().0)?;
        let (tasks, removed_tasks) = self.tasks.take_changed();
        upsert_tasks(&mut p, tasks)?;
        upsert_task_bitmaps(&mut p, UPSERT_AUDIENCES, self.audiences.take_changed().0);
        upsert_deliveries(&mut p, self.delivered.take_changed().0)?;
        upsert_task_bitmaps(&mut p, UPSERT_CATCH_UPS, self.catch_ups.take_changed().0);
        upsert_cursors(&mut p, self.cursors.take_changed().0)?;
        let (callbacks, sent) = self.callbacks.take_changed();
        delete_callbacks(&mut p, &sent);
        upsert_callbacks(&mut p, callbacks);
        let (devices, removed) = self.devices.take_changed();
        delete_devices(&mut p, &removed);
        upsert_devices(&mut p, devices)?;
        upsert_dispatches(&mut p, self.dispatches.take_changed().0)?;
        upsert_device_sends(&mut p, self.device_sends.take_changed().0)?;
        // Last: nothing written above for a removed task survives.
        delete_tasks(&mut p, &removed_tasks);
        Ok(p)
    }

    fn has_changes(&self) -> bool {
        !(self.account_names.dirty.is_empty()
            && self.account_tags.dirty.is_empty()
            && self.account_attrs.dirty.is_empty()
            && self.apps.dirty.is_empty()
            && self.tags.dirty.is_empty()
            && self.tag_names.dirty.is_empty()
            && self.schemas.dirty.is_empty()
            && self.push_states.dirty.is_empty()
            && self.msg_randoms.dirty.is_empty()
            && self.tasks.dirty.is_empty()
            && self.audiences.dirty.is_empty()
            && self.delivered.dirty.is_empty()
            && self.catch_ups.dirty.is_empty()
            && self.cursors.dirty.is_empty()
            && self.callbacks.dirty.is_empty()
            && self.devices.dirty.is_empty()
            && self.dispatches.dirty.is_empty()
            && self.device_sends.dirty.is_empty())
    }

    /// Makes the database see this transaction's writes before a scan.
    fn flush_before_scan(&mut self) -> Result<()> {
        if self.has_changes() {
            self.flush()?;
        }
        Ok(())
    }
}

impl ReadTables for PgTables<'_> {
    fn prefetch_accounts(&mut self, app: AppId, names: &[String], with: With) -> Result<()> {
        let cached = &self.account_ids;
        let pending = self.pending.accounts.entry(app).or_default();
        for name in names
            .iter()
            .filter(|n| !cached.contains(&(app, n.to_string())))
        {
            let wanted = pending.entry(name.clone()).or_default();
            *wanted = wanted.and(with);
        }
        Ok(())
    }

    fn prefetch_tags(&mut self, app: AppId, tags: &[&str]) -> Result<()> {
        let cached = &self.tags;
        let wanted = tags
            .iter()
            .filter(|t| !cached.contains(&(app, t.to_string())));
        let pending = self.pending.tags.entry(app).or_default();
        pending.extend(wanted.map(|t| t.to_string()));
        Ok(())
    }

    fn prefetch_cursors(&mut self, app: AppId, accounts: &[AccountId]) -> Result<()> {
        let cached = &self.cursors;
        let wanted = accounts.iter().filter(|a| !cached.contains(&(app, **a)));
        self.pending.cursors.entry(app).or_default().extend(wanted);
        Ok(())
    }

    fn account_id(&mut self, app: AppId, name: &str) -> Result<Option<AccountId>> {
        self.fetch_pending_accounts()?;
        self.account_ids.row(
            (app, name.to_string()),
            self.db,
            "SELECT id FROM accounts WHERE app = $1 AND name = $2",
            &[&(app as i64), &name],
            |row| Ok(row.get::<_, i32>(0) as u32),
        )
    }

    fn account_name(&mut self, app: AppId, id: AccountId) -> Result<Option<String>> {
        self.fetch_pending_accounts()?;
        self.account_names.row(
            (app, id),
            self.db,
            "SELECT name FROM accounts WHERE app = $1 AND id = $2",
            &[&(app as i64), &(id as i32)],
            |row| Ok(row.get(0)),
        )
    }

    fn account_tag_ids(&mut self, app: AppId, id: AccountId) -> Result<Vec<u32>> {
        self.fetch_pending_accounts()?;
        let ids = self.account_tags.row(
            (app, id),
            self.db,
            "SELECT tag_ids FROM account_tags WHERE app = $1 AND id = $2",
            &[&(app as i64), &(id as i32)],
            |row| Ok(tags_of(row, (app, id))?.unwrap_or_default()),
        )?;
        Ok(ids.unwrap_or_default())
    }

    fn account_attrs(&mut self, app: AppId, id: AccountId) -> Result<BTreeMap<u8, String>> {
        self.fetch_pending_accounts()?;
        let attrs = self.account_attrs.row(
            (app, id),
            self.db,
            "SELECT attrs FROM account_attrs WHERE app = $1 AND id = $2",
            &[&(app as i64), &(id as i32)],
            |row| Ok(attrs_of(row, (app, id))?.unwrap_or_default()),
        )?;
        Ok(attrs.unwrap_or_default())
    }

    fn app_counters(&mut self, app: AppId) -> Result<AppCounters> {
        let counters = self.apps.row(
            app,
            self.db,
            "SELECT next_account, next_tag, live_tags FROM apps WHERE app = $1",
            &[&(app as i64)],
            |row| {
                Ok(AppCounters {
                    next_account: row.get::<_, i32>(0) as u32,
                    next_tag: row.get::<_, i32>(1) as u32,
                    live_tags: row.get::<_, i32>(2) as u32,
                })
            },
        )?;
        Ok(counters.unwrap_or_default())
    }

    fn tag(&mut self, app: AppId, name: &str) -> Result<Option<TagEntry>> {
        self.fetch_pending_tags()?;
        self.tags.row(
            (app, name.to_string()),
            self.db,
            "SELECT id, name, accounts, kind FROM tags WHERE app = $1 AND name = $2",
            &[&(app as i64), &name],
            |row| Ok(tag_of(row).1),
        )
    }

    fn tag_name(&mut self, app: AppId, id: u32) -> Result<Option<String>> {
        self.fetch_pending_accounts()?;
        self.tag_names.row(
            (app, id),
            self.db,
            "SELECT name FROM tags WHERE app = $1 AND id = $2",
            &[&(app as i64), &(id as i32)],
            |row| Ok(row.get(0)),
        )
    }

    fn attr_schema(&mut self, app: AppId) -> Result<AttrSchema> {
        let db = self.db;
        let schema = self.schemas.get(app, || {
            let rows = db.query(
                "SELECT slot, name, account_type FROM attr_names WHERE app = $1",
                &[&(app as i64)],
            )?;
            schema_of(app, &rows, 0).map(Some)
        })?;
        Ok(schema.unwrap_or_default())
    }

    fn push_state(&mut self, app: AppId) -> Result<PushState> {
        let state = self.push_states.row(
            app,
            self.db,
            "SELECT next_seq, day, today, last_ms FROM push_state WHERE app = $1",
            &[&(app as i64)],
            |row| {
                Ok(PushState {
                    next_seq: row.get::<_, i64>(0) as u64,
                    day: row.get::<_, i32>(1) as u32,
                    today: row.get::<_, i32>(2) as u32,
                    last_ms: row.get::<_, i64>(3) as u64,
                })
            },
        )?;
        Ok(state.unwrap_or_default())
    }

    fn msg_random(&mut self, app: AppId, msg_random: u32) -> Result<Option<SeenMsgRandom>> {
        self.msg_randoms.row(
            (app, msg_random),
            self.db,
            "SELECT seq, created_ms FROM msg_randoms WHERE app = $1 AND msg_random = $2",
            &[&(app as i64), &i64::from(msg_random)],
            |row| {
                Ok(SeenMsgRandom {
                    seq: row.get::<_, i64>(0) as u64,
                    created_ms: row.get::<_, i64>(1) as u64,
                })
            },
        )
    }

    fn task(&mut self, app: AppId, seq: u64) -> Result<Option<TaskMeta>> {
        self.tasks.row(
            (app, seq),
            self.db,
            "SELECT meta::text FROM tasks WHERE app = $1 AND seq = $2",
            &[&(app as i64), &(seq as i64)],
            |row| meta_of(row, (app, seq)),
        )
    }

    fn task_audience(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>> {
        self.audiences.row(
            (app, seq),
            self.db,
            "SELECT audience FROM task_audiences WHERE app = $1 AND seq = $2",
            &[&(app as i64), &(seq as i64)],
            |row| bitmap_of(row, "audience", "task audience", (app, seq)),
        )
    }

    fn tasks(&mut self, filter: TaskFilter) -> Result<Vec<(AppId, TaskMeta)>> {
        self.flush_before_scan()?;
        let rows = match filter {
            TaskFilter::CreatedBetween {
                app,
                start_ms,
                end_ms,
            } => self.db.query(
                "SELECT app, seq, meta::text FROM tasks \
                 WHERE app = $1 AND created_ms >= $2 AND created_ms < $3 ORDER BY seq",
                &[&(app as i64), &(start_ms as i64), &(end_ms as i64)],
            )?,
            TaskFilter::LiveAt { now_ms } => self.db.query(
                "SELECT app, seq, meta::text FROM tasks \
                 WHERE revoked_ms IS NULL AND expires_ms > $1 AND expires_ms > created_ms \
                 ORDER BY app, seq",
                &[&(now_ms as i64)],
            )?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let app = row.get::<_, i64>(0) as u64;
            let seq = row.get::<_, i64>(1) as u64;
            let meta = meta_of(&row, (app, seq))?;
            if filter.admits(app, &meta) {
                out.push((app, meta));
            }
        }
        Ok(out)
    }

    fn ended_tasks(&mut self, before_ms: u64, limit: usize) -> Result<Vec<(AppId, u64)>> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT app, seq FROM tasks t WHERE expires_ms < $1 AND NOT EXISTS \
             (SELECT 1 FROM dispatches d WHERE d.app = t.app AND d.seq = t.seq AND NOT finished) \
             ORDER BY app, seq LIMIT $2",
            &[&(before_ms as i64), &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
            .collect())
    }

    fn delivered(&mut self, app: AppId, seq: u64, second: u64) -> Result<Option<RoaringBitmap>> {
        let key = (app, seq, second);
        self.delivered.row(
            key,
            self.db,
            "SELECT accounts FROM task_deliveries WHERE app = $1 AND seq = $2 AND second = $3",
            &[&(app as i64), &(seq as i64), &(second as i64)],
            |row| bitmap_of(row, "accounts", "delivery record", key),
        )
    }

    fn deliveries(&mut self, app: AppId, seq: u64) -> Result<Vec<(u64, RoaringBitmap)>> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT second, accounts FROM task_deliveries WHERE app = $1 AND seq = $2 \
             ORDER BY second",
            &[&(app as i64), &(seq as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let second = row.get::<_, i64>(0) as u64;
                let accounts = bitmap_of(row, "accounts", "delivery record", (app, seq, second))?;
                Ok((second, accounts))
            })
            .collect()
    }

    fn callback(&mut self, app: AppId, id: u64) -> Result<Option<Callback>> {
        self.callbacks.row(
            (app, id),
            self.db,
            "SELECT app, id, body, attempts, next_attempt_ms FROM callback_outbox \
             WHERE app = $1 AND id = $2",
            &[&(app as i64), &(id as i64)],
            |row| Ok(callback_of(row)),
        )
    }

    fn callbacks_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<(AppId, u64, Callback)>> {
        self.flush_before_scan()?;
        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let rows = self.db.query(
            "SELECT app, id, body, attempts, next_attempt_ms FROM callback_outbox \
             WHERE next_attempt_ms <= $1 ORDER BY next_attempt_ms, app, id LIMIT $2",
            &[&now_ms, &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|row| {
                let (app, id) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
                (app, id, callback_of(row))
            })
            .collect())
    }

    fn callback_count(&mut self, app: AppId) -> Result<u64> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT count(*) FROM callback_outbox WHERE app = $1",
            &[&(app as i64)],
        )?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0) as u64))
    }

    fn device(&mut self, app: AppId, registration_id: &str) -> Result<Option<Device>> {
        let key = (app, registration_id.to_string());
        self.devices.row(
            key.clone(),
            self.db,
            "SELECT app, registration_id, device FROM devices \
             WHERE app = $1 AND registration_id = $2",
            &[&(app as i64), &registration_id],
            |row| device_of(row, 2, &key),
        )
    }

    fn account_devices(&mut self, app: AppId, account: AccountId) -> Result<Vec<String>> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT registration_id FROM devices WHERE app = $1 AND account = $2",
            &[&(app as i64), &(account as i32)],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn devices_of(&mut self, app: AppId, accounts: &[AccountId]) -> Result<Vec<Device>> {
        self.flush_before_scan()?;
        let accounts: Vec<i32> = accounts.iter().map(|a| *a as i32).collect();
        let rows = self.db.query(
            "SELECT app, registration_id, device FROM devices \
             WHERE app = $1 AND account = ANY($2)",
            &[&(app as i64), &accounts],
        )?;
        rows.iter()
            .map(|row| device_of(row, 2, &(app, row.get(1))))
            .collect()
    }

    fn device_owners(&mut self, app: AppId) -> Result<RoaringBitmap> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT DISTINCT account FROM devices WHERE app = $1",
            &[&(app as i64)],
        )?;
        Ok(rows.iter().map(|row| row.get::<_, i32>(0) as u32).collect())
    }

    fn each_device(&mut self, app: AppId, visit: &mut dyn FnMut(Device)) -> Result<()> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT app, registration_id, device FROM devices WHERE app = $1",
            &[&(app as i64)],
        )?;
        for row in &rows {
            visit(device_of(row, 2, &(app, row.get(1)))?);
        }
        Ok(())
    }

    fn dispatch(&mut self, app: AppId, seq: u64) -> Result<Option<Dispatch>> {
        self.dispatches.row(
            (app, seq),
            self.db,
            "SELECT dispatch FROM dispatches WHERE app = $1 AND seq = $2",
            &[&(app as i64), &(seq as i64)],
            |row| json_of(row, 0, "fan-out", (app, seq)),
        )
    }

    fn open_dispatches(&mut self) -> Result<Vec<(AppId, u64)>> {
        self.flush_before_scan()?;
        let rows = self.db.query(
            "SELECT app, seq FROM dispatches WHERE NOT finished ORDER BY app, seq",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
            .collect())
    }

    fn device_sends(
        &mut self,
        app: AppId,
        seq: u64,
        account: AccountId,
    ) -> Result<Option<Vec<DeviceSend>>> {
        self.device_sends.row(
            (app, seq, account),
            self.db,
            "SELECT sends FROM device_sends WHERE app = $1 AND seq = $2 AND account = $3",
            &[&(app as i64), &(seq as i64), &(account as i32)],
            |row| json_of(row, 0, "device sends", (app, seq, account)),
        )
    }

    fn sends_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<DueSends>> {
        self.flush_before_scan()?;
        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let rows = self.db.query(
            "SELECT app, seq, account, sends FROM device_sends \
             WHERE next_attempt_ms <= $1 ORDER BY next_attempt_ms LIMIT $2",
            &[&now_ms, &(limit as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let app = row.get::<_, i64>(0) as u64;
                let seq = row.get::<_, i64>(1) as u64;
                let account = row.get::<_, i32>(2) as u32;
                let sends = json_of(row, 3, "device sends", (app, seq, account))?;
                Ok(DueSends {
                    app,
                    seq,
                    account,
                    sends,
                })
            })
            .collect()
    }

    fn caught_up(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>> {
        self.catch_ups.row(
            (app, seq),
            self.db,
            "SELECT accounts FROM task_catch_ups WHERE app = $1 AND seq = $2",
            &[&(app as i64), &(seq as i64)],
            |row| bitmap_of(row, "accounts", "catch-up record", (app, seq)),
        )
    }

    fn cursor(&mut self, app: AppId, account: AccountId) -> Result<u64> {
        self.fetch_pending_cursors()?;
        let seq = self.cursors.row(
            (app, account),
            self.db,
            "SELECT seq FROM cursors WHERE app = $1 AND account = $2",
            &[&(app as i64), &(account as i32)],
            |row| Ok(row.get::<_, i64>(0) as u64),
        )?;
        Ok(seq.unwrap_or(0))
    }
}

impl Tables for PgTables<'_> {
    fn insert_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()> {
        self.account_ids.set((app, name.to_string()), Some(id));
        self.account_names.set((app, id), Some(name.to_string()));
        Ok(())
    }

    fn remove_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()> {
        self.account_ids.set((app, name.to_string()), None);
        self.account_names.set((app, id), None);
        Ok(())
    }

    fn set_account_tag_ids(&mut self, app: AppId, id: AccountId, ids: &[u32]) -> Result<()> {
        let value = (!ids.is_empty()).then(|| ids.to_vec());
        self.account_tags.set((app, id), value);
        Ok(())
    }

    fn set_account_attrs(
        &mut self,
        app: AppId,
        id: AccountId,
        values: &BTreeMap<u8, String>,
    ) -> Result<()> {
        let value = (!values.is_empty()).then(|| values.clone());
        self.account_attrs.set((app, id), value);
        Ok(())
    }

    fn set_app_counters(&mut self, app: AppId, counters: AppCounters) -> Result<()> {
        self.apps.set(app, Some(counters));
        Ok(())
    }

    fn put_tag(&mut self, app: AppId, name: &str, entry: TagEntry) -> Result<()> {
        self.tags.set((app, name.to_string()), Some(entry));
        self.tag_names.set((app, entry.id), Some(name.to_string()));
        Ok(())
    }

    fn remove_tag(&mut self, app: AppId, name: &str, id: u32) -> Result<()> {
        self.tags.set((app, name.to_string()), None);
        self.tag_names.set((app, id), None);
        Ok(())
    }

    fn set_attr_schema(&mut self, app: AppId, schema: &AttrSchema) -> Result<()> {
        self.schemas.set(app, Some(schema.clone()));
        Ok(())
    }

    fn set_push_state(&mut self, app: AppId, state: PushState) -> Result<()> {
        self.push_states.set(app, Some(state));
        Ok(())
    }

    fn set_msg_random(&mut self, app: AppId, msg_random: u32, seen: SeenMsgRandom) -> Result<()> {
        self.msg_randoms.set((app, msg_random), Some(seen));
        Ok(())
    }

    fn put_task(&mut self, app: AppId, meta: &TaskMeta) -> Result<()> {
        self.tasks.set((app, meta.seq), Some(meta.clone()));
        Ok(())
    }

    fn put_task_audience(&mut self, app: AppId, seq: u64, audience: &RoaringBitmap) -> Result<()> {
        self.audiences.set((app, seq), Some(audience.clone()));
        Ok(())
    }

    /// The task's rows go at the end of the commit (`delete_tasks`); until then this
    /// transaction reads none of its single-key records.
    fn remove_task(&mut self, app: AppId, seq: u64) -> Result<()> {
        self.tasks.set((app, seq), None);
        self.audiences.gone((app, seq));
        self.catch_ups.gone((app, seq));
        self.dispatches.gone((app, seq));
        self.delivered.forget(|&(a, s, _)| (a, s) == (app, seq));
        self.device_sends.forget(|&(a, s, _)| (a, s) == (app, seq));
        Ok(())
    }

    fn set_delivered(
        &mut self,
        app: AppId,
        seq: u64,
        second: u64,
        accounts: &RoaringBitmap,
    ) -> Result<()> {
        self.delivered
            .set((app, seq, second), Some(accounts.clone()));
        Ok(())
    }

    fn put_callback(&mut self, app: AppId, id: u64, callback: &Callback) -> Result<()> {
        self.callbacks.set((app, id), Some(callback.clone()));
        Ok(())
    }

    fn remove_callback(&mut self, app: AppId, id: u64) -> Result<()> {
        self.callbacks.set((app, id), None);
        Ok(())
    }

    fn put_device(&mut self, app: AppId, device: &Device) -> Result<()> {
        let key = (app, device.registration_id.clone());
        self.devices.set(key, Some(device.clone()));
        Ok(())
    }

    fn remove_device(&mut self, app: AppId, device: &Device) -> Result<()> {
        self.devices
            .set((app, device.registration_id.clone()), None);
        Ok(())
    }

    fn put_dispatch(&mut self, app: AppId, seq: u64, dispatch: &Dispatch) -> Result<()> {
        self.dispatches.set((app, seq), Some(dispatch.clone()));
        Ok(())
    }

    fn put_device_sends(
        &mut self,
        app: AppId,
        seq: u64,
        account: AccountId,
        sends: &[DeviceSend],
    ) -> Result<()> {
        self.device_sends
            .set((app, seq, account), Some(sends.to_vec()));
        Ok(())
    }

    fn set_caught_up(&mut self, app: AppId, seq: u64, accounts: &RoaringBitmap) -> Result<()> {
        self.catch_ups.set((app, seq), Some(accounts.clone()));
        Ok(())
    }

    fn set_cursor(&mut self, app: AppId, account: AccountId, seq: u64) -> Result<()> {
        self.cursors.set((app, account), Some(seq));
        Ok(())
    }
}

/// The `tag_ids` column (see the schema), None for a NULL (an account without tags in a join).
pub(crate) fn tags_of(row: &Row, key: (AppId, AccountId)) -> Result<Option<Vec<u32>>> {
    let bytes: Option<&[u8]> = row.get("tag_ids");
    bytes
        .map(|b| decode_tag_ids(b).map_err(|e| e.at("account tag list", key)))
        .transpose()
}

/// The `attrs` column (see the schema), None for a NULL (an account without attributes).
pub(crate) fn attrs_of(row: &Row, key: (AppId, AccountId)) -> Result<Option<BTreeMap<u8, String>>> {
    let bytes: Option<&[u8]> = row.get("attrs");
    bytes
        .map(|b| {
            let attrs = decode_attrs(b).map_err(|e| e.at("account attributes", key))?;
            Ok(attrs.into_iter().collect())
        })
        .transpose()
}

fn slot_of(slot: i16, what: &'static str, key: impl std::fmt::Debug) -> Result<u8> {
    match u8::try_from(slot) {
        Ok(slot) if (slot as usize) < ATTR_SLOTS => Ok(slot),
        _ => Err(StoreError::corrupt(
            what,
            key,
            format!(
                "attribute slot {slot} is not one of 0 to {}",
                ATTR_SLOTS - 1
            ),
        )),
    }
}

/// The schema in `rows` of (slot, name, account_type), from column `first` on.
pub(crate) fn schema_of(app: AppId, rows: &[Row], first: usize) -> Result<AttrSchema> {
    let mut schema = AttrSchema::default();
    for row in rows {
        let slot = slot_of(row.get(first), "attribute schema", app)?;
        let account_type = row.get::<_, i16>(first + 2) as u8;
        schema.slots[slot as usize] = Some(AttrSlot {
            name: row.get(first + 1),
            account_type,
        });
    }
    Ok(schema)
}

pub(crate) fn meta_of(row: &Row, key: (AppId, u64)) -> Result<TaskMeta> {
    let json: &str = row.get("meta");
    decode_meta(json.as_bytes()).map_err(|e| e.at("push task", key))
}

pub(crate) fn bitmap_of(
    row: &Row,
    column: &str,
    what: &'static str,
    key: impl std::fmt::Debug,
) -> Result<RoaringBitmap> {
    let bytes: &[u8] = row.get(column);
    decode_bitmap(bytes).map_err(|e| e.at(what, key))
}

/// The prefetch query of accounts (by name, `$2`, in app `$1`) with the records `with` says.
fn accounts_query(with: With) -> &'static str {
    match (with.tags, with.attrs) {
        (false, false) => {
            "SELECT a.name, a.id FROM unnest($2::text[]) AS n(name) \
             JOIN accounts a ON a.app = $1 AND a.name = n.name"
        }
        (true, false) => {
            "SELECT a.name, a.id, t.tag_ids FROM unnest($2::text[]) AS n(name) \
             JOIN accounts a ON a.app = $1 AND a.name = n.name \
             LEFT JOIN account_tags t ON t.app = a.app AND t.id = a.id"
        }
        (false, true) => {
            "SELECT a.name, a.id, x.attrs FROM unnest($2::text[]) AS n(name) \
             JOIN accounts a ON a.app = $1 AND a.name = n.name \
             LEFT JOIN account_attrs x ON x.app = a.app AND x.id = a.id"
        }
        (true, true) => {
            "SELECT a.name, a.id, t.tag_ids, x.attrs FROM unnest($2::text[]) AS n(name) \
             JOIN accounts a ON a.app = $1 AND a.name = n.name \
             LEFT JOIN account_tags t ON t.app = a.app AND t.id = a.id \
             LEFT JOIN account_attrs x ON x.app = a.app AND x.id = a.id"
        }
    }
}

/// The device in column `column` of `row`, stored as JSON text.
pub(crate) fn device_of(row: &Row, column: usize, key: &(AppId, String)) -> Result<Device> {
    let text: &str = row.get(column);
    decode_device(text.as_bytes()).map_err(|e| e.at("device", key))
}

/// A record stored as JSON text in column `column` of `row`.
pub(crate) fn json_of<T: serde::de::DeserializeOwned>(
    row: &Row,
    column: usize,
    what: &'static str,
    key: impl std::fmt::Debug,
) -> Result<T> {
    let text: &str = row.get(column);
    decode_json(what, text.as_bytes()).map_err(|e| e.at(what, key))
}

/// A callback batch from a row of `app, id, body, attempts, next_attempt_ms`.
pub(crate) fn callback_of(row: &Row) -> Callback {
    Callback {
        body: row.get(2),
        attempts: row.get::<_, i32>(3) as u32,
        next_attempt_ms: row.get::<_, i64>(4) as u64,
    }
}

fn apps_and_ids(keys: &[(AppId, AccountId)]) -> (Vec<i64>, Vec<i32>) {
    keys.iter()
        .map(|(app, id)| (*app as i64, *id as i32))
        .unzip()
}

fn delete_pairs(p: &mut Pipeline, table: &str, id: &str, keys: &[(AppId, u32)]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let (apps, ids) = apps_and_ids(keys);
    let sql = format!(
        "DELETE FROM {table} WHERE ({table}.app, {table}.{id}) IN \
         (SELECT * FROM unnest($1::int8[], $2::int4[]))"
    );
    p.push(sql, vec![Box::new(apps), Box::new(ids)]);
    Ok(())
}

fn upsert_apps(p: &mut Pipeline, rows: Vec<(AppId, AppCounters)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|(app, _)| *app as i64).collect();
    let accounts: Vec<i32> = rows.iter().map(|(_, c)| c.next_account as i32).collect();
    let tags: Vec<i32> = rows.iter().map(|(_, c)| c.next_tag as i32).collect();
    let live: Vec<i32> = rows.iter().map(|(_, c)| c.live_tags as i32).collect();
    p.push(
        "INSERT INTO apps (app, next_account, next_tag, live_tags) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::int4[]) \
         ON CONFLICT (app) DO UPDATE SET next_account = EXCLUDED.next_account, \
         next_tag = EXCLUDED.next_tag, live_tags = EXCLUDED.live_tags",
        vec![
            Box::new(apps),
            Box::new(accounts),
            Box::new(tags),
            Box::new(live),
        ],
    );
    Ok(())
}

fn insert_accounts(p: &mut Pipeline, rows: Vec<((AppId, AccountId), String)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<(AppId, AccountId)> = rows.iter().map(|(key, _)| *key).collect();
    let (apps, ids) = apps_and_ids(&keys);
    let names: Vec<String> = rows.into_iter().map(|(_, name)| name).collect();
    p.push(
        "INSERT INTO accounts (app, id, name) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[]) \
         ON CONFLICT (app, id) DO UPDATE SET name = EXCLUDED.name",
        vec![Box::new(apps), Box::new(ids), Box::new(names)],
    );
    Ok(())
}

/// A `tags` row (`id`, `name`, `accounts`, `kind`) as its name and entry.
pub(super) fn tag_of(row: &Row) -> (String, TagEntry) {
    let entry = TagEntry {
        id: row.get::<_, i32>("id") as u32,
        accounts: row.get::<_, i32>("accounts") as u32,
        kind: AccountKind::from_attr_type(row.get::<_, i16>("kind") as u8),
    };
    (row.get("name"), entry)
}

/// Tags created or whose account count changed, as (app, name, entry).
fn upsert_tags<'a>(
    p: &mut Pipeline,
    changed: impl Iterator<Item = (AppId, &'a str, &'a TagEntry)>,
) -> Result<()> {
    // Keyed by id: the primary key, and the order rows are locked in.
    let mut rows: BTreeMap<(AppId, u32), (&str, &TagEntry)> = BTreeMap::new();
    for (app, name, entry) in changed {
        rows.insert((app, entry.id), (name, entry));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<(AppId, u32)> = rows.keys().copied().collect();
    let (apps, ids) = apps_and_ids(&keys);
    let tag_names: Vec<String> = rows.values().map(|(name, _)| name.to_string()).collect();
    let accounts: Vec<i32> = rows.values().map(|(_, e)| e.accounts as i32).collect();
    let kinds: Vec<i16> = rows
        .values()
        .map(|(_, e)| i16::from(e.kind.attr_type()))
        .collect();
    // A tag's kind is set when it is created and never changes while it exists.
    p.push(
        "INSERT INTO tags (app, id, name, accounts, kind) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::int4[], $5::int2[]) \
         ON CONFLICT (app, id) DO UPDATE SET accounts = EXCLUDED.accounts",
        vec![
            Box::new(apps),
            Box::new(ids),
            Box::new(tag_names),
            Box::new(accounts),
            Box::new(kinds),
        ],
    );
    Ok(())
}

fn upsert_account_tags(p: &mut Pipeline, rows: Vec<((AppId, AccountId), Vec<u32>)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<(AppId, AccountId)> = rows.iter().map(|(key, _)| *key).collect();
    let (apps, ids) = apps_and_ids(&keys);
    let lists: Vec<Vec<u8>> = rows.iter().map(|(_, tags)| encode_tag_ids(tags)).collect();
    p.push(
        "INSERT INTO account_tags (app, id, tag_ids) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::bytea[]) \
         ON CONFLICT (app, id) DO UPDATE SET tag_ids = EXCLUDED.tag_ids",
        vec![Box::new(apps), Box::new(ids), Box::new(lists)],
    );
    Ok(())
}

fn upsert_account_attrs(
    p: &mut Pipeline,
    rows: Vec<((AppId, AccountId), BTreeMap<u8, String>)>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<(AppId, AccountId)> = rows.iter().map(|(key, _)| *key).collect();
    let (apps, ids) = apps_and_ids(&keys);
    let values: Vec<Vec<u8>> = rows
        .into_iter()
        .map(|(_, attrs)| encode_attrs(&attrs.into_iter().collect::<Vec<_>>()))
        .collect();
    p.push(
        "INSERT INTO account_attrs (app, id, attrs) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::bytea[]) \
         ON CONFLICT (app, id) DO UPDATE SET attrs = EXCLUDED.attrs",
        vec![Box::new(apps), Box::new(ids), Box::new(values)],
    );
    Ok(())
}

fn write_schemas(p: &mut Pipeline, rows: Vec<(AppId, AttrSchema)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|(app, _)| *app as i64).collect();
    p.push(
        "DELETE FROM attr_names WHERE app = ANY($1)",
        vec![Box::new(apps)],
    );
    let (mut slot_apps, mut slots, mut names, mut types) = (vec![], vec![], vec![], vec![]);
    for (app, schema) in &rows {
        for (slot, attr) in schema.named() {
            slot_apps.push(*app as i64);
            slots.push(i16::from(slot));
            names.push(attr.name.clone());
            types.push(i16::from(attr.account_type));
        }
    }
    p.push(
        "INSERT INTO attr_names (app, slot, name, account_type) \
         SELECT * FROM unnest($1::int8[], $2::int2[], $3::text[], $4::int2[])",
        vec![
            Box::new(slot_apps),
            Box::new(slots),
            Box::new(names),
            Box::new(types),
        ],
    );
    Ok(())
}

fn upsert_push_states(p: &mut Pipeline, rows: Vec<(AppId, PushState)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|(app, _)| *app as i64).collect();
    let seqs: Vec<i64> = rows.iter().map(|(_, s)| s.next_seq as i64).collect();
    let days: Vec<i32> = rows.iter().map(|(_, s)| s.day as i32).collect();
    let today: Vec<i32> = rows.iter().map(|(_, s)| s.today as i32).collect();
    let last: Vec<i64> = rows.iter().map(|(_, s)| s.last_ms as i64).collect();
    p.push(
        "INSERT INTO push_state (app, next_seq, day, today, last_ms) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::int4[], $5::int8[]) \
         ON CONFLICT (app) DO UPDATE SET next_seq = EXCLUDED.next_seq, day = EXCLUDED.day, \
         today = EXCLUDED.today, last_ms = EXCLUDED.last_ms",
        vec![
            Box::new(apps),
            Box::new(seqs),
            Box::new(days),
            Box::new(today),
            Box::new(last),
        ],
    );
    Ok(())
}

fn upsert_msg_randoms(p: &mut Pipeline, rows: Vec<((AppId, u32), SeenMsgRandom)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|((app, _), _)| *app as i64).collect();
    let randoms: Vec<i64> = rows.iter().map(|((_, r), _)| i64::from(*r)).collect();
    let seqs: Vec<i64> = rows.iter().map(|(_, s)| s.seq as i64).collect();
    let created: Vec<i64> = rows.iter().map(|(_, s)| s.created_ms as i64).collect();
    p.push(
        "INSERT INTO msg_randoms (app, msg_random, seq, created_ms) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[]) \
         ON CONFLICT (app, msg_random) DO UPDATE SET seq = EXCLUDED.seq, \
         created_ms = EXCLUDED.created_ms",
        vec![
            Box::new(apps),
            Box::new(randoms),
            Box::new(seqs),
            Box::new(created),
        ],
    );
    Ok(())
}

fn upsert_tasks(p: &mut Pipeline, rows: Vec<((AppId, u64), TaskMeta)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|((app, _), _)| *app as i64).collect();
    let seqs: Vec<i64> = rows.iter().map(|((_, seq), _)| *seq as i64).collect();
    let created: Vec<i64> = rows.iter().map(|(_, m)| m.created_ms as i64).collect();
    let expires: Vec<i64> = rows.iter().map(|(_, m)| m.expires_ms as i64).collect();
    let revoked: Vec<Option<i64>> = rows
        .iter()
        .map(|(_, m)| m.revoked_ms.map(|ms| ms as i64))
        .collect();
    let mut metas = Vec::with_capacity(rows.len());
    for (_, meta) in &rows {
        metas.push(String::from_utf8(encode_meta(meta)?).map_err(|e| {
            StoreError::Storage(format!("push task {} is not UTF-8: {e}", meta.task_id))
        })?);
    }
    p.push(
        "INSERT INTO tasks (app, seq, created_ms, expires_ms, revoked_ms, meta) \
         SELECT a, s, c, e, r, m::jsonb \
         FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::text[]) \
         AS u(a, s, c, e, r, m) \
         ON CONFLICT (app, seq) DO UPDATE SET revoked_ms = EXCLUDED.revoked_ms, \
         expires_ms = EXCLUDED.expires_ms, meta = EXCLUDED.meta",
        vec![
            Box::new(apps),
            Box::new(seqs),
            Box::new(created),
            Box::new(expires),
            Box::new(revoked),
            Box::new(metas),
        ],
    );
    Ok(())
}

const UPSERT_AUDIENCES: &str = "INSERT INTO task_audiences (app, seq, audience) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[]) \
     ON CONFLICT (app, seq) DO UPDATE SET audience = EXCLUDED.audience";
const UPSERT_CATCH_UPS: &str = "INSERT INTO task_catch_ups (app, seq, accounts) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[]) \
     ON CONFLICT (app, seq) DO UPDATE SET accounts = EXCLUDED.accounts";

/// Writes bitmaps keyed by task with `upsert`, which takes apps, sequences and bitmaps.
fn upsert_task_bitmaps(
    p: &mut Pipeline,
    upsert: &'static str,
    rows: Vec<((AppId, u64), RoaringBitmap)>,
) {
    if rows.is_empty() {
        return;
    }
    let apps: Vec<i64> = rows.iter().map(|((app, _), _)| *app as i64).collect();
    let seqs: Vec<i64> = rows.iter().map(|((_, seq), _)| *seq as i64).collect();
    let bitmaps: Vec<Vec<u8>> = rows.iter().map(|(_, b)| encode_bitmap(b)).collect();
    p.push(
        upsert,
        vec![Box::new(apps), Box::new(seqs), Box::new(bitmaps)],
    );
}

fn upsert_deliveries(
    p: &mut Pipeline,
    rows: Vec<((AppId, u64, u64), RoaringBitmap)>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|((app, ..), _)| *app as i64).collect();
    let seqs: Vec<i64> = rows.iter().map(|((_, seq, _), _)| *seq as i64).collect();
    let seconds: Vec<i64> = rows.iter().map(|((.., s), _)| *s as i64).collect();
    let bitmaps: Vec<Vec<u8>> = rows.iter().map(|(_, b)| encode_bitmap(b)).collect();
    p.push(
        "INSERT INTO task_deliveries (app, seq, second, accounts) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bytea[]) \
         ON CONFLICT (app, seq, second) DO UPDATE SET accounts = EXCLUDED.accounts",
        vec![
            Box::new(apps),
            Box::new(seqs),
            Box::new(seconds),
            Box::new(bitmaps),
        ],
    );
    Ok(())
}

fn upsert_cursors(p: &mut Pipeline, rows: Vec<((AppId, AccountId), u64)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<(AppId, AccountId)> = rows.iter().map(|(key, _)| *key).collect();
    let (apps, accounts) = apps_and_ids(&keys);
    let seqs: Vec<i64> = rows.iter().map(|(_, seq)| *seq as i64).collect();
    p.push(
        "INSERT INTO cursors (app, account, seq) \
         SELECT * FROM unnest($1::int8[], $2::int4[], $3::int8[]) \
         ON CONFLICT (app, account) DO UPDATE SET seq = EXCLUDED.seq",
        vec![Box::new(apps), Box::new(accounts), Box::new(seqs)],
    );
    Ok(())
}

/// Every table keyed by a task's `(app, seq)`, and so every record of a removed task.
const TASK_TABLES: [&str; 6] = [
    "tasks",
    "task_audiences",
    "task_deliveries",
    "task_catch_ups",
    "dispatches",
    "device_sends",
];

fn delete_tasks(p: &mut Pipeline, keys: &[(AppId, u64)]) {
    if keys.is_empty() {
        return;
    }
    let (apps, seqs): (Vec<i64>, Vec<i64>) = keys
        .iter()
        .map(|(app, seq)| (*app as i64, *seq as i64))
        .unzip();
    for table in TASK_TABLES {
        p.push(
            format!(
                "DELETE FROM {table} WHERE (app, seq) IN \
                 (SELECT * FROM unnest($1::int8[], $2::int8[]))"
            ),
            vec![Box::new(apps.clone()), Box::new(seqs.clone())],
        );
    }
}

fn delete_callbacks(p: &mut Pipeline, keys: &[(AppId, u64)]) {
    if keys.is_empty() {
        return;
    }
    let (apps, ids): (Vec<i64>, Vec<i64>) = keys
        .iter()
        .map(|(app, id)| (*app as i64, *id as i64))
        .unzip();
    p.push(
        "DELETE FROM callback_outbox WHERE (app, id) IN \
         (SELECT * FROM unnest($1::int8[], $2::int8[]))",
        vec![Box::new(apps), Box::new(ids)],
    );
}

fn upsert_callbacks(p: &mut Pipeline, rows: Vec<((AppId, u64), Callback)>) {
    if rows.is_empty() {
        return;
    }
    let apps: Vec<i64> = rows.iter().map(|((app, _), _)| *app as i64).collect();
    let ids: Vec<i64> = rows.iter().map(|((_, id), _)| *id as i64).collect();
    let attempts: Vec<i32> = rows.iter().map(|(_, c)| c.attempts as i32).collect();
    let next: Vec<i64> = rows
        .iter()
        .map(|(_, c)| i64::try_from(c.next_attempt_ms).unwrap_or(i64::MAX))
        .collect();
    let bodies: Vec<String> = rows.into_iter().map(|(_, c)| c.body).collect();
    p.push(
        "INSERT INTO callback_outbox (app, id, body, attempts, next_attempt_ms) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int4[], $5::int8[]) \
         ON CONFLICT (app, id) DO UPDATE SET attempts = EXCLUDED.attempts, \
         next_attempt_ms = EXCLUDED.next_attempt_ms",
        vec![
            Box::new(apps),
            Box::new(ids),
            Box::new(bodies),
            Box::new(attempts),
            Box::new(next),
        ],
    );
}

fn delete_devices(p: &mut Pipeline, keys: &[(AppId, String)]) {
    if keys.is_empty() {
        return;
    }
    let (apps, ids): (Vec<i64>, Vec<String>) = keys
        .iter()
        .map(|(app, id)| (*app as i64, id.clone()))
        .unzip();
    p.push(
        "DELETE FROM devices WHERE (app, registration_id) IN \
         (SELECT * FROM unnest($1::int8[], $2::text[]))",
        vec![Box::new(apps), Box::new(ids)],
    );
}

fn upsert_devices(p: &mut Pipeline, rows: Vec<((AppId, String), Device)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|((app, _), _)| *app as i64).collect();
    let accounts: Vec<i32> = rows.iter().map(|(_, d)| d.account as i32).collect();
    let devices = rows
        .iter()
        .map(|(_, d)| json_text("device", d))
        .collect::<Result<Vec<String>>>()?;
    let ids: Vec<String> = rows.into_iter().map(|((_, id), _)| id).collect();
    p.push(
        "INSERT INTO devices (app, registration_id, account, device) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::int4[], $4::text[]) \
         ON CONFLICT (app, registration_id) DO UPDATE SET account = EXCLUDED.account, \
         device = EXCLUDED.device",
        vec![
            Box::new(apps),
            Box::new(ids),
            Box::new(accounts),
            Box::new(devices),
        ],
    );
    Ok(())
}

fn json_text<T: serde::Serialize>(what: &str, value: &T) -> Result<String> {
    String::from_utf8(encode_json(what, value)?).map_err(|e| StoreError::Storage(e.to_string()))
}

fn upsert_dispatches(p: &mut Pipeline, rows: Vec<((AppId, u64), Dispatch)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|((app, _), _)| *app as i64).collect();
    let seqs: Vec<i64> = rows.iter().map(|((_, seq), _)| *seq as i64).collect();
    // The column says whether anything is left to do, for the index of open fan-outs.
    let finished: Vec<bool> = rows.iter().map(|(_, d)| !d.is_open()).collect();
    let dispatches = rows
        .iter()
        .map(|(_, d)| json_text("fan-out", d))
        .collect::<Result<Vec<String>>>()?;
    p.push(
        "INSERT INTO dispatches (app, seq, finished, dispatch) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::bool[], $4::text[]) \
         ON CONFLICT (app, seq) DO UPDATE SET finished = EXCLUDED.finished, \
         dispatch = EXCLUDED.dispatch",
        vec![
            Box::new(apps),
            Box::new(seqs),
            Box::new(finished),
            Box::new(dispatches),
        ],
    );
    Ok(())
}

fn upsert_device_sends(
    p: &mut Pipeline,
    rows: Vec<((AppId, u64, AccountId), Vec<DeviceSend>)>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let apps: Vec<i64> = rows.iter().map(|((app, ..), _)| *app as i64).collect();
    let seqs: Vec<i64> = rows.iter().map(|((_, seq, _), _)| *seq as i64).collect();
    let accounts: Vec<i32> = rows.iter().map(|((.., a), _)| *a as i32).collect();
    let due: Vec<Option<i64>> = rows
        .iter()
        .map(|(_, sends)| next_due(sends).map(|at| i64::try_from(at).unwrap_or(i64::MAX)))
        .collect();
    let sends = rows
        .iter()
        .map(|(_, sends)| json_text("device sends", sends))
        .collect::<Result<Vec<String>>>()?;
    p.push(
        "INSERT INTO device_sends (app, seq, account, sends, next_attempt_ms) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::text[], $5::int8[]) \
         ON CONFLICT (app, seq, account) DO UPDATE SET sends = EXCLUDED.sends, \
         next_attempt_ms = EXCLUDED.next_attempt_ms",
        vec![
            Box::new(apps),
            Box::new(seqs),
            Box::new(accounts),
            Box::new(sends),
            Box::new(due),
        ],
    );
    Ok(())
}
