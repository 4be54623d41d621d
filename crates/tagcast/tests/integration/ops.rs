//! What an operator relies on: metrics that move with the work, health, the bound on pushes kept
//! for offline recipients and their memory, and delivery across stops: none repeated after a
//! graceful stop, none lost (some may repeat) after kill -9.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::*;
use crate::ws::{Client, marker, text_body};

/// An app allowed only two pushes kept for offline recipients.
const FEW_LIVE_APP: TestApp = TestApp {
    sdkappid: 1_400_000_090,
    key: "few-live-tasks-app-key",
    admin: "administrator",
};

const FEW_LIVE_TOML: &str = "[[apps]]\nsdkappid = 1400000090\nsecret_key = \"few-live-tasks-app-key\"\n\
     admins = [\"administrator\"]\n[apps.limits]\napi_calls_per_second = 100000\n\
     push_min_interval_ms = 0\npush_daily_quota = 100000\nmax_live_tasks = 2\n";

/// The value of the sample `name` (with its labels, as in the exposition) in `/metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `/metrics` once `ready` holds of it (polled for at most 10 s).
async fn metrics_once(server: &Server, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..200 {
        let metrics = server.get_text("/metrics").await;
        if ready(&metrics) {
            return metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("/metrics never showed what was expected");
}

async fn batch(server: &Server, app: &TestApp, accounts: &[&str], msg_random: u32) -> Value {
    server
        .call(
            app,
            "timpush/batch",
            json!({
                "From_Account": "shop",
                "To_Account": accounts,
                "MsgRandom": msg_random,
                "MsgBody": text_body("hi"),
                "OfflinePushInfo": { "Title": "t", "Desc": "d" },
            }),
        )
        .await
}

#[tokio::test]
async fn metrics_follow_sessions_pushes_and_deliveries() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["m_online"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "m_online").await;
    let task = marker(&server, &PUSH_APP, 1).await;
    assert_eq!(client.next_frame().await["TaskId"], task);
    // The session counts its delivery right after writing it, so the client may see the frame
    // first.
    let online = "tagcast_deliveries_total{path=\"online\"}";
    let metrics = metrics_once(&server, |m| sample(m, online).is_some()).await;
    assert_eq!(sample(&metrics, "tagcast_sessions"), Some(1.0), "{metrics}");
    assert!(sample(&metrics, "tagcast_connections").is_some_and(|n| n >= 2.0));
    assert_eq!(
        sample(&metrics, "tagcast_pushes_total{kind=\"All\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, online), Some(1.0));
    assert_eq!(sample(&metrics, "tagcast_live_tasks"), Some(1.0));
    assert_eq!(sample(&metrics, "tagcast_store_healthy"), Some(1.0));
    // The size of the embedded store's file; PostgreSQL has none (the gauge stays 0).
    if backend() == Backend::Embedded {
        assert!(sample(&metrics, "tagcast_store_bytes").is_some_and(|n| n > 0.0));
    }
    assert!(sample(&metrics, "tagcast_store_commits").is_some_and(|n| n >= 1.0));
    assert!(sample(&metrics, "tagcast_index_rebuild_seconds").is_some());
    assert!(sample(&metrics, "process_resident_memory_bytes").is_some_and(|n| n > 0.0));
    client.close().await;
    metrics_once(&server, |m| sample(m, "tagcast_sessions") == Some(0.0)).await;
}

#[tokio::test]
async fn pushes_kept_for_offline_recipients_are_capped_per_app() {
    let server = Server::start_with(FEW_LIVE_TOML, None);
    import(&server, &FEW_LIVE_APP, &["cap_a"]).await;
    for random in [1, 2] {
        let r = batch(&server, &FEW_LIVE_APP, &["cap_a"], random).await;
        assert_ok(&r);
    }
    let r = batch(&server, &FEW_LIVE_APP, &["cap_a"], 3).await;
    assert_fail(&r, 90047, "max_live_tasks");
    // An online-only push keeps nothing and is still accepted.
    let r = server
        .call(
            &FEW_LIVE_APP,
            "all_member_push/im_push",
            json!({ "MsgRandom": 4, "MsgBody": text_body("now") }),
        )
        .await;
    assert_ok(&r);
    // The two kept pushes still reach their offline recipient.
    let mut client = Client::connect(&server, &FEW_LIVE_APP, "cap_a").await;
    assert_eq!(client.next_frame().await["MsgRandom"], 1);
    assert_eq!(client.next_frame().await["MsgRandom"], 2);
}

#[tokio::test]
async fn live_pushes_keep_their_bodies_in_the_store_not_in_memory() {
    // A small page cache, so the store's own cache does not hide what the tasks cost.
    let server = Server::start_with("cache_mb = 1\n", None);
    import(&server, &PUSH_APP, &["mem_a", "mem_b"]).await;
    let body = json!([{ "MsgType": "TIMTextElem", "MsgContent": { "Text": "x".repeat(7000) } }]);
    let warm = |random: u32| {
        json!({
            "From_Account": "shop",
            "To_Account": ["mem_a"],
            "MsgRandom": random,
            "MsgBody": body,
            "OfflinePushInfo": { "Title": "t", "Desc": "d" },
        })
    };
    for random in 0..100 {
        server.ok(&PUSH_APP, "timpush/batch", warm(random)).await;
    }
    let before = resident_bytes(server.pid());
    let tasks = 3000u32;
    for random in 100..100 + tasks {
        server.ok(&PUSH_APP, "timpush/batch", warm(random)).await;
    }
    let growth = resident_bytes(server.pid()).saturating_sub(before);
    // Kept in memory, the bodies alone would take 3000 x 7 KB = 21 MB (twice that with the frame).
    assert!(
        growth < 12 << 20,
        "{tasks} live pushes of 7 KB grew the server by {} MiB",
        growth >> 20
    );
    // The bodies come back from the store for the offline recipient.
    let mut client = Client::connect(&server, &PUSH_APP, "mem_a").await;
    let frame = client.next_frame().await;
    assert_eq!(frame["MsgBody"], body);
}

/// Pushes `count` batch pushes to `account`, each with its own MsgRandom from `first`; returns
/// their TaskIds.
async fn batches(server: &Server, account: &str, first: u32, count: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for random in first..first + count {
        let r = batch(server, &PUSH_APP, &[account], random).await;
        assert_ok(&r);
        ids.push(r["TaskId"].as_str().expect("TaskId").to_string());
    }
    ids
}

async fn receive(client: &mut Client, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let frame = client.next_frame().await;
        if frame["Type"] == "Push" {
            ids.push(frame["TaskId"].as_str().unwrap_or_default().to_string());
        }
    }
    ids
}

#[tokio::test]
async fn a_graceful_stop_redelivers_nothing() {
    let mut server = Server::start();
    import(&server, &PUSH_APP, &["gs_a"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "gs_a").await;
    let sent = batches(&server, "gs_a", 1, 20).await;
    assert_eq!(receive(&mut client, 20).await, sent);
    // Stopped right after the deliveries, inside the cursor's write interval.
    let status = server.graceful_restart();
    assert!(status.success(), "{status}");
    let mut client = Client::connect(&server, &PUSH_APP, "gs_a").await;
    let end = marker(&server, &PUSH_APP, 100).await;
    let again = client.pushes_until(&end).await;
    assert!(
        again.is_empty(),
        "redelivered after a graceful stop: {again:?}"
    );
}

#[tokio::test]
async fn after_kill_9_nothing_is_lost_and_repeats_are_earlier_deliveries() {
    let mut server = Server::start();
    import(&server, &PUSH_APP, &["k9_a", "k9_offline"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "k9_a").await;
    let sent = batches(&server, "k9_a", 1, 20).await;
    let for_offline = batches(&server, "k9_offline", 21, 5).await;
    assert_eq!(receive(&mut client, 20).await, sent);
    server.crash_and_restart();
    // At least once: what comes again is a tail of what was delivered, in order, and nothing
    // acknowledged to the API is lost.
    let mut client = Client::connect(&server, &PUSH_APP, "k9_a").await;
    let end = marker(&server, &PUSH_APP, 100).await;
    let again = client.pushes_until(&end).await;
    assert!(
        sent.ends_with(&again),
        "repeats {again:?} are not the last deliveries of {sent:?}"
    );
    let unique: HashSet<_> = again.iter().collect();
    assert_eq!(
        unique.len(),
        again.len(),
        "a push repeated twice: {again:?}"
    );
    let mut offline = Client::connect(&server, &PUSH_APP, "k9_offline").await;
    assert_eq!(receive(&mut offline, 5).await, for_offline);
}

#[tokio::test]
async fn health_says_ok_while_the_store_commits() {
    let server = Server::start();
    let url = format!("{}/healthz", server.base);
    let response = server.request(reqwest::Method::GET, &url, "").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "ok\n");
}
