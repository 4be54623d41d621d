//! Notifying devices (issue 10): the leader advances each push's fan-out (see
//! `tagcast_store::fanout`) batch by batch, sends every device of the batch through its
//! provider, and records what the providers answered, batch after batch in order. Up to
//! `PIPELINE` batches are sent at once, so the providers are kept busy while a batch's last
//! answers come in and it is recorded. Devices asked to try again are retried with exponential
//! backoff and jitter (never before the provider's `Retry-After`) until the push's lifetime
//! ends.
//!
//! Who gets a device notification: each account of the push's frozen audience that has
//! devices and that the push has not reached over the WebSocket by the time its batch is
//! taken, which is at least `GRACE` after the push (an account online then has its delivery
//! recorded by then). Every device of such an account is notified, once.
//!
//! A recall with `OfflinePushInfo` is sent, under the push's collapse id, to each device whose
//! notification a provider accepted, `OVERWRITE_DELAY` after the recall: by then every request
//! begun before it has been answered, so none is left to show the push after its overwrite.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use tagcast_push::{Alert, Outcome, webpush};
use tagcast_store::{
    AccountId, AppId, BatchDevices, Device, DeviceSend, DueSends, FanOut, Progress, ProviderReport,
    RoaringBitmap, SendStatus, Store, TaskMeta,
};
use tokio::task::JoinHandle;

use super::callback::{Callbacks, device_event};
use super::providers::{Notice, Providers, TIMEOUT};
use crate::clock::now_ms;

/// How long after a push its devices are looked at: the push reaches the accounts online first.
pub const GRACE: Duration = Duration::from_secs(1);
/// Accounts per batch.
pub const BATCH: usize = 200;
/// Batches of a fan-out taken and not yet recorded, at most, the one being recorded included:
/// the most requests that may repeat after a crash is `PIPELINE * BATCH` times the devices an
/// account may have.
pub const PIPELINE: usize = 3;
/// Accounts whose retries are taken at once.
const RETRY_ROUND: usize = 500;
/// How often the leader looks for work when it found none.
const POLL: Duration = Duration::from_millis(200);
/// How long after a recall its overwrite is sent: a request's longest wait, and a second.
const OVERWRITE_DELAY: Duration = Duration::from_secs(TIMEOUT.as_secs() + 1);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The notification of a push with `content` (what clients receive), if it should reach
/// devices: not when `OfflinePushInfo.PushFlag` is 1 or the push is `OnlineOnlyFlag` 1, nor
/// when there is nothing to show (no `Title`, and no `Desc` or text element).
pub fn alert_of(content: &Value) -> Option<Alert> {
    let info = &content["OfflinePushInfo"];
    if info["PushFlag"].as_u64() == Some(1) || content["OnlineOnlyFlag"].as_u64() == Some(1) {
        return None;
    }
    let mut alert = Alert::from_offline_push_info(info);
    if alert.body.is_none() {
        alert.body = content["MsgBody"].as_array().and_then(|elements| {
            elements
                .iter()
                .filter(|e| e["MsgType"] == "TIMTextElem")
                .find_map(|e| e["MsgContent"]["Text"].as_str())
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        });
    }
    (alert.title.is_some() || alert.body.is_some()).then_some(alert)
}

/// The notice every device of `meta` gets, if it has one.
fn notice_of(meta: &TaskMeta) -> Option<Notice> {
    notice_with(meta, &meta.content, 0)
}

/// The notice of `content` under `meta`'s collapse id, kept by the providers until the push's
/// lifetime ends (if it has one that ends after `now`; else delivered now or never).
fn notice_with(meta: &TaskMeta, content: &str, now: u64) -> Option<Notice> {
    let content: Value = serde_json::from_str(content).ok()?;
    let alert = alert_of(&content)?;
    let lasts = meta.stored_for_offline() && meta.expires_ms > now;
    Some(Notice {
        webpush_payload: webpush::payload(&alert, &meta.task_id),
        alert,
        collapse_id: meta.task_id.clone(),
        expires_ms: if lasts { meta.expires_ms } else { 0 },
    })
}

/// Sends the fan-outs and retries while this node leads.
pub struct Notifier {
    _inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    providers: HashMap<AppId, Providers>,
    callbacks: Callbacks,
}

/// A fan-out being advanced: its task, the accounts not yet taken, and the batches taken.
struct Active {
    meta: TaskMeta,
    /// When `meta` was last read.
    meta_read: Option<Instant>,
    notice: Option<Arc<Notice>>,
    targets: RoaringBitmap,
    /// Taken, oldest first: they are recorded in this order.
    sending: VecDeque<Sending>,
    /// Every account is done: only an overwrite can be left.
    finished: bool,
    /// What this knows is no longer what the store has (a write failed): read it again.
    stale: bool,
}

/// A batch being sent.
struct Sending {
    /// Its last account.
    last: AccountId,
    /// Its accounts the push had reached online: their devices are not notified.
    reached_online: u64,
    /// No account of the fan-out follows it.
    finished: bool,
    /// Each device with its provider's answer.
    answers: JoinHandle<Vec<(Device, Outcome)>>,
}

impl Drop for Sending {
    /// A batch not recorded is sent again, whole, by whoever takes it next.
    fn drop(&mut self) {
        self.answers.abort();
    }
}

impl Notifier {
    /// Starts the sender over the apps' providers, reporting to the apps' callbacks.
    pub fn start(store: Store, providers: HashMap<AppId, Providers>, callbacks: Callbacks) -> Self {
        let inner = Arc::new(Inner {
            store,
            providers,
            callbacks,
        });
        tokio::spawn(run(Arc::downgrade(&inner)));
        Self { _inner: inner }
    }
}

/// What the leader knows between rounds.
#[derive(Default)]
struct Work {
    /// The fan-outs open when last read (every `POLL`), by app and task.
    open: Vec<(AppId, u64)>,
    open_read: Option<Instant>,
    active: HashMap<(AppId, u64), Active>,
    /// When the retries due were last read, and whether the limit of them was found.
    retries_read: Option<Instant>,
    more_retries: bool,
}

/// Whether what was read at `at` is to be read again: `POLL` has passed, or it never was.
fn poll_due(at: Option<Instant>) -> bool {
    at.is_none_or(|at| at.elapsed() >= POLL)
}

async fn run(inner: Weak<Inner>) {
    let mut work = Work::default();
    while let Some(inner) = inner.upgrade() {
        let busy = if inner.store.is_leader() {
            inner.round(&mut work).await
        } else {
            // Another node leads: what this one knew may be stale when it leads again.
            work = Work::default();
            false
        };
        drop(inner);
        if !busy {
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Inner {
    /// A batch of each open fan-out past its grace period, then the retries due; whether
    /// there was anything to do. The open fan-outs and the retries due are read every `POLL`,
    /// not every batch: the batches go on in between.
    async fn round(&self, work: &mut Work) -> bool {
        if poll_due(work.open_read) {
            match self.store.open_dispatches().await {
                Ok(open) => work.open = open,
                Err(error) => {
                    tracing::warn!(%error, "fan-outs to devices unreadable; will retry");
                    return false;
                }
            }
            work.open_read = Some(Instant::now());
            let open = &work.open;
            work.active.retain(|key, _| open.contains(key));
        }
        let now = now_ms();
        let mut busy = false;
        let active = &mut work.active;
        for &key in &work.open {
            let fan_out = match active.entry(key) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => match self.store.fan_out(key.0, key.1).await {
                    Ok(Some(fan_out)) => new.insert(Active::new(fan_out)),
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "fan-out to devices unreadable; will retry");
                        continue;
                    }
                },
            };
            if fan_out.finished {
                busy |= self.overwrite(key.0, key.1, now).await;
            } else if now >= fan_out.meta.created_ms + GRACE.as_millis() as u64 {
                self.advance(key.0, fan_out).await;
                busy = true;
                if fan_out.stale {
                    active.remove(&key);
                }
            }
        }
        if work.more_retries || poll_due(work.retries_read) {
            work.retries_read = Some(Instant::now());
            work.more_retries = self.retry_due(now).await;
            busy |= work.more_retries;
        }
        busy
    }

    /// Records the fan-out's oldest batch once it is answered, the batches taken after it being
    /// sent meanwhile; records the fan-out finished once nothing is left to send. The oldest
    /// stays counted against `PIPELINE` until it is recorded: no more than `PIPELINE` batches
    /// are ever sent and not recorded.
    async fn advance(&self, app: AppId, fan_out: &mut Active) {
        self.take_batches(app, fan_out).await;
        let Some(oldest) = fan_out.sending.front_mut() else {
            self.finish(app, fan_out).await;
            return;
        };
        let answers = match (&mut oldest.answers).await {
            Ok(answers) => answers,
            Err(error) => {
                tracing::error!(%error, "a batch of device notifications was lost; sent again");
                fan_out.stale = true;
                return;
            }
        };
        let oldest = &fan_out.sending[0];
        let mut progress = batch_progress(oldest, answers, &fan_out.meta);
        let finished = oldest.finished;
        if !self
            .add_callbacks(app, &fan_out.meta, 0, &mut progress)
            .await
        {
            fan_out.stale = true;
            return;
        }
        if self.record(app, fan_out.meta.seq, progress).await {
            fan_out.sending.pop_front();
            fan_out.finished = finished;
        } else {
            fan_out.stale = true;
        }
    }

    /// Takes batches of the fan-out's accounts and sends them, until `PIPELINE` are being sent
    /// or no account is left; none once the push has ended.
    async fn take_batches(&self, app: AppId, fan_out: &mut Active) {
        while fan_out.sending.len() < PIPELINE && !fan_out.targets.is_empty() {
            // Read again every `POLL`: a recall since ends the fan-out.
            if poll_due(fan_out.meta_read) {
                match self.store.task(app, fan_out.meta.seq).await {
                    Ok(Some(meta)) => fan_out.meta = meta,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "push unreadable; its next batch waits");
                        return;
                    }
                }
                fan_out.meta_read = Some(Instant::now());
            }
            let Some(notice) = fan_out
                .notice
                .clone()
                .filter(|_| !ended(&fan_out.meta, now_ms()))
            else {
                fan_out.targets.clear();
                return;
            };
            let accounts: Vec<AccountId> = fan_out.targets.iter().take(BATCH).collect();
            let last = accounts[accounts.len() - 1];
            let batch = match self
                .store
                .batch_devices(app, fan_out.meta.seq, accounts)
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "devices unreadable; the batch is tried again");
                    return;
                }
            };
            fan_out.targets.remove_range(..=last);
            let providers = self.providers.get(&app).cloned().unwrap_or_default();
            fan_out.sending.push_back(Sending {
                last,
                reached_online: batch.reached_online.len() as u64,
                finished: fan_out.targets.is_empty(),
                answers: tokio::spawn(send_batch(providers, notice, batch)),
            });
        }
    }

    /// Records a fan-out with nothing left to send (its push ended, or had nothing to show)
    /// finished.
    async fn finish(&self, app: AppId, fan_out: &mut Active) {
        let progress = Progress {
            next_account: Some(u64::from(AccountId::MAX) + 1),
            finished: true,
            ..Progress::default()
        };
        if self.record(app, fan_out.meta.seq, progress).await {
            fan_out.finished = true;
        } else {
            fan_out.stale = true;
        }
    }

    /// Sends the next batch of a recall's overwrite once `OVERWRITE_DELAY` has passed since
    /// the recall, and records it; whether it did.
    async fn overwrite(&self, app: AppId, seq: u64, now: u64) -> bool {
        let meta = match self.store.task(app, seq).await {
            Ok(Some(meta)) => meta,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(%error, "push unreadable; its overwrite waits");
                return false;
            }
        };
        let delay = OVERWRITE_DELAY.as_millis() as u64;
        if meta.revoked_ms.is_none_or(|revoked| now < revoked + delay) {
            return false;
        }
        let batch = match self.store.overwrite_batch(app, seq, BATCH).await {
            Ok(Some(batch)) => batch,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(%error, "overwrite unreadable; will retry");
                return false;
            }
        };
        let mut progress = Progress {
            overwrite_next: batch.next_account,
            overwrite_finished: batch.next_account.is_none(),
            ..Progress::default()
        };
        // A recall with nothing to show overwrites nothing.
        if let Some(notice) = notice_with(&meta, &batch.content, now) {
            let providers = self.providers.get(&app).cloned().unwrap_or_default();
            let sends = batch.devices.iter().map(|d| providers.send(d, &notice));
            let outcomes = futures_util::future::join_all(sends).await;
            for (device, outcome) in batch.devices.iter().zip(outcomes) {
                match outcome {
                    Outcome::Accepted => progress.report.overwritten += 1,
                    Outcome::Gone { .. } => progress.gone.push(device.registration_id.clone()),
                    Outcome::Retry { .. } | Outcome::Failed { .. } => {}
                }
            }
        }
        self.record(app, seq, progress).await
    }

    /// Sends the retries due at `now` and records them; whether there may be more (a full
    /// round of them was due).
    async fn retry_due(&self, now: u64) -> bool {
        let due = match self.store.due_sends(now, RETRY_ROUND).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "device retries unreadable; will retry");
                return false;
            }
        };
        let busy = due.len() == RETRY_ROUND;
        // Each push read, and its notice made, once per round: None once it has ended.
        let mut live: HashMap<(AppId, u64), Option<(TaskMeta, Notice)>> = HashMap::new();
        for account in due {
            let push = match live.entry((account.app, account.seq)) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => match self.store.task(account.app, account.seq).await {
                    Ok(meta) => new.insert(meta.filter(|m| !ended(m, now)).and_then(|meta| {
                        let notice = notice_of(&meta)?;
                        Some((meta, notice))
                    })),
                    Err(error) => {
                        tracing::warn!(%error, "push unreadable; its retries wait");
                        continue;
                    }
                },
            };
            self.retry(account, push.as_ref(), now).await;
        }
        busy
    }

    /// Retries an account's sends that are due, or gives them up when their push (`live`) has
    /// ended.
    async fn retry(&self, due: DueSends, live: Option<&(TaskMeta, Notice)>, now: u64) {
        let DueSends {
            app,
            seq,
            account,
            mut sends,
        } = due;
        let mut progress = Progress::default();
        let devices = match self.store.devices(app, account).await {
            Ok(devices) => devices,
            Err(error) => {
                tracing::warn!(%error, "devices unreadable; their retries wait");
                return;
            }
        };
        let providers = self.providers.get(&app).cloned().unwrap_or_default();
        let mut attempts = Vec::new();
        for (i, send) in sends.iter_mut().enumerate() {
            if send.status != SendStatus::Retrying || send.next_attempt_ms > now {
                continue;
            }
            let device = devices
                .iter()
                .find(|d| d.registration_id == send.registration_id);
            match (device, live) {
                (Some(device), Some((meta, notice))) => attempts.push((i, device, meta, notice)),
                (None, _) => give_up(send, "unregistered", now, &mut progress),
                (Some(_), None) => give_up(send, "push ended", now, &mut progress),
            }
        }
        let sent = attempts
            .iter()
            .map(|(_, device, _, notice)| providers.send(device, notice));
        let outcomes = futures_util::future::join_all(sent).await;
        for ((i, _, meta, _), outcome) in attempts.iter().zip(outcomes) {
            settle(&mut sends[*i], outcome, meta, now_ms(), &mut progress);
        }
        progress.sends = vec![(account, sends)];
        if let Some((meta, _)) = live
            && !self.add_callbacks(app, meta, now, &mut progress).await
        {
            return;
        }
        self.record(app, seq, progress).await;
    }

    /// Adds to `progress` the callback events of its sends settled since `since` (accepted,
    /// gone or given up), when the app has a callback URL; false when the accounts' names could
    /// not be read (the work is done again).
    async fn add_callbacks(
        &self,
        app: AppId,
        meta: &TaskMeta,
        since: u64,
        progress: &mut Progress,
    ) -> bool {
        if !self.callbacks.wants(app) {
            return true;
        }
        let ids: Vec<AccountId> = progress.sends.iter().map(|(account, _)| *account).collect();
        let names = match self.store.account_names(app, &ids).await {
            Ok(names) => names,
            Err(error) => {
                tracing::warn!(%error, "account names unreadable; the sends are made again");
                return false;
            }
        };
        let mut events = Vec::new();
        for ((_, sends), name) in progress.sends.iter().zip(&names) {
            let name = name.as_deref().unwrap_or_default();
            let settled = sends
                .iter()
                .filter(|s| s.at_ms >= since && s.status != SendStatus::Retrying);
            events.extend(settled.map(|send| device_event(meta, name, send)));
        }
        let bodies = self.callbacks.device_bodies(app, &events);
        progress.callbacks = bodies.into_iter().map(|body| body.json).collect();
        true
    }

    /// Records progress; false when the store failed (the work is done again).
    async fn record(&self, app: AppId, seq: u64, progress: Progress) -> bool {
        let callbacks = !progress.callbacks.is_empty();
        match self.store.record_progress(app, seq, progress).await {
            Ok(()) => {
                if callbacks {
                    self.callbacks.stored();
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "device notifications not recorded; sent again");
                false
            }
        }
    }
}

impl Active {
    fn new(fan_out: FanOut) -> Self {
        Self {
            notice: notice_of(&fan_out.meta).map(Arc::new),
            meta: fan_out.meta,
            meta_read: Some(Instant::now()),
            targets: fan_out.targets,
            sending: VecDeque::new(),
            finished: fan_out.finished,
            stale: false,
        }
    }
}

/// Sends `notice` to every device of `batch`; each device with its provider's answer.
async fn send_batch(
    providers: Providers,
    notice: Arc<Notice>,
    batch: BatchDevices,
) -> Vec<(Device, Outcome)> {
    let sends = batch.devices.iter().map(|d| providers.send(d, &notice));
    let outcomes = futures_util::future::join_all(sends).await;
    batch.devices.into_iter().zip(outcomes).collect()
}

/// What a batch's answers make of the fan-out: where it goes on, each device's send, the
/// report's figures.
fn batch_progress(batch: &Sending, answers: Vec<(Device, Outcome)>, meta: &TaskMeta) -> Progress {
    let mut progress = Progress {
        next_account: Some(u64::from(batch.last) + 1),
        finished: batch.finished,
        ..Progress::default()
    };
    progress.report.reached_online = batch.reached_online;
    let now = now_ms();
    let mut by_account: HashMap<AccountId, Vec<DeviceSend>> = HashMap::new();
    for (device, outcome) in answers {
        let mut send = first_send(&device);
        settle(&mut send, outcome, meta, now, &mut progress);
        by_account.entry(device.account).or_default().push(send);
    }
    progress.sends = by_account.into_iter().collect();
    progress
}

/// The push was recalled, or its lifetime has ended at `now` (a push without one is tried
/// once, never later).
fn ended(meta: &TaskMeta, now: u64) -> bool {
    meta.revoked_ms.is_some() || (meta.stored_for_offline() && now >= meta.expires_ms)
}

fn first_send(device: &Device) -> DeviceSend {
    DeviceSend {
        registration_id: device.registration_id.clone(),
        platform: device.platform,
        status: SendStatus::Retrying,
        reason: String::new(),
        attempts: 0,
        next_attempt_ms: 0,
        at_ms: 0,
    }
}

/// Records the provider's answer to one more attempt at `send`, and counts it.
fn settle(send: &mut DeviceSend, outcome: Outcome, meta: &TaskMeta, now: u64, p: &mut Progress) {
    send.attempts += 1;
    send.at_ms = now;
    let report = p.report.provider_mut(send.platform);
    report.requests += 1;
    match outcome {
        Outcome::Accepted => {
            send.status = SendStatus::Accepted;
            send.reason.clear();
            report.accepted += 1;
        }
        Outcome::Gone { reason } => {
            send.status = SendStatus::Gone;
            send.reason = reason;
            report.gone += 1;
            p.gone.push(send.registration_id.clone());
        }
        Outcome::Retry { reason, after } => {
            let at = now + retry_delay(send.attempts, after).as_millis() as u64;
            if meta.stored_for_offline() && at < meta.expires_ms {
                send.status = SendStatus::Retrying;
                send.next_attempt_ms = at;
                send.reason = reason;
                report.retries += 1;
            } else {
                fail(send, reason, report);
            }
        }
        Outcome::Failed { reason } => fail(send, reason, report),
    }
}

fn fail(send: &mut DeviceSend, reason: String, report: &mut ProviderReport) {
    *report.failed.entry(reason.clone()).or_default() += 1;
    send.status = SendStatus::Failed;
    send.reason = reason;
}

/// Gives a retrying send up without an attempt.
fn give_up(send: &mut DeviceSend, reason: &str, now: u64, p: &mut Progress) {
    send.at_ms = now;
    fail(
        send,
        reason.to_string(),
        p.report.provider_mut(send.platform),
    );
}

/// How long before attempt `attempts + 1`: doubling from `FIRST_BACKOFF` up to `MAX_BACKOFF`,
/// each wait drawn between half and all of it so that devices throttled together spread out,
/// and never sooner than the provider's `Retry-After`.
fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
        .min(MAX_BACKOFF);
    let jittered = backoff.mul_f64(rand::rng().random_range(0.5..=1.0));
    jittered.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_pushes_with_something_to_show_and_no_push_flag_reach_devices() {
        let alert = alert_of(&json!({ "OfflinePushInfo": { "Title": "t" } })).unwrap();
        assert_eq!(alert.title.as_deref(), Some("t"));
        let text =
            json!({ "MsgBody": [{ "MsgType": "TIMTextElem", "MsgContent": { "Text": "hi" } }] });
        assert_eq!(alert_of(&text).unwrap().body.as_deref(), Some("hi"));
        let desc = json!({ "MsgBody": text["MsgBody"], "OfflinePushInfo": { "Desc": "d" } });
        assert_eq!(alert_of(&desc).unwrap().body.as_deref(), Some("d"));
        let flagged = json!({ "OfflinePushInfo": { "PushFlag": 1, "Title": "t" } });
        assert!(alert_of(&flagged).is_none());
        let online_only = json!({ "OnlineOnlyFlag": 1, "OfflinePushInfo": { "Title": "t" } });
        assert!(alert_of(&online_only).is_none());
        let custom =
            json!({ "MsgBody": [{ "MsgType": "TIMCustomElem", "MsgContent": { "Data": "x" } }] });
        assert!(alert_of(&custom).is_none(), "nothing to show");
    }

    #[test]
    fn retries_back_off_with_jitter_and_honour_retry_after() {
        for attempts in 1..=20 {
            let full = FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(attempts - 1))
                .min(MAX_BACKOFF);
            let delay = retry_delay(attempts, None);
            assert!(delay >= full / 2 && delay <= full, "{attempts}: {delay:?}");
        }
        let after = Duration::from_secs(30);
        assert!(retry_delay(1, Some(after)) >= after);
    }

    fn meta(lifetime_ms: u64) -> TaskMeta {
        TaskMeta {
            task_id: "t".into(),
            seq: 1,
            kind: tagcast_store::TaskKind::All,
            from_account: "admin".into(),
            msg_random: 0,
            content: "{}".into(),
            created_ms: 1_000,
            expires_ms: 1_000 + lifetime_ms,
            data_id: None,
            has_offline_push_info: true,
            notify_devices: true,
            revoked_ms: None,
            audience_size: 1,
        }
    }

    #[test]
    fn a_retry_is_given_up_when_it_would_fall_after_the_push_s_lifetime() {
        let device = Device {
            registration_id: "R".into(),
            account: 0,
            platform: tagcast_store::Platform::Fcm,
            token: "x".into(),
            sandbox: false,
            registered_ms: 0,
        };
        let retry = || Outcome::Retry {
            reason: "QUOTA_EXCEEDED".into(),
            after: Some(Duration::from_secs(5)),
        };
        let mut progress = Progress::default();
        let mut send = first_send(&device);
        settle(&mut send, retry(), &meta(60_000), 2_000, &mut progress);
        assert_eq!(send.status, SendStatus::Retrying);
        assert!(send.next_attempt_ms >= 7_000);
        let mut send = first_send(&device);
        settle(&mut send, retry(), &meta(3_000), 2_000, &mut progress);
        assert_eq!(send.status, SendStatus::Failed, "due after the lifetime");
        let mut send = first_send(&device);
        settle(&mut send, retry(), &meta(0), 2_000, &mut progress);
        assert_eq!(
            send.status,
            SendStatus::Failed,
            "an online-only push is tried once"
        );
        let fcm = &progress.report.fcm;
        assert_eq!(
            (fcm.requests, fcm.retries, fcm.failed["QUOTA_EXCEEDED"]),
            (3, 1, 2)
        );
    }
}
