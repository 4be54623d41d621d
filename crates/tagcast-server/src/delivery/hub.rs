//! Who is connected, which tasks are live, and the fan-out of a new push.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value, json};
use tagcast_store::{AccountId, AppId, RoaringBitmap, Store, TaskMeta};
use tokio::sync::mpsc;

use super::recorder::{Delivered, Recorder};
use crate::metrics;
use crate::sync::{lock, read, write};

/// Accounts handled between two yields of a fan-out, so one huge push never starves the runtime.
const FAN_OUT_CHUNK: usize = 4096;

/// A push on its way to sessions: its frame, built once, and what the reports and callbacks need.
/// It lives while the push fans out, sits in session queues, or is sent from a backlog; its
/// audience and body are not kept here.
#[derive(Debug)]
pub struct LiveTask {
    pub app: AppId,
    /// The task, without its content (that is in `frame`).
    pub meta: TaskMeta,
    pub frame: Utf8Bytes,
    revoked: Arc<AtomicBool>,
}

impl LiveTask {
    pub fn new(app: AppId, meta: TaskMeta) -> Self {
        let revoked = Arc::new(AtomicBool::new(meta.revoked_ms.is_some()));
        Self::with_flag(app, meta, revoked)
    }

    fn with_flag(app: AppId, mut meta: TaskMeta, revoked: Arc<AtomicBool>) -> Self {
        let frame = push_frame(&meta);
        meta.content = String::new();
        Self {
            app,
            meta,
            frame,
            revoked,
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }
}

/// What a live task keeps in memory for its offline recipients' catch-up: its audience and
/// lifetime, about 64 bytes plus the audience's roaring size (a few hundred bytes for a batch of
/// 100 accounts). Its body stays in the store and is read when a recipient connects.
#[derive(Debug)]
struct Pending {
    expires_ms: u64,
    audience: RoaringBitmap,
    revoked: Arc<AtomicBool>,
}

/// The JSON frame a client receives: the stored content plus the task's identity and time.
fn push_frame(meta: &TaskMeta) -> Utf8Bytes {
    // The content was serialized by the server itself; if it no longer parses, the stored task
    // is corrupt: said loudly, and the frame goes out with the task's identity only.
    let mut frame: Map<String, Value> =
        serde_json::from_str(&meta.content).unwrap_or_else(|error| {
            tracing::error!(task = %meta.task_id, %error, "corrupt stored push content");
            Map::new()
        });
    frame.insert("Type".into(), json!("Push"));
    frame.insert("TaskId".into(), json!(meta.task_id));
    frame.insert("From_Account".into(), json!(meta.from_account));
    frame.insert("SendTime".into(), json!(meta.created_ms / 1000));
    Value::Object(frame).to_string().into()
}

/// What a session is sent.
#[derive(Debug)]
pub enum Outbound {
    Push(Arc<LiveTask>),
    Revoke(Utf8Bytes),
    /// The account connected again elsewhere; this session ends.
    Replaced,
    /// The server is shutting down; this session ends.
    GoingAway,
}

struct Session {
    conn: u64,
    tx: mpsc::Sender<Outbound>,
    /// Set when the session's queue overflowed: it closes, and its client reconnects and
    /// catches up from its cursor.
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct Registry {
    sessions: HashMap<(AppId, AccountId), Session>,
    online: HashMap<AppId, RoaringBitmap>,
}

/// The delivery state shared by the API and the sessions.
pub struct Hub {
    pub store: Store,
    registry: RwLock<Registry>,
    live: RwLock<HashMap<AppId, BTreeMap<u64, Pending>>>,
    /// Held from a push's commit to its entry into `live`, so tasks enter in sequence order
    /// (a connecting session's backlog must never see task N+1 without task N).
    publishing: tokio::sync::Mutex<()>,
    recorder: Recorder,
    next_conn: AtomicU64,
    fan_out_queue: mpsc::UnboundedSender<(Arc<LiveTask>, RoaringBitmap)>,
    /// Tasks published and not yet fanned out to every connected recipient.
    fanning: Mutex<HashMap<(AppId, u64), Arc<LiveTask>>>,
    /// Most live tasks each app may hold for offline recipients.
    max_live_tasks: HashMap<AppId, usize>,
}

/// A session's registration.
pub struct Registration {
    pub conn: u64,
    pub rx: mpsc::Receiver<Outbound>,
    pub lagged: Arc<AtomicBool>,
}

/// Queue length of one session.
const SESSION_QUEUE: usize = 1024;
/// How long a shutdown waits for sessions to close, and how often it looks.
const SHUTDOWN_SESSIONS: std::time::Duration = std::time::Duration::from_secs(2);
const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How long a shutdown waits for queued callback events to be sent.
const SHUTDOWN_CALLBACKS: std::time::Duration = std::time::Duration::from_secs(5);

impl Hub {
    /// A hub with the live tasks of the store loaded; each app holds at most its
    /// `max_live_tasks`.
    pub async fn start(
        store: Store,
        recorder: Recorder,
        now_ms: u64,
        max_live_tasks: HashMap<AppId, usize>,
    ) -> Result<Arc<Self>, tagcast_store::StoreError> {
        let mut live: HashMap<AppId, BTreeMap<u64, Pending>> = HashMap::new();
        for (app, meta, audience) in store.live_tasks(now_ms).await? {
            let pending = Pending {
                expires_ms: meta.expires_ms,
                audience,
                revoked: Arc::new(AtomicBool::new(false)),
            };
            live.entry(app).or_default().insert(meta.seq, pending);
        }
        metrics::set_live_tasks(live.values().map(BTreeMap::len).sum());
        let (fan_out_queue, queue) = mpsc::unbounded_channel();
        Ok(Arc::new_cyclic(|hub| {
            tokio::spawn(Self::fan_out_worker(hub.clone(), queue));
            Self {
                store,
                registry: RwLock::new(Registry::default()),
                live: RwLock::new(live),
                publishing: tokio::sync::Mutex::new(()),
                recorder,
                next_conn: AtomicU64::new(1),
                fan_out_queue,
                fanning: Mutex::new(HashMap::new()),
                max_live_tasks,
            }
        }))
    }

    /// Serializes task creation with its publication; see `publishing`.
    pub async fn publishing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.publishing.lock().await
    }

    /// Whether `app` may create another push kept for offline recipients; expired tasks are
    /// dropped first. Call while holding `publishing()`.
    pub fn has_room(&self, app: AppId, now_ms: u64) -> Result<(), usize> {
        let mut live = write(&self.live);
        let Some(tasks) = live.get_mut(&app) else {
            return Ok(());
        };
        tasks.retain(|_, t| t.expires_ms > now_ms);
        let held = tasks.len();
        metrics::set_live_tasks(live.values().map(BTreeMap::len).sum());
        let limit = self.max_live_tasks.get(&app).copied().unwrap_or(usize::MAX);
        match held < limit {
            true => Ok(()),
            false => Err(limit),
        }
    }

    /// Makes a new task live and sends it to its connected recipients in `audience`. Call while
    /// holding `publishing()`.
    pub fn publish(&self, task: Arc<LiveTask>, audience: RoaringBitmap) {
        tracing::info!(
            app = task.app,
            task = %task.meta.task_id,
            kind = ?task.meta.kind,
            audience = audience.len(),
            offline_until_ms = task.meta.expires_ms,
            "push created"
        );
        metrics::push_created(task.meta.kind);
        if task.meta.stored_for_offline() {
            let pending = Pending {
                expires_ms: task.meta.expires_ms,
                audience: audience.clone(),
                revoked: task.revoked.clone(),
            };
            let mut live = write(&self.live);
            let tasks = live.entry(task.app).or_default();
            // Expired tasks leave the cache as new ones arrive.
            tasks.retain(|_, t| t.expires_ms > task.meta.created_ms);
            tasks.insert(task.meta.seq, pending);
            metrics::set_live_tasks(live.values().map(BTreeMap::len).sum());
        }
        // One worker fans out every push, in publication (= sequence) order, so each session
        // receives pushes in order even when they are published back to back.
        lock(&self.fanning).insert((task.app, task.meta.seq), task.clone());
        metrics::fan_out_queued();
        let _ = self.fan_out_queue.send((task, audience));
    }

    async fn fan_out_worker(
        hub: Weak<Hub>,
        mut queue: mpsc::UnboundedReceiver<(Arc<LiveTask>, RoaringBitmap)>,
    ) {
        while let Some((task, audience)) = queue.recv().await {
            let Some(hub) = hub.upgrade() else { return };
            let key = (task.app, task.meta.seq);
            hub.fan_out(task, audience).await;
            lock(&hub.fanning).remove(&key);
            metrics::fan_out_done();
        }
    }

    async fn fan_out(&self, task: Arc<LiveTask>, audience: RoaringBitmap) {
        let started = std::time::Instant::now();
        let targets = {
            let registry = read(&self.registry);
            let online = registry.online.get(&task.app).cloned().unwrap_or_default();
            online & &audience
        };
        let targets: Vec<u32> = targets.iter().collect();
        let mut queued = 0;
        for chunk in targets.chunks(FAN_OUT_CHUNK) {
            if task.is_revoked() {
                break;
            }
            queued += self.send_to(task.app, chunk, || Outbound::Push(task.clone()));
            tokio::task::yield_now().await;
        }
        tracing::info!(
            app = task.app,
            task = %task.meta.task_id,
            online = targets.len(),
            queued,
            revoked = task.is_revoked(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "push fanned out to connected sessions"
        );
    }

    /// Queues `message` for each listed account's session; returns how many took it.
    fn send_to(&self, app: AppId, accounts: &[u32], message: impl Fn() -> Outbound) -> usize {
        let registry = read(&self.registry);
        let mut queued = 0;
        for account in accounts {
            let Some(session) = registry.sessions.get(&(app, *account)) else {
                continue;
            };
            match session.tx.try_send(message()) {
                Ok(()) => queued += 1,
                Err(_) => session.lagged.store(true, Ordering::Release),
            }
        }
        queued
    }

    /// Stops a task: no further deliveries, no offline copies, and its connected recipients are
    /// told.
    pub fn revoke(&self, app: AppId, seq: u64, task_id: &str, audience: &RoaringBitmap) {
        {
            let mut live = write(&self.live);
            if let Some(pending) = live.get_mut(&app).and_then(|tasks| tasks.remove(&seq)) {
                pending.revoked.store(true, Ordering::Release);
            }
            metrics::set_live_tasks(live.values().map(BTreeMap::len).sum());
        }
        // An online-only task is in no backlog, but may still be fanning out.
        if let Some(task) = lock(&self.fanning).get(&(app, seq)) {
            task.revoked.store(true, Ordering::Release);
        }
        let frame: Utf8Bytes = json!({ "Type": "Revoke", "TaskId": task_id })
            .to_string()
            .into();
        let connected: Vec<u32> = read(&self.registry)
            .online
            .get(&app)
            .map(|online| (online & audience).iter().collect())
            .unwrap_or_default();
        let told = self.send_to(app, &connected, || Outbound::Revoke(frame.clone()));
        tracing::info!(app, task = task_id, told, "push revoked");
    }

    /// Registers a connected account, replacing an earlier session of the same account.
    pub fn register(&self, app: AppId, account: AccountId) -> Registration {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let session = Session {
            conn,
            tx,
            lagged: lagged.clone(),
        };
        let mut registry = write(&self.registry);
        if let Some(old) = registry.sessions.insert((app, account), session) {
            let _ = old.tx.try_send(Outbound::Replaced);
        }
        if registry.online.entry(app).or_default().insert(account) {
            metrics::session_opened();
        }
        Registration { conn, rx, lagged }
    }

    /// Removes a session, unless the account has reconnected since.
    pub fn unregister(&self, app: AppId, account: AccountId, conn: u64) {
        let mut registry = write(&self.registry);
        if registry
            .sessions
            .get(&(app, account))
            .is_some_and(|s| s.conn == conn)
        {
            registry.sessions.remove(&(app, account));
            if let Some(online) = registry.online.get_mut(&app)
                && online.remove(account)
            {
                metrics::session_closed();
            }
        }
    }

    /// Live tasks after `cursor` that the account is in, oldest first, read from the store.
    pub async fn backlog(
        &self,
        app: AppId,
        account: AccountId,
        cursor: u64,
        now_ms: u64,
    ) -> Result<Vec<Arc<LiveTask>>, tagcast_store::StoreError> {
        let missed: Vec<(u64, Arc<AtomicBool>)> = read(&self.live)
            .get(&app)
            .map(|tasks| {
                tasks
                    .range(cursor + 1..)
                    .filter(|(_, t)| {
                        t.expires_ms > now_ms
                            && !t.revoked.load(Ordering::Acquire)
                            && t.audience.contains(account)
                    })
                    .map(|(seq, t)| (*seq, t.revoked.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut tasks = Vec::with_capacity(missed.len());
        for (seq, revoked) in missed {
            if let Some(meta) = self.store.task(app, seq).await? {
                tasks.push(Arc::new(LiveTask::with_flag(app, meta, revoked)));
            }
        }
        Ok(tasks)
    }

    /// Records that `tasks` reached the account.
    pub async fn delivered(&self, tasks: Vec<Arc<LiveTask>>, account: AccountId, name: &Arc<str>) {
        if tasks.is_empty() {
            return;
        }
        let at_secs = crate::now_unix();
        let deliveries = tasks
            .into_iter()
            .map(|task| Delivered {
                task,
                account,
                name: name.clone(),
                at_secs,
            })
            .collect();
        self.recorder.record(deliveries).await;
    }

    /// Closes every session (1001, going away) and waits a little for them to end.
    pub async fn close_sessions(&self) {
        let sessions: Vec<_> = read(&self.registry)
            .sessions
            .values()
            .map(|s| (s.tx.clone(), s.lagged.clone()))
            .collect();
        for (tx, lagged) in sessions {
            if tx.try_send(Outbound::GoingAway).is_err() {
                lagged.store(true, Ordering::Release);
            }
        }
        let drained = async {
            while !read(&self.registry).sessions.is_empty() {
                tokio::time::sleep(SHUTDOWN_POLL).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_SESSIONS, drained)
            .await
            .is_err()
        {
            tracing::warn!("sessions still open at shutdown");
        }
    }

    /// Writes every recorded delivery and cursor, so a graceful stop redelivers nothing, and
    /// sends the last callback events.
    pub async fn flush_deliveries(&self) {
        self.recorder.flush(SHUTDOWN_CALLBACKS).await;
    }

    /// The sequence number of the last task delivered to the account.
    pub async fn cursor(
        &self,
        app: AppId,
        account: AccountId,
    ) -> Result<u64, tagcast_store::StoreError> {
        let stored = self.store.cursor(app, account).await?;
        Ok(self
            .recorder
            .unflushed_cursor(app, account)
            .map_or(stored, |c| c.max(stored)))
    }
}
