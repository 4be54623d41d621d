//! What PostgreSQL does during a throughput run: the CPU its processes use, the statements it
//! runs (`pg_stat_statements`, when the server preloads it) and what its busy backends wait for
//! (`pg_stat_activity`, sampled). Nothing here changes what is measured.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::compare::baseline_pg::connect;

/// The cluster's postmaster on this machine: the parent of our own backend.
pub async fn postmaster_pid(client: &Client) -> Option<u32> {
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).ok()?;
    stat_fields(&stat).get(1)?.parse().ok()
}

/// The fields of a /proc stat file after the command name: state is [0], ppid [1], utime [11],
/// stime [12], cutime [13], cstime [14].
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect()
}

/// CPU seconds used so far by the cluster: the postmaster (with its children that exited) and
/// every live child (backends, WAL writer, checkpointer, ...).
pub fn cluster_cpu_secs(postmaster: u32) -> f64 {
    let ticks = |fields: &[&str], i: usize| -> f64 {
        fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0)
    };
    let mut total = 0.0;
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{postmaster}/stat")) {
        let f = stat_fields(&stat);
        total += ticks(&f, 11) + ticks(&f, 12) + ticks(&f, 13) + ticks(&f, 14);
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return total / 100.0;
    };
    let parent = postmaster.to_string();
    for entry in procs.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let f = stat_fields(&stat);
        if f.get(1) == Some(&parent.as_str()) {
            total += ticks(&f, 11) + ticks(&f, 12);
        }
    }
    // USER_HZ, 100 per second on every mainstream architecture.
    total / 100.0
}

/// `pg_stat_statements` of the server, read through the maintenance database where the
/// extension was created.
pub struct Statements<'a> {
    client: &'a Client,
}

/// One normalized statement and what it cost during a run.
#[derive(Debug, Clone)]
pub struct Statement {
    pub query: String,
    pub calls: u64,
    pub total_ms: f64,
    pub rows: u64,
}

/// The statements of one database during a run, those that took the most time first.
#[derive(Debug, Clone, Default)]
pub struct StatementStats {
    pub statements: Vec<Statement>,
}

impl StatementStats {
    pub fn calls(&self) -> u64 {
        self.statements.iter().map(|s| s.calls).sum()
    }

    pub fn total_ms(&self) -> f64 {
        self.statements.iter().map(|s| s.total_ms).sum()
    }

    /// "1.00x `BEGIN` (0.001 ms, 0 rows each); ..." for the log: calls per one of `per`
    /// (requests or transactions), mean time and rows of the `top` statements.
    pub fn describe(&self, per: u64, top: usize) -> String {
        let per = per.max(1) as f64;
        self.statements
            .iter()
            .take(top)
            .map(|s| {
                format!(
                    "{:.2}x `{}` ({:.3} ms, {:.0} rows each)",
                    s.calls as f64 / per,
                    shorten(&s.query, 90),
                    s.total_ms / s.calls.max(1) as f64,
                    s.rows as f64 / s.calls.max(1) as f64
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `query` on one line, cut to `max` characters.
fn shorten(query: &str, max: usize) -> String {
    let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max).collect();
    format!("{cut}...")
}

impl<'a> Statements<'a> {
    /// The extension on `client`'s database, if the server preloads it (else why not).
    pub async fn enable(client: &'a Client) -> Result<Statements<'a>, String> {
        let preloaded: String = client
            .query_one("SHOW shared_preload_libraries", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if !preloaded.contains("pg_stat_statements") {
            return Err("the server does not preload pg_stat_statements".into());
        }
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .map_err(|e| e.to_string())?;
        Ok(Statements { client })
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        self.client
            .batch_execute("SELECT pg_stat_statements_reset()")
            .await?;
        Ok(())
    }

    /// What ran in database `db` since the last reset, most time first.
    pub async fn read(&self, db: &str) -> anyhow::Result<StatementStats> {
        let rows = self
            .client
            .query(
                "SELECT query, calls, total_exec_time, rows FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY total_exec_time DESC",
                &[&db],
            )
            .await?;
        Ok(StatementStats {
            statements: rows
                .iter()
                .map(|r| Statement {
                    query: r.get(0),
                    calls: r.get::<_, i64>(1) as u64,
                    total_ms: r.get(2),
                    rows: r.get::<_, i64>(3) as u64,
                })
                .collect(),
        })
    }
}

/// What the backends of one database were doing, sampled every few milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    pub samples: u64,
    /// Backend-samples by "state: wait event" (idle backends left out).
    pub busy: HashMap<String, u64>,
}

impl Waits {
    /// Busy backends on average (in a transaction or running a statement).
    pub fn busy_backends(&self) -> f64 {
        self.busy.values().sum::<u64>() as f64 / self.samples.max(1) as f64
    }

    /// "1.00 busy backends: idle in transaction (Client:ClientRead) 61%, ..." for the log.
    pub fn describe(&self, top: usize) -> String {
        let all = self.busy.values().sum::<u64>().max(1) as f64;
        let mut busy: Vec<(&String, &u64)> = self.busy.iter().collect();
        busy.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shares: Vec<String> = busy
            .iter()
            .take(top)
            .map(|(what, n)| format!("{what} {:.0}%", **n as f64 * 100.0 / all))
            .collect();
        format!(
            "{:.2} busy backends on average: {}",
            self.busy_backends(),
            shares.join(", ")
        )
    }
}

/// Samples `pg_stat_activity` for database `db` on a connection of its own until stopped.
pub struct WaitSampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<anyhow::Result<Waits>>,
}

/// How often the sampler looks.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

impl WaitSampler {
    pub async fn start(conn: &str, db: &str) -> anyhow::Result<Self> {
        let client = connect(conn).await?;
        let stmt = client
            .prepare(
                "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'no wait') \
                 FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' \
                 AND pid <> pg_backend_pid() AND state <> 'idle'",
            )
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let db = db.to_string();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut waits = Waits::default();
                while !stop.load(Ordering::Relaxed) {
                    for row in client.query(&stmt, &[&db]).await? {
                        let state: String = row.get(0);
                        let wait: String = row.get(1);
                        *waits.busy.entry(format!("{state} ({wait})")).or_default() += 1;
                    }
                    waits.samples += 1;
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
                Ok(waits)
            }
        });
        Ok(Self { stop, task })
    }

    pub async fn finish(self) -> anyhow::Result<Waits> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}
