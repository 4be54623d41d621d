//! Collects deliveries and writes them to the store a few times a second: the per-task delivery
//! records behind statistics and trace, the per-account cursors, and the callback events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tagcast_store::{AccountId, AppId, Deliveries, RoaringBitmap, Store};
use tokio::sync::{mpsc, oneshot};

use super::callback::Callbacks;
use super::hub::LiveTask;
use crate::sync::lock;

/// How often collected deliveries are written.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Deliveries collected before a write even before `FLUSH_EVERY`.
const FLUSH_AT: usize = 50_000;
/// Batches of deliveries (each one session's send, at most 64) waiting for the recorder;
/// sessions wait when it is this far behind.
const QUEUE: usize = 4096;

/// One push that reached one account.
pub struct Delivered {
    pub task: Arc<LiveTask>,
    pub account: AccountId,
    pub name: Arc<str>,
    pub at_secs: u64,
    pub route: Route,
}

/// How a push reached an account over the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The account was online when the push was sent.
    Live,
    /// From the account's backlog when it connected.
    Backlog,
}

impl Route {
    /// The route's name in the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::Live => "online",
            Route::Backlog => "backlog",
        }
    }
}

/// Cursors recorded but not yet written, so a quick reconnect does not see a stale cursor.
type Unflushed = Arc<Mutex<HashMap<(AppId, AccountId), u64>>>;

/// What the recorder's task is sent.
enum Record {
    Delivered(Vec<Delivered>),
    /// Write everything collected now, then answer.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    unflushed: Unflushed,
    callbacks: Callbacks,
}

impl Recorder {
    pub fn start(store: Store, callbacks: Callbacks) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let unflushed = Unflushed::default();
        tokio::spawn(run(store, callbacks.clone(), rx, unflushed.clone()));
        Self {
            tx,
            unflushed,
            callbacks,
        }
    }

    /// Records deliveries (of one session's batch: one lock and one message for all of them).
    pub async fn record(&self, deliveries: Vec<Delivered>) {
        {
            let mut unflushed = lock(&self.unflushed);
            for d in &deliveries {
                let cursor = unflushed.entry((d.task.app, d.account)).or_default();
                *cursor = (*cursor).max(d.task.meta.seq);
            }
        }
        // The recorder only stops with the runtime.
        let _ = self.tx.send(Record::Delivered(deliveries)).await;
    }

    /// Writes every delivery recorded so far, then sends their callback events (for at most
    /// `callbacks_within`); returns once the deliveries are durable (or failed).
    pub async fn flush(&self, callbacks_within: Duration) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Record::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
        self.callbacks.drain(callbacks_within).await;
    }

    /// The account's cursor as recorded but perhaps not yet written.
    pub fn unflushed_cursor(&self, app: AppId, account: AccountId) -> Option<u64> {
        lock(&self.unflushed).get(&(app, account)).copied()
    }
}

async fn run(
    store: Store,
    callbacks: Callbacks,
    mut rx: mpsc::Receiver<Record>,
    unflushed: Unflushed,
) {
    let mut pending = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let mut flushed = None;
        tokio::select! {
            received = rx.recv() => match received {
                Some(Record::Delivered(delivered)) => {
                    pending.extend(delivered);
                    if pending.len() < FLUSH_AT {
                        continue;
                    }
                }
                Some(Record::Flush(done)) => flushed = Some(done),
                None => {
                    flush(&store, &callbacks, &unflushed, std::mem::take(&mut pending)).await;
                    return;
                }
            },
            _ = tick.tick() => {}
        }
        if !pending.is_empty() {
            flush(&store, &callbacks, &unflushed, std::mem::take(&mut pending)).await;
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

async fn flush(store: &Store, callbacks: &Callbacks, unflushed: &Unflushed, batch: Vec<Delivered>) {
    let mut by_second: HashMap<(AppId, u64, u64), Deliveries> = HashMap::new();
    let mut cursors: HashMap<(AppId, AccountId), u64> = HashMap::new();
    for d in &batch {
        let (app, seq) = (d.task.app, d.task.meta.seq);
        let second = by_second
            .entry((app, seq, d.at_secs))
            .or_insert_with(|| Deliveries {
                app,
                seq,
                second: d.at_secs,
                accounts: RoaringBitmap::new(),
                caught_up: RoaringBitmap::new(),
            });
        second.accounts.insert(d.account);
        if d.route == Route::Backlog {
            second.caught_up.insert(d.account);
        }
        let cursor = cursors.entry((app, d.account)).or_default();
        *cursor = (*cursor).max(seq);
    }
    let deliveries = by_second.into_values().collect();
    let written: Vec<_> = cursors
        .into_iter()
        .map(|((app, account), seq)| (app, account, seq))
        .collect();
    let bodies = callbacks.bodies(&batch);
    let events: Vec<usize> = bodies.iter().map(|b| b.events).collect();
    let bodies = bodies.into_iter().map(|b| (b.app, b.json)).collect();
    match store
        .record_deliveries(deliveries, written.clone(), bodies)
        .await
    {
        Ok(dropped) => {
            forget_written(unflushed, &written);
            callbacks.stored();
            if !dropped.is_empty() {
                let lost = dropped.iter().map(|i| events[*i]).sum();
                tracing::warn!(events = lost, "callback outbox full: events dropped");
                crate::metrics::callback_events_dropped(lost);
            }
        }
        Err(error) => tracing::error!(%error, count = batch.len(), "delivery records not written"),
    }
}

/// Drops the cursors now on disk, unless a newer delivery came in meanwhile.
fn forget_written(unflushed: &Unflushed, written: &[(AppId, AccountId, u64)]) {
    let mut unflushed = lock(unflushed);
    for (app, account, seq) in written {
        if unflushed.get(&(*app, *account)) == Some(seq) {
            unflushed.remove(&(*app, *account));
        }
    }
}
