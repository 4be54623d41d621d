//! tagcast's side: the real server started on a copy of the generated store, audience counts over
//! HTTP (`POST /v4/tagcast/audience_count` with the `Audience` extension), get_tag and add_tag
//! throughput through `bench/loadgen`, start-up (index rebuild) and memory; then the same counts
//! in process on the index `Store::open` rebuilds, for context.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tagcast_bench::stats::{Samples, cpu_secs, rss_mib, time_batched};
use tagcast_bench::synth::SDKAPPID;
use tagcast_store::Store;

use super::workload::{self, CpuWindow, Throughput};
use super::{CompareArgs, CountResult};
use crate::client::Api;
use crate::server::{KEY, Server};

/// What the tagcast side measured.
pub struct TagcastResult {
    /// Spawn to "listening": store open with index rebuild, and the process start.
    pub startup: Duration,
    /// The rebuild alone, as the server logs it.
    pub rebuild_logged: Option<Duration>,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub counts: Vec<CountResult>,
    /// audience_count of every account (`{}`): the cost of an authenticated request.
    pub floor: Samples,
    pub get_tag: Throughput,
    pub add_tag: Throughput,
    /// The server's busiest threads during add_tag: name and cores.
    pub add_tag_threads: Vec<(String, f64)>,
    /// `Store::open` in this process (rebuild included) and the resident memory it added.
    pub inproc_open: Duration,
    pub inproc_rss_bytes: u64,
    pub bitmap_bytes: u64,
    /// In-process `AppIndex::count` p50 per condition.
    pub inproc: Vec<CountResult>,
}

/// The tagcast and tagcast-loadgen binaries a benchmark runs.
#[derive(Debug, clap::Args)]
pub struct Binaries {
    /// The tagcast binary [default: beside this one].
    #[arg(long)]
    pub tagcast_bin: Option<PathBuf>,
    /// The tagcast-loadgen binary [default: beside this one].
    #[arg(long)]
    pub loadgen_bin: Option<PathBuf>,
}

impl Binaries {
    /// (tagcast, tagcast-loadgen), each as given or beside this binary.
    pub fn resolve(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        Ok((
            bin_beside("tagcast", &self.tagcast_bin)?,
            bin_beside("tagcast-loadgen", &self.loadgen_bin)?,
        ))
    }
}

fn bin_beside(name: &str, arg: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(bin) = arg {
        return Ok(bin.clone());
    }
    let bin = std::env::current_exe()?
        .parent()
        .context("benchmark binary has no folder")?
        .join(name);
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p tagcast -p tagcast-loadgen)",
            bin.display()
        );
    }
    Ok(bin)
}

pub async fn run(args: &CompareArgs, data: &Path, work: &Path) -> anyhow::Result<TagcastResult> {
    let accounts = args.set.accounts;
    let (tagcast, loadgen) = args.binaries.resolve()?;

    // The writes go to a copy, so the cached data set stays as generated.
    let run_dir = work.join("tagcast");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)?;
    }
    std::fs::create_dir_all(run_dir.join("data"))?;
    let started = Instant::now();
    std::fs::copy(data.join("tagcast.redb"), run_dir.join("data/tagcast.redb"))?;
    println!(
        "tagcast: store copied in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let server = Server::start(&tagcast, &run_dir.join("data"), &run_dir).await?;
    let startup = server.startup;
    let rebuild_logged = crate::server::logged_rebuild(&run_dir);
    let rss_start_bytes = (rss_mib(server.pid()) * 1048576.0) as u64;
    println!(
        "tagcast: started in {:.2} s (index rebuild logged: {}), VmRSS {:.0} MiB = {:.0} B/account",
        server.startup.as_secs_f64(),
        rebuild_logged.map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        rss_start_bytes as f64 / 1048576.0,
        rss_start_bytes as f64 / accounts as f64
    );

    let api = Api::new(&server.url)?;
    let mut counts = Vec::new();
    for cond in workload::conditions() {
        let body = json!({ "Audience": cond.audience() });
        let (n, samples) = workload::time_counts(args.timing(), || {
            let (api, body) = (&api, &body);
            async move {
                let (reply, _) = api.call("tagcast/audience_count", body).await?;
                reply["Count"]
                    .as_u64()
                    .with_context(|| format!("no Count in {reply}"))
            }
        })
        .await
        .with_context(|| format!("tagcast count {}", cond.label()))?;
        println!(
            "tagcast: audience_count {} = {n}: p50 {:.3} ms over HTTP ({} runs)",
            body,
            samples.p50().as_secs_f64() * 1e3,
            samples.len()
        );
        counts.push(CountResult::new(n, samples));
    }

    let (_, floor) = workload::time_counts(args.timing(), || {
        let api = &api;
        async move {
            let (reply, _) = api.call("tagcast/audience_count", &json!({})).await?;
            Ok(reply["Count"].as_u64().unwrap_or_default())
        }
    })
    .await?;
    println!(
        "tagcast: audience_count {{}} (all accounts, the floor of a request): p50 {:.3} ms",
        floor.p50().as_secs_f64() * 1e3
    );

    let load = |workload: &str, extra: &[&str]| {
        let mut cmd = loadgen_command(
            &loadgen,
            &server.url,
            accounts,
            args.concurrency,
            args.seconds,
            workload,
        );
        cmd.args(extra);
        cmd
    };
    let pid = server.pid();
    let cpu = CpuWindow::start(Some(cpu_secs(pid)));
    let mut get_tag = loadgen_run(load("get-tag", &[])).await?;
    cpu.finish(Some(cpu_secs(pid)), &mut get_tag);
    println!(
        "tagcast: get_tag (loadgen, 100 accounts per request): {:.0} requests/s; {}",
        get_tag.requests_per_s,
        CpuWindow::describe(&get_tag)
    );
    let cpu = CpuWindow::start(Some(cpu_secs(pid)));
    let threads = pid.map(thread_cpu).unwrap_or_default();
    let started = Instant::now();
    let mut add_tag = loadgen_run(load("add-tag", &["--plain-add"])).await?;
    let add_tag_threads = busiest_threads(
        &threads,
        &pid.map(thread_cpu).unwrap_or_default(),
        started.elapsed(),
    );
    cpu.finish(Some(cpu_secs(pid)), &mut add_tag);
    println!(
        "tagcast: add_tag (loadgen, 100 accounts x 2 tags per request, durable): {:.0} updates/s; {}",
        add_tag.updates_per_s(),
        CpuWindow::describe(&add_tag)
    );
    println!(
        "tagcast: busiest server threads during add_tag: {}",
        describe_threads(&add_tag_threads)
    );
    let rss_end_bytes = (rss_mib(server.pid()) * 1048576.0) as u64;
    server.stop().await;
    std::fs::remove_dir_all(&run_dir)?;

    // In process, on the data set as generated (the server's copy took the writes).
    let rss_before = rss_mib(None);
    let started = Instant::now();
    let store = Store::open(data)?;
    let inproc_open = started.elapsed();
    let inproc_rss_bytes = ((rss_mib(None) - rss_before).max(0.0) * 1048576.0) as u64;
    let bitmap_bytes = store.with_audience(SDKAPPID, |i| i.bitmap_bytes()) as u64;
    let mut inproc = Vec::new();
    for cond in workload::conditions() {
        let expr = cond.expr();
        let count = store.with_audience(SDKAPPID, |i| i.count(&expr));
        // Counts take tens of nanoseconds: timed in batches of calls, not one by one.
        let (samples, _) = time_batched(args.runs, || {
            store.with_audience(SDKAPPID, |i| i.count(black_box(&expr)))
        });
        inproc.push(CountResult::new(count, samples));
    }
    drop(store);
    println!(
        "tagcast: in process, Store::open (index rebuild) {:.2} s, +{:.0} MiB VmRSS, bitmaps {:.0} MiB serialized",
        inproc_open.as_secs_f64(),
        inproc_rss_bytes as f64 / 1048576.0,
        bitmap_bytes as f64 / 1048576.0
    );
    Ok(TagcastResult {
        startup,
        rebuild_logged,
        rss_start_bytes,
        rss_end_bytes,
        counts,
        floor,
        get_tag,
        add_tag,
        add_tag_threads,
        inproc_open,
        inproc_rss_bytes,
        bitmap_bytes,
        inproc,
    })
}

/// `tagcast-loadgen` on the synthetic app's names (`u00000000`..., `tag1`..`tag1000`) of
/// `accounts` accounts at `url`, `workload` (`add-tag`: `Replace: 1` unless `--plain-add` is
/// added) on `concurrency` connections for `seconds`.
pub(crate) fn loadgen_command(
    loadgen: &Path,
    url: &str,
    accounts: u64,
    concurrency: usize,
    seconds: u64,
    workload: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(loadgen);
    cmd.args(["--url", url])
        .args(["--sdkappid", &SDKAPPID.to_string(), "--key", KEY])
        .args(["--workload", workload, "--synth"])
        .args(["--accounts", &accounts.to_string(), "--tags", "1000"])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--seconds", &seconds.to_string()]);
    cmd
}

/// Runs loadgen and reads its `key=value` report; any failed request fails the run.
pub(crate) async fn loadgen_run(mut cmd: tokio::process::Command) -> anyhow::Result<Throughput> {
    // `output` captures both streams, whatever was set: its error is on the captured stderr.
    let out = cmd.output().await.context("running tagcast-loadgen")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "tagcast-loadgen failed ({}): {stdout}{}",
            out.status,
            first_error(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("workload="))
        .with_context(|| format!("no report from tagcast-loadgen: {stdout}"))?;
    println!("tagcast: loadgen {line}");
    let fields: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str| -> anyhow::Result<f64> {
        fields
            .get(k)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("tagcast-loadgen report without {k}: {line}"))
    };
    if num("failed")? > 0.0 {
        bail!("tagcast-loadgen: requests failed: {line}");
    }
    if num("ok")? == 0.0 {
        bail!("tagcast-loadgen: no request completed: {line}");
    }
    Ok(Throughput {
        requests: num("ok")? as u64,
        requests_per_s: num("requests_per_s")?,
        p50: Duration::from_secs_f64(num("p50_ms")? / 1000.0),
        p99: Duration::from_secs_f64(num("p99_ms")? / 1000.0),
        ..Throughput::default()
    })
}

/// A child's stderr up to its backtrace: the error it ended with.
pub(crate) fn first_error(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let error = stderr
        .split("\nStack backtrace:")
        .next()
        .unwrap_or_default();
    error.trim().to_string()
}

/// CPU seconds so far of each thread of `pid`, by thread id: (name, seconds).
pub(crate) fn thread_cpu(pid: u32) -> HashMap<u32, (String, f64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let secs = cpu_secs_of(&task.path().join("stat"));
        threads.insert(tid, (name.trim().to_string(), secs));
    }
    threads
}

/// utime + stime of a /proc stat file, in seconds.
fn cpu_secs_of(path: &Path) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0) };
    (ticks(11) + ticks(12)) / 100.0
}

/// The threads that used the most CPU between two readings, with the cores each kept busy.
pub(crate) fn busiest_threads(
    before: &HashMap<u32, (String, f64)>,
    after: &HashMap<u32, (String, f64)>,
    wall: Duration,
) -> Vec<(String, f64)> {
    let wall = wall.as_secs_f64().max(1e-9);
    let mut by_name: HashMap<String, f64> = HashMap::new();
    for (tid, (name, secs)) in after {
        let used = secs - before.get(tid).map_or(0.0, |(_, s)| *s);
        // Threads of a pool share a name: add them up.
        *by_name.entry(name.clone()).or_default() += used / wall;
    }
    let mut threads: Vec<(String, f64)> = by_name.into_iter().collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    threads.truncate(3);
    threads
}

pub fn describe_threads(threads: &[(String, f64)]) -> String {
    threads
        .iter()
        .filter(|(_, cores)| *cores >= 0.005)
        .map(|(name, cores)| format!("{name} {cores:.2} cores"))
        .collect::<Vec<_>>()
        .join(", ")
}
