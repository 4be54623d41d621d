//! One connected account: `GET /ws?sdkappid=&identifier=&usersig=` with the account's own UserSig.
//! Connecting counts as logging in (the account becomes known); the session first catches up on
//! live pushes it missed, in order, then receives new ones as they are published.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde_json::json;
use tagcast_proto::{ApiError, Code, Envelope};
use tagcast_store::{AccountId, AppId};

use super::hub::{Hub, LiveTask, Outbound};
use super::keepalive::{End, Keepalive};
use super::recorder::Route;
use crate::auth;
use crate::config::WsConfig;
use crate::state::SharedState;

/// Read buffer of one session.
const CLIENT_READ_BUFFER: usize = 4096;

pub async fn websocket(
    State(state): State<Arc<SharedState>>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Authentication comes first, so a refused client learns why even without an upgrade.
    let (app, identifier) = match auth::authenticate_account(&state, uri.query()) {
        Ok((app, identifier)) => (app, identifier),
        Err(error) => return refuse(StatusCode::UNAUTHORIZED, &error),
    };
    // Logging in imports the account, under the same rules as account_import.
    if let Err(error) = app.check_user_id("identifier", &identifier) {
        return refuse(StatusCode::BAD_REQUEST, &error);
    }
    let app = app.sdkappid;
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let info = format!("a WebSocket upgrade is required: {rejection}");
            return refuse(
                StatusCode::BAD_REQUEST,
                &ApiError::new(Code::MalformedRequest, info),
            );
        }
    };
    let account = match state.store.log_in(app, &identifier).await {
        Ok(account) => account,
        Err(error) => {
            tracing::error!(%error, "login failed");
            let error = ApiError::new(
                Code::Internal,
                format!("login failed, please retry: {error}"),
            );
            return refuse(StatusCode::SERVICE_UNAVAILABLE, &error);
        }
    };
    let hub = state.hub.clone();
    let limits = state.websocket.clone();
    // Clients send almost nothing; the default 128 KiB read buffer per connection would
    // dominate the memory of many idle sessions. Every buffer is bounded, so a client that
    // sends too much or never reads costs a known amount before it is closed.
    upgrade
        .read_buffer_size(CLIENT_READ_BUFFER)
        .write_buffer_size(limits.max_write_buffer_bytes / 4)
        .max_write_buffer_size(limits.max_write_buffer_bytes)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| run(hub, app, account, identifier.into(), limits, socket))
}

fn refuse(status: StatusCode, error: &ApiError) -> Response {
    let body =
        serde_json::to_string(&Envelope::fail(error, serde_json::Map::new())).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

async fn run(
    hub: Arc<Hub>,
    app: AppId,
    account: AccountId,
    name: Arc<str>,
    limits: WsConfig,
    socket: WebSocket,
) {
    let mut session = Session {
        hub: hub.clone(),
        app,
        account,
        name,
        socket,
        write_timeout: limits.pong_timeout(),
    };
    // Registering before reading the cursor means no push can fall between the two.
    let mut registration = match hub.login(app, account).await {
        Ok(registration) => registration,
        Err(error) => {
            tracing::warn!(account = &*session.name, %error, "login not recorded");
            session.close(&End::StoreUnavailable).await;
            return;
        }
    };
    let end = session
        .serve(&mut registration, Keepalive::new(&limits))
        .await;
    match &end {
        End::Failed(error) => tracing::debug!(account = &*session.name, %error, "session failed"),
        _ => tracing::debug!(account = &*session.name, reason = ?end, "session ended"),
    }
    session.close(&end).await;
    hub.unregister(app, account, registration.conn);
}

/// Frames written before one flush: under a burst of pushes a session sends what is queued in
/// one write instead of one write per frame.
const SEND_BATCH: usize = 64;

/// How long a close frame may take to send; a client that does not read never holds us up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// One account's connection. Every write has a deadline: a client that stops reading fills its
/// bounded write buffer, and then its session ends instead of waiting forever.
struct Session {
    hub: Arc<Hub>,
    app: AppId,
    account: AccountId,
    name: Arc<str>,
    socket: WebSocket,
    write_timeout: Duration,
}

impl Session {
    async fn serve(
        &mut self,
        registration: &mut super::hub::Registration,
        mut keepalive: Keepalive,
    ) -> End {
        let cursor = match self.hub.cursor(self.app, self.account).await {
            Ok(cursor) => cursor,
            Err(error) => return End::Failed(axum::Error::new(error)),
        };
        let hello = json!({ "Type": "Connected", "Identifier": &*self.name, "SdkAppId": self.app });
        if let Err(end) = self.send(Message::Text(hello.to_string().into())).await {
            return end;
        }
        let from_backlog = match self.catch_up(cursor).await {
            Ok(seqs) => seqs,
            Err(end) => return end,
        };
        // Live pushes arrive in order, but some of them may also be in the backlog: those were
        // delivered from the backlog and are skipped when they arrive live.
        let is_new =
            |task: &LiveTask| task.meta.seq > cursor && !from_backlog.contains(&task.meta.seq);
        let mut queued = Vec::with_capacity(SEND_BATCH);
        loop {
            if registration.lagged.load(Ordering::Acquire) {
                return End::TooSlow;
            }
            let ended = tokio::select! {
                received = registration.rx.recv_many(&mut queued, SEND_BATCH) => match received {
                    0 => Some(End::GoingAway),
                    _ => self.send_queued(&mut queued, &is_new).await,
                },
                incoming = self.socket.recv() => keepalive.heard(incoming),
                () = keepalive.due() => match keepalive.ping() {
                    Some(ping) => self.send(ping).await.err(),
                    None => Some(End::KeepaliveTimeout),
                },
            };
            if let Some(end) = ended {
                return end;
            }
        }
    }

    /// Delivers the live pushes after `cursor` that the account missed; returns their sequences.
    async fn catch_up(&mut self, cursor: u64) -> Result<HashSet<u64>, End> {
        let mut delivered = HashSet::new();
        let backlog = self
            .hub
            .backlog(self.app, self.account, cursor, crate::clock::now_ms())
            .await
            .map_err(|e| End::Failed(axum::Error::new(e)))?;
        for task in backlog {
            self.send(Message::Text(task.frame.clone())).await?;
            delivered.insert(task.meta.seq);
            let name = &self.name;
            self.hub
                .delivered(vec![task], self.account, name, Route::Backlog)
                .await;
        }
        Ok(delivered)
    }

    /// Sends the queued messages with one flush, within one write deadline, and records the
    /// pushes sent. Some when the session must end.
    async fn send_queued(
        &mut self,
        queued: &mut Vec<Outbound>,
        is_new: &impl Fn(&LiveTask) -> bool,
    ) -> Option<End> {
        let mut sent = Vec::with_capacity(queued.len());
        let batch = write_batch(&mut self.socket, queued, is_new, &mut sent);
        let end = match within(self.write_timeout, batch).await {
            Ok(end) => end,
            Err(end) => {
                // Nothing fed is known to have left: none of it counts as delivered.
                sent.clear();
                Some(end)
            }
        };
        let name = &self.name;
        self.hub
            .delivered(sent, self.account, name, Route::Live)
            .await;
        end
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        within(self.write_timeout, self.socket.send(message)).await
    }

    async fn close(&mut self, end: &End) {
        if let Some(frame) = end.close_frame() {
            let close = self.socket.send(Message::Close(Some(frame)));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        }
    }
}

/// Feeds the queued messages and flushes once; the pushes fed are left in `sent`. Ok(Some)
/// when a queued message ends the session.
async fn write_batch(
    socket: &mut WebSocket,
    queued: &mut Vec<Outbound>,
    is_new: &impl Fn(&LiveTask) -> bool,
    sent: &mut Vec<Arc<LiveTask>>,
) -> Result<Option<End>, axum::Error> {
    let mut end = None;
    for outbound in queued.drain(..) {
        match outbound {
            Outbound::Push(task) if is_new(&task) && !task.is_revoked() => {
                socket.feed(Message::Text(task.frame.clone())).await?;
                sent.push(task);
            }
            Outbound::Push(_) => {}
            Outbound::Revoke(frame) => socket.feed(Message::Text(frame)).await?,
            Outbound::Replaced => {
                end = Some(End::Replaced);
                break;
            }
            Outbound::GoingAway => {
                end = Some(End::GoingAway);
                break;
            }
        }
    }
    socket.flush().await?;
    Ok(end)
}

/// A write that fails or does not finish in time ends the session: the client is not reading.
async fn within<T>(
    limit: Duration,
    write: impl std::future::Future<Output = Result<T, axum::Error>>,
) -> Result<T, End> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if is_write_buffer_full(&error) => Err(End::TooSlow),
        Ok(Err(error)) => Err(End::Failed(error)),
        Err(_) => Err(End::TooSlow),
    }
}

fn is_write_buffer_full(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::WriteBufferFull(_)))
}
