//! The bookkeeping of each connection: when it last moved bytes, whether a request is in flight,
//! and the cap on how many are open. A watchdog task per connection closes it when it stays idle
//! past the idle timeout, or when a request has begun arriving and is not complete within the
//! header timeout (slowloris).

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::config::HttpConfig;
use crate::sync::lock;

/// The open connections and the cap on their number.
pub(super) struct Connections {
    inner: Arc<Registry>,
}

struct Registry {
    max: usize,
    /// HTTP connections, oldest first: the candidates for eviction.
    open: Mutex<BTreeMap<u64, Weak<ConnState>>>,
    /// Connections handed over to WebSocket sessions: never evicted, so never scanned.
    sessions: AtomicUsize,
    next_id: AtomicU64,
    /// Signalled whenever a connection closes, for the shutdown's wait.
    closed: Notify,
    epoch: Instant,
}

impl Connections {
    pub(super) fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Registry {
                max,
                open: Mutex::new(BTreeMap::new()),
                sessions: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                closed: Notify::new(),
                epoch: Instant::now(),
            }),
        }
    }

    /// Registers a new connection. At the cap, the oldest connection with no request in flight
    /// is told to close to make room (an idle or slow client never keeps out a new one); when
    /// every connection is busy, the new one is refused (None).
    pub(super) fn admit(&self) -> Option<Arc<ConnState>> {
        // States upgraded here are dropped only after the lock is released: dropping the last
        // reference of a connection that just ended takes the same lock.
        let mut seen = Vec::new();
        let mut open = lock(&self.inner.open);
        if open.len() + self.inner.sessions.load(Ordering::Acquire) >= self.inner.max {
            let evictable = open.values().filter_map(Weak::upgrade).find(|c| {
                let found = c.is_evictable();
                if !found {
                    seen.push(c.clone());
                }
                found
            });
            let Some(evictable) = evictable else {
                drop(open);
                return None;
            };
            evictable.evicted.store(true, Ordering::Release);
            evictable.wake.notify_one();
            open.remove(&evictable.id);
            seen.push(evictable);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(id, self.inner.clone()));
        open.insert(id, Arc::downgrade(&state));
        drop(open);
        drop(seen);
        crate::metrics::connection_opened();
        Some(state)
    }

    pub(super) fn count(&self) -> usize {
        lock(&self.inner.open).len() + self.inner.sessions.load(Ordering::Acquire)
    }

    /// Resolves once no connection is open.
    pub(super) async fn all_closed(&self) {
        loop {
            let notified = self.inner.closed.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One connection's activity, shared by its I/O wrapper, its requests and its watchdog. Dropped
/// (and the connection's slot freed) when the last of them ends, which for a WebSocket is when
/// the session ends.
pub(super) struct ConnState {
    id: u64,
    registry: Arc<Registry>,
    /// Milliseconds since the registry's epoch of the last byte read or written.
    last_activity_ms: AtomicU64,
    /// Bytes arrived since the last response (or the connection's start): a request is on its
    /// way.
    read_since_idle: AtomicBool,
    /// When the first of those bytes arrived.
    request_begun_ms: AtomicU64,
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
    /// HTTP/2 clients legitimately send pings while idle; only the idle rule applies to them.
    http2: AtomicBool,
    evicted: AtomicBool,
    wake: Notify,
}

impl ConnState {
    fn new(id: u64, registry: Arc<Registry>) -> Self {
        let now = registry.epoch.elapsed().as_millis() as u64;
        Self {
            id,
            registry,
            last_activity_ms: AtomicU64::new(now),
            read_since_idle: AtomicBool::new(false),
            request_begun_ms: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.registry.epoch.elapsed().as_millis() as u64
    }

    fn is_evictable(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.upgraded.load(Ordering::Acquire)
    }

    fn touch(&self, read: bool) {
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Relaxed);
        if read {
            self.read_since_idle.store(true, Ordering::Relaxed);
        }
    }

    /// Marks a request in flight until the returned guard is finished or dropped.
    pub(super) fn request_started(self: &Arc<Self>, version: Version) -> RequestGuard {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// How long the connection may still stay as it is, or None when it must close now.
    fn time_left(&self, limits: &HttpConfig) -> Option<Duration> {
        if self.evicted.load(Ordering::Acquire) {
            return None;
        }
        // Requests in flight have their own body timeout; WebSocket sessions their keepalive.
        if self.in_flight.load(Ordering::Acquire) > 0 || self.upgraded.load(Ordering::Acquire) {
            return Some(limits.idle_timeout());
        }
        let now = self.now_ms();
        let slow_request =
            self.read_since_idle.load(Ordering::Relaxed) && !self.http2.load(Ordering::Relaxed);
        let (since, limit) = match slow_request {
            true => (
                self.request_begun_ms.load(Ordering::Relaxed),
                limits.header_timeout(),
            ),
            false => (
                self.last_activity_ms.load(Ordering::Relaxed),
                limits.idle_timeout(),
            ),
        };
        let deadline = since + limit.as_millis() as u64;
        (deadline > now).then(|| Duration::from_millis(deadline - now))
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        if self.upgraded.load(Ordering::Acquire) {
            self.registry.sessions.fetch_sub(1, Ordering::AcqRel);
        } else {
            lock(&self.registry.open).remove(&self.id);
        }
        crate::metrics::connection_closed();
        self.registry.closed.notify_waiters();
    }
}

/// A request in flight on its connection.
pub(super) struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    /// The response is ready; a 101 hands the connection over to a WebSocket session.
    pub(super) fn finished(self, status: StatusCode) {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // Held while moving, so the connection is counted once throughout.
            let state = &self.0;
            let mut open = lock(&state.registry.open);
            open.remove(&state.id);
            state.registry.sessions.fetch_add(1, Ordering::AcqRel);
            state.upgraded.store(true, Ordering::Release);
            drop(open);
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.read_since_idle.store(false, Ordering::Relaxed);
        }
    }
}

/// Resolves when the connection must be closed: idle too long, a request too slow, or evicted
/// to make room for a new connection.
pub(super) async fn watchdog(state: Arc<ConnState>, limits: HttpConfig) {
    while let Some(left) = state.time_left(&limits) {
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            () = state.wake.notified() => {}
        }
    }
    tracing::debug!(id = state.id, "closing an idle, slow or evicted connection");
}

/// The connection's socket, recording each byte moved in its `ConnState`. It also holds the
/// connection's slot: a WebSocket session keeps it after the HTTP exchange ends.
pub(super) struct TimedIo<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> TimedIo<S> {
    pub(super) fn new(inner: S, state: Arc<ConnState>) -> Self {
        Self { inner, state }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.touch(true);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch(false);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch(false);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
