//! The fan-out baseline: a minimal WebSocket broadcast server on the same stack as tagcast
//! (axum's WebSocket over hyper and tokio). `POST /push` with a frame sends that frame to every
//! connection; nothing is authenticated, stored, recorded or filtered.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::broadcast;

/// Frames a session may fall behind by before it skips some (it never does here).
const QUEUE: usize = 4096;

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
    upgrade.on_upgrade(move |socket| session(socket, rx))
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
                    if socket.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn push(State(tx): State<broadcast::Sender<Utf8Bytes>>, frame: String) -> &'static str {
    let _ = tx.send(frame.into());
    "ok"
}
