//! `pg-update`: the raw PostgreSQL baseline of tagcast's durable add_tag and get_tag, the fastest
//! plain form of the same work: one table of the accounts and their tags, one statement of 100
//! accounts per request and transaction, `synchronous_commit` on, prepared, on as many
//! connections as tagcast's clients. The requests are compare's (`baseline_pg::throughput`):
//!
//! ```sql
//! CREATE TABLE accounts (name text PRIMARY KEY, tags int[] NOT NULL)    -- tag5 is 5
//!   WITH (fillfactor = 10);
//! UPDATE accounts AS a SET tags = <t1 and t2, sorted, distinct>        -- add_tag (Replace)
//!   FROM unnest($1::text[], $2::int[], $3::int[]) AS v(name, t1, t2) WHERE a.name = v.name;
//! SELECT name, tags FROM accounts WHERE name = ANY($1);                 -- get_tag
//! ```
//!
//! No index but the primary key (tagcast's PostgreSQL tables index no tag either: audiences come
//! from its memory), so an update that keeps its row on its page is a HOT update, touching no
//! index; the fillfactor leaves the pages the room for that (at the default, 100, most updates
//! here are not HOT and the rate halves; `bench/store.sh` screens 100, 50, 20 and 10 in every run
//! and measures the fastest).

use std::time::Instant;

use anyhow::{Context, bail};
use tokio_postgres::Client;

use crate::compare::baseline_pg::{self, Op, Update, check_durable, connect};
use crate::compare::workload::Throughput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    AddTag,
    GetTag,
}

#[derive(Debug, clap::Args)]
pub struct PgUpdateArgs {
    /// PostgreSQL connection string or URL of a database of the benchmark's own (its table
    /// `accounts` is replaced), e.g. postgres://postgres@127.0.0.1:25432/tagcast_raw.
    #[arg(long)]
    pub postgres: String,
    /// Accounts in the table (`u00000000`...; each request takes 100 consecutive ones).
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The workloads to run, in this order [default: add-tag, then get-tag].
    #[arg(long, value_enum)]
    pub workload: Vec<Workload>,
    /// add_tag adds the 2 tags to each account's own instead of replacing them (loadgen's
    /// `--plain-add`; needs the intarray extension).
    #[arg(long)]
    pub plain_add: bool,
    /// The table's fillfactor, in percent: the room left on each page lets an update keep its
    /// row on its page (a HOT update, no index entry to add).
    #[arg(long, default_value_t = DEFAULT_FILLFACTOR)]
    pub fillfactor: u8,
}

/// The baseline's fillfactor unless told otherwise.
pub const DEFAULT_FILLFACTOR: u8 = 10;

/// The add_tag the baseline runs.
pub fn update(plain_add: bool) -> Update {
    if plain_add {
        Update::Add { intarray: true }
    } else {
        Update::Replace
    }
}

/// Replaces the table `accounts` of `client`'s database with `accounts` accounts `u00000000`...
/// without tags (as tagcast's accounts are after their import), then `VACUUM ANALYZE`.
pub async fn prepare(
    client: &Client,
    accounts: u64,
    intarray: bool,
    fillfactor: u8,
) -> anyhow::Result<()> {
    if accounts >= 100_000_000 {
        bail!("pg-update: account names have 8 digits: at most 99,999,999 accounts");
    }
    if intarray {
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS intarray")
            .await
            .context("the intarray extension (for --plain-add)")?;
    }
    let accounts = i64::try_from(accounts)?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS accounts; \
             CREATE TABLE accounts (name text PRIMARY KEY, tags int[] NOT NULL) \
             WITH (fillfactor = {})",
            fillfactor.clamp(10, 100)
        ))
        .await?;
    let rows = client
        .execute(
            "INSERT INTO accounts SELECT 'u' || lpad(i::text, 8, '0'), '{}' \
             FROM generate_series(0, $1::int8 - 1) AS i",
            &[&accounts],
        )
        .await?;
    if rows != accounts as u64 {
        bail!("pg-update: inserted {rows} accounts of {accounts}");
    }
    client.batch_execute("VACUUM ANALYZE accounts").await?;
    Ok(())
}

/// Runs `workload` against the prepared table.
pub async fn run_workload(
    conn: &str,
    accounts: u64,
    concurrency: usize,
    seconds: u64,
    workload: Workload,
    plain_add: bool,
) -> anyhow::Result<Throughput> {
    let op = match workload {
        Workload::AddTag => Op::AddTag(update(plain_add)),
        Workload::GetTag => Op::GetTag,
    };
    baseline_pg::throughput(conn, concurrency, seconds, accounts, op).await
}

/// One `key=value` line, as tagcast-loadgen reports.
pub fn report_line(workload: Workload, concurrency: usize, seconds: u64, t: &Throughput) -> String {
    format!(
        "workload={} concurrency={concurrency} seconds={seconds} requests_per_s={:.0} accounts_per_s={:.0} updates_per_s={:.0} p50_ms={:.2} p99_ms={:.2} deadlocks={} commit={}",
        match workload {
            Workload::AddTag => "AddTag",
            Workload::GetTag => "GetTag",
        },
        t.requests_per_s,
        t.accounts_per_s(),
        match workload {
            Workload::AddTag => t.updates_per_s(),
            Workload::GetTag => 0.0,
        },
        t.p50.as_secs_f64() * 1e3,
        t.p99.as_secs_f64() * 1e3,
        t.retries,
        tagcast_bench::stamp::commit()
    )
}

pub async fn run(args: &PgUpdateArgs) -> anyhow::Result<()> {
    let client = connect(&args.postgres).await?;
    check_durable(&client).await?;
    let started = Instant::now();
    prepare(&client, args.accounts, args.plain_add, args.fillfactor).await?;
    println!(
        "pg-update: {} accounts inserted in {:.1} s",
        args.accounts,
        started.elapsed().as_secs_f64()
    );
    let workloads = if args.workload.is_empty() {
        vec![Workload::AddTag, Workload::GetTag]
    } else {
        args.workload.clone()
    };
    for workload in workloads {
        let t = run_workload(
            &args.postgres,
            args.accounts,
            args.concurrency,
            args.seconds,
            workload,
            args.plain_add,
        )
        .await?;
        println!(
            "{}",
            report_line(workload, args.concurrency, args.seconds, &t)
        );
    }
    Ok(())
}
