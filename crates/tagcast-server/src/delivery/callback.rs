//! `Push.AllMemberPush` callbacks: delivery events POSTed to the app's URL in batches of up to
//! 100, retried with backoff, on their own tasks so the API never waits for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tagcast_store::AppId;
use tokio::sync::mpsc;

use super::recorder::Delivered;
use crate::config::AppConfig;

/// Events in one callback request (Tencent's maximum).
const BATCH: usize = 100;
/// Events waiting per app; beyond this new events are dropped (and counted in the log).
const QUEUE: usize = 100_000;
/// Attempts per batch before it is dropped.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(2);
/// How often a graceful stop looks whether the queues are empty.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The callback queues of the apps that have a callback URL.
#[derive(Clone, Default)]
pub struct Callbacks {
    queues: HashMap<AppId, mpsc::Sender<Value>>,
    /// Events queued or being sent, for a graceful stop to wait for.
    pending: Arc<AtomicUsize>,
}

impl Callbacks {
    /// Starts one sender task per app with a `callback_url`.
    pub fn start(apps: &[AppConfig]) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        let pending = Arc::new(AtomicUsize::new(0));
        let queues = apps
            .iter()
            .filter_map(|app| {
                let url = app.callback_url.as_ref()?;
                let url = format!(
                    "{url}{}SdkAppid={}&CallbackCommand=Push.AllMemberPush&contenttype=json",
                    if url.contains('?') { "&" } else { "?" },
                    app.sdkappid
                );
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(send_batches(client.clone(), url, rx, pending.clone()));
                Some((app.sdkappid, tx))
            })
            .collect();
        Self { queues, pending }
    }

    /// Waits up to `limit` for every queued event to be sent (or given up on); a graceful stop
    /// calls it so the events of the last deliveries still reach the app.
    pub async fn drain(&self, limit: Duration) {
        let drained = async {
            while self.pending.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        };
        if tokio::time::timeout(limit, drained).await.is_err() {
            let left = self.pending.load(Ordering::Acquire);
            tracing::warn!(left, "callback events still unsent at shutdown: dropped");
        }
    }

    /// Queues one event per delivery whose app has a callback URL.
    pub fn report(&self, deliveries: &[Delivered]) {
        let mut dropped = 0;
        for d in deliveries {
            let Some(queue) = self.queues.get(&d.task.app) else {
                continue;
            };
            match queue.try_send(event(d)) {
                Ok(()) => {
                    self.pending.fetch_add(1, Ordering::AcqRel);
                }
                Err(_) => dropped += 1,
            }
        }
        if dropped > 0 {
            tracing::warn!(dropped, "callback queue full: events dropped");
            crate::metrics::callback_events_dropped(dropped);
        }
    }
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

async fn send_batches(
    client: reqwest::Client,
    url: String,
    mut rx: mpsc::Receiver<Value>,
    pending: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let events = batch.len();
        let body = json!({ "Events": std::mem::take(&mut batch) }).to_string();
        if !send_with_retries(&client, &url, body).await {
            crate::metrics::callback_events_dropped(events);
        }
        pending.fetch_sub(events, Ordering::AcqRel);
    }
}

/// POSTs `body` until the app takes it or every attempt failed (false).
async fn send_with_retries(client: &reqwest::Client, url: &str, body: String) -> bool {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        crate::metrics::callback_attempt(attempt > 1);
        match client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                tracing::warn!(attempt, status = %response.status(), "callback refused")
            }
            Err(error) => tracing::warn!(attempt, %error, "callback failed"),
        }
        crate::metrics::callback_failed();
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    tracing::error!(url, "callback batch dropped after {ATTEMPTS} attempts");
    false
}
