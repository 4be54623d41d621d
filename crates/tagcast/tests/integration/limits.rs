//! Resource limits under attack: idle, slow and too many connections, slow bodies, WebSocket
//! clients that never read, send too much or stop answering. Each attack runs against the real
//! binary while a normal client checks that the API keeps answering; bounds are checked on the
//! server's own descriptors and memory, never on wall-clock speed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;
use crate::ws::{close_frame, ws_url};

/// A server whose WebSocket keepalive acts within seconds.
const QUICK_KEEPALIVE: &str = "[websocket]\nping_interval_secs = 1\npong_timeout_secs = 1\n";

fn addr_of(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// A normal admin call on a connection of its own succeeds.
async fn assert_answers(server: &Server, account: &str) {
    let fresh = client_builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let body = json!({ "UserID": account });
    let response: serde_json::Value = fresh
        .post(server.url(&APP, "im_open_login_svc/account_import"))
        .body(body.to_string())
        .send()
        .await
        .expect("the API answers during the attack")
        .json()
        .await
        .expect("JSON");
    assert_ok_for(&response, account);
}

/// True once the peer has closed `stream` (EOF or reset), reading and dropping what it sent.
async fn closed_by_peer(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_take_every_descriptor() {
    let _ = rlimit::increase_nofile_limit(8192);
    // Idle connections are never timed out here: only the cap and eviction protect the server.
    let limits = "[http]\nidle_timeout_secs = 3600\nheader_timeout_secs = 3600\n";
    let server = Server::start_with(limits, Some(256));
    let addr = addr_of(&server);
    let mut idle = Vec::new();
    for _ in 0..1100 {
        let connect = TcpStream::connect(&addr);
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            idle.push(stream);
        }
    }
    assert!(idle.len() > 1000, "only {} connections opened", idle.len());
    for i in 0..20 {
        assert_answers(&server, &format!("during_idle_flood_{i}")).await;
    }
    let fds = open_descriptors(server.pid());
    assert!(
        fds <= 256,
        "the server holds {fds} descriptors, above its limit"
    );
    let mut closed = 0;
    for stream in &mut idle {
        if closed_by_peer(stream, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    let cap = 256 - 128;
    assert!(
        closed >= idle.len() - cap,
        "{closed} of {} idle connections were closed to make room",
        idle.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_requests_are_closed_after_the_header_timeout() {
    let server = Server::start_with("[http]\nheader_timeout_secs = 1\n", None);
    let addr = addr_of(&server);
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream
            .write_all(b"POST /v4/timpush/get_tag HTTP/1.1\r\nHost: tagcast\r\n")
            .await
            .expect("write");
        slow.push(stream);
    }
    assert_answers(&server, "during_slowloris").await;
    let mut open = slow;
    // One header line per stream every 200 ms, for at most 15 s: each must be cut off.
    for _ in 0..75 {
        let mut still_open = Vec::new();
        for mut stream in open {
            let _ = stream.write_all(b"X-Slow: 1\r\n").await;
            if !closed_by_peer(&mut stream, Duration::from_millis(1)).await {
                still_open.push(stream);
            }
        }
        open = still_open;
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        open.is_empty(),
        "{} slow requests were never cut off",
        open.len()
    );
    assert_answers(&server, "after_slowloris").await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let server = Server::start_with("[http]\nidle_timeout_secs = 1\n", None);
    let mut stream = TcpStream::connect(addr_of(&server)).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tagcast\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_peer(&mut stream, Duration::from_secs(15)).await,
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_60008() {
    let server = Server::start_with("[http]\nbody_timeout_secs = 1\n", None);
    let mut stream = TcpStream::connect(addr_of(&server)).await.expect("connect");
    let head = format!(
        "POST /v4/timpush/get_tag?{} HTTP/1.1\r\nHost: tagcast\r\nContent-Length: 100\r\n\r\n{{\"To_Account\"",
        admin_query(&APP)
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
                break;
            }
        }
    });
    let _ = read.await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.contains("\"ErrorCode\":60008"), "{text}");
    assert!(text.contains("not received within"), "{text}");
}

/// A raw WebSocket connection of `account`, past the handshake and the Connected frame.
async fn raw_session(server: &Server, account: &str) -> TcpStream {
    let url = ws_url(server, &APP, account, &sig(&APP, account));
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let hello = socket.next().await.expect("frame").expect("frame");
    assert!(hello.to_text().unwrap_or_default().contains("Connected"));
    match socket.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream,
        _ => panic!("plain TCP expected"),
    }
}

/// A masked client frame; `declared` may claim more payload than is sent.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], declared: usize) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match declared {
        0..=125 => frame.push(0x80 | declared as u8),
        _ => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(declared as u16).to_be_bytes());
        }
    }
    // A zero masking key leaves the payload as it is.
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// Reads what the server sends until it closes; returns the close code of its close frame.
async fn close_code_of(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(wait, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    // Unmasked server frames: opcode byte, length byte, payload.
    let mut rest = received.as_slice();
    while rest.len() >= 2 {
        let (opcode, len) = (rest[0] & 0x0f, (rest[1] & 0x7f) as usize);
        let payload = rest.get(2..2 + len)?;
        if opcode == 0x8 && len >= 2 {
            return Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
        rest = &rest[2 + len..];
    }
    None
}

#[tokio::test]
async fn a_half_sent_frame_is_closed_by_the_keepalive() {
    let server = Server::start_with(QUICK_KEEPALIVE, None);
    let mut stream = raw_session(&server, "half_frame").await;
    // A text frame announcing 100 bytes, of which 10 are sent: the client's pong can never
    // follow.
    let frame = client_frame(true, 0x1, b"0123456789", 100);
    stream.write_all(&frame).await.expect("write");
    let code = close_code_of(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(code, Some(4002));
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_4002() {
    let server = Server::start_with(QUICK_KEEPALIVE, None);
    let mut stream = raw_session(&server, "silent").await;
    let code = close_code_of(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(code, Some(4002));
}

#[tokio::test]
async fn an_oversize_message_closes_the_session_with_1009() {
    let server = Server::start();
    let mut stream = raw_session(&server, "too_big").await;
    // A fragmented message whose pieces each fit but whose whole does not (4096 by default).
    let piece = vec![b'x'; 3000];
    stream
        .write_all(&client_frame(false, 0x1, &piece, piece.len()))
        .await
        .expect("write");
    stream
        .write_all(&client_frame(true, 0x0, &piece, piece.len()))
        .await
        .expect("write");
    let code = close_code_of(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(code, Some(1009));
}

#[tokio::test]
async fn a_flooding_client_is_closed_with_1008() {
    let server = Server::start();
    let mut stream = raw_session(&server, "flooder").await;
    let mut burst = Vec::new();
    for _ in 0..200 {
        burst.extend(client_frame(true, 0x1, b"{}", 2));
    }
    stream.write_all(&burst).await.expect("write");
    let code = close_code_of(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(code, Some(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pings_and_never_reads_is_closed_with_bounded_memory() {
    let limits = "[websocket]\nping_interval_secs = 1\npong_timeout_secs = 2\n\
                  max_client_messages_per_sec = 100000000\nmax_write_buffer_bytes = 16384\n";
    let server = Server::start_with(limits, None);
    let before = resident_bytes(server.pid());
    let url = ws_url(&server, &APP, "never_reads", &sig(&APP, "never_reads"));
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let (mut sink, _never_read) = socket.split();
    let mut peak = before;
    let mut closed = false;
    // At most 60 s of pings, as fast as they go, never reading a pong.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let ping = sink.send(Message::Ping(vec![7u8; 125].into()));
        match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => peak = peak.max(resident_bytes(server.pid())),
        }
    }
    peak = peak.max(resident_bytes(server.pid()));
    assert!(
        closed,
        "the session of a client that never reads was never closed"
    );
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 64 << 20,
        "the server grew by {} MiB for one client",
        growth >> 20
    );
    assert_answers(&server, "after_ping_flood").await;
}

#[tokio::test]
async fn a_replaced_session_is_closed_with_4000_and_a_reason() {
    let server = Server::start();
    let url = ws_url(&server, &APP, "twice", &sig(&APP, "twice"));
    let (mut first, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("connect");
    let _connected = first.next().await;
    let (_second, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect again");
    let close = close_frame(&mut first).await;
    assert_eq!(close.code, CloseCode::from(4000));
    assert_eq!(close.reason.as_str(), "replaced by a newer session");
}

#[tokio::test]
async fn websocket_login_applies_the_user_id_rules_of_account_import() {
    let server = Server::start();
    for identifier in [String::new(), "x".repeat(33), "y".repeat(60_000)] {
        let url = ws_url(&server, &APP, &identifier, &sig(&APP, &identifier));
        let response = server
            .client()
            .get(url.replacen("ws", "http", 1))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 400, "identifier of {}", identifier.len());
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(body["ErrorCode"], 70402, "{body}");
    }
}

#[tokio::test]
async fn websocket_sessions_count_against_the_cap_and_are_never_evicted() {
    let server = Server::start_with("[http]\nmax_connections = 4\n", None);
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(raw_session(&server, &format!("capped_{i}")).await);
    }
    // Every slot holds a session: a new connection is refused, and no session is cut for it.
    let mut refused = TcpStream::connect(addr_of(&server)).await.expect("connect");
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tagcast\r\n\r\n")
        .await;
    assert!(
        closed_by_peer(&mut refused, Duration::from_secs(10)).await,
        "a connection beyond the cap was served"
    );
    for session in &mut sessions {
        assert!(
            !closed_by_peer(session, Duration::from_millis(50)).await,
            "a WebSocket session was evicted"
        );
    }
    // A session ends: its slot serves the API again.
    drop(sessions.pop());
    let mut answered = false;
    for _ in 0..100 {
        let health = server
            .client()
            .get(format!("{}/healthz", server.base))
            .send();
        if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(2), health).await {
            answered = response.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "the freed slot never served a request");
}
