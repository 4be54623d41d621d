//! `devices`: notifications per second from one push to N devices per provider (issue 10),
//! against the strict local fakes of `tagcast-fakes` on the same machine, next to a baseline
//! measured in the same run: the same fake sent the same notifications by a minimal client
//! (`baseline.rs`). `bench/devices.sh` runs it; see bench/README.md.
//!
//! For each provider (APNs, FCM, Web Push) in turn, on a fresh data directory: the fake starts
//! on a runtime of its own threads; tagcast starts with its `[apps.*]` table pointing there;
//! the accounts are imported and their devices registered through the API (timed apart); one
//! push to all accounts is made with no session connected, so every device is notified after
//! the notifier's grace period; the run ends when the fake has taken all N. The fake must have
//! taken each device exactly once, with this push, refusing nothing, and the push's statistics
//! must count N requests, all accepted; anything else fails the run before a report is written.
//! Then tagcast stops and the baseline sends the same notifications to the same fake.

mod baseline;
mod fakes;
mod tagcast;
mod threads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tagcast_bench::stats::{cpu_secs, machine_cpu_secs, table};

use crate::compare::{fmt_int, fmt_ratio};
use crate::server::tagcast_bin;
use crate::storage::met;
use baseline::{Form, Notice};
use fakes::{CONTACT, Fake, Provider};
use tagcast::Tagcast;
use threads::Pool;

/// tagcast's notifier waits this long after a push before it takes its devices
/// (`delivery/notifier.rs` `GRACE`), so that accounts online by then are reached first.
const GRACE: Duration = Duration::from_secs(1);
/// The goals: notifications per second per provider, and the most tagcast may be
/// slower than the minimal client.
const GOAL_RATE: f64 = 20_000.0;
const GOAL_VS_BASELINE: f64 = 2.0;
/// A run fails when the fake takes no notification for this long.
const STALL: Duration = Duration::from_secs(30);
/// After the last notification: time for one that should not come.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Devices per provider.
    #[arg(long, default_value_t = 100_000)]
    pub devices: usize,
    /// Devices of each account (at most the app's devices_per_account, 10).
    #[arg(long, default_value_t = 1)]
    pub per_account: usize,
    /// The providers, one run each.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Provider::Apns, Provider::Fcm, Provider::Webpush])]
    pub providers: Vec<Provider>,
    /// Requests in flight of the baseline: tagcast's limit per provider
    /// (`delivery/providers.rs` `IN_FLIGHT`).
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// device_register requests at once.
    #[arg(long, default_value_t = 64)]
    pub register_concurrency: usize,
    /// Threads of the fakes' runtime, and of the baseline client's.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// A folder for the runs' data directories and provider files (one per provider).
    #[arg(long)]
    pub work: PathBuf,
    /// The tagcast binary [default: the one beside this binary].
    #[arg(long)]
    pub tagcast_bin: Option<PathBuf>,
    /// Where the report is written, besides stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// CPU seconds so far: tagcast's process, the fake's threads, the machine's busy time.
struct Cpu {
    tagcast: f64,
    fake: f64,
    machine: f64,
}

impl Cpu {
    fn read(pid: u32, fake: &Pool) -> Cpu {
        Cpu {
            tagcast: cpu_secs(Some(pid)),
            fake: fake.cpu_secs(),
            machine: machine_cpu_secs().0,
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            tagcast: self.tagcast - before.tagcast,
            fake: self.fake - before.fake,
            machine: self.machine - before.machine,
        }
    }
}

/// What one provider's run measured.
struct Measured {
    provider: Provider,
    devices: usize,
    accounts: usize,
    /// Subscribing the Web Push devices at the fake (a key pair each).
    made: Duration,
    imported: Duration,
    registered: Duration,
    /// The push request, answered.
    answered: Duration,
    /// Push request -> the fake's first and last notification.
    first: Duration,
    last: Duration,
    cpu: Cpu,
    baselines: Vec<baseline::Run>,
}

impl Measured {
    /// Push request -> last notification: the grace period included.
    fn rate(&self) -> f64 {
        self.devices as f64 / self.last.as_secs_f64().max(1e-9)
    }

    /// The same, the grace period taken off.
    fn rate_after_grace(&self) -> f64 {
        let sending = self.last.saturating_sub(GRACE);
        self.devices as f64 / sending.as_secs_f64().max(1e-9)
    }

    fn best_baseline(&self) -> Option<&baseline::Run> {
        self.baselines
            .iter()
            .max_by(|a, b| a.rate(self.devices).total_cmp(&b.rate(self.devices)))
    }
}

pub async fn run(args: &DevicesArgs) -> anyhow::Result<()> {
    if args.devices == 0 || !(1..=10).contains(&args.per_account) || args.in_flight == 0 {
        bail!("--devices and --in-flight: at least 1; --per-account: 1 to 10");
    }
    let bin = tagcast_bin(&args.tagcast_bin)?;
    let fake_pool = Pool::new("devices-fake", args.threads)?;
    let client_pool = Pool::new("devices-client", args.threads)?;
    let begun = Instant::now();
    let mut results = Vec::new();
    for &provider in &args.providers {
        println!("\n== {}", provider.label());
        results.push(one(args, &bin, provider, &fake_pool, &client_pool).await?);
    }
    let report = report(args, &results);
    println!("\n{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
        println!("report written to {}", out.display());
    }
    println!("devices: {:.0} s in all", begun.elapsed().as_secs_f64());
    Ok(())
}

/// One provider: its fake, tagcast on a fresh data directory, the push, then the baseline.
async fn one(
    args: &DevicesArgs,
    bin: &std::path::Path,
    provider: Provider,
    fake_pool: &Pool,
    client_pool: &Pool,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let fake = Fake::start(provider, fake_pool, args.devices).await?;
    let made = started.elapsed();
    let dir = args.work.join(provider.name());
    std::fs::create_dir_all(&dir)?;
    let vapid = tagcast_push::webpush::Vapid::generate(CONTACT).private_key();
    let tables = fake.tables(&dir, &vapid)?;
    let server = Tagcast::start(bin, &dir.join("data"), &dir.join("run"), &tables).await?;
    let accounts = args.devices.div_ceil(args.per_account);
    let (imported, registered) = server
        .register(&fake, args.per_account, args.register_concurrency)
        .await?;
    println!(
        "{} devices of {accounts} accounts registered in {:.1} s ({:.0}/s; accounts imported in {:.1} s)",
        args.devices,
        registered.as_secs_f64(),
        args.devices as f64 / registered.as_secs_f64().max(1e-9),
        imported.as_secs_f64()
    );
    let (task, pushed) = notify(&server, &fake, fake_pool).await?;
    server.stop().await;
    let (answered, first, last, cpu) = pushed;
    println!(
        "tagcast: push answered in {:.1} ms; first notification after {:.0} ms, the last after {:.2} s: {:.0}/s, {:.0}/s without the {} s grace period",
        answered.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        last.as_secs_f64(),
        args.devices as f64 / last.as_secs_f64(),
        args.devices as f64 / last.saturating_sub(GRACE).as_secs_f64().max(1e-9),
        GRACE.as_secs()
    );
    let notice = Arc::new(Notice {
        alert: tagcast_push::Alert::from_offline_push_info(&tagcast::offline_push_info()),
        lifetime: fake.lifetime(0).context("no notification to copy")?,
        task,
    });
    let mut baselines = Vec::new();
    for &form in Form::for_provider(provider) {
        let pools = (client_pool, fake_pool);
        let run = baseline::run(&fake, pools, form, notice.clone(), args.in_flight, &vapid).await?;
        println!(
            "baseline, {}: {:.2} s: {:.0}/s",
            form.describe(args.in_flight),
            run.elapsed.as_secs_f64(),
            run.rate(args.devices)
        );
        baselines.push(run);
    }
    Ok(Measured {
        provider,
        devices: args.devices,
        accounts,
        made,
        imported,
        registered,
        answered,
        first,
        last,
        cpu,
        baselines,
    })
}

/// Makes the push and waits for the fake to take every device; checks what it took and the
/// push's statistics. The TaskId, and: push answered, push -> first and last notification,
/// the CPU used from the push to the last.
async fn notify(
    server: &Tagcast,
    fake: &Fake,
    fake_pool: &Pool,
) -> anyhow::Result<(String, (Duration, Duration, Duration, Cpu))> {
    let devices = fake.devices.len();
    let before = Cpu::read(server.pid, fake_pool);
    let pushed = Instant::now();
    let task = server.push().await?;
    let answered = pushed.elapsed();
    wait_for(fake, devices).await?;
    let cpu = Cpu::read(server.pid, fake_pool).since(&before);
    let (first, last) = fake.check(0, &task, "tagcast")?;
    let statistics = server
        .statistics(&task, fake.provider, devices, Duration::from_secs(30))
        .await?;
    tokio::time::sleep(SETTLE).await;
    agree(&statistics, fake, devices)?;
    let since = |at: Instant| at.saturating_duration_since(pushed);
    Ok((task, (answered, since(first), since(last), cpu)))
}

/// Waits until the fake has taken `devices` notifications; an error when it takes none for
/// `STALL`.
async fn wait_for(fake: &Fake, devices: usize) -> anyhow::Result<()> {
    let (mut seen, mut moved) = (0, Instant::now());
    loop {
        let n = fake.received_count();
        if n >= devices {
            return Ok(());
        }
        if n != seen {
            (seen, moved) = (n, Instant::now());
        } else if moved.elapsed() > STALL {
            bail!(
                "tagcast: the {} fake took {n} of {devices} notifications, then none for {} s (refused: {:?})",
                fake.provider.label(),
                STALL.as_secs(),
                fake.rejected().first()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The push's statistics must count every device once, accepted, as the fake did; nothing
/// more may have come since.
fn agree(statistics: &Value, fake: &Fake, devices: usize) -> anyhow::Result<()> {
    let figure = |name: &str| statistics[name].as_u64().unwrap_or(u64::MAX);
    let expected = devices as u64;
    let counted = [
        ("Requests", expected),
        ("Accepted", expected),
        ("Retries", 0),
        ("Gone", 0),
        ("Failed", 0),
    ];
    if let Some((name, want)) = counted.iter().find(|(name, want)| figure(name) != *want) {
        bail!(
            "tagcast: the statistics count {name} {}, not {want}: {statistics}",
            figure(name)
        );
    }
    let (taken, requests) = (fake.received_count(), fake.notification_requests());
    if taken != devices || requests != devices {
        bail!(
            "tagcast: the {} fake took {taken} notifications in {requests} requests, the statistics {devices}",
            fake.provider.label()
        );
    }
    Ok(())
}

fn report(args: &DevicesArgs, results: &[Measured]) -> String {
    let mut out = format!(
        "# {}\n\nOne push to {} devices per provider ({} per account), against tagcast-fakes in the benchmark's process; baseline: the same fake sent the same notifications by a minimal client, {} requests in flight. {} cores.\n\n",
        tagcast_bench::stamp::line("tagcast-bench devices"),
        fmt_int(args.devices as f64),
        args.per_account,
        args.in_flight,
        machine_cores()
    );
    out.push_str(&rates(results));
    out.push_str(&costs(results));
    out.push_str(&forms(args, results));
    out.push_str(&verdicts(results));
    out.push_str(&notes(args));
    out
}

/// Notifications per second, and the goals.
fn rates(results: &[Measured]) -> String {
    let mut rows = vec![vec![
        "provider".to_string(),
        "tagcast, push -> last, 1 s grace included [1]".into(),
        "tagcast, grace excluded [1]".into(),
        "baseline, best form [2]".into(),
        "tagcast (grace excluded) / baseline".into(),
        format!(
            "goal: >= {}/s (grace included / excluded)",
            fmt_int(GOAL_RATE)
        ),
        "goal: within 2x of the baseline (grace excluded)".into(),
    ]];
    for m in results {
        let base = m.best_baseline().map_or(0.0, |b| b.rate(m.devices));
        rows.push(vec![
            m.provider.label().into(),
            fmt_int(m.rate()),
            fmt_int(m.rate_after_grace()),
            fmt_int(base),
            fmt_ratio(m.rate_after_grace(), base),
            format!(
                "{} / {}",
                met(m.rate() >= GOAL_RATE),
                met(m.rate_after_grace() >= GOAL_RATE)
            ),
            met(m.rate_after_grace() * GOAL_VS_BASELINE >= base).into(),
        ]);
    }
    format!("Notifications per second:\n\n{}\n", table(&rows))
}

/// Times and CPU of each run.
fn costs(results: &[Measured]) -> String {
    let per = |secs: f64, n: usize| format!("{secs:.2} s ({:.1} us)", secs * 1e6 / n as f64);
    let mut rows = vec![vec![
        "provider".to_string(),
        "push answered, ms".into(),
        "push -> first / last notification, s [1]".into(),
        "CPU: tagcast (per notification) [3]".into(),
        "CPU: fake, tagcast's run [3]".into(),
        "CPU: machine busy, cores".into(),
        "CPU: baseline client [3]".into(),
        "CPU: fake, baseline's run [3]".into(),
        "registration: devices/s (import) [4]".into(),
    ]];
    for m in results {
        let n = m.devices;
        let wall = m.last.as_secs_f64().max(1e-9);
        let base = m.best_baseline();
        rows.push(vec![
            m.provider.label().into(),
            format!("{:.1}", m.answered.as_secs_f64() * 1e3),
            format!("{:.3} / {:.2}", m.first.as_secs_f64(), m.last.as_secs_f64()),
            per(m.cpu.tagcast, n),
            per(m.cpu.fake, n),
            format!("{:.2} of {}", m.cpu.machine / wall, machine_cores()),
            base.map_or("-".into(), |b| per(b.client_cpu, n)),
            base.map_or("-".into(), |b| per(b.fake_cpu, n)),
            format!(
                "{} in {:.1} s ({:.1} s)",
                fmt_int(n as f64 / m.registered.as_secs_f64().max(1e-9)),
                m.registered.as_secs_f64(),
                m.imported.as_secs_f64()
            ),
        ]);
    }
    format!("\nTimes and CPU:\n\n{}\n", table(&rows))
}

fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Every baseline form screened.
fn forms(args: &DevicesArgs, results: &[Measured]) -> String {
    let mut rows = vec![vec![
        "provider".to_string(),
        "baseline form".into(),
        "notifications/s".into(),
        "first request -> last notification, s".into(),
    ]];
    for m in results {
        for b in &m.baselines {
            rows.push(vec![
                m.provider.label().into(),
                b.form.describe(args.in_flight),
                fmt_int(b.rate(m.devices)),
                format!("{:.2}", b.elapsed.as_secs_f64()),
            ]);
        }
    }
    format!("\nBaseline forms [2]:\n\n{}\n", table(&rows))
}

/// Met or not per provider, and why.
fn verdicts(results: &[Measured]) -> String {
    let mut out = String::from(
        "\nGoals (issue 10: >= 20,000 notifications/s per provider on this machine, within 2x of the baseline):\n\n",
    );
    for m in results {
        let base = m.best_baseline().map_or(0.0, |b| b.rate(m.devices));
        let (with, without) = (m.rate(), m.rate_after_grace());
        let why = if without < GOAL_RATE && base < GOAL_RATE {
            format!(
                "the minimal client itself reaches {}/s on this machine: the fake and the per-notification work bound it",
                fmt_int(base)
            )
        } else if without * GOAL_VS_BASELINE < base {
            "tagcast is more than 2x slower than the minimal client".into()
        } else if with < GOAL_RATE {
            format!(
                "the 1 s grace period alone caps one push to {} devices at {}/s",
                fmt_int(m.devices as f64),
                fmt_int(m.devices as f64 / GRACE.as_secs_f64())
            )
        } else {
            "both met".into()
        };
        out.push_str(&format!(
            "- {}: {}/s with the grace period ({}), {}/s without ({}), {} of the baseline ({}): {why}.\n",
            m.provider.label(),
            fmt_int(with),
            met(with >= GOAL_RATE),
            fmt_int(without),
            met(without >= GOAL_RATE),
            fmt_ratio(without, base),
            met(without * GOAL_VS_BASELINE >= base),
        ));
        if m.provider == Provider::Webpush {
            out.push_str(&format!(
                "  (subscribing the {} devices at the fake, a P-256 key pair each: {:.1} s, not counted)\n",
                fmt_int(m.devices as f64),
                m.made.as_secs_f64()
            ));
        }
    }
    out.push_str(&format!(
        "  ({} accounts per provider)\n",
        fmt_int(results.first().map_or(0, |m| m.accounts) as f64)
    ));
    out
}

fn notes(args: &DevicesArgs) -> String {
    format!(
        "
[1] From the push request to the fake's taking of the last notification (the fake's clock, in the same process), nothing subtracted; \"grace excluded\" takes off the notifier's 1 s wait after a push (delivery/notifier.rs GRACE), during which it sends nothing by design. The first notification comes after the grace period and the first batch (500 accounts).
[2] The same fake, the same devices, the same notifications (tagcast-push's builders: the APNs provider token and the FCM access token reused, each Web Push body encrypted to its subscription, the VAPID header signed once per origin as tagcast does), sent by hyper with {in_flight} requests in flight and nothing else: no store, no batches. Timed from the first request (connections open) to the fake's last arrival. HTTP/2 over one connection for APNs (as tagcast); for the plain-text fakes (FCM, Web Push) also HTTP/1.1 over {in_flight} connections, which is what tagcast's client uses for a plain http:// endpoint; the faster form is the baseline.
[3] CPU seconds (user + system) from /proc: tagcast's process; the fake's runtime threads ({threads}, in the benchmark's process); the baseline client's runtime threads ({threads}). Per notification in parentheses. The fake's cost is that of a strict check of every request (APNs: the ES256 provider token verified once, then its age; FCM: the access token; Web Push: the VAPID signature verified once per distinct header, then its expiry, and every body decrypted: one P-256 ECDH). Everything runs on the same {cores} cores.
[4] multiaccount_import of the accounts, then one device_register per device (the admin naming To_Account), {concurrency} at a time; not part of the figures above.
",
        in_flight = args.in_flight,
        threads = args.threads,
        cores = machine_cores(),
        concurrency = args.register_concurrency,
    )
}
