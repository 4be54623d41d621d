//! `tagcast-bench`: the push benchmarks, the comparison with Redis and PostgreSQL, and tagcast on
//! its two stores. Each reports ratios against a baseline measured in the same run, next to the
//! absolute numbers. See bench/README.md; `bench/push.sh` runs the push benchmarks,
//! `bench/run.sh` the comparison, `bench/store.sh` the stores, `bench/cluster.sh` several nodes,
//! `bench/devices.sh` device notifications, `bench/console.sh` the console's builder.

mod audience;
mod client;
mod cluster;
mod compare;
mod console;
mod devices;
mod fanout;
mod gen_data;
mod push;
mod raw;
mod scan;
mod server;
mod storage;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tagcast-bench", about = "Push benchmarks of tagcast")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the synthetic app into a store (skipped when DIR already holds the same data).
    Gen(gen_data::GenArgs),
    /// Audience counts: roaring index vs a per-account scan, on one thread.
    Audience(audience::AudienceArgs),
    /// Push creation latency on the real server vs a minimal durable write.
    Push(push::PushArgs),
    /// Online fan-out over real WebSockets vs a minimal broadcast server.
    Fanout(fanout::FanoutArgs),
    /// tagcast vs Redis and PostgreSQL on the same data: counts, writes, reads, memory (bench/run.sh).
    Compare(compare::CompareArgs),
    /// tagcast on its embedded store and on PostgreSQL next to raw PostgreSQL: add_tag, get_tag,
    /// start-up (bench/store.sh).
    Store(storage::StoreArgs),
    /// Three tagcast nodes on one PostgreSQL against one: replication lag, add_tag, fan-out
    /// across nodes, a node joining (bench/cluster.sh).
    Cluster(cluster::ClusterArgs),
    /// The raw PostgreSQL baseline of add_tag and get_tag: one statement of 100 accounts per
    /// transaction, on a table of its own.
    PgUpdate(storage::pg_update::PgUpdateArgs),
    /// Notifications per second from one push to N devices per provider, against the local
    /// fake providers, vs a minimal client (bench/devices.sh).
    Devices(devices::DevicesArgs),
    /// The console's audience builder in chromium: keystroke to exact count, vs the REST API's
    /// audience_count fetched from the same page (bench/console.sh).
    Console(console::ConsoleArgs),
    /// Opens a store (index rebuild) and prints how long it took, its accounts and counts.
    Open(storage::open::OpenArgs),
    /// The minimal WebSocket broadcast server of the fan-out baseline (started by `fanout`).
    #[command(hide = true)]
    RawServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

/// Where `gen` caches a data set of `accounts` accounts by default.
pub fn default_data_dir(accounts: u64) -> PathBuf {
    PathBuf::from(format!("target/bench-data/{accounts}"))
}

/// The synthetic data set a benchmark runs on.
#[derive(Debug, Clone, clap::Args)]
pub struct DataSetArgs {
    /// Accounts in the synthetic app.
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: u64,
    /// Data directory of `gen` [default: target/bench-data/ACCOUNTS, generated when missing].
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = tagcast_bench::synth::DEFAULT_SEED)]
    pub seed: u64,
}

impl DataSetArgs {
    pub fn dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| default_data_dir(self.accounts))
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // reqwest is built without a bundled crypto provider; the workspace uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Gen(args) => runtime.block_on(gen_data::run(&args)),
        // Counts are measured on the calling thread; the runtime only drives the store's open.
        Command::Audience(args) => audience::run(&args, &runtime),
        Command::Push(args) => runtime.block_on(push::run(&args)),
        Command::Fanout(args) => runtime.block_on(fanout::run(&args)),
        Command::Compare(args) => runtime.block_on(compare::run(&args)),
        Command::Store(args) => runtime.block_on(storage::run(&args)),
        Command::Cluster(args) => runtime.block_on(cluster::run(&args)),
        Command::PgUpdate(args) => runtime.block_on(storage::pg_update::run(&args)),
        Command::Open(args) => runtime.block_on(storage::open::run(&args)),
        Command::Devices(args) => runtime.block_on(devices::run(&args)),
        Command::Console(args) => runtime.block_on(console::run(&args)),
        Command::RawServer { listen } => runtime.block_on(raw::serve(listen)),
    }
}
