//! `compare`: tagcast against Redis and PostgreSQL on the same synthetic app, in the same run, on
//! the same machine (issue 4). `bench/run.sh` installs and starts the two baselines, then runs
//! this; see bench/README.md.
//!
//! The systems run one after the other (tagcast, Redis, PostgreSQL), each alone on the machine,
//! and each loaded with the same accounts from the model (`synth.rs`). Every audience count must
//! be equal on all of them (the run fails otherwise).

pub(crate) mod baseline_pg;
mod baseline_redis;
pub(crate) mod tagcast_side;
pub(crate) mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use tagcast_bench::stats::{Samples, table};
use workload::Throughput;

use baseline_pg::PgResult;
use baseline_redis::RedisResult;
use tagcast_side::{Binaries, TagcastResult};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub set: crate::DataSetArgs,
    /// Redis URL, e.g. redis://127.0.0.1:26379: an empty server with AOF on, which the run loads
    /// and flushes at the end. Without it, Redis is skipped.
    #[arg(long)]
    pub redis: Option<String>,
    /// PostgreSQL connection string, e.g. "host=127.0.0.1 port=25432 user=postgres
    /// dbname=tagcast_bench": a database of its own (its table `accounts` is replaced). Without
    /// it, PostgreSQL is skipped.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Concurrent connections of the throughput workloads (every system).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of each throughput workload.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Timed runs of each tagcast count (over HTTP, and in process).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Timed runs of each baseline count, at most.
    #[arg(long, default_value_t = 21)]
    pub baseline_runs: usize,
    /// Runs of each exact form a baseline has for a count, to find its fastest (then timed in full).
    #[arg(long, default_value_t = 3)]
    pub screen_runs: usize,
    /// Timed runs of each count, at least, whatever the budget.
    #[arg(long, default_value_t = 5)]
    pub min_runs: usize,
    /// Seconds of timed runs per count, after which no new run starts (once min-runs are done).
    #[arg(long, default_value_t = 10.0)]
    pub budget_secs: f64,
    /// Where the server's copy of the store goes [default: target/bench-data/ACCOUNTS-compare-run].
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: Binaries,
}

impl CompareArgs {
    /// Timing of tagcast's requests and of every round-trip floor.
    pub fn timing(&self) -> workload::Timing {
        workload::Timing {
            runs: self.runs,
            min_runs: self.min_runs,
            warmup: 3,
            budget: Duration::from_secs_f64(self.budget_secs),
        }
    }

    /// Screening of a baseline's alternative forms: a warm-up and `screen_runs` runs each.
    pub fn screen_timing(&self) -> workload::Timing {
        workload::Timing {
            runs: self.screen_runs.max(1),
            min_runs: self.screen_runs.max(1),
            warmup: 1,
            budget: Duration::ZERO,
        }
    }

    /// Timing of the (far slower) baseline counts.
    pub fn baseline_timing(&self) -> workload::Timing {
        workload::Timing {
            runs: self.baseline_runs,
            warmup: 2,
            ..self.timing()
        }
    }
}

/// One condition's count on one system and the time of each run.
pub struct CountResult {
    pub count: u64,
    pub samples: Samples,
    /// A baseline's form of the count that was timed (the fastest screened), empty for tagcast.
    pub form: String,
    /// Every exact form of the baseline screened, with its screening median.
    pub screening: workload::Screening,
}

impl CountResult {
    pub fn new(count: u64, samples: Samples) -> Self {
        Self {
            count,
            samples,
            form: String::new(),
            screening: workload::Screening::default(),
        }
    }
}

pub async fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let begun = Instant::now();
    let data = args.set.dir();
    let meta =
        crate::gen_data::generate(&data, args.set.accounts, args.set.seed, 50_000, false).await?;
    let work = args.work.clone().unwrap_or_else(|| {
        data.with_file_name(format!(
            "{}-compare-run",
            data.file_name()
                .map_or("data".into(), |n| n.to_string_lossy())
        ))
    });
    std::fs::create_dir_all(&work)?;

    println!("\n== tagcast");
    let phase = Instant::now();
    let tagcast = tagcast_side::run(args, &data, &work).await?;
    println!("tagcast: phase took {:.0} s", phase.elapsed().as_secs_f64());
    let redis = match &args.redis {
        Some(url) => {
            println!("\n== Redis");
            let phase = Instant::now();
            let r = baseline_redis::run(url, args, meta.seed).await?;
            println!("redis: phase took {:.0} s", phase.elapsed().as_secs_f64());
            Some(r)
        }
        None => None,
    };
    let pg = match &args.postgres {
        Some(conn) => {
            println!("\n== PostgreSQL");
            let phase = Instant::now();
            let r = baseline_pg::run(conn, args, meta.seed).await?;
            println!(
                "postgres: phase took {:.0} s",
                phase.elapsed().as_secs_f64()
            );
            Some(r)
        }
        None => None,
    };
    let _ = std::fs::remove_dir(&work);

    // Check first: a run whose systems disagree, or whose condition matches nobody, fails with
    // no report.
    check_counts(&tagcast, redis.as_ref(), pg.as_ref())?;
    let report = report(args, &tagcast, redis.as_ref(), pg.as_ref());
    println!("\n{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
        println!("report written to {}", out.display());
    }
    println!("compare: {:.0} s in all", begun.elapsed().as_secs_f64());
    Ok(())
}

/// Every system must count the same accounts as the index, and every condition match someone.
fn check_counts(
    tagcast: &TagcastResult,
    redis: Option<&RedisResult>,
    pg: Option<&PgResult>,
) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for (i, cond) in workload::conditions().iter().enumerate() {
        let want = tagcast.inproc[i].count;
        if want == 0 {
            wrong.push(format!(
                "{}: matches no account, so it measures nothing",
                cond.label()
            ));
        }
        let mut got = vec![("tagcast HTTP", tagcast.counts[i].count)];
        if let Some(r) = redis {
            got.push(("Redis", r.counts[i].count));
        }
        if let Some(p) = pg {
            got.push(("PostgreSQL", p.counts[i].count));
        }
        for (who, n) in got {
            if n != want {
                wrong.push(format!(
                    "{}: {who} counted {n}, the index {want}",
                    cond.label()
                ));
            }
        }
    }
    if !wrong.is_empty() {
        bail!(
            "compare: wrong counts, no report written:\n{}",
            wrong.join("\n")
        );
    }
    Ok(())
}

/// Milliseconds with 3 significant digits (whole milliseconds from 100 up).
pub(crate) fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 || ms <= 0.0 {
        return format!("{ms:.0}");
    }
    let decimals = (2 - ms.log10().floor() as i32).clamp(0, 7) as usize;
    format!("{ms:.decimals$}")
}

/// A whole number with thousands separators.
pub(crate) fn fmt_int(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `a / b` as a ratio ("how many times better tagcast is").
pub(crate) fn fmt_ratio(a: f64, b: f64) -> String {
    if b <= 0.0 || a <= 0.0 {
        return "-".into();
    }
    let r = a / b;
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.2}x")
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The report: the table, then what each row ran.
fn report(
    args: &CompareArgs,
    t: &TagcastResult,
    redis: Option<&RedisResult>,
    pg: Option<&PgResult>,
) -> String {
    let n = args.set.accounts as f64;
    let dash = || "-".to_string();
    let mut rows = vec![vec![
        "workload (median)".to_string(),
        "count".into(),
        "tagcast HTTP".into(),
        "tagcast in-process".into(),
        "Redis".into(),
        "PostgreSQL".into(),
        "tagcast vs Redis".into(),
        "tagcast vs PostgreSQL".into(),
    ]];
    for (i, cond) in workload::conditions().iter().enumerate() {
        let http = t.counts[i].samples.p50();
        let r = redis.map(|r| r.counts[i].samples.p50());
        let p = pg.map(|p| p.counts[i].samples.p50());
        rows.push(vec![
            format!("count {}, ms", cond.label()),
            fmt_int(t.inproc[i].count as f64),
            fmt_ms(http),
            fmt_ms(t.inproc[i].samples.p50()),
            r.map_or_else(dash, fmt_ms),
            p.map_or_else(dash, fmt_ms),
            r.map_or_else(dash, |r| fmt_ratio(secs(r), secs(http))),
            p.map_or_else(dash, |p| fmt_ratio(secs(p), secs(http))),
        ]);
    }
    {
        let http = t.floor.p50();
        let r = redis.map(|r| r.floor.p50());
        let p = pg.map(|p| p.floor.p50());
        rows.push(vec![
            "round-trip floor, ms [0]".into(),
            String::new(),
            fmt_ms(http),
            String::new(),
            r.map_or_else(dash, fmt_ms),
            p.map_or_else(dash, fmt_ms),
            r.map_or_else(dash, |r| fmt_ratio(secs(r), secs(http))),
            p.map_or_else(dash, |p| fmt_ratio(secs(p), secs(http))),
        ]);
    }
    let mut rate_row = |label: &str, tag: f64, r: Option<f64>, p: Option<f64>| {
        rows.push(vec![
            label.to_string(),
            String::new(),
            fmt_int(tag),
            String::new(),
            r.map_or_else(dash, fmt_int),
            p.map_or_else(dash, fmt_int),
            r.map_or_else(dash, |r| fmt_ratio(tag, r)),
            p.map_or_else(dash, |p| fmt_ratio(tag, p)),
        ]);
    };
    rate_row(
        "durable add_tag, updates/s [1]",
        t.add_tag.updates_per_s(),
        redis.map(|r| r.add_tag_always.updates_per_s()),
        pg.map(|p| p.add_tag.updates_per_s()),
    );
    rate_row(
        "add_tag, updates/s, Redis everysec [2]",
        t.add_tag.updates_per_s(),
        redis.map(|r| r.add_tag_everysec.updates_per_s()),
        None,
    );
    rate_row(
        "get_tag, accounts read/s [3]",
        t.get_tag.accounts_per_s(),
        redis.map(|r| r.get_tag.accounts_per_s()),
        pg.map(|p| p.get_tag.accounts_per_s()),
    );
    rows.push(vec![
        "index rebuild at start, s [4]".into(),
        String::new(),
        format!(
            "{} ({:.2})",
            t.rebuild_logged
                .map_or("?".into(), |d| format!("{:.2}", secs(d))),
            secs(t.startup)
        ),
        format!("{:.2}", secs(t.inproc_open)),
        dash(),
        dash(),
        dash(),
        dash(),
    ]);
    let tag_mem = t.rss_start_bytes as f64 / n;
    let r_mem = redis.map(|r| r.used_memory as f64 / n);
    let p_mem = pg.map(|p| p.total_bytes as f64 / n);
    rows.push(vec![
        "memory per account, bytes [5]".into(),
        String::new(),
        fmt_int(tag_mem),
        fmt_int(t.inproc_rss_bytes as f64 / n),
        r_mem.map_or_else(dash, fmt_int),
        p_mem.map_or_else(dash, fmt_int),
        r_mem.map_or_else(dash, |r| fmt_ratio(r, tag_mem)),
        p_mem.map_or_else(dash, |p| fmt_ratio(p, tag_mem)),
    ]);
    let data = args.set.dir();
    rows.push(vec![
        "load, s [6]".into(),
        String::new(),
        crate::gen_data::read_meta(&data)
            .map_or_else(|_| dash(), |m| format!("{:.0}", m.load_secs)),
        String::new(),
        redis.map_or_else(dash, |r| format!("{:.0}", secs(r.load))),
        pg.map_or_else(dash, |p| {
            format!(
                "{:.0} ({:.0} + {:.0})",
                secs(p.copy + p.indexes),
                secs(p.copy),
                secs(p.indexes)
            )
        }),
        dash(),
        dash(),
    ]);

    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    out.push_str(&format!(
        "{}: tagcast vs Redis {} vs PostgreSQL {} at {} accounts (seed {}), {cores} cores; one system at a time on the same machine.\n\
         Medians. Counts: up to {} timed requests for tagcast (sequential, one keep-alive HTTP/1.1 connection), up to {} for each baseline (at least {}, within {:.0} s, of the fastest of its exact forms, each screened with {} runs); \
         tagcast in-process: the median of {} batches of calls (each at least 0.5 ms of calls, divided by them); \
         throughput: {} connections for {} s on every system. \"tagcast vs X\" is how many times better tagcast is: X's time / tagcast's time, tagcast's rate / X's rate, X's bytes / tagcast's bytes.\n\n",
        tagcast_bench::stamp::line("tagcast-bench compare"),
        redis.map_or("(skipped)", |r| r.version.as_str()),
        pg.map_or("(skipped)", |p| p.version.as_str()),
        fmt_int(n),
        args.set.seed,
        args.runs,
        args.baseline_runs,
        args.min_runs,
        args.budget_secs,
        args.screen_runs,
        args.runs,
        args.concurrency,
        args.seconds,
    ));
    out.push_str(&table(&rows));
    out.push_str(
        "\nWhat each row ran (each baseline: the fastest of its exact forms, screened in this run; the others after it):\n",
    );
    for (i, cond) in workload::conditions().iter().enumerate() {
        let baseline = |name: &str, c: Option<&CountResult>| match c {
            None => String::new(),
            Some(c) if c.screening.forms.len() > 1 => format!(
                "; {name} `{}` (screened: {})",
                c.form,
                c.screening.describe(fmt_ms)
            ),
            Some(c) => format!("; {name} `{}` (its only form)", c.form),
        };
        out.push_str(&format!(
            "- {}: tagcast `POST /v4/tagcast/audience_count` `{}`{}{}\n",
            cond.label(),
            serde_json::json!({ "Audience": cond.audience() }),
            baseline("Redis", redis.map(|r| &r.counts[i])),
            baseline("PostgreSQL", pg.map(|p| &p.counts[i])),
        ));
    }
    out.push_str(
        "- [0] the cost of a request that does no work: tagcast `audience_count` of all accounts (`{}`: HTTP, UserSig check, \
         JSON, an O(1) count); Redis `PING`; PostgreSQL `SELECT 1` (prepared)\n",
    );
    let deadlocks = pg.map_or(0, |p| p.add_tag.retries);
    out.push_str(&format!(
        "- [1] account-tag updates acknowledged per second (100 accounts x 2 tags per request): tagcast `timpush/add_tag` \
         (bench/loadgen --synth --plain-add), answered after its group commit is fsynced; Redis MULTI + 300 SADD \
         (tag:<t> <account> twice, acct:<account> <t1> <t2>) + EXEC per request with appendfsync always (fsync before replying); \
         PostgreSQL one `UPDATE accounts SET tags = tags | ARRAY[t1, t2] ... FROM unnest(...)` of 100 rows per transaction, \
         synchronous_commit on{}\n\
         - [2] the same, Redis with appendfsync everysec: it replies before the fsync, so a crash loses up to a second of acknowledged writes\n\
         - [3] tagcast `timpush/get_tag` of 100 accounts (loadgen); Redis 100 SMEMBERS acct:<account> in one pipeline; \
         PostgreSQL `SELECT name, tags FROM accounts WHERE name = ANY($1)` with 100 names\n\
         - [4] tagcast HTTP column: the rebuild time the server logs at start, and in brackets its spawn-to-listening time; \
         in-process column: `Store::open` in the benchmark's process\n\
         - [5] tagcast HTTP column: the server's VmRSS right after start / accounts; in-process column: growth of the benchmark's \
         VmRSS over `Store::open`; Redis: INFO used_memory; PostgreSQL: pg_total_relation_size (table + indexes, on disk)\n\
         - [6] tagcast: `tagcast-bench gen` (Store::bulk_load) when the data set was generated; Redis: pipelined SADD; \
         PostgreSQL: COPY + (primary key, indexes, VACUUM ANALYZE)\n",
        if deadlocks > 0 {
            format!(" ({deadlocks} requests aborted by a deadlock, not counted)")
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "- tagcast: server VmRSS {:.0} MiB after start, {:.0} MiB after the workloads; index bitmaps {:.0} MiB serialized; \
         busiest server threads during add_tag (threads of one name added up): {}\n",
        mib(t.rss_start_bytes),
        mib(t.rss_end_bytes),
        mib(t.bitmap_bytes),
        tagcast_side::describe_threads(&t.add_tag_threads),
    ));
    if let Some(r) = redis {
        out.push_str(&format!(
            "- Redis: used_memory {:.0} MiB, used_memory_rss {:.0} MiB\n",
            mib(r.used_memory),
            mib(r.used_memory_rss)
        ));
    }
    if let Some(p) = pg {
        out.push_str(&format!(
            "- PostgreSQL: table {:.0} MiB, indexes {:.0} MiB, total {:.0} MiB; tags GIN with {}\n",
            mib(p.table_bytes),
            mib(p.index_bytes),
            mib(p.total_bytes),
            if p.intarray {
                "intarray gin__int_ops"
            } else {
                "array_ops"
            }
        ));
    }
    let cpu = |x: &Throughput| match x.server_cores {
        Some(s) => format!("server {s:.2} + rest {:.2}", (x.machine_cores - s).max(0.0)),
        None => format!("all {:.2}", x.machine_cores),
    };
    out.push_str(&format!(
        "- cores busy during the throughput runs (of {cores}; the rest is the client, same machine): tagcast add_tag {} get_tag {}{}{}\n",
        cpu(&t.add_tag),
        cpu(&t.get_tag),
        redis.map_or(String::new(), |r| format!(
            "; Redis add_tag always {} everysec {} get_tag {}",
            cpu(&r.add_tag_always),
            cpu(&r.add_tag_everysec),
            cpu(&r.get_tag)
        )),
        pg.map_or(String::new(), |p| format!(
            "; PostgreSQL (server and client together) add_tag {} get_tag {}",
            cpu(&p.add_tag),
            cpu(&p.get_tag)
        )),
    ));
    out.push_str(&format!(
        "- request p50 under load, ms: tagcast add_tag {} get_tag {}{}{}\n",
        fmt_ms(t.add_tag.p50),
        fmt_ms(t.get_tag.p50),
        redis.map_or(String::new(), |r| format!(
            "; Redis add_tag always {} everysec {} get_tag {}",
            fmt_ms(r.add_tag_always.p50),
            fmt_ms(r.add_tag_everysec.p50),
            fmt_ms(r.get_tag.p50)
        )),
        pg.map_or(String::new(), |p| format!(
            "; PostgreSQL add_tag {} get_tag {}",
            fmt_ms(p.add_tag.p50),
            fmt_ms(p.get_tag.p50)
        )),
    ));
    out
}
