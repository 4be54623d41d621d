//! The seam between the store's logic and its engines.
//!
//! Everything the store decides (dense account ids, tag bookkeeping and limits, attribute
//! merges, push quota and MsgRandom idempotency, delivery records) is written once, in `ops`,
//! against these traits. An engine (redb, PostgreSQL) only keeps records: it reads and writes
//! them inside one transaction, and scans them for the audience index and the task lists.
//!
//! Methods take `&mut self` so that an engine may cache what it read and buffer what it writes
//! until its commit (PostgreSQL does: a batch costs a few round trips, not one per record).

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::fanout::{DeviceSend, Dispatch, DueSends};
use crate::{AccountId, AccountKind, AppId, AttrSchema, Device, StoreError, TaskMeta};

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Per app: the next ids to hand out and the number of distinct tags in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AppCounters {
    pub next_account: u32,
    pub next_tag: u32,
    pub live_tags: u32,
}

/// A tag in use: its id, how many accounts have it, and the kind of account it is for (that of
/// the account that first had it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagEntry {
    pub id: u32,
    pub accounts: u32,
    pub kind: AccountKind,
}

/// Per app: the next task sequence number and the day's push count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PushState {
    pub next_seq: u64,
    /// Day number (UTC) that `today` counts.
    pub day: u32,
    pub today: u32,
    /// When the last push counted against the quota was made (ms), 0 if none.
    pub last_ms: u64,
}

impl Default for PushState {
    fn default() -> Self {
        Self {
            next_seq: 1,
            day: 0,
            today: 0,
            last_ms: 0,
        }
    }
}

/// The task a MsgRandom last made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeenMsgRandom {
    pub seq: u64,
    pub created_ms: u64,
}

/// A batch of callback events waiting in the outbox (see `outbox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The request body, as the server wrote it.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it may be sent (again), in ms.
    pub next_attempt_ms: u64,
}

/// Which of an account's records a prefetch brings besides its id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct With {
    pub tags: bool,
    pub attrs: bool,
}

impl With {
    pub const ID: With = With {
        tags: false,
        attrs: false,
    };
    pub const TAGS: With = With {
        tags: true,
        attrs: false,
    };
    pub const ATTRS: With = With {
        tags: false,
        attrs: true,
    };
    pub const ALL: With = With {
        tags: true,
        attrs: true,
    };

    pub fn and(self, other: With) -> With {
        With {
            tags: self.tags || other.tags,
            attrs: self.attrs || other.attrs,
        }
    }
}

/// Which tasks a scan returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskFilter {
    /// One app's tasks created in `[start_ms, end_ms)`.
    CreatedBetween {
        app: AppId,
        start_ms: u64,
        end_ms: u64,
    },
    /// Every app's tasks an offline account may still receive at `now_ms`: stored for offline,
    /// not expired, not revoked.
    LiveAt { now_ms: u64 },
}

impl TaskFilter {
    pub fn admits(&self, app: AppId, meta: &TaskMeta) -> bool {
        match *self {
            TaskFilter::CreatedBetween {
                app: wanted,
                start_ms,
                end_ms,
            } => app == wanted && (start_ms..end_ms).contains(&meta.created_ms),
            TaskFilter::LiveAt { now_ms } => {
                meta.stored_for_offline() && meta.expires_ms > now_ms && meta.revoked_ms.is_none()
            }
        }
    }
}

/// Reading records, in one consistent snapshot (or inside a write transaction, seeing its own
/// writes).
pub(crate) trait ReadTables {
    /// A hint that the named accounts' ids, and the records `with` says, are about to be read,
    /// so an engine can fetch them together. Reading without it is correct, only slower.
    fn prefetch_accounts(&mut self, _app: AppId, _names: &[String], _with: With) -> Result<()> {
        Ok(())
    }
    /// A hint that these tags' entries are about to be read.
    fn prefetch_tags(&mut self, _app: AppId, _tags: &[&str]) -> Result<()> {
        Ok(())
    }
    /// A hint that these accounts' delivery cursors are about to be read.
    fn prefetch_cursors(&mut self, _app: AppId, _accounts: &[AccountId]) -> Result<()> {
        Ok(())
    }

    fn account_id(&mut self, app: AppId, name: &str) -> Result<Option<AccountId>>;
    fn account_name(&mut self, app: AppId, id: AccountId) -> Result<Option<String>>;
    /// The account's tag ids in the order added; empty when it has none.
    fn account_tag_ids(&mut self, app: AppId, id: AccountId) -> Result<Vec<u32>>;
    /// The account's attribute values by slot; empty when it has none.
    fn account_attrs(&mut self, app: AppId, id: AccountId) -> Result<BTreeMap<u8, String>>;
    fn app_counters(&mut self, app: AppId) -> Result<AppCounters>;
    fn tag(&mut self, app: AppId, name: &str) -> Result<Option<TagEntry>>;
    fn tag_name(&mut self, app: AppId, id: u32) -> Result<Option<String>>;
    fn attr_schema(&mut self, app: AppId) -> Result<AttrSchema>;

    fn push_state(&mut self, app: AppId) -> Result<PushState>;
    fn msg_random(&mut self, app: AppId, msg_random: u32) -> Result<Option<SeenMsgRandom>>;
    fn task(&mut self, app: AppId, seq: u64) -> Result<Option<TaskMeta>>;
    fn task_audience(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>>;
    /// Tasks `filter` admits, by app then sequence number.
    fn tasks(&mut self, filter: TaskFilter) -> Result<Vec<(AppId, TaskMeta)>>;
    /// Up to `limit` tasks whose lifetime ended before `before_ms` and whose fan-out to
    /// devices, if any, is finished, by app then sequence number.
    fn ended_tasks(&mut self, before_ms: u64, limit: usize) -> Result<Vec<(AppId, u64)>>;
    /// Accounts the task reached during `second`.
    fn delivered(&mut self, app: AppId, seq: u64, second: u64) -> Result<Option<RoaringBitmap>>;
    /// Every second's deliveries of a task, oldest first.
    fn deliveries(&mut self, app: AppId, seq: u64) -> Result<Vec<(u64, RoaringBitmap)>>;
    /// The accounts the task reached from their backlog when they connected.
    fn caught_up(&mut self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>>;
    /// Sequence number of the last task delivered to the account; 0 if none.
    fn cursor(&mut self, app: AppId, account: AccountId) -> Result<u64>;

    fn callback(&mut self, app: AppId, id: u64) -> Result<Option<Callback>>;
    /// Up to `limit` callback batches due at `now_ms`, the longest due first.
    fn callbacks_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<(AppId, u64, Callback)>>;
    /// How many callback batches of `app` wait.
    fn callback_count(&mut self, app: AppId) -> Result<u64>;

    fn device(&mut self, app: AppId, registration_id: &str) -> Result<Option<Device>>;
    /// The RegistrationIDs of the account's devices, in no particular order.
    fn account_devices(&mut self, app: AppId, account: AccountId) -> Result<Vec<String>>;
    /// The devices of `accounts`.
    fn devices_of(&mut self, app: AppId, accounts: &[AccountId]) -> Result<Vec<Device>> {
        let mut devices = Vec::new();
        for account in accounts {
            for id in self.account_devices(app, *account)? {
                devices.extend(self.device(app, &id)?);
            }
        }
        Ok(devices)
    }
    /// The accounts that have a device.
    fn device_owners(&mut self, app: AppId) -> Result<RoaringBitmap>;
    /// Calls `visit` with each device of `app`, in no particular order.
    fn each_device(&mut self, app: AppId, visit: &mut dyn FnMut(Device)) -> Result<()>;

    fn dispatch(&mut self, app: AppId, seq: u64) -> Result<Option<Dispatch>>;
    /// The fan-outs not finished.
    fn open_dispatches(&mut self) -> Result<Vec<(AppId, u64)>>;
    fn device_sends(
        &mut self,
        app: AppId,
        seq: u64,
        account: AccountId,
    ) -> Result<Option<Vec<DeviceSend>>>;
    /// Up to `limit` accounts' sends with a retry due at `now_ms`, the longest due first.
    fn sends_due(&mut self, now_ms: u64, limit: usize) -> Result<Vec<DueSends>>;
}

/// Writing records inside a write transaction; nothing is stored unless it commits.
pub(crate) trait Tables: ReadTables {
    fn insert_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()>;
    fn remove_account(&mut self, app: AppId, id: AccountId, name: &str) -> Result<()>;
    /// Empty `ids` removes the record.
    fn set_account_tag_ids(&mut self, app: AppId, id: AccountId, ids: &[u32]) -> Result<()>;
    /// Empty `values` removes the record.
    fn set_account_attrs(
        &mut self,
        app: AppId,
        id: AccountId,
        values: &BTreeMap<u8, String>,
    ) -> Result<()>;
    fn set_app_counters(&mut self, app: AppId, counters: AppCounters) -> Result<()>;
    /// Creates or updates a tag entry (its id never changes while it exists).
    fn put_tag(&mut self, app: AppId, name: &str, entry: TagEntry) -> Result<()>;
    fn remove_tag(&mut self, app: AppId, name: &str, id: u32) -> Result<()>;
    fn set_attr_schema(&mut self, app: AppId, schema: &AttrSchema) -> Result<()>;

    fn set_push_state(&mut self, app: AppId, state: PushState) -> Result<()>;
    fn set_msg_random(&mut self, app: AppId, msg_random: u32, seen: SeenMsgRandom) -> Result<()>;
    fn put_task(&mut self, app: AppId, meta: &TaskMeta) -> Result<()>;
    fn put_task_audience(&mut self, app: AppId, seq: u64, audience: &RoaringBitmap) -> Result<()>;
    /// Removes the task with its audience, deliveries, catch-ups, fan-out and device sends.
    fn remove_task(&mut self, app: AppId, seq: u64) -> Result<()>;
    fn set_delivered(
        &mut self,
        app: AppId,
        seq: u64,
        second: u64,
        accounts: &RoaringBitmap,
    ) -> Result<()>;
    fn set_caught_up(&mut self, app: AppId, seq: u64, accounts: &RoaringBitmap) -> Result<()>;
    fn set_cursor(&mut self, app: AppId, account: AccountId, seq: u64) -> Result<()>;
    fn put_callback(&mut self, app: AppId, id: u64, callback: &Callback) -> Result<()>;
    fn remove_callback(&mut self, app: AppId, id: u64) -> Result<()>;
    /// Creates or replaces the device (it is found by its account as well as by its id).
    fn put_device(&mut self, app: AppId, device: &Device) -> Result<()>;
    fn remove_device(&mut self, app: AppId, device: &Device) -> Result<()>;
    /// Creates or updates a fan-out (it is found among the open ones until finished).
    fn put_dispatch(&mut self, app: AppId, seq: u64, dispatch: &Dispatch) -> Result<()>;
    /// Replaces an account's sends of a task (found by `sends_due` while one is retrying).
    fn put_device_sends(
        &mut self,
        app: AppId,
        seq: u64,
        account: AccountId,
        sends: &[DeviceSend],
    ) -> Result<()>;
}
