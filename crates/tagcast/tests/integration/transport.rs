//! HTTPS, start-up failures of `tagcast serve`, the `usersig` command, and the development app
//! served when there is no config file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// `TAGCAST_*` variables a developer's shell might set; every spawned command runs without them.
const ENV_VARS: [&str; 5] = [
    "TAGCAST_CONFIG",
    "TAGCAST_LISTEN",
    "TAGCAST_DATA_DIR",
    "TAGCAST_TLS_CERT",
    "TAGCAST_TLS_KEY",
];

/// A spawned `tagcast`, killed when dropped so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client without the harness's TLS settings.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

fn tagcast(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagcast"));
    command.args(args).env("TAGCAST_LOG", "warn");
    for var in ENV_VARS {
        command.env_remove(var);
    }
    command
}

/// Runs a `tagcast serve` that is expected to refuse to start, and returns its output. Fails if
/// it is still running after a generous while (it started serving after all).
fn serve_expecting_failure(command: &mut Command) -> Output {
    let mut child = command
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

/// Asserts `tagcast serve --config` with `config_text` exits unsuccessfully, never listening,
/// with every string of `mentions` in its stderr.
fn assert_refuses_config(dir: &Path, name: &str, config_text: &str, mentions: &[&str]) {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, config_text).unwrap();
    let output = serve_expecting_failure(tagcast(&["serve", "--config"]).arg(&config));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{name}: exited {}", output.status);
    assert!(
        !stdout.contains("listening"),
        "{name}: it started listening: {stdout}"
    );
    for mention in mentions {
        assert!(
            stderr.contains(mention),
            "{name}: stderr should mention {mention:?}: {stderr}"
        );
    }
}

/// A config with one valid app, with `extra` at the top and `limits` in the app's limits.
fn config_with(data_dir: &Path, top: &str, app: &str, limits: &str) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n{top}\n[[apps]]\nsdkappid = 1400000001\nsecret_key = \"k\"\n{app}\n[apps.limits]\n{limits}\n",
        data_dir.display().to_string()
    )
}

#[tokio::test]
async fn https_round_trip() {
    let server = Server::start_tls();
    assert!(server.is_tls());
    assert!(server.base.starts_with("https://"), "{}", server.base);
    import(&server, &APP, &["xiaoming"]).await;
    let r = server
        .call(
            &APP,
            "timpush/add_tag",
            json!({"UserTags": [{"To_Account": "xiaoming", "Tags": ["GoldMember", "WeekPassUser"]}]}),
        )
        .await;
    assert_ok(&r);
    let r = server
        .call(
            &APP,
            "all_member_push/im_get_tag",
            json!({"To_Account": ["xiaoming", "nobody"]}),
        )
        .await;
    assert_ok(&r);
    assert_eq!(
        r["UserTags"],
        json!([{"To_Account": "xiaoming", "Tags": ["GoldMember", "WeekPassUser"]}])
    );
    assert_eq!(error_list(&r), [("nobody".to_string(), 70107)]);
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails() {
    let server = Server::start_tls();
    let plain_base = server.base.replacen("https://", "http://", 1);
    let url = format!("{plain_base}/v4/timpush/get_tag?{}", admin_query(&APP));
    let result = http_client()
        .post(&url)
        .body(json!({"To_Account": ["a"]}).to_string())
        .send()
        .await;
    match result {
        Err(_) => {}
        Ok(response) => panic!("plain HTTP got an answer: {}", response.status()),
    }
    // The TLS listener is still fine.
    let r = server
        .call(&APP, "timpush/get_tag", json!({"To_Account": ["a"]}))
        .await;
    assert_ok(&r);
}

#[test]
fn missing_or_bad_tls_files_fail_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let missing = dir.path().join("no-such-cert.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM").unwrap();
    let data = dir.path().join("data");
    let tls = |cert: &Path, key: &Path| {
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let admins = "admins = [\"administrator\"]";

    let missing_cert = config_with(&data, &tls(&missing, &key_path), admins, "");
    assert_refuses_config(
        dir.path(),
        "missing_cert",
        &missing_cert,
        &[&missing.display().to_string(), "certificate"],
    );
    let missing_key = dir.path().join("no-such-key.pem");
    let missing_key_config = config_with(&data, &tls(&cert_path, &missing_key), admins, "");
    assert_refuses_config(
        dir.path(),
        "missing_key",
        &missing_key_config,
        &[&missing_key.display().to_string(), "key"],
    );
    let garbage_cert = config_with(&data, &tls(&garbage, &key_path), admins, "");
    assert_refuses_config(
        dir.path(),
        "garbage_cert",
        &garbage_cert,
        &[&garbage.display().to_string()],
    );
    // The same files named by flags instead of the config file.
    let config = dir.path().join("plain.toml");
    std::fs::write(&config, config_with(&data, "", admins, "")).unwrap();
    let output = serve_expecting_failure(
        tagcast(&["serve", "--config"])
            .arg(&config)
            .arg("--tls-cert")
            .arg(&missing)
            .arg("--tls-key")
            .arg(&key_path),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

#[test]
fn config_errors_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admins = "admins = [\"administrator\"]";
    let cases: [(&str, String, &[&str]); 7] = [
        (
            "unknown_top_key",
            config_with(&data, "listne = \"127.0.0.1:1\"", admins, ""),
            &["listne"],
        ),
        (
            "unknown_limit",
            config_with(&data, "", admins, "tags_per_ap = 5"),
            &["tags_per_ap"],
        ),
        (
            "no_admins",
            config_with(&data, "", "admins = []", ""),
            &["admins"],
        ),
        (
            "duplicate_sdkappid",
            format!(
                "{}\n[[apps]]\nsdkappid = 1400000001\nsecret_key = \"other\"\n{admins}\n",
                config_with(&data, "", admins, "")
            ),
            &["sdkappid", "1400000001"],
        ),
        (
            "zero_rate",
            config_with(&data, "", admins, "api_calls_per_second = 0"),
            &["api_calls_per_second"],
        ),
        (
            "zero_tag_cap",
            config_with(&data, "", admins, "tags_per_app = 0"),
            &["tags_per_app"],
        ),
        (
            "unknown_api_rate",
            config_with(
                &data,
                "",
                admins,
                "[apps.limits.api_calls_per_second_by_api]\n\"timpush/no_such_api\" = 5",
            ),
            &["timpush/no_such_api"],
        ),
    ];
    for (name, text, mentions) in &cases {
        assert_refuses_config(dir.path(), name, text, mentions);
    }
    // The same base config with none of these mistakes starts: the cases fail for their reason.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        config_with(&data, "", admins, "api_calls_per_second = 5"),
    )
    .unwrap();
    let (_running, _, base) = spawn_listening(tagcast(&["serve", "--config"]).arg(&good));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
}

#[test]
fn usersig_command_prints_a_sig_the_verifier_accepts() {
    let output = tagcast(&[
        "usersig",
        "--sdkappid",
        "1400000001",
        "--key",
        "the-app-secret",
        "--identifier",
        "administrator",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let sig = String::from_utf8(output.stdout).unwrap();
    let sig = sig.trim();
    let now = now();
    tagcast_usersig::verify(sig, 1_400_000_001, "administrator", "the-app-secret", now)
        .expect("the printed UserSig verifies");
    assert!(
        tagcast_usersig::verify(sig, 1_400_000_001, "administrator", "other-key", now).is_err()
    );
    assert!(
        tagcast_usersig::verify(sig, 1_400_000_001, "someone_else", "the-app-secret", now).is_err()
    );
    assert!(
        tagcast_usersig::verify(sig, 1_400_000_002, "administrator", "the-app-secret", now)
            .is_err()
    );

    // --expire is honoured.
    let output = tagcast(&[
        "usersig",
        "--sdkappid",
        "1400000001",
        "--key",
        "k",
        "--identifier",
        "a",
        "--expire",
        "60",
    ])
    .output()
    .unwrap();
    let sig = String::from_utf8(output.stdout).unwrap();
    assert!(tagcast_usersig::verify(sig.trim(), 1_400_000_001, "a", "k", now).is_ok());
    assert!(tagcast_usersig::verify(sig.trim(), 1_400_000_001, "a", "k", now + 3600).is_err());
}

/// Spawns `command` and reads its stdout until it says where it listens. Returns the process,
/// the lines printed before that, and the base URL.
fn spawn_listening(command: &mut Command) -> (Running, Vec<String>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tagcast");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("tagcast exited before listening")
            .expect("read stdout");
        if let Some(url) = line.strip_prefix("tagcast listening on ") {
            break url.trim().to_string();
        }
        banner.push(line);
    };
    std::thread::spawn(move || lines.for_each(drop));
    (Running(child), banner, base)
}

/// The value of the banner line `  {label}: value`.
fn banner_value(banner: &[String], label: &str) -> String {
    banner
        .iter()
        .find_map(|line| line.trim().strip_prefix(label)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {label} in the banner: {banner:#?}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn without_a_config_the_dev_app_is_served_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = || {
        let mut command = tagcast(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
        command.arg(&data);
        spawn_listening(&mut command)
    };
    let (mut child, banner, base) = serve();
    let sdkappid: u64 = banner_value(&banner, "sdkappid").parse().unwrap();
    let admin = banner_value(&banner, "admin");
    let key = banner_value(&banner, "secret key");
    let usersig = banner_value(&banner, "usersig");
    tagcast_usersig::verify(&usersig, sdkappid, &admin, &key, now())
        .expect("the printed UserSig is the admin's, signed with the printed key");
    let curl = banner
        .iter()
        .find(|l| l.trim_start().starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line: {banner:#?}"));
    for part in [
        &format!("{base}/v4/im_open_login_svc/account_import?"),
        &format!("sdkappid={sdkappid}"),
        &format!("identifier={admin}"),
        &format!("usersig={usersig}"),
        "-d '{\"UserID\":",
    ] {
        assert!(curl.contains(part), "{curl} should contain {part}");
    }
    assert!(
        data.join("dev-app.toml").is_file(),
        "the key is kept in the data dir"
    );

    let client = http_client();
    let url = |base: &str, api: &str| {
        format!(
            "{base}/v4/{api}?sdkappid={sdkappid}&identifier={admin}&usersig={usersig}&random=1&contenttype=json"
        )
    };
    let post = |url: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let response = client
                .post(url)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let r = post(
        url(&base, "im_open_login_svc/account_import"),
        json!({"UserID": "xiaoming"}),
    )
    .await;
    assert_ok(&r);
    send_signal(child.0.id(), "TERM");
    assert!(child.0.wait().unwrap().success(), "SIGTERM ends it cleanly");

    // Restarted on the same data: same app, same key, so the old UserSig still works, and the
    // imported account is still there.
    let (_running, banner, base) = serve();
    assert_eq!(banner_value(&banner, "sdkappid"), sdkappid.to_string());
    assert_eq!(banner_value(&banner, "secret key"), key);
    let r = post(
        url(&base, "im_open_login_svc/account_check"),
        json!({"CheckItem": [{"UserID": "xiaoming"}, {"UserID": "xiaohong"}]}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r["ResultItem"][0]["AccountStatus"], "Imported", "{r}");
    assert_eq!(r["ResultItem"][1]["AccountStatus"], "NotImported", "{r}");

    // Another data dir is another key.
    let other = dir.path().join("other");
    let mut command = tagcast(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    command.arg(&other);
    let (_other, banner, _) = spawn_listening(&mut command);
    assert_ne!(banner_value(&banner, "secret key"), key);
}
