//! The PostgreSQL baseline: one table, tags as a GIN-indexed `int[]` (intarray's `gin__int_ops`
//! when the extension is available), one text column per attribute, each with a B-tree index.
//!
//! ```sql
//! CREATE TABLE accounts (id int PRIMARY KEY, name text UNIQUE, tags int[],  -- tag5 is 5
//!                        city text, age text, ..., app_version text);        -- NULL when unset
//! CREATE INDEX ON accounts USING gin (tags gin__int_ops);
//! CREATE INDEX ON accounts (city); ...                                        -- every attribute
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::SinkExt;
use rand::SeedableRng;
use std::fmt::Write as _;
use tagcast_bench::synth::{ATTRS, Model};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use tagcast_bench::stats::Samples;

use super::workload::{
    self, Cond, CpuWindow, Tally, Throughput, account_chunks, attr_name, next_chunk, read_batch,
    tag_ranks, write_batch,
};
use super::{CompareArgs, CountResult};

/// What the PostgreSQL side measured.
pub struct PgResult {
    pub version: String,
    pub intarray: bool,
    pub copy: Duration,
    pub indexes: Duration,
    pub table_bytes: u64,
    pub index_bytes: u64,
    pub total_bytes: u64,
    pub counts: Vec<CountResult>,
    /// `SELECT 1`: a round trip.
    pub floor: Samples,
    pub get_tag: Throughput,
    pub add_tag: Throughput,
}

/// One exact way to count a condition in PostgreSQL: a statement, and the planner settings it
/// runs under (empty: the defaults). Each condition has several (`forms`); the run screens them
/// all and times the fastest.
#[derive(Debug, Clone)]
pub struct Form {
    pub sql: String,
    /// `SET ...` statements applied to the session before it (reset after).
    pub settings: &'static str,
}

impl Form {
    fn new(sql: String) -> Self {
        Self { sql, settings: "" }
    }

    fn with(mut self, settings: &'static str) -> Self {
        self.settings = settings;
        self
    }

    /// The statement, and its settings if any, as the report shows them.
    pub fn describe(&self) -> String {
        if self.settings.is_empty() {
            self.sql.clone()
        } else {
            format!("{} [{}]", self.sql, self.settings.trim_end_matches(';'))
        }
    }
}

/// Settings that keep the planner off bitmap scans (GIN answers only bitmap scans, so the tag
/// conditions become sequential scans; a B-tree a plain index scan).
const NO_BITMAP: &str = "SET enable_bitmapscan = off;";
/// Settings that leave bitmap scans the planner's only choice (GIN and B-tree bitmaps, BitmapAnd).
const BITMAP_ONLY: &str =
    "SET enable_seqscan = off; SET enable_indexscan = off; SET enable_indexonlyscan = off;";
/// Settings that leave a sequential scan as the only choice.
const SEQ_ONLY: &str =
    "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off;";

fn count_where(clause: &str) -> String {
    format!("SELECT count(*) FROM accounts WHERE {clause}")
}

fn array(tags: &[u16]) -> String {
    let ts: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    format!("'{{{}}}'", ts.join(","))
}

/// `tags @@ 'query'::query_int` (intarray).
fn query_int(query: &str) -> String {
    format!("tags @@ '{query}'::query_int")
}

/// Every exact form of a condition's count considered: the index operators of intarray (`@>`,
/// `&&`, `@@`) and of plain arrays, one operator against separate ones, counts combined by
/// inclusion-exclusion, and the planner's choices between bitmap, index and sequential scans.
pub fn forms(cond: &Cond, intarray: bool) -> Vec<Form> {
    let has = |t: &u16| format!("tags @> {}", array(&[*t]));
    let eq = |s: &u8, v: &str| format!("\"{}\" = '{v}'", attr_name(*s));
    let mut forms = Vec::new();
    match cond {
        Cond::Tag(t) => {
            forms.push(Form::new(count_where(&has(t))));
            forms.push(Form::new(count_where(&has(t))).with(NO_BITMAP));
            forms.push(Form::new(count_where(&format!("{t} = ANY(tags)"))));
            if intarray {
                forms.push(Form::new(count_where(&query_int(&t.to_string()))));
            }
        }
        Cond::And(a, b) => {
            let both = format!("tags @> {}", array(&[*a, *b]));
            forms.push(Form::new(count_where(&both)));
            forms.push(Form::new(count_where(&both)).with(NO_BITMAP));
            forms.push(Form::new(count_where(&format!(
                "{} AND {}",
                has(a),
                has(b)
            ))));
            if intarray {
                forms.push(Form::new(count_where(&query_int(&format!("{a} & {b}")))));
            }
        }
        Cond::Or(ts) => {
            let any = format!("tags && {}", array(ts));
            forms.push(Form::new(count_where(&any)));
            forms.push(Form::new(count_where(&any)).with(NO_BITMAP));
            let ors: Vec<String> = ts.iter().map(has).collect();
            forms.push(Form::new(count_where(&ors.join(" OR "))));
            if intarray {
                let q: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                forms.push(Form::new(count_where(&query_int(&q.join(" | ")))));
            }
            // |A ∪ B ∪ C| from the counts of every intersection, each one GIN lookup.
            let mut sum = String::new();
            for (set, sign) in workload::inclusion_exclusion(ts.len()) {
                let tags: Vec<u16> = set.iter().map(|i| ts[*i]).collect();
                let term = format!(
                    "(SELECT count(*) FROM accounts WHERE tags @> {})",
                    array(&tags)
                );
                sum.push_str(match (sum.is_empty(), sign) {
                    (true, _) => "",
                    (false, 1) => " + ",
                    (false, _) => " - ",
                });
                sum.push_str(&term);
            }
            forms.push(Form::new(format!("SELECT {sum}")));
        }
        Cond::AndNot(a, b) => {
            let not = format!("{} AND NOT (tags && {})", has(a), array(&[*b]));
            forms.push(Form::new(count_where(&format!(
                "{} AND NOT {}",
                has(a),
                has(b)
            ))));
            forms.push(Form::new(count_where(&not)));
            forms.push(Form::new(count_where(&not)).with(NO_BITMAP));
            forms.push(Form::new(count_where(&not)).with(BITMAP_ONLY));
            if intarray {
                forms.push(Form::new(count_where(&query_int(&format!("{a} & !{b}")))));
            }
            // |A \ B| = |A| - |A ∩ B|: two GIN lookups (the planner may scan for the first).
            let difference = Form::new(format!(
                "SELECT (SELECT count(*) FROM accounts WHERE {}) - (SELECT count(*) FROM accounts WHERE tags @> {})",
                has(a),
                array(&[*a, *b])
            ));
            forms.push(difference.clone());
            forms.push(difference.with(BITMAP_ONLY));
        }
        Cond::AttrEq(s, v) => {
            forms.push(Form::new(count_where(&eq(s, v))));
            forms.push(Form::new(count_where(&eq(s, v))).with(BITMAP_ONLY));
            forms.push(Form::new(count_where(&eq(s, v))).with(SEQ_ONLY));
        }
        Cond::AttrAndTag(s, v, t) => {
            let both = format!("{} AND {}", eq(s, v), has(t));
            forms.push(Form::new(count_where(&both)));
            forms.push(Form::new(count_where(&both)).with(BITMAP_ONLY));
            forms.push(Form::new(count_where(&both)).with(SEQ_ONLY));
            if intarray {
                let q = format!("{} AND {}", eq(s, v), query_int(&t.to_string()));
                forms.push(Form::new(count_where(&q)));
            }
        }
    }
    forms
}

pub async fn connect(conn: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL ({conn})"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("postgres connection: {e}");
        }
    });
    Ok(client)
}

pub async fn show(client: &Client, setting: &str) -> anyhow::Result<String> {
    Ok(client
        .query_one(&format!("SHOW {setting}"), &[])
        .await?
        .get(0))
}

/// Fails unless the server runs with `fsync` and `synchronous_commit` on: a write benchmark
/// measures acknowledged, durable writes.
pub async fn check_durable(client: &Client) -> anyhow::Result<()> {
    for (setting, want) in [("fsync", "on"), ("synchronous_commit", "on")] {
        let got = show(client, setting).await?;
        if got != want {
            bail!("PostgreSQL runs with {setting} = {got}: the write benchmark needs {want}");
        }
    }
    Ok(())
}

pub async fn run(conn: &str, args: &CompareArgs, seed: u64) -> anyhow::Result<PgResult> {
    let accounts = args.set.accounts;
    let client = connect(conn).await?;
    let version = show(&client, "server_version").await?;
    check_durable(&client).await?;
    let intarray: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'intarray'",
            &[],
        )
        .await?
        .get(0);
    let intarray = intarray > 0;
    if intarray {
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS intarray")
            .await?;
    }
    println!(
        "postgres {version}: loading {accounts} accounts (COPY; GIN on tags with {})",
        if intarray {
            "intarray's gin__int_ops"
        } else {
            "the default array_ops (intarray unavailable)"
        }
    );
    let started = Instant::now();
    load(&client, seed, accounts).await?;
    let copy = started.elapsed();
    let started = Instant::now();
    index(&client, intarray).await?;
    let indexes = started.elapsed();
    let sizes = client
        .query_one(
            "SELECT pg_total_relation_size('accounts'), pg_relation_size('accounts'), pg_indexes_size('accounts'), (SELECT count(*) FROM accounts)",
            &[],
        )
        .await?;
    let total_bytes = sizes.get::<_, i64>(0) as u64;
    let table_bytes = sizes.get::<_, i64>(1) as u64;
    let index_bytes = sizes.get::<_, i64>(2) as u64;
    let rows = sizes.get::<_, i64>(3) as u64;
    if rows != accounts {
        bail!("postgres: the table holds {rows} rows, expected {accounts}");
    }
    println!(
        "postgres: COPY {:.1} s, indexes + VACUUM ANALYZE {:.1} s; table {:.0} MiB, indexes {:.0} MiB, total {:.0} MiB ({:.0} B/account)",
        copy.as_secs_f64(),
        indexes.as_secs_f64(),
        table_bytes as f64 / (1 << 20) as f64,
        index_bytes as f64 / (1 << 20) as f64,
        total_bytes as f64 / (1 << 20) as f64,
        total_bytes as f64 / accounts as f64
    );
    check_accounts(&client, seed, accounts).await?;

    let mut counts = Vec::new();
    for cond in workload::conditions() {
        let forms = forms(&cond, intarray);
        // Screening: every exact form a few times; then the fastest in full.
        let mut screening = workload::Screening::default();
        for form in &forms {
            let (n, samples) = time_form(&client, form, args.screen_timing()).await?;
            println!(
                "postgres: screening `{}` = {n}: p50 {:.1} ms ({} runs; plan: {})",
                form.describe(),
                samples.p50().as_secs_f64() * 1e3,
                samples.len(),
                plan_summary(&explain(&client, form, false).await?)
            );
            screening.add(form.describe(), n, samples.p50());
        }
        let form = forms[screening.pick()?].clone();
        let (n, samples) = time_form(&client, &form, args.baseline_timing()).await?;
        if n != screening.forms[0].1 {
            bail!(
                "postgres `{}` counted {n}, {} when screened",
                form.describe(),
                screening.forms[0].1
            );
        }
        let plan = explain(&client, &form, true).await?;
        println!(
            "postgres: {} = {n}: p50 {:.1} ms ({} runs); EXPLAIN (ANALYZE, BUFFERS):\n    {}",
            form.describe(),
            samples.p50().as_secs_f64() * 1e3,
            samples.len(),
            plan.join("\n    ")
        );
        counts.push(CountResult {
            count: n,
            samples,
            form: format!("{} (plan: {})", form.describe(), plan_summary(&plan)),
            screening,
        });
    }

    let one = client.prepare("SELECT 1").await?;
    let (_, floor) = workload::time_counts(args.timing(), || {
        let (client, one) = (&client, &one);
        async move {
            client.query_one(one, &[]).await?;
            Ok(0)
        }
    })
    .await?;
    println!(
        "postgres: SELECT 1 (a round trip): p50 {:.3} ms",
        floor.p50().as_secs_f64() * 1e3
    );

    let get_tag = measured_throughput(conn, args, Op::GetTag).await?;
    println!(
        "postgres: get_tag (SELECT name, tags WHERE name = ANY($1), 100 names): {:.0} requests/s; {}",
        get_tag.requests_per_s,
        CpuWindow::describe(&get_tag)
    );
    let add_tag = measured_throughput(conn, args, Op::AddTag(Update::Add { intarray })).await?;
    println!(
        "postgres: add_tag (one UPDATE of 100 rows per transaction, synchronous_commit on): {:.0} updates/s ({} requests aborted by deadlocks); {}",
        add_tag.updates_per_s(),
        add_tag.retries,
        CpuWindow::describe(&add_tag)
    );
    Ok(PgResult {
        version,
        intarray,
        copy,
        indexes,
        table_bytes,
        index_bytes,
        total_bytes,
        counts,
        floor,
        get_tag,
        add_tag,
    })
}

/// `throughput` with compare's connections and seconds, and the machine's busy cores.
async fn measured_throughput(conn: &str, args: &CompareArgs, op: Op) -> anyhow::Result<Throughput> {
    let cpu = CpuWindow::start(None);
    let mut t = throughput(conn, args.concurrency, args.seconds, args.set.accounts, op).await?;
    cpu.finish(None, &mut t);
    Ok(t)
}

/// Times `form` prepared under its settings, then resets them.
async fn time_form(
    client: &Client,
    form: &Form,
    timing: workload::Timing,
) -> anyhow::Result<(u64, Samples)> {
    client
        .batch_execute(&format!("RESET ALL; {}", form.settings))
        .await?;
    let stmt = client.prepare(&form.sql).await?;
    let result = workload::time_counts(timing, || {
        let (client, stmt) = (client, &stmt);
        async move {
            let n: i64 = client.query_one(stmt, &[]).await?.get(0);
            u64::try_from(n).context("a negative count")
        }
    })
    .await
    .with_context(|| format!("postgres: {}", form.describe()));
    client.batch_execute("RESET ALL").await?;
    result
}

/// The plan of `form` under its settings (`analyze`: run, with timings and buffers).
async fn explain(client: &Client, form: &Form, analyze: bool) -> anyhow::Result<Vec<String>> {
    client
        .batch_execute(&format!("RESET ALL; {}", form.settings))
        .await?;
    let options = if analyze { "(ANALYZE, BUFFERS) " } else { "" };
    let plan = client
        .query(&format!("EXPLAIN {options}{}", form.sql), &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect());
    client.batch_execute("RESET ALL").await?;
    Ok(plan?)
}

/// The scan nodes of a plan, in order: "Parallel Bitmap Heap Scan on accounts, ...".
fn plan_summary(plan: &[String]) -> String {
    plan.iter()
        .map(|l| l.trim().trim_start_matches("->").trim())
        .filter(|l| l.contains("Scan") || l.starts_with("BitmapAnd") || l.starts_with("BitmapOr"))
        .map(|l| l.split("  (").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn columns() -> String {
    let mut cols = vec!["id".to_string(), "name".into(), "tags".into()];
    cols.extend(ATTRS.iter().map(|a| format!("\"{}\"", a.name)));
    cols.join(", ")
}

/// Creates the table and COPYs every account into it in the same transaction (with
/// `wal_level = minimal` PostgreSQL then skips the WAL for the data and writes it frozen).
async fn load(client: &Client, seed: u64, accounts: u64) -> anyhow::Result<()> {
    let attrs: String = ATTRS
        .iter()
        .map(|a| format!(", \"{}\" text", a.name))
        .collect();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS accounts;
             BEGIN;
             CREATE TABLE accounts (id int NOT NULL, name text NOT NULL, tags int[] NOT NULL{attrs});"
        ))
        .await?;
    let model = Model::new(seed);
    let sink = client
        .copy_in::<_, Bytes>(&format!(
            "COPY accounts ({}) FROM STDIN WITH (FREEZE)",
            columns()
        ))
        .await?;
    futures_util::pin_mut!(sink);
    let rx = account_chunks(seed, accounts, 20_000);
    let mut loaded = 0u64;
    while let Some(chunk) = next_chunk(&rx) {
        let mut buf = String::with_capacity(chunk.len() * 160);
        for a in &chunk {
            let tags = tag_ranks(a)
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(",");
            write!(
                buf,
                "{}\t{}\t{{{tags}}}",
                a.index,
                Model::account_name(a.index)
            )?;
            for (slot, v) in a.attrs.iter().enumerate() {
                match v {
                    Some(v) => write!(buf, "\t{}", model.value_name(slot as u8, *v))?,
                    None => buf.push_str("\t\\N"),
                }
            }
            buf.push('\n');
        }
        loaded += chunk.len() as u64;
        sink.send(Bytes::from(buf)).await?;
    }
    let rows = sink.as_mut().finish().await?;
    client.batch_execute("COMMIT").await?;
    if rows != accounts || loaded != accounts {
        bail!("postgres: COPY wrote {rows} rows, expected {accounts}");
    }
    Ok(())
}

async fn index(client: &Client, intarray: bool) -> anyhow::Result<()> {
    let ops = if intarray { " gin__int_ops" } else { "" };
    let mut sql = format!(
        "SET maintenance_work_mem = '1GB';
         SET max_parallel_maintenance_workers = 2;
         ALTER TABLE accounts ADD PRIMARY KEY (id);
         CREATE UNIQUE INDEX accounts_name ON accounts (name);
         CREATE INDEX accounts_tags ON accounts USING gin (tags{ops});"
    );
    for a in &ATTRS {
        write!(
            sql,
            "CREATE INDEX accounts_{0} ON accounts (\"{0}\");",
            a.name
        )?;
    }
    // Several statements in one call run as one transaction; VACUUM must run outside any.
    client.batch_execute(&sql).await?;
    client.batch_execute("VACUUM ANALYZE accounts").await?;
    Ok(())
}

/// Sampled accounts read back (the get_tag query) as the model generated them.
async fn check_accounts(client: &Client, seed: u64, accounts: u64) -> anyhow::Result<()> {
    let model = Model::new(seed);
    let step = (accounts / 100).max(1);
    let stmt = client
        .prepare("SELECT tags FROM accounts WHERE name = $1")
        .await?;
    for i in (0..accounts).step_by(step as usize) {
        let a = model.account(i);
        let got: Vec<i32> = client
            .query_one(&stmt, &[&Model::account_name(i)])
            .await?
            .get(0);
        let want: Vec<i32> = tag_ranks(&a).iter().map(|t| *t as i32).collect();
        if got != want {
            bail!("postgres: account {i} has tags {got:?}, the model says {want:?}");
        }
    }
    Ok(())
}

/// A request of a throughput run on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// get_tag: `SELECT name, tags FROM accounts WHERE name = ANY($1)` with 100 names.
    GetTag,
    /// add_tag: one `UPDATE accounts ... FROM unnest(names, t1, t2)` of 100 rows per
    /// transaction (autocommit).
    AddTag(Update),
}

/// What an add_tag UPDATE does to the 2 tags of each account.
#[derive(Debug, Clone, Copy)]
pub enum Update {
    /// Adds them to the account's tags (loadgen `--plain-add`); with intarray's `|` when the
    /// extension is there, else through `unnest` and `DISTINCT`.
    Add { intarray: bool },
    /// Replaces the account's tags with them (loadgen's default, `Replace: 1`).
    Replace,
}

const GET_TAG: &str = "SELECT name, tags FROM accounts WHERE name = ANY($1)";

/// One statement, one transaction: 2 tags set on each of 100 accounts (the table `accounts`,
/// `name text` unique, `tags int[]`).
pub fn add_tag_sql(update: Update) -> &'static str {
    match update {
        Update::Add { intarray: true } => {
            "UPDATE accounts AS a SET tags = a.tags | ARRAY[v.t1, v.t2] \
             FROM unnest($1::text[], $2::int[], $3::int[]) AS v(name, t1, t2) WHERE a.name = v.name"
        }
        Update::Add { intarray: false } => {
            "UPDATE accounts AS a SET tags = ARRAY(SELECT DISTINCT x FROM unnest(a.tags || ARRAY[v.t1, v.t2]) AS x ORDER BY x) \
             FROM unnest($1::text[], $2::int[], $3::int[]) AS v(name, t1, t2) WHERE a.name = v.name"
        }
        // The two tags, sorted and distinct, as tagcast keeps a replaced set.
        Update::Replace => {
            "UPDATE accounts AS a SET tags = CASE WHEN v.t1 = v.t2 THEN ARRAY[v.t1] \
             ELSE ARRAY[least(v.t1, v.t2), greatest(v.t1, v.t2)] END \
             FROM unnest($1::text[], $2::int[], $3::int[]) AS v(name, t1, t2) WHERE a.name = v.name"
        }
    }
}

/// `concurrency` connections to `conn` running `op` for `seconds` on the accounts `u00000000`..
/// of a table of `accounts` rows (the requests of `workload::write_batch` and `read_batch`).
/// Like loadgen, requests in flight at the deadline are finished and counted; an add_tag
/// aborted by a deadlock is counted in `retries`, not in the rate, and the worker goes on with
/// a new request. Any other error, or a request that finds fewer rows than it names, fails the
/// run. The CPU fields are left to the caller.
pub async fn throughput(
    conn: &str,
    concurrency: usize,
    seconds: u64,
    accounts: u64,
    op: Op,
) -> anyhow::Result<Throughput> {
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(connect(conn).await?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers = clients
        .into_iter()
        .map(|client| worker(client, op, accounts, deadline))
        .collect();
    workload::drive(workers, started).await
}

async fn worker(client: Client, op: Op, accounts: u64, deadline: Instant) -> anyhow::Result<Tally> {
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut tally = Tally::default();
    let stmt = match op {
        Op::GetTag => client.prepare(GET_TAG).await?,
        Op::AddTag(update) => client.prepare(add_tag_sql(update)).await?,
    };
    while Instant::now() < deadline {
        match op {
            Op::GetTag => {
                let names = read_batch(&mut rng, accounts);
                let started = Instant::now();
                let rows = client.query(&stmt, &[&names]).await?;
                let named: Vec<(String, Vec<String>)> = rows
                    .iter()
                    .map(|r| {
                        let tags: Vec<i32> = r.get(1);
                        (
                            r.get(0),
                            tags.iter().map(|t| workload::tag_name(*t as u16)).collect(),
                        )
                    })
                    .collect();
                tally.latencies.push(started.elapsed());
                if named.len() != names.len() {
                    bail!(
                        "postgres: {} rows for {} accounts",
                        named.len(),
                        names.len()
                    );
                }
            }
            Op::AddTag(_) => {
                let mut batch = write_batch(&mut rng, accounts);
                // Rows in one order for every transaction, which keeps deadlocks rare.
                batch.sort();
                let names: Vec<&str> = batch.iter().map(|(n, _)| n.as_str()).collect();
                let t1: Vec<i32> = batch.iter().map(|(_, t)| t[0] as i32).collect();
                let t2: Vec<i32> = batch.iter().map(|(_, t)| t[1] as i32).collect();
                let started = Instant::now();
                match client.execute(&stmt, &[&names, &t1, &t2]).await {
                    Ok(n) if n == names.len() as u64 => {}
                    Ok(n) => bail!("postgres: updated {n} rows of {}", names.len()),
                    Err(e) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {
                        tally.retries += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                tally.latencies.push(started.elapsed());
            }
        }
        tally.ok += 1;
    }
    Ok(tally)
}
