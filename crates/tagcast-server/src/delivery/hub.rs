//! Who is connected, which tasks are live, and the fan-out of a new push.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value, json};
use tagcast_store::{AccountId, AppId, RoaringBitmap, Store, TaskMeta};
use tokio::sync::mpsc;

use super::recorder::{Delivered, Recorder};
use crate::sync::{lock, read, write};

/// Accounts handled between two yields of a fan-out, so one huge push never starves the runtime.
const FAN_OUT_CHUNK: usize = 4096;

/// A push that may still be delivered: its frozen audience and its frame, built once.
#[derive(Debug)]
pub struct LiveTask {
    pub app: AppId,
    pub meta: TaskMeta,
    pub audience: RoaringBitmap,
    pub frame: Utf8Bytes,
    revoked: AtomicBool,
}

impl LiveTask {
    pub fn new(app: AppId, meta: TaskMeta, audience: RoaringBitmap) -> Self {
        let frame = push_frame(&meta);
        Self {
            app,
            revoked: AtomicBool::new(meta.revoked_ms.is_some()),
            meta,
            audience,
            frame,
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }
}

/// The JSON frame a client receives: the stored content plus the task's identity and time.
fn push_frame(meta: &TaskMeta) -> Utf8Bytes {
    let mut frame: Map<String, Value> = serde_json::from_str(&meta.content).unwrap_or_default();
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
    live: RwLock<HashMap<AppId, BTreeMap<u64, Arc<LiveTask>>>>,
    /// Held from a push's commit to its entry into `live`, so tasks enter in sequence order
    /// (a connecting session's backlog must never see task N+1 without task N).
    publishing: tokio::sync::Mutex<()>,
    recorder: Recorder,
    next_conn: AtomicU64,
    fan_out_queue: mpsc::UnboundedSender<Arc<LiveTask>>,
    /// Tasks published and not yet fanned out to every connected recipient.
    fanning: Mutex<HashMap<(AppId, u64), Arc<LiveTask>>>,
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

impl Hub {
    /// A hub with the live tasks of the store loaded.
    pub async fn start(
        store: Store,
        recorder: Recorder,
        now_ms: u64,
    ) -> Result<Arc<Self>, tagcast_store::StoreError> {
        let mut live: HashMap<AppId, BTreeMap<u64, Arc<LiveTask>>> = HashMap::new();
        for (app, meta, audience) in store.live_tasks(now_ms).await? {
            let task = Arc::new(LiveTask::new(app, meta, audience));
            live.entry(app).or_default().insert(task.meta.seq, task);
        }
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
            }
        }))
    }

    /// Serializes task creation with its publication; see `publishing`.
    pub async fn publishing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.publishing.lock().await
    }

    /// Makes a new task live and sends it to its connected recipients. Call while holding
    /// `publishing()`.
    pub fn publish(&self, task: Arc<LiveTask>) {
        if task.meta.stored_for_offline() {
            let mut live = write(&self.live);
            let tasks = live.entry(task.app).or_default();
            // Expired tasks leave the cache as new ones arrive.
            tasks.retain(|_, t| t.meta.expires_ms > task.meta.created_ms);
            tasks.insert(task.meta.seq, task.clone());
        }
        // One worker fans out every push, in publication (= sequence) order, so each session
        // receives pushes in order even when they are published back to back.
        lock(&self.fanning).insert((task.app, task.meta.seq), task.clone());
        let _ = self.fan_out_queue.send(task);
    }

    async fn fan_out_worker(hub: Weak<Hub>, mut queue: mpsc::UnboundedReceiver<Arc<LiveTask>>) {
        while let Some(task) = queue.recv().await {
            let Some(hub) = hub.upgrade() else { return };
            let key = (task.app, task.meta.seq);
            hub.fan_out(task).await;
            lock(&hub.fanning).remove(&key);
        }
    }

    async fn fan_out(&self, task: Arc<LiveTask>) {
        let targets = {
            let registry = read(&self.registry);
            let online = registry.online.get(&task.app).cloned().unwrap_or_default();
            online & &task.audience
        };
        let targets: Vec<u32> = targets.iter().collect();
        for chunk in targets.chunks(FAN_OUT_CHUNK) {
            if task.is_revoked() {
                return;
            }
            self.send_to(task.app, chunk, || Outbound::Push(task.clone()));
            tokio::task::yield_now().await;
        }
    }

    fn send_to(&self, app: AppId, accounts: &[u32], message: impl Fn() -> Outbound) {
        let registry = read(&self.registry);
        for account in accounts {
            if let Some(session) = registry.sessions.get(&(app, *account))
                && session.tx.try_send(message()).is_err()
            {
                session.lagged.store(true, Ordering::Release);
            }
        }
    }

    /// Stops a task: no further deliveries, no offline copies, and its connected recipients are
    /// told.
    pub fn revoke(&self, app: AppId, seq: u64, task_id: &str, audience: &RoaringBitmap) {
        let stored = write(&self.live)
            .get_mut(&app)
            .and_then(|tasks| tasks.remove(&seq));
        // An online-only task is in no backlog, but may still be fanning out.
        let fanning = lock(&self.fanning).get(&(app, seq)).cloned();
        for task in stored.iter().chain(&fanning) {
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
        self.send_to(app, &connected, || Outbound::Revoke(frame.clone()));
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
        registry.online.entry(app).or_default().insert(account);
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
            if let Some(online) = registry.online.get_mut(&app) {
                online.remove(account);
            }
        }
    }

    /// Live tasks after `cursor` that the account is in, oldest first.
    pub fn backlog(
        &self,
        app: AppId,
        account: AccountId,
        cursor: u64,
        now_ms: u64,
    ) -> Vec<Arc<LiveTask>> {
        let live = read(&self.live);
        let Some(tasks) = live.get(&app) else {
            return Vec::new();
        };
        tasks
            .range(cursor + 1..)
            .map(|(_, task)| task)
            .filter(|t| {
                t.meta.expires_ms > now_ms && !t.is_revoked() && t.audience.contains(account)
            })
            .cloned()
            .collect()
    }

    /// Records that `task` reached the account.
    pub async fn delivered(&self, task: &Arc<LiveTask>, account: AccountId, name: &Arc<str>) {
        self.recorder
            .record(Delivered {
                task: task.clone(),
                account,
                name: name.clone(),
                at_secs: crate::now_unix(),
            })
            .await;
    }

    /// Closes every session (1001, going away) and writes every recorded delivery and cursor,
    /// so a graceful stop redelivers nothing.
    pub async fn shut_down(&self) {
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
        self.recorder.flush().await;
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
