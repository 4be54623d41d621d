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
//! Then, tagcast idle, the baseline sends the same notifications to the same fake. Push and
//! baseline take turns `--rounds` times (each push a new task to the same devices), and the
//! report takes the fastest round of each: the machine is shared, and a round another process
//! slowed says nothing of either.

mod baseline;
mod fakes;
mod report;
mod tagcast;
mod threads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tagcast_bench::stats::{cpu_secs, machine_cpu_secs};

use crate::server::tagcast_bin;
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
    /// Rounds of a push through tagcast followed by the baseline, on the same devices; the
    /// report takes the fastest of each (the machine is shared).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
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

/// One push through tagcast.
struct Push {
    /// The push request, answered.
    answered: Duration,
    /// Push request -> the fake's first and last notification.
    first: Duration,
    last: Duration,
    span: fakes::Span,
    cpu: Cpu,
}

impl Push {
    /// Push request -> last notification: the grace period included.
    fn rate(&self, devices: usize) -> f64 {
        devices as f64 / self.last.as_secs_f64().max(1e-9)
    }

    /// The same, the grace period taken off.
    fn rate_after_grace(&self, devices: usize) -> f64 {
        devices as f64 / self.last.saturating_sub(GRACE).as_secs_f64().max(1e-9)
    }
}

/// What one provider's run measured.
struct Measured {
    provider: Provider,
    devices: usize,
    /// Subscribing the Web Push devices at the fake (a key pair each).
    made: Duration,
    imported: Duration,
    registered: Duration,
    /// One per round.
    pushes: Vec<Push>,
    /// By round: every form in the first round, the fastest one in each later round.
    baselines: Vec<(usize, baseline::Run)>,
}

impl Measured {
    /// The least disturbed push (the machine is shared).
    fn best_push(&self) -> Option<&Push> {
        self.pushes.iter().min_by_key(|p| p.last)
    }

    fn best_baseline(&self) -> Option<&baseline::Run> {
        self.baselines
            .iter()
            .map(|(_, run)| run)
            .min_by_key(|b| b.elapsed)
    }
}

pub async fn run(args: &DevicesArgs) -> anyhow::Result<()> {
    if args.devices == 0 || !(1..=10).contains(&args.per_account) || args.in_flight == 0 {
        bail!("--devices and --in-flight: at least 1; --per-account: 1 to 10");
    }
    if args.rounds == 0 {
        bail!("--rounds: at least 1");
    }
    let bin = tagcast_bin(&args.tagcast_bin)?;
    let fake_pool = Pool::new("devices-fake", args.threads)?;
    let client_pool = Pool::new("devices-client", args.threads)?;
    let begun = Instant::now();
    let mut results = Vec::new();
    for &provider in &args.providers {
        println!("\n== {}", provider.label());
        let pools = Pools {
            fake: &fake_pool,
            client: &client_pool,
        };
        results.push(one(args, &bin, provider, pools).await?);
    }
    let report = report::report(args, &results);
    println!("\n{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
        println!("report written to {}", out.display());
    }
    println!("devices: {:.0} s in all", begun.elapsed().as_secs_f64());
    Ok(())
}

/// The runtimes of the fakes and of the baseline's client.
#[derive(Clone, Copy)]
struct Pools<'a> {
    fake: &'a Pool,
    client: &'a Pool,
}

/// One provider: its fake, tagcast on a fresh data directory with the devices registered, then
/// `rounds` times a push through tagcast followed by the baseline.
async fn one(
    args: &DevicesArgs,
    bin: &std::path::Path,
    provider: Provider,
    pools: Pools<'_>,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let fake = Fake::start(provider, pools.fake, args.devices).await?;
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
    let mut measured = Measured {
        provider,
        devices: args.devices,
        made,
        imported,
        registered,
        pushes: Vec::new(),
        baselines: Vec::new(),
    };
    let mut forms = Form::for_provider(provider).to_vec();
    for round in 0..args.rounds {
        let from = fake.received_count();
        let (task, push) = notify(&server, &fake, pools.fake, round).await?;
        print_push(round, &push, args.devices);
        measured.pushes.push(push);
        let notice = Arc::new(Notice {
            alert: tagcast_push::Alert::from_offline_push_info(&tagcast::offline_push_info()),
            lifetime: fake.lifetime(from).context("no notification to copy")?,
            task,
        });
        for &form in &forms {
            let run = baseline::run(&fake, pools, form, notice.clone(), args, &vapid).await?;
            println!(
                "round {}: baseline, {}: {:.2} s: {:.0}/s",
                round + 1,
                form.describe(args.in_flight),
                run.elapsed.as_secs_f64(),
                run.rate(args.devices)
            );
            measured.baselines.push((round, run));
        }
        // Later rounds time the fastest form only.
        forms = measured
            .best_baseline()
            .map(|b| vec![b.form])
            .unwrap_or(forms);
    }
    server.stop().await;
    Ok(measured)
}

fn print_push(round: usize, push: &Push, devices: usize) {
    println!(
        "round {}: tagcast: push answered in {:.1} ms; first notification after {:.0} ms, the last after {:.2} s: {:.0}/s, {:.0}/s without the {} s grace period",
        round + 1,
        push.answered.as_secs_f64() * 1e3,
        push.first.as_secs_f64() * 1e3,
        push.last.as_secs_f64(),
        push.rate(devices),
        push.rate_after_grace(devices),
        GRACE.as_secs()
    );
}

/// Makes the push of `round` and waits for the fake to take every device; checks what it took
/// and the push's statistics. The TaskId, and the push's times and CPU (from the push to the
/// last notification).
async fn notify(
    server: &Tagcast,
    fake: &Fake,
    fake_pool: &Pool,
    round: usize,
) -> anyhow::Result<(String, Push)> {
    let devices = fake.devices.len();
    let (received, requests) = (fake.received_count(), fake.notification_requests());
    let before = Cpu::read(server.pid, fake_pool);
    let pushed = Instant::now();
    let task = server.push(round).await?;
    let answered = pushed.elapsed();
    wait_for(fake, received + devices).await?;
    let cpu = Cpu::read(server.pid, fake_pool).since(&before);
    let span = fake.check(received, &task, "tagcast")?;
    let statistics = server
        .statistics(&task, fake.provider, devices, Duration::from_secs(30))
        .await?;
    tokio::time::sleep(SETTLE).await;
    agree(&statistics, devices)?;
    let (taken, sent) = (
        fake.received_count() - received,
        fake.notification_requests() - requests,
    );
    if taken != devices || sent != devices {
        bail!(
            "tagcast: the {} fake took {taken} notifications in {sent} requests for {devices} devices",
            fake.provider.label()
        );
    }
    let since = |at: Instant| at.saturating_duration_since(pushed);
    let push = Push {
        answered,
        first: since(span.first),
        last: since(span.last),
        span,
        cpu,
    };
    Ok((task, push))
}

/// Waits until the fake has taken `total` notifications in all; an error when it takes none
/// for `STALL`.
async fn wait_for(fake: &Fake, total: usize) -> anyhow::Result<()> {
    let (mut seen, mut moved) = (0, Instant::now());
    loop {
        let n = fake.received_count();
        if n >= total {
            return Ok(());
        }
        if n != seen {
            (seen, moved) = (n, Instant::now());
        } else if moved.elapsed() > STALL {
            bail!(
                "tagcast: the {} fake has taken {n} notifications, not {total}, and none for {} s (refused: {:?})",
                fake.provider.label(),
                STALL.as_secs(),
                fake.rejected().first()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The push's statistics must count every device once, accepted.
fn agree(statistics: &Value, devices: usize) -> anyhow::Result<()> {
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
    Ok(())
}
