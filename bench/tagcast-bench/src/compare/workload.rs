//! What the comparison runs on every system: the audience conditions, the shape of the write and
//! read requests, the synthetic accounts in chunks, and the concurrent driver of the baselines.

use std::future::Future;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tagcast_audience::Expr;
use tagcast_bench::stats::Samples;
use tagcast_bench::synth::{ATTRS, Model, SynthAccount, TAGS, slot};

/// Accounts in one add_tag / get_tag request (Tencent's limit), as `bench/loadgen` sends them.
pub const ACCOUNTS_PER_REQUEST: u64 = 100;
/// Tags set on each account by one add_tag request.
pub const TAGS_PER_UPDATE: u64 = 2;

/// One audience condition of the list. Tags are named by rank: `Tag(5)` is `tag5`.
#[derive(Debug, Clone)]
pub enum Cond {
    Tag(u16),
    And(u16, u16),
    Or(Vec<u16>),
    AndNot(u16, u16),
    AttrEq(u8, &'static str),
    AttrAndTag(u8, &'static str, u16),
}

/// The fixed list: 1 tag; AND of 2; OR of 3; AND with NOT; attribute equality; attribute AND tag.
/// The same conditions as `tagcast-bench audience`.
pub fn conditions() -> Vec<Cond> {
    vec![
        Cond::Tag(5),
        Cond::And(3, 10),
        Cond::Or(vec![20, 50, 100]),
        Cond::AndNot(2, 7),
        Cond::AttrEq(slot::CITY, "city1"),
        Cond::AttrAndTag(slot::OS, "ios", 4),
    ]
}

pub fn tag_name(rank: u16) -> String {
    format!("tag{rank}")
}

pub fn attr_name(slot: u8) -> &'static str {
    ATTRS[slot as usize].name
}

impl Cond {
    pub fn label(&self) -> String {
        match self {
            Cond::Tag(t) => format!("1 tag: tag{t}"),
            Cond::And(a, b) => format!("AND of 2: tag{a} & tag{b}"),
            Cond::Or(ts) => format!(
                "OR of 3: {}",
                ts.iter()
                    .map(|t| tag_name(*t))
                    .collect::<Vec<_>>()
                    // Not `|`: the label goes into a Markdown table.
                    .join(" or ")
            ),
            Cond::AndNot(a, b) => format!("AND NOT: tag{a} & !tag{b}"),
            Cond::AttrEq(s, v) => format!("attr: {} = {v}", attr_name(*s)),
            Cond::AttrAndTag(s, v, t) => format!("attr AND tag: {} = {v} & tag{t}", attr_name(*s)),
        }
    }

    /// tagcast's `Audience` extension (docs/extensions.md).
    pub fn audience(&self) -> Value {
        let tag = |t: &u16| json!({ "Tag": tag_name(*t) });
        let attr = |s: &u8, v: &str| json!({ "Attr": attr_name(*s), "Eq": v });
        match self {
            Cond::Tag(t) => tag(t),
            Cond::And(a, b) => json!({ "And": [tag(a), tag(b)] }),
            Cond::Or(ts) => json!({ "Or": ts.iter().map(tag).collect::<Vec<_>>() }),
            Cond::AndNot(a, b) => json!({ "And": [tag(a), { "Not": tag(b) }] }),
            Cond::AttrEq(s, v) => attr(s, v),
            Cond::AttrAndTag(s, v, t) => json!({ "And": [attr(s, v), tag(t)] }),
        }
    }

    /// The same condition as the index evaluates it (what the server parses `audience` into).
    pub fn expr(&self) -> Expr {
        let tag = |t: &u16| Expr::Tag(tag_name(*t));
        let attr = |s: &u8, v: &str| Expr::AttrEq {
            slot: *s,
            value: v.to_string(),
        };
        match self {
            Cond::Tag(t) => tag(t),
            Cond::And(a, b) => Expr::And(vec![tag(a), tag(b)]),
            Cond::Or(ts) => Expr::Or(ts.iter().map(tag).collect()),
            Cond::AndNot(a, b) => Expr::And(vec![tag(a), Expr::Not(Box::new(tag(b)))]),
            Cond::AttrEq(s, v) => attr(s, v),
            Cond::AttrAndTag(s, v, t) => Expr::And(vec![attr(s, v), tag(t)]),
        }
    }
}

/// A write request: 100 consecutive accounts from a random start, 2 random tags (ranks 1..=1000,
/// possibly equal) for each; what `tagcast-loadgen --synth --plain-add` sends as add_tag.
pub fn write_batch(rng: &mut impl Rng, accounts: u64) -> Vec<(String, [u16; 2])> {
    let first = first_account(rng, accounts);
    (first..first + ACCOUNTS_PER_REQUEST)
        .map(|i| {
            let tags = [
                rng.random_range(0..TAGS) as u16 + 1,
                rng.random_range(0..TAGS) as u16 + 1,
            ];
            (Model::account_name(i), tags)
        })
        .collect()
}

/// A read request: 100 consecutive accounts from a random start, as loadgen's get_tag.
pub fn read_batch(rng: &mut impl Rng, accounts: u64) -> Vec<String> {
    let first = first_account(rng, accounts);
    (first..first + ACCOUNTS_PER_REQUEST)
        .map(Model::account_name)
        .collect()
}

fn first_account(rng: &mut impl Rng, accounts: u64) -> u64 {
    rng.random_range(0..accounts.saturating_sub(ACCOUNTS_PER_REQUEST).max(1))
}

/// The synthetic accounts `0..accounts` in chunks of `chunk`, generated on background threads
/// (chunks arrive in no particular order).
pub fn account_chunks(seed: u64, accounts: u64, chunk: u64) -> Receiver<Vec<SynthAccount>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4)) as u64;
    let chunks = accounts.div_ceil(chunk.max(1));
    let (tx, rx) = sync_channel(threads as usize * 2);
    for w in 0..threads {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let model = Model::new(seed);
            let mut k = w;
            while k < chunks {
                let start = k * chunk;
                let end = (start + chunk).min(accounts);
                let batch = (start..end).map(|i| model.account(i)).collect();
                if tx.send(batch).is_err() {
                    return;
                }
                k += threads;
            }
        });
    }
    rx
}

/// The next chunk from `account_chunks`, without blocking the runtime's other tasks.
pub fn next_chunk(rx: &Receiver<Vec<SynthAccount>>) -> Option<Vec<SynthAccount>> {
    tokio::task::block_in_place(|| rx.recv().ok())
}

/// What one worker of a throughput run did.
#[derive(Default)]
pub struct Tally {
    pub ok: u64,
    pub latencies: Samples,
    /// Requests retried (PostgreSQL deadlocks); not counted in `ok`.
    pub retries: u64,
}

/// Requests per second of a throughput run, all workers together.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    /// Requests completed (add_tag aborted by a deadlock left out).
    pub requests: u64,
    pub requests_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub retries: u64,
    /// Cores the server kept busy on average (when its CPU time is known).
    pub server_cores: Option<f64>,
    /// Cores busy on the whole machine on average (server, client and the rest).
    pub machine_cores: f64,
}

/// Where CPU time goes during a throughput run: the server's (from `server_cpu`, a reading of
/// its CPU seconds so far) and the whole machine's.
pub struct CpuWindow {
    started: Instant,
    server: Option<f64>,
    machine: f64,
}

impl CpuWindow {
    pub fn start(server_cpu: Option<f64>) -> Self {
        Self {
            started: Instant::now(),
            server: server_cpu,
            machine: tagcast_bench::stats::machine_cpu_secs().0,
        }
    }

    /// Fills `t`'s CPU fields with what was used since `start`.
    pub fn finish(self, server_cpu: Option<f64>, t: &mut Throughput) {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        t.server_cores = self.server.zip(server_cpu).map(|(a, b)| (b - a) / wall);
        t.machine_cores = (tagcast_bench::stats::machine_cpu_secs().0 - self.machine) / wall;
    }

    /// "server 1.2 cores, machine 1.9 cores busy" for the log.
    pub fn describe(t: &Throughput) -> String {
        match t.server_cores {
            Some(s) => format!(
                "server {s:.2} cores, machine {:.2} cores busy",
                t.machine_cores
            ),
            None => format!("machine {:.2} cores busy", t.machine_cores),
        }
    }
}

impl Throughput {
    pub fn accounts_per_s(&self) -> f64 {
        self.requests_per_s * ACCOUNTS_PER_REQUEST as f64
    }

    /// Account-tag updates per second (add_tag: 2 tags on each of 100 accounts).
    pub fn updates_per_s(&self) -> f64 {
        self.accounts_per_s() * TAGS_PER_UPDATE as f64
    }
}

/// Runs the workers (each loops until the deadline it was given) and adds up what they did;
/// `started` is when the first could begin. Like loadgen, requests in flight at the deadline are
/// finished and counted, over the time they all took.
pub async fn drive<F>(workers: Vec<F>, started: Instant) -> anyhow::Result<Throughput>
where
    F: Future<Output = anyhow::Result<Tally>> + Send + 'static,
{
    let handles: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
    let mut total = Tally::default();
    for h in handles {
        let t = h.await??;
        total.ok += t.ok;
        total.retries += t.retries;
        for d in t.latencies.iter() {
            total.latencies.push(d);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if total.ok == 0 {
        anyhow::bail!("no request completed");
    }
    Ok(Throughput {
        requests: total.ok,
        requests_per_s: total.ok as f64 / elapsed,
        p50: total.latencies.p50(),
        p99: total.latencies.p99(),
        retries: total.retries,
        ..Throughput::default()
    })
}

/// How a count is timed: `runs` calls after `warmup` untimed ones, stopping early (after at
/// least `min_runs`) once `budget` is spent.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub runs: usize,
    pub min_runs: usize,
    pub warmup: usize,
    pub budget: Duration,
}

/// Times `f` as `timing` says. Every call must return the same count.
pub async fn time_counts<F, Fut>(timing: Timing, mut f: F) -> anyhow::Result<(u64, Samples)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<u64>>,
{
    let mut count = None;
    let mut check = |c: u64| -> anyhow::Result<()> {
        match count {
            Some(prev) if prev != c => anyhow::bail!("count changed between runs: {prev} then {c}"),
            _ => {
                count = Some(c);
                Ok(())
            }
        }
    };
    let Timing {
        runs,
        min_runs,
        warmup,
        budget,
    } = timing;
    for _ in 0..warmup {
        check(f().await?)?;
    }
    let mut samples = Samples::new();
    let began = Instant::now();
    for i in 0..runs.max(1) {
        if i >= min_runs && began.elapsed() >= budget {
            break;
        }
        let started = Instant::now();
        let c = f().await?;
        samples.push(started.elapsed());
        check(c)?;
    }
    Ok((count.unwrap_or_default(), samples))
}

/// The alternatives a baseline has for one count, each screened with a few runs: every one must
/// give the same count, and the fastest is then timed in full (`pick`).
#[derive(Debug, Default)]
pub struct Screening {
    /// Form (as the report shows it), its count and its screening median.
    pub forms: Vec<(String, u64, Duration)>,
}

impl Screening {
    pub fn add(&mut self, form: String, count: u64, p50: Duration) {
        self.forms.push((form, count, p50));
    }

    /// The index of the fastest form; an error when the forms disagree on the count.
    pub fn pick(&self) -> anyhow::Result<usize> {
        let Some((first, count, _)) = self.forms.first() else {
            anyhow::bail!("no form to screen");
        };
        if let Some((form, other, _)) = self.forms.iter().find(|(_, c, _)| c != count) {
            anyhow::bail!(
                "two exact forms of one count disagree: `{first}` counted {count}, `{form}` {other}"
            );
        }
        let fastest = (0..self.forms.len())
            .min_by_key(|&i| self.forms[i].2)
            .unwrap_or(0);
        Ok(fastest)
    }

    /// "form: 1.2 ms; form: 3.4 ms" for the log and the report, fastest first.
    pub fn describe(&self, ms: impl Fn(Duration) -> String) -> String {
        let mut forms: Vec<&(String, u64, Duration)> = self.forms.iter().collect();
        forms.sort_by_key(|f| f.2);
        forms
            .iter()
            .map(|(form, _, p50)| format!("`{form}` {} ms", ms(*p50)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The inclusion-exclusion terms of the union of `n` sets: every non-empty subset of `0..n` (as
/// the indexes of its sets) and its sign, `|A ∪ B ∪ C| = |A| + |B| + |C| - |A∩B| - |A∩C| - |B∩C|
/// + |A∩B∩C|`.
pub fn inclusion_exclusion(n: usize) -> Vec<(Vec<usize>, i64)> {
    (1u32..1 << n)
        .map(|mask| {
            let set: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            let sign = if set.len() % 2 == 1 { 1 } else { -1 };
            (set, sign)
        })
        .collect()
}

/// The synthetic account's tags as sorted ranks (tag id `t` is `tag{t+1}`).
pub fn tag_ranks(account: &SynthAccount) -> Vec<u16> {
    let mut ranks: Vec<u16> = account.tags.iter().map(|t| t + 1).collect();
    ranks.sort_unstable();
    ranks
}
