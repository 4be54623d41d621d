//! `Push.AllMemberPush` callbacks: each delivery becomes an event, and the events of a write of
//! deliveries, in batches of up to 100, are stored in the store's outbox with those deliveries
//! (see `tagcast_store::outbox`). The leader among the nodes sends them, on a task of its own so
//! the API never waits, and retries with backoff those the app refuses; a batch whose every
//! attempt failed is dropped. Another node that takes over the leadership sends what is left.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tagcast_store::{AppId, CallbackBatch, DeviceSend, SendStatus, Settled, Store, TaskMeta};
use tokio::sync::Notify;

use super::recorder::Delivered;
use crate::config::AppConfig;

/// Events in one callback request (Tencent's maximum).
const BATCH: usize = 100;
/// Attempts per batch before it is dropped.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(2);
/// Batches sent at once, and read from the outbox in one go.
const ROUND: usize = 16;
/// How often the leader looks for batches due again without being woken.
const POLL: Duration = Duration::from_millis(100);
/// How often a graceful stop looks whether the outbox is empty.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The apps' callback URLs and the sender.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Each app's URL with the query of `Push.AllMemberPush`.
    urls: HashMap<AppId, String>,
    client: reqwest::Client,
    /// Woken when batches were stored.
    queued: Notify,
}

/// A callback body and the number of events in it.
pub struct Body {
    pub app: AppId,
    pub json: String,
    pub events: usize,
}

impl Callbacks {
    /// Reads each app's `callback_url`, and starts the sender when an app has one.
    pub fn start(store: Store, apps: &[AppConfig]) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        let urls: HashMap<AppId, String> = apps
            .iter()
            .filter_map(|app| {
                let url = app.callback_url.as_ref()?;
                let separator = if url.contains('?') { "&" } else { "?" };
                let query = format!(
                    "SdkAppid={}&CallbackCommand=Push.AllMemberPush&contenttype=json",
                    app.sdkappid
                );
                Some((app.sdkappid, format!("{url}{separator}{query}")))
            })
            .collect();
        let inner = Arc::new(Inner {
            store,
            urls,
            client,
            queued: Notify::new(),
        });
        if !inner.urls.is_empty() {
            tokio::spawn(send_while_leading(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// The callback bodies reporting `deliveries`, for the apps with a callback URL.
    pub fn bodies(&self, deliveries: &[Delivered]) -> Vec<Body> {
        let mut events: HashMap<AppId, Vec<Value>> = HashMap::new();
        for d in deliveries {
            if self.wants(d.task.app) {
                events.entry(d.task.app).or_default().push(event(d));
            }
        }
        events
            .into_iter()
            .flat_map(|(app, events)| batches(app, &events))
            .collect()
    }

    /// Whether `app` has a callback URL.
    pub fn wants(&self, app: AppId) -> bool {
        self.inner.urls.contains_key(&app)
    }

    /// The callback bodies of `app`'s device events (see `device_event`).
    pub fn device_bodies(&self, app: AppId, events: &[Value]) -> Vec<Body> {
        batches(app, events)
    }

    /// Bodies were stored: the sender looks at once.
    pub fn stored(&self) {
        self.inner.queued.notify_one();
    }

    /// On the leader, sends what the outbox holds for at most `limit`; a graceful stop calls it
    /// so the events of the last deliveries still reach the app. What is left waits in the
    /// store for the next leader.
    pub async fn drain(&self, limit: Duration) {
        let inner = &self.inner;
        if inner.urls.is_empty() || !inner.store.is_leader() {
            return;
        }
        let drained = async {
            loop {
                match inner.store.due_callbacks(u64::MAX, 1).await {
                    Ok(left) if left.is_empty() => return,
                    Ok(_) => {
                        inner.round().await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "callback outbox unreadable at shutdown");
                        return;
                    }
                }
                tokio::time::sleep(DRAIN_POLL).await;
            }
        };
        if tokio::time::timeout(limit, drained).await.is_err() {
            tracing::warn!("callback batches still waiting at shutdown: sent by the next leader");
        }
    }
}

/// `events` in bodies of at most `BATCH`.
fn batches(app: AppId, events: &[Value]) -> Vec<Body> {
    events
        .chunks(BATCH)
        .map(|batch| Body {
            app,
            events: batch.len(),
            json: json!({ "Events": batch }).to_string(),
        })
        .collect()
}

/// A device's notification, settled (accepted, gone or given up), as a `Push.AllMemberPush`
/// event: EventType 1 = offline (vendor) push, `ErrCode` 0 when accepted, else 1 with the
/// provider's reason in `ErrInfo`.
pub fn device_event(meta: &TaskMeta, account: &str, send: &DeviceSend) -> Value {
    let accepted = send.status == SendStatus::Accepted;
    let mut event = json!({
        "CallbackCommand": "Push.AllMemberPush",
        "EventType": 1,
        "TaskId": meta.task_id,
        "TaskTime": meta.created_ms / 1000,
        "EventTime": send.at_ms / 1000,
        "To_Account": account,
        "PushPlatform": crate::api::reports::platform_code(send.platform),
        "RegistrationID": send.registration_id,
        "PushStage": 0,
        "ErrCode": u8::from(!accepted),
        "ErrInfo": send.reason,
    });
    if let Some(data_id) = &meta.data_id {
        event["DataId"] = json!(data_id);
    }
    event
}

/// A delivery as a `Push.AllMemberPush` event: EventType 2 = online push.
fn event(d: &Delivered) -> Value {
    let mut event = json!({
        "CallbackCommand": "Push.AllMemberPush",
        "EventType": 2,
        "TaskId": d.task.meta.task_id,
        "TaskTime": d.task.meta.created_ms / 1000,
        "EventTime": d.at_secs,
        "To_Account": &*d.name,
        "PushPlatform": 0,
        "PushStage": 0,
        "ErrCode": 0,
        "ErrInfo": "",
    });
    if let Some(data_id) = &d.task.meta.data_id {
        event["DataId"] = json!(data_id);
    }
    event
}

/// Sends the outbox's due batches whenever this node leads, until the callbacks are dropped.
async fn send_while_leading(inner: Weak<Inner>) {
    while let Some(inner) = inner.upgrade() {
        let full = inner.store.is_leader() && inner.round().await == ROUND;
        if !full {
            let _ = tokio::time::timeout(POLL, inner.queued.notified()).await;
        }
    }
}

impl Inner {
    /// Sends up to `ROUND` due batches at once and records what became of them; returns how
    /// many it sent.
    async fn round(&self) -> usize {
        let now_ms = crate::clock::now_ms();
        let due = match self.store.due_callbacks(now_ms, ROUND).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "callback outbox unreadable; will retry");
                return 0;
            }
        };
        let sent = due.len();
        let attempts = due.into_iter().map(|batch| self.attempt(batch, now_ms));
        let outcomes = futures_util::future::join_all(attempts).await;
        if let Err(error) = self.store.settle_callbacks(outcomes).await {
            // Sent again by the next round: the app may see a batch twice.
            tracing::warn!(%error, "callback outcomes not recorded");
        }
        sent
    }

    /// One attempt at a batch.
    async fn attempt(&self, batch: CallbackBatch, now_ms: u64) -> (AppId, u64, Settled) {
        let CallbackBatch { app, id, callback } = batch;
        let Some(url) = self.urls.get(&app) else {
            tracing::warn!(
                app,
                "callback batch for an app without callback_url: dropped"
            );
            return (app, id, Settled::Done);
        };
        let attempt = callback.attempts + 1;
        if post(&self.client, url, callback.body.clone(), attempt).await {
            return (app, id, Settled::Done);
        }
        crate::metrics::callback_failed();
        if attempt >= ATTEMPTS {
            let events = serde_json::from_str::<Value>(&callback.body)
                .ok()
                .and_then(|body| body["Events"].as_array().map(Vec::len))
                .unwrap_or(0);
            crate::metrics::callback_events_dropped(events);
            tracing::error!(
                url,
                events,
                "callback batch dropped after {ATTEMPTS} attempts"
            );
            return (app, id, Settled::Done);
        }
        let backoff = FIRST_BACKOFF * 2u32.pow(callback.attempts);
        let next_attempt_ms = now_ms + backoff.as_millis() as u64;
        (app, id, Settled::Retry { next_attempt_ms })
    }
}

/// POSTs `body`; whether the app took it (HTTP 2xx).
async fn post(client: &reqwest::Client, url: &str, body: String, attempt: u32) -> bool {
    crate::metrics::callback_attempt(attempt > 1);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            tracing::warn!(attempt, status = %response.status(), "callback refused");
            false
        }
        Err(error) => {
            tracing::warn!(attempt, %error, "callback failed");
            false
        }
    }
}
