//! Several tagcast nodes on one PostgreSQL database (issue 9): what one node writes, the others
//! read and count; writes spread over the nodes leave every node's index equal to the tables;
//! the nodes know each other, one leads, and leadership moves when the leader dies. These run
//! in the PostgreSQL pass of scripts/test.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::postgres::{ACCOUNTS, Outcome, account, stored_tags, write_stream};

/// How long a node may take to see another node's write in its index: the follower wakes on
/// NOTIFY, and polls every second in case a notification is lost.
const LAG_BOUND: Duration = Duration::from_secs(3);

/// Starts `ids.len()` nodes on `store`'s database, each named by its id.
pub(crate) fn nodes(store: &TestStore, ids: &[&str], extra: &str) -> Vec<Server> {
    let url = store.url().expect("a PostgreSQL database").to_string();
    ids.iter()
        .map(|id| {
            let config = format!("node_id = {id:?}\n{extra}");
            Server::start_on(TestStore::at(url.clone()), &config)
        })
        .collect()
}

/// Three nodes a, b, c on a fresh database (with the database, to keep while they run); None
/// outside the PostgreSQL pass.
pub(crate) fn three_nodes(test: &str, extra: &str) -> Option<(TestStore, Vec<Server>)> {
    if !postgres_only(test, "its nodes share a PostgreSQL database") {
        return None;
    }
    let store = TestStore::fresh();
    let cluster = nodes(&store, &["a", "b", "c"], extra);
    Some((store, cluster))
}

/// Waits until `tag`'s count on `server` is `expected`; the time it took, or a failure.
pub(crate) async fn await_count(server: &Server, tag: &str, expected: u64) -> Duration {
    let every = Duration::from_millis(5);
    let (_, took) = eventually(LAG_BOUND, every, || async {
        match tag_count(server, &APP, tag).await {
            count if count == expected => Ok(()),
            count => Err(format!("{tag}: {count} on {}, not {expected}", server.base)),
        }
    })
    .await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_read_and_counted_on_the_others() {
    let Some((_store, cluster)) = three_nodes("cluster reads", "") else {
        return;
    };
    let (a, b, c) = (&cluster[0], &cluster[1], &cluster[2]);
    import(a, &APP, &["u1", "u2", "u3"]).await;
    a.ok(
        &APP,
        "timpush/add_tag",
        tags_body_for(&["u1", "u2"], &["vip"]),
    )
    .await;
    // Reads come from the shared tables: at once on every node.
    for node in [b, c] {
        assert_eq!(tags_of(node, &APP, "u1").await, json!(["vip"]));
    }
    let mut lags = Vec::new();
    for node in [b, c] {
        lags.push(await_count(node, "vip", 2).await);
    }
    // The other way round, attributes included.
    name_attrs(b, &APP, json!({"0": "city"})).await;
    set_attrs(c, &APP, "u3", json!({"city": "Paris"})).await;
    assert_eq!(attrs_of(a, &APP, "u3").await, json!({"city": "Paris"}));
    let paris = json!({"AttrsAnd": {"city": "Paris"}});
    for node in [a, b] {
        let (_, lag) = eventually(LAG_BOUND, Duration::from_millis(5), || async {
            let r = node
                .ok(&APP, "tagcast/audience_count", json!({"Condition": paris}))
                .await;
            if r["Count"] == 1 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;
        lags.push(lag);
    }
    // A node that removes the tag makes the others count it gone.
    b.ok(&APP, "timpush/remove_tag", tags_body_for(&["u1"], &["vip"]))
        .await;
    for node in [a, c] {
        lags.push(await_count(node, "vip", 1).await);
    }
    eprintln!("cluster: index lag between nodes {lags:?}");
}

/// Account `u{n}` of the storm.
fn storm_account(n: usize) -> String {
    format!("u{}", n % 40)
}

/// One node's share of the storm: add, replace and remove tags `s0`..`s7` on the accounts, all
/// of which must succeed.
async fn storm(server: &Server, seed: usize, requests: usize) {
    for i in 0..requests {
        let n = seed * 7919 + i * 31;
        let accounts = [storm_account(n), storm_account(n + 1), storm_account(n + 2)];
        let accounts = as_strs(&accounts);
        let tags = [format!("s{}", n % 8), format!("s{}", (n / 8) % 8)];
        let tags = as_strs(&tags);
        let (path, body) = match i % 3 {
            0 => ("timpush/add_tag", tags_body_for(&accounts, &tags)),
            1 => (
                "timpush/add_tag",
                with_replace(tags_body_for(&accounts, &tags[..1]), 1),
            ),
            _ => ("timpush/remove_tag", tags_body_for(&accounts, &tags[1..])),
        };
        let r = server.call(&APP, path, body).await;
        assert_eq!(r["ErrorCode"], 0, "{path} on {}: {r}", server.base);
    }
}

/// Each account's tags, read with get_tag.
async fn tables(server: &Server, accounts: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let r = server
        .ok(&APP, "timpush/get_tag", accounts_body(&as_strs(accounts)))
        .await;
    let users = r["UserTags"].as_array().expect("UserTags");
    users
        .iter()
        .map(|user| {
            let tags = user["Tags"].as_array().unwrap().iter();
            let tags = tags.map(|t| t.as_str().unwrap().to_string()).collect();
            (user["To_Account"].as_str().unwrap().to_string(), tags)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_storm_over_three_nodes_leaves_every_index_equal_to_the_tables() {
    let Some((store, cluster)) = three_nodes("cluster storm", "") else {
        return;
    };
    let accounts: Vec<String> = (0..40).map(storm_account).collect();
    import(&cluster[0], &APP, &as_strs(&accounts)).await;
    let started = Instant::now();
    let storms = cluster
        .iter()
        .enumerate()
        .map(|(seed, node)| storm(node, seed, 60));
    futures_util::future::join_all(storms).await;
    let took = started.elapsed();
    let stored = tables(&cluster[1], &accounts).await;
    assert!(
        stored.values().any(|tags| !tags.is_empty()),
        "the storm left no tag at all"
    );
    for node in &cluster {
        for t in 0..8 {
            let tag = format!("s{t}");
            let holders = stored.values().filter(|tags| tags.contains(&tag)).count();
            await_count(node, &tag, holders as u64).await;
        }
    }
    // And the records of tag counts agree with the tables too: a fresh node rebuilds the same.
    let late = nodes(&store, &["d"], "");
    for t in 0..8 {
        let tag = format!("s{t}");
        let holders = stored.values().filter(|tags| tags.contains(&tag)).count();
        assert_eq!(
            tag_count(&late[0], &APP, &tag).await,
            holders as u64,
            "{tag}"
        );
    }
    eprintln!("cluster: 180 writes over three nodes in {took:?}");
}

/// The node's view of the cluster (`GET /cluster`).
async fn view(server: &Server) -> Value {
    let url = format!("{}/cluster", server.base);
    let response = server.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The ids of the nodes `server` sees alive, and whether it leads.
async fn seen(server: &Server) -> (BTreeSet<String>, bool) {
    let v = view(server).await;
    let ids = v["nodes"].as_array().unwrap().iter();
    let ids = ids.map(|n| n["id"].as_str().unwrap().to_string()).collect();
    (ids, v["leader"] == true)
}

/// Waits until `check` holds of every node's view; fails after `within`.
async fn await_views(
    nodes: &[&Server],
    within: Duration,
    check: impl Fn(&[(BTreeSet<String>, bool)]) -> bool,
) -> Vec<(BTreeSet<String>, bool)> {
    let (views, _) = eventually(within, Duration::from_millis(50), || async {
        let mut views = Vec::new();
        for node in nodes {
            views.push(seen(node).await);
        }
        match check(&views) {
            true => Ok(views),
            false => Err(format!("views {views:?}")),
        }
    })
    .await;
    views
}

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_know_each_other_one_leads_and_leadership_moves_when_it_dies() {
    let gone_after = "[cluster]\nnode_gone_after_secs = 2\n";
    let Some((_store, mut cluster)) = three_nodes("cluster membership", gone_after) else {
        return;
    };
    let all = ids(&["a", "b", "c"]);
    let one_leader =
        |views: &[(BTreeSet<String>, bool)]| views.iter().filter(|(_, leads)| *leads).count() == 1;
    let views = await_views(
        &cluster.iter().collect::<Vec<_>>(),
        Duration::from_secs(10),
        |views| views.iter().all(|(seen, _)| *seen == all) && one_leader(views),
    )
    .await;
    let leader = views.iter().position(|(_, leads)| *leads).unwrap();
    let mut gone = cluster.remove(leader);
    let gone_id = ["a", "b", "c"][leader];
    let started = Instant::now();
    gone.kill9();
    let left: BTreeSet<String> = all.iter().filter(|id| *id != gone_id).cloned().collect();
    let survivors: Vec<&Server> = cluster.iter().collect();
    await_views(&survivors, Duration::from_secs(10), |views| {
        views.iter().all(|(seen, _)| *seen == left) && one_leader(views)
    })
    .await;
    eprintln!(
        "cluster: leader {gone_id} killed; a new leader, and {gone_id} gone, after {:?}",
        started.elapsed()
    );
    // The new leader leads alone, and writes go on on every node left.
    for node in &cluster {
        import(node, &APP, &["after"]).await;
    }
}

/// One write stream per node, each with tags of its own prefix.
pub(crate) fn streams(
    cluster: &[Server],
    prefixes: &[&'static str],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    cluster
        .iter()
        .zip(prefixes)
        .map(|(node, prefix)| {
            let url = node.url(&APP, "timpush/add_tag");
            tokio::spawn(write_stream(
                node.client().clone(),
                url,
                prefix,
                stop.clone(),
            ))
        })
        .collect()
}

/// The outcomes of `streams` whose node `killed` was killed while they ran: the nodes left never
/// failed a write (and each wrote), the killed one failed some.
pub(crate) async fn outcomes_with_one_killed(
    running: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
    killed: usize,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (node, stream) in running.into_iter().enumerate() {
        let stream = stream.await.unwrap();
        if node != killed {
            let failed: Vec<_> = stream.iter().filter(|o| o.code != Some(0)).collect();
            assert!(failed.is_empty(), "node {node} kept serving: {failed:?}");
            assert!(stream.len() > 5, "node {node} wrote only {}", stream.len());
        }
        outcomes.extend(stream);
    }
    assert!(
        outcomes.iter().any(|o| o.code.is_none()),
        "node {killed} was not killed during its writes"
    );
    outcomes
}

/// Every acknowledged write of `outcomes` is in the tables, and every node of `cluster`
/// counts each tag written or tried exactly as the tables hold it.
pub(crate) async fn assert_nothing_acknowledged_lost(cluster: &[&Server], outcomes: &[Outcome]) {
    let stored = stored_tags(cluster[0]).await;
    for outcome in outcomes.iter().filter(|o| o.code == Some(0)) {
        let held = &stored[&account(outcome.n)];
        assert!(held.contains(&outcome.tag), "{} lost", outcome.tag);
    }
    for node in cluster {
        for outcome in outcomes {
            let holders = stored.values().filter(|t| t.contains(&outcome.tag)).count();
            await_count(node, &outcome.tag, holders as u64).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_writes_loses_nothing_and_the_others_serve_on() {
    let Some((_store, mut cluster)) = three_nodes("cluster kill -9", "") else {
        return;
    };
    let names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    import(&cluster[0], &APP, &as_strs(&names)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = streams(&cluster, &["a", "b", "c"], &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster[1].kill9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = outcomes_with_one_killed(running, 1).await;
    let killed_during = outcomes.iter().filter(|o| o.code.is_none()).count();
    let left = [&cluster[0], &cluster[2]];
    assert_nothing_acknowledged_lost(&left, &outcomes).await;
    eprintln!(
        "cluster: {} writes, {killed_during} refused by the killed node; nothing acknowledged lost",
        outcomes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_recovers_by_itself_when_postgresql_restarts_under_load() {
    if !postgres_only("cluster outage", "it crashes PostgreSQL") {
        return;
    }
    let pg = OwnCluster::start();
    let url = pg.database("cluster_outage");
    let cluster: Vec<Server> = ["a", "b", "c"]
        .iter()
        .map(|id| Server::start_on(TestStore::at(url.clone()), &format!("node_id = {id:?}")))
        .collect();
    let names: Vec<String> = (0..ACCOUNTS).map(account).collect();
    import(&cluster[0], &APP, &as_strs(&names)).await;
    // One session on each node, connected through the outage.
    let listeners = ["on_a", "on_b", "on_c"];
    import(&cluster[0], &PUSH_APP, &listeners).await;
    let mut sessions = Vec::new();
    for (node, name) in cluster.iter().zip(listeners) {
        sessions.push(crate::ws::Client::connect(node, &PUSH_APP, name).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let running = streams(&cluster, &["a", "b", "c"], &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.crash();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.resume();
    // Every node serves again, with no restart.
    for node in &cluster {
        let every = Duration::from_millis(100);
        eventually(Duration::from_secs(30), every, || async {
            let r = node
                .call(&APP, "timpush/add_tag", tag_body("u0", &["after"]))
                .await;
            match r["ErrorCode"] == 0 {
                true => Ok(()),
                false => Err(format!("{}: {r}", node.base)),
            }
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for stream in running {
        outcomes.extend(stream.await.unwrap());
    }
    let failed = outcomes.iter().filter(|o| o.code != Some(0)).count();
    assert!(failed > 0, "no write saw the outage");
    for outcome in outcomes.iter().filter(|o| o.code != Some(0)) {
        assert_eq!(outcome.code, Some(91000), "{outcome:?}");
    }
    let all: Vec<&Server> = cluster.iter().collect();
    assert_nothing_acknowledged_lost(&all, &outcomes).await;
    // And pushes cross the nodes again: each node's follower listens anew.
    let after = crate::ws::marker(&cluster[2], &PUSH_APP, 1).await;
    for session in &mut sessions {
        assert_eq!(
            session.next_frame().await["TaskId"],
            after,
            "{}",
            session.account
        );
    }
    eprintln!(
        "cluster: {} writes over three nodes, {failed} refused during the outage; all recovered",
        outcomes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_rate_is_split_evenly_over_the_live_nodes() {
    let Some((_store, cluster)) = three_nodes("cluster rates", "") else {
        return;
    };
    let all = ids(&["a", "b", "c"]);
    await_views(
        &cluster.iter().collect::<Vec<_>>(),
        Duration::from_secs(10),
        |views| views.iter().all(|(seen, _)| *seen == all),
    )
    .await;
    // Each node brings its split up to date every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // TIGHT_APP allows get_attr_name twice a second: alone, a node takes two calls at once
    // (see auth.rs); one of three takes one, then one per 1.5 s.
    for node in &cluster {
        let first = node
            .call(&TIGHT_APP, "timpush/get_attr_name", json!({}))
            .await;
        assert_ok(&first);
        let second = node
            .call(&TIGHT_APP, "timpush/get_attr_name", json!({}))
            .await;
        assert_fail(&second, 60007, "timpush/get_attr_name");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_at_once_on_an_empty_database_all_come_up() {
    if !postgres_only("cluster start", "its nodes share a PostgreSQL database") {
        return;
    }
    let store = TestStore::fresh();
    let url = store.url().expect("a PostgreSQL database").to_string();
    // Each creates or migrates the schema, or waits for the one that does.
    let cluster: Vec<Server> = std::thread::scope(|scope| {
        let starting: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| {
                let url = url.clone();
                scope.spawn(move || {
                    Server::start_on(TestStore::at(url), &format!("node_id = {id:?}"))
                })
            })
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    import(&cluster[2], &APP, &["together"]).await;
    add_tags(&cluster[1], &APP, "together", &["at_once"]).await;
    for node in &cluster {
        await_count(node, "at_once", 1).await;
    }
}
