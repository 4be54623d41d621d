//! The real tagcast (`tagcast serve --config`) with one provider pointed at the fake: its
//! accounts and devices registered through the API, one push to all of them, and the push's
//! statistics.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tagcast_bench::synth::SDKAPPID;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::fakes::{Fake, Provider};
use crate::client::Api;
use crate::server::KEY;

/// A running tagcast, killed when dropped.
pub struct Tagcast {
    child: Child,
    pub api: Api,
    pub pid: u32,
}

/// The config of `Server::start` (no quota, no minimum interval, no rate limit) with the
/// provider's table, and Web Push endpoints on loopback allowed (the fake's).
fn config(data_dir: &Path, tables: &str) -> anyhow::Result<String> {
    Ok(format!(
        r#"listen = "127.0.0.1:0"
data_dir = "{data}"

[[apps]]
sdkappid = {SDKAPPID}
secret_key = "{KEY}"
admins = ["administrator"]

[apps.limits]
api_calls_per_second = 1000000
push_daily_quota = 4000000000
push_min_interval_ms = 0
webpush_private_endpoints = true

{tables}"#,
        data = data_dir.canonicalize()?.display()
    ))
}

impl Tagcast {
    /// Starts `bin` on the fresh `data_dir` with `tables`; config and log in `run_dir`.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        run_dir: &Path,
        tables: &str,
    ) -> anyhow::Result<Tagcast> {
        std::fs::create_dir_all(data_dir)?;
        std::fs::create_dir_all(run_dir)?;
        let config_path = run_dir.join("tagcast.toml");
        std::fs::write(&config_path, config(data_dir, tables)?)?;
        let log = run_dir.join("tagcast.log");
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("TAGCAST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let url = loop {
            let Some(line) = lines.next_line().await? else {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("tagcast exited before listening:\n{log}");
            };
            if let Some(url) = line.strip_prefix("tagcast listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id().context("tagcast has no pid")?;
        Ok(Tagcast {
            child,
            api: Api::new(&url)?,
            pid,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Imports `accounts` accounts and registers `fake`'s devices to them, `per_account` each,
    /// `concurrency` requests at a time; how long the import and the registrations took.
    pub async fn register(
        &self,
        fake: &Fake,
        per_account: usize,
        concurrency: usize,
    ) -> anyhow::Result<(Duration, Duration)> {
        let accounts = fake.devices.len().div_ceil(per_account);
        let names: Vec<String> = (0..accounts).map(account).collect();
        let started = Instant::now();
        self.api.import(&names).await?;
        let imported = started.elapsed();
        let started = Instant::now();
        let platform = fake.provider.name();
        futures_util::stream::iter(fake.devices.iter().enumerate())
            .map(|(i, device)| {
                let body = json!({
                    "To_Account": account(i / per_account),
                    "Platform": platform,
                    "Token": device.token,
                });
                async move { self.api.call("tagcast/device_register", &body).await }
            })
            .buffer_unordered(concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await
            .context("device_register")?;
        Ok((imported, started.elapsed()))
    }

    /// Push number `n` to every account, notifying their devices; its TaskId.
    pub async fn push(&self, n: usize) -> anyhow::Result<String> {
        let body = json!({
            // A repeated MsgRandom would return the earlier task.
            "MsgRandom": 4242 + n,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "benchmark push"}}],
            "OfflinePushInfo": offline_push_info(),
        });
        let (reply, _) = self.api.call("timpush/push", &body).await?;
        reply["TaskId"]
            .as_str()
            .map(str::to_string)
            .context("no TaskId")
    }

    /// The push's figures for `provider` (all_member_push_statistics' `OfflinePush.Platforms`
    /// entry), once its `Requests` reach `expected`, within `within`.
    pub async fn statistics(
        &self,
        task: &str,
        provider: Provider,
        expected: usize,
        within: Duration,
    ) -> anyhow::Result<Value> {
        let until = Instant::now() + within;
        loop {
            let now = tagcast_push::webpush::unix_now();
            let body = json!({ "StartTime": now - 3600, "EndTime": now + 60, "TaskID": [task] });
            let (reply, _) = self
                .api
                .call("timpush/all_member_push_statistics", &body)
                .await?;
            let platforms = &reply["Results"][0]["OfflinePush"]["Platforms"];
            let figures = platforms
                .as_array()
                .and_then(|p| p.iter().find(|p| p["Provider"] == provider.name()))
                .cloned()
                .with_context(|| format!("no {} in the statistics: {reply}", provider.name()))?;
            if figures["Requests"].as_u64() >= Some(expected as u64) || Instant::now() > until {
                return Ok(figures);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The push's `OfflinePushInfo`: what every device shows.
pub fn offline_push_info() -> Value {
    json!({"PushFlag": 0, "Title": "Benchmark", "Desc": "one push to every device"})
}

/// The name of the `i`th account.
pub fn account(i: usize) -> String {
    format!("dev{i:07}")
}
