//! The tagcast HTTP server: Tencent Cloud Chat's push REST API over HTTP or HTTPS.
//!
//! Every request under `/v4/` goes through the same steps, in the order the spec recommends:
//! route, method, app and UserSig, admin, rate limit, body, then the API's own handler. Every
//! API-level outcome is HTTP 200 with the `ActionStatus/ErrorCode/ErrorInfo` envelope.

mod api;
mod auth;
mod clock;
mod console;
mod delivery;

pub use clock::now_unix;
pub mod config;
mod metrics;
mod retention;
mod routes;
mod state;
mod sync;
mod transport;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tagcast_proto::{ApiError, Code, Envelope};
use tagcast_store::{HealthStatus, Location, Store};

use crate::api::{Ctx, Reply};
use crate::config::{HttpConfig, ServerConfig};
use crate::delivery::{Callbacks, Hub, Notifier, Recorder};
use crate::routes::Route;
use crate::state::{AppState, SharedState};

pub use transport::ServerHandle;

/// Why the server could not start or stopped with an error. Each message names the file, key or
/// address at fault.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `store` says where, as `ServerConfig::store_description` does (no password).
    #[error("cannot open the {store}: {source}")]
    Store {
        store: String,
        source: tagcast_store::StoreError,
    },
    #[error(transparent)]
    Tls(#[from] transport::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A push provider's credentials; the message names the app and the config key.
    #[error("{0}")]
    Providers(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `config` until `handle` is told to shut down. The TLS files and the address are
/// checked before the store is opened, so a bad config never touches the data.
pub async fn serve(config: ServerConfig, handle: ServerHandle) -> Result<(), ServeError> {
    let result = start_and_serve(config, handle.clone()).await;
    if result.is_err() {
        handle.set_failed();
    }
    result
}

async fn start_and_serve(config: ServerConfig, handle: ServerHandle) -> Result<(), ServeError> {
    // Every rustls user in the process (TLS server, callback client) shares the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = config.tls.as_ref().map(transport::load_tls).transpose()?;
    let apps = load_apps(&config)?;
    let listener = transport::bind(config.listen).await?;
    let described = config.store_description();
    let store_error = |source| ServeError::Store {
        store: described.clone(),
        source,
    };
    let opening = Instant::now();
    let store = Store::open_at(&config.store, config.store_options())
        .await
        .map_err(store_error)?;
    let file = match &config.store {
        Location::Embedded(dir) => Some(dir.join(tagcast_store::FILE_NAME)),
        Location::Postgres(_) => None,
    };
    let seconds = opening.elapsed().as_secs_f64();
    metrics::store_opened(file, seconds);
    tracing::info!(store = %described, seconds, "store opened");
    let state = shared_state(&config, apps, store)
        .await
        .map_err(store_error)?;
    let mut http = config.http.clone();
    http.max_connections = transport::connection_cap(http.max_connections);
    tracing::info!(max_connections = http.max_connections, "connection cap");
    handle.set_listening(listener.local_addr()?);
    // On shutdown, sessions are closed while HTTP requests finish, then deliveries are written.
    let mut stopping = handle.shutdown_signal();
    let hub = state.hub.clone();
    let close_sessions = async move {
        if stopping.wait_for(|stop| *stop).await.is_ok() {
            hub.close_sessions().await;
        }
    };
    let serving = transport::run(listener, tls, router(state.clone()), http, handle);
    tokio::join!(serving, close_sessions);
    state.hub.flush_deliveries().await;
    // Its thread uses the runtime, which goes away when this returns.
    if !state.store.stop_following(Duration::from_secs(5)).await {
        tracing::warn!("the store's follower did not stop within 5 s");
    }
    Ok(())
}

/// Each app with its push providers' credentials loaded.
fn load_apps(config: &ServerConfig) -> Result<HashMap<u64, AppState>, ServeError> {
    config
        .apps
        .iter()
        .enumerate()
        .map(|(i, app)| {
            let state =
                AppState::load(app).map_err(|e| ServeError::Providers(format!("apps[{i}].{e}")))?;
            let providers = state.providers.describe();
            if !providers.is_empty() {
                tracing::info!(app = app.sdkappid, providers = ?providers, "push providers loaded");
            }
            Ok((app.sdkappid, state))
        })
        .collect()
}

async fn shared_state(
    config: &ServerConfig,
    apps: HashMap<u64, AppState>,
    store: Store,
) -> Result<Arc<SharedState>, tagcast_store::StoreError> {
    let callbacks = Callbacks::start(store.clone(), &config.apps);
    let recorder = Recorder::start(store.clone(), callbacks.clone());
    let max_live_tasks = config
        .apps
        .iter()
        .map(|app| (app.sdkappid, app.limits.max_live_tasks))
        .collect();
    let hub = Hub::start(store.clone(), recorder, clock::now_ms(), max_live_tasks).await?;
    let providers = apps
        .iter()
        .map(|(id, app)| (*id, app.providers.clone()))
        .collect();
    let notifier = Notifier::start(store.clone(), providers, callbacks.clone());
    let state = Arc::new(SharedState {
        apps,
        store,
        hub,
        _notifier: notifier,
        http: config.http.clone(),
        websocket: config.websocket.clone(),
        console: console::Console::new(&config.console, config.tls.is_some()),
    });
    tokio::spawn(share_rates(Arc::downgrade(&state)));
    let keep = config.reports.keep();
    tokio::spawn(retention::remove_ended_pushes(Arc::downgrade(&state), keep));
    Ok(state)
}

/// How often the rates' split over the live nodes is brought up to date.
const NODES_REFRESH: Duration = Duration::from_secs(1);

/// Keeps each app's rate limits split evenly over the live nodes, so that together they admit
/// what one node alone would.
async fn share_rates(state: std::sync::Weak<SharedState>) {
    let mut tick = tokio::time::interval(NODES_REFRESH);
    while let Some(state) = state.upgrade() {
        match state.store.nodes().await {
            Ok(nodes) => state
                .apps
                .values()
                .for_each(|app| app.share_with(nodes.len())),
            Err(error) => tracing::debug!(%error, "live nodes unknown; rates keep their split"),
        }
        drop(state);
        tick.tick().await;
    }
}

fn router(state: Arc<SharedState>) -> Router {
    let console = state.console.as_ref().map(console::Console::routes);
    Router::new()
        .merge(console.unwrap_or_default())
        .route("/healthz", get(health))
        .route("/metrics", get(render_metrics))
        .route("/cluster", get(cluster))
        .route("/webpush/vapid_public_key", get(vapid_public_key))
        .route("/ws", get(delivery::websocket))
        .route("/client/tagcast.js", get(console::client_module))
        .route("/v4/{*path}", any(v4))
        .fallback(any(v4))
        // Each app has its own body limit, enforced while reading the body in `handle`.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn render_metrics(State(state): State<Arc<SharedState>>) -> String {
    metrics::render(&state.store.health())
}

/// The VAPID public key browsers of app `sdkappid` subscribe with (`applicationServerKey`),
/// base64url; public, so no UserSig is asked for.
async fn vapid_public_key(State(state): State<Arc<SharedState>>, uri: Uri) -> Response {
    let app = auth::query_params(uri.query().unwrap_or(""))
        .get("sdkappid")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| state.apps.get(&id));
    match app.and_then(|app| app.providers.webpush.as_ref()) {
        Some(webpush) => (
            axum::http::StatusCode::OK,
            format!("{}\n", webpush.vapid.public_key()),
        )
            .into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "no app with that sdkappid has [apps.webpush]\n",
        )
            .into_response(),
    }
}

/// This node and the live nodes sharing its store, as JSON (see docs/operations.md).
async fn cluster(State(state): State<Arc<SharedState>>) -> Response {
    let store = &state.store;
    match store.nodes().await {
        Ok(nodes) => {
            let nodes: Vec<_> = nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "id": n.id,
                        "heartbeat_age_ms": n.heartbeat_age.as_millis() as u64,
                        "leader": n.leader,
                    })
                })
                .collect();
            axum::Json(serde_json::json!({
                "node": store.node_id(),
                "leader": store.is_leader(),
                "nodes": nodes,
            }))
            .into_response()
        }
        Err(error) => {
            let text = format!("the store cannot list the nodes: {error}\n");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, text).into_response()
        }
    }
}

/// `ok` while the store commits writes; 503 with the reason while it does not.
async fn health(State(state): State<Arc<SharedState>>) -> Response {
    match state.store.health().status {
        HealthStatus::Ok => "ok\n".into_response(),
        HealthStatus::Failing { since_ms, reason } => {
            let since = since_ms / 1000;
            let text = format!("store failing since {since} (unix s): {reason}\n");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, text).into_response()
        }
    }
}

async fn v4(
    State(state): State<Arc<SharedState>>,
    method: Method,
    version: Version,
    uri: Uri,
    body: Body,
) -> Response {
    let started = Instant::now();
    let route = uri.path().strip_prefix("/v4/").and_then(Route::from_path);
    let mut body = Some(body);
    let result = handle(&state, route, &method, &uri, &mut body).await;
    // hyper silently closes an HTTP/1 connection whose request body was not read to the end, and
    // a client that reuses it fails. Read what is left of a refused request's (small) body, or
    // else say `Connection: close`.
    let oversized =
        matches!(&result, Err(e) if matches!(e.code, Code::HttpParse | Code::PushBodyTooLarge));
    let reusable = !oversized && drained(body).await;
    let mut response = answer(result, route, started);
    if !reusable && version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The API's answer to a request made at `started`, counted in the metrics.
fn answer(result: Reply, route: Option<Route>, started: Instant) -> Response {
    let (code, bytes) = match result {
        Ok(bytes) => (0, bytes),
        Err(error) => {
            let api = route.map(|r| r.name);
            tracing::debug!(?api, code = error.code.number(), info = %error.info, "request failed");
            (error.code.number(), fail_body(&error, route))
        }
    };
    let api = route.map_or("unknown", |r| r.name);
    metrics::observe_request(api, code, started.elapsed().as_secs_f64());
    json_response(bytes)
}

/// The answer to `route` called by `identifier` of `app`, who is signed in to the console.
pub(crate) async fn console_call(
    state: &SharedState,
    app: &AppState,
    identifier: &str,
    route: Route,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = call_api(state, app, identifier, route, body).await;
    answer(result, Some(route), started)
}

/// At most this much of a refused request's unread body is read (and dropped) to keep the
/// connection reusable.
const DRAIN_BYTES: usize = 64 * 1024;

/// Reads and drops the rest of an unread request body; false if it is too large for that.
async fn drained(unread: Option<Body>) -> bool {
    match unread {
        Some(body) => axum::body::to_bytes(body, DRAIN_BYTES).await.is_ok(),
        None => true,
    }
}

async fn handle(
    state: &SharedState,
    route: Option<Route>,
    method: &Method,
    uri: &Uri,
    body: &mut Option<Body>,
) -> Reply {
    let route = route.ok_or_else(|| {
        ApiError::new(Code::ResourceNotFound, format!("no API at {}", uri.path()))
    })?;
    if method != Method::POST {
        return Err(ApiError::new(
            Code::MalformedRequest,
            format!("{} is not supported; the REST API takes POST only", method),
        ));
    }
    let (app, identifier) = match route.accounts_may_call() {
        true => auth::authenticate_account(state, uri.query())?,
        false => auth::authenticate(state, uri.query(), route.family)?,
    };
    let body = body.take().unwrap_or_default();
    call_api(state, app, &identifier, route, body).await
}

/// Runs `route` for `identifier` of `app`, already authenticated: the rate limit, the body,
/// then the API's handler. The console's calls take this path too.
async fn call_api(
    state: &SharedState,
    app: &AppState,
    identifier: &str,
    route: Route,
    body: Body,
) -> Reply {
    if !app.admit(&route) {
        return Err(ApiError::new(
            Code::RateLimited,
            format!(
                "{} is limited to its configured calls per second for this app",
                route.name
            ),
        ));
    }
    let (limit, code) = match route.is_push() {
        true => (app.limits.push_body_bytes, Code::PushBodyTooLarge),
        false => (app.limits.body_bytes, Code::HttpParse),
    };
    let body = read_body(body, limit, code, &state.http).await?;
    let ctx = Ctx {
        app,
        is_admin: app.admins.contains(identifier),
        identifier,
        route,
        store: &state.store,
        hub: &state.hub,
    };
    api::dispatch(&ctx, &body).await
}

/// The request body, at most `limit` bytes (else `too_large`), within the body timeout (else
/// 60008).
async fn read_body(
    body: Body,
    limit: usize,
    too_large: Code,
    http: &HttpConfig,
) -> Result<axum::body::Bytes, ApiError> {
    let timeout = http.body_timeout();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::new(
            too_large,
            format!("request body is larger than {limit} bytes"),
        )),
        Err(_) => Err(ApiError::new(
            Code::MalformedRequest,
            format!("request body not received within {} s", timeout.as_secs()),
        )),
    }
}

/// A FAIL envelope; push and batch keep `"TaskId": ""` on failure, as Tencent's do.
fn fail_body(error: &ApiError, route: Option<Route>) -> Vec<u8> {
    let mut extra = serde_json::Map::new();
    if route.is_some_and(|r| r.is_push()) {
        extra.insert("TaskId".into(), serde_json::Value::String(String::new()));
    }
    serde_json::to_vec(&Envelope::fail(error, extra))
        .unwrap_or_else(|_| br#"{"ActionStatus":"FAIL","ErrorInfo":"","ErrorCode":91000}"#.to_vec())
}

fn json_response(bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
