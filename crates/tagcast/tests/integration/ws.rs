//! A real WebSocket client of `GET /ws`, and helpers to push and to see who received what.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::*;

/// Longest wait for a frame that must come.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    pub account: String,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects as `account` of `app` with the account's own UserSig and reads the
    /// `Connected` frame.
    pub async fn connect(server: &Server, app: &TestApp, account: &str) -> Client {
        let (socket, _) =
            tokio_tungstenite::connect_async(ws_url(server, app, account, &sig(app, account)))
                .await
                .unwrap_or_else(|e| panic!("{account} cannot connect: {e}"));
        let mut client = Client {
            account: account.to_string(),
            socket,
        };
        let hello = client.next_frame().await;
        assert_eq!(hello["Type"], "Connected", "{hello}");
        assert_eq!(hello["Identifier"], account, "{hello}");
        client
    }

    /// The next frame; fails the test if none comes within the timeout.
    pub async fn next_frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no frame within {FRAME_TIMEOUT:?}", self.account))
                .unwrap_or_else(|| panic!("{}: connection closed", self.account))
                .unwrap_or_else(|e| panic!("{}: {e}", self.account));
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).expect("frames are JSON");
            }
        }
    }

    /// The next frame, or None once the connection is closed or broken (or nothing comes within
    /// the timeout).
    pub async fn try_next_frame(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next()).await;
            match message.ok()??.ok()? {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Every frame before the push `marker` (whose arrival ends the wait), in order. Pushes reach
    /// a session in task order, so a push created before the marker arrives before it, if at all.
    pub async fn frames_until(&mut self, marker: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next_frame().await;
            if frame["Type"] == "Push" && frame["TaskId"] == marker {
                return frames;
            }
            frames.push(frame);
        }
    }

    /// TaskIds of the pushes received before `marker`.
    pub async fn pushes_until(&mut self, marker: &str) -> Vec<String> {
        self.frames_until(marker)
            .await
            .into_iter()
            .filter(|f| f["Type"] == "Push")
            .map(|f| f["TaskId"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn close(mut self) {
        let _ = self.socket.send(Message::Close(None)).await;
        // Wait for the server to end the session, so a reconnect is a new session.
        while let Ok(Some(_)) = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next()).await {}
    }
}

/// Waits for the close frame of `socket`, skipping other frames; fails the test if none comes.
pub async fn close_frame<S>(socket: &mut S) -> CloseFrame
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(FRAME_TIMEOUT, socket.next())
            .await
            .expect("a close frame within the timeout")
            .expect("a frame")
            .expect("no error");
        if let Message::Close(close) = frame {
            return close.expect("a close code");
        }
    }
}

pub fn ws_url(server: &Server, app: &TestApp, account: &str, usersig: &str) -> String {
    let base = server.base.replacen("http", "ws", 1);
    format!(
        "{base}/ws?sdkappid={}&identifier={account}&usersig={usersig}&contenttype=json",
        app.sdkappid
    )
}

/// A text message body.
pub fn text_body(text: &str) -> Value {
    json!([{ "MsgType": "TIMTextElem", "MsgContent": { "Text": text } }])
}

/// Pushes `extra` fields (a Condition, an Audience, ...) with a text message; returns the TaskId.
pub async fn push(server: &Server, app: &TestApp, msg_random: u32, extra: Value) -> String {
    let mut body = json!({ "MsgRandom": msg_random, "MsgBody": text_body("hello") });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let r = server.ok(app, "timpush/push", body).await;
    r["TaskId"].as_str().expect("TaskId").to_string()
}

/// Pushes to everyone: a marker that ends `frames_until`.
pub async fn marker(server: &Server, app: &TestApp, msg_random: u32) -> String {
    push(server, app, msg_random, json!({})).await
}

/// A local HTTP server that records each callback's query and body.
pub struct CallbackReceiver {
    pub url: String,
    pub received: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    /// While set, every request is answered HTTP 500 (and not recorded).
    pub refusing: Arc<AtomicBool>,
    /// Requests refused so far.
    pub refused: Arc<AtomicUsize>,
}

impl CallbackReceiver {
    /// Starts one whose first `fail_first` requests are answered HTTP 500 (and not recorded).
    pub async fn start(fail_first: usize) -> CallbackReceiver {
        use axum::extract::RawQuery;
        use axum::response::IntoResponse;
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
        let refusing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let (refusing_now, refused_so_far) = (refusing.clone(), refused.clone());
        let app = axum::Router::new().route(
            "/callback",
            axum::routing::post(move |RawQuery(query): RawQuery, body: String| {
                let tx = tx.clone();
                let (refusing, refused) = (refusing_now.clone(), refused_so_far.clone());
                async move {
                    if refusing.load(Ordering::SeqCst)
                        || refused.load(Ordering::SeqCst) < fail_first
                    {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let _ = tx.send((query.unwrap_or_default(), body));
                    axum::Json(json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0 }))
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        CallbackReceiver {
            url: format!("http://{addr}/callback"),
            received,
            refusing,
            refused,
        }
    }

    /// Waits until at least `n` requests were refused.
    pub async fn await_refused(&self, n: usize) {
        eventually(FRAME_TIMEOUT, Duration::from_millis(10), || async {
            match self.refused.load(Ordering::SeqCst) {
                refused if refused >= n => Ok(()),
                refused => Err(format!("{refused} callback requests, not {n}")),
            }
        })
        .await;
    }

    /// The next callback's body; fails the test if none comes within the timeout.
    pub async fn next_body(&mut self) -> Value {
        tokio::time::timeout(FRAME_TIMEOUT, self.received.recv())
            .await
            .expect("a callback within the timeout")
            .expect("callback receiver running")
            .1
    }
}
