//! Durability: whatever the server acknowledged survives a crash (SIGKILL) or an orderly restart,
//! and nothing it refused is ever stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// Account names used by the restart test, in both apps; the last two are never imported.
const NAMES: [&str; 8] = [
    "xiaoming",
    "xiaohong",
    "mary",
    "ghost_deleted",
    "zhang",
    "li",
    "never1",
    "never2",
];

/// Sends a write that must succeed for every account it names.
async fn write_all(server: &Server, app: &TestApp, path: &str, body: Value) {
    let r = server.ok(app, path, body).await;
    assert_eq!(error_list(&r), [], "{path}: {r}");
}

/// Fills `APP` and `OTHER_APP` with accounts, attribute names, tags and attributes.
async fn populate(server: &Server) {
    let names = json!({"0": "sex", "1": "city", "2": "regid"});
    name_typed_attrs(server, &APP, names, json!({"2": 1})).await;
    let body = json!({"AttrNames": {"0": "level", "4": "city"}});
    server
        .ok(&OTHER_APP, "all_member_push/im_set_attr_name", body)
        .await;
    import(server, &APP, &NAMES[..6]).await;
    import(server, &OTHER_APP, &NAMES[..4]).await;

    let add = "timpush/add_tag";
    let user_tags = json!({"UserTags": [
        {"To_Account": "xiaoming", "Tags": ["GoldMember", "WeekPassUser", "深圳"]},
        {"To_Account": "xiaohong", "Tags": ["PlatinumMember"]},
        {"To_Account": "ghost_deleted", "Tags": ["OnlyGhost", "GoldMember"]},
        {"To_Account": "zhang", "Tags": ["z1", "z2", "z3"]},
    ]});
    write_all(server, &APP, add, with_replace(user_tags, 0)).await;
    let body = with_replace(tag_body("zhang", &["z3", "z4"]), 1);
    write_all(server, &APP, add, body).await;
    let user_tags = json!({"UserTags": [
        {"To_Account": "xiaoming", "Tags": ["OtherTag"]},
        {"To_Account": "mary", "Tags": ["m1", "m2"]},
    ]});
    write_all(server, &OTHER_APP, add, with_replace(user_tags, 0)).await;
    let body = tag_body("xiaoming", &["WeekPassUser"]);
    server.ok(&APP, "timpush/remove_tag", body).await;

    let user_attrs = json!({"UserAttrs": [
        {"To_Account": "xiaoming", "Attrs": {"sex": "male", "city": "ShenZhen"}},
        {"To_Account": "mary", "Attrs": {"city": "London"}},
        {"To_Account": "ghost_deleted", "Attrs": {"sex": "female"}},
    ]});
    write_all(server, &APP, "timpush/set_attr", user_attrs).await;
    let body = attr_body("xiaoming", json!(["city"]));
    server.ok(&APP, "timpush/remove_attr", body).await;
    let body = attr_body("xiaoming", json!({"level": "9", "city": "Paris"}));
    write_all(server, &OTHER_APP, "timpush/set_attr", body).await;

    let r = delete_account(server, &APP, "ghost_deleted").await;
    assert_ok(&r);
    assert_eq!(r["ResultItem"][0]["ResultCode"], 0, "{r}");
}

/// Everything both apps answer about their accounts, tags and attributes.
async fn snapshot(server: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for app in [&APP, &OTHER_APP] {
        for (path, body) in [
            ("timpush/get_attr_name", json!({})),
            ("timpush/get_tag", accounts_body(&NAMES)),
            ("timpush/get_attr", accounts_body(&NAMES)),
            (
                "im_open_login_svc/account_check",
                user_items("CheckItem", &NAMES),
            ),
        ] {
            out.push(server.call(app, path, body).await);
        }
    }
    out
}

#[tokio::test]
async fn restart_keeps_everything() {
    let mut server = Server::start();
    populate(&server).await;
    let before = snapshot(&server).await;
    // What the snapshot must show, so an empty store cannot pass for a durable one.
    assert_eq!(
        before[1]["UserTags"],
        json!([
            {"To_Account": "xiaoming", "Tags": ["GoldMember", "深圳"]},
            {"To_Account": "xiaohong", "Tags": ["PlatinumMember"]},
            {"To_Account": "mary", "Tags": []},
            {"To_Account": "zhang", "Tags": ["z3", "z4"]},
            {"To_Account": "li", "Tags": []},
        ])
    );
    assert_eq!(
        before[2]["UserAttrs"][0],
        json!({"To_Account": "xiaoming", "Attrs": {"sex": "male"}})
    );
    assert_eq!(before[4]["AttrNames"], json!({"0": "level", "4": "city"}));
    assert_eq!(
        before[5]["UserTags"][0],
        json!({"To_Account": "xiaoming", "Tags": ["OtherTag"]})
    );
    assert_eq!(
        before[6]["UserAttrs"][0],
        json!({"To_Account": "xiaoming", "Attrs": {"city": "Paris", "level": "9"}})
    );

    server.crash_and_restart();
    assert_eq!(snapshot(&server).await, before, "after kill -9");

    let status = server.graceful_restart();
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status}"
    );
    assert_eq!(snapshot(&server).await, before, "after a graceful restart");

    // The store keeps working where it left off: a new account, a new tag.
    import(&server, &APP, &["after_restart"]).await;
    add_tags(&server, &APP, "after_restart", &["GoldMember", "New"]).await;
    let body = accounts_body(&["after_restart", "xiaoming"]);
    let r = server.call(&APP, "timpush/get_tag", body).await;
    assert_eq!(
        r["UserTags"],
        json!([
            {"To_Account": "after_restart", "Tags": ["GoldMember", "New"]},
            {"To_Account": "xiaoming", "Tags": ["GoldMember", "深圳"]},
        ])
    );
}

/// The per-app count of distinct tags is part of the durable state: after a crash the app is
/// still exactly at its cap of 8.
#[tokio::test]
async fn distinct_tag_count_survives_a_crash() {
    let mut server = Server::start();
    let names = ["a", "b", "c"];
    import(&server, &TIGHT_APP, &names).await;
    for (account, tags) in [
        ("a", &["t1", "t2", "t3"][..]),
        ("a", &["t4", "t5"]),
        ("b", &["t5", "t6", "t7"]),
        ("c", &["t8", "t1"]),
    ] {
        let r = add_tags(&server, &TIGHT_APP, account, tags).await;
        assert_eq!(error_list(&r), [], "{r}");
    }
    server.crash_and_restart();
    // 8 distinct tags: a 9th is refused, a shared one is not.
    let r = add_tags(&server, &TIGHT_APP, "c", &["t9"]).await;
    assert_eq!(error_list(&r), one_error("c", 90032));
    let r = add_tags(&server, &TIGHT_APP, "c", &["t2"]).await;
    assert_eq!(error_list(&r), []);
    // Freeing t8 (only c has it) makes room for t9, even across another crash.
    let body = tag_body("c", &["t8"]);
    server.ok(&TIGHT_APP, "timpush/remove_tag", body).await;
    server.crash_and_restart();
    let r = add_tags(&server, &TIGHT_APP, "c", &["t9"]).await;
    assert_eq!(error_list(&r), []);
    let r = server
        .call(&TIGHT_APP, "timpush/get_tag", accounts_body(&names))
        .await;
    assert_eq!(
        r["UserTags"],
        json!([
            {"To_Account": "a", "Tags": ["t1", "t2", "t3", "t4", "t5"]},
            {"To_Account": "b", "Tags": ["t5", "t6", "t7"]},
            {"To_Account": "c", "Tags": ["t1", "t2", "t9"]},
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9 in the middle of a stream of writes.

const WRITERS: usize = 4;
/// Accounts each writer spreads its tags over, so none nears the 100-tag cap.
const ACCOUNTS_PER_WRITER: usize = 100;
/// Requests each writer would send if never stopped; at most ~1000 distinct tags in all.
const REQUESTS_PER_WRITER: usize = 1000;
/// Acknowledged writes before the kill.
const KILL_AFTER_ACKS: usize = 300;
/// A tag longer than 50 bytes: always refused.
const LONG: &str = "this-tag-is-far-too-long-to-be-accepted-by-any-app-0123456789";

/// What one writer learned: acknowledged tags per account in order, the write it had in flight
/// when the server died, and how many requests were refused.
#[derive(Debug, Default)]
struct WriterLog {
    acked: BTreeMap<String, Vec<String>>,
    in_flight: Option<(String, String)>,
    refused: usize,
    cut_off: bool,
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Option<Value> {
    let response = client.post(url).body(body.to_string()).send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let bytes = response.bytes().await.ok()?;
    Some(serde_json::from_slice(&bytes).expect("JSON response"))
}

/// Writer `w`: request `n` adds tag `t{n}` to account `w{w}_{n % 100}` (one tag per request, so
/// each acknowledged write is identifiable); every 10th request is refused as a whole (unknown
/// attribute), and every 10th also carries a refused element (a too-long tag).
async fn writer(
    w: usize,
    client: reqwest::Client,
    add_url: String,
    attr_url: String,
    acks: Arc<AtomicUsize>,
) -> WriterLog {
    let mut log = WriterLog::default();
    for n in 0..REQUESTS_PER_WRITER {
        let account = format!("w{w}_{}", n % ACCOUNTS_PER_WRITER);
        let tag = format!("t{n}");
        if n % 10 == 9 {
            let attrs = json!({"sex": format!("v{n}"), "undefined_attr": "x"});
            let body = attr_body(&format!("r{w}"), attrs);
            match post(&client, &attr_url, &body).await {
                Some(r) => {
                    assert_fail(&r, 90033, "undefined_attr");
                    log.refused += 1;
                }
                None => {
                    log.cut_off = true;
                    break;
                }
            }
            continue;
        }
        let mut user_tags = vec![json!({"To_Account": account, "Tags": [tag]})];
        if n % 10 == 4 {
            user_tags.push(json!({"To_Account": account, "Tags": [format!("{LONG}{n}")]}));
        }
        match post(&client, &add_url, &json!({"UserTags": user_tags})).await {
            Some(r) => {
                assert_ok(&r);
                let expected_errors = if n % 10 == 4 {
                    vec![(account.clone(), 90020)]
                } else {
                    vec![]
                };
                assert_eq!(error_list(&r), expected_errors, "{r}");
                log.acked.entry(account).or_default().push(tag);
                acks.fetch_add(1, Ordering::SeqCst);
            }
            None => {
                log.in_flight = Some((account, tag));
                log.cut_off = true;
                break;
            }
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_mid_stream() {
    let mut server = Server::start();
    name_attrs(&server, &APP, json!({"0": "sex"})).await;
    let mut accounts: Vec<String> = Vec::new();
    for w in 0..WRITERS {
        accounts.extend((0..ACCOUNTS_PER_WRITER).map(|i| format!("w{w}_{i}")));
        accounts.push(format!("r{w}"));
    }
    let names = as_strs(&accounts);
    import(&server, &APP, &names).await;

    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                w,
                server.client().clone(),
                server.url(&APP, "timpush/add_tag"),
                server.url(&APP, "timpush/set_attr"),
                acks.clone(),
            ))
        })
        .collect();
    let pid = server.pid();
    let killer = {
        let acks = acks.clone();
        tokio::spawn(async move {
            while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            send_signal(pid, "KILL");
            acks.load(Ordering::SeqCst)
        })
    };
    let mut logs = Vec::new();
    for writer in writers {
        logs.push(writer.await.expect("writer task"));
    }
    let acked_at_kill = killer.await.expect("killer task");
    let acked: usize = logs
        .iter()
        .map(|l| l.acked.values().map(Vec::len).sum::<usize>())
        .sum();
    assert!(acked >= acked_at_kill && acked_at_kill >= KILL_AFTER_ACKS);
    // Every writer was cut off by the kill: none ran to its end.
    for (w, log) in logs.iter().enumerate() {
        assert!(log.cut_off, "writer {w} was never interrupted");
    }
    assert!(logs.iter().map(|l| l.refused).sum::<usize>() > 0);

    server.crash_and_restart();

    // Each account holds exactly its acknowledged tags, in order, plus perhaps the one write in
    // flight at the kill: nothing acknowledged is lost, nothing refused or invented appears.
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for chunk in names.chunks(100) {
        let r = server
            .ok(&APP, "timpush/get_tag", accounts_body(chunk))
            .await;
        assert_eq!(error_list(&r), []);
        for user in r["UserTags"].as_array().unwrap() {
            let tags = user["Tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            stored.insert(user["To_Account"].as_str().unwrap().to_string(), tags);
        }
    }
    for (w, log) in logs.iter().enumerate() {
        for i in 0..ACCOUNTS_PER_WRITER {
            let account = format!("w{w}_{i}");
            let acked = log.acked.get(&account).cloned().unwrap_or_default();
            let got = &stored[&account];
            match &log.in_flight {
                Some((a, tag)) if *a == account && got.len() == acked.len() + 1 => {
                    assert_eq!(got[..acked.len()], acked[..], "{account}");
                    assert_eq!(&got[acked.len()], tag, "{account}");
                }
                _ => assert_eq!(got, &acked, "{account}"),
            }
        }
    }
    // The refused set_attr requests left no attribute behind.
    let refused: Vec<String> = (0..WRITERS).map(|w| format!("r{w}")).collect();
    let r = server
        .ok(&APP, "timpush/get_attr", accounts_body(&as_strs(&refused)))
        .await;
    for user in r["UserAttrs"].as_array().unwrap() {
        assert_eq!(user["Attrs"], json!({}), "{r}");
    }
    assert_eq!(r["UserAttrs"].as_array().unwrap().len(), WRITERS);
}
