//! Pushes and sessions across three tagcast nodes on one PostgreSQL database (issue 9): a push
//! made on one node reaches the sessions of every node once, an offline account gets it on any
//! node, a revoke anywhere reaches everyone, MsgRandom and the quota hold cluster-wide, a login
//! on one node ends the account's session on another, and a killed node's clients catch up
//! elsewhere. These run in the PostgreSQL pass of scripts/test.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cluster::{
    assert_nothing_acknowledged_lost, outcomes_with_one_killed, streams, three_nodes,
};
use crate::common::*;
use crate::postgres::{ACCOUNTS, account};
use crate::ws::*;

/// Who is connected where, and which tags they have.
const PEOPLE: [(&str, usize, &[&str]); 7] = [
    ("p_a1", 0, &["x"]),
    ("p_a2", 0, &[]),
    ("p_b1", 1, &["x"]),
    ("p_b2", 1, &["y"]),
    ("p_c1", 2, &["x", "y"]),
    ("p_c2", 2, &[]),
    ("p_off", 2, &["x"]),
];

/// Imports and tags `PEOPLE` through node `at`.
async fn people(at: &Server) {
    let names: Vec<&str> = PEOPLE.iter().map(|(n, _, _)| *n).collect();
    import(at, &PUSH_APP, &names).await;
    for (name, _, tags) in PEOPLE {
        if !tags.is_empty() {
            add_tags(at, &PUSH_APP, name, tags).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_on_one_node_reaches_every_nodes_sessions_once_and_a_revoke_on_another_too() {
    let Some((_store, cluster)) = three_nodes("cluster pushes", "") else {
        return;
    };
    people(&cluster[1]).await;
    let mut online = Vec::new();
    for (name, node, _) in PEOPLE.iter().filter(|(n, _, _)| *n != "p_off") {
        online.push(Client::connect(&cluster[*node], &PUSH_APP, name).await);
    }
    // Made on a: a tag push, one to everyone, then the marker that ends each wait.
    let a = &cluster[0];
    let tagged = push(
        a,
        &PUSH_APP,
        1,
        json!({ "Condition": { "TagsAnd": ["x"] } }),
    )
    .await;
    let everyone = marker(a, &PUSH_APP, 2).await;
    let end = marker(a, &PUSH_APP, 3).await;
    for client in &mut online {
        let tags = PEOPLE
            .iter()
            .find(|(n, _, _)| *n == client.account)
            .unwrap()
            .2;
        let mut expected = Vec::new();
        if tags.contains(&"x") {
            expected.push(tagged.clone());
        }
        expected.push(everyone.clone());
        assert_eq!(
            client.pushes_until(&end).await,
            expected,
            "{}: exactly its pushes, each once, in order",
            client.account
        );
    }
    // Revoked on b: the sessions on a and c are told.
    cluster[1]
        .ok(&PUSH_APP, "timpush/revoke", json!({ "TaskId": everyone }))
        .await;
    for client in &mut online {
        let frame = client.next_frame().await;
        assert_eq!(
            frame,
            json!({ "Type": "Revoke", "TaskId": everyone }),
            "{}",
            client.account
        );
    }
    // An account offline all along connects to c: it gets what it is in and is not revoked.
    let mut late = Client::connect(&cluster[2], &PUSH_APP, "p_off").await;
    let after = marker(&cluster[1], &PUSH_APP, 4).await;
    assert_eq!(
        late.pushes_until(&after).await,
        vec![tagged.clone(), end.clone()]
    );
    // Every node reports the deliveries of every node: they are in the shared tables.
    for node in &cluster {
        await_delivered(node, &tagged, 4).await;
        await_delivered(node, &everyone, 6).await;
    }
}

/// Waits until node `server` reports `task` delivered to `expected` accounts.
async fn await_delivered(server: &Server, task: &str, expected: u64) {
    let every = Duration::from_millis(50);
    eventually(Duration::from_secs(10), every, || async {
        let body = json!({ "StartTime": now() - 3600, "EndTime": now() + 3600, "TaskID": [task] });
        let r = server
            .ok(&PUSH_APP, "timpush/all_member_push_statistics", body)
            .await;
        match r["Results"][0]["DeliveredCount"] == expected {
            true => Ok(()),
            false => Err(format!(
                "{} reports {r}, not {expected} deliveries",
                server.base
            )),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_msg_random_on_two_nodes_at_once_makes_one_task_and_the_quota_is_shared() {
    let Some((_store, cluster)) = three_nodes("cluster MsgRandom", "") else {
        return;
    };
    let body = json!({ "MsgRandom": 77, "MsgBody": text_body("once") });
    let (on_a, on_b) = tokio::join!(
        cluster[0].ok(&QUOTA_APP, "timpush/push", body.clone()),
        cluster[1].ok(&QUOTA_APP, "timpush/push", body.clone()),
    );
    assert_eq!(on_a["TaskId"], on_b["TaskId"], "one task for one MsgRandom");
    // QUOTA_APP may push twice a day: one push is left, for the whole cluster.
    marker(&cluster[2], &QUOTA_APP, 78).await;
    for node in &cluster {
        let r = node
            .call(
                &QUOTA_APP,
                "timpush/push",
                json!({ "MsgRandom": 79, "MsgBody": text_body("over") }),
            )
            .await;
        assert_fail(&r, 90047, "daily quota of 2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_another_node_replaces_the_first_session() {
    let Some((_store, cluster)) = three_nodes("cluster sessions", "") else {
        return;
    };
    import(&cluster[0], &PUSH_APP, &["twice"]).await;
    let url = ws_url(&cluster[0], &PUSH_APP, "twice", &sig(&PUSH_APP, "twice"));
    let (mut first, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let connected = first.next().await.expect("a frame").expect("no error");
    assert!(
        connected.to_text().unwrap().contains("Connected"),
        "{connected:?}"
    );
    let mut second = Client::connect(&cluster[1], &PUSH_APP, "twice").await;
    assert_eq!(close_frame(&mut first).await.code, CloseCode::from(4000));
    // Pushes now reach the account on b only.
    let end = marker(&cluster[2], &PUSH_APP, 5).await;
    assert!(second.pushes_until(&end).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_writes_and_pushes_loses_nothing_and_its_clients_catch_up_elsewhere() {
    let Some((_store, mut cluster)) = three_nodes("cluster kill -9 and pushes", "") else {
        return;
    };
    let writers: Vec<String> = (0..ACCOUNTS).map(account).collect();
    import(&cluster[0], &APP, &as_strs(&writers)).await;
    let names: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    import(&cluster[0], &PUSH_APP, &as_strs(&names)).await;
    let mut on_b = Vec::new();
    for name in &names {
        on_b.push(Client::connect(&cluster[1], &PUSH_APP, name).await);
    }
    // Writes on every node, and pushes from a and c, while b dies.
    let stop = Arc::new(AtomicBool::new(false));
    let running = streams(&cluster, &["a", "b", "c"], &stop);
    let mut created = Vec::new();
    for i in 0..6 {
        let from = &cluster[[0, 2][i % 2]];
        created.push(marker(from, &PUSH_APP, 100 + i as u32).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if i == 2 {
            cluster[1].kill9();
        }
    }
    stop.store(true, Ordering::SeqCst);
    let outcomes = outcomes_with_one_killed(running, 1).await;
    assert_nothing_acknowledged_lost(&[&cluster[0], &cluster[2]], &outcomes).await;

    let mut received: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for mut client in on_b {
        // What reached it before b died, until its connection drops.
        while let Some(frame) = client.try_next_frame().await {
            if frame["Type"] == "Push" {
                let task = frame["TaskId"].as_str().unwrap_or_default().to_string();
                received
                    .entry(client.account.clone())
                    .or_default()
                    .insert(task);
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        let got = received.entry(name.clone()).or_default();
        assert!(
            !got.contains(&created[5]),
            "{name} got a push made after b died from b"
        );
        let elsewhere = &cluster[if i % 2 == 0 { 0 } else { 2 }];
        let mut client = Client::connect(elsewhere, &PUSH_APP, name).await;
        let end = marker(&cluster[0], &PUSH_APP, 200 + i as u32).await;
        got.extend(client.pushes_until(&end).await);
        let missing: Vec<_> = created.iter().filter(|t| !got.contains(*t)).collect();
        assert!(missing.is_empty(), "{name} never got {missing:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_dies_another_node_retries_its_refused_callback() {
    if !postgres_only("cluster callbacks", "its nodes share a PostgreSQL database") {
        return;
    }
    let mut receiver = CallbackReceiver::start(0).await;
    receiver.refusing.store(true, Ordering::SeqCst);
    let (_store, mut cluster) = quick_to_fail_over(|store, config| {
        Server::start_on_with_callback(store, config, &receiver.url)
    });
    let leader = await_leader(&cluster).await;
    // The delivery happens on a node that does not lead; the leader sends its event.
    let other = (leader + 1) % 3;
    import(&cluster[other], &PUSH_APP, &["cb_lead"]).await;
    let mut client = Client::connect(&cluster[other], &PUSH_APP, "cb_lead").await;
    let task = marker(&cluster[other], &PUSH_APP, 63).await;
    assert_eq!(client.next_frame().await["TaskId"], task);
    receiver.await_refused(1).await;
    cluster[leader].kill9();
    receiver.refusing.store(false, Ordering::SeqCst);
    let body = receiver.next_body().await;
    assert_eq!(body["Events"][0]["TaskId"], task);
    assert_eq!(body["Events"][0]["To_Account"], "cb_lead");
    let now_leading = await_leader(&cluster).await;
    assert_ne!(now_leading, leader);
}

/// Three nodes a, b, c on a fresh database (with the database, to keep while they run),
/// each started by `start` with its config, that find a node gone after 2 s.
pub(crate) fn quick_to_fail_over(
    start: impl Fn(TestStore, &str) -> Server,
) -> (TestStore, Vec<Server>) {
    let store = TestStore::fresh();
    let url = store.url().expect("a PostgreSQL database").to_string();
    let cluster = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let config = format!("node_id = {id:?}\n[cluster]\nnode_gone_after_secs = 2\n");
            start(TestStore::at(url.clone()), &config)
        })
        .collect();
    (store, cluster)
}

/// Waits until exactly one of the live nodes says it leads; its position.
pub(crate) async fn await_leader(cluster: &[Server]) -> usize {
    let every = Duration::from_millis(50);
    let (leader, _) = eventually(Duration::from_secs(15), every, || async {
        let mut leading = Vec::new();
        for (i, node) in cluster.iter().enumerate() {
            let url = format!("{}/cluster", node.base);
            if let Ok(response) = node.client().get(&url).send().await
                && let Ok(view) = response.json::<serde_json::Value>().await
                && view["leader"] == true
            {
                leading.push(i);
            }
        }
        match leading[..] {
            [one] => Ok(one),
            _ => Err(format!("leading: {leading:?}")),
        }
    })
    .await;
    leader
}
