//! One connected account: `GET /ws?sdkappid=&identifier=&usersig=` with the account's own UserSig.
//! Connecting counts as logging in (the account becomes known); the session first catches up on
//! live pushes it missed, in order, then receives new ones as they are published.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde_json::json;
use tagcast_proto::{ApiError, Code, Envelope};
use tagcast_store::{AccountId, AppId, Store, StoreError};

use super::hub::{Hub, LiveTask, Outbound};
use crate::auth;
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
        Ok((app, identifier)) => (app.sdkappid, identifier),
        Err(error) => return refuse(StatusCode::UNAUTHORIZED, &error),
    };
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
    let account = match login(&state.store, app, &identifier).await {
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
    // Clients send almost nothing; the default 128 KiB read buffer per connection would
    // dominate the memory of many idle sessions.
    upgrade
        .read_buffer_size(CLIENT_READ_BUFFER)
        .on_upgrade(move |socket| run(hub, app, account, identifier.into(), socket))
}

/// The account's id, importing it on its first connection as Tencent's login does.
async fn login(store: &Store, app: AppId, identifier: &str) -> Result<AccountId, StoreError> {
    let names = [identifier.to_string()];
    if let Some(id) = store.account_ids(app, &names).await?[0] {
        return Ok(id);
    }
    store.import_accounts(app, names.to_vec()).await?;
    store.account_ids(app, &names).await?[0]
        .ok_or_else(|| StoreError::NotCommitted("the account was deleted while logging in".into()))
}

fn refuse(status: StatusCode, error: &ApiError) -> Response {
    let body =
        serde_json::to_string(&Envelope::fail(error, serde_json::Map::new())).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

async fn run(hub: Arc<Hub>, app: AppId, account: AccountId, name: Arc<str>, mut socket: WebSocket) {
    // Registering before reading the cursor means no push can fall between the two.
    let mut registration = hub.register(app, account);
    let result = serve(&hub, app, account, &name, &mut socket, &mut registration).await;
    if let Err(error) = result {
        tracing::debug!(%error, account = &*name, "session ended");
    }
    hub.unregister(app, account, registration.conn);
}

async fn serve(
    hub: &Arc<Hub>,
    app: AppId,
    account: AccountId,
    name: &Arc<str>,
    socket: &mut WebSocket,
    registration: &mut super::hub::Registration,
) -> Result<(), axum::Error> {
    let cursor = hub.cursor(app, account).await.map_err(axum::Error::new)?;
    let hello = json!({ "Type": "Connected", "Identifier": &**name, "SdkAppId": app });
    socket.send(Message::Text(hello.to_string().into())).await?;
    // Live pushes arrive in order, but some of them may also be in the backlog: those are
    // delivered from the backlog and skipped when they arrive live.
    let mut from_backlog = HashSet::new();
    for task in hub.backlog(app, account, cursor, crate::clock::now_ms()) {
        deliver(hub, socket, &task, account, name).await?;
        from_backlog.insert(task.meta.seq);
    }
    let is_new = |task: &LiveTask| task.meta.seq > cursor && !from_backlog.contains(&task.meta.seq);
    let mut queued = Vec::with_capacity(SEND_BATCH);
    let mut sent = Vec::with_capacity(SEND_BATCH);
    loop {
        if registration.lagged.load(Ordering::Acquire) {
            return Ok(());
        }
        tokio::select! {
            received = registration.rx.recv_many(&mut queued, SEND_BATCH) => {
                if received == 0 {
                    return Ok(());
                }
                let keep_going = send_queued(socket, &mut queued, &is_new, &mut sent).await?;
                for task in sent.drain(..) {
                    hub.delivered(&task, account, name).await;
                }
                if !keep_going {
                    return Ok(());
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Frames written before one flush: under a burst of pushes a session sends what is queued in
/// one write instead of one write per frame.
const SEND_BATCH: usize = 64;

/// Sends the queued messages with one flush; the pushes sent are left in `sent`. False when the
/// session must end (the account connected elsewhere).
async fn send_queued(
    socket: &mut WebSocket,
    queued: &mut Vec<Outbound>,
    is_new: &impl Fn(&LiveTask) -> bool,
    sent: &mut Vec<Arc<LiveTask>>,
) -> Result<bool, axum::Error> {
    let mut keep_going = true;
    for outbound in queued.drain(..) {
        match outbound {
            Outbound::Push(task) if is_new(&task) && !task.is_revoked() => {
                socket.feed(Message::Text(task.frame.clone())).await?;
                sent.push(task);
            }
            Outbound::Push(_) => {}
            Outbound::Revoke(frame) => socket.feed(Message::Text(frame)).await?,
            Outbound::Replaced => {
                keep_going = false;
                break;
            }
        }
    }
    socket.flush().await?;
    Ok(keep_going)
}

async fn deliver(
    hub: &Hub,
    socket: &mut WebSocket,
    task: &Arc<LiveTask>,
    account: AccountId,
    name: &Arc<str>,
) -> Result<(), axum::Error> {
    send(socket, task.frame.clone()).await?;
    hub.delivered(task, account, name).await;
    Ok(())
}

async fn send(socket: &mut WebSocket, frame: Utf8Bytes) -> Result<(), axum::Error> {
    socket.send(Message::Text(frame)).await
}
