//! How a WebSocket session ends, and the keepalive and limits on what a client sends: pings on
//! an interval, a deadline for the answer, a budget of messages per second.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, close_code};

use crate::config::WsConfig;

/// Application close codes; see docs/websocket.md.
pub const CLOSE_REPLACED: u16 = 4000;
pub const CLOSE_TOO_SLOW: u16 = 4001;
pub const CLOSE_KEEPALIVE: u16 = 4002;

/// Why a session ended, and what its client is told.
#[derive(Debug)]
pub enum End {
    /// The client closed, or the connection dropped: nothing more to send.
    ClientGone,
    /// The account connected again elsewhere.
    Replaced,
    /// The session's queue or write buffer overflowed, or a write did not finish in time; the
    /// client reconnects and catches up.
    TooSlow,
    /// The client stopped answering pings.
    KeepaliveTimeout,
    /// The client sent a message over the limit.
    MessageTooBig,
    /// The client sent more messages per second than allowed.
    Flooding,
    /// The server is shutting down.
    GoingAway,
    /// The store could not record the login; the client retries later.
    StoreUnavailable,
    /// Writing to the client failed, or the store did: nothing more can be sent.
    Failed(axum::Error),
}

impl End {
    /// The close frame the client gets, if one can still be sent.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::ClientGone | End::Failed(_) => return None,
            End::Replaced => (CLOSE_REPLACED, "replaced by a newer session"),
            End::TooSlow => (
                CLOSE_TOO_SLOW,
                "too slow: pushes queued faster than read; reconnect to catch up",
            ),
            End::KeepaliveTimeout => (CLOSE_KEEPALIVE, "keepalive timeout: no pong received"),
            End::MessageTooBig => (close_code::SIZE, "message too big"),
            End::Flooding => (close_code::POLICY, "too many messages per second"),
            End::GoingAway => (close_code::AWAY, "server shutting down"),
            End::StoreUnavailable => (close_code::ERROR, "the store is unavailable; retry later"),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

pub struct Keepalive {
    interval: Duration,
    pong_timeout: Duration,
    next_ping: Instant,
    /// Set when a ping is sent and nothing has been heard since.
    awaiting_since: Option<Instant>,
    budget: u32,
    used: u32,
    window_start: Instant,
}

impl Keepalive {
    pub fn new(limits: &WsConfig) -> Self {
        let now = Instant::now();
        Self {
            interval: limits.ping_interval(),
            pong_timeout: limits.pong_timeout(),
            next_ping: now + limits.ping_interval(),
            awaiting_since: None,
            budget: limits.max_client_messages_per_sec,
            used: 0,
            window_start: now,
        }
    }

    /// Resolves when the next ping is due, or when the last one's answer is overdue.
    pub async fn due(&self) {
        let due = match self.awaiting_since {
            Some(since) => since + self.pong_timeout,
            None => self.next_ping,
        };
        tokio::time::sleep_until(due.into()).await;
    }

    /// The ping to send now, or None when the last one went unanswered.
    pub fn ping(&mut self) -> Option<Message> {
        if self.awaiting_since.is_some() {
            return None;
        }
        let now = Instant::now();
        self.awaiting_since = Some(now);
        self.next_ping = now + self.interval;
        Some(Message::Ping(Default::default()))
    }

    /// Takes what the client sent: any frame shows it is alive. Some when the session ends.
    pub fn heard(&mut self, incoming: Option<Result<Message, axum::Error>>) -> Option<End> {
        match incoming {
            None | Some(Ok(Message::Close(_))) => Some(End::ClientGone),
            Some(Err(error)) => Some(read_failure(&error)),
            Some(Ok(_)) => {
                self.awaiting_since = None;
                (!self.within_budget()).then_some(End::Flooding)
            }
        }
    }

    fn within_budget(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        self.used += 1;
        self.used <= self.budget
    }
}

/// A read error: an over-long message gets 1009, anything else means the client is gone.
fn read_failure(error: &axum::Error) -> End {
    let too_big = std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    match too_big {
        true => End::MessageTooBig,
        false => End::ClientGone,
    }
}
