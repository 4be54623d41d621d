//! `tagcast listen` as a user runs it: over TLS with a private CA, reconnecting when the server
//! restarts, and stopping with a clear message when retrying cannot help.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// Longest wait for a frame or an exit that must come; a reconnect may wait up to 1 + 2 + 4 s.
const WAIT: Duration = Duration::from_secs(30);

/// A spawned `tagcast` whose stdout lines arrive on a channel and whose stderr is kept; killed
/// when dropped.
struct Process {
    child: Child,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn spawn(command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tagcast");
        let (tx, stdout) = channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Process {
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The next stdout line, which must be a JSON frame, that `wanted` accepts; earlier frames
    /// are checked to be JSON and skipped.
    fn frame_where(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.stdout.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} within {WAIT:?}; stderr:\n{}", self.stderr())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("listener ended before {what}; stderr:\n{}", self.stderr())
                }
            };
            let frame: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not one JSON frame ({e}): {line:?}"));
            if wanted(&frame) {
                return frame;
            }
        }
    }

    fn connected(&self) -> Value {
        self.frame_where("Connected frame", |f| f["Type"] == "Connected")
    }

    fn push_frame(&self, task_id: &str) -> Value {
        self.frame_where(&format!("push {task_id}"), |f| {
            f["Type"] == "Push" && f["TaskId"] == task_id
        })
    }

    /// Waits for the process to exit on its own; fails if it is still running after `WAIT`.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("still running after {WAIT:?}; stderr:\n{}", self.stderr());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A spawned `tagcast serve`, killed when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A config serving PUSH_APP over HTTPS with `cert` and `key`, on data dir `dir/data` and
/// `store`.
fn tls_push_config(dir: &Path, store: &TestStore, cert: &Path, key: &Path) -> PathBuf {
    let app = &PUSH_APP;
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{}{}\n[[apps]]\nsdkappid = {}\nsecret_key = {:?}\n\
         admins = [{:?}]\n[apps.limits]\napi_calls_per_second = 100000\n\
         push_min_interval_ms = 0\npush_daily_quota = 100000\n",
        dir.join("data").display().to_string(),
        store.toml(),
        tls_toml(cert, key),
        app.sdkappid,
        app.key,
        app.admin,
    );
    let path = dir.join("tagcast.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `tagcast serve --config config` (on `listen` if given); returns it and its base URL.
fn serve(config: &Path, listen: Option<&str>) -> (Served, String) {
    let mut command = clean_tagcast(&["serve", "--config"]);
    command.arg(config);
    if let Some(addr) = listen {
        command.args(["--listen", addr]);
    }
    let (child, _, base) = spawn_listening(&mut command);
    (Served(child), base)
}

/// Pushes a text message to every account of PUSH_APP through the REST API; returns the TaskId.
async fn push_to_all(base: &str, msg_random: u32) -> String {
    let client = client_builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{base}/v4/timpush/push?{}", admin_query(&PUSH_APP));
    let body = json!({
        "MsgRandom": msg_random,
        "MsgBody": [{ "MsgType": "TIMTextElem", "MsgContent": { "Text": "hello" } }],
    });
    let response: Value = client
        .post(&url)
        .body(body.to_string())
        .send()
        .await
        .expect("push sent")
        .json()
        .await
        .expect("push answer is JSON");
    assert_ok_for(&response, "timpush/push");
    response["TaskId"].as_str().expect("TaskId").to_string()
}

/// `tagcast listen` for `identifier` of PUSH_APP at `base`, with `extra` flags.
fn listen_command(base: &str, identifier: &str, extra: &[&str]) -> Command {
    let sdkappid = PUSH_APP.sdkappid.to_string();
    let mut command = clean_tagcast(&[
        "listen",
        "--url",
        base,
        "--sdkappid",
        &sdkappid,
        "--identifier",
        identifier,
    ]);
    command.args(extra);
    command
}

#[tokio::test]
async fn listen_over_tls_with_a_private_ca_reconnects_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_self_signed_cert(dir.path());
    let store = TestStore::fresh();
    let config = tls_push_config(dir.path(), &store, &cert, &key);
    let (server, base) = serve(&config, None);
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let key_file = dir.path().join("app.key");
    std::fs::write(&key_file, format!("{}\n", PUSH_APP.key)).unwrap();

    let mut command = listen_command(&base, "alice", &["--ca"]);
    command.arg(&cert).arg("--key-file").arg(&key_file);
    let listener = Process::spawn(&mut command);
    let hello = listener.connected();
    assert_eq!(hello["Identifier"], "alice", "{hello}");
    let first = push_to_all(&base, 1).await;
    let frame = listener.push_frame(&first);
    assert_eq!(
        frame["MsgBody"][0]["MsgContent"]["Text"], "hello",
        "{frame}"
    );

    // The server stops and starts again on the same port and data: the listener, instead of
    // exiting, reconnects and receives the next push.
    let addr = base.trim_start_matches("https://").to_string();
    let mut server = server;
    send_signal(server.0.id(), "TERM");
    assert!(
        server.0.wait().unwrap().success(),
        "SIGTERM ends it cleanly"
    );
    drop(server);
    let (_server, again) = serve(&config, Some(&addr));
    assert_eq!(again, base);
    listener.connected();
    let second = push_to_all(&base, 2).await;
    listener.push_frame(&second);
    let stderr = listener.stderr();
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn without_ca_a_self_signed_server_is_refused_once_with_a_certificate_error() {
    let server = Server::start_tls();
    let mut listener = Process::spawn(&mut listen_command(
        &server.base,
        "alice",
        &["--key", PUSH_APP.key],
    ));
    let status = listener.exit_status();
    let stderr = listener.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("--ca"), "the fix is named: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("reconnecting in"), "not retried: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
}

#[tokio::test]
async fn a_refused_login_prints_the_error_and_is_not_retried() {
    let server = Server::start();
    let mut listener = Process::spawn(&mut listen_command(
        &server.base,
        "alice",
        &["--key", "not-the-app-key"],
    ));
    let status = listener.exit_status();
    let stderr = listener.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the login of alice"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("ErrorCode 700"), "{stderr}");
    assert!(!stderr.contains("reconnecting in"), "not retried: {stderr}");
}

#[tokio::test]
async fn a_session_replaced_by_a_newer_login_exits_without_reconnecting() {
    let server = Server::start();
    let first = Process::spawn(&mut listen_command(
        &server.base,
        "bob",
        &["--key", PUSH_APP.key],
    ));
    first.connected();
    let second =
        Process::spawn(listen_command(&server.base, "bob", &[]).env("TAGCAST_KEY", PUSH_APP.key));
    second.connected();
    let mut first = first;
    let status = first.exit_status();
    let stderr = first.stderr();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("replaced by a newer session"), "{stderr}");
    assert!(!stderr.contains("reconnecting in"), "{stderr}");
    // The newer session still receives pushes.
    let task = push_to_all(&server.base, 3).await;
    second.push_frame(&task);
}
