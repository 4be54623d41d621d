//! `cluster`: three tagcast nodes on one PostgreSQL database against one node on the same
//! database, in one run on one machine (issue 9). `bench/cluster.sh` starts a throwaway
//! PostgreSQL and runs this; see bench/README.md.
//!
//! 1. One node alone (`node1`): durable add_tag through it (`tagcast-loadgen`), then one push
//!    at a time to S WebSocket sessions all on it.
//! 2. Two more nodes on the same database (`node2`, `node3`): the same add_tag load spread over
//!    the three; the replication lag (a tag added on node1 under an add_tag load, counted on
//!    node2 and node3 from their in-memory indexes); the same pushes made on node1 to the same
//!    S sessions spread over the three nodes. During the pushes: the bytes every node exchanged
//!    with PostgreSQL, the records a push makes the other nodes read, PostgreSQL's statements.
//! 3. A node joining at M accounts: the synthetic app of `gen` migrated into a database of its
//!    own, a first node started on it, then a second started while the first takes add_tag
//!    writes: spawn to listening (index rebuild) and to caught up with the first.
//!
//! A failed request, a session that misses a push or gets one twice, or a count that differs
//! between the nodes (or from the tables) ends the run with an error before a report is
//! written.

mod probe;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tagcast_bench::stats::{Samples, cpu_secs, machine_cpu_secs, rss_mib, table};
use tagcast_bench::synth::{DEFAULT_SEED, Model, SDKAPPID};
use tokio_postgres::Client;

use crate::client::Api;
use crate::compare::baseline_pg::{self, check_durable, connect};
use crate::compare::tagcast_side::{Binaries, loadgen_command, loadgen_run};
use crate::compare::workload::{self, Throughput};
use crate::compare::{fmt_int, fmt_ratio};
use crate::fanout::{self, FanoutArgs, Measured, Tally};
use crate::server::{Server, logged_rebuild};
use crate::storage::pg_watch::{self, StatementStats, Statements};
use crate::storage::{database_url, met, migrate, ms};

/// The goal for the replication lag.
const GOAL_LAG_P99: Duration = Duration::from_millis(100);

/// The databases the benchmark (re)creates on the server.
const DB: &str = "tagcast_bench_cluster";
const DB_JOIN: &str = "tagcast_bench_cluster_join";

/// After the sessions connect (each login is a commit), and after the last push's deliveries
/// are recorded: time for the nodes to settle.
const SETTLE: Duration = Duration::from_millis(500);
/// Longest wait for the nodes to record the deliveries of the last push.
const RECORDED_WITHIN: Duration = Duration::from_secs(60);
/// The window over which the nodes' traffic with PostgreSQL at rest is counted.
const IDLE: Duration = Duration::from_secs(2);

/// Tags whose counts every node must agree on with the tables after the writes.
const CHECKED_TAGS: [u16; 5] = [1, 2, 5, 100, 1000];

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The PostgreSQL server, as a URL without a database: postgres://postgres@127.0.0.1:25432.
    /// The benchmark drops and creates its databases there (tagcast_bench_cluster,
    /// tagcast_bench_cluster_join); it needs fsync and synchronous_commit on, and reads
    /// pg_stat_statements when the server preloads it.
    #[arg(long)]
    pub postgres: String,
    /// Accounts the add_tag runs write to (`u00000000`...), imported first.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Client connections of each add_tag run, in all: on one node, or split evenly over three;
    /// also the connections of the add_tag load during the lag probes.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of each add_tag run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Replication-lag probes (each counted on both other nodes).
    #[arg(long, default_value_t = 500)]
    pub probes: usize,
    /// Probes in flight at once, each worker on a tag of its own.
    #[arg(long, default_value_t = 4)]
    pub probe_workers: usize,
    /// WebSocket sessions of the fan-out (capped by the open-file limit).
    #[arg(long, default_value_t = 18_000)]
    pub sessions: usize,
    /// Pushes of each fan-out, one at a time, each waited for at every session.
    #[arg(long, default_value_t = 10)]
    pub pushes: usize,
    /// Accounts of the join: the synthetic app of `gen`.
    #[arg(long, default_value_t = 1_000_000)]
    pub join_accounts: u64,
    /// Its data directory [default: target/bench-data/JOIN_ACCOUNTS, generated when missing].
    #[arg(long)]
    pub join_data: Option<PathBuf>,
    /// Connections of the add_tag load on the first node while the second joins.
    #[arg(long, default_value_t = 4)]
    pub join_load: usize,
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Where the nodes' data directories and logs go [default: target/bench-data/cluster-run].
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Microseconds of one synchronous 8 KiB write on this disk, for the report's header.
    #[arg(long)]
    pub fsync_probe_us: Option<f64>,
}

/// One running node.
pub struct Node {
    pub id: String,
    pub api: Api,
    server: Server,
    addr: SocketAddr,
    pid: u32,
    run_dir: PathBuf,
}

/// How a node started: spawn to listening, the index rebuild it logged, its memory.
#[derive(Debug, Clone, Copy)]
struct Started {
    startup: Duration,
    rebuild: Option<Duration>,
    rss_mib: f64,
}

impl Node {
    fn started(&self) -> Started {
        Started {
            startup: self.server.startup,
            rebuild: logged_rebuild(&self.run_dir),
            rss_mib: rss_mib(Some(self.pid)),
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Cores kept busy on average during a run.
#[derive(Debug, Clone, Copy, Default)]
struct Cores {
    /// The nodes under test, together.
    nodes: f64,
    /// Every process of the PostgreSQL cluster.
    postgres: Option<f64>,
    machine: f64,
}

/// CPU seconds so far of `pids`, of the PostgreSQL cluster and of the machine.
struct CpuMeter {
    pids: Vec<u32>,
    postmaster: Option<u32>,
    nodes: f64,
    postgres: Option<f64>,
    machine: f64,
    started: Instant,
}

impl CpuMeter {
    fn start(pids: Vec<u32>, postmaster: Option<u32>) -> Self {
        Self {
            nodes: pids.iter().map(|p| cpu_secs(Some(*p))).sum(),
            postgres: postmaster.map(pg_watch::cluster_cpu_secs),
            machine: machine_cpu_secs().0,
            pids,
            postmaster,
            started: Instant::now(),
        }
    }

    /// The nodes' CPU seconds since `start`, and the cores each part kept busy.
    fn finish(self) -> (f64, Cores) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let nodes = self.pids.iter().map(|p| cpu_secs(Some(*p))).sum::<f64>() - self.nodes;
        let cores = Cores {
            nodes: nodes / secs,
            postgres: self
                .postgres
                .zip(self.postmaster)
                .map(|(b, pm)| (pg_watch::cluster_cpu_secs(pm) - b) / secs),
            machine: (machine_cpu_secs().0 - self.machine) / secs,
        };
        (nodes, cores)
    }
}

/// A durable add_tag run through one node or several at once.
struct AddTag {
    /// The nodes' runs added up: requests and rates summed, the slowest node's p50 and p99.
    t: Throughput,
    cores: Cores,
}

/// One push at a time to the sessions, through one node or spread over several.
struct FanOut {
    nodes: usize,
    connect: Duration,
    m: Measured,
    /// Per push, from its answer to the last session receiving it.
    after_ack: Samples,
    /// CPU seconds of all the nodes during the pushes (and their deliveries' writes).
    cpu: f64,
    /// The nodes' traffic with PostgreSQL during the pushes, and at rest before them.
    traffic: wire::Traffic,
    idle: wire::Traffic,
    /// The node the pushes were made on, and the others.
    origin: u32,
    others: Vec<u32>,
    origin_id: String,
    records: wire::Records,
    statements: Option<StatementStats>,
    frame_bytes: usize,
}

impl FanOut {
    fn pushes(&self) -> f64 {
        self.m.single.len().max(1) as f64
    }

    /// Bytes of `pids` with PostgreSQL per push, sent and received, less what the same
    /// processes exchange at rest over as long.
    fn net(&self, pids: &[u32], part: impl Fn((u64, u64)) -> u64) -> f64 {
        let busy = part(self.traffic.of(pids)) as f64;
        let idle_rate = part(self.idle.of(pids)) as f64 / self.idle.secs.max(1e-9);
        ((busy - idle_rate * self.traffic.secs) / self.pushes()).max(0.0)
    }

    fn all_pids(&self) -> Vec<u32> {
        std::iter::once(self.origin)
            .chain(self.others.iter().copied())
            .collect()
    }

    fn total_bytes(&self) -> f64 {
        self.net(&self.all_pids(), |(s, r)| s + r)
    }

    /// Deliveries per second of one push: sessions / (answer -> last frame), at the p50.
    fn rate(&self, sessions: usize) -> f64 {
        sessions as f64 / self.after_ack.p50().as_secs_f64().max(1e-9)
    }

    /// What each other node reads of one push from the records: the change-log entries, one
    /// notification per entry, the task and its audience.
    fn records_per_node(&self) -> f64 {
        let r = &self.records;
        (r.entry_bytes
            + r.entries * wire::notification_bytes(&self.origin_id)
            + r.meta_bytes
            + r.audience_bytes) as f64
            / self.pushes()
    }
}

/// A node joining at M accounts.
struct Join {
    accounts: u64,
    migrate: Duration,
    /// The first node, on the database alone and at rest.
    first: Started,
    /// The second node, started while the first takes add_tag writes.
    joining: Started,
    /// From the joining node listening to it counting a write acknowledged on the first after
    /// that.
    catch_up: Duration,
    load: probe::LoadDone,
    data: PathBuf,
}

/// What the phases share.
struct Ctx<'a> {
    args: &'a ClusterArgs,
    tagcast: PathBuf,
    loadgen: PathBuf,
    work: PathBuf,
    pg_port: u16,
    /// A connection to the cluster's database.
    db: Client,
    statements: Option<Statements<'a>>,
    postmaster: Option<u32>,
    /// The sessions of the fan-out, as many as the open-file limit allows.
    sessions: usize,
    /// Part of the clients' loopback source addresses and of the pushes' MsgRandom.
    salt: u8,
}

/// The port of a postgres://user@host:port URL (5432 when it names none).
fn pg_port(url: &str) -> anyhow::Result<u16> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    match host.rsplit_once(':') {
        Some((_, port)) => port
            .parse()
            .with_context(|| format!("--postgres: no port in {url}")),
        None => Ok(5432),
    }
}

impl Ctx<'_> {
    async fn node(&self, url: &str, id: &str) -> anyhow::Result<Node> {
        let run_dir = self.work.join(id);
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)?;
        }
        std::fs::create_dir_all(run_dir.join("data"))?;
        let server = Server::start_node(
            &self.tagcast,
            &run_dir.join("data"),
            Some(url),
            Some(id),
            &run_dir,
        )
        .await?;
        let node = Node {
            id: id.to_string(),
            api: Api::new(&server.url)?,
            addr: fanout::socket_addr(&server.url)?,
            pid: server.pid().context("the node has no pid")?,
            server,
            run_dir,
        };
        let started = node.started();
        println!(
            "{id}: listening on {} after {:.2} s (index rebuild logged: {}), VmRSS {:.0} MiB",
            node.server.url,
            started.startup.as_secs_f64(),
            started
                .rebuild
                .map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            started.rss_mib
        );
        Ok(node)
    }

    /// `tagcast-loadgen` add_tag runs through `nodes` at once, `--concurrency` connections in
    /// all, split evenly; the CPU of every node `running` is counted.
    async fn add_tag(&self, nodes: &[&Node], running: &[&Node]) -> anyhow::Result<AddTag> {
        let args = self.args;
        let n = nodes.len();
        let meter = CpuMeter::start(running.iter().map(|n| n.pid).collect(), self.postmaster);
        let runs = nodes.iter().enumerate().map(|(i, node)| {
            let connections = (args.concurrency / n + usize::from(i < args.concurrency % n)).max(1);
            loadgen_run(loadgen_command(
                &self.loadgen,
                &node.server.url,
                args.accounts,
                connections,
                args.seconds,
                "add-tag",
            ))
        });
        let runs = futures_util::future::try_join_all(runs).await?;
        let (_, cores) = meter.finish();
        let t = Throughput {
            requests: runs.iter().map(|t| t.requests).sum(),
            requests_per_s: runs.iter().map(|t| t.requests_per_s).sum(),
            p50: runs.iter().map(|t| t.p50).max().unwrap_or_default(),
            p99: runs.iter().map(|t| t.p99).max().unwrap_or_default(),
            ..Throughput::default()
        };
        println!(
            "add_tag through {n} of {} node(s): {:.0} updates/s ({}); cores: nodes {:.2}, PostgreSQL {}, machine {:.2}",
            running.len(),
            t.updates_per_s(),
            nodes
                .iter()
                .zip(&runs)
                .map(|(node, t)| format!("{} {:.0}/s", node.id, t.updates_per_s()))
                .collect::<Vec<_>>()
                .join(", "),
            cores.nodes,
            cores.postgres.map_or("-".into(), |c| format!("{c:.2}")),
            cores.machine
        );
        Ok(AddTag { t, cores })
    }

    /// Every node counts all accounts, the tags of `CHECKED_TAGS` and `tags` as the tables
    /// hold them.
    async fn agree_with_tables(&self, nodes: &[&Node], tags: &[String]) -> anyhow::Result<()> {
        let app = SDKAPPID as i64;
        let accounts: i64 = self
            .db
            .query_one("SELECT count(*) FROM accounts WHERE app = $1", &[&app])
            .await?
            .get(0);
        probe::agree(nodes, &json!({}), Some(accounts as u64)).await?;
        let names = CHECKED_TAGS
            .iter()
            .map(|t| workload::tag_name(*t))
            .chain(tags.iter().cloned());
        for tag in names {
            let stored = self
                .db
                .query_opt(
                    "SELECT accounts FROM tags WHERE app = $1 AND name = $2",
                    &[&app, &tag],
                )
                .await?
                .map_or(0, |row| row.get::<_, i32>(0) as u64);
            probe::agree(nodes, &probe::tag_condition(&tag), Some(stored)).await?;
        }
        println!(
            "{}: every node counts {accounts} accounts and {} tags as the tables hold them",
            nodes
                .iter()
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            CHECKED_TAGS.len() + tags.len()
        );
        Ok(())
    }

    fn fanout_args(&self) -> FanoutArgs {
        FanoutArgs {
            connections: self.sessions,
            pushes: 0,
            connect_concurrency: 64,
            timeout_secs: 300,
            stall_secs: 10,
            single_pushes: self.args.pushes,
            tagcast_bin: None,
            work: PathBuf::new(),
        }
    }

    /// `--pushes` all-account pushes made on `nodes[0]`, one at a time, to the sessions spread
    /// over `nodes` (session i on node i mod n), from loopback addresses 127.`prefix`.x.y.
    async fn fan_out(&self, nodes: &[&Node], prefix: u8) -> anyhow::Result<FanOut> {
        let args = self.fanout_args();
        let sessions = self.sessions;
        let tally = Tally::new(self.args.pushes);
        let started = Instant::now();
        let clients = fanout::connect_all(&args, sessions, &tally, [127, prefix, self.salt], |i| {
            let node = nodes[i % nodes.len()];
            (
                node.addr,
                fanout::session_url(node.addr, &fanout::account(i)),
            )
        })
        .await?;
        let connect = started.elapsed();
        println!(
            "fan-out over {} node(s): {sessions} sessions connected in {:.1} s",
            nodes.len(),
            connect.as_secs_f64()
        );
        tokio::time::sleep(SETTLE).await;
        let idle = wire::Window::start(self.pg_port)?;
        tokio::time::sleep(IDLE).await;
        let idle = idle.finish()?;
        if tally.first_push.get().is_some() {
            bail!(
                "a session received a push before any was made (an earlier push delivered again)"
            );
        }

        let mark = wire::mark(&self.db).await?;
        if let Some(s) = &self.statements {
            s.reset().await?;
        }
        let origin = nodes[0];
        let meter = CpuMeter::start(nodes.iter().map(|n| n.pid).collect(), self.postmaster);
        let window = wire::Window::start(self.pg_port)?;
        // Distinct in every run and phase (the database keeps MsgRandom for 7 days).
        let mut random = self.salt as u32 * 1_000_000 + prefix as u32 * 10_000;
        let label = format!("{} node(s)", nodes.len());
        let m = fanout::measure(&label, &args, sessions, &tally, Some(origin.pid), || {
            random += 1;
            let api = origin.api.clone();
            async move { fanout::push_to_all(&api, random).await }
        })
        .await?;
        // The deliveries' writes (cursors, delivery records) are part of what a push costs.
        wire::await_cursors(&self.db, mark, sessions, RECORDED_WITHIN).await?;
        tokio::time::sleep(SETTLE).await;
        let traffic = window.finish()?;
        let (cpu, _) = meter.finish();
        let statements = match &self.statements {
            Some(s) => {
                let mut stats = s.read(DB).await?;
                stats.statements.retain(|s| !wire::is_ours(&s.query));
                Some(stats)
            }
            None => None,
        };
        let records = wire::since(&self.db, mark).await?;
        if records.tasks != self.args.pushes as u64 {
            bail!(
                "{} tasks stored during {} pushes",
                records.tasks,
                self.args.pushes
            );
        }
        drop(clients);
        let mut after_ack = Samples::new();
        for (whole, request) in m.single.iter().zip(m.single_requests.iter()) {
            after_ack.push(whole.saturating_sub(request));
        }
        let fan = FanOut {
            nodes: nodes.len(),
            connect,
            after_ack,
            cpu,
            traffic,
            idle,
            origin: origin.pid,
            others: nodes[1..].iter().map(|n| n.pid).collect(),
            origin_id: origin.id.clone(),
            records,
            statements,
            frame_bytes: tally.first_push.get().map_or(0, String::len),
            m,
        };
        println!(
            "fan-out over {} node(s): {} pushes, every one reached all {sessions} sessions once; answer -> last frame p50 {} ms: {:.0} deliveries/s; {:.0} bytes with PostgreSQL per push, all nodes{}",
            fan.nodes,
            fan.m.single.len(),
            ms(fan.after_ack.p50()),
            fan.rate(sessions),
            fan.total_bytes(),
            if fan.traffic.closed > 0 {
                format!(
                    " ({} connections closed during the pushes, not counted)",
                    fan.traffic.closed
                )
            } else {
                String::new()
            }
        );
        if let Some(s) = &fan.statements {
            println!(
                "fan-out over {} node(s): PostgreSQL statements per push: {}",
                fan.nodes,
                s.describe(self.args.pushes as u64, 12)
            );
        }
        Ok(fan)
    }

    /// A node joining at `--join-accounts` accounts, next to a first node under add_tag load.
    async fn join(&self) -> anyhow::Result<Join> {
        let args = self.args;
        let m = args.join_accounts;
        let data = args
            .join_data
            .clone()
            .unwrap_or_else(|| crate::default_data_dir(m));
        crate::gen_data::generate(&data, m, args.seed, 50_000, false).await?;
        let url = database_url(&args.postgres, DB_JOIN)?;
        let migrate = migrate(&self.tagcast, &data, &url).await?;
        println!(
            "join: migrated {m} accounts in {:.1} s",
            migrate.as_secs_f64()
        );
        let first = self.node(&url, "join1").await?;
        let load = probe::Load::start(&first.api, m, args.join_load);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let joining = self.node(&url, "join2").await?;
        let listening = Instant::now();
        // A write acknowledged on the first node from now on: counted on the joining node once
        // it has applied every commit before it.
        let tag = "joinprobe";
        first
            .api
            .call(
                "timpush/add_tag",
                &probe::add_one_tag(&Model::account_name(0), tag),
            )
            .await?;
        probe::await_count(&joining.api, &probe::tag_condition(tag), 1, listening)
            .await
            .context("the joining node catching up")?;
        let catch_up = listening.elapsed();
        let load = load.stop().await?;
        println!(
            "join: {} caught up {} ms after listening, while {} took {:.0} updates/s",
            joining.id,
            ms(catch_up),
            first.id,
            load.updates_per_s()
        );
        let pair = [&first, &joining];
        probe::agree(&pair, &json!({}), Some(m)).await?;
        for cond in workload::conditions() {
            probe::agree(&pair, &json!({ "Audience": cond.audience() }), None).await?;
        }
        println!("join: both nodes count {m} accounts and every condition of bench/run.sh alike");
        let join = Join {
            accounts: m,
            migrate,
            first: first.started(),
            joining: joining.started(),
            catch_up,
            load,
            data,
        };
        first.stop().await;
        joining.stop().await;
        Ok(join)
    }
}

async fn recreate(admin: &Client, dbs: &[&str]) -> anyhow::Result<()> {
    for db in dbs {
        // One statement per call: neither may run inside a transaction block.
        for sql in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("CREATE DATABASE {db}"),
        ] {
            admin.batch_execute(&sql).await.context(sql)?;
        }
    }
    Ok(())
}

pub async fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let begun = Instant::now();
    // Every add_tag request takes 100 consecutive accounts; every node holds sessions.
    let per_request = workload::ACCOUNTS_PER_REQUEST;
    if args.accounts < per_request || args.join_accounts < per_request {
        bail!("--accounts and --join-accounts: at least {per_request}");
    }
    if args.sessions < 3 || args.pushes == 0 || args.probes == 0 || args.concurrency == 0 {
        bail!("--sessions: at least 3; --pushes, --probes and --concurrency: at least 1");
    }
    // First: the nodes inherit the limit.
    let sessions = fanout::raise_fd_limit(args.sessions)?;
    let (tagcast, loadgen) = args.binaries.resolve()?;
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-data/cluster-run"));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;

    let admin = connect(&database_url(&args.postgres, "postgres")?).await?;
    check_durable(&admin).await?;
    let version = baseline_pg::show(&admin, "server_version").await?;
    recreate(&admin, &[DB, DB_JOIN]).await?;
    let statements = match Statements::enable(&admin).await {
        Ok(s) => Some(s),
        Err(why) => {
            println!("pg_stat_statements unavailable ({why}): no statement counts");
            None
        }
    };
    let postmaster = pg_watch::postmaster_pid(&admin).await;
    let url = database_url(&args.postgres, DB)?;
    let ctx = Ctx {
        args,
        tagcast,
        loadgen,
        work: work.clone(),
        pg_port: pg_port(&args.postgres)?,
        db: connect(&url).await?,
        statements,
        postmaster,
        sessions,
        salt: (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            % 250) as u8,
    };
    println!(
        "PostgreSQL {version}; add_tag: {} accounts, {} connections, {} s per run; lag: {} probes; fan-out: {sessions} sessions, {} pushes; join at {} accounts",
        args.accounts, args.concurrency, args.seconds, args.probes, args.pushes, args.join_accounts
    );

    println!("\n== one node");
    let node1 = ctx.node(&url, "node1").await?;
    let started = Instant::now();
    let per_worker = args.probes.div_ceil(args.probe_workers.max(1));
    let names: Vec<String> = (0..args.accounts)
        .map(Model::account_name)
        .chain(fanout::accounts(sessions))
        .chain(probe::probe_accounts(args.probe_workers.max(1), per_worker))
        .collect();
    node1.api.import(&names).await?;
    println!(
        "node1: imported {} accounts in {:.1} s",
        names.len(),
        started.elapsed().as_secs_f64()
    );
    let one_add = ctx.add_tag(&[&node1], &[&node1]).await?;
    ctx.agree_with_tables(&[&node1], &[]).await?;
    let one_fan = ctx.fan_out(&[&node1], 3).await?;

    println!("\n== three nodes");
    let node2 = ctx.node(&url, "node2").await?;
    let node3 = ctx.node(&url, "node3").await?;
    let cluster = [&node1, &node2, &node3];
    ctx.agree_with_tables(&cluster, &[]).await?;
    let three_add = ctx.add_tag(&cluster, &cluster).await?;
    ctx.agree_with_tables(&cluster, &[]).await?;
    let followed_add = ctx.add_tag(&[&node1], &cluster).await?;
    ctx.agree_with_tables(&cluster, &[]).await?;
    let lag = probe::lag(
        &node1,
        &[&node2, &node3],
        args.accounts,
        args.concurrency,
        args.probes,
        args.probe_workers,
    )
    .await?;
    println!(
        "lag: {} probes under {:.0} updates/s on node1: p50 {} ms, p99 {} ms, max {} ms ({})",
        lag.writes.len(),
        lag.load.updates_per_s(),
        ms(lag.all.p50()),
        ms(lag.all.p99()),
        ms(lag.all.max()),
        lag.by_node
            .iter()
            .map(|(id, s)| format!("{id} p50 {} p99 {}", ms(s.p50()), ms(s.p99())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let probe_tags: Vec<String> = (0..args.probe_workers.max(1))
        .map(probe::probe_tag)
        .collect();
    ctx.agree_with_tables(&cluster, &probe_tags).await?;
    let three_fan = ctx.fan_out(&cluster, 4).await?;
    for node in [node1, node2, node3] {
        node.stop().await;
    }

    println!("\n== a node joining at {} accounts", args.join_accounts);
    let join = ctx.join().await?;

    drop(ctx);
    for db in [DB, DB_JOIN] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await?;
    }
    let _ = std::fs::remove_dir_all(&work);

    let results = Results {
        one_add,
        three_add,
        followed_add,
        lag,
        one_fan,
        three_fan,
        join,
    };
    let report = report(args, &version, sessions, &results);
    println!("\n{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
        println!("report written to {}", out.display());
    }
    println!("cluster: {:.0} s in all", begun.elapsed().as_secs_f64());
    Ok(())
}

/// What the phases measured.
struct Results {
    /// add_tag through node1 alone, through the three nodes at once, and through node1 while
    /// node2 and node3 follow.
    one_add: AddTag,
    three_add: AddTag,
    followed_add: AddTag,
    lag: probe::Lag,
    one_fan: FanOut,
    three_fan: FanOut,
    join: Join,
}

fn report(args: &ClusterArgs, version: &str, sessions: usize, results: &Results) -> String {
    let Results {
        one_add,
        three_add,
        followed_add,
        lag,
        one_fan: one,
        three_fan: three,
        join,
    } = results;
    let dash = || "-".to_string();
    let row = |cells: [String; 5]| cells.to_vec();
    let mut rows = vec![row([
        "measurement".into(),
        "one node".into(),
        "three nodes".into(),
        "three / one".into(),
        "goal (issue 9)".into(),
    ])];
    let (u1, u3) = (one_add.t.updates_per_s(), three_add.t.updates_per_s());
    rows.push(row([
        "durable add_tag, updates/s [1]".into(),
        fmt_int(u1),
        fmt_int(u3),
        fmt_ratio(u3, u1),
        String::new(),
    ]));
    let uf = followed_add.t.updates_per_s();
    rows.push(row([
        "durable add_tag through node1 only, node2 and node3 following, updates/s [1]".into(),
        fmt_int(u1),
        fmt_int(uf),
        fmt_ratio(uf, u1),
        String::new(),
    ]));
    let latency = |t: &Throughput| format!("{} / {}", ms(t.p50), ms(t.p99));
    rows.push(row([
        "add_tag p50 / p99, ms (slowest node) [1]".into(),
        latency(&one_add.t),
        latency(&three_add.t),
        String::new(),
        String::new(),
    ]));
    let cores = |c: &Cores| {
        format!(
            "{:.2} + {} of {:.2}",
            c.nodes,
            c.postgres.map_or_else(dash, |v| format!("{v:.2}")),
            c.machine
        )
    };
    rows.push(row([
        "add_tag cores: nodes + PostgreSQL of machine [2]".into(),
        cores(&one_add.cores),
        format!(
            "{}; through node1 only: {}",
            cores(&three_add.cores),
            cores(&followed_add.cores)
        ),
        String::new(),
        String::new(),
    ]));
    let p99 = lag.all.p99();
    rows.push(row([
        format!(
            "replication lag, node1 -> node2 and node3, p50 / p99 / max, ms ({} probes) [3]",
            lag.writes.len()
        ),
        dash(),
        format!(
            "{} / {} / {}",
            ms(lag.all.p50()),
            ms(p99),
            ms(lag.all.max())
        ),
        dash(),
        format!("p99 < 100 ms: {}", met(p99 < GOAL_LAG_P99)),
    ]));
    let (r1, r3) = (one.rate(sessions), three.rate(sessions));
    rows.push(row([
        format!(
            "fan-out of one push to {} sessions, deliveries/s [4]",
            fmt_int(sessions as f64)
        ),
        fmt_int(r1),
        fmt_int(r3),
        fmt_ratio(r3, r1),
        String::new(),
    ]));
    let timing = |f: &FanOut| {
        format!(
            "{} / {} / {}",
            ms(f.m.single_requests.p50()),
            ms(f.after_ack.p50()),
            ms(f.after_ack.max())
        )
    };
    rows.push(row([
        "push request p50; answer -> last frame p50 / max, ms [4]".into(),
        timing(one),
        timing(three),
        String::new(),
        String::new(),
    ]));
    let cpu = |f: &FanOut| f.cpu * 1e6 / (sessions as f64 * f.pushes());
    rows.push(row([
        "CPU of all nodes per delivery, us [5]".into(),
        format!("{:.2}", cpu(one)),
        format!("{:.2}", cpu(three)),
        fmt_ratio(cpu(three), cpu(one)),
        String::new(),
    ]));
    rows.push(row([
        "bytes between the nodes and PostgreSQL per push, all nodes [6]".into(),
        fmt_int(one.total_bytes()),
        fmt_int(three.total_bytes()),
        fmt_ratio(three.total_bytes(), one.total_bytes()),
        String::new(),
    ]));
    let part = |f: &FanOut, pids: &[u32]| {
        format!(
            "{} sent, {} received",
            fmt_int(f.net(pids, |(s, _)| s)),
            fmt_int(f.net(pids, |(_, r)| r))
        )
    };
    rows.push(row([
        "of which the node the push was made on [6]".into(),
        part(one, &[one.origin]),
        part(three, &[three.origin]),
        String::new(),
        String::new(),
    ]));
    rows.push(row([
        "of which the other nodes, together [6]".into(),
        dash(),
        part(three, &three.others),
        dash(),
        String::new(),
    ]));
    rows.push(row([
        "records each other node reads per push, bytes [7]".into(),
        dash(),
        fmt_int(three.records_per_node()),
        dash(),
        String::new(),
    ]));
    let statements = |f: &FanOut| {
        f.statements
            .as_ref()
            .map_or_else(dash, |s| format!("{:.1}", s.calls() as f64 / f.pushes()))
    };
    rows.push(row([
        "PostgreSQL statements per push, all nodes [8]".into(),
        statements(one),
        statements(three),
        String::new(),
        String::new(),
    ]));

    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let rebuild = |s: &Started| s.rebuild.map_or_else(dash, secs);
    let first_total = join.first.startup;
    let join_total = join.joining.startup + join.catch_up;
    let mut join_rows = vec![vec![
        format!("join at {} accounts [9]", fmt_int(join.accounts as f64)),
        "first node, database at rest".to_string(),
        "node joining the first under add_tag load".into(),
        "joining / first".into(),
    ]];
    join_rows.push(vec![
        "spawn -> listening, s".into(),
        secs(join.first.startup),
        secs(join.joining.startup),
        fmt_ratio(
            join.joining.startup.as_secs_f64(),
            join.first.startup.as_secs_f64(),
        ),
    ]);
    join_rows.push(vec![
        "of which the index rebuild (logged), s".into(),
        rebuild(&join.first),
        rebuild(&join.joining),
        match (join.first.rebuild, join.joining.rebuild) {
            (Some(a), Some(b)) => fmt_ratio(b.as_secs_f64(), a.as_secs_f64()),
            _ => dash(),
        },
    ]);
    join_rows.push(vec![
        "listening -> caught up with the first node, ms".into(),
        dash(),
        ms(join.catch_up),
        dash(),
    ]);
    join_rows.push(vec![
        "spawn -> serving everything the first node acknowledged, s".into(),
        secs(first_total),
        secs(join_total),
        fmt_ratio(join_total.as_secs_f64(), first_total.as_secs_f64()),
    ]);
    join_rows.push(vec![
        "resident memory once listening, MiB".into(),
        format!("{:.0}", join.first.rss_mib),
        format!("{:.0}", join.joining.rss_mib),
        String::new(),
    ]);

    let cores_n = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = String::new();
    out.push_str(&format!(
        "{}: three tagcast nodes against one on PostgreSQL {version}, on loopback, {cores_n} cores; the nodes, PostgreSQL and the clients share the machine; \
         PostgreSQL with fsync and synchronous_commit on{}. One node alone first, then three on the same database; \
         ratios are three nodes' value / one node's (of rates higher is better; of times, CPU and bytes lower is better).\n\n",
        tagcast_bench::stamp::line("tagcast-bench cluster"),
        args.fsync_probe_us.map_or(String::new(), |us| format!(
            "; a synchronous 8 KiB write (dd oflag=dsync) takes {us:.0} us on this disk"
        )),
    ));
    out.push_str(&table(&rows));
    out.push('\n');
    out.push_str(&table(&join_rows));
    out.push('\n');
    let r = &three.records;
    out.push_str(&format!(
        "- [1] account-tag updates acknowledged per second, durable (COMMIT with synchronous_commit on before the answer): \
         `tagcast-loadgen --synth --workload add-tag` (`Replace: 1`, 2 random tags of tag1..tag1000 for each of 100 consecutive accounts of {} from a random start: \
         200 updates per request), {} connections for {} s in all: on node1 alone; then split over the three nodes at once (their rates added; p50 and p99 are the slowest node's); \
         then all on node1 again while node2 and node3 run and follow its commits. The three runs take turns on the same database, in this order\n\
         - [2] cores kept busy on average during the add_tag run: the nodes together, every process of the PostgreSQL cluster, the whole machine (the rest is loadgen)\n",
        fmt_int(args.accounts as f64),
        args.concurrency,
        args.seconds
    ));
    out.push_str(&format!(
        "- [3] from the answer to an add_tag of a probe tag on node1 to the first answer of `POST /v4/tagcast/audience_count` with `Condition: {{TagsOr: [tag]}}` on node2 (and on node3, both counted) \
         that includes it (counted from the node's in-memory index, which follows node1's commits through the change log: NOTIFY, or the 1 s poll); \
         {} probes by {} workers at once, each with a tag of its own, polling every {} ms (the resolution, with the count's round trip), \
         while {} connections kept an add_tag load on node1 ({:.0} updates/s; the probes' own add_tag took {} ms at the p50). By node: {}\n",
        lag.writes.len(),
        args.probe_workers,
        probe::POLL.as_millis(),
        args.concurrency,
        lag.load.updates_per_s(),
        ms(lag.writes.p50()),
        lag.by_node
            .iter()
            .map(|(id, s)| format!("{id} p50 {} / p99 {} ms", ms(s.p50()), ms(s.p99())))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "- [4] {} all-account pushes (`timpush/push`, a {}-byte frame) made on node1 one at a time, each waited for at every session (`GET /ws` with the account's own UserSig): \
         to {} sessions on node1 alone, then to the same accounts spread over the three nodes (session i on node i mod 3); every push reached every session once, or the run fails. \
         deliveries/s = sessions / (the push's answer -> the last session receiving it), at the p50 of the pushes; connecting the sessions took {:.1} s and {:.1} s\n\
         - [5] CPU seconds of the nodes from the first push to {:.1} s after every session's cursor was written (the deliveries' writes included) / deliveries\n",
        args.pushes,
        one.frame_bytes,
        fmt_int(sessions as f64),
        one.connect.as_secs_f64(),
        three.connect.as_secs_f64(),
        SETTLE.as_secs_f64()
    ));
    out.push_str(&format!(
        "- [6] TCP payload bytes on every connection of the nodes to PostgreSQL (the kernel's counters, `ss -ti`), from the first push to {:.1} s after the last push's deliveries were written (every session's cursor at it), \
         less what the same nodes exchanged at rest over as long (measured over {} s before the pushes: {:.0} and {:.0} bytes/s with one and three nodes: heartbeats, the 1 s polls), / pushes. \
         Everything a push costs between the nodes and the database: the origin's transaction (the task, its audience, the change-log entry, the NOTIFY), \
         every node's catch-up from the log and read of the task, and every node's writes of its deliveries and the accounts' cursors (per recipient, to the database, not to the other nodes){}\n",
        SETTLE.as_secs_f64(),
        IDLE.as_secs(),
        idle_rate(one),
        idle_rate(three),
        if one.traffic.closed + three.traffic.closed > 0 {
            format!(
                "; {} connections closed during the pushes, their bytes not counted",
                one.traffic.closed + three.traffic.closed
            )
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "- [7] counted from the records, what a node that did not take the push reads to deliver it: the change-log entry ({} entries for {} pushes, {} bytes each on average, `octet_length(changes)`), \
         one notification per entry ({} bytes: NotificationResponse with channel and node id), the task (`octet_length(meta::text)`, {} bytes) and its frozen audience \
         (a roaring bitmap, `octet_length(audience)`, {} bytes). Per push the cross-node cost is this once per other node, whatever the number of recipients\n",
        r.entries,
        r.tasks,
        r.entry_bytes / r.entries.max(1),
        wire::notification_bytes(&three.origin_id),
        r.meta_bytes / r.tasks.max(1),
        r.audience_bytes / r.tasks.max(1)
    ));
    let describe = |f: &FanOut| {
        f.statements.as_ref().map_or_else(
            || "(pg_stat_statements unavailable)".to_string(),
            |s| s.describe(f.m.single.len() as u64, 10),
        )
    };
    out.push_str(&format!(
        "- [8] `pg_stat_statements` calls in the database during the pushes (the window of [6]) / pushes; per push (calls, mean time, rows): one node: {}. Three nodes: {}\n",
        describe(one),
        describe(three)
    ));
    out.push_str(&format!(
        "- [9] the synthetic app of `tagcast-bench gen` ({}) copied with `tagcast migrate` ({:.1} s) into a database of its own; \
         the first node started on it alone, then, while {} connections kept an add_tag load on the first ({:.0} updates/s), the second started: \
         spawn -> \"tagcast listening on\" (the index rebuilt from the tables, logged as `audience index rebuilt`), then until it counted a tag added on the first node \
         after it listened (every commit before that applied from the change log). Both nodes then counted every account and every condition of `bench/run.sh` alike\n",
        join.data.display(),
        join.migrate.as_secs_f64(),
        args.join_load,
        join.load.updates_per_s()
    ));
    out
}

/// Bytes per second the nodes of `f` exchanged with PostgreSQL at rest.
fn idle_rate(f: &FanOut) -> f64 {
    let (s, r) = f.idle.of(&f.all_pids());
    (s + r) as f64 / f.idle.secs.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::pg_port;

    #[test]
    fn the_port_of_a_postgres_url() {
        assert_eq!(
            pg_port("postgres://postgres@127.0.0.1:25432").unwrap(),
            25432
        );
        assert_eq!(pg_port("postgres://u:pw@h:6000/db?x=1").unwrap(), 6000);
        assert_eq!(pg_port("postgres://u@h/db").unwrap(), 5432);
    }
}
