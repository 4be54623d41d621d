//! Several tagcast nodes on one database. Each node registers itself in `tagcast_nodes` with a
//! heartbeat, hears of the other nodes' commits through `NOTIFY` (so its audience index follows
//! theirs within milliseconds; it also polls, as notifications are lost while disconnected), and
//! at most one node at a time holds leadership: a session advisory lock on the node's listening
//! connection, which PostgreSQL releases when that connection ends, so leadership moves when
//! its holder dies. Duties that must run once (trimming the change log) run on the leader.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Client};

use super::connection::Pg;
use crate::NodeInfo;
use crate::health::now_ms;
use crate::tables::Result;

/// The channel every commit that changes an audience notifies, with the writing node's id.
pub(crate) const CHANNEL: &str = "tagcast_log";

/// How often a wait looks whether the store is stopping.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Key of the session advisory lock whose holder is the leader.
const LEADER_LOCK: i64 = 0x7461_6763_6173_7402;

/// This node: its identity, whether it leads, and its listening connection (used by the
/// follower thread only).
pub(crate) struct Node {
    pub id: String,
    gone_after: Duration,
    started_ms: u64,
    leader: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    listener: Option<Listener>,
    next_heartbeat: Option<Instant>,
}

/// A connection of its own that `LISTEN`s and holds the leadership lock when this node leads.
struct Listener {
    client: Client,
    /// A message per notification from another node; closed when the connection ends.
    woken: mpsc::Receiver<()>,
}

impl Node {
    pub fn new(id: String, gone_after: Duration) -> Self {
        Self {
            id,
            gone_after,
            started_ms: now_ms(),
            leader: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Waits until another node has committed changes, or `timeout` passes; keeps the listening
    /// connection open, the heartbeat going and the leadership taken when free.
    pub fn wait_for_others(&self, pg: &Pg, timeout: Duration, stop: &AtomicBool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.listener.is_none() {
            match self.listen(pg) {
                Ok(listener) => state.listener = Some(listener),
                Err(error) => {
                    tracing::debug!(%error, "cannot listen for the other nodes' commits");
                    drop(state);
                    sleep_unless(timeout, stop);
                    return;
                }
            }
        }
        if state.next_heartbeat.is_none_or(|due| Instant::now() >= due) {
            state.next_heartbeat = Some(Instant::now() + self.heartbeat_every());
            if let Err(error) = self.heartbeat(pg, &state) {
                tracing::warn!(%error, node = %self.id, "heartbeat failed; reconnecting");
                self.lost(&mut state);
                return;
            }
        }
        let Some(listener) = &state.listener else {
            return;
        };
        let until = Instant::now() + timeout;
        while !stop.load(Ordering::Relaxed) {
            let slice = until
                .saturating_duration_since(Instant::now())
                .min(STOP_CHECK);
            match listener.woken.recv_timeout(slice) {
                Ok(()) => {
                    while listener.woken.try_recv().is_ok() {}
                    return;
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= until => return,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.lost(&mut state),
            }
        }
    }

    /// The nodes whose heartbeat is recent enough, this one included.
    pub fn live_nodes(&self, pg: &Pg) -> Result<Vec<NodeInfo>> {
        let conn = pg.connection()?;
        let rows = pg.block(conn.client().query(
            "SELECT node_id, heartbeat_ms, leader FROM tagcast_nodes \
             WHERE heartbeat_ms >= $1 ORDER BY node_id",
            &[&(now_ms().saturating_sub(self.gone_after.as_millis() as u64) as i64)],
        ))?;
        conn.done();
        let now = now_ms();
        Ok(rows
            .iter()
            .map(|row| NodeInfo {
                id: row.get(0),
                heartbeat_age: Duration::from_millis(
                    now.saturating_sub(row.get::<_, i64>(1) as u64),
                ),
                leader: row.get(2),
            })
            .collect())
    }

    /// Often enough that a live node is never taken for gone.
    fn heartbeat_every(&self) -> Duration {
        (self.gone_after / 5).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    fn listen(&self, pg: &Pg) -> Result<Listener> {
        let (client, mut connection) = pg.connect_direct()?;
        let (wake, woken) = mpsc::channel();
        let own = self.id.clone();
        pg.spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(n) = message
                    && n.payload() != own
                    && wake.send(()).is_err()
                {
                    break;
                }
            }
        });
        // The leadership lock goes with this connection: if this machine vanishes, PostgreSQL
        // should notice within about `gone_after`, not after the system's TCP keepalive (hours).
        let idle = (self.gone_after.as_secs() / 2).max(1);
        pg.block(client.batch_execute(&format!(
            "LISTEN {CHANNEL}; SET tcp_keepalives_idle = {idle}; \
             SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3"
        )))?;
        Ok(Listener { client, woken })
    }

    /// Takes the leadership if it is free, then says so, and that this node is alive.
    fn heartbeat(&self, pg: &Pg, state: &State) -> Result<()> {
        let Some(listener) = &state.listener else {
            return Ok(());
        };
        if !self.is_leader() {
            let row = pg.block(
                listener
                    .client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]),
            )?;
            if row.get::<_, bool>(0) {
                tracing::info!(node = %self.id, "this node is the leader");
                self.leader.store(true, Ordering::Relaxed);
            }
        }
        pg.block(listener.client.execute(
            "INSERT INTO tagcast_nodes (node_id, started_ms, heartbeat_ms, leader) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (node_id) DO UPDATE SET \
             started_ms = EXCLUDED.started_ms, heartbeat_ms = EXCLUDED.heartbeat_ms, \
             leader = EXCLUDED.leader",
            &[
                &self.id,
                &(self.started_ms as i64),
                &(now_ms() as i64),
                &self.is_leader(),
            ],
        ))
        .map(|_| ())
    }

    /// The listening connection ended: with it went the leadership lock.
    fn lost(&self, state: &mut State) {
        state.listener = None;
        state.next_heartbeat = None;
        if self.leader.swap(false, Ordering::Relaxed) {
            tracing::warn!(node = %self.id, "this node lost the leadership with its connection");
        }
    }
}

/// Sleeps for `timeout`, or until `stop` is set.
fn sleep_unless(timeout: Duration, stop: &AtomicBool) {
    let until = Instant::now() + timeout;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(STOP_CHECK.min(until.saturating_duration_since(Instant::now())));
    }
}
