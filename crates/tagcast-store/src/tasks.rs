//! Push tasks: each push is stored once, with its frozen audience as a roaring bitmap, never
//! once per recipient. Also the push quota, MsgRandom idempotency, delivery records and the
//! per-account delivery cursor.

use redb::{ReadableTable, WriteTransaction};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::codec::{decode_bitmap, decode_meta, encode_bitmap, encode_meta};
use crate::schema::{CURSORS, MSG_RANDOMS, PUSH_STATE, TASK_AUDIENCES, TASK_DELIVERIES, TASKS};
use crate::writer::WriteCtx;
use crate::{AccountId, AppId, Store, StoreError};

const DAY_MS: u64 = 86_400_000;

/// How a task chose its audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    All,
    Tag,
    Attr,
    /// tagcast's nested boolean audience extension.
    Expression,
    /// `timpush/batch`: listed accounts.
    Batch,
}

/// A stored push task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    pub task_id: String,
    pub seq: u64,
    pub kind: TaskKind,
    pub from_account: String,
    pub msg_random: u32,
    /// The JSON object clients receive (MsgBody, OfflinePushInfo, ...), serialized once.
    pub content: String,
    pub created_ms: u64,
    /// Until when an account that was offline still gets it; equal to `created_ms` for an
    /// online-only push.
    pub expires_ms: u64,
    pub data_id: Option<String>,
    pub has_offline_push_info: bool,
    pub revoked_ms: Option<u64>,
    pub audience_size: u64,
}

impl TaskMeta {
    pub fn stored_for_offline(&self) -> bool {
        self.expires_ms > self.created_ms
    }
}

/// A push to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: TaskKind,
    pub from_account: String,
    pub msg_random: u32,
    pub content: String,
    /// 0 = online only.
    pub lifetime_secs: u64,
    pub data_id: Option<String>,
    pub has_offline_push_info: bool,
    pub audience: RoaringBitmap,
}

/// The rules a push is created under, and how its TaskId is written.
#[derive(Debug, Clone, Copy)]
pub struct PushPolicy {
    /// Pushes per UTC day counted against the quota; None for pushes outside the quota.
    pub daily_quota: Option<u32>,
    /// Least time between two counted pushes.
    pub min_interval_ms: u64,
    /// A MsgRandom seen within this window returns the earlier task.
    pub dedupe_window_ms: u64,
    pub task_id: TaskIdFormat,
}

/// What `create_task` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(TaskMeta),
    /// Same MsgRandom within the window: the earlier task, nothing new pushed.
    Duplicate(TaskMeta),
    DailyQuotaExceeded {
        quota: u32,
    },
    TooFrequent {
        min_interval_ms: u64,
    },
}

/// What `revoke_task` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    NotFound,
    AlreadyRevoked,
    Done(TaskMeta),
}

/// Accounts a task reached during one second.
#[derive(Debug, Clone, PartialEq)]
pub struct Deliveries {
    pub app: AppId,
    pub seq: u64,
    pub second: u64,
    pub accounts: RoaringBitmap,
}

/// What a new task's TaskId is made of. The server decides how a TaskId is written and read;
/// the store only keeps the one it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskIdParts {
    pub batch: bool,
    pub created_ms: u64,
    pub app: AppId,
    pub seq: u64,
    pub msg_random: u32,
}

/// Writes a TaskId from its parts.
pub type TaskIdFormat = fn(&TaskIdParts) -> String;

impl Store {
    /// Creates a push task, unless its MsgRandom was seen within the window (the earlier task is
    /// returned) or the quota refuses it. Atomic: quota, idempotency and task are one write.
    pub async fn create_task(
        &self,
        app: AppId,
        task: NewTask,
        policy: PushPolicy,
        now_ms: u64,
    ) -> Result<Created, StoreError> {
        self.writer
            .write("create_task", move |ctx| {
                create_task(ctx, app, task, policy, now_ms)
            })
            .await
    }

    /// Marks a task revoked.
    pub async fn revoke_task(
        &self,
        app: AppId,
        seq: u64,
        now_ms: u64,
    ) -> Result<Revoked, StoreError> {
        self.writer
            .write("revoke_task", move |ctx| {
                let Some(mut meta) = read_meta(ctx.txn, app, seq)? else {
                    return Ok(Revoked::NotFound);
                };
                if meta.revoked_ms.is_some() {
                    return Ok(Revoked::AlreadyRevoked);
                }
                meta.revoked_ms = Some(now_ms);
                write_meta(ctx.txn, app, &meta)?;
                Ok(Revoked::Done(meta))
            })
            .await
    }

    /// Records deliveries and advances each listed account's cursor.
    pub async fn record_deliveries(
        &self,
        deliveries: Vec<Deliveries>,
        cursors: Vec<(AppId, AccountId, u64)>,
    ) -> Result<(), StoreError> {
        self.writer
            .write("record_deliveries", move |ctx| {
                let mut table = ctx.txn.open_table(TASK_DELIVERIES)?;
                for d in deliveries {
                    let key = (d.app, d.seq, d.second);
                    let mut accounts = match table.get(key)? {
                        Some(g) => delivered_in(g.value(), key)?,
                        None => RoaringBitmap::new(),
                    };
                    accounts |= d.accounts;
                    table.insert(key, encode_bitmap(&accounts).as_slice())?;
                }
                let mut table = ctx.txn.open_table(CURSORS)?;
                for (app, account, seq) in cursors {
                    let current = table.get((app, account))?.map_or(0, |g| g.value());
                    table.insert((app, account), current.max(seq))?;
                }
                Ok(())
            })
            .await
    }

    pub async fn task(&self, app: AppId, seq: u64) -> Result<Option<TaskMeta>, StoreError> {
        self.read("task", move |txn| {
            let table = txn.open_table(TASKS)?;
            match table.get((app, seq))? {
                Some(g) => Ok(Some(meta_in(g.value(), (app, seq))?)),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn task_audience(
        &self,
        app: AppId,
        seq: u64,
    ) -> Result<Option<RoaringBitmap>, StoreError> {
        self.read("task_audience", move |txn| {
            let table = txn.open_table(TASK_AUDIENCES)?;
            match table.get((app, seq))? {
                Some(g) => Ok(Some(audience_in(g.value(), (app, seq))?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Tasks of `app` created in `[start_ms, end_ms)`, oldest first.
    pub async fn tasks_created_between(
        &self,
        app: AppId,
        start_ms: u64,
        end_ms: u64,
    ) -> Result<Vec<TaskMeta>, StoreError> {
        self.read("tasks_created_between", move |txn| {
            let table = txn.open_table(TASKS)?;
            let mut out = Vec::new();
            for entry in table.range((app, 0)..=(app, u64::MAX))? {
                let (key, value) = entry?;
                let meta = meta_in(value.value(), key.value())?;
                if (start_ms..end_ms).contains(&meta.created_ms) {
                    out.push(meta);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Every app's tasks an offline account may still receive: stored for offline, not expired,
    /// not revoked; with their audiences. Oldest first within each app.
    pub async fn live_tasks(
        &self,
        now_ms: u64,
    ) -> Result<Vec<(AppId, TaskMeta, RoaringBitmap)>, StoreError> {
        self.read("live_tasks", move |txn| {
            let tasks = txn.open_table(TASKS)?;
            let audiences = txn.open_table(TASK_AUDIENCES)?;
            let mut out = Vec::new();
            for entry in tasks.iter()? {
                let (key, value) = entry?;
                let meta = meta_in(value.value(), key.value())?;
                if !meta.stored_for_offline()
                    || meta.expires_ms <= now_ms
                    || meta.revoked_ms.is_some()
                {
                    continue;
                }
                let audience = match audiences.get(key.value())? {
                    Some(g) => audience_in(g.value(), key.value())?,
                    None => {
                        return Err(StoreError::corrupt(
                            "task audience",
                            key.value(),
                            "the task has no stored audience",
                        ));
                    }
                };
                out.push((key.value().0, meta, audience));
            }
            Ok(out)
        })
        .await
    }

    /// The sequence number of the last task delivered to the account (0 = none).
    pub async fn cursor(&self, app: AppId, account: AccountId) -> Result<u64, StoreError> {
        self.read("cursor", move |txn| {
            let table = txn.open_table(CURSORS)?;
            Ok(table.get((app, account))?.map_or(0, |g| g.value()))
        })
        .await
    }

    /// The recorded deliveries of a task, by second.
    pub async fn deliveries(
        &self,
        app: AppId,
        seq: u64,
    ) -> Result<Vec<(u64, RoaringBitmap)>, StoreError> {
        self.read("deliveries", move |txn| {
            let table = txn.open_table(TASK_DELIVERIES)?;
            let mut out = Vec::new();
            for entry in table.range((app, seq, 0)..=(app, seq, u64::MAX))? {
                let (key, value) = entry?;
                out.push((key.value().2, delivered_in(value.value(), key.value())?));
            }
            Ok(out)
        })
        .await
    }
}

fn create_task(
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    task: NewTask,
    policy: PushPolicy,
    now_ms: u64,
) -> Result<Created, StoreError> {
    let txn = ctx.txn;
    if let Some(earlier) = duplicate_of(txn, app, task.msg_random, policy.dedupe_window_ms, now_ms)?
    {
        return Ok(Created::Duplicate(earlier));
    }
    let mut state_table = txn.open_table(PUSH_STATE)?;
    let (next_seq, day, today, last_ms) = state_table.get(app)?.map_or((1, 0, 0, 0), |g| g.value());
    let this_day = (now_ms / DAY_MS) as u32;
    let today = if day == this_day { today } else { 0 };
    let mut state = (next_seq + 1, this_day, today, last_ms);
    if let Some(quota) = policy.daily_quota {
        if today >= quota {
            return Ok(Created::DailyQuotaExceeded { quota });
        }
        if last_ms > 0 && now_ms < last_ms + policy.min_interval_ms {
            return Ok(Created::TooFrequent {
                min_interval_ms: policy.min_interval_ms,
            });
        }
        state = (next_seq + 1, this_day, today + 1, now_ms);
    }
    state_table.insert(app, state)?;
    let meta = TaskMeta {
        task_id: (policy.task_id)(&TaskIdParts {
            batch: task.kind == TaskKind::Batch,
            created_ms: now_ms,
            app,
            seq: next_seq,
            msg_random: task.msg_random,
        }),
        seq: next_seq,
        kind: task.kind,
        from_account: task.from_account,
        msg_random: task.msg_random,
        content: task.content,
        created_ms: now_ms,
        expires_ms: now_ms + task.lifetime_secs * 1000,
        data_id: task.data_id,
        has_offline_push_info: task.has_offline_push_info,
        revoked_ms: None,
        audience_size: task.audience.len(),
    };
    write_meta(txn, app, &meta)?;
    txn.open_table(TASK_AUDIENCES)?
        .insert((app, next_seq), encode_bitmap(&task.audience).as_slice())?;
    txn.open_table(MSG_RANDOMS)?
        .insert((app, task.msg_random), (next_seq, now_ms))?;
    Ok(Created::New(meta))
}

fn duplicate_of(
    txn: &WriteTransaction,
    app: AppId,
    msg_random: u32,
    window_ms: u64,
    now_ms: u64,
) -> Result<Option<TaskMeta>, StoreError> {
    let seen = txn
        .open_table(MSG_RANDOMS)?
        .get((app, msg_random))?
        .map(|g| g.value());
    match seen {
        Some((seq, created_ms)) if now_ms < created_ms.saturating_add(window_ms) => {
            read_meta(txn, app, seq)
        }
        _ => Ok(None),
    }
}

fn read_meta(txn: &WriteTransaction, app: AppId, seq: u64) -> Result<Option<TaskMeta>, StoreError> {
    let table = txn.open_table(TASKS)?;
    match table.get((app, seq))? {
        Some(g) => Ok(Some(meta_in(g.value(), (app, seq))?)),
        None => Ok(None),
    }
}

fn write_meta(txn: &WriteTransaction, app: AppId, meta: &TaskMeta) -> Result<(), StoreError> {
    let bytes = encode_meta(meta)?;
    txn.open_table(TASKS)?
        .insert((app, meta.seq), bytes.as_slice())?;
    Ok(())
}

fn meta_in(bytes: &[u8], key: (AppId, u64)) -> Result<TaskMeta, StoreError> {
    decode_meta(bytes).map_err(|e| e.at("push task", key))
}

fn audience_in(bytes: &[u8], key: (AppId, u64)) -> Result<RoaringBitmap, StoreError> {
    decode_bitmap(bytes).map_err(|e| e.at("task audience", key))
}

fn delivered_in(bytes: &[u8], key: (AppId, u64, u64)) -> Result<RoaringBitmap, StoreError> {
    decode_bitmap(bytes).map_err(|e| e.at("delivery record", key))
}
