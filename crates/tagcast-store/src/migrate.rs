//! Copying every record of one store into another, empty one (`tagcast migrate`): the way up
//! from the embedded store to PostgreSQL. Ids, counters and tasks are copied as they are, so
//! account ids stay dense and are never reused, TaskIds keep resolving, and the target's
//! audience index, built from its records when it is served, equals the source's.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::engine::Engine;
use crate::fanout::{DeviceSend, Dispatch};
use crate::tables::{AppCounters, Callback, PushState, Result, SeenMsgRandom, Tables, TagEntry};
use crate::{AccountId, AppId, AttrSchema, Device, Location, StoreError, StoreOptions, TaskMeta};

/// One record of a store, as an engine dumps it.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    App(AppId, AppCounters),
    Account(AppId, AccountId, String),
    AccountTags(AppId, AccountId, Vec<u32>),
    AccountAttrs(AppId, AccountId, BTreeMap<u8, String>),
    Tag(AppId, String, TagEntry),
    Schema(AppId, Box<AttrSchema>),
    PushState(AppId, PushState),
    MsgRandom(AppId, u32, SeenMsgRandom),
    Task(AppId, Box<TaskMeta>),
    Audience(AppId, u64, RoaringBitmap),
    CaughtUp(AppId, u64, RoaringBitmap),
    Delivered(AppId, u64, u64, RoaringBitmap),
    Cursor(AppId, AccountId, u64),
    Callback(AppId, u64, Callback),
    Device(AppId, Box<Device>),
    Dispatch(AppId, u64, Box<Dispatch>),
    DeviceSends(AppId, u64, AccountId, Vec<DeviceSend>),
}

/// How many records of each kind a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub apps: u64,
    pub accounts: u64,
    pub tagged_accounts: u64,
    pub accounts_with_attrs: u64,
    pub tags: u64,
    pub attr_schemas: u64,
    pub push_states: u64,
    pub msg_randoms: u64,
    pub tasks: u64,
    pub audiences: u64,
    pub deliveries: u64,
    pub cursors: u64,
    pub callbacks: u64,
    pub devices: u64,
    pub dispatches: u64,
    pub device_sends: u64,
    pub catch_ups: u64,
}

impl RecordCounts {
    pub fn total(&self) -> u64 {
        self.rows().iter().map(|(_, n)| n).sum()
    }

    /// Each kind with its count, for reports.
    pub fn rows(&self) -> [(&'static str, u64); 17] {
        [
            ("apps", self.apps),
            ("accounts", self.accounts),
            ("accounts with tags", self.tagged_accounts),
            ("accounts with attributes", self.accounts_with_attrs),
            ("tags", self.tags),
            ("attribute name sets", self.attr_schemas),
            ("push counters", self.push_states),
            ("MsgRandoms", self.msg_randoms),
            ("push tasks", self.tasks),
            ("task audiences", self.audiences),
            ("delivery records", self.deliveries),
            ("catch-up records", self.catch_ups),
            ("delivery cursors", self.cursors),
            ("callback batches waiting", self.callbacks),
            ("devices", self.devices),
            ("device fan-outs", self.dispatches),
            ("accounts' device sends", self.device_sends),
        ]
    }
}

/// Records written per transaction of the target.
const CHUNK: usize = 5_000;

/// What `migrate` did: the counts read from the source and found in the target afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub source: RecordCounts,
    pub target: RecordCounts,
}

/// Copies the store at `from` into the empty store at `to`, calling `progress(done, total)` as
/// records are written, then verifies the target holds as many records of each kind as the
/// source. Blocks: call it off the runtime's workers (the PostgreSQL side needs the runtime).
pub fn migrate(
    from: &Location,
    to: &Location,
    mut progress: impl FnMut(u64, u64),
) -> Result<Migrated> {
    let source = open_engine(from)?;
    let target = open_engine(to)?;
    let counts = source.counts()?;
    let already = target.counts()?;
    if already.total() > 0 {
        return Err(StoreError::Options(format!(
            "the target already holds tagcast data ({} accounts, {} push tasks); migrate \
             into an empty database",
            already.accounts, already.tasks
        )));
    }
    let total = counts.total();
    let mut done = 0;
    let mut chunk = Vec::with_capacity(CHUNK);
    source.dump(&mut |record| {
        chunk.push(record);
        if chunk.len() == CHUNK {
            done += write_chunk(&*target, &mut chunk)?;
            progress(done, total);
        }
        Ok(())
    })?;
    done += write_chunk(&*target, &mut chunk)?;
    progress(done, total);
    let copied = target.counts()?;
    if copied != counts {
        return Err(StoreError::NotCommitted(format!(
            "the copy does not match its source: read {counts:?}, found {copied:?}"
        )));
    }
    Ok(Migrated {
        source: counts,
        target: copied,
    })
}

fn open_engine(location: &Location) -> Result<Box<dyn Engine>> {
    let options = StoreOptions::default();
    Ok(match location {
        Location::Embedded(dir) => Box::new(crate::redb::RedbEngine::open(dir, &options)?),
        Location::Postgres(url) => Box::new(crate::postgres::PgEngine::connect(url, &options)?),
    })
}

fn write_chunk(target: &dyn Engine, chunk: &mut Vec<Record>) -> Result<u64> {
    if chunk.is_empty() {
        return Ok(0);
    }
    let records = std::mem::take(chunk);
    let written = records.len() as u64;
    let mut records = Some(records);
    target
        .write(&mut |tables, _changes| {
            for record in records.take().into_iter().flatten() {
                write_record(tables, record)?;
            }
            Ok(())
        })
        .map_err(|failed| failed.error)?;
    Ok(written)
}

fn write_record(t: &mut dyn Tables, record: Record) -> Result<()> {
    match record {
        Record::App(app, counters) => t.set_app_counters(app, counters),
        Record::Account(app, id, name) => t.insert_account(app, id, &name),
        Record::AccountTags(app, id, ids) => t.set_account_tag_ids(app, id, &ids),
        Record::AccountAttrs(app, id, attrs) => t.set_account_attrs(app, id, &attrs),
        Record::Tag(app, name, entry) => t.put_tag(app, &name, entry),
        Record::Schema(app, schema) => t.set_attr_schema(app, &schema),
        Record::PushState(app, state) => t.set_push_state(app, state),
        Record::MsgRandom(app, random, seen) => t.set_msg_random(app, random, seen),
        Record::Task(app, meta) => t.put_task(app, &meta),
        Record::Audience(app, seq, audience) => t.put_task_audience(app, seq, &audience),
        Record::Delivered(app, seq, second, accounts) => {
            t.set_delivered(app, seq, second, &accounts)
        }
        Record::CaughtUp(app, seq, accounts) => t.set_caught_up(app, seq, &accounts),
        Record::Cursor(app, account, seq) => t.set_cursor(app, account, seq),
        Record::Callback(app, id, callback) => t.put_callback(app, id, &callback),
        Record::Device(app, device) => t.put_device(app, &device),
        Record::Dispatch(app, seq, dispatch) => t.put_dispatch(app, seq, &dispatch),
        Record::DeviceSends(app, seq, account, sends) => {
            t.put_device_sends(app, seq, account, &sends)
        }
    }
}
