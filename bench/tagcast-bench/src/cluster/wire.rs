//! What crosses between the nodes through PostgreSQL during the pushes, counted two ways: the
//! bytes on every node's connections to PostgreSQL (the kernel's TCP counters, read with `ss`),
//! and the records a push makes the other nodes read (the change-log entry, its notification,
//! the task and its frozen audience), sized in the database.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use tagcast_bench::synth::SDKAPPID;
use tokio_postgres::Client;

/// Payload bytes sent and received so far on each established connection to PostgreSQL's port,
/// by (process, local address).
#[derive(Debug, Clone, Default)]
struct Sockets(HashMap<(u32, String), (u64, u64)>);

/// `ss -tinpH state established dport = :PORT`: one line per socket (its local address and its
/// process, `users:(("tagcast",pid=N,fd=M))`), then an indented line of TCP counters
/// (`bytes_sent:`, `bytes_received:`; `bytes_acked:` on kernels before 4.19).
fn sockets(port: u16) -> anyhow::Result<Sockets> {
    let out = std::process::Command::new("ss")
        .args([
            "-tinpH",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .context("running ss (iproute2), which counts the bytes to PostgreSQL")?;
    if !out.status.success() {
        bail!("ss failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(parse_ss(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_ss(text: &str) -> Sockets {
    let mut sockets = HashMap::new();
    let mut current: Option<(u32, String)> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // Recv-Q, Send-Q, local address, peer address, process.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid = line
                .split("pid=")
                .nth(1)
                .map(|rest| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .and_then(|digits| digits.parse().ok());
            current = pid.zip(fields.get(2).map(|local| local.to_string()));
            continue;
        }
        let Some(key) = &current else { continue };
        let counter = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let sent = counter("bytes_sent:").or_else(|| counter("bytes_acked:"));
        let received = counter("bytes_received:");
        if sent.is_some() || received.is_some() {
            sockets.insert(
                key.clone(),
                (sent.unwrap_or_default(), received.unwrap_or_default()),
            );
        }
    }
    Sockets(sockets)
}

/// A window over which the bytes to PostgreSQL are counted.
pub struct Window {
    port: u16,
    before: Sockets,
    started: Instant,
}

/// What the processes exchanged with PostgreSQL during a window.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// By process: bytes sent to PostgreSQL and received from it.
    pub by_pid: HashMap<u32, (u64, u64)>,
    /// Connections that were open at the start and closed before the end (their bytes of the
    /// window are not counted).
    pub closed: usize,
    pub secs: f64,
}

impl Window {
    pub fn start(port: u16) -> anyhow::Result<Window> {
        Ok(Window {
            port,
            before: sockets(port)?,
            started: Instant::now(),
        })
    }

    pub fn finish(self) -> anyhow::Result<Traffic> {
        let after = sockets(self.port)?;
        let mut traffic = Traffic {
            secs: self.started.elapsed().as_secs_f64(),
            ..Traffic::default()
        };
        for (key, (sent, received)) in &after.0 {
            // A connection opened during the window counts from zero.
            let (s0, r0) = self.before.0.get(key).copied().unwrap_or_default();
            let entry = traffic.by_pid.entry(key.0).or_default();
            entry.0 += sent.saturating_sub(s0);
            entry.1 += received.saturating_sub(r0);
        }
        traffic.closed = self
            .before
            .0
            .keys()
            .filter(|k| !after.0.contains_key(*k))
            .count();
        Ok(traffic)
    }
}

impl Traffic {
    /// Bytes sent and received by the processes `pids`.
    pub fn of(&self, pids: &[u32]) -> (u64, u64) {
        pids.iter()
            .filter_map(|pid| self.by_pid.get(pid))
            .fold((0, 0), |(s, r), (ds, dr)| (s + ds, r + dr))
    }
}

/// Where the change log and the tasks of the benchmark's app stood.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    position: i64,
    seq: i64,
}

/// The records written since a `Mark`: change-log entries and tasks, with their sizes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Records {
    pub entries: u64,
    /// `octet_length(changes)` of the entries: what each node reads of the log.
    pub entry_bytes: u64,
    pub tasks: u64,
    /// `octet_length(meta::text)` of the tasks and `octet_length(audience)` of their frozen
    /// audiences: what a node that did not create a task reads to deliver it.
    pub meta_bytes: u64,
    pub audience_bytes: u64,
}

pub async fn mark(db: &Client) -> anyhow::Result<Mark> {
    let app = SDKAPPID as i64;
    let position = db
        .query_one(
            "SELECT coalesce(max(position), 0) FROM change_log_heads WHERE app = $1",
            &[&app],
        )
        .await?
        .get(0);
    let seq = db
        .query_one(
            "SELECT coalesce(max(seq), 0) FROM tasks WHERE app = $1",
            &[&app],
        )
        .await?
        .get(0);
    Ok(Mark { position, seq })
}

pub async fn since(db: &Client, mark: Mark) -> anyhow::Result<Records> {
    let app = SDKAPPID as i64;
    let log = db
        .query_one(
            "SELECT count(*), coalesce(sum(octet_length(changes)), 0)::bigint FROM change_log \
             WHERE app = $1 AND position > $2",
            &[&app, &mark.position],
        )
        .await?;
    let tasks = db
        .query_one(
            "SELECT count(*), coalesce(sum(octet_length(t.meta::text)), 0)::bigint, \
             coalesce(sum(octet_length(a.audience)), 0)::bigint \
             FROM tasks t LEFT JOIN task_audiences a ON a.app = t.app AND a.seq = t.seq \
             WHERE t.app = $1 AND t.seq > $2",
            &[&app, &mark.seq],
        )
        .await?;
    let n = |row: &tokio_postgres::Row, i: usize| row.get::<_, i64>(i) as u64;
    Ok(Records {
        entries: n(&log, 0),
        entry_bytes: n(&log, 1),
        tasks: n(&tasks, 0),
        meta_bytes: n(&tasks, 1),
        audience_bytes: n(&tasks, 2),
    })
}

/// The benchmark's own statement while the pushes are watched (`pg_stat_statements` counts it
/// in the database too: `is_ours` leaves it out).
const CURSORS_WRITTEN: &str = "SELECT count(*) FROM cursors WHERE app = $1 AND seq = \
                               (SELECT max(seq) FROM tasks WHERE app = $1 AND seq > $2)";

/// Whether `query` (as `pg_stat_statements` shows it) is the benchmark's, not a node's.
pub fn is_ours(query: &str) -> bool {
    query == CURSORS_WRITTEN
}

/// Waits until `sessions` accounts have a cursor at the last task made since `mark` (every
/// node has written the deliveries of that push, which it does a few times a second); an error
/// after `within`.
pub async fn await_cursors(
    db: &Client,
    mark: Mark,
    sessions: usize,
    within: std::time::Duration,
) -> anyhow::Result<()> {
    let app = SDKAPPID as i64;
    let started = Instant::now();
    loop {
        let written: i64 = db
            .query_one(CURSORS_WRITTEN, &[&app, &mark.seq])
            .await?
            .get(0);
        if written as usize == sessions {
            return Ok(());
        }
        if started.elapsed() > within {
            bail!("{written} of {sessions} deliveries of the last push recorded after {within:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The channel the nodes `LISTEN` on (docs/storage.md, "Several nodes on one database").
const CHANNEL: &str = "tagcast_log";

/// Bytes of one notification as PostgreSQL sends it to each listening connection: a
/// NotificationResponse message, type byte, length, the sender's process id, then the channel
/// and the payload (the writing node's id), each NUL-terminated.
pub fn notification_bytes(node_id: &str) -> u64 {
    (1 + 4 + 4 + CHANNEL.len() + 1 + node_id.len() + 1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_of_each_socket() {
        let text = "0      0          127.0.0.1:52654      127.0.0.1:25432 users:((\"tagcast\",pid=1234,fd=25))\n\
                    \t cubic wscale:7,7 rto:204 bytes_sent:3525 bytes_acked:3526 bytes_received:3910 segs_out:40\n\
                    0      0          127.0.0.1:52656      127.0.0.1:25432 users:((\"tagcast\",pid=99,fd=7))\n\
                    \t cubic bytes_acked:10 bytes_received:20\n";
        let s = parse_ss(text).0;
        assert_eq!(s[&(1234, "127.0.0.1:52654".to_string())], (3525, 3910));
        assert_eq!(s[&(99, "127.0.0.1:52656".to_string())], (10, 20));
    }
}
