//! Device fan-out (issue 10): a push that notifies devices gets a dispatch record in the
//! transaction that creates it. The leader advances it in batches of accounts: it reads a
//! batch's devices, sends, and then records in one write where the fan-out goes on, what each
//! device's provider answered, the devices found gone and the task's running report. So a
//! fan-out cut by a crash resumes at the first batch not recorded: only that batch's requests
//! may repeat. Devices answered "try again" keep a due time in their account's record, which
//! the leader's retries find.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::tables::Result;
use crate::{AccountId, AppId, Device, Platform, Store, TaskMeta};

/// The fan-out of one push to devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// Accounts with an id below this are done (a u64, so that the last id can be done too).
    pub next_account: u64,
    /// Every account is done; retries may still run.
    pub finished: bool,
    pub report: DeviceReport,
    /// A recall's notification, to send over the one its devices were shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<Overwrite>,
}

impl Dispatch {
    /// Whether work is left: accounts to notify, or notifications to overwrite.
    pub fn is_open(&self) -> bool {
        !self.finished || self.overwrite.as_ref().is_some_and(|o| !o.finished)
    }
}

/// The overwrite of a recalled push's notifications (a revoke with `OfflinePushInfo`): sent,
/// with the push's collapse id, to each device whose notification a provider accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overwrite {
    /// The recall's content (`{"OfflinePushInfo": ..}`), as a push's.
    pub content: String,
    /// Accounts with an id below this are done.
    pub next_account: u64,
    pub finished: bool,
}

/// A batch of an overwrite: the devices to send it to, and where it goes on.
#[derive(Debug, Clone, Default)]
pub struct OverwriteBatch {
    pub content: String,
    pub devices: Vec<Device>,
    /// Where the next batch starts; None when this is the last.
    pub next_account: Option<u64>,
}

/// What became of a push's device notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Accounts with devices that the push reached online first: their devices were not
    /// notified.
    pub reached_online: u64,
    pub apns: ProviderReport,
    pub fcm: ProviderReport,
    pub webpush: ProviderReport,
    /// Devices whose notification a recall overwrote (the provider accepted the overwrite).
    #[serde(default)]
    pub overwritten: u64,
}

/// One provider's figures for a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderReport {
    /// Requests made, retries included.
    pub requests: u64,
    /// Devices whose notification the provider accepted.
    pub accepted: u64,
    /// Answers that asked to try again (throttled, provider failures, no answer).
    pub retries: u64,
    /// Devices the provider said are gone; they were removed.
    pub gone: u64,
    /// Devices given up on, by reason.
    pub failed: BTreeMap<String, u64>,
}

impl ProviderReport {
    fn add(&mut self, other: &ProviderReport) {
        self.requests += other.requests;
        self.accepted += other.accepted;
        self.retries += other.retries;
        self.gone += other.gone;
        for (reason, count) in &other.failed {
            *self.failed.entry(reason.clone()).or_default() += count;
        }
    }
}

impl DeviceReport {
    pub fn provider(&self, platform: Platform) -> &ProviderReport {
        match platform {
            Platform::Apns => &self.apns,
            Platform::Fcm => &self.fcm,
            Platform::WebPush => &self.webpush,
        }
    }

    pub fn provider_mut(&mut self, platform: Platform) -> &mut ProviderReport {
        match platform {
            Platform::Apns => &mut self.apns,
            Platform::Fcm => &mut self.fcm,
            Platform::WebPush => &mut self.webpush,
        }
    }

    pub fn add(&mut self, other: &DeviceReport) {
        self.reached_online += other.reached_online;
        self.overwritten += other.overwritten;
        for platform in [Platform::Apns, Platform::Fcm, Platform::WebPush] {
            self.provider_mut(platform).add(other.provider(platform));
        }
    }
}

/// Where one device's notification of a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    Accepted,
    /// Tried again at `next_attempt_ms`.
    Retrying,
    /// The device is gone and was removed.
    Gone,
    /// Given up on.
    Failed,
}

/// One device's notification of a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSend {
    pub registration_id: String,
    pub platform: Platform,
    pub status: SendStatus,
    /// The provider's reason (or why there was no answer); empty when accepted.
    pub reason: String,
    pub attempts: u32,
    /// When a `Retrying` send is due.
    pub next_attempt_ms: u64,
    /// When the last attempt was answered.
    pub at_ms: u64,
}

/// When the earliest retry of an account's sends is due, if one is.
pub(crate) fn next_due(sends: &[DeviceSend]) -> Option<u64> {
    sends
        .iter()
        .filter(|s| s.status == SendStatus::Retrying)
        .map(|s| s.next_attempt_ms)
        .min()
}

/// A fan-out to advance: its task, and the accounts still to do that have devices (the frozen
/// audience, less the accounts done, with the devices known now).
#[derive(Debug, Clone)]
pub struct FanOut {
    pub meta: TaskMeta,
    pub targets: RoaringBitmap,
    /// Every account is done (an overwrite may be left).
    pub finished: bool,
}

/// A batch's accounts: those the push reached online, and the devices of the others.
#[derive(Debug, Clone, Default)]
pub struct BatchDevices {
    pub reached_online: Vec<AccountId>,
    pub devices: Vec<Device>,
}

/// An account's sends that have a retry due.
#[derive(Debug, Clone)]
pub struct DueSends {
    pub app: AppId,
    pub seq: u64,
    pub account: AccountId,
    pub sends: Vec<DeviceSend>,
}

/// What a batch (or a round of retries) did, recorded in one write.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Where the fan-out goes on; None for retries.
    pub next_account: Option<u64>,
    pub finished: bool,
    /// Where the overwrite goes on, and whether it is done.
    pub overwrite_next: Option<u64>,
    pub overwrite_finished: bool,
    /// Each account's sends, replacing what was recorded.
    pub sends: Vec<(AccountId, Vec<DeviceSend>)>,
    /// RegistrationIDs of devices found gone, to remove.
    pub gone: Vec<String>,
    /// Added to the task's report.
    pub report: DeviceReport,
    /// `Push.AllMemberPush` callback bodies reporting the sends settled, for the outbox.
    pub callbacks: Vec<String>,
}

impl Store {
    /// The fan-outs not finished, by app and task.
    pub async fn open_dispatches(&self) -> Result<Vec<(AppId, u64)>> {
        self.read("open_dispatches", |t| t.open_dispatches()).await
    }

    /// A task's fan-out with what is left of it, in one snapshot; None when the task has none.
    pub async fn fan_out(&self, app: AppId, seq: u64) -> Result<Option<FanOut>> {
        self.read("fan_out", move |t| {
            let (Some(meta), Some(dispatch)) = (t.task(app, seq)?, t.dispatch(app, seq)?) else {
                return Ok(None);
            };
            let mut targets = t.task_audience(app, seq)?.unwrap_or_default();
            targets &= t.device_owners(app)?;
            match u32::try_from(dispatch.next_account) {
                Ok(next) => {
                    targets.remove_range(..next);
                }
                Err(_) => targets.clear(),
            }
            let finished = dispatch.finished;
            Ok(Some(FanOut {
                meta,
                targets,
                finished,
            }))
        })
        .await
    }

    /// The devices of `accounts` that the task has not reached online, in one snapshot.
    pub async fn batch_devices(
        &self,
        app: AppId,
        seq: u64,
        accounts: Vec<AccountId>,
    ) -> Result<BatchDevices> {
        self.read("batch_devices", move |t| {
            let online = t
                .deliveries(app, seq)?
                .into_iter()
                .fold(RoaringBitmap::new(), |all, (_, accounts)| all | accounts);
            let (reached_online, offline): (Vec<AccountId>, Vec<AccountId>) =
                accounts.into_iter().partition(|a| online.contains(*a));
            let devices = t.devices_of(app, &offline)?;
            Ok(BatchDevices {
                reached_online,
                devices,
            })
        })
        .await
    }

    /// Up to `limit` accounts' sends with a retry due at `now_ms`, the longest due first.
    pub async fn due_sends(&self, now_ms: u64, limit: usize) -> Result<Vec<DueSends>> {
        self.read("due_sends", move |t| t.sends_due(now_ms, limit))
            .await
    }

    /// The account's sends of a task (for its trace); empty when none was made.
    pub async fn device_sends(
        &self,
        app: AppId,
        seq: u64,
        account: AccountId,
    ) -> Result<Vec<DeviceSend>> {
        self.read("device_sends", move |t| {
            Ok(t.device_sends(app, seq, account)?.unwrap_or_default())
        })
        .await
    }

    /// The next `limit` accounts of a recall's overwrite, in one snapshot: the registered
    /// devices whose notification was accepted. None when no overwrite is left to do.
    pub async fn overwrite_batch(
        &self,
        app: AppId,
        seq: u64,
        limit: usize,
    ) -> Result<Option<OverwriteBatch>> {
        self.read("overwrite_batch", move |t| {
            let Some(dispatch) = t.dispatch(app, seq)? else {
                return Ok(None);
            };
            let Some(overwrite) = dispatch.overwrite.filter(|o| !o.finished) else {
                return Ok(None);
            };
            // Only accounts the fan-out did, that still have devices, can have been notified.
            let mut accounts = t.task_audience(app, seq)?.unwrap_or_default();
            accounts &= t.device_owners(app)?;
            let from = u32::try_from(overwrite.next_account).unwrap_or(AccountId::MAX);
            let to = u32::try_from(dispatch.next_account).unwrap_or(AccountId::MAX);
            let batch: Vec<AccountId> = accounts.range(from..to).take(limit).collect();
            let next_account = match batch.last() {
                Some(&last) if batch.len() == limit => Some(u64::from(last) + 1),
                _ => None,
            };
            let mut devices = Vec::new();
            for account in batch {
                for send in t.device_sends(app, seq, account)?.unwrap_or_default() {
                    if send.status != SendStatus::Accepted {
                        continue;
                    }
                    let device = t.device(app, &send.registration_id)?;
                    devices.extend(device.filter(|d| d.account == account));
                }
            }
            Ok(Some(OverwriteBatch {
                content: overwrite.content,
                devices,
                next_account,
            }))
        })
        .await
    }

    /// The task's fan-out and its report, if it notifies devices.
    pub async fn dispatch(&self, app: AppId, seq: u64) -> Result<Option<Dispatch>> {
        self.read("dispatch", move |t| t.dispatch(app, seq)).await
    }

    /// Records what a batch or a round of retries did, in one write.
    pub async fn record_progress(&self, app: AppId, seq: u64, progress: Progress) -> Result<()> {
        self.writer
            .write("record_progress", move |ctx| {
                // Counting the outbox reads the database: before this write has changes.
                let callbacks = progress.callbacks.into_iter().map(|b| (app, b)).collect();
                let dropped = crate::outbox::queue(ctx.tables, callbacks, crate::health::now_ms())?;
                if !dropped.is_empty() {
                    tracing::warn!(
                        app,
                        batches = dropped.len(),
                        "device callback events dropped: the app's callback outbox is full"
                    );
                }
                let t = &mut *ctx.tables;
                // None when another leader finished it meanwhile, or the task left the store.
                let Some(mut dispatch) = t.dispatch(app, seq)? else {
                    return Ok(());
                };
                dispatch.report.add(&progress.report);
                if let Some(next) = progress.next_account {
                    dispatch.next_account = dispatch.next_account.max(next);
                }
                dispatch.finished |= progress.finished;
                if let Some(overwrite) = dispatch.overwrite.as_mut() {
                    let next = progress.overwrite_next.unwrap_or_default();
                    overwrite.next_account = overwrite.next_account.max(next);
                    overwrite.finished |= progress.overwrite_finished;
                }
                t.put_dispatch(app, seq, &dispatch)?;
                for (account, sends) in &progress.sends {
                    t.put_device_sends(app, seq, *account, sends)?;
                }
                for id in &progress.gone {
                    if let Some(device) = ctx.tables.device(app, id)? {
                        crate::devices::remove_device(ctx, app, &device)?;
                    }
                }
                Ok(())
            })
            .await
    }
}
