//! What the `tagcast` command prints and returns when it cannot start (one plain line naming the
//! file, key or address; exit status 2; no backtrace), its log formats, and where the app's secret
//! key may come from.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::common::*;

/// The exit status of a usage, config or start-up error.
const CONFIG_ERROR: i32 = 2;

/// A spawned `tagcast`, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` with RUST_BACKTRACE=1, expecting it to exit on its own soon; fails if it keeps
/// running (it started serving after all).
fn run_to_exit(command: &mut Command) -> Output {
    wait_for_exit(command.env("RUST_BACKTRACE", "1"))
}

/// Asserts `command` fails with exit status 2 and one plain `error: ...` line on stderr, without
/// a backtrace and without listening; returns that line.
#[track_caller]
fn assert_start_error(command: &mut Command) -> String {
    let output = run_to_exit(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    assert_eq!(output.status.code(), Some(CONFIG_ERROR), "{stderr}");
    assert!(!stdout.contains("listening"), "it listened: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let lower = stderr.to_lowercase();
    for noise in ["backtrace", "caused by", "panicked", "stack"] {
        assert!(!lower.contains(noise), "{noise:?} in {stderr}");
    }
    stderr
}

/// `tagcast serve --config` with a config of one app on `data`, with `top` lines (e.g. `[tls]`).
fn serve_config(dir: &Path, name: &str, data: &Path, top: &str) -> Command {
    let config = dir.join(format!("{name}.toml"));
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{top}\n[[apps]]\nsdkappid = 1400000001\n\
         secret_key = \"k\"\nadmins = [\"administrator\"]\n",
        data.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    let mut command = clean_tagcast(&["serve", "--config"]);
    command.arg(config);
    command
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn a_missing_tls_key_is_named_once_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = write_self_signed_cert(dir.path());
    let missing = dir.path().join("no-such-key.pem");
    let data = dir.path().join("data");
    let tls = tls_toml(&cert, &missing);
    let line = assert_start_error(&mut serve_config(dir.path(), "missing_key", &data, &tls));
    let shown = missing.display().to_string();
    assert_eq!(count(&line, &shown), 1, "the file once: {line}");
    assert!(line.contains("key"), "{line}");
    assert_eq!(
        count(&line.to_lowercase(), "no such file"),
        1,
        "the cause once: {line}"
    );
    assert!(!data.exists(), "the data dir was created: {line}");
}

#[test]
fn a_garbage_certificate_says_so_and_leaves_the_data_dir_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = write_self_signed_cert(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM").unwrap();
    let shown = garbage.display().to_string();
    let data = dir.path().join("data");
    let tls = tls_toml(&garbage, &key);
    let line = assert_start_error(&mut serve_config(dir.path(), "garbage", &data, &tls));
    assert!(line.contains(&shown), "{line}");
    assert!(line.contains("no PEM certificate found"), "{line}");
    assert!(!line.contains("peer sent no certificates"), "{line}");
    assert!(!data.exists(), "the data dir was created: {line}");

    // Without a config file (the development app), by flags: the new app's key is not written
    // into a data dir that a failed start would otherwise create.
    let dev_data = dir.path().join("dev-data");
    let mut command = clean_tagcast(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    command
        .arg(&dev_data)
        .arg("--tls-cert")
        .arg(&garbage)
        .arg("--tls-key")
        .arg(&key);
    let line = assert_start_error(&mut command);
    assert!(line.contains(&shown), "{line}");
    assert!(!dev_data.exists(), "the data dir was created: {line}");
}

#[test]
fn an_address_in_use_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let mut command = serve_config(dir.path(), "busy", &data, "");
    command.args(["--listen", &addr]);
    let line = assert_start_error(&mut command);
    assert!(line.contains(&addr), "{line}");
    assert!(line.to_lowercase().contains("in use"), "{line}");
    assert!(!data.exists(), "the data dir was created: {line}");
}

#[test]
fn an_unknown_config_key_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut command = serve_config(dir.path(), "typo", &data, "listne = \"127.0.0.1:1\"");
    let line = assert_start_error(&mut command);
    assert!(line.contains("listne"), "{line}");
    assert!(line.contains("typo.toml"), "the file is named: {line}");
    assert!(line.contains("line 3"), "the place is named: {line}");
}

#[test]
fn a_bad_node_id_gone_after_or_keep_secs_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases = [
        ("node_id = \"a b\"", "node_id: 'a b'"),
        ("node_id = \"\"", "node_id: ''"),
        (
            "[cluster]\nnode_gone_after_secs = 0",
            "cluster.node_gone_after_secs",
        ),
        (
            "[reports]\nkeep_secs = 0",
            "reports.keep_secs: must be at least 1",
        ),
    ];
    for (n, (top, named)) in cases.iter().enumerate() {
        let mut command = serve_config(dir.path(), &format!("node{n}"), &data, top);
        let line = assert_start_error(&mut command);
        assert!(line.contains(named), "{top}: {line}");
    }
    // The flag is checked alike.
    let mut command = serve_config(dir.path(), "flag", &data, "");
    let line = assert_start_error(command.args(["--node-id", &"x".repeat(65)]));
    assert!(line.contains("node_id"), "{line}");
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let output = run_to_exit(&mut clean_tagcast(&["serve", "--log-format", "xml"]));
    assert_eq!(output.status.code(), Some(CONFIG_ERROR));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("xml"), "{stderr}");
}

/// Starts `command` (a `tagcast serve`) with its stderr piped, requests `/healthz`, stops it with
/// SIGTERM and returns everything it wrote on stderr.
async fn serve_and_stop(command: &mut Command) -> String {
    let mut child = command
        .env("TAGCAST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tagcast");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).expect("read stderr");
        text
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let base = loop {
        let line = lines.next().expect("exited before listening").unwrap();
        if let Some(url) = line.strip_prefix("tagcast listening on ") {
            break url.to_string();
        }
    };
    let child = Running(child);
    let response = client_builder()
        .build()
        .unwrap()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut child = child;
    send_signal(child.0.id(), "TERM");
    assert!(child.0.wait().unwrap().success());
    reader.join().unwrap()
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = TestStore::fresh();
    let mut command = serve_config(dir.path(), "json", &data, &store.toml());
    command.args(["--log-format", "json"]);
    let stderr = serve_and_stop(&mut command).await;
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() >= 2,
        "a start and a shutdown at least: {stderr}"
    );
    for line in &lines {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?} in:\n{stderr}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["message"].is_string(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"listening\"")),
        "{stderr}"
    );

    // The variable works too, and a start-up error is a JSON line as well.
    let mut command = serve_config(dir.path(), "typo", &data, "listne = 1");
    command.env("TAGCAST_LOG_FORMAT", "json");
    let output = run_to_exit(&mut command);
    assert_eq!(output.status.code(), Some(CONFIG_ERROR));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let event: Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {stderr:?}"));
    assert_eq!(event["level"], "ERROR", "{stderr}");
    let message = event["message"].as_str().unwrap_or_default();
    assert!(message.contains("listne"), "{stderr}");
}

#[tokio::test]
async fn text_logs_are_not_coloured_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = TestStore::fresh();
    let stderr = serve_and_stop(&mut serve_config(dir.path(), "text", &data, &store.toml())).await;
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(!stderr.contains("\x1b["), "ANSI codes: {stderr:?}");
}

#[tokio::test]
async fn the_log_says_which_store_is_used_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = TestStore::fresh();
    // On PostgreSQL, the test cluster trusts every local connection, so the URL may carry any
    // password: the log must show it as ***.
    let (top, expected) = match store.url() {
        Some(url) => {
            let with_password = url.replacen("://postgres@", "://postgres:hunter2@", 1);
            let shown = url.replacen("://postgres@", "://postgres:***@", 1);
            (
                format!("[store]\nurl = {with_password:?}\n"),
                format!("PostgreSQL store at {shown}"),
            )
        }
        None => (
            String::new(),
            format!("embedded store in {}", data.join("tagcast.redb").display()),
        ),
    };
    let stderr = serve_and_stop(&mut serve_config(dir.path(), "store", &data, &top)).await;
    let line = stderr
        .lines()
        .find(|l| l.contains("store opened"))
        .unwrap_or_else(|| panic!("no `store opened` line: {stderr}"));
    assert!(line.contains(&expected), "{expected:?} in {line}");
    assert!(
        !stderr.contains("hunter2"),
        "the password is shown: {stderr}"
    );
}

/// `tagcast serve` on a config whose `[store] url` is `file_url`, with `TAGCAST_STORE_URL` set
/// to `env_url` and `--store-url` to `flag_url` where given.
fn serve_store_url(
    dir: &Path,
    file_url: &str,
    env_url: Option<&str>,
    flag_url: Option<&str>,
) -> Command {
    let data = dir.join("data");
    let top = format!("[store]\nurl = {file_url:?}\n");
    let mut command = serve_config(dir, "store_url", &data, &top);
    if let Some(url) = env_url {
        command.env("TAGCAST_STORE_URL", url);
    }
    if let Some(url) = flag_url {
        command.args(["--store-url", url]);
    }
    command
}

#[test]
fn a_store_url_that_is_not_postgres_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "mysql://root:hunter2@db.example:3306/tagcast";
    let line = assert_start_error(&mut serve_store_url(dir.path(), url, None, None));
    assert!(line.contains("store.url"), "the key is named: {line}");
    assert!(
        line.contains("mysql://root:***@db.example:3306/tagcast"),
        "the URL is shown, redacted: {line}"
    );
    assert!(line.contains("postgres://"), "what is expected: {line}");
    assert!(!line.contains("hunter2"), "the password is shown: {line}");
    assert!(
        !dir.path().join("data").exists(),
        "the data dir was created"
    );
}

#[test]
fn the_store_url_comes_from_the_flag_the_variable_or_the_file() {
    // Each place holds a different wrong URL: the error names the one that was used.
    let dir = tempfile::tempdir().unwrap();
    let (file, env, flag) = ("mysql://file@h/db", "redis://env@h/db", "http://flag@h/db");
    for (env_url, flag_url, used) in [
        (Some(env), Some(flag), flag),
        (None, Some(flag), flag),
        (Some(env), None, env),
        (None, None, file),
    ] {
        let mut command = serve_store_url(dir.path(), file, env_url, flag_url);
        let line = assert_start_error(&mut command);
        assert!(
            line.contains(used),
            "{used} expected ({env_url:?}, {flag_url:?}): {line}"
        );
    }
    // `--store-url` alone, without a config file (the development app) is checked too.
    let mut command = clean_tagcast(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    command
        .arg(dir.path().join("dev-data"))
        .args(["--store-url", "sqlite://x.db"]);
    let line = assert_start_error(&mut command);
    assert!(line.contains("sqlite://x.db"), "{line}");
    assert!(
        !dir.path().join("dev-data").exists(),
        "the data dir was created"
    );
}

/// Runs `tagcast usersig` for sdkappid 1400000001 and identifier `a` with `extra` arguments.
fn usersig(extra: &[&str], env_key: Option<&str>) -> Output {
    let mut command = clean_tagcast(&["usersig", "--sdkappid", "1400000001", "--identifier", "a"]);
    command.args(extra);
    if let Some(key) = env_key {
        command.env("TAGCAST_KEY", key);
    }
    run_to_exit(&mut command)
}

/// Asserts `output` printed a UserSig signed with `key`.
#[track_caller]
fn assert_signed_with(output: &Output, key: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let sig = String::from_utf8_lossy(&output.stdout);
    tagcast_usersig::verify(sig.trim(), 1_400_000_001, "a", key, now())
        .unwrap_or_else(|e| panic!("not signed with {key:?}: {e:?}"));
}

#[test]
fn the_key_comes_from_the_flag_the_variable_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "file-key\n").unwrap();
    let file_arg = file.display().to_string();

    assert_signed_with(&usersig(&["--key", "flag-key"], None), "flag-key");
    assert_signed_with(&usersig(&[], Some("env-key")), "env-key");
    // The file's trailing newline is not part of the key.
    assert_signed_with(&usersig(&["--key-file", &file_arg], None), "file-key");
    // A file beats the variable, which is a default.
    assert_signed_with(
        &usersig(&["--key-file", &file_arg], Some("env-key")),
        "file-key",
    );
    // --key beats the variable.
    assert_signed_with(
        &usersig(&["--key", "flag-key"], Some("env-key")),
        "flag-key",
    );

    // Mistakes are usage errors, named.
    for (extra, mentions) in [
        (vec!["--key", "k", "--key-file", &file_arg], "--key-file"),
        (vec![], "TAGCAST_KEY"),
        (vec!["--key-file", "/no/such/key/file"], "/no/such/key/file"),
    ] {
        let output = usersig(&extra, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(CONFIG_ERROR),
            "{extra:?}: {stderr}"
        );
        assert!(stderr.contains(mentions), "{extra:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{extra:?}");
    }
}

#[test]
fn help_tells_where_the_key_can_come_from() {
    for command in ["usersig", "listen"] {
        let output = clean_tagcast(&[command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{help}");
        for mention in ["--key-file", "TAGCAST_KEY", "visible to other users"] {
            assert!(
                help.contains(mention),
                "{command} --help lacks {mention:?}:\n{help}"
            );
        }
    }
    let output = clean_tagcast(&["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for mention in ["--log-format", "TAGCAST_LOG_FORMAT", "json"] {
        assert!(
            help.contains(mention),
            "serve --help lacks {mention:?}:\n{help}"
        );
    }
}

#[test]
fn migrate_refuses_a_source_that_is_not_a_store_and_a_store_copied_onto_itself() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    let to = "postgres://tagcast:secret@127.0.0.1:1/db";
    let line = assert_start_error(&mut clean_tagcast(&[
        "migrate", "--from", empty, "--to", to,
    ]));
    assert!(line.contains("no embedded store there"), "{line}");
    // Nothing was created where the store was looked for.
    assert_eq!(std::fs::read_dir(empty).unwrap().count(), 0);

    let same = ["migrate", "--from", to, "--to", to];
    let line = assert_start_error(&mut clean_tagcast(&same));
    assert!(line.contains("the same store"), "{line}");
    assert!(!line.contains("secret"), "the password leaked: {line}");
}

/// `serve` with app 1400000001 and the provider table `provider` after it.
fn serve_with_provider(dir: &Path, name: &str, provider: &str) -> Command {
    let config = dir.join(format!("{name}.toml"));
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[apps]]\nsdkappid = 1400000001\n\
         secret_key = \"k\"\nadmins = [\"administrator\"]\n{provider}\n",
        dir.join("data").display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    let mut command = clean_tagcast(&["serve", "--config"]);
    command.arg(config);
    command
}

#[test]
fn bad_push_provider_credentials_are_named_without_their_contents() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "-----BEGIN PRIVATE KEY-----\nSECRET-CONTENT\n-----END PRIVATE KEY-----\n";
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, secret).unwrap();
    let missing = dir.path().join("missing.p8");
    let apns = |file: &Path| {
        format!(
            "[apps.apns]\nkey_file = {:?}\nkey_id = \"K\"\nteam_id = \"T\"\ntopic = \"com.x\"",
            file.display().to_string()
        )
    };
    let fcm = format!(
        "[apps.fcm]\nservice_account_file = {:?}",
        garbage.display().to_string()
    );
    let webpush = |file: &Path, contact: &str| {
        format!(
            "[apps.webpush]\nvapid_key_file = {:?}\ncontact = {contact:?}",
            file.display().to_string()
        )
    };
    let cases = [
        (apns(&missing), "apps[0].apns.key_file: cannot read"),
        (apns(&garbage), "apps[0].apns.key_file"),
        (fcm, "apps[0].fcm.service_account_file"),
        (
            webpush(&garbage, "mailto:ops@example.com"),
            "apps[0].webpush.vapid_key_file",
        ),
        (
            webpush(&garbage, "ops@example.com"),
            "apps[0].webpush.contact",
        ),
    ];
    for (i, (provider, mentions)) in cases.iter().enumerate() {
        let stderr = assert_start_error(&mut serve_with_provider(
            dir.path(),
            &format!("p{i}"),
            provider,
        ));
        assert!(stderr.contains(mentions), "{mentions:?} in {stderr}");
        assert!(
            !stderr.contains("SECRET-CONTENT"),
            "the file's content leaked: {stderr}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "a bad config never touches the data"
    );
}

#[tokio::test]
async fn vapid_key_writes_a_private_file_once_and_the_server_publishes_its_public_half() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("vapid.key");
    let key_arg = key.to_str().unwrap();
    let output = run_to_exit(&mut clean_tagcast(&["vapid-key", "--out", key_arg]));
    assert!(output.status.success(), "{output:?}");
    let public = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(public.len(), 87, "65 bytes in base64url: {public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(&key).unwrap();
    let again = run_to_exit(&mut clean_tagcast(&["vapid-key", "--out", key_arg]));
    assert_eq!(again.status.code(), Some(CONFIG_ERROR));
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "an existing key is never overwritten"
    );

    let webpush = format!(
        "[apps.webpush]\nvapid_key_file = {key_arg:?}\ncontact = \"mailto:ops@example.com\""
    );
    let mut command = serve_with_provider(dir.path(), "webpush", &webpush);
    let (child, _, base) = spawn_listening(&mut command);
    let _running = Running(child);
    let client = client_builder().build().unwrap();
    let served = client
        .get(format!(
            "{base}/webpush/vapid_public_key?sdkappid=1400000001"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap().trim(), public);
    let unknown = client
        .get(format!("{base}/webpush/vapid_public_key?sdkappid=42"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // A ca_file must hold certificates.
    let no_certs = dir.path().join("no-certs.pem");
    std::fs::write(&no_certs, "not a certificate").unwrap();
    let with_ca = format!("{webpush}\nca_file = {:?}", no_certs.display().to_string());
    let stderr = assert_start_error(&mut serve_with_provider(dir.path(), "ca", &with_ca));
    assert!(
        stderr.contains("apps[0].webpush.ca_file: no PEM certificate"),
        "{stderr}"
    );
}
