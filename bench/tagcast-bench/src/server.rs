//! Starts the real tagcast server (`tagcast serve --config ...`) for a benchmark.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tagcast_bench::synth::SDKAPPID;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The app key of the benchmark's server.
pub const KEY: &str = "bench-secret-key";

/// A running tagcast, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// From spawn to the "listening" line: store open and index rebuild included.
    pub startup: Duration,
}

/// The `tagcast` binary: `--tagcast-bin`, or the one beside this benchmark binary.
pub fn tagcast_bin(arg: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(bin) = arg {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("benchmark binary has no folder")?
        .join("tagcast");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p tagcast) or pass --tagcast-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// The index rebuild time the server logged at start (`audience index rebuilt ... elapsed_ms=N`)
/// in `run_dir/tagcast.log`.
pub fn logged_rebuild(run_dir: &Path) -> Option<Duration> {
    let log = std::fs::read_to_string(run_dir.join("tagcast.log")).ok()?;
    let line = log.lines().find(|l| l.contains("audience index rebuilt"))?;
    let ms = line.split("elapsed_ms=").nth(1)?;
    let digits: String = ms.chars().take_while(char::is_ascii_digit).collect();
    Some(Duration::from_millis(digits.parse().ok()?))
}

impl Server {
    /// Starts tagcast on `data_dir` with limits that let a benchmark push as fast as it likes:
    /// no daily quota, no minimum interval, no API rate limit. Config and logs go to `run_dir`.
    pub async fn start(bin: &Path, data_dir: &Path, run_dir: &Path) -> anyhow::Result<Server> {
        Self::start_on(bin, data_dir, None, run_dir).await
    }

    /// `start`, keeping the records in the PostgreSQL database at `store_url` (the config's
    /// `[store] url`) when one is given, else in the embedded store in `data_dir`.
    pub async fn start_on(
        bin: &Path,
        data_dir: &Path,
        store_url: Option<&str>,
        run_dir: &Path,
    ) -> anyhow::Result<Server> {
        Self::start_node(bin, data_dir, store_url, None, run_dir).await
    }

    /// `start_on`, as the node `node_id` of several sharing the store (the config's top-level
    /// `node_id`) when one is given.
    pub async fn start_node(
        bin: &Path,
        data_dir: &Path,
        store_url: Option<&str>,
        node_id: Option<&str>,
        run_dir: &Path,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(run_dir)?;
        let store = store_url.map_or(String::new(), |url| format!("\n[store]\nurl = \"{url}\"\n"));
        let node = node_id.map_or(String::new(), |id| format!("node_id = \"{id}\"\n"));
        let config = run_dir.join("tagcast.toml");
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:0"
data_dir = "{data}"
{node}{store}
[[apps]]
sdkappid = {SDKAPPID}
secret_key = "{KEY}"
admins = ["administrator"]

[apps.limits]
api_calls_per_second = 1000000
push_daily_quota = 4000000000
push_min_interval_ms = 0
tags_per_app = 2000
tags_per_account = 1000
"#,
                data = data_dir.canonicalize()?.display()
            ),
        )?;
        let log = std::fs::File::create(run_dir.join("tagcast.log"))?;
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            // Warnings, and the store's info lines (the index rebuild time).
            .env("TAGCAST_LOG", "warn,tagcast_store=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let Some(line) = lines.next_line().await? else {
                let log = std::fs::read_to_string(run_dir.join("tagcast.log")).unwrap_or_default();
                bail!("tagcast exited before listening:\n{log}");
            };
            if let Some(url) = line.strip_prefix("tagcast listening on ") {
                break url.trim().to_string();
            }
        };
        let startup = started.elapsed();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            url,
            startup,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server (SIGKILL: every acknowledged write is already durable).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
