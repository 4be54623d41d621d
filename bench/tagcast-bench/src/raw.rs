//! The fan-out baseline: a minimal WebSocket broadcast server on the same stack as tagcast
//! (axum's WebSocket over hyper and tokio). `POST /push` with a frame sends that frame to every
//! connection; nothing is authenticated, stored, recorded or filtered.
//!
//! Tuned as tagcast's sessions are (crates/tagcast-server/src/delivery/session.rs), so the ratio
//! measures tagcast and not tuning: a 4 KiB read buffer per connection instead of axum's 128 KiB,
//! and under a burst up to 64 queued frames written (`feed`) before one flush, instead of a
//! flush per frame.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Frames a session may fall behind by before it skips some (it never does here).
const QUEUE: usize = 4096;
/// Read buffer of one connection: tagcast's `CLIENT_READ_BUFFER`.
const READ_BUFFER: usize = 4096;
/// Frames written before one flush: tagcast's `SEND_BATCH`.
const SEND_BATCH: usize = 64;

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let (tx, _) = broadcast::channel::<Utf8Bytes>(QUEUE);
    let app = Router::new()
        .route("/ws", get(websocket))
        .route("/push", post(push))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("raw listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn websocket(
    State(tx): State<broadcast::Sender<Utf8Bytes>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let rx = tx.subscribe();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| session(socket, rx))
}

async fn session(mut socket: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>) {
    let hello = r#"{"Type":"Connected","Identifier":"raw","SdkAppId":1400000000}"#;
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(frame) => {
                    if send_queued(&mut socket, &mut rx, frame).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Writes `first` and up to `SEND_BATCH - 1` more frames already queued, then flushes once.
async fn send_queued(
    socket: &mut WebSocket,
    rx: &mut broadcast::Receiver<Utf8Bytes>,
    first: Utf8Bytes,
) -> Result<(), axum::Error> {
    socket.feed(Message::Text(first)).await?;
    for _ in 1..SEND_BATCH {
        match rx.try_recv() {
            Ok(frame) => socket.feed(Message::Text(frame)).await?,
            Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    socket.flush().await
}

async fn push(State(tx): State<broadcast::Sender<Utf8Bytes>>, frame: String) -> &'static str {
    let _ = tx.send(frame.into());
    "ok"
}
