//! What the three fakes share: a listener on 127.0.0.1 serving one handler, over TLS with
//! HTTP/2 only (APNs) or in plain text with HTTP/1.1 and HTTP/2; a task that ends, with every
//! connection, when its handle is dropped; and the small pieces of an answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The most of a request body that is read; a longer one reaches the handler as `None`.
/// Every provider's limit is far below it (4 KiB).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Streams one client may have open on one HTTP/2 connection (Apple's servers announce
/// about 1000; hyper's default of 200 would cap a benchmark's concurrency).
const MAX_STREAMS: u32 = 1000;

/// A fake's request handling: checks, records and answers one request.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The answer to `request`, whose body is `None` when longer than `MAX_BODY`.
    fn answer(&self, request: Request<Option<Bytes>>) -> Response<Full<Bytes>>;
}

/// A running fake: its handler, its address on 127.0.0.1, and its accept loop (which owns every
/// connection's task).
pub(crate) struct Served<H> {
    pub(crate) state: Arc<H>,
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl<H> Drop for Served<H> {
    /// Stops accepting and ends every connection (their tasks live in the loop's `JoinSet`).
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the handler `make` gives for its address, on an ephemeral port of 127.0.0.1, as a
/// task of the current runtime: over TLS with HTTP/2 only when `tls` is given, else plain
/// HTTP/1.1 or HTTP/2 (prior knowledge).
///
/// # Panics
///
/// When no port can be bound (a test cannot go on without its fake).
pub(crate) async fn serve<H: Handler>(
    tls: Option<TlsAcceptor>,
    make: impl FnOnce(SocketAddr) -> H,
) -> Served<H> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 for a fake provider: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("the fake provider's listener has no address: {e}"));
    let state = Arc::new(make(addr));
    let handler = state.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            while connections.try_join_next().is_some() {}
            let _ = tcp.set_nodelay(true);
            let (handler, tls) = (handler.clone(), tls.clone());
            connections.spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_h2(stream, handler).await;
                        }
                    }
                    None => serve_auto(tcp, handler).await,
                }
            });
        }
    });
    Served { state, addr, task }
}

async fn serve_h2<H: Handler>(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    handler: Arc<H>,
) {
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(MAX_STREAMS)
        .serve_connection(TokioIo::new(io), service(handler))
        .await;
}

async fn serve_auto<H: Handler>(io: tokio::net::TcpStream, handler: Arc<H>) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(MAX_STREAMS);
    let _ = builder
        .serve_connection(TokioIo::new(io), service(handler))
        .await;
}

/// Reads each request's body (at most `MAX_BODY` of it) and hands the request to `handler`.
fn service<H: Handler>(
    handler: Arc<H>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send + 'static,
> {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(body) => Some(body.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => None,
                // The client went away mid-body: nobody reads this answer.
                Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new())),
            };
            Ok(handler.answer(Request::from_parts(parts, body)))
        }
    })
}

/// An answer with `status` and `body`.
pub(crate) fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// An answer with `status` and the JSON `body`.
pub(crate) fn json(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    with(
        reply(status, body.to_string()),
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    )
}

/// `response` with the header `name: value` added.
pub(crate) fn with(
    mut response: Response<Full<Bytes>>,
    name: HeaderName,
    value: HeaderValue,
) -> Response<Full<Bytes>> {
    response.headers_mut().insert(name, value);
    response
}

/// `response` with `Retry-After: seconds`.
pub(crate) fn retry_after(response: Response<Full<Bytes>>, seconds: u64) -> Response<Full<Bytes>> {
    with(response, header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// The text of the header `name`, if it is there once and is visible ASCII; `Err` when it is
/// repeated (providers refuse duplicated headers).
pub(crate) fn single<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, Duplicated> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Duplicated);
    }
    Ok(first.and_then(|v| v.to_str().ok()))
}

/// A header that came more than once.
pub(crate) struct Duplicated;
