//! HTTPS, start-up failures of `tagcast serve`, the `usersig` command, and the development app
//! served when there is no config file.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

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
    client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// Asserts `tagcast serve --config` with `config_text` exits unsuccessfully, never listening,
/// with every string of `mentions` in its stderr.
fn assert_refuses_config(dir: &Path, name: &str, config_text: &str, mentions: &[&str]) {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, config_text).unwrap();
    let output = wait_for_exit(clean_tagcast(&["serve", "--config"]).arg(&config));
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
    add_tags(&server, &APP, "xiaoming", &["GoldMember", "WeekPassUser"]).await;
    let body = accounts_body(&["xiaoming", "nobody"]);
    let r = server.ok(&APP, "all_member_push/im_get_tag", body).await;
    assert_eq!(
        r["UserTags"],
        json!([{"To_Account": "xiaoming", "Tags": ["GoldMember", "WeekPassUser"]}])
    );
    assert_eq!(error_list(&r), one_error("nobody", 70107));
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails() {
    let server = Server::start_tls();
    let plain_base = server.base.replacen("https://", "http://", 1);
    let url = format!("{plain_base}/v4/timpush/get_tag?{}", admin_query(&APP));
    let result = http_client()
        .post(&url)
        .body(accounts_body(&["a"]).to_string())
        .send()
        .await;
    match result {
        Err(_) => {}
        Ok(response) => panic!("plain HTTP got an answer: {}", response.status()),
    }
    // The TLS listener is still fine.
    server
        .ok(&APP, "timpush/get_tag", accounts_body(&["a"]))
        .await;
}

#[test]
fn missing_or_bad_tls_files_fail_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = write_self_signed_cert(dir.path());
    let missing = dir.path().join("no-such-cert.pem");
    let missing_key = dir.path().join("no-such-key.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM").unwrap();
    let data = dir.path().join("data");
    let admins = "admins = [\"administrator\"]";

    let shown = |path: &Path| path.display().to_string();
    // (name, certificate, key, what stderr must mention)
    let cases: [(&str, &Path, &Path, &[&str]); 3] = [
        (
            "missing_cert",
            &missing,
            &key_path,
            &[&shown(&missing), "certificate"],
        ),
        (
            "missing_key",
            &cert_path,
            &missing_key,
            &[&shown(&missing_key), "key"],
        ),
        ("garbage_cert", &garbage, &key_path, &[&shown(&garbage)]),
    ];
    for (name, cert, key, mentions) in cases {
        let config = config_with(&data, &tls_toml(cert, key), admins, "");
        assert_refuses_config(dir.path(), name, &config, mentions);
    }
    // The same files named by flags instead of the config file.
    let config = dir.path().join("plain.toml");
    std::fs::write(&config, config_with(&data, "", admins, "")).unwrap();
    let output = wait_for_exit(
        clean_tagcast(&["serve", "--config"])
            .arg(&config)
            .arg("--tls-cert")
            .arg(&missing)
            .arg("--tls-key")
            .arg(&key_path),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&shown(&missing)), "{stderr}");
}

#[test]
fn config_errors_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admins = "admins = [\"administrator\"]";
    let by_api = "[apps.limits.api_calls_per_second_by_api]\n\"timpush/no_such_api\" = 5";
    // (name, top-level lines, app lines, limit lines, what stderr must mention)
    let cases: [(&str, &str, &str, &str, &[&str]); 6] = [
        (
            "unknown_top_key",
            "listne = \"127.0.0.1:1\"",
            admins,
            "",
            &["listne"],
        ),
        (
            "unknown_limit",
            "",
            admins,
            "tags_per_ap = 5",
            &["tags_per_ap"],
        ),
        ("no_admins", "", "admins = []", "", &["admins"]),
        (
            "zero_rate",
            "",
            admins,
            "api_calls_per_second = 0",
            &["api_calls_per_second"],
        ),
        (
            "zero_tag_cap",
            "",
            admins,
            "tags_per_app = 0",
            &["tags_per_app"],
        ),
        (
            "unknown_api_rate",
            "",
            admins,
            by_api,
            &["timpush/no_such_api"],
        ),
    ];
    for (name, top, app, limits, mentions) in cases {
        let text = config_with(&data, top, app, limits);
        assert_refuses_config(dir.path(), name, &text, mentions);
    }
    let duplicate_sdkappid = format!(
        "{}\n[[apps]]\nsdkappid = 1400000001\nsecret_key = \"other\"\n{admins}\n",
        config_with(&data, "", admins, "")
    );
    let mentions = ["sdkappid", "1400000001"];
    assert_refuses_config(
        dir.path(),
        "duplicate_sdkappid",
        &duplicate_sdkappid,
        &mentions,
    );
    // The same base config with none of these mistakes starts: the cases fail for their reason.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        config_with(&data, "", admins, "api_calls_per_second = 5"),
    )
    .unwrap();
    let (_running, _, base) = spawn_running(clean_tagcast(&["serve", "--config"]).arg(&good));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
}

/// Runs `tagcast usersig` for sdkappid 1400000001 with `key`, `identifier` and `extra` flags.
fn usersig_command(key: &str, identifier: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "usersig",
        "--sdkappid",
        "1400000001",
        "--key",
        key,
        "--identifier",
        identifier,
    ];
    args.extend_from_slice(extra);
    clean_tagcast(&args).output().unwrap()
}

#[test]
fn usersig_command_prints_a_sig_the_verifier_accepts() {
    let output = usersig_command("the-app-secret", "administrator", &[]);
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
    let output = usersig_command("k", "a", &["--expire", "60"]);
    let sig = String::from_utf8(output.stdout).unwrap();
    assert!(tagcast_usersig::verify(sig.trim(), 1_400_000_001, "a", "k", now).is_ok());
    assert!(tagcast_usersig::verify(sig.trim(), 1_400_000_001, "a", "k", now + 3600).is_err());
}

/// `spawn_listening`, with the process killed when the `Running` is dropped.
fn spawn_running(command: &mut Command) -> (Running, Vec<String>, String) {
    let (child, banner, base) = spawn_listening(command);
    (Running(child), banner, base)
}

/// Serves the development app (no config file) on data dir `data` and `store`.
fn serve_dev(data: &Path, store: &TestStore) -> (Running, Vec<String>, String) {
    spawn_running(
        clean_tagcast(&["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(store.args()),
    )
}

#[tokio::test]
async fn without_a_config_the_dev_app_is_served_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = TestStore::fresh();
    let (mut child, banner, base) = serve_dev(&data, &store);
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
    // On PostgreSQL too, the key is kept in the data dir.
    assert!(
        data.join("dev-app.toml").is_file(),
        "the key is kept in the data dir"
    );
    let shown = banner_value(&banner, "store");
    match store.url() {
        Some(url) => assert_eq!(shown, format!("PostgreSQL store at {url}")),
        None => assert_eq!(
            shown,
            format!("embedded store in {}", data.join("tagcast.redb").display())
        ),
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("dev-app.toml"))
            .expect("dev-app.toml")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "only the owner may read the key");

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
    let (_running, banner, base) = serve_dev(&data, &store);
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
    let (_other, banner, _) = serve_dev(&dir.path().join("other"), &TestStore::fresh());
    assert_ne!(banner_value(&banner, "secret key"), key);
}
