//! The harness: starts the real `tagcast` binary on a loopback port with a temp data dir and
//! drives it over HTTP(S) with a real client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
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

/// A not-admin account that exists in the main app's key space.
pub const NOT_ADMIN: &str = "ordinary_user";

fn config_toml(data_dir: &Path, tls: Option<&(PathBuf, PathBuf)>) -> String {
    let tls = tls.map_or(String::new(), |(cert, key)| {
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    });
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = {data_dir:?}
{tls}
[[apps]]
sdkappid = {main_id}
secret_key = "{main_key}"
admins = ["{main_admin}", "second_admin"]
[apps.limits]
api_calls_per_second = 100000

[[apps]]
sdkappid = {other_id}
secret_key = "{other_key}"
admins = ["{other_admin}"]
[apps.limits]
api_calls_per_second = 100000

[[apps]]
sdkappid = {tight_id}
secret_key = "{tight_key}"
admins = ["{tight_admin}"]
[apps.limits]
accounts_per_request = 3
tags_per_add = 3
tags_per_replace = 4
tags_per_account = 5
tags_per_app = 8
tag_bytes = 10
attr_value_bytes = 8
body_bytes = 2048
api_calls_per_second = 1000
[apps.limits.api_calls_per_second_by_api]
"timpush/get_attr_name" = 2
"#,
        data_dir = data_dir.display().to_string(),
        main_id = APP.sdkappid,
        main_key = APP.key,
        main_admin = APP.admin,
        other_id = OTHER_APP.sdkappid,
        other_key = OTHER_APP.key,
        other_admin = OTHER_APP.admin,
        tight_id = TIGHT_APP.sdkappid,
        tight_key = TIGHT_APP.key,
        tight_admin = TIGHT_APP.admin,
    )
}

/// A running server process with its own temp directory.
pub struct Server {
    child: Child,
    pub base: String,
    dir: TempDir,
    tls: Option<(PathBuf, PathBuf)>,
    client: reqwest::Client,
}

impl Server {
    /// Starts a server over plain HTTP.
    pub fn start() -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir"), None)
    }

    /// Starts a server over HTTPS with a fresh self-signed certificate for 127.0.0.1.
    pub fn start_tls() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("self-signed certificate");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
        Self::start_in(dir, Some((cert_path, key_path)))
    }

    fn start_in(dir: TempDir, tls: Option<(PathBuf, PathBuf)>) -> Server {
        let data_dir = dir.path().join("data");
        let config = dir.path().join("tagcast.toml");
        std::fs::write(&config, config_toml(&data_dir, tls.as_ref())).expect("write config");
        let (child, base) = spawn(&config);
        Server {
            child,
            base,
            dir,
            tls,
            client: client(),
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again on the same data.
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

    /// POSTs raw bytes to a full URL; asserts HTTP 200 and a JSON body.
    pub async fn post_raw(&self, url: &str, body: Vec<u8>) -> Value {
        let response = self
            .client
            .post(url)
            .body(body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200, "HTTP status for {url}");
        let bytes = response.bytes().await.expect("response body");
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {bytes:?}"))
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagcast"))
        .args(["serve", "--config"])
        .arg(config)
        .env("TAGCAST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tagcast");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("tagcast exited before listening")
            .expect("read tagcast stdout");
        if let Some(url) = line.strip_prefix("tagcast listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, base)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
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

/// Imports `accounts` into `app`, asserting success.
pub async fn import(server: &Server, app: &TestApp, accounts: &[&str]) {
    for chunk in accounts.chunks(100) {
        let r = server
            .call(
                app,
                "im_open_login_svc/multiaccount_import",
                serde_json::json!({ "Accounts": chunk }),
            )
            .await;
        assert_ok(&r);
        assert_eq!(r["FailAccounts"], serde_json::json!([]), "{r}");
    }
}

/// Asserts an OK envelope.
#[track_caller]
pub fn assert_ok(response: &Value) {
    assert_eq!(response["ActionStatus"], "OK", "{response}");
    assert_eq!(response["ErrorCode"], 0, "{response}");
    assert_eq!(response["ErrorInfo"], "", "{response}");
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
        .call(
            app,
            "timpush/get_tag",
            serde_json::json!({ "To_Account": [account] }),
        )
        .await;
    assert_ok(&r);
    r["UserTags"][0]["Tags"].clone()
}

/// The `Attrs` that `timpush/get_attr` reports for `account`, or `Value::Null` for an unknown one.
pub async fn attrs_of(server: &Server, app: &TestApp, account: &str) -> Value {
    let r = server
        .call(
            app,
            "timpush/get_attr",
            serde_json::json!({ "To_Account": [account] }),
        )
        .await;
    assert_ok(&r);
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
        send_signal(self.pid(), "TERM");
        let status = self.child.wait().expect("wait for tagcast");
        let (child, base) = spawn(&self.dir.path().join("tagcast.toml"));
        self.child = child;
        self.base = base;
        status
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
