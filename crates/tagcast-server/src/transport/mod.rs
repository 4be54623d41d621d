//! The listener: accepts TCP connections up to a cap, speaks HTTP/1.1 and HTTP/2 over plain TCP
//! or TLS, and closes connections that stay idle or send their request too slowly, so idle or
//! slowloris clients can never take every descriptor.

mod conn;
mod handle;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use handle::ServerHandle;
pub use tls::{TlsError, load_tls};

use crate::config::HttpConfig;
use conn::{ConnState, Connections, TimedIo};

/// Largest buffered HTTP/1 request head; hyper's default (about 400 KiB) is far more than any
/// Tencent request needs and multiplies by the number of connections.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Concurrent HTTP/2 streams of one connection.
const MAX_H2_STREAMS: u32 = 64;
/// Pause after a failed accept (e.g. out of descriptors), so the loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Descriptors kept free for the store, logs and outgoing callbacks when the connection cap is
/// derived from the process's descriptor limit.
pub const RESERVED_FDS: u64 = 128;

/// Accepts and serves connections until `handle` asks for a shutdown, then waits up to the
/// shutdown's grace period for open requests to finish.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: HttpConfig,
    handle: ServerHandle,
) {
    let connections = Connections::new(limits.max_connections);
    let mut shutdown = handle.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(state) = connections.admit() else {
            // Every connection is busy with a request or a WebSocket session: refuse this one
            // rather than exceed the cap.
            drop(stream);
            continue;
        };
        let task = Connection {
            router: router.clone(),
            tls: tls.clone(),
            limits: limits.clone(),
            shutdown: handle.shutdown_signal(),
        };
        tokio::spawn(task.serve(stream, state));
    }
    drop(listener);
    let grace = handle.grace();
    if tokio::time::timeout(grace, connections.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.count(),
            "connections still open after the shutdown grace period"
        );
    }
}

/// Binds `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::ServeError::Bind { addr, source })
}

struct Connection {
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: HttpConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, stream: TcpStream, state: Arc<ConnState>) {
        let _ = stream.set_nodelay(true);
        let io = TimedIo::new(stream, state.clone());
        let watchdog = conn::watchdog(state.clone(), self.limits.clone());
        tokio::select! {
            () = self.handshake_and_serve(io, state) => {}
            () = watchdog => {}
        }
    }

    async fn handshake_and_serve(self, io: TimedIo<TcpStream>, state: Arc<ConnState>) {
        match self.tls.clone() {
            Some(acceptor) => match acceptor.accept(io).await {
                Ok(stream) => self.http(stream, state).await,
                Err(error) => tracing::debug!(%error, "TLS handshake failed"),
            },
            None => self.http(io, state).await,
        }
    }

    async fn http<I>(mut self, io: I, state: Arc<ConnState>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout())
            .max_buf_size(MAX_HEAD_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS);
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let request_guard = state.request_started(request.version());
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                if let Ok(response) = &response {
                    request_guard.finished(response.status());
                }
                response
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => log_connection_end(result),
            _ = self.shutdown.changed() => {
                connection.as_mut().graceful_shutdown();
                log_connection_end(connection.await);
            }
        }
    }
}

fn log_connection_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// The connection cap: `configured`, or (when 0, or above what the process can open) the
/// descriptor limit, raised to its hard maximum first, less `RESERVED_FDS`.
pub fn connection_cap(configured: usize) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let available = limit.saturating_sub(RESERVED_FDS).max(16) as usize;
    match configured {
        0 => available,
        n if n > available => {
            tracing::warn!(
                configured = n,
                available,
                "http.max_connections is above what the descriptor limit allows; using the lower"
            );
            available
        }
        n => n,
    }
}
