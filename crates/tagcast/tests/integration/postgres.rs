//! What only the PostgreSQL store has: outages of PostgreSQL, the change log the index follows,
//! and moving an embedded store onto it with `tagcast migrate`. These tests run in the
//! PostgreSQL pass of scripts/test.sh (TAGCAST_TEST_STORE=postgres); the rest of the suite runs
//! on both stores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

pub(crate) const ACCOUNTS: usize = 20;

pub(crate) fn account(n: usize) -> String {
    format!("u{}", n % ACCOUNTS)
}

/// One add_tag of the stream: tag `{prefix}{n}` for account `u{n % ACCOUNTS}`.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub n: usize,
    pub tag: String,
    pub code: Option<u64>,
    pub info: String,
    pub took: Duration,
}

/// Sends add_tag requests of tags `{prefix}0`, `{prefix}1`, ... one after the other until
/// `stop`, recording each outcome.
pub(crate) async fn write_stream(
    client: reqwest::Client,
    url: String,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let tag = format!("{prefix}{n}");
        let body = tag_body(&account(n), &[&tag]);
        let started = Instant::now();
        let answer = client.post(&url).json(&body).send().await;
        let r: Option<Value> = match answer {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        outcomes.push(Outcome {
            n,
            tag,
            code: r.as_ref().and_then(|r| r["ErrorCode"].as_u64()),
            info: r.map(|r| r["ErrorInfo"].to_string()).unwrap_or_default(),
            took: started.elapsed(),
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    outcomes
}

/// Tags account `u{n % ACCOUNTS}` with `t{n}` for each `n` of `range`, one add_tag each.
async fn tag_each(server: &Server, range: std::ops::Range<usize>) {
    for n in range {
        let body = tag_body(&account(n), &[&format!("t{n}")]);
        server.ok(&APP, "timpush/add_tag", body).await;
    }
}

/// Each account's tags, read back with get_tag.
pub(crate) async fn stored_tags(server: &Server) -> BTreeMap<String, BTreeSet<String>> {
    let names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    let r = server
        .ok(&APP, "timpush/get_tag", accounts_body(&as_strs(&names)))
        .await;
    r["UserTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| {
            let tags = user["Tags"].as_array().unwrap();
            let tags = tags.iter().map(|t| t.as_str().unwrap().to_string());
            (
                user["To_Account"].as_str().unwrap().to_string(),
                tags.collect(),
            )
        })
        .collect()
}

/// The index agrees with the tables: every tag written (or tried) in `0..written` is counted by
/// the index exactly as often as get_tag finds it.
async fn assert_index_matches_tables(server: &Server, written: usize) {
    let stored = stored_tags(server).await;
    for n in 0..written {
        let tag = format!("t{n}");
        let holders = stored.values().filter(|tags| tags.contains(&tag)).count() as u64;
        assert_eq!(tag_count(server, &APP, &tag).await, holders, "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_requests_fast_and_tagcast_recovers_without_a_restart() {
    if !postgres_only("outage", "it crashes PostgreSQL") {
        return;
    }
    let cluster = OwnCluster::start();
    let server = Server::start_on(TestStore::at(cluster.database("outage")), "");
    let names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    import(&server, &APP, &as_strs(&names)).await;
    let pid = server.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url(&APP, "timpush/add_tag");
    let stream = tokio::spawn(write_stream(
        server.client().clone(),
        url,
        "t",
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    cluster.crash();
    let crashed_at = Instant::now();
    // Requests now fail: /healthz says why, naming PostgreSQL.
    let health_url = format!("{}/healthz", server.base);
    let mut health = (0, String::new());
    for _ in 0..100 {
        let response = server.client().get(&health_url).send().await.unwrap();
        health = (response.status().as_u16(), response.text().await.unwrap());
        if health.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health.0, 503, "{health:?}");
    assert!(health.1.contains("PostgreSQL"), "{health:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.resume();
    let resumed_at = Instant::now();
    // Served again by the same process, with no restart.
    let mut recovered = false;
    for _ in 0..300 {
        let r = server
            .call(&APP, "timpush/add_tag", tag_body("u0", &["after"]))
            .await;
        if r["ErrorCode"] == 0 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "tagcast never served again after PostgreSQL came back"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = stream.await.unwrap();
    assert_eq!(server.pid(), pid);
    let health = server.client().get(&health_url).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.code != Some(0)).collect();
    assert!(!failed.is_empty(), "no request saw the outage");
    for outcome in &failed {
        // The documented internal error, with a reason, and never a hang.
        assert_eq!(outcome.code, Some(91000), "{outcome:?}");
        assert!(outcome.info.contains("retry"), "{outcome:?}");
        assert!(outcome.took < Duration::from_secs(10), "{outcome:?}");
    }
    assert!(
        outcomes
            .iter()
            .any(|o| o.code == Some(0) && o.n > failed[0].n),
        "no write succeeded after the outage"
    );
    eprintln!(
        "outage: {} writes, {} failed; PostgreSQL down {:.1} s, served again {:.1} s after it",
        outcomes.len(),
        failed.len(),
        (resumed_at - crashed_at).as_secs_f64(),
        resumed_at.elapsed().as_secs_f64()
    );

    // Everything acknowledged is there; the index counts every tag as the tables hold it
    // (including writes whose commit outcome the outage hid).
    let stored = stored_tags(&server).await;
    for outcome in outcomes.iter().filter(|o| o.code == Some(0)) {
        let tag = &outcome.tag;
        assert!(stored[&account(outcome.n)].contains(tag), "{tag} lost");
    }
    assert_index_matches_tables(&server, outcomes.len()).await;
}

#[tokio::test]
async fn after_a_restart_the_change_log_continues_with_no_gap() {
    if !postgres_only("change log", "it reads the PostgreSQL change log") {
        return;
    }
    let store = TestStore::fresh();
    let (port, database) = store.database().map(|(p, d)| (p, d.to_string())).unwrap();
    let mut server = Server::start_on(store, "");
    let names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    import(&server, &APP, &as_strs(&names)).await;
    tag_each(&server, 0..10).await;
    server.crash_and_restart();
    // The index was rebuilt from the tables...
    assert_index_matches_tables(&server, 10).await;
    tag_each(&server, 10..20).await;
    server.graceful_restart();
    tag_each(&server, 20..30).await;
    assert_index_matches_tables(&server, 30).await;
    // ...and the log goes on from where it was: positions 1..=head, each once.
    let app = APP.sdkappid;
    let sql = format!(
        "SELECT count(*), min(position), max(position), \
         (SELECT position FROM change_log_heads WHERE app = {app}) \
         FROM change_log WHERE app = {app}"
    );
    let row = psql_at(port, &database, &sql).unwrap();
    let fields: Vec<u64> = row.split('|').map(|f| f.parse().unwrap()).collect();
    let (count, first, last, head) = (fields[0], fields[1], fields[2], fields[3]);
    // An import and 30 add_tags, each its own commit at least.
    assert!(count >= 31, "{row}");
    assert_eq!((first, last, head), (1, count, count), "{row}");
}

#[tokio::test]
async fn migrate_moves_an_embedded_store_onto_postgresql_unchanged() {
    if !postgres_only("migrate", "it needs a PostgreSQL database") {
        return;
    }
    let mut embedded = Server::start_on(TestStore::embedded(), "");
    let names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    import(&embedded, &APP, &as_strs(&names)).await;
    import(&embedded, &OTHER_APP, &["other1", "other2"]).await;
    name_attrs(&embedded, &APP, json!({"0": "city", "3": "level"})).await;
    for n in 0..ACCOUNTS {
        let tags = [format!("t{}", n % 3), format!("x{}", n % 5)];
        add_tags(&embedded, &APP, &account(n), &as_strs(&tags)).await;
        let attrs = json!({ "city": format!("c{}", n % 4), "level": "7" });
        set_attrs(&embedded, &APP, &account(n), attrs).await;
    }
    add_tags(&embedded, &OTHER_APP, "other1", &["gold"]).await;
    delete_account(&embedded, &APP, "u7").await;
    // A push u0 gets from its backlog: the task, its audience, deliveries and catch-ups.
    let task = crate::ws::push(
        &embedded,
        &APP,
        1,
        json!({ "Condition": { "TagsAnd": ["t0"] } }),
    )
    .await;
    let mut u0 = crate::ws::Client::connect(&embedded, &APP, &account(0)).await;
    assert_eq!(u0.next_frame().await["TaskId"], task);
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let pushes = pushes_of_u0(&embedded).await;
            match pushes[0]["CaughtUp"] == 1 {
                true => Ok(()),
                false => Err(pushes.to_string()),
            }
        },
    )
    .await;
    let before = snapshot(&embedded).await;
    embedded.stop();

    let target = TestStore::fresh();
    let url = target.url().unwrap().to_string();
    let data_dir = embedded.data_dir();
    let output = wait_for_exit(&mut clean_tagcast(&[
        "migrate",
        "--from",
        data_dir.to_str().unwrap(),
        "--to",
        &url,
        "--quiet",
    ]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("counts verified"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["accounts", "21", "21"])),
        "{stdout}"
    );
    let caught_up = ["catch-up", "records", "1", "1"];
    assert!(
        stdout.lines().any(|l| l.split_whitespace().eq(caught_up)),
        "{stdout}"
    );

    // A second migration into the same database is refused: it is no longer empty.
    let again = wait_for_exit(&mut clean_tagcast(&[
        "migrate",
        "--from",
        data_dir.to_str().unwrap(),
        "--to",
        &url,
        "--quiet",
    ]));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds tagcast data"));

    let migrated = Server::start_on(target, "");
    assert_eq!(snapshot(&migrated).await, before);
    // Account ids go on where they were: a new account gets the next id, not a reused one.
    import(&migrated, &APP, &["newcomer"]).await;
    add_tags(&migrated, &APP, "newcomer", &["t0"]).await;
    assert_eq!(tag_count(&migrated, &APP, "t0").await, 8);
}

/// What the API answers about the migrated data: tags, attributes, names and counts.
async fn snapshot(server: &Server) -> Vec<Value> {
    let mut names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    names.push("never".into());
    let body = accounts_body(&as_strs(&names));
    let mut out = vec![
        server.ok(&APP, "timpush/get_tag", body.clone()).await["UserTags"].clone(),
        server.ok(&APP, "timpush/get_attr", body).await["UserAttrs"].clone(),
        server.ok(&APP, "timpush/get_attr_name", json!({})).await["AttrNames"].clone(),
        server
            .ok(
                &OTHER_APP,
                "timpush/get_tag",
                accounts_body(&["other1", "other2"]),
            )
            .await["UserTags"]
            .clone(),
    ];
    for audience in [
        json!({"Tag": "t0"}),
        json!({"Or": [{"Tag": "x1"}, {"Attr": "city", "Eq": "c2"}]}),
        json!({"Attr": "level", "Ge": 7}),
        json!({"Not": {"Tag": "t1"}}),
    ] {
        out.push(json!(audience_count(server, &APP, audience).await));
    }
    out.push(pushes_of_u0(server).await);
    out
}

/// u0's pushes of the last hour, with how each reached it.
async fn pushes_of_u0(server: &Server) -> Value {
    let body = json!({ "UserID": account(0), "StartTime": now() - 3600, "EndTime": now() + 60 });
    server.ok(&APP, "tagcast/account_pushes", body).await["Pushes"].clone()
}

#[tokio::test]
async fn a_schema_newer_than_tagcast_knows_is_refused_at_start() {
    if !postgres_only("schema version", "it edits the PostgreSQL schema version") {
        return;
    }
    let store = TestStore::fresh();
    let url = store.url().unwrap().to_string();
    let (port, database) = store.database().map(|(p, d)| (p, d.to_string())).unwrap();
    let mut server = Server::start_on(store, "");
    import(&server, &APP, &["kept"]).await;
    server.stop();
    psql_at(
        port,
        &database,
        "UPDATE tagcast_schema SET version = version + 1",
    )
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir,
        "--store-url",
        &url,
    ];
    let output = wait_for_exit(&mut clean_tagcast(&args));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("newer than this tagcast knows"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Put back, the same database serves again, data intact.
    psql_at(
        port,
        &database,
        "UPDATE tagcast_schema SET version = version - 1",
    )
    .unwrap();
    server.restart();
    let r = server
        .ok(
            &APP,
            "im_open_login_svc/account_check",
            json!({"CheckItem": [{"UserID": "kept"}]}),
        )
        .await;
    assert_eq!(r["ResultItem"][0]["AccountStatus"], "Imported", "{r}");
}
