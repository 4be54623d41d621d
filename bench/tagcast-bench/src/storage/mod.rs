//! `store`: tagcast on its two stores next to the raw PostgreSQL baseline, in one run on one
//! machine (issue 8). `bench/store.sh` starts a throwaway PostgreSQL and runs this; see
//! bench/README.md.
//!
//! 1. Durable add_tag and get_tag over HTTP (`tagcast-loadgen`) against tagcast on a fresh
//!    embedded store, then on a fresh PostgreSQL database, each with the same accounts imported
//!    first; then the same requests straight to PostgreSQL (`pg_update`, the baseline). While
//!    they run: the CPU of tagcast, of the PostgreSQL cluster and of the machine, tagcast's
//!    group commits (`/metrics`), PostgreSQL's statements (`pg_stat_statements`) and what its
//!    busy backends wait for (`pg_stat_activity`).
//! 2. Start-up: the synthetic app of `gen` (M accounts) copied into PostgreSQL with
//!    `tagcast migrate`, then the store opened (index rebuilt) from PostgreSQL and from the
//!    embedded file, each in a process of its own (`tagcast-bench open`). Both must hold the same
//!    accounts and count every audience condition alike (the counts come from the in-memory
//!    index whichever store fed it).
//!
//! Any failed request, count that differs, or step that fails ends the run with an error
//! before a report is written.

pub mod open;
pub mod pg_update;
pub(crate) mod pg_watch;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tagcast_bench::stats::{cpu_secs, machine_cpu_secs, table};
use tagcast_bench::synth::{DEFAULT_SEED, Model};
use tokio_postgres::Client;

use crate::client::Api;
use crate::compare::baseline_pg::{self, Update, check_durable, connect};
use crate::compare::tagcast_side::{
    Binaries, busiest_threads, describe_threads, first_error, loadgen_command, loadgen_run,
    thread_cpu,
};
use crate::compare::workload::{self, Throughput};
use crate::compare::{fmt_int, fmt_ratio};
use crate::server::Server;
use pg_update::Workload;
use pg_watch::{StatementStats, Statements, WaitSampler, Waits};

/// The goals for tagcast on PostgreSQL.
const GOAL_UPDATES_PER_S: f64 = 50_000.0;
const GOAL_VS_RAW: f64 = 0.8;
const GOAL_STARTUP_S: f64 = 30.0;
const GOAL_STARTUP_ACCOUNTS: u64 = 10_000_000;

/// The databases the benchmark (re)creates on the server.
const DB_STORE: &str = "tagcast_bench_store";
const DB_RAW: &str = "tagcast_bench_raw";
const DB_REBUILD: &str = "tagcast_bench_rebuild";

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Accounts of the throughput runs, imported into each fresh store (the baseline's table
    /// holds the same); every request takes 100 consecutive ones.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Concurrent connections of every throughput run.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of each throughput run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Accounts of the start-up measurement: the synthetic app of `gen`.
    #[arg(long, default_value_t = 10_000_000)]
    pub rebuild_accounts: u64,
    /// Its data directory [default: target/bench-data/REBUILD_ACCOUNTS, generated when missing].
    #[arg(long)]
    pub rebuild_data: Option<PathBuf>,
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// The PostgreSQL server, as a URL without a database: postgres://postgres@127.0.0.1:25432.
    /// The benchmark drops and creates its databases there (tagcast_bench_store,
    /// tagcast_bench_raw, tagcast_bench_rebuild); it needs fsync and synchronous_commit on, and
    /// reads pg_stat_statements when the server preloads it.
    #[arg(long)]
    pub postgres: String,
    /// Where tagcast's data and logs go [default: target/bench-data/store-run].
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Microseconds of one synchronous 8 KiB write on this disk, for the report's header
    /// (bench/store.sh measures it with dd).
    #[arg(long)]
    pub fsync_probe_us: Option<f64>,
}

/// `server` (postgres://user@host:port[/anything]) with database `db`.
pub(crate) fn database_url(server: &str, db: &str) -> anyhow::Result<String> {
    let (scheme, rest) = server
        .split_once("://")
        .context("--postgres: a postgres:// URL")?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}/{db}"))
}

/// What the runs share.
struct Ctx<'a> {
    args: &'a StoreArgs,
    tagcast: PathBuf,
    loadgen: PathBuf,
    work: PathBuf,
    /// The server without a database, and a connection to its maintenance database.
    server: String,
    admin: &'a Client,
    statements: Option<Statements<'a>>,
    postmaster: Option<u32>,
}

/// CPU used during one run, in cores kept busy on average.
#[derive(Debug, Clone, Default)]
struct Cores {
    /// The tagcast server process.
    tagcast: Option<f64>,
    /// Every process of the PostgreSQL cluster.
    postgres: Option<f64>,
    machine: f64,
    /// tagcast's busiest threads (threads of one name added up).
    threads: Vec<(String, f64)>,
}

/// One throughput run and what was seen while it ran.
struct Measured {
    t: Throughput,
    cores: Cores,
    /// PostgreSQL statements of the database under test.
    statements: Option<StatementStats>,
    waits: Option<Waits>,
    /// tagcast's store commits (`tagcast_store_commits`).
    commits: Option<u64>,
}

/// add_tag then get_tag on one system.
struct System {
    add_tag: Measured,
    get_tag: Measured,
    /// What the add_tag statement was, for the report.
    detail: String,
}

/// What one system under test is, for `measure`.
struct Target<'a> {
    /// The tagcast server (its pid and URL), if it is tagcast.
    tagcast: Option<(u32, &'a str)>,
    /// The PostgreSQL database it writes to, if any.
    db: Option<&'a str>,
}

impl Ctx<'_> {
    /// Runs `run` and watches it: CPU, tagcast's commits, PostgreSQL's statements and waits.
    async fn measure<F>(&self, target: &Target<'_>, run: F) -> anyhow::Result<Measured>
    where
        F: Future<Output = anyhow::Result<Throughput>>,
    {
        if let (Some(stats), Some(_)) = (&self.statements, target.db) {
            stats.reset().await?;
        }
        let sampler = match target.db {
            Some(db) => {
                Some(WaitSampler::start(&database_url(&self.server, "postgres")?, db).await?)
            }
            None => None,
        };
        let commits_before = match target.tagcast {
            Some((_, url)) => store_commits(url).await,
            None => None,
        };
        let pid = target.tagcast.map(|(pid, _)| pid);
        let threads_before = pid.map(thread_cpu).unwrap_or_default();
        let tagcast_before = pid.map(|p| cpu_secs(Some(p)));
        let postgres_before = self.postmaster.map(pg_watch::cluster_cpu_secs);
        let machine_before = machine_cpu_secs().0;
        let started = Instant::now();

        let t = run.await?;

        let wall = started.elapsed();
        let secs = wall.as_secs_f64().max(1e-9);
        let cores = Cores {
            tagcast: tagcast_before.map(|b| (cpu_secs(pid) - b) / secs),
            postgres: postgres_before
                .zip(self.postmaster)
                .map(|(b, pm)| (pg_watch::cluster_cpu_secs(pm) - b) / secs),
            machine: (machine_cpu_secs().0 - machine_before) / secs,
            threads: pid
                .map(|p| busiest_threads(&threads_before, &thread_cpu(p), wall))
                .unwrap_or_default(),
        };
        let commits = match (target.tagcast, commits_before) {
            (Some((_, url)), Some(before)) => store_commits(url).await.map(|after| after - before),
            _ => None,
        };
        let waits = match sampler {
            Some(s) => Some(s.finish().await?),
            None => None,
        };
        let statements = match (&self.statements, target.db) {
            (Some(stats), Some(db)) => Some(stats.read(db).await?),
            _ => None,
        };
        Ok(Measured {
            t,
            cores,
            statements,
            waits,
            commits,
        })
    }

    /// tagcast on a fresh store (`store_url`: PostgreSQL database `db`, else embedded).
    async fn tagcast(&self, label: &str, db: Option<&str>) -> anyhow::Result<System> {
        let args = self.args;
        let run_dir = self.work.join(label);
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)?;
        }
        std::fs::create_dir_all(run_dir.join("data"))?;
        let store_url = db.map(|db| database_url(&self.server, db)).transpose()?;
        let server = Server::start_on(
            &self.tagcast,
            &run_dir.join("data"),
            store_url.as_deref(),
            &run_dir,
        )
        .await?;
        let pid = server.pid().context("the server has no pid")?;
        println!(
            "{label}: tagcast started in {:.2} s; importing {} accounts",
            server.startup.as_secs_f64(),
            args.accounts
        );
        let api = Api::new(&server.url)?;
        let names: Vec<String> = (0..args.accounts).map(Model::account_name).collect();
        api.import(&names).await?;

        let target = Target {
            tagcast: Some((pid, &server.url)),
            db,
        };
        let load = |workload: &str| {
            loadgen_command(
                &self.loadgen,
                &server.url,
                args.accounts,
                args.concurrency,
                args.seconds,
                workload,
            )
        };
        let add_tag = self.measure(&target, loadgen_run(load("add-tag"))).await?;
        log_run(label, "add_tag", &add_tag);
        if let Some(url) = &store_url {
            println!("{label}: add_tag: {}", hot_updates(url).await?);
        }
        let get_tag = self.measure(&target, loadgen_run(load("get-tag"))).await?;
        log_run(label, "get_tag", &get_tag);

        // The index still holds every imported account, each once.
        let (reply, _) = api.call("tagcast/audience_count", &json!({})).await?;
        let all = reply["Count"].as_u64().context("no Count")?;
        if all != args.accounts {
            bail!(
                "{label}: audience_count of all accounts is {all} after the runs, {} were imported",
                args.accounts
            );
        }
        server.stop().await;
        std::fs::remove_dir_all(&run_dir)?;
        Ok(System {
            add_tag,
            get_tag,
            detail: String::new(),
        })
    }

    /// The raw baseline on its own database: first each fillfactor of `SCREEN_FILLFACTORS`
    /// for a short add_tag run on a fresh table, then the fastest in full on another.
    async fn raw(&self) -> anyhow::Result<System> {
        let args = self.args;
        let url = database_url(&self.server, DB_RAW)?;
        let client = connect(&url).await?;
        let screen_secs = (args.seconds / 5).max(1);
        let mut screened = Vec::new();
        for fillfactor in SCREEN_FILLFACTORS {
            pg_update::prepare(&client, args.accounts, false, fillfactor).await?;
            let t = pg_update::run_workload(
                &url,
                args.accounts,
                args.concurrency,
                screen_secs,
                Workload::AddTag,
                false,
            )
            .await?;
            println!(
                "raw PostgreSQL: screening fillfactor {fillfactor}: {:.0} updates/s for {screen_secs} s ({})",
                t.updates_per_s(),
                hot_updates(&url).await?
            );
            screened.push((fillfactor, t.updates_per_s()));
        }
        let fillfactor = screened
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(pg_update::DEFAULT_FILLFACTOR, |s| s.0);
        let started = Instant::now();
        pg_update::prepare(&client, args.accounts, false, fillfactor).await?;
        println!(
            "raw PostgreSQL: {} accounts inserted in {:.1} s (fillfactor {fillfactor})",
            args.accounts,
            started.elapsed().as_secs_f64()
        );
        let target = Target {
            tagcast: None,
            db: Some(DB_RAW),
        };
        let run = |workload| {
            pg_update::run_workload(
                &url,
                args.accounts,
                args.concurrency,
                args.seconds,
                workload,
                false,
            )
        };
        let add_tag = self.measure(&target, run(Workload::AddTag)).await?;
        log_run("raw PostgreSQL", "add_tag", &add_tag);
        println!("raw PostgreSQL: add_tag: {}", hot_updates(&url).await?);
        let get_tag = self.measure(&target, run(Workload::GetTag)).await?;
        log_run("raw PostgreSQL", "get_tag", &get_tag);
        Ok(System {
            add_tag,
            get_tag,
            detail: format!(
                "`{}`; table fillfactor {fillfactor}, the fastest screened in this run ({} s of add_tag each on a fresh table: {})",
                baseline_pg::add_tag_sql(Update::Replace),
                screen_secs,
                screened
                    .iter()
                    .map(|(f, u)| format!("{f}: {}/s", fmt_int(*u)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

/// The raw baseline's table fillfactors screened: the default (100) and the room for HOT
/// updates an expert leaves on a table whose rows are all updated in place.
const SCREEN_FILLFACTORS: [u8; 4] = [100, 50, 20, 10];

/// "table: N updates (H% HOT), I inserts, D deletes, P pages" for each table of the database
/// at `url` that was written (PostgreSQL's counters may lag by up to a second).
async fn hot_updates(url: &str) -> anyhow::Result<String> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT relname::text, n_tup_upd, n_tup_hot_upd, n_tup_ins, n_tup_del, \
             pg_relation_size(relid) / 8192 FROM pg_stat_user_tables \
             WHERE n_tup_upd + n_tup_ins + n_tup_del > 0 ORDER BY n_tup_upd DESC",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (upd, hot): (i64, i64) = (r.get(1), r.get(2));
            format!(
                "{}: {upd} updates ({:.0}% HOT), {} inserts, {} deletes, {} pages",
                r.get::<_, String>(0),
                hot as f64 * 100.0 / upd.max(1) as f64,
                r.get::<_, i64>(3),
                r.get::<_, i64>(4),
                r.get::<_, i64>(5)
            )
        })
        .collect::<Vec<_>>()
        .join("; "))
}

/// `tagcast_store_commits` from the server's `/metrics`.
async fn store_commits(url: &str) -> Option<u64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("tagcast_store_commits "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn log_run(label: &str, what: &str, m: &Measured) {
    let t = &m.t;
    println!(
        "{label}: {what}: {:.0} requests/s, {:.0} accounts/s{}, p50 {:.2} ms, p99 {:.2} ms{}; cores: {}",
        t.requests_per_s,
        t.accounts_per_s(),
        if what == "add_tag" {
            format!(", {:.0} updates/s", t.updates_per_s())
        } else {
            String::new()
        },
        t.p50.as_secs_f64() * 1e3,
        t.p99.as_secs_f64() * 1e3,
        if t.retries > 0 {
            format!(", {} aborted by deadlocks", t.retries)
        } else {
            String::new()
        },
        describe_cores(&m.cores)
    );
    if !m.cores.threads.is_empty() {
        println!(
            "{label}: {what}: busiest tagcast threads: {}",
            describe_threads(&m.cores.threads)
        );
    }
    if let Some(c) = m.commits.filter(|c| *c > 0) {
        println!(
            "{label}: {what}: {c} store commits, {:.1} requests per commit",
            t.requests as f64 / c.max(1) as f64
        );
    }
    if let Some(s) = &m.statements {
        let (per, unit) = match m.commits.filter(|c| *c > 0) {
            Some(c) => (c, "transaction"),
            None => (t.requests, "request"),
        };
        println!(
            "{label}: {what}: PostgreSQL ran {:.2} statements per request ({} in all, {:.1} ms of statement time per {unit}); per {unit}: {}",
            s.calls() as f64 / t.requests.max(1) as f64,
            s.calls(),
            s.total_ms() / per.max(1) as f64,
            s.describe(per, 12)
        );
    }
    if let Some(w) = &m.waits {
        println!("{label}: {what}: PostgreSQL {}", w.describe(6));
    }
}

fn describe_cores(c: &Cores) -> String {
    let part = |name: &str, v: Option<f64>| v.map(|v| format!("{name} {v:.2}, "));
    format!(
        "{}{}machine {:.2}",
        part("tagcast", c.tagcast).unwrap_or_default(),
        part("PostgreSQL", c.postgres).unwrap_or_default(),
        c.machine
    )
}

/// One `key=value` line as `open` prints it.
#[derive(Debug)]
struct Opened {
    seconds: f64,
    accounts: u64,
    counts: String,
    peak_rss_mib: f64,
}

/// `tagcast-bench open ARGS` in a process of its own.
async fn open_in_child(args: &[&str]) -> anyhow::Result<Opened> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(&exe)
        .arg("open")
        .args(args)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "tagcast-bench open {} failed ({}): {stdout}{}",
            args.join(" "),
            out.status,
            first_error(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("open "))
        .with_context(|| format!("no report from tagcast-bench open: {stdout}"))?;
    println!("{line}");
    let fields: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .with_context(|| format!("open reported no {k}: {line}"))
    };
    Ok(Opened {
        seconds: get("seconds")?.parse()?,
        accounts: get("accounts")?.parse()?,
        counts: get("counts")?.to_string(),
        peak_rss_mib: get("peak_rss_mib")?.parse()?,
    })
}

/// Start-up at M accounts.
struct Startup {
    accounts: u64,
    data: PathBuf,
    migrate: Duration,
    postgres: Opened,
    embedded: Opened,
}

/// `tagcast migrate --from DATA --to URL --quiet` (into an empty database; the command checks
/// the counts on both sides): how long it took, or why it failed.
pub(crate) async fn migrate(
    tagcast: &std::path::Path,
    data: &std::path::Path,
    url: &str,
) -> anyhow::Result<Duration> {
    println!("tagcast migrate --from {} --to {url}", data.display());
    let started = Instant::now();
    let out = tokio::process::Command::new(tagcast)
        .arg("migrate")
        .arg("--from")
        .arg(data)
        .args(["--to", url, "--quiet"])
        .output()
        .await
        .context("running tagcast migrate")?;
    let took = started.elapsed();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("tagcast migrate failed ({})", out.status);
    }
    Ok(took)
}

async fn startup(ctx: &Ctx<'_>) -> anyhow::Result<Startup> {
    let args = ctx.args;
    let m = args.rebuild_accounts;
    let data = args
        .rebuild_data
        .clone()
        .unwrap_or_else(|| crate::default_data_dir(m));
    crate::gen_data::generate(&data, m, args.seed, 50_000, false).await?;
    let url = database_url(&ctx.server, DB_REBUILD)?;
    let migrate = migrate(&ctx.tagcast, &data, &url).await?;
    println!(
        "start-up: migrated {m} accounts in {:.1} s",
        migrate.as_secs_f64()
    );
    let postgres = open_in_child(&["--store-url", &url]).await?;
    let dir = data.to_string_lossy();
    let embedded = open_in_child(&["--data", &dir]).await?;
    if postgres.accounts != embedded.accounts || embedded.accounts != m {
        bail!(
            "start-up: PostgreSQL holds {} accounts, the embedded store {}, the data set {m}",
            postgres.accounts,
            embedded.accounts
        );
    }
    if postgres.counts != embedded.counts {
        bail!(
            "start-up: audience counts differ: PostgreSQL {}, embedded {}",
            postgres.counts,
            embedded.counts
        );
    }
    Ok(Startup {
        accounts: m,
        data,
        migrate,
        postgres,
        embedded,
    })
}

pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let begun = Instant::now();
    let (tagcast, loadgen) = args.binaries.resolve()?;
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-data/store-run"));
    std::fs::create_dir_all(&work)?;

    let admin = connect(&database_url(&args.postgres, "postgres")?).await?;
    check_durable(&admin).await?;
    let version = baseline_pg::show(&admin, "server_version").await?;
    for db in [DB_STORE, DB_RAW, DB_REBUILD] {
        // One statement per call: neither may run inside a transaction block.
        for sql in [
            format!("DROP DATABASE IF EXISTS {db}"),
            format!("CREATE DATABASE {db}"),
        ] {
            admin.batch_execute(&sql).await.context(sql)?;
        }
    }
    let statements = match Statements::enable(&admin).await {
        Ok(s) => Some(s),
        Err(why) => {
            println!("pg_stat_statements unavailable ({why}): no statement counts");
            None
        }
    };
    let postmaster = pg_watch::postmaster_pid(&admin).await;
    if postmaster.is_none() {
        println!("PostgreSQL's processes are not on this machine: no PostgreSQL CPU figures");
    }
    println!(
        "PostgreSQL {version}; throughput: {} accounts, {} connections, {} s per run",
        args.accounts, args.concurrency, args.seconds
    );
    let ctx = Ctx {
        args,
        tagcast,
        loadgen,
        work: work.clone(),
        server: args.postgres.clone(),
        admin: &admin,
        statements,
        postmaster,
    };

    println!("\n== tagcast, embedded store");
    let embedded = ctx.tagcast("tagcast embedded", None).await?;
    println!("\n== tagcast, PostgreSQL store");
    let postgres = ctx.tagcast("tagcast PostgreSQL", Some(DB_STORE)).await?;
    println!("\n== raw PostgreSQL");
    let raw = ctx.raw().await?;
    println!("\n== start-up at {} accounts", args.rebuild_accounts);
    let start = startup(&ctx).await?;
    let _ = std::fs::remove_dir(&work);
    for db in [DB_STORE, DB_RAW, DB_REBUILD] {
        ctx.admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await?;
    }

    let report = report(args, &version, &embedded, &postgres, &raw, &start);
    println!("\n{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
        println!("report written to {}", out.display());
    }
    println!("store: {:.0} s in all", begun.elapsed().as_secs_f64());
    Ok(())
}

pub(crate) fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// How long a throughput run took: its requests over their rate.
fn elapsed_secs(t: &Throughput) -> f64 {
    t.requests as f64 / t.requests_per_s.max(1e-9)
}

pub(crate) fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn report(
    args: &StoreArgs,
    version: &str,
    embedded: &System,
    postgres: &System,
    raw: &System,
    start: &Startup,
) -> String {
    let dash = || "-".to_string();
    let mut rows = vec![vec![
        "workload".to_string(),
        "tagcast embedded".into(),
        "tagcast PostgreSQL".into(),
        "raw PostgreSQL".into(),
        "tagcast-PG / raw PG".into(),
        "tagcast-PG / embedded".into(),
        "goal (issue 8)".into(),
    ]];
    let (e, p, r) = (&embedded.add_tag, &postgres.add_tag, &raw.add_tag);
    let pg_updates = p.t.updates_per_s();
    let vs_raw = pg_updates / r.t.updates_per_s().max(1e-9);
    rows.push(vec![
        "durable add_tag, updates/s [1]".into(),
        fmt_int(e.t.updates_per_s()),
        fmt_int(pg_updates),
        fmt_int(r.t.updates_per_s()),
        fmt_ratio(pg_updates, r.t.updates_per_s()),
        fmt_ratio(pg_updates, e.t.updates_per_s()),
        format!(
            "≥ 50,000/s: {}; ≥ 0.8x raw: {}",
            met(pg_updates >= GOAL_UPDATES_PER_S),
            met(vs_raw >= GOAL_VS_RAW)
        ),
    ]);
    let latency = |m: &Measured| format!("{} / {}", ms(m.t.p50), ms(m.t.p99));
    rows.push(vec![
        "add_tag p50 / p99, ms".into(),
        latency(e),
        latency(p),
        latency(r),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let (eg, pg, rg) = (&embedded.get_tag, &postgres.get_tag, &raw.get_tag);
    rows.push(vec![
        "get_tag, accounts read/s [2]".into(),
        fmt_int(eg.t.accounts_per_s()),
        fmt_int(pg.t.accounts_per_s()),
        fmt_int(rg.t.accounts_per_s()),
        fmt_ratio(pg.t.accounts_per_s(), rg.t.accounts_per_s()),
        fmt_ratio(pg.t.accounts_per_s(), eg.t.accounts_per_s()),
        String::new(),
    ]);
    rows.push(vec![
        "get_tag p50 / p99, ms".into(),
        latency(eg),
        latency(pg),
        latency(rg),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let cores = |m: &Measured| {
        let c = &m.cores;
        format!(
            "{} + {} of {:.2}",
            c.tagcast.map_or_else(dash, |v| format!("{v:.2}")),
            c.postgres.map_or_else(dash, |v| format!("{v:.2}")),
            c.machine
        )
    };
    rows.push(vec![
        "add_tag cores: tagcast + PostgreSQL of machine [3]".into(),
        cores(e),
        cores(p),
        cores(r),
        String::new(),
        String::new(),
        String::new(),
    ]);
    rows.push(vec![
        "get_tag cores: tagcast + PostgreSQL of machine [3]".into(),
        cores(eg),
        cores(pg),
        cores(rg),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let per_commit = |m: &Measured| {
        m.commits.map_or_else(dash, |c| {
            format!(
                "{:.1}; {:.1} ms",
                m.t.requests as f64 / c.max(1) as f64,
                elapsed_secs(&m.t) * 1e3 / c.max(1) as f64
            )
        })
    };
    rows.push(vec![
        "add_tag requests per commit; wall time per commit [4]".into(),
        per_commit(e),
        per_commit(p),
        "1".into(),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let statements = |m: &Measured| {
        m.statements.as_ref().map_or_else(dash, |s| {
            let per_request = format!("{:.2}", s.calls() as f64 / m.t.requests.max(1) as f64);
            match m.commits.filter(|c| *c > 0) {
                Some(c) => format!(
                    "{per_request} ({:.1} per commit)",
                    s.calls() as f64 / c as f64
                ),
                None => per_request,
            }
        })
    };
    rows.push(vec![
        "PostgreSQL statements per add_tag request [5]".into(),
        dash(),
        statements(p),
        statements(r),
        String::new(),
        String::new(),
        String::new(),
    ]);
    rows.push(vec![
        "PostgreSQL statements per get_tag request [5]".into(),
        dash(),
        statements(pg),
        statements(rg),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let at_goal = start.accounts >= GOAL_STARTUP_ACCOUNTS;
    rows.push(vec![
        format!(
            "start-up at {} accounts: store open (index rebuild), s [6]",
            fmt_int(start.accounts as f64)
        ),
        format!("{:.2}", start.embedded.seconds),
        format!("{:.2}", start.postgres.seconds),
        dash(),
        dash(),
        fmt_ratio(start.postgres.seconds, start.embedded.seconds),
        if at_goal {
            format!(
                "< 30 s at 10M: {}",
                met(start.postgres.seconds < GOAL_STARTUP_S)
            )
        } else {
            format!(
                "< 30 s at 10M (this run: {})",
                fmt_int(start.accounts as f64)
            )
        },
    ]);
    rows.push(vec![
        "start-up: peak memory of the opening process, MiB".into(),
        format!("{:.0}", start.embedded.peak_rss_mib),
        format!("{:.0}", start.postgres.peak_rss_mib),
        dash(),
        dash(),
        fmt_ratio(start.postgres.peak_rss_mib, start.embedded.peak_rss_mib),
        String::new(),
    ]);
    rows.push(vec![
        format!(
            "tagcast migrate of {} accounts to PostgreSQL, s [7]",
            fmt_int(start.accounts as f64)
        ),
        dash(),
        format!("{:.1}", start.migrate.as_secs_f64()),
        dash(),
        dash(),
        dash(),
        String::new(),
    ]);

    let cores_n = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = String::new();
    out.push_str(&format!(
        "{}: tagcast on its embedded store and on PostgreSQL {version}, and raw PostgreSQL, at {} accounts (start-up at {}), {cores_n} cores; \
         one system at a time on the same machine, the clients included; PostgreSQL with fsync and synchronous_commit on{}.\n\
         Throughput: {} connections for {} s per run, on a fresh store with the accounts imported first. \
         Ratios are quotients of the row's values (of rates: higher is better for tagcast on PostgreSQL; of times and memory: higher is worse).\n\n",
        tagcast_bench::stamp::line("tagcast-bench store"),
        fmt_int(args.accounts as f64),
        fmt_int(start.accounts as f64),
        args.fsync_probe_us
            .map_or(String::new(), |us| format!("; a synchronous 8 KiB write (dd oflag=dsync) takes {us:.0} us on this disk")),
        args.concurrency,
        args.seconds,
    ));
    out.push_str(&table(&rows));
    out.push('\n');
    out.push_str(&format!(
        "- audience counts are the in-memory index's whichever store feeds it: opened from PostgreSQL and from the embedded file at {} accounts, \
         both counted the same for every condition of `bench/run.sh` ({}: {}), and the same {} accounts\n",
        fmt_int(start.accounts as f64),
        workload::conditions()
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join("; "),
        start.postgres.counts,
        fmt_int(start.postgres.accounts as f64),
    ));
    out.push_str(&format!(
        "- [1] account-tag updates acknowledged per second, 100 accounts x 2 tags per request: tagcast `timpush/add_tag` with `Replace: 1` \
         (tagcast-loadgen --synth --tags 1000: 2 random tags of tag1..tag1000 for each of 100 consecutive accounts from a random start), \
         answered after its commit is durable (embedded: the group commit fsynced; PostgreSQL: COMMIT with synchronous_commit on); \
         raw PostgreSQL: the same requests as one prepared statement each, autocommit, on a table `accounts (name text PRIMARY KEY, tags int[])` \
         (tag5 is 5, no other index): {}{}\n",
        raw.detail,
        if r.t.retries > 0 {
            format!(" ({} requests aborted by a deadlock, not counted)", r.t.retries)
        } else {
            String::new()
        }
    ));
    out.push_str(
        "- [2] get_tag of 100 consecutive accounts from a random start per request: tagcast `timpush/get_tag` (loadgen); \
         raw PostgreSQL `SELECT name, tags FROM accounts WHERE name = ANY($1)` with the 100 names, tags turned back into names\n",
    );
    let threads = |m: &Measured| describe_threads(&m.cores.threads);
    out.push_str(&format!(
        "- [3] cores kept busy on average: the tagcast server process, every process of the PostgreSQL cluster, and the whole machine (the rest is the client: \
         loadgen, or tagcast-bench for raw PostgreSQL). Busiest tagcast threads during add_tag: embedded {}; PostgreSQL {}\n",
        threads(e),
        threads(p)
    ));
    out.push_str(
        "- [4] requests / `tagcast_store_commits` (from `/metrics`) during the add_tag run: how many requests share a transaction; \
         and the run's time / its commits: tagcast's writer commits one transaction at a time, so this is how long one takes, \
         preparation, statements and the durable commit included; the raw baseline commits every request on its own\n",
    );
    // tagcast's transactions carry many requests: its statements are per transaction.
    let per_unit = |m: &Measured| {
        m.statements.as_ref().map_or_else(
            || "(pg_stat_statements unavailable)".to_string(),
            |s| {
                let (per, unit) = match m.commits.filter(|c| *c > 0) {
                    Some(c) => (c, "transaction"),
                    None => (m.t.requests, "request"),
                };
                format!(
                    "{:.2} ms of statement time per {unit}: {}",
                    s.total_ms() / per.max(1) as f64,
                    s.describe(per, 10)
                )
            },
        )
    };
    out.push_str(&format!(
        "- [5] `pg_stat_statements` calls in the database under test during the run (BEGIN and COMMIT included) / requests completed. \
         By statement, most time first (calls per transaction or request, mean time, rows): tagcast on PostgreSQL, add_tag: {}. Raw: {}\n",
        per_unit(p),
        per_unit(r)
    ));
    let waits = |m: &Measured| m.waits.as_ref().map_or_else(dash, |w| w.describe(5));
    out.push_str(&format!(
        "- what PostgreSQL's backends of the database under test were doing during add_tag (`pg_stat_activity` every 20 ms, idle connections left out): \
         tagcast {}; raw {}\n",
        waits(p),
        waits(r)
    ));
    out.push_str(&format!(
        "- [6] `Store::open_at` in a process of its own (`tagcast-bench open`): connect, check the schema, rebuild the audience index from the records; \
         PostgreSQL right after the migration wrote it, the embedded file right after the migration read it (both warm in memory)\n\
         - [7] `tagcast migrate --from {} --to postgres://.../{DB_REBUILD} --quiet` into a new empty database, verification of the counts included\n",
        start.data.display()
    ));
    out
}
