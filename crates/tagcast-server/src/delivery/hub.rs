//! Who is connected, which tasks are live, and the fan-out of a new push.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value, json};
use tagcast_store::{AccountId, AppId, Event, RoaringBitmap, Store, TaskMeta};
use tokio::sync::mpsc;

use super::recorder::{Delivered, Recorder, Route};
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
    /// Sessions whose login event has not come back from the store yet, by session id.
    waiting: HashMap<u64, (AppId, AccountId, Session)>,
}

impl Registry {
    /// Makes the waiting `session` its account's, ending the account's earlier session; false
    /// if no such session waits here.
    fn register_waiting(&mut self, session: u64) -> bool {
        let Some((app, account, new)) = self.waiting.remove(&session) else {
            return false;
        };
        if let Some(old) = self.sessions.insert((app, account), new) {
            let _ = old.tx.try_send(Outbound::Replaced);
        }
        if self.online.entry(app).or_default().insert(account) {
            metrics::session_opened();
        }
        true
    }

    fn remove(&mut self, app: AppId, account: AccountId) -> Option<Session> {
        let session = self.sessions.remove(&(app, account))?;
        if let Some(online) = self.online.get_mut(&app)
            && online.remove(account)
        {
            metrics::session_closed();
        }
        Some(session)
    }
}

/// What the store's events have been applied up to; held while they are, so that they are
/// applied one at a time, in order.
#[derive(Default)]
pub struct Applied {
    /// The last task published, per app: its creation events up to there are done.
    published: HashMap<AppId, u64>,
    /// An event could not be applied (the store failed); the tasks are read again.
    reload: bool,
}

/// The delivery state shared by the API and the sessions. What happens to tasks and sessions
/// comes from the store's event feed, for this node's pushes and logins as for the other
/// nodes': every node applies the same events in the same order (see `tagcast_store::Event`).
pub struct Hub {
    pub store: Store,
    registry: RwLock<Registry>,
    live: RwLock<HashMap<AppId, BTreeMap<u64, Pending>>>,
    /// Held while events are applied, so tasks enter `live` in sequence order (a connecting
    /// session's backlog must never see task N+1 without task N).
    applied: tokio::sync::Mutex<Applied>,
    recorder: Recorder,
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
/// Longest wait between two looks at the event feed, so a failed event is retried.
const EVENTS_POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl Hub {
    /// A hub with the live tasks of the store loaded, following the store's events; each app
    /// holds at most its `max_live_tasks`.
    pub async fn start(
        store: Store,
        recorder: Recorder,
        now_ms: u64,
        max_live_tasks: HashMap<AppId, usize>,
    ) -> Result<Arc<Self>, tagcast_store::StoreError> {
        let mut live: HashMap<AppId, BTreeMap<u64, Pending>> = HashMap::new();
        let mut applied = Applied::default();
        for (app, meta, audience) in store.live_tasks(now_ms).await? {
            let pending = Pending {
                expires_ms: meta.expires_ms,
                audience,
                revoked: Arc::new(AtomicBool::new(false)),
            };
            applied.published.insert(app, meta.seq);
            live.entry(app).or_default().insert(meta.seq, pending);
        }
        metrics::set_live_tasks(live.values().map(BTreeMap::len).sum());
        let (fan_out_queue, queue) = mpsc::unbounded_channel();
        let hub = Arc::new(Self {
            store,
            registry: RwLock::new(Registry::default()),
            live: RwLock::new(live),
            applied: tokio::sync::Mutex::new(applied),
            recorder,
            fan_out_queue,
            fanning: Mutex::new(HashMap::new()),
            max_live_tasks,
        });
        // Spawned once the hub exists: a task that ran before could not reach it.
        tokio::spawn(Self::fan_out_worker(Arc::downgrade(&hub), queue));
        tokio::spawn(Self::follow_events(Arc::downgrade(&hub)));
        Ok(hub)
    }

    /// Applies the store's events as they come, until the hub is dropped.
    async fn follow_events(hub: Weak<Hub>) {
        while let Some(hub) = hub.upgrade() {
            let _ = tokio::time::timeout(EVENTS_POLL, hub.store.events().woken()).await;
            hub.apply_events().await;
        }
    }

    /// Applies every event waiting; once it returns, each event that was in the feed when it
    /// was called is applied.
    pub async fn apply_events(&self) {
        let mut applied = self.applied.lock().await;
        self.apply_events_locked(&mut applied, None).await;
    }

    /// Holds the events back: a push's room is checked, it is created and its event applied
    /// while this is held (see `apply_events_locked`).
    pub async fn publishing(&self) -> tokio::sync::MutexGuard<'_, Applied> {
        self.applied.lock().await
    }

    /// Applies every event waiting. `created` is a task just created by this node, so its
    /// event needs no read from the store.
    pub async fn apply_events_locked(
        &self,
        applied: &mut Applied,
        created: Option<(AppId, &TaskMeta, &RoaringBitmap)>,
    ) {
        let taken = self.store.events().take();
        if taken.missed || applied.reload {
            self.reload(applied).await;
        }
        for (app, event) in taken.events {
            let outcome = match event {
                Event::TaskCreated(seq) => self.task_created(applied, app, seq, created).await,
                Event::TaskRevoked(seq) => self.task_revoked(app, seq).await,
                Event::Login { account, session } => {
                    self.logged_in(app, account, session);
                    Ok(())
                }
            };
            if let Err(error) = outcome {
                tracing::warn!(app, ?event, %error, "a store event could not be applied; reading the tasks again");
                applied.reload = true;
            }
        }
    }

    async fn task_created(
        &self,
        applied: &mut Applied,
        app: AppId,
        seq: u64,
        created: Option<(AppId, &TaskMeta, &RoaringBitmap)>,
    ) -> Result<(), tagcast_store::StoreError> {
        if applied.published.get(&app).is_some_and(|last| seq <= *last) {
            return Ok(());
        }
        let (meta, audience) = match created {
            Some((a, meta, audience)) if a == app && meta.seq == seq => {
                (meta.clone(), audience.clone())
            }
            _ => match self.store.task_with_audience(app, seq).await? {
                Some(task) => task,
                None => return Ok(()),
            },
        };
        applied.published.insert(app, seq);
        self.publish(Arc::new(LiveTask::new(app, meta)), audience);
        Ok(())
    }

    async fn task_revoked(&self, app: AppId, seq: u64) -> Result<(), tagcast_store::StoreError> {
        if let Some((meta, audience)) = self.store.task_with_audience(app, seq).await? {
            self.revoke(app, seq, &meta.task_id, &audience);
        }
        Ok(())
    }

    /// Events were lost: the live tasks are read again. Those not yet published are; those
    /// held that are no longer live were revoked (or expired) meanwhile. Waiting sessions are
    /// registered.
    async fn reload(&self, applied: &mut Applied) {
        let now_ms = crate::clock::now_ms();
        let tasks = match self.store.live_tasks(now_ms).await {
            Ok(tasks) => tasks,
            Err(error) => {
                tracing::warn!(%error, "could not read the live tasks; will retry");
                applied.reload = true;
                return;
            }
        };
        applied.reload = false;
        let still_live: std::collections::HashSet<(AppId, u64)> = tasks
            .iter()
            .map(|(app, meta, _)| (*app, meta.seq))
            .collect();
        for (app, tasks) in write(&self.live).iter_mut() {
            tasks.retain(|seq, pending| {
                let live = still_live.contains(&(*app, *seq));
                if !live {
                    pending.revoked.store(true, Ordering::Release);
                }
                live
            });
        }
        for (app, meta, audience) in tasks {
            if applied
                .published
                .get(&app)
                .is_some_and(|last| meta.seq <= *last)
            {
                continue;
            }
            applied.published.insert(app, meta.seq);
            self.publish(Arc::new(LiveTask::new(app, meta)), audience);
        }
        let mut registry = write(&self.registry);
        let waiting: Vec<u64> = registry.waiting.keys().copied().collect();
        for session in waiting {
            registry.register_waiting(session);
        }
        drop(registry);
        tracing::info!("live tasks read again after missed store events");
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

    /// Makes a new task live and sends it to its connected recipients in `audience`.
    fn publish(&self, task: Arc<LiveTask>, audience: RoaringBitmap) {
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
    fn revoke(&self, app: AppId, seq: u64, task_id: &str, audience: &RoaringBitmap) {
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

    /// Registers a connected account: tells every node (its earlier session, wherever it is,
    /// ends) and returns once this node has registered it, in the order of the store's events.
    pub async fn login(
        &self,
        app: AppId,
        account: AccountId,
    ) -> Result<Registration, tagcast_store::StoreError> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        // Unique among the nodes without asking them.
        let conn = rand::random::<u64>();
        let session = Session {
            conn,
            tx,
            lagged: lagged.clone(),
        };
        write(&self.registry)
            .waiting
            .insert(conn, (app, account, session));
        if let Err(error) = self.store.login(app, account, conn).await {
            write(&self.registry).waiting.remove(&conn);
            return Err(error);
        }
        self.apply_events().await;
        Ok(Registration { conn, rx, lagged })
    }

    /// Applies a login event: this node's waiting session becomes the account's, ending any
    /// other session of the account here; another node's login ends the account's session here.
    fn logged_in(&self, app: AppId, account: AccountId, session: u64) {
        let mut registry = write(&self.registry);
        if !registry.register_waiting(session)
            && let Some(old) = registry.remove(app, account)
        {
            let _ = old.tx.try_send(Outbound::Replaced);
        }
    }

    /// How many accounts of `app` have a session on this node.
    pub fn online_count(&self, app: AppId) -> u64 {
        read(&self.registry).online.get(&app).map_or(0, |o| o.len())
    }

    /// How many of `accounts` of `app` have a session on this node.
    pub fn online_among(&self, app: AppId, accounts: &RoaringBitmap) -> u64 {
        let registry = read(&self.registry);
        registry
            .online
            .get(&app)
            .map_or(0, |online| online.intersection_len(accounts))
    }

    /// Removes a session, unless the account has reconnected since.
    pub fn unregister(&self, app: AppId, account: AccountId, conn: u64) {
        let mut registry = write(&self.registry);
        registry.waiting.remove(&conn);
        if registry
            .sessions
            .get(&(app, account))
            .is_some_and(|s| s.conn == conn)
        {
            registry.remove(app, account);
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

    /// Records that `tasks` reached the account by `route`.
    pub async fn delivered(
        &self,
        tasks: Vec<Arc<LiveTask>>,
        account: AccountId,
        name: &Arc<str>,
        route: Route,
    ) {
        crate::metrics::delivered(route.label(), tasks.len());
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
                route,
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
