//! A real WebSocket client of `GET /ws`, and helpers to push and to see who received what.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
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
