//! Latency samples, percentiles, batched timing of fast calls, and the process's resident memory.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Durations of repeated runs of one operation.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        self.0.iter().copied()
    }

    /// The `q` quantile (nearest rank), e.g. 0.5 or 0.99.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }
}

/// How long one batch of calls of `time_batched` lasts, at least: long enough that the two clock
/// readings around it (tens of nanoseconds) are noise.
pub const BATCH_TARGET: Duration = Duration::from_micros(500);

/// Times `f` in `samples` batches, after a warm-up: every batch runs `f` as many times as fill
/// `BATCH_TARGET` (at least once), and each sample is the batch's time divided by its calls. So a
/// call of nanoseconds is not timed with two `Instant::now()` of its own. The batch size comes
/// from a calibration run; returns the samples and the calls per batch. A sample is a mean over
/// its batch: its p99 is the slowest batches', not the slowest single call's.
pub fn time_batched<R>(samples: usize, mut f: impl FnMut() -> R) -> (Samples, u64) {
    // Warm-up and calibration: double the calls until they fill the target.
    let mut calls = 1u64;
    let batch = loop {
        let started = Instant::now();
        for _ in 0..calls {
            black_box(f());
        }
        let took = started.elapsed();
        if took >= BATCH_TARGET || calls >= 1 << 24 {
            let per_call = took.as_secs_f64() / calls as f64;
            break ((BATCH_TARGET.as_secs_f64() / per_call.max(1e-12)).ceil() as u64).max(1);
        }
        calls *= 2;
    };
    let mut out = Samples::new();
    for _ in 0..samples.max(1) {
        let started = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        out.push(Duration::from_secs_f64(
            started.elapsed().as_secs_f64() / batch as f64,
        ));
    }
    (out, batch)
}

/// Milliseconds with 4 decimals, or 3 significant digits below 0.01 ms (a count of 60 ns is
/// 0.0000600, not 0.0001).
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms <= 0.0 || ms >= 0.01 {
        return format!("{ms:.4}");
    }
    let decimals = (2 - ms.log10().floor() as i32).clamp(4, 9) as usize;
    format!("{ms:.decimals$}")
}

/// `a / b` as a ratio, `x` suffixed.
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "n/a".into();
    }
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

/// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`), for `pid` or this process.
pub fn proc_status_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".into(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory in MiB of `pid` (or this process).
pub fn rss_mib(pid: Option<u32>) -> f64 {
    proc_status_kb(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0
}

/// CPU seconds (user + system) used so far by `pid` (or this process), from /proc/PID/stat.
pub fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".into(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports in USER_HZ, 100 per second on every mainstream architecture.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU seconds of the whole machine so far, all cores: (busy, busy + idle), from /proc/stat.
pub fn machine_cpu_secs() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    // user nice system idle iowait irq softirq steal ...
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    // Idle and I/O wait are not busy; steal is time the hypervisor gave to someone else.
    let total: f64 = ticks.iter().sum::<f64>() - field(7);
    let busy = total - field(3) - field(4);
    (busy / 100.0, total / 100.0)
}

/// Prints rows as an aligned table; the first row is the header.
pub fn print_table(rows: &[Vec<String>]) {
    print!("{}", table(rows));
}

/// Rows as an aligned Markdown table, one line each; the first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", line.join(" | ")));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::new();
        for i in 1..=100 {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.p50(), Duration::from_millis(50));
        assert_eq!(s.p99(), Duration::from_millis(99));
        assert_eq!(s.max(), Duration::from_millis(100));
    }

    #[test]
    fn batched_timing_runs_many_calls_per_sample() {
        let mut calls = 0u64;
        let (samples, batch) = time_batched(10, || {
            calls += 1;
            calls
        });
        assert_eq!(samples.len(), 10);
        assert!(
            batch > 1,
            "a call of nanoseconds fills a batch with many: {batch}"
        );
        assert!(calls >= 10 * batch);
        assert!(samples.p50() < Duration::from_micros(50));
    }
}
