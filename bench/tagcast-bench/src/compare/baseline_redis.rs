//! The Redis baseline: a set per tag and per (attribute, value) holding account names, a set per
//! account holding its tag numbers. Counts in the fastest exact form Redis has (`forms`, screened
//! in every run): SCARD, SINTERCARD, and for OR and AND NOT the same two by inclusion-exclusion
//! in one pipeline (the forms that build a set, SUNIONSTORE and SDIFFSTORE, are screened too).
//!
//! Keys:
//! - `tag:<tag>` (`tag:tag5`): the names of the accounts having the tag;
//! - `attr:<name>:<value>` (`attr:city:city1`): the names of the accounts with that value;
//! - `acct:<account>` (`acct:u00000042`): the account's tags as numbers (`tag5` is 5), so the set
//!   is a compact intset; get_tag turns them back into names on the client.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::SeedableRng;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tagcast_bench::synth::{ATTRS, Model, TAGS};

use tagcast_bench::stats::Samples;

use super::workload::{
    self, Cond, CpuWindow, Tally, Throughput, account_chunks, next_chunk, read_batch, tag_ranks,
    write_batch,
};
use super::{CompareArgs, CountResult};

/// What the Redis side measured.
pub struct RedisResult {
    pub version: String,
    pub load: Duration,
    pub used_memory: u64,
    pub used_memory_rss: u64,
    pub counts: Vec<CountResult>,
    /// PING: a round trip.
    pub floor: Samples,
    pub get_tag: Throughput,
    pub add_tag_everysec: Throughput,
    pub add_tag_always: Throughput,
}

fn tag_key(rank: u16) -> String {
    format!("tag:tag{rank}")
}

fn attr_key(slot: u8, value: &str) -> String {
    format!("attr:{}:{value}", ATTRS[slot as usize].name)
}

fn acct_key(name: &str) -> String {
    format!("acct:{name}")
}

/// One exact way to count a condition in Redis. Each condition has one or more (`forms`); the run
/// screens them all and times the fastest.
#[derive(Debug, Clone)]
pub enum Form {
    /// `SCARD key`: the cardinality the set keeps, O(1).
    Card(String),
    /// `SINTERCARD n keys...`: walks the smallest set and probes the others, materializes nothing.
    InterCard(Vec<String>),
    /// `SUNIONSTORE tmp keys...` + `UNLINK tmp`: builds the union (its reply is its size).
    UnionStore(Vec<String>),
    /// `SDIFFSTORE tmp a b` + `UNLINK tmp`: builds the difference.
    DiffStore(String, String),
    /// The union's size by inclusion-exclusion, `SCARD` of each set and `SINTERCARD` of every
    /// combination, pipelined in one round trip: nothing is built.
    InclusionExclusion(Vec<String>),
    /// `SCARD a` - `SINTERCARD 2 a b`, pipelined: |A \ B| = |A| - |A ∩ B|.
    CardMinusInter(String, String),
}

const TMP: &str = "tagcast-bench:tmp";

impl Form {
    /// The commands, as the report shows them.
    pub fn describe(&self) -> String {
        match self {
            Form::Card(k) => format!("SCARD {k}"),
            Form::InterCard(ks) => format!("SINTERCARD {} {}", ks.len(), ks.join(" ")),
            Form::UnionStore(ks) => format!("SUNIONSTORE tmp {}; UNLINK tmp", ks.join(" ")),
            Form::DiffStore(a, b) => format!("SDIFFSTORE tmp {a} {b}; UNLINK tmp"),
            Form::InclusionExclusion(ks) => {
                let terms = workload::inclusion_exclusion(ks.len());
                let cmds: Vec<String> = terms
                    .iter()
                    .map(|(set, _)| inter_card_desc(ks, set))
                    .collect();
                format!(
                    "{} commands pipelined, sum with signs (inclusion-exclusion): {}",
                    cmds.len(),
                    cmds.join("; ")
                )
            }
            Form::CardMinusInter(a, b) => {
                format!("SCARD {a}; SINTERCARD 2 {a} {b} (pipelined, the first minus the second)")
            }
        }
    }
}

fn inter_card_desc(keys: &[String], set: &[usize]) -> String {
    let ks: Vec<&str> = set.iter().map(|i| keys[*i].as_str()).collect();
    if ks.len() == 1 {
        format!("SCARD {}", ks[0])
    } else {
        format!("SINTERCARD {} {}", ks.len(), ks.join(" "))
    }
}

/// Every exact form of a condition's count in Redis, on this data model.
pub fn forms(cond: &Cond) -> Vec<Form> {
    match cond {
        Cond::Tag(t) => vec![Form::Card(tag_key(*t))],
        Cond::And(a, b) => vec![Form::InterCard(vec![tag_key(*a), tag_key(*b)])],
        Cond::Or(ts) => {
            let keys: Vec<String> = ts.iter().map(|t| tag_key(*t)).collect();
            vec![
                Form::InclusionExclusion(keys.clone()),
                Form::UnionStore(keys),
            ]
        }
        Cond::AndNot(a, b) => vec![
            Form::CardMinusInter(tag_key(*a), tag_key(*b)),
            Form::DiffStore(tag_key(*a), tag_key(*b)),
        ],
        Cond::AttrEq(s, v) => vec![Form::Card(attr_key(*s, v))],
        Cond::AttrAndTag(s, v, t) => vec![Form::InterCard(vec![attr_key(*s, v), tag_key(*t)])],
    }
}

fn inter_card(pipe: &mut redis::Pipeline, keys: &[&String]) {
    if keys.len() == 1 {
        pipe.cmd("SCARD").arg(keys[0]);
    } else {
        pipe.cmd("SINTERCARD").arg(keys.len()).arg(keys);
    }
}

async fn count(con: &mut MultiplexedConnection, form: &Form) -> anyhow::Result<u64> {
    let n = match form {
        Form::Card(k) => redis::cmd("SCARD").arg(k).query_async(con).await?,
        Form::InterCard(ks) => {
            redis::cmd("SINTERCARD")
                .arg(ks.len())
                .arg(ks)
                .query_async(con)
                .await?
        }
        Form::UnionStore(ks) => {
            // SUNIONSTORE answers the size of the union it stored; one round trip with the clean-up.
            let (n, _): (u64, u64) = redis::pipe()
                .cmd("SUNIONSTORE")
                .arg(TMP)
                .arg(ks)
                .cmd("UNLINK")
                .arg(TMP)
                .query_async(con)
                .await?;
            n
        }
        Form::DiffStore(a, b) => {
            let (n, _): (u64, u64) = redis::pipe()
                .cmd("SDIFFSTORE")
                .arg(TMP)
                .arg(a)
                .arg(b)
                .cmd("UNLINK")
                .arg(TMP)
                .query_async(con)
                .await?;
            n
        }
        Form::InclusionExclusion(ks) => {
            let terms = workload::inclusion_exclusion(ks.len());
            let mut pipe = redis::pipe();
            for (set, _) in &terms {
                let keys: Vec<&String> = set.iter().map(|i| &ks[*i]).collect();
                inter_card(&mut pipe, &keys);
            }
            let cards: Vec<i64> = pipe.query_async(con).await?;
            if cards.len() != terms.len() {
                bail!("{} replies for {} commands", cards.len(), terms.len());
            }
            let n: i64 = terms.iter().zip(&cards).map(|((_, s), c)| s * c).sum();
            u64::try_from(n).context("a negative union size")?
        }
        Form::CardMinusInter(a, b) => {
            let (all, both): (u64, u64) = redis::pipe()
                .cmd("SCARD")
                .arg(a)
                .cmd("SINTERCARD")
                .arg(2)
                .arg(a)
                .arg(b)
                .query_async(con)
                .await?;
            all.checked_sub(both)
                .context("SINTERCARD larger than SCARD")?
        }
    };
    Ok(n)
}

async fn connect(client: &redis::Client) -> anyhow::Result<MultiplexedConnection> {
    // No response timeout: a load pipeline or a big SDIFFSTORE takes longer than the default.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

async fn info(con: &mut MultiplexedConnection, section: &str) -> anyhow::Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(con).await?)
}

pub async fn run(url: &str, args: &CompareArgs, seed: u64) -> anyhow::Result<RedisResult> {
    let accounts = args.set.accounts;
    let client = redis::Client::open(url).with_context(|| format!("Redis URL {url}"))?;
    let mut con = connect(&client)
        .await
        .with_context(|| format!("connecting to Redis at {url}"))?;
    let server = info(&mut con, "server").await?;
    let version = info_field(&server, "redis_version").unwrap_or_default();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        bail!("Redis {version}: SINTERCARD needs Redis 7 or later");
    }
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut con).await?;
    if keys != 0 {
        bail!(
            "Redis at {url} holds {keys} keys: the comparison needs an empty server (it loads, then flushes it)"
        );
    }
    let persistence = info(&mut con, "persistence").await?;
    if info_field(&persistence, "aof_enabled").as_deref() != Some("1") {
        bail!(
            "Redis at {url} runs without AOF: start it with `appendonly yes` (bench/run.sh does)"
        );
    }
    set_fsync(&mut con, "everysec").await?;

    println!("redis {version}: loading {accounts} accounts (SADD, pipelined, AOF everysec)");
    let started = Instant::now();
    load(&mut con, seed, accounts).await?;
    let load = started.elapsed();
    let memory = info(&mut con, "memory").await?;
    let field = |f: &str| -> u64 {
        info_field(&memory, f)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let used_memory = field("used_memory");
    let used_memory_rss = field("used_memory_rss");
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut con).await?;
    println!(
        "redis: loaded in {:.1} s, {keys} keys, used_memory {:.0} MiB ({:.0} B/account), used_memory_rss {:.0} MiB",
        load.as_secs_f64(),
        used_memory as f64 / (1 << 20) as f64,
        used_memory as f64 / accounts as f64,
        used_memory_rss as f64 / (1 << 20) as f64
    );
    check_accounts(&mut con, seed, accounts).await?;

    let mut counts = Vec::new();
    for cond in workload::conditions() {
        let forms = forms(&cond);
        let timed = |form: Form, timing| {
            let con = con.clone();
            async move {
                workload::time_counts(timing, || {
                    let mut con = con.clone();
                    let form = form.clone();
                    async move { count(&mut con, &form).await }
                })
                .await
                .with_context(|| format!("redis count `{}`", form.describe()))
            }
        };
        // Screening: every exact form a few times; then the fastest in full.
        let mut screening = workload::Screening::default();
        if forms.len() > 1 {
            for form in &forms {
                let (n, samples) = timed(form.clone(), args.screen_timing()).await?;
                println!(
                    "redis: screening `{}` = {n}: p50 {:.3} ms ({} runs)",
                    form.describe(),
                    samples.p50().as_secs_f64() * 1e3,
                    samples.len()
                );
                screening.add(form.describe(), n, samples.p50());
            }
        }
        let best = if forms.len() > 1 {
            screening.pick()?
        } else {
            0
        };
        let form = forms[best].clone();
        let (n, samples) = timed(form.clone(), args.baseline_timing()).await?;
        if let Some((_, screened, _)) = screening.forms.first()
            && *screened != n
        {
            bail!(
                "redis `{}` counted {n}, {screened} when screened",
                form.describe()
            );
        }
        println!(
            "redis: {} = {n}: p50 {:.3} ms ({} runs)",
            form.describe(),
            samples.p50().as_secs_f64() * 1e3,
            samples.len()
        );
        counts.push(CountResult {
            count: n,
            samples,
            form: form.describe(),
            screening,
        });
    }

    let (_, floor) = workload::time_counts(args.timing(), || {
        let mut con = con.clone();
        async move {
            let _: String = redis::cmd("PING").query_async(&mut con).await?;
            Ok(0)
        }
    })
    .await?;
    println!(
        "redis: PING (a round trip): p50 {:.3} ms",
        floor.p50().as_secs_f64() * 1e3
    );

    let get_tag = throughput(&client, &mut con, args, Op::GetTag).await?;
    println!(
        "redis: get_tag (pipelined SMEMBERS acct:<name> x100): {:.0} requests/s; {}",
        get_tag.requests_per_s,
        CpuWindow::describe(&get_tag)
    );
    let add_tag_everysec = throughput(&client, &mut con, args, Op::AddTag).await?;
    println!(
        "redis: add_tag (MULTI, SADD x300, EXEC), appendfsync everysec: {:.0} updates/s; {}",
        add_tag_everysec.updates_per_s(),
        CpuWindow::describe(&add_tag_everysec)
    );
    set_fsync(&mut con, "always").await?;
    let add_tag_always = throughput(&client, &mut con, args, Op::AddTag).await?;
    println!(
        "redis: add_tag (MULTI, SADD x300, EXEC), appendfsync always: {:.0} updates/s; {}",
        add_tag_always.updates_per_s(),
        CpuWindow::describe(&add_tag_always)
    );
    set_fsync(&mut con, "everysec").await?;
    // Give the memory back before the next system loads.
    let _: () = redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query_async(&mut con)
        .await?;
    Ok(RedisResult {
        version,
        load,
        used_memory,
        used_memory_rss,
        counts,
        floor,
        get_tag,
        add_tag_everysec,
        add_tag_always,
    })
}

async fn set_fsync(con: &mut MultiplexedConnection, mode: &str) -> anyhow::Result<()> {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg(mode)
        .query_async(con)
        .await?;
    Ok(())
}

/// Loads every account: for each chunk, one pipeline of multi-member SADDs (one per tag and per
/// attribute value of the chunk, one per account).
async fn load(con: &mut MultiplexedConnection, seed: u64, accounts: u64) -> anyhow::Result<()> {
    let model = Model::new(seed);
    let rx = account_chunks(seed, accounts, 20_000);
    let mut loaded = 0u64;
    let mut last_report = Instant::now();
    let started = Instant::now();
    while let Some(chunk) = next_chunk(&rx) {
        let mut by_tag: Vec<Vec<String>> = vec![Vec::new(); TAGS];
        let mut by_value: Vec<Vec<Vec<String>>> = (0..ATTRS.len() as u8)
            .map(|s| vec![Vec::new(); model.values(s).len()])
            .collect();
        let mut pipe = redis::pipe();
        for a in &chunk {
            let name = Model::account_name(a.index);
            for t in &a.tags {
                by_tag[*t as usize].push(name.clone());
            }
            for (slot, v) in a.attrs.iter().enumerate() {
                if let Some(v) = v {
                    by_value[slot][*v as usize].push(name.clone());
                }
            }
            pipe.cmd("SADD")
                .arg(acct_key(&name))
                .arg(tag_ranks(a))
                .ignore();
        }
        for (t, names) in by_tag.iter().enumerate() {
            if !names.is_empty() {
                pipe.cmd("SADD")
                    .arg(tag_key(t as u16 + 1))
                    .arg(names)
                    .ignore();
            }
        }
        for (slot, values) in by_value.iter().enumerate() {
            for (v, names) in values.iter().enumerate() {
                if !names.is_empty() {
                    let value = model.value_name(slot as u8, v as u16);
                    pipe.cmd("SADD")
                        .arg(attr_key(slot as u8, value))
                        .arg(names)
                        .ignore();
                }
            }
        }
        let () = pipe.query_async(con).await?;
        loaded += chunk.len() as u64;
        if last_report.elapsed().as_secs() >= 15 {
            println!(
                "redis: {loaded}/{accounts} accounts in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    if loaded != accounts {
        bail!("loaded {loaded} accounts, expected {accounts}");
    }
    Ok(())
}

/// Sampled accounts read back (the get_tag path) as the model generated them.
async fn check_accounts(
    con: &mut MultiplexedConnection,
    seed: u64,
    accounts: u64,
) -> anyhow::Result<()> {
    let model = Model::new(seed);
    let step = (accounts / 100).max(1);
    for i in (0..accounts).step_by(step as usize) {
        let a = model.account(i);
        let mut got: Vec<u16> = redis::cmd("SMEMBERS")
            .arg(acct_key(&Model::account_name(i)))
            .query_async(con)
            .await?;
        got.sort_unstable();
        if got != tag_ranks(&a) {
            bail!(
                "redis: account {i} has tags {got:?}, the model says {:?}",
                tag_ranks(&a)
            );
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Op {
    GetTag,
    AddTag,
}

/// CPU seconds Redis used so far (main process, all its threads).
async fn redis_cpu(con: &mut MultiplexedConnection) -> anyhow::Result<f64> {
    let cpu = info(con, "cpu").await?;
    let field = |f: &str| -> f64 {
        info_field(&cpu, f)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user") + field("used_cpu_sys"))
}

async fn throughput(
    client: &redis::Client,
    con: &mut MultiplexedConnection,
    args: &CompareArgs,
    op: Op,
) -> anyhow::Result<Throughput> {
    let mut cons = Vec::new();
    for _ in 0..args.concurrency {
        cons.push(connect(client).await?);
    }
    let cpu = CpuWindow::start(Some(redis_cpu(con).await?));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let accounts = args.set.accounts;
    let workers = cons
        .into_iter()
        .map(|con| worker(con, op, accounts, deadline))
        .collect();
    let mut t = workload::drive(workers, started).await?;
    cpu.finish(Some(redis_cpu(con).await?), &mut t);
    Ok(t)
}

async fn worker(
    mut con: MultiplexedConnection,
    op: Op,
    accounts: u64,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        match op {
            Op::GetTag => {
                let names = read_batch(&mut rng, accounts);
                let mut pipe = redis::pipe();
                for name in &names {
                    pipe.cmd("SMEMBERS").arg(acct_key(name));
                }
                let started = Instant::now();
                let tags: Vec<Vec<u16>> = pipe.query_async(&mut con).await?;
                // The reply get_tag gives: tag names per account.
                let named: Vec<Vec<String>> = tags
                    .iter()
                    .map(|ts| ts.iter().map(|t| workload::tag_name(*t)).collect())
                    .collect();
                tally.latencies.push(started.elapsed());
                if named.len() != names.len() {
                    bail!(
                        "redis: {} replies for {} accounts",
                        named.len(),
                        names.len()
                    );
                }
            }
            Op::AddTag => {
                let batch = write_batch(&mut rng, accounts);
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (name, [a, b]) in &batch {
                    pipe.cmd("SADD").arg(tag_key(*a)).arg(name).ignore();
                    pipe.cmd("SADD").arg(tag_key(*b)).arg(name).ignore();
                    pipe.cmd("SADD").arg(acct_key(name)).arg(a).arg(b).ignore();
                }
                let started = Instant::now();
                let () = pipe.query_async(&mut con).await?;
                tally.latencies.push(started.elapsed());
            }
        }
        tally.ok += 1;
    }
    Ok(tally)
}
