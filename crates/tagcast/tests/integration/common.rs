//! The harness: starts the real `tagcast` binary on a loopback port with a temp data dir and
//! drives it over HTTP(S) with a real client.
//!
//! The store backend is chosen by `TAGCAST_TEST_STORE` (see [`backend`]): the embedded store
//! by default, or `postgres`: then every server also gets a fresh PostgreSQL database of its
//! own (see [`TestStore`]) on one cluster shared by the whole run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

/// An app configured in every test server.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub sdkappid: u64,
    pub key: &'static str,
    pub admin: &'static str,
}

/// The main app: generous rate limits so tests never trip them by accident.
pub const APP: TestApp = TestApp {
    sdkappid: 1_400_000_001,
    key: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e",
    admin: "administrator",
};

/// A second app, to show apps never see each other's data.
pub const OTHER_APP: TestApp = TestApp {
    sdkappid: 1_400_000_002,
    key: "another-secret-key-of-the-second-app-0123456789abcdef0123456789",
    admin: "admin2",
};

/// An app with small limits, to trigger the limit errors cheaply.
pub const TIGHT_APP: TestApp = TestApp {
    sdkappid: 1_400_000_003,
    key: "tight-app-key",
    admin: "administrator",
};

/// The push app: no interval between pushes and a large quota, so push tests never wait.
pub const PUSH_APP: TestApp = TestApp {
    sdkappid: 1_400_000_004,
    key: "push-app-key-0123456789",
    admin: "administrator",
};

/// Pushes limited to 2 a day, none apart.
pub const QUOTA_APP: TestApp = TestApp {
    sdkappid: 1_400_000_005,
    key: "quota-app-key",
    admin: "administrator",
};

/// An app whose push feature is disabled (90045).
pub const NO_PUSH_APP: TestApp = TestApp {
    sdkappid: 1_400_000_006,
    key: "no-push-app-key",
    admin: "administrator",
};

/// A not-admin account that exists in the main app's key space.
pub const NOT_ADMIN: &str = "ordinary_user";

/// Writes a fresh self-signed certificate for 127.0.0.1 and localhost into `dir`; returns the
/// paths of the certificate and of its key.
pub fn write_self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

/// The `[tls]` table of a config naming `cert` and `key`.
pub fn tls_toml(cert: &Path, key: &Path) -> String {
    format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// What PUSH_APP is configured with besides its limits.
#[derive(Debug, Default, Clone, Copy)]
pub struct PushAppExtra<'a> {
    pub callback_url: Option<&'a str>,
    /// More lines of its `[apps.limits]`.
    pub limits: &'a str,
    /// More tables of the app, such as its push providers (`[apps.apns]`, ...).
    pub tables: &'a str,
}

impl<'a> PushAppExtra<'a> {
    pub fn callback(url: &'a str) -> Self {
        Self {
            callback_url: Some(url),
            ..Self::default()
        }
    }
}

fn config_toml(
    data_dir: &Path,
    store: &TestStore,
    tls: Option<&(PathBuf, PathBuf)>,
    extra: PushAppExtra<'_>,
) -> String {
    let tls = tls.map_or(String::new(), |(cert, key)| tls_toml(cert, key));
    let generous = "api_calls_per_second = 100000";
    let tight = [
        "accounts_per_request = 3",
        "tags_per_add = 3",
        "tags_per_replace = 4",
        "tags_per_account = 5",
        "tags_per_app = 8",
        "tag_bytes = 10",
        "attr_value_bytes = 8",
        "body_bytes = 2048",
        "api_calls_per_second = 1000",
        "[apps.limits.api_calls_per_second_by_api]",
        "\"timpush/get_attr_name\" = 2",
    ]
    .join("\n");
    let push = format!(
        "{generous}\npush_min_interval_ms = 0\npush_daily_quota = 100000\nrevokes_per_second = 1000\n{}",
        extra.limits
    );
    let push_app = match extra.callback_url {
        Some(url) => app_toml(&PUSH_APP, &[], &push).replacen(
            "[apps.limits]",
            &format!("callback_url = {url:?}\n[apps.limits]"),
            1,
        ),
        None => app_toml(&PUSH_APP, &[], &push),
    };
    let push_app = format!("{push_app}\n{}\n", extra.tables);
    let no_push = app_toml(&NO_PUSH_APP, &[], generous).replacen(
        "[apps.limits]",
        "push_enabled = false\n[apps.limits]",
        1,
    );
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {data_dir:?}\n{}{tls}\n{}\n{}\n{}\n{push_app}\n{}\n{no_push}",
        store.toml(),
        app_toml(&APP, &["second_admin"], generous),
        app_toml(&OTHER_APP, &[], generous),
        app_toml(&TIGHT_APP, &[], &tight),
        app_toml(
            &QUOTA_APP,
            &[],
            &format!(
                "{generous}\npush_min_interval_ms = 0\npush_daily_quota = 2\nrevoke_window_secs = 0"
            )
        ),
        data_dir = data_dir.display().to_string(),
    )
}

/// The `[[apps]]` table of `app`: its admin and `more_admins`, and the `limits` lines.
fn app_toml(app: &TestApp, more_admins: &[&str], limits: &str) -> String {
    let admins: Vec<&str> = [app.admin].iter().chain(more_admins).copied().collect();
    format!(
        "[[apps]]\nsdkappid = {}\nsecret_key = {:?}\nadmins = {admins:?}\n\
         [apps.limits]\n{limits}\n",
        app.sdkappid, app.key
    )
}

/// A running server process with its own temp directory (and, on PostgreSQL, its own database,
/// kept across restarts and dropped after the process).
pub struct Server {
    child: Child,
    pub base: String,
    dir: TempDir,
    tls: Option<(PathBuf, PathBuf)>,
    client: reqwest::Client,
    /// Held for its database, dropped after the process (see `Drop`).
    _store: TestStore,
}

impl Server {
    /// Starts a server over plain HTTP.
    pub fn start() -> Server {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            None,
            PushAppExtra::default(),
        )
    }

    /// Starts a server whose PUSH_APP reports deliveries to `callback_url`.
    pub fn start_with_callback(callback_url: &str) -> Server {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            None,
            PushAppExtra::callback(callback_url),
        )
    }

    /// Starts a server over HTTPS with a fresh self-signed certificate for 127.0.0.1.
    pub fn start_tls() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = write_self_signed_cert(dir.path());
        Self::start_in(dir, Some(files), PushAppExtra::default())
    }

    fn start_in(dir: TempDir, tls: Option<(PathBuf, PathBuf)>, push: PushAppExtra<'_>) -> Server {
        let data_dir = dir.path().join("data");
        let config = dir.path().join("tagcast.toml");
        let store = TestStore::fresh();
        let text = config_toml(&data_dir, &store, tls.as_ref(), push);
        std::fs::write(&config, text).expect("write config");
        let (child, base) = spawn(&config);
        Server {
            child,
            base,
            dir,
            tls,
            client: client(),
            _store: store,
        }
    }

    /// Starts a server over plain HTTP with `extra` TOML added to the standard config (top-level
    /// keys, then tables such as `[http]`, `[websocket]` or more `[[apps]]`), its descriptor
    /// limit set to `nofile` if given.
    pub fn start_with(extra: &str, nofile: Option<u64>) -> Server {
        Self::start_custom(
            TestStore::fresh(),
            None,
            extra,
            nofile,
            PushAppExtra::default(),
        )
    }

    /// Starts a plain-HTTP server on `store` whatever this run's backend, with `extra` TOML
    /// (see `start_with`).
    pub fn start_on(store: TestStore, extra: &str) -> Server {
        Self::start_custom(store, None, extra, None, PushAppExtra::default())
    }

    /// `start_on`, with PUSH_APP's callbacks going to `callback_url`.
    pub fn start_on_with_callback(store: TestStore, extra: &str, callback_url: &str) -> Server {
        Self::start_custom(
            store,
            None,
            extra,
            None,
            PushAppExtra::callback(callback_url),
        )
    }

    /// `start_on` with `extra` TOML, and PUSH_APP configured with `push` too.
    pub fn start_on_with_push_app(store: TestStore, extra: &str, push: PushAppExtra<'_>) -> Server {
        Self::start_custom(store, None, extra, None, push)
    }

    /// Starts a plain-HTTP server with `extra` TOML (see `start_with`), its data dir in
    /// `data_dir` (default: inside its temp dir) and its descriptor limit `nofile` if given.
    fn start_custom(
        store: TestStore,
        data_dir: Option<&Path>,
        extra: &str,
        nofile: Option<u64>,
        push: PushAppExtra<'_>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("tagcast.toml");
        let default_data = dir.path().join("data");
        let text = config_toml(data_dir.unwrap_or(&default_data), &store, None, push);
        // Top-level keys of `extra` go first, its tables after the standard ones.
        let lines: Vec<&str> = extra.lines().collect();
        let split = lines
            .iter()
            .position(|l| l.starts_with('['))
            .unwrap_or(lines.len());
        let (top, tables) = lines.split_at(split);
        let text = format!("{}\n{text}\n{}\n", top.join("\n"), tables.join("\n"));
        std::fs::write(&config, text).expect("write config");
        let (child, base) = spawn_limited(&config, nofile);
        Server {
            child,
            base,
            dir,
            tls: None,
            client: client(),
            _store: store,
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again on the same data
    /// (the same config file, hence the same database on PostgreSQL).
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        let (child, base) = spawn(&self.dir.path().join("tagcast.toml"));
        self.child = child;
        self.base = base;
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The URL of `path` (after `/v4/`) with the query of `app`'s admin.
    pub fn url(&self, app: &TestApp, path: &str) -> String {
        format!("{}/v4/{path}?{}", self.base, admin_query(app))
    }

    /// POSTs `body` to `path` as `app`'s admin and returns the JSON response (asserting HTTP 200).
    pub async fn call(&self, app: &TestApp, path: &str, body: Value) -> Value {
        self.post_raw(&self.url(app, path), body.to_string().into_bytes())
            .await
    }

    /// `call`, asserting an OK envelope; returns the response for further checks.
    pub async fn ok(&self, app: &TestApp, path: &str, body: Value) -> Value {
        let response = self.call(app, path, body).await;
        assert_ok_for(&response, path);
        response
    }

    /// Sends `body` with `method` to a full URL and returns the response, whatever its status.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .request(method, url)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Sends `body` with `method` to a full URL; asserts HTTP 200 and a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> Value {
        let response = self.request(method.clone(), url, body).await;
        assert_eq!(response.status(), 200, "HTTP status for {method} {url}");
        let bytes = response.bytes().await.expect("response body");
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {bytes:?}"))
    }

    /// POSTs raw bytes to a full URL; asserts HTTP 200 and a JSON body.
    pub async fn post_raw(&self, url: &str, body: Vec<u8>) -> Value {
        self.send_json(Method::POST, url, body).await
    }

    /// GETs `path` (after the base URL, e.g. `/healthz`); asserts HTTP 200 and returns the text.
    pub async fn get_text(&self, path: &str) -> String {
        let url = format!("{}{path}", self.base);
        let response = self.request(Method::GET, &url, "").await;
        assert_eq!(response.status(), 200, "HTTP status for GET {url}");
        response.text().await.expect("response body")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(config: &Path) -> (Child, String) {
    spawn_limited(config, None)
}

/// `spawn`, with the server's descriptor limit set to `nofile` if given. None of the developer's
/// `TAGCAST_*` variables reach the server: they would override its config (a
/// `TAGCAST_STORE_URL` would point every test at the developer's database).
fn spawn_limited(config: &Path, nofile: Option<u64>) -> (Child, String) {
    let mut command = match nofile {
        Some(limit) => {
            let mut command = clean_command("prlimit");
            command
                .arg(format!("--nofile={limit}:{limit}"))
                .arg(env!("CARGO_BIN_EXE_tagcast"));
            command
        }
        None => clean_command(env!("CARGO_BIN_EXE_tagcast")),
    };
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("TAGCAST_LOG", "warn");
    let (child, _, base) = spawn_listening(&mut command);
    (child, base)
}

/// `program` with none of the developer's `TAGCAST_*` variables.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TAGCAST_") {
            command.env_remove(name);
        }
    }
    command
}

/// The `tagcast` binary with `args`, none of the developer's `TAGCAST_*` variables, warn-level
/// logs.
pub fn clean_tagcast(args: &[&str]) -> Command {
    let mut command = clean_command(env!("CARGO_BIN_EXE_tagcast"));
    command.args(args).env("TAGCAST_LOG", "warn");
    command
}

/// Runs `command`, which must exit on its own within 20 s, and returns its output; fails if it
/// keeps running (a server that was meant to refuse to start started serving after all).
pub fn wait_for_exit(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tagcast");
    for _ in 0..400 {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("tagcast output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("tagcast output");
    panic!(
        "tagcast kept running: {command:?}; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// The value of the development banner's line `  {label}: value`.
pub fn banner_value(banner: &[String], label: &str) -> String {
    banner
        .iter()
        .find_map(|line| line.trim().strip_prefix(label)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {label} in the banner: {banner:#?}"))
        .trim()
        .to_string()
}

/// The resident memory of process `pid`, in bytes.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Spawns `command` (a `tagcast serve`) and reads its stdout until it says where it listens.
/// Returns the process, the lines printed before that, and the base URL.
pub fn spawn_listening(command: &mut Command) -> (Child, Vec<String>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tagcast");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("tagcast exited before listening")
            .expect("read tagcast stdout");
        if let Some(url) = line.strip_prefix("tagcast listening on ") {
            break url.trim().to_string();
        }
        banner.push(line);
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, banner, base)
}

/// A client builder with the crypto provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

fn client() -> reqwest::Client {
    client_builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A valid UserSig for `identifier` of `app`.
pub fn sig(app: &TestApp, identifier: &str) -> String {
    tagcast_usersig::sign(app.sdkappid, app.key, identifier, 86_400, now())
}

pub fn admin_query(app: &TestApp) -> String {
    format!(
        "sdkappid={}&identifier={}&usersig={}&random={}&contenttype=json",
        app.sdkappid,
        app.admin,
        sig(app, app.admin),
        rand_u32()
    )
}

fn rand_u32() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// `audience_count` of the `Audience` expression `audience` in `app`.
pub async fn audience_count(server: &Server, app: &TestApp, audience: Value) -> u64 {
    let body = json!({ "Audience": audience });
    let r = server.ok(app, "tagcast/audience_count", body).await;
    r["Count"].as_u64().expect("Count")
}

/// Imports `accounts` into `app`, asserting success.
pub async fn import(server: &Server, app: &TestApp, accounts: &[&str]) {
    for chunk in accounts.chunks(100) {
        let r = server
            .ok(
                app,
                "im_open_login_svc/multiaccount_import",
                json!({ "Accounts": chunk }),
            )
            .await;
        assert_eq!(r["FailAccounts"], json!([]), "{r}");
    }
}

/// Asserts an OK envelope.
#[track_caller]
pub fn assert_ok(response: &Value) {
    assert_ok_for(response, "response");
}

/// Asserts an OK envelope; a failure names `what` (e.g. the path called).
#[track_caller]
pub fn assert_ok_for(response: &Value, what: &str) {
    assert_eq!(response["ActionStatus"], "OK", "{what}: {response}");
    assert_eq!(response["ErrorCode"], 0, "{what}: {response}");
    assert_eq!(response["ErrorInfo"], "", "{what}: {response}");
}

/// Asserts a FAIL envelope with `code` and an ErrorInfo containing `mentions`.
#[track_caller]
pub fn assert_fail(response: &Value, code: u32, mentions: &str) {
    assert_eq!(response["ActionStatus"], "FAIL", "{response}");
    assert_eq!(response["ErrorCode"], code, "{response}");
    let info = response["ErrorInfo"]
        .as_str()
        .expect("ErrorInfo is a string");
    assert!(
        info.contains(mentions),
        "ErrorInfo {info:?} should mention {mentions:?}"
    );
}

/// The `ErrorList` as (account, code) pairs.
pub fn error_list(response: &Value) -> Vec<(String, u64)> {
    response["ErrorList"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["To_Account"].as_str().unwrap_or("").to_string(),
                        e["ErrorCode"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// --- Helpers for the wire-compatibility, error-code and bad-input tests. ---------------------

/// The tag and attribute APIs as (new `timpush/` path, old `all_member_push/` path).
pub const TAG_ATTR_APIS: [(&str, &str); 9] = [
    ("timpush/set_attr_name", "all_member_push/im_set_attr_name"),
    ("timpush/get_attr_name", "all_member_push/im_get_attr_name"),
    ("timpush/set_attr", "all_member_push/im_set_attr"),
    ("timpush/get_attr", "all_member_push/im_get_attr"),
    ("timpush/remove_attr", "all_member_push/im_remove_attr"),
    ("timpush/add_tag", "all_member_push/im_add_tag"),
    ("timpush/get_tag", "all_member_push/im_get_tag"),
    ("timpush/remove_tag", "all_member_push/im_remove_tag"),
    (
        "timpush/clear_all_tags",
        "all_member_push/im_remove_all_tags",
    ),
];

/// The account APIs.
pub const ACCOUNT_APIS: [&str; 4] = [
    "im_open_login_svc/account_import",
    "im_open_login_svc/multiaccount_import",
    "im_open_login_svc/account_delete",
    "im_open_login_svc/account_check",
];

/// Every one of the 22 API paths (after `/v4/`).
pub fn all_api_paths() -> Vec<&'static str> {
    TAG_ATTR_APIS
        .iter()
        .flat_map(|(new, old)| [*new, *old])
        .chain(ACCOUNT_APIS)
        .collect()
}

/// A `timpush/...` path and its old-family twin, for requests both families must answer alike.
pub fn both_families(new_path: &str) -> [&str; 2] {
    [new_path, old_family(new_path)]
}

/// The old-family twin of a `timpush/...` path.
pub fn old_family(new_path: &str) -> &'static str {
    TAG_ATTR_APIS
        .iter()
        .find(|(new, _)| *new == new_path)
        .map(|(_, old)| *old)
        .unwrap_or_else(|| panic!("{new_path} is not a timpush tag/attribute API"))
}

impl Server {
    /// The URL of `path` (after `/v4/`) with a caller-made query string.
    pub fn url_with_query(&self, path: &str, query: &str) -> String {
        format!("{}/v4/{path}?{query}", self.base)
    }

    /// POSTs `body` to `path` with a caller-made query string; returns the JSON response.
    pub async fn call_with_query(&self, path: &str, query: &str, body: Value) -> Value {
        self.post_raw(
            &self.url_with_query(path, query),
            body.to_string().into_bytes(),
        )
        .await
    }
}

/// A query string for `identifier` of `app` carrying `usersig` as given (not escaped).
pub fn query_with_sig(app: &TestApp, identifier: &str, usersig: &str) -> String {
    format!(
        "sdkappid={}&identifier={identifier}&usersig={usersig}&random={}&contenttype=json",
        app.sdkappid,
        rand_u32()
    )
}

/// The `Tags` that `timpush/get_tag` reports for `account`, or `Value::Null` for an unknown one.
pub async fn tags_of(server: &Server, app: &TestApp, account: &str) -> Value {
    let r = server
        .ok(app, "timpush/get_tag", accounts_body(&[account]))
        .await;
    r["UserTags"][0]["Tags"].clone()
}

/// How many accounts of `app` the audience index says have `tag` (`tagcast/audience_count`).
pub async fn tag_count(server: &Server, app: &TestApp, tag: &str) -> u64 {
    let body = json!({ "Audience": { "Tag": tag } });
    let r = server.ok(app, "tagcast/audience_count", body).await;
    r["Count"].as_u64().expect("a count")
}

/// The `Attrs` that `timpush/get_attr` reports for `account`, or `Value::Null` for an unknown one.
pub async fn attrs_of(server: &Server, app: &TestApp, account: &str) -> Value {
    let r = server
        .ok(app, "timpush/get_attr", accounts_body(&[account]))
        .await;
    r["UserAttrs"][0]["Attrs"].clone()
}

/// The `ErrorInfo` of `account`'s entry in the `ErrorList` (empty if absent).
pub fn error_info_of(response: &Value, account: &str) -> String {
    response["ErrorList"]
        .as_array()
        .and_then(|list| list.iter().find(|e| e["To_Account"] == account))
        .and_then(|e| e["ErrorInfo"].as_str())
        .unwrap_or("")
        .to_string()
}

// --- Helpers for the durability and transport tests. ------------------------------------------

impl Server {
    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM, as an orderly shutdown would, waits for it to exit, and
    /// starts it again on the same data. Returns how the stopped process exited.
    pub fn graceful_restart(&mut self) -> std::process::ExitStatus {
        let status = self.stop();
        self.restart();
        status
    }

    /// Stops the server with SIGTERM and waits for it to exit; `restart` starts it again.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        send_signal(self.pid(), "TERM");
        self.child.wait().expect("wait for tagcast")
    }

    /// Starts the (stopped) server again on the same config and data.
    pub fn restart(&mut self) {
        let (child, base) = spawn(&self.dir.path().join("tagcast.toml"));
        self.child = child;
        self.base = base;
    }

    /// The server's data directory (the embedded store's file is in it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Sends `signal` (e.g. "TERM", "KILL") to process `pid`, without waiting for it to act.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

// --- Request bodies and one-call helpers shared by the API tests. -----------------------------

/// `{"UserTags": [{"To_Account": account, "Tags": tags}]}`: add_tag or remove_tag for one account.
pub fn tag_body(account: &str, tags: &[&str]) -> Value {
    tags_body_for(&[account], tags)
}

/// `{"UserAttrs": [{"To_Account": account, "Attrs": attrs}]}`: set_attr (an object of values) or
/// remove_attr (an array of names) for one account.
pub fn attr_body(account: &str, attrs: Value) -> Value {
    attrs_body_for(&[account], attrs)
}

/// `body` (an add_tag body) with its `Replace` field set to `replace`.
pub fn with_replace(mut body: Value, replace: impl Into<Value>) -> Value {
    body["Replace"] = replace.into();
    body
}

/// `tag_body` with the same `tags` for each of `accounts`.
pub fn tags_body_for(accounts: &[&str], tags: &[&str]) -> Value {
    let items: Vec<Value> = accounts
        .iter()
        .map(|a| json!({ "To_Account": a, "Tags": tags }))
        .collect();
    json!({ "UserTags": items })
}

/// `attr_body` with the same `attrs` for each of `accounts`.
pub fn attrs_body_for(accounts: &[&str], attrs: Value) -> Value {
    let items: Vec<Value> = accounts
        .iter()
        .map(|a| json!({ "To_Account": a, "Attrs": attrs }))
        .collect();
    json!({ "UserAttrs": items })
}

/// For each `timpush/` API that takes a list of accounts, a request naming all of `accounts`
/// (tag `t`, attribute `city` = `x`), as (path, body, the field holding the list).
pub fn every_account_api_body(accounts: &[&str]) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "timpush/add_tag",
            tags_body_for(accounts, &["t"]),
            "UserTags",
        ),
        (
            "timpush/remove_tag",
            tags_body_for(accounts, &["t"]),
            "UserTags",
        ),
        (
            "timpush/clear_all_tags",
            accounts_body(accounts),
            "To_Account",
        ),
        ("timpush/get_tag", accounts_body(accounts), "To_Account"),
        (
            "timpush/set_attr",
            attrs_body_for(accounts, json!({ "city": "x" })),
            "UserAttrs",
        ),
        ("timpush/get_attr", accounts_body(accounts), "To_Account"),
        (
            "timpush/remove_attr",
            attrs_body_for(accounts, json!(["city"])),
            "UserAttrs",
        ),
    ]
}

/// `{"To_Account": accounts}`: the body of get_tag, get_attr and clear_all_tags.
pub fn accounts_body(accounts: &[&str]) -> Value {
    json!({ "To_Account": accounts })
}

/// `{"CheckItem": [{"UserID": ..}, ..]}` or `{"DeleteItem": ..}`: account_check / account_delete.
pub fn user_items(field: &str, users: &[&str]) -> Value {
    let items: Vec<Value> = users.iter().map(|u| json!({ "UserID": u })).collect();
    json!({ field: items })
}

/// Names attribute slots (`{"0": "city", ..}`) with `timpush/set_attr_name`, asserting OK.
pub async fn name_attrs(server: &Server, app: &TestApp, names: Value) -> Value {
    server
        .ok(app, "timpush/set_attr_name", json!({ "AttrNames": names }))
        .await
}

/// `name_attrs` with `AttrTypes` (`{"2": 1, ..}`) too.
pub async fn name_typed_attrs(server: &Server, app: &TestApp, names: Value, types: Value) -> Value {
    let body = json!({ "AttrNames": names, "AttrTypes": types });
    server.ok(app, "timpush/set_attr_name", body).await
}

/// Adds `tags` to `account` with `timpush/add_tag`, asserting an OK envelope.
pub async fn add_tags(server: &Server, app: &TestApp, account: &str, tags: &[&str]) -> Value {
    server
        .ok(app, "timpush/add_tag", tag_body(account, tags))
        .await
}

/// Sets `attrs` (`{"city": "x", ..}`) on `account` with `timpush/set_attr`, asserting OK.
pub async fn set_attrs(server: &Server, app: &TestApp, account: &str, attrs: Value) -> Value {
    server
        .ok(app, "timpush/set_attr", attr_body(account, attrs))
        .await
}

/// Deletes `account` with `account_delete`; returns the response unchecked.
pub async fn delete_account(server: &Server, app: &TestApp, account: &str) -> Value {
    let body = user_items("DeleteItem", &[account]);
    server
        .call(app, "im_open_login_svc/account_delete", body)
        .await
}

/// Checks the accounts of `expected` in one `account_check` call and asserts each one's
/// `AccountStatus` ("Imported" / "NotImported"); returns the response.
pub async fn assert_account_status(
    server: &Server,
    app: &TestApp,
    expected: &[(&str, &str)],
) -> Value {
    let users: Vec<&str> = expected.iter().map(|(user, _)| *user).collect();
    let body = user_items("CheckItem", &users);
    let r = server
        .call(app, "im_open_login_svc/account_check", body)
        .await;
    for (i, (user, status)) in expected.iter().enumerate() {
        assert_eq!(r["ResultItem"][i]["AccountStatus"], *status, "{user}: {r}");
    }
    r
}

/// Borrows each of `strings`, for the helpers that take `&[&str]`.
pub fn as_strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

/// The `ErrorList` `[(account, code)]` of one failed account, as `error_list` returns it.
pub fn one_error(account: &str, code: u64) -> Vec<(String, u64)> {
    vec![(account.to_string(), code)]
}

/// Asserts an OK envelope whose `ErrorList` holds exactly `account` with `code`, with an
/// `ErrorInfo` that mentions each of `mentions`. A failure names `what` (e.g. the case).
#[track_caller]
pub fn assert_item_error(
    response: &Value,
    what: &str,
    account: &str,
    code: u64,
    mentions: &[&str],
) {
    assert_ok_for(response, what);
    assert_eq!(
        error_list(response),
        one_error(account, code),
        "{what}: {response}"
    );
    let info = error_info_of(response, account);
    for mention in mentions {
        assert!(
            info.contains(mention),
            "{what}: {info:?} should mention {mention:?}: {response}"
        );
    }
}

/// Asserts a response without an `ErrorList` (every account was served).
#[track_caller]
pub fn assert_no_error_list(response: &Value) {
    assert_eq!(response.get("ErrorList"), None, "{response}");
}

// --- Servers with their store in a given place or with a fault plan (faults.rs). ------------

impl Server {
    /// Starts a server over plain HTTP whose data dir is `data_dir` (e.g. on a small
    /// filesystem: the embedded store's file is there, a PostgreSQL store is not), with `extra`
    /// TOML appended to the standard config (e.g. a `[[testing.faults]]` fault plan; the test
    /// binary is built with fault injection; faults apply on either backend).
    pub fn start_with_store(data_dir: &Path, extra: &str) -> Server {
        Self::start_custom(
            TestStore::fresh(),
            Some(data_dir),
            extra,
            None,
            PushAppExtra::default(),
        )
    }
}

// --- The store backend of the test servers: TAGCAST_TEST_STORE. -------------------------------
//
// `TAGCAST_TEST_STORE=postgres` runs every test server on PostgreSQL, each with a database of its
// own (`CREATE DATABASE t_<pid>_<n>_<nanos>` through `psql`, dropped when the server is), all on
// one cluster for the whole run:
//
// - `TAGCAST_TEST_PG_PORT` set (scripts/test.sh sets it): the cluster scripts/test.sh started on
//   127.0.0.1 at that port, user `postgres`, trust authentication; it stops it afterwards.
// - unset: the harness starts one itself, once, with `scripts/postgres.sh ensure` in
//   `$TMPDIR/tagcast-test-pg-<uid>`: under a lock, so the test processes of a run (nextest runs
//   each test as a process of its own) and later runs all share it. It is left running for the
//   next run; `scripts/postgres.sh stop $TMPDIR/tagcast-test-pg-$(id -u)` stops it.
//
// Unset or `embedded`: the embedded store in each server's temp data dir.

/// The store backend the test servers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Postgres,
}

/// The backend of this run, from `TAGCAST_TEST_STORE` (`embedded`, the default, or `postgres`).
pub fn backend() -> Backend {
    static BACKEND: LazyLock<Backend> =
        LazyLock::new(|| match std::env::var("TAGCAST_TEST_STORE").as_deref() {
            Err(_) | Ok("" | "embedded") => Backend::Embedded,
            Ok("postgres") => Backend::Postgres,
            Ok(other) => panic!("TAGCAST_TEST_STORE={other:?}: expected embedded or postgres"),
        });
    *BACKEND
}

/// True on the embedded backend. Otherwise notes on stderr that `test` is skipped because it is
/// about the embedded store's file (`why`), so a PostgreSQL run says what it did not test.
pub fn embedded_only(test: &str, why: &str) -> bool {
    let embedded = backend() == Backend::Embedded;
    if !embedded {
        eprintln!("SKIPPED on PostgreSQL: {test}: {why}");
    }
    embedded
}

/// True on the PostgreSQL backend. Otherwise notes on stderr that `test` runs in the PostgreSQL
/// pass only (scripts/test.sh runs both), being about the PostgreSQL store (`why`).
pub fn postgres_only(test: &str, why: &str) -> bool {
    let postgres = backend() == Backend::Postgres;
    if !postgres {
        eprintln!("runs in the PostgreSQL pass only: {test}: {why}");
    }
    postgres
}

/// Polls `probe` every `every` until it answers Ok; the value, with how long it took. Fails the
/// test with the probe's last Err (what it saw instead) once `within` has passed.
pub async fn eventually<T, F, Fut>(within: Duration, every: Duration, mut probe: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = std::time::Instant::now();
    loop {
        match probe().await {
            Ok(value) => return (value, started.elapsed()),
            Err(seen) => assert!(started.elapsed() < within, "not within {within:?}: {seen}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// PostgreSQL 15's programs, as Debian installs them (scripts/postgres.sh).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The port of the run's PostgreSQL cluster on 127.0.0.1 (see the notes above).
fn pg_port() -> u16 {
    static PORT: LazyLock<u16> = LazyLock::new(|| {
        if let Ok(port) = std::env::var("TAGCAST_TEST_PG_PORT") {
            return port
                .parse()
                .unwrap_or_else(|e| panic!("TAGCAST_TEST_PG_PORT={port:?}: {e}"));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let uid = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").expect("/proc/self"),
        );
        let dir = std::env::temp_dir().join(format!("tagcast-test-pg-{uid}"));
        let output = Command::new(root.join("scripts/postgres.sh"))
            .arg("ensure")
            .arg(&dir)
            .arg("25432")
            .arg(root.join("scripts/postgres-test.conf"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/postgres.sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "scripts/postgres.sh ensure {}: {}",
            dir.display(),
            output.status
        );
        let port = stdout.trim().parse().unwrap_or_else(|e| {
            panic!("scripts/postgres.sh ensure printed {stdout:?}, not a port: {e}")
        });
        eprintln!(
            "PostgreSQL for the tests on 127.0.0.1:{port}, in {} (left running; stop it with \
             scripts/postgres.sh stop {0})",
            dir.display()
        );
        port
    });
    *PORT
}

/// Runs one SQL statement as `postgres` in the run cluster's `postgres` database.
fn psql(sql: &str) -> Result<(), String> {
    psql_at(pg_port(), "postgres", sql).map(drop)
}

/// Runs `sql` as `postgres` in `database` of the cluster on `port`; returns what it printed
/// (unaligned, tuples only: one line per row, columns separated by `|`).
pub fn psql_at(port: u16, database: &str, sql: &str) -> Result<String, String> {
    let output = Command::new(Path::new(PG_BIN).join("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-A",
            "-t",
        ])
        .args(["-d", database, "-p", &port.to_string(), "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {PG_BIN}/psql: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// Where one test server keeps its records: nothing of its own on the embedded backend (the
/// store is in the server's data dir), a fresh database on PostgreSQL. The database is dropped
/// with the `TestStore`: keep it as long as any server uses it (restarts included).
pub struct TestStore {
    database: Option<PgDatabase>,
    /// A database the test manages itself (`TestStore::at`).
    external: Option<String>,
}

struct PgDatabase {
    name: String,
    url: String,
}

impl TestStore {
    /// A new store on this run's backend: on PostgreSQL, a new empty database.
    pub fn fresh() -> TestStore {
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        let database = (backend() == Backend::Postgres).then(|| {
            let n = CREATED.fetch_add(1, Ordering::SeqCst);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!("t_{}_{n}_{nanos}", std::process::id());
            psql(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
            let url = format!("postgres://postgres@127.0.0.1:{}/{name}", pg_port());
            PgDatabase { name, url }
        });
        TestStore {
            database,
            external: None,
        }
    }

    /// The database at `url`, which the test created and removes.
    pub fn at(url: String) -> TestStore {
        TestStore {
            database: None,
            external: Some(url),
        }
    }

    /// The database name and port of this run's cluster, on PostgreSQL.
    pub fn database(&self) -> Option<(u16, &str)> {
        self.database
            .as_ref()
            .map(|db| (pg_port(), db.name.as_str()))
    }

    /// The embedded store in the server's data dir, whatever this run's backend.
    pub fn embedded() -> TestStore {
        TestStore {
            database: None,
            external: None,
        }
    }

    /// The database's URL on PostgreSQL (`postgres://postgres@127.0.0.1:PORT/t_...`).
    pub fn url(&self) -> Option<&str> {
        let url = self.database.as_ref().map(|db| db.url.as_str());
        url.or(self.external.as_deref())
    }

    /// The config file's `[store]` table, or nothing for the embedded store. Being a table, it
    /// goes after the top-level keys.
    pub fn toml(&self) -> String {
        self.url()
            .map_or(String::new(), |url| format!("[store]\nurl = {url:?}\n"))
    }

    /// The `tagcast serve` flags that select this store (none for the embedded store).
    pub fn args(&self) -> Vec<String> {
        self.url()
            .map_or(Vec::new(), |url| vec!["--store-url".into(), url.into()])
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE: a server killed a moment ago may still hold connections the cluster has not
        // noticed closing. A leftover database is harmless (the cluster is temporary): warn only.
        if let Err(e) = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("warning: cannot drop test database {}: {e}", self.name);
        }
    }
}

/// A PostgreSQL cluster of one test's own, for tests that stop or crash PostgreSQL (the run's
/// cluster is shared by every test running alongside). Stopped and removed when dropped.
pub struct OwnCluster {
    dir: TempDir,
    pub port: u16,
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // PostgreSQL runs as `postgres` when the tests run as root: it must reach its directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let stdout = postgres_script(&["start", &pg_dir(&dir), "27432"]);
        let port = stdout.trim().parse().expect("the cluster's port");
        OwnCluster { dir, port }
    }

    /// A new database in the cluster; its URL.
    pub fn database(&self, name: &str) -> String {
        psql_at(self.port, "postgres", &format!("CREATE DATABASE {name}")).expect("createdb");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops PostgreSQL as a crash would.
    pub fn crash(&self) {
        postgres_script(&["crash", &pg_dir(&self.dir)]);
    }

    /// Starts it again on its data (the same port).
    pub fn resume(&self) {
        postgres_script(&["resume", &pg_dir(&self.dir)]);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        postgres_script(&["stop", &pg_dir(&self.dir)]);
    }
}

fn pg_dir(dir: &TempDir) -> String {
    dir.path().join("pg").to_string_lossy().into_owned()
}

/// Runs scripts/postgres.sh with `args`; returns its stdout.
fn postgres_script(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh");
    let output = Command::new(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/postgres.sh");
    assert!(
        output.status.success(),
        "scripts/postgres.sh {args:?}: {}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
