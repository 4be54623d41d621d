//! What the cluster benchmark sends besides loadgen's runs: an add_tag load that runs until it is
//! stopped, the replication-lag probes (a tag added on one node, counted on the others), and the
//! checks that every node counts what the tables hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::SeedableRng;
use serde_json::{Value, json};
use tagcast_bench::stats::Samples;
use tokio::task::JoinHandle;

use super::Node;
use crate::client::Api;
use crate::compare::workload::{self, tag_name};

/// Pause between two counts of a node waiting for a write: the lag's resolution, with the
/// count's own round trip.
pub const POLL: Duration = Duration::from_millis(1);

/// Longest wait for a node to count a write acknowledged on another.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

/// `Count` of `POST /v4/tagcast/audience_count` with `body` on `api`'s node.
pub async fn count(api: &Api, body: &Value) -> anyhow::Result<u64> {
    let (reply, _) = api.call("tagcast/audience_count", body).await?;
    reply["Count"]
        .as_u64()
        .with_context(|| format!("no Count in {reply}"))
}

/// Counts `body` on `api`'s node until it is `expected`: the time from `since` to the answer
/// that showed it. An error when the count goes past `expected` or does not get there within
/// `VISIBLE_WITHIN`.
pub async fn await_count(
    api: &Api,
    body: &Value,
    expected: u64,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let n = count(api, body).await?;
        if n == expected {
            return Ok(since.elapsed());
        }
        if n > expected {
            bail!("{body} counts {n}, expected {expected}");
        }
        if since.elapsed() > VISIBLE_WITHIN {
            bail!("{body} counts {n} after {VISIBLE_WITHIN:?}, expected {expected}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `audience_count` of the accounts with tag `tag` (Tencent's `Condition`, which the node
/// answers from its in-memory index).
pub fn tag_condition(tag: &str) -> Value {
    json!({ "Condition": { "TagsOr": [tag] } })
}

/// An add_tag body adding one tag to one account.
pub fn add_one_tag(account: &str, tag: &str) -> Value {
    json!({ "UserTags": [{ "To_Account": account, "Tags": [tag] }] })
}

/// The tag of probe worker `w`, and the account of its `k`-th probe.
pub fn probe_tag(w: usize) -> String {
    format!("lagprobe{w}")
}

fn probe_account(w: usize, k: usize) -> String {
    format!("lag{w}_{k:06}")
}

/// Every probe account of `workers` workers of `per_worker` probes each.
pub fn probe_accounts(workers: usize, per_worker: usize) -> Vec<String> {
    (0..workers)
        .flat_map(|w| (0..per_worker).map(move |k| probe_account(w, k)))
        .collect()
}

/// An add_tag load on one node: `connections` requests in flight at once, each adding 2 random
/// tags of `tag1`..`tag1000` to 100 consecutive accounts of the synthetic app (what
/// `tagcast-loadgen --synth --plain-add` sends), until `stop`.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<anyhow::Result<u64>>>,
    started: Instant,
}

/// What a load did: requests acknowledged, over how long.
#[derive(Debug, Clone, Copy)]
pub struct LoadDone {
    pub requests: u64,
    pub secs: f64,
}

impl LoadDone {
    pub fn updates_per_s(&self) -> f64 {
        (self.requests * workload::ACCOUNTS_PER_REQUEST * workload::TAGS_PER_UPDATE) as f64
            / self.secs.max(1e-9)
    }
}

impl Load {
    pub fn start(api: &Api, accounts: u64, connections: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..connections.max(1))
            .map(|_| {
                let (api, stop) = (api.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let user_tags: Vec<Value> = workload::write_batch(&mut rng, accounts)
                            .into_iter()
                            .map(|(account, tags)| {
                                json!({ "To_Account": account, "Tags": tags.map(tag_name) })
                            })
                            .collect();
                        api.call("timpush/add_tag", &json!({ "UserTags": user_tags }))
                            .await
                            .context("the add_tag load")?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        Load {
            stop,
            workers,
            started: Instant::now(),
        }
    }

    /// Stops the load once the requests in flight are answered; an error if one failed.
    pub async fn stop(self) -> anyhow::Result<LoadDone> {
        self.stop.store(true, Ordering::Relaxed);
        let mut requests = 0;
        for worker in self.workers {
            requests += worker.await??;
        }
        Ok(LoadDone {
            requests,
            secs: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// The replication lag: a write acknowledged on `origin`, counted on each of `others`.
pub struct Lag {
    /// Every (probe, other node) pair.
    pub all: Samples,
    /// By other node: its id and its samples.
    pub by_node: Vec<(String, Samples)>,
    /// The probes' own add_tag requests on `origin`, request to answer.
    pub writes: Samples,
    /// The add_tag load on `origin` meanwhile.
    pub load: LoadDone,
}

/// `probes` probes by `workers` workers at once, while `load_connections` connections keep an
/// add_tag load on `origin`. Worker `w` adds its tag to its next account on `origin` and, once
/// that is acknowledged, counts the tag on every other node until the count includes it (the
/// count that shows it is the one expected; another fails the run).
pub async fn lag(
    origin: &Node,
    others: &[&Node],
    accounts: u64,
    load_connections: usize,
    probes: usize,
    workers: usize,
) -> anyhow::Result<Lag> {
    let load = Load::start(&origin.api, accounts, load_connections);
    // Under way before the first probe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_worker = probes.div_ceil(workers.max(1));
    let runs = (0..workers.max(1)).map(|w| {
        let origin = origin.api.clone();
        let others: Vec<(String, Api)> = others
            .iter()
            .map(|n| (n.id.clone(), n.api.clone()))
            .collect();
        async move {
            let tag = probe_tag(w);
            let condition = tag_condition(&tag);
            let mut seen: Vec<Samples> = others.iter().map(|_| Samples::new()).collect();
            let mut writes = Samples::new();
            for k in 0..per_worker {
                let (_, took) = origin
                    .call("timpush/add_tag", &add_one_tag(&probe_account(w, k), &tag))
                    .await?;
                let acked = Instant::now();
                writes.push(took);
                let expected = k as u64 + 1;
                let lags = futures_util::future::try_join_all(others.iter().map(|(id, api)| {
                    let condition = &condition;
                    async move {
                        await_count(api, condition, expected, acked)
                            .await
                            .with_context(|| format!("lag probe {k} of worker {w} on {id}"))
                    }
                }))
                .await?;
                for (samples, lag) in seen.iter_mut().zip(lags) {
                    samples.push(lag);
                }
            }
            anyhow::Ok((seen, writes))
        }
    });
    let measured = futures_util::future::try_join_all(runs).await;
    let load = load.stop().await?;
    let mut lag = Lag {
        all: Samples::new(),
        by_node: others
            .iter()
            .map(|n| (n.id.clone(), Samples::new()))
            .collect(),
        writes: Samples::new(),
        load,
    };
    for (seen, writes) in measured? {
        for ((_, by_node), samples) in lag.by_node.iter_mut().zip(seen) {
            for d in samples.iter() {
                by_node.push(d);
                lag.all.push(d);
            }
        }
        for d in writes.iter() {
            lag.writes.push(d);
        }
    }
    Ok(lag)
}

/// Waits until every node counts `body` alike, and as `truth` when it is given (what the tables
/// hold); an error with each node's count when they do not within `VISIBLE_WITHIN`.
pub async fn agree(nodes: &[&Node], body: &Value, truth: Option<u64>) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let mut counts = Vec::new();
        for node in nodes {
            counts.push(count(&node.api, body).await?);
        }
        let first = counts[0];
        if counts.iter().all(|c| *c == first) && truth.is_none_or(|t| t == first) {
            return Ok(first);
        }
        if started.elapsed() > VISIBLE_WITHIN {
            let seen: Vec<String> = nodes
                .iter()
                .zip(&counts)
                .map(|(n, c)| format!("{} {c}", n.id))
                .collect();
            bail!(
                "counts differ between nodes after {VISIBLE_WITHIN:?}: {body}: {}{}",
                seen.join(", "),
                truth.map_or(String::new(), |t| format!("; the tables hold {t}"))
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
