//! Storage failures seen through the API: the internal-error codes 91000 (push families) and
//! 70500 (accounts), from a fault plan in the server's `[testing]` config (the test binary is
//! built with fault injection) and from a real full disk that empties again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::ws::text_body;

/// A server whose store follows the fault plan `faults` (TOML `[[testing.faults]]` tables).
fn server_with_faults(faults: &str) -> (tempfile::TempDir, Server) {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with_store(&data.path().join("data"), faults);
    (data, server)
}

fn fault(action: &str, op: &str) -> String {
    format!("[[testing.faults]]\naction = {action:?}\nop = {op:?}\n")
}

/// Asserts the internal-error envelope: `code`, and an ErrorInfo that says to retry.
#[track_caller]
fn assert_internal(response: &Value, code: u32, mentions: &str) {
    assert_fail(response, code, "please retry");
    let info = response["ErrorInfo"].as_str().unwrap_or("");
    assert!(
        info.contains(mentions),
        "ErrorInfo {info:?} should mention {mentions:?}"
    );
}

async fn account_status(server: &Server, user: &str) -> String {
    let r = server
        .ok(
            &APP,
            "im_open_login_svc/account_check",
            json!({ "CheckItem": [{ "UserID": user }] }),
        )
        .await;
    r["ResultItem"][0]["AccountStatus"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn tasks_of_the_last_minute(server: &Server) -> Vec<Value> {
    let now = now();
    let stats = server
        .ok(
            &PUSH_APP,
            "timpush/all_member_push_statistics",
            json!({ "StartTime": now - 60, "EndTime": now + 60 }),
        )
        .await;
    stats["Results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_failed_push_write_is_91000_and_stores_nothing() {
    let (_data, server) = server_with_faults(&fault("fail_write", "create_task"));
    let push = json!({ "MsgRandom": 4242, "MsgBody": text_body("hello") });
    let r = server.call(&PUSH_APP, "timpush/push", push.clone()).await;
    assert_internal(&r, 91000, "the write create_task");
    assert_eq!(r["TaskId"], "", "{r}");
    assert_eq!(
        tasks_of_the_last_minute(&server).await,
        Vec::<Value>::new(),
        "no task was stored"
    );

    // Retried with the same MsgRandom: a new task, not a duplicate of a half-written one.
    let r = server.ok(&PUSH_APP, "timpush/push", push).await;
    let task_id = r["TaskId"].as_str().unwrap().to_string();
    assert!(!task_id.is_empty(), "{r}");
    let tasks = tasks_of_the_last_minute(&server).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["TaskID"], task_id.as_str());
}

#[tokio::test]
async fn a_failed_account_import_is_70500_and_stores_nothing() {
    let (_data, server) = server_with_faults(&fault("fail_write", "import_accounts"));
    let import = json!({ "UserID": "alice" });
    let r = server
        .call(&APP, "im_open_login_svc/account_import", import.clone())
        .await;
    assert_internal(&r, 70500, "the write import_accounts");
    assert_eq!(account_status(&server, "alice").await, "NotImported");

    server
        .ok(&APP, "im_open_login_svc/account_import", import)
        .await;
    assert_eq!(account_status(&server, "alice").await, "Imported");
}

#[tokio::test]
async fn failed_reads_answer_each_familys_internal_code() {
    let plan = [
        fault("fail_read", "get_tags"),
        fault("fail_read", "account_ids"),
    ]
    .concat();
    let (_data, server) = server_with_faults(&plan);
    import(&server, &APP, &["u"]).await;
    let get = json!({ "To_Account": ["u"] });
    let r = server.call(&APP, "timpush/get_tag", get.clone()).await;
    assert_internal(&r, 91000, "the read get_tags");
    let r = server.ok(&APP, "all_member_push/im_get_tag", get).await;
    assert_eq!(r["UserTags"][0]["Tags"], json!([]), "{r}");

    let check = json!({ "CheckItem": [{ "UserID": "u" }] });
    let r = server
        .call(&APP, "im_open_login_svc/account_check", check)
        .await;
    assert_internal(&r, 70500, "the read account_ids");
    assert_eq!(account_status(&server, "u").await, "Imported");
}

#[tokio::test]
async fn a_writer_panic_fails_its_write_and_the_writer_carries_on() {
    let plan = [
        fault("panic_writer", "edit_tags"),
        fault("panic_writer", "import_accounts"),
    ]
    .concat();
    let (_data, server) = server_with_faults(&plan);
    let r = server
        .call(
            &APP,
            "im_open_login_svc/multiaccount_import",
            json!({ "Accounts": ["u"] }),
        )
        .await;
    assert_internal(&r, 70500, "writer failed");
    import(&server, &APP, &["u"]).await;

    let add = |tag: &str| json!({ "UserTags": [{ "To_Account": "u", "Tags": [tag] }] });
    let r = server.call(&APP, "timpush/add_tag", add("lost")).await;
    assert_internal(&r, 91000, "writer failed");
    let info = r["ErrorInfo"].as_str().unwrap();
    assert!(
        !info.contains("fault plan"),
        "no panic message leaks: {info}"
    );

    server.ok(&APP, "timpush/add_tag", add("kept")).await;
    let r = server
        .ok(&APP, "timpush/get_tag", json!({ "To_Account": ["u"] }))
        .await;
    assert_eq!(r["UserTags"][0]["Tags"], json!(["kept"]), "{r}");
    assert_healthy(&server).await;
}

/// A commit that succeeded while its callers were told it failed (the connection broke during
/// `COMMIT`): once the store has recovered, the index counts what was stored, on either backend
/// (the embedded store rebuilds the index, PostgreSQL catches it up from its change log).
#[tokio::test]
async fn a_commit_whose_outcome_was_lost_is_learnt_by_the_index() {
    let (_data, server) = server_with_faults(&fault("lose_commit", "edit_tags"));
    import(&server, &APP, &["u"]).await;
    let r = server
        .call(&APP, "timpush/add_tag", tag_body("u", &["hidden"]))
        .await;
    assert_internal(&r, 91000, "hid the commit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tag_count(&server, &APP, "hidden").await != 1 {
        assert!(
            Instant::now() < deadline,
            "the index never learnt the lost commit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tags_of(&server, &APP, "u").await, json!(["hidden"]));
    add_tags(&server, &APP, "u", &["after"]).await;
    assert_eq!(tag_count(&server, &APP, "after").await, 1);
    assert_eq!(tag_count(&server, &APP, "hidden").await, 1);
    assert_healthy(&server).await;
}

/// `/healthz` answers 200.
async fn assert_healthy(server: &Server) {
    let url = format!("{}/healthz", server.base);
    let health = server.request(reqwest::Method::GET, &url, "").await;
    assert_eq!(health.status(), 200, "/healthz");
}

// --- A full disk ------------------------------------------------------------------------------

/// A small tmpfs, unmounted (lazily, even while busy) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (and a note on stderr) where mounting is not allowed, e.g. without root.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem holding `path` with one file.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let block = vec![0xa5u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

/// 100 UserIDs of 32 bytes, numbered `n`.
fn accounts(n: usize) -> Vec<String> {
    (0..100)
        .map(|i| format!("{n:06}-{i:03}-{}", "x".repeat(21)))
        .collect()
}

#[tokio::test]
async fn a_full_disk_is_70500_and_91000_until_space_is_freed_and_nothing_acknowledged_is_lost() {
    // The small disk holds the data dir, where only the embedded store writes: PostgreSQL's
    // files are on the cluster's disk, which this test cannot fill.
    if !embedded_only("a full disk", "fills the disk of the embedded store's file") {
        return;
    }
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let filler = disk.path().join("filler");
    let mut server = Server::start_with_store(&disk.path().join("data"), "");
    let import_batch = |n: usize| json!({ "Accounts": accounts(n) });
    let mut acknowledged = Vec::new();
    let r = server
        .ok(
            &APP,
            "im_open_login_svc/multiaccount_import",
            import_batch(0),
        )
        .await;
    assert_eq!(r["FailAccounts"], json!([]));
    acknowledged.push(0);

    fill(&filler);
    let mut n = 1;
    let refused = loop {
        let r = server
            .call(
                &APP,
                "im_open_login_svc/multiaccount_import",
                import_batch(n),
            )
            .await;
        if r["ErrorCode"] != 0 {
            break r;
        }
        acknowledged.push(n);
        n += 1;
        assert!(n < 3000, "the disk never filled up");
    };
    assert_internal(&refused, 70500, "No space left on device");
    // While the disk is full, the push families answer 91000, naming the cause.
    let add = json!({ "UserTags": [{ "To_Account": accounts(0)[0], "Tags": ["t"] }] });
    let r = server.call(&APP, "timpush/add_tag", add.clone()).await;
    assert_internal(&r, 91000, "No space left on device");
    // And /healthz says why.
    let url = format!("{}/healthz", server.base);
    let health = server.request(reqwest::Method::GET, &url, "").await;
    assert_eq!(health.status(), 503, "/healthz while the disk is full");
    let text = health.text().await.unwrap();
    assert!(text.contains("No space left on device"), "/healthz: {text}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        n += 1;
        let r = server
            .call(
                &APP,
                "im_open_login_svc/multiaccount_import",
                import_batch(n),
            )
            .await;
        if r["ErrorCode"] == 0 {
            acknowledged.push(n);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes still fail 30 s after space was freed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.ok(&APP, "timpush/add_tag", add).await;
    assert_healthy(&server).await;

    // Everything acknowledged is there, before and after a restart.
    for restarted in [false, true] {
        if restarted {
            server.crash_and_restart();
        }
        for &batch in &acknowledged {
            let check: Vec<Value> = accounts(batch)
                .into_iter()
                .map(|id| json!({ "UserID": id }))
                .collect();
            let r = server
                .ok(
                    &APP,
                    "im_open_login_svc/account_check",
                    json!({ "CheckItem": check }),
                )
                .await;
            let missing: Vec<&Value> = r["ResultItem"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|item| item["AccountStatus"] != "Imported")
                .collect();
            assert!(
                missing.is_empty(),
                "acknowledged batch {batch} lost accounts (restarted: {restarted}): {missing:?}"
            );
        }
    }
    drop(server);
    drop(disk);
}
