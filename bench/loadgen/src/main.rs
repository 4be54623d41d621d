//! Drives a running tagcast with many concurrent keep-alive connections and reports
//! acknowledged requests per second and latency percentiles.
//!
//! Workloads (100 consecutive accounts from a random start per request, as Tencent's limit
//! allows):
//! - `add_tag`: `Replace: 1` with 2 random tags out of `--tags`, so every request really changes
//!   what is stored (`--plain-add`: no `Replace`, the 2 tags are added to what each account has);
//!   reports account-tag updates per second as well.
//! - `get_tag`: reads 100 random accounts.
//!
//! `--synth` targets the synthetic app of `tagcast-bench gen` (accounts `u00000000`..., tags
//! `tag1`..`tag{--tags}`) instead of the accounts `--import` creates (`user00000000`...,
//! `tag0`...).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Workload {
    AddTag,
    GetTag,
}

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    #[arg(long)]
    sdkappid: u64,
    #[arg(long)]
    key: String,
    #[arg(long, default_value = "administrator")]
    admin: String,
    #[arg(long, value_enum)]
    workload: Workload,
    /// Accounts in the app (imported first with --import).
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// Distinct tags to draw from.
    #[arg(long, default_value_t = 500)]
    tags: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Import the accounts before the run.
    #[arg(long)]
    import: bool,
    /// Names of the synthetic app (`u00000000`..., `tag1`..): the data set of `tagcast-bench gen`.
    #[arg(long)]
    synth: bool,
    /// add_tag without `Replace`: adds the 2 tags to each account's tags.
    #[arg(long)]
    plain_add: bool,
}

const ACCOUNTS_PER_REQUEST: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    // reqwest is built without a bundled crypto provider; the workspace uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    if args.import {
        import_accounts(&client, &args).await?;
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                client.clone(),
                args.clone(),
                deadline,
                failed.clone(),
            ))
        })
        .collect();
    let mut latencies = Histogram::<u64>::new(3)?;
    for w in workers {
        latencies.add(w.await??)?;
    }
    // Requests in flight at the deadline finish after it: divide by the time they all took.
    let elapsed = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    // Check first: a run with a refused request, or none done, reports nothing but the error.
    if failed > 0 || latencies.is_empty() {
        bail!(
            "{:?}: {failed} requests refused by the server, {} succeeded: no report",
            args.workload,
            latencies.len()
        );
    }
    report(&args, &latencies, failed, elapsed);
    Ok(())
}

fn url(args: &Args, path: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sig = tagcast_usersig::sign(args.sdkappid, &args.key, &args.admin, 86_400, now);
    format!(
        "{}/v4/{path}?sdkappid={}&identifier={}&usersig={sig}&random=1&contenttype=json",
        args.url, args.sdkappid, args.admin
    )
}

fn account(args: &Args, i: usize) -> String {
    if args.synth {
        format!("u{i:08}")
    } else {
        format!("user{i:08}")
    }
}

fn tag(args: &Args, t: usize) -> String {
    if args.synth {
        format!("tag{}", t + 1)
    } else {
        format!("tag{t}")
    }
}

async fn import_accounts(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let url = url(args, "im_open_login_svc/multiaccount_import");
    for start in (0..args.accounts).step_by(ACCOUNTS_PER_REQUEST) {
        let end = (start + ACCOUNTS_PER_REQUEST).min(args.accounts);
        let body =
            json!({ "Accounts": (start..end).map(|i| account(args, i)).collect::<Vec<_>>() });
        let reply: Value = client
            .post(&url)
            .body(body.to_string())
            .send()
            .await?
            .json()
            .await?;
        if reply["ErrorCode"] != 0 {
            bail!("import failed: {reply}");
        }
    }
    Ok(())
}

fn request_body(args: &Args, rng: &mut impl Rng) -> String {
    let first = rng.random_range(0..args.accounts.saturating_sub(ACCOUNTS_PER_REQUEST).max(1));
    let accounts = (first..first + ACCOUNTS_PER_REQUEST).map(|i| account(args, i));
    match args.workload {
        Workload::AddTag => {
            let user_tags: Vec<Value> = accounts
                .map(|a| {
                    let tags = [
                        rng.random_range(0..args.tags),
                        rng.random_range(0..args.tags),
                    ];
                    json!({ "To_Account": a, "Tags": tags.map(|t| tag(args, t)) })
                })
                .collect();
            if args.plain_add {
                json!({ "UserTags": user_tags }).to_string()
            } else {
                json!({ "Replace": 1, "UserTags": user_tags }).to_string()
            }
        }
        Workload::GetTag => json!({ "To_Account": accounts.collect::<Vec<_>>() }).to_string(),
    }
}

async fn worker(
    client: reqwest::Client,
    args: Arc<Args>,
    deadline: Instant,
    failed: Arc<AtomicU64>,
) -> anyhow::Result<Histogram<u64>> {
    let path = match args.workload {
        Workload::AddTag => "timpush/add_tag",
        Workload::GetTag => "timpush/get_tag",
    };
    let url = url(&args, path);
    let mut latencies = Histogram::<u64>::new(3)?;
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    while Instant::now() < deadline {
        let body = request_body(&args, &mut rng);
        let started = Instant::now();
        let reply: Value = client
            .post(&url)
            .body(body)
            .send()
            .await?
            .json()
            .await
            .context("reply")?;
        let micros = started.elapsed().as_micros() as u64;
        if reply["ActionStatus"] == "OK" && reply.get("ErrorList").is_none() {
            latencies.record(micros.max(1))?;
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(latencies)
}

fn report(args: &Args, latencies: &Histogram<u64>, failed: u64, elapsed: Duration) {
    let ok = latencies.len();
    let elapsed = elapsed.as_secs_f64();
    let per_second = ok as f64 / elapsed;
    let workload = format!("{:?}", args.workload);
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    // An add_tag request sets 2 tags on each of its accounts.
    let updates = match args.workload {
        Workload::AddTag => per_second * (ACCOUNTS_PER_REQUEST * 2) as f64,
        Workload::GetTag => 0.0,
    };
    println!(
        "workload={workload} concurrency={} seconds={} elapsed_s={elapsed:.2} ok={ok} failed={failed} requests_per_s={per_second:.0} accounts_per_s={:.0} updates_per_s={updates:.0} p50_ms={:.2} p99_ms={:.2} commit={}",
        args.concurrency,
        args.seconds,
        per_second * ACCOUNTS_PER_REQUEST as f64,
        ms(0.5),
        ms(0.99),
        tagcast_bench::stamp::commit()
    );
}
