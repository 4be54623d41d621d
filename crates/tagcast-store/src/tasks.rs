//! Push tasks: each push is stored once, with its frozen audience as a roaring bitmap, never
//! once per recipient. Also the push quota, MsgRandom idempotency, delivery records and the
//! per-account delivery cursor.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::fanout::Dispatch;
use crate::tables::{PushState, Result, SeenMsgRandom, Tables, TaskFilter};
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
    /// Its audience's devices are notified (`PushFlag` 0); tasks stored before devices had none.
    #[serde(default)]
    pub notify_devices: bool,
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
    /// Notify the audience's devices: the task gets a fan-out (see `fanout`).
    pub notify_devices: bool,
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
    /// Those of `accounts` it reached from their backlog when they connected, not when it was
    /// sent.
    pub caught_up: RoaringBitmap,
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
    ) -> Result<Created> {
        self.writer
            .write("create_task", move |ctx| {
                let created = create_task(ctx.tables, app, task, policy, now_ms)?;
                if let Created::New(meta) = &created {
                    ctx.announce(app, Event::TaskCreated(meta.seq));
                }
                Ok(created)
            })
            .await
    }

    /// Marks a task revoked; with `overwrite` (the recall's content), its devices' notifications
    /// are to be overwritten.
    pub async fn revoke_task(
        &self,
        app: AppId,
        seq: u64,
        now_ms: u64,
        overwrite: Option<String>,
    ) -> Result<Revoked> {
        self.writer
            .write("revoke_task", move |ctx| {
                let Some(mut meta) = ctx.tables.task(app, seq)? else {
                    return Ok(Revoked::NotFound);
                };
                if meta.revoked_ms.is_some() {
                    return Ok(Revoked::AlreadyRevoked);
                }
                meta.revoked_ms = Some(now_ms);
                ctx.tables.put_task(app, &meta)?;
                // The devices notified are sent the recall's notification over theirs.
                if let (Some(content), Some(mut dispatch)) =
                    (overwrite, ctx.tables.dispatch(app, seq)?)
                {
                    dispatch.overwrite = Some(crate::fanout::Overwrite {
                        content,
                        ..Default::default()
                    });
                    ctx.tables.put_dispatch(app, seq, &dispatch)?;
                }
                ctx.announce(app, Event::TaskRevoked(seq));
                Ok(Revoked::Done(meta))
            })
            .await
    }

    /// Records deliveries, advances each listed account's cursor and queues the callback
    /// batches that report them (see `outbox`); returns the positions in `callbacks` of those
    /// dropped because their app's outbox was full.
    pub async fn record_deliveries(
        &self,
        deliveries: Vec<Deliveries>,
        cursors: Vec<(AppId, AccountId, u64)>,
        callbacks: Vec<(AppId, String)>,
    ) -> Result<Vec<usize>> {
        self.writer
            .write("record_deliveries", move |ctx| {
                // Counting an outbox reads the database: before this write has changes to send.
                let dropped = crate::outbox::queue(ctx.tables, callbacks, crate::health::now_ms())?;
                record_deliveries(ctx, deliveries, cursors)?;
                Ok(dropped)
            })
            .await
    }

    /// The pushes of `app` counted against its daily quota on the UTC day of `now_ms`.
    pub async fn pushes_today(&self, app: AppId, now_ms: u64) -> Result<u32> {
        self.read("pushes_today", move |t| {
            let state = t.push_state(app)?;
            let today = state.day == (now_ms / DAY_MS) as u32;
            Ok(if today { state.today } else { 0 })
        })
        .await
    }

    pub async fn task(&self, app: AppId, seq: u64) -> Result<Option<TaskMeta>> {
        self.read("task", move |t| t.task(app, seq)).await
    }

    /// The task and its frozen audience, from one snapshot.
    pub async fn task_with_audience(
        &self,
        app: AppId,
        seq: u64,
    ) -> Result<Option<(TaskMeta, RoaringBitmap)>> {
        self.read("task_with_audience", move |t| {
            let Some(meta) = t.task(app, seq)? else {
                return Ok(None);
            };
            let audience = t.task_audience(app, seq)?.unwrap_or_default();
            Ok(Some((meta, audience)))
        })
        .await
    }

    pub async fn task_audience(&self, app: AppId, seq: u64) -> Result<Option<RoaringBitmap>> {
        self.read("task_audience", move |t| t.task_audience(app, seq))
            .await
    }

    /// Of the tasks `seqs`, looked through in that order, the first `limit` whose frozen
    /// audience has `account`: in one read, as a per-account view of many tasks needs.
    pub async fn tasks_reaching(
        &self,
        app: AppId,
        seqs: Vec<u64>,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<u64>> {
        self.read("tasks_reaching", move |t| {
            let mut reaching = Vec::new();
            for seq in seqs {
                if reaching.len() == limit {
                    break;
                }
                if t.task_audience(app, seq)?
                    .is_some_and(|a| a.contains(account))
                {
                    reaching.push(seq);
                }
            }
            Ok(reaching)
        })
        .await
    }

    /// Removes, with every record of theirs, up to `limit` tasks whose lifetime ended before
    /// `ended_before_ms` and whose fan-out to devices, if any, is finished; how many it
    /// removed. They are found in a read, so the writer is held only for the removing.
    pub async fn prune_tasks(&self, ended_before_ms: u64, limit: usize) -> Result<usize> {
        let ended = self
            .read("ended_tasks", move |t| {
                t.ended_tasks(ended_before_ms, limit)
            })
            .await?;
        if ended.is_empty() {
            return Ok(0);
        }
        self.writer
            .write("prune_tasks", move |ctx| {
                let mut removed = 0;
                for (app, seq) in ended {
                    // A recall may have reopened the fan-out since the read.
                    if ctx.tables.dispatch(app, seq)?.is_some_and(|d| d.is_open()) {
                        continue;
                    }
                    ctx.tables.remove_task(app, seq)?;
                    removed += 1;
                }
                Ok(removed)
            })
            .await
    }

    /// Tasks of `app` created in `[start_ms, end_ms)`, oldest first.
    pub async fn tasks_created_between(
        &self,
        app: AppId,
        start_ms: u64,
        end_ms: u64,
    ) -> Result<Vec<TaskMeta>> {
        let filter = TaskFilter::CreatedBetween {
            app,
            start_ms,
            end_ms,
        };
        let tasks = self.read("tasks_created_between", move |t| t.tasks(filter));
        Ok(tasks.await?.into_iter().map(|(_, meta)| meta).collect())
    }

    /// Every app's tasks an offline account may still receive: stored for offline, not expired,
    /// not revoked; with their audiences. Oldest first within each app.
    pub async fn live_tasks(&self, now_ms: u64) -> Result<Vec<(AppId, TaskMeta, RoaringBitmap)>> {
        self.read("live_tasks", move |t| {
            let mut out = Vec::new();
            for (app, meta) in t.tasks(TaskFilter::LiveAt { now_ms })? {
                let Some(audience) = t.task_audience(app, meta.seq)? else {
                    return Err(StoreError::corrupt(
                        "task audience",
                        (app, meta.seq),
                        "the task has no stored audience",
                    ));
                };
                out.push((app, meta, audience));
            }
            Ok(out)
        })
        .await
    }

    /// When the task reached `account` over the WebSocket, if it did: the unix second, and
    /// whether it was from the account's backlog when it connected. One read.
    pub async fn delivery_to(
        &self,
        app: AppId,
        seq: u64,
        account: AccountId,
    ) -> Result<Option<(u64, bool)>> {
        self.read("delivery_to", move |t| {
            let deliveries = t.deliveries(app, seq)?;
            let Some((second, _)) = deliveries.iter().find(|(_, a)| a.contains(account)) else {
                return Ok(None);
            };
            let caught_up = t.caught_up(app, seq)?.is_some_and(|c| c.contains(account));
            Ok(Some((*second, caught_up)))
        })
        .await
    }

    /// The accounts a task reached from their backlog when they connected.
    pub async fn caught_up(&self, app: AppId, seq: u64) -> Result<RoaringBitmap> {
        let caught_up = self.read("caught_up", move |t| t.caught_up(app, seq));
        Ok(caught_up.await?.unwrap_or_default())
    }

    /// The sequence number of the last task delivered to the account (0 = none).
    pub async fn cursor(&self, app: AppId, account: AccountId) -> Result<u64> {
        self.read("cursor", move |t| t.cursor(app, account)).await
    }

    /// The recorded deliveries of a task, by second.
    pub async fn deliveries(&self, app: AppId, seq: u64) -> Result<Vec<(u64, RoaringBitmap)>> {
        self.read("deliveries", move |t| t.deliveries(app, seq))
            .await
    }
}

fn create_task(
    t: &mut dyn Tables,
    app: AppId,
    task: NewTask,
    policy: PushPolicy,
    now_ms: u64,
) -> Result<Created> {
    if let Some(earlier) = duplicate_of(t, app, task.msg_random, policy.dedupe_window_ms, now_ms)? {
        return Ok(Created::Duplicate(earlier));
    }
    let state = t.push_state(app)?;
    let this_day = (now_ms / DAY_MS) as u32;
    let today = if state.day == this_day {
        state.today
    } else {
        0
    };
    let seq = state.next_seq;
    let mut next = PushState {
        next_seq: seq + 1,
        day: this_day,
        today,
        last_ms: state.last_ms,
    };
    if let Some(quota) = policy.daily_quota {
        if today >= quota {
            return Ok(Created::DailyQuotaExceeded { quota });
        }
        if state.last_ms > 0 && now_ms < state.last_ms + policy.min_interval_ms {
            return Ok(Created::TooFrequent {
                min_interval_ms: policy.min_interval_ms,
            });
        }
        next.today = today + 1;
        next.last_ms = now_ms;
    }
    t.set_push_state(app, next)?;
    let meta = TaskMeta {
        task_id: (policy.task_id)(&TaskIdParts {
            batch: task.kind == TaskKind::Batch,
            created_ms: now_ms,
            app,
            seq,
            msg_random: task.msg_random,
        }),
        seq,
        kind: task.kind,
        from_account: task.from_account,
        msg_random: task.msg_random,
        content: task.content,
        created_ms: now_ms,
        expires_ms: now_ms + task.lifetime_secs * 1000,
        data_id: task.data_id,
        has_offline_push_info: task.has_offline_push_info,
        notify_devices: task.notify_devices,
        revoked_ms: None,
        audience_size: task.audience.len(),
    };
    t.put_task(app, &meta)?;
    t.put_task_audience(app, seq, &task.audience)?;
    if task.notify_devices {
        t.put_dispatch(app, seq, &Dispatch::default())?;
    }
    let seen = SeenMsgRandom {
        seq,
        created_ms: now_ms,
    };
    t.set_msg_random(app, task.msg_random, seen)?;
    Ok(Created::New(meta))
}

fn duplicate_of(
    t: &mut dyn Tables,
    app: AppId,
    msg_random: u32,
    window_ms: u64,
    now_ms: u64,
) -> Result<Option<TaskMeta>> {
    match t.msg_random(app, msg_random)? {
        Some(seen) if now_ms < seen.created_ms.saturating_add(window_ms) => t.task(app, seen.seq),
        _ => Ok(None),
    }
}

fn record_deliveries(
    ctx: &mut WriteCtx<'_>,
    deliveries: Vec<Deliveries>,
    cursors: Vec<(AppId, AccountId, u64)>,
) -> Result<()> {
    for d in deliveries {
        let mut accounts = ctx
            .tables
            .delivered(d.app, d.seq, d.second)?
            .unwrap_or_default();
        accounts |= d.accounts;
        ctx.tables
            .set_delivered(d.app, d.seq, d.second, &accounts)?;
        if !d.caught_up.is_empty() {
            let mut caught_up = ctx.tables.caught_up(d.app, d.seq)?.unwrap_or_default();
            caught_up |= d.caught_up;
            ctx.tables.set_caught_up(d.app, d.seq, &caught_up)?;
        }
    }
    let mut by_app: BTreeMap<AppId, Vec<AccountId>> = BTreeMap::new();
    for (app, account, _) in &cursors {
        by_app.entry(*app).or_default().push(*account);
    }
    for (app, accounts) in by_app {
        ctx.tables.prefetch_cursors(app, &accounts)?;
    }
    for (app, account, seq) in cursors {
        let current = ctx.tables.cursor(app, account)?;
        ctx.tables.set_cursor(app, account, current.max(seq))?;
    }
    Ok(())
}
