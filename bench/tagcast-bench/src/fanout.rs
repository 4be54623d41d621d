//! `fanout`: deliveries per second of all-account pushes to C connected WebSocket clients, tagcast
//! against a minimal broadcast server (`raw`) sending the same frames to as many connections, with
//! the same client, in the same run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::json;
use tagcast_bench::stats::{Samples, cpu_secs, ms, print_table, rss_mib};
use tagcast_bench::synth::SDKAPPID;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::{Api, sign};
use crate::server::{Server, tagcast_bin};

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// WebSocket connections (one account each).
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// All-account pushes then sent back to back.
    #[arg(long, default_value_t = 20)]
    pub pushes: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Longest wait for the deliveries of one phase.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Stop waiting when no frame arrived for this long.
    #[arg(long, default_value_t = 10)]
    pub stall_secs: u64,
    /// Pushes sent one at a time first, each waited for at every client.
    #[arg(long, default_value_t = 5)]
    pub single_pushes: usize,
    /// The tagcast binary [default: beside this one].
    #[arg(long)]
    pub tagcast_bin: Option<PathBuf>,
    /// Where the server's fresh data directory goes.
    #[arg(long, default_value = "target/bench-data/fanout-run")]
    pub work: PathBuf,
}

/// What the clients of one server (or of several) saw.
pub(crate) struct Tally {
    base: Instant,
    /// `reached[j]`: connections that have received at least `j + 1` push frames.
    reached: Vec<AtomicUsize>,
    connected: AtomicUsize,
    failed: AtomicUsize,
    frames: AtomicU64,
    last_frame_ns: AtomicU64,
    pub(crate) first_push: OnceLock<String>,
}

impl Tally {
    pub(crate) fn new(pushes: usize) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            reached: (0..pushes).map(|_| AtomicUsize::new(0)).collect(),
            connected: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            frames: AtomicU64::new(0),
            last_frame_ns: AtomicU64::new(0),
            first_push: OnceLock::new(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn last_frame_ns(&self) -> u64 {
        self.last_frame_ns.load(Ordering::Relaxed)
    }
}

/// One server's results.
struct Phase {
    name: &'static str,
    connect: Duration,
    rss_idle: f64,
    rss_connected: f64,
    m: Measured,
}

/// What the pushes of one server measured.
pub(crate) struct Measured {
    /// One push at a time: push request to the last frame of that push, per push.
    pub(crate) single: Samples,
    /// One push at a time: the push request alone (to its answer), per push.
    pub(crate) single_requests: Samples,
    /// Server CPU seconds used during the one-at-a-time pushes.
    pub(crate) single_server_cpu: f64,
    /// Back to back: frames received and expected, first request to last frame, request times.
    burst_frames: u64,
    burst_expected: u64,
    burst_elapsed: Duration,
    burst_requests: Samples,
    /// CPU seconds used during the back-to-back pushes, by the server and by the client.
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn burst_rate(&self) -> f64 {
        self.burst_frames as f64 / self.burst_elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn run(args: &FanoutArgs) -> anyhow::Result<()> {
    let connections = raise_fd_limit(args.connections)?;
    let bin = tagcast_bin(&args.tagcast_bin)?;
    let salt = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 250) as u8;
    let total = args.single_pushes + args.pushes;

    // tagcast first: its first push frame is what the raw server then sends.
    if args.work.exists() {
        std::fs::remove_dir_all(&args.work)?;
    }
    std::fs::create_dir_all(args.work.join("data"))?;
    let server = Server::start(&bin, &args.work.join("data"), &args.work).await?;
    let api = Api::new(&server.url)?;
    let started = Instant::now();
    api.import(&accounts(connections)).await?;
    println!(
        "fanout: imported {connections} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let addr = socket_addr(&server.url)?;
    let rss_idle = rss_mib(server.pid());
    let tally = Tally::new(total);
    let started = Instant::now();
    let clients = connect_all(args, connections, &tally, [127, 1, salt], |i| {
        (addr, session_url(addr, &account(i)))
    })
    .await?;
    let connect = started.elapsed();
    let rss_connected = rss_mib(server.pid());
    let mut random = salt as u32 * 1_000_000;
    let measured = measure("tagcast", args, connections, &tally, server.pid(), || {
        random += 1;
        let api = api.clone();
        async move { push_to_all(&api, random).await }
    })
    .await?;
    let tagcast = Phase {
        name: "tagcast",
        connect,
        rss_idle,
        rss_connected,
        m: measured,
    };
    let frame = tally
        .first_push
        .get()
        .cloned()
        .context("no push frame received")?;
    drop(clients);
    server.stop().await;
    std::fs::remove_dir_all(&args.work)?;

    // The baseline: the same frame, the same number of connections, the same client.
    let mut raw_server = tokio::process::Command::new(std::env::current_exe()?)
        .arg("raw-server")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let raw_pid = raw_server.id();
    let mut lines = BufReader::new(raw_server.stdout.take().context("no stdout")?).lines();
    let raw_url = loop {
        let line = lines.next_line().await?.context("raw server exited")?;
        if let Some(url) = line.strip_prefix("raw listening on ") {
            break url.to_string();
        }
    };
    let addr = socket_addr(&raw_url)?;
    let rss_idle = rss_mib(raw_pid);
    let tally = Tally::new(total);
    let started = Instant::now();
    let clients = connect_all(args, connections, &tally, [127, 2, salt], |_| {
        (addr, format!("ws://{addr}/ws"))
    })
    .await?;
    let connect = started.elapsed();
    let rss_connected = rss_mib(raw_pid);
    let http = reqwest::Client::new();
    let measured = measure("raw broadcast", args, connections, &tally, raw_pid, || {
        let (http, url, frame) = (http.clone(), format!("{raw_url}/push"), frame.clone());
        async move {
            let started = Instant::now();
            http.post(url)
                .body(frame)
                .send()
                .await?
                .error_for_status()?;
            Ok(started.elapsed())
        }
    })
    .await?;
    let raw = Phase {
        name: "BASELINE raw broadcast",
        connect,
        rss_idle,
        rss_connected,
        m: measured,
    };
    drop(clients);
    let _ = raw_server.kill().await;

    report(connections, args, &frame, &[&tagcast, &raw]);
    Ok(())
}

/// An all-account push with `MsgRandom` `random` (distinct for every push: a repeated one
/// would return the earlier task); how long the request took.
pub(crate) async fn push_to_all(api: &Api, random: u32) -> anyhow::Result<Duration> {
    let body = json!({
        "MsgRandom": random,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "benchmark push"}}],
    });
    api.call("timpush/push", &body).await.map(|(_, took)| took)
}

/// First `--single-pushes` pushes one at a time (each waited for at every client), then
/// `--pushes` pushes back to back.
pub(crate) async fn measure<F, Fut>(
    name: &str,
    args: &FanoutArgs,
    connections: usize,
    tally: &Tally,
    server_pid: Option<u32>,
    mut push: F,
) -> anyhow::Result<Measured>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let (mut single, mut single_requests) = (Samples::new(), Samples::new());
    let single_cpu = cpu_secs(server_pid);
    for k in 0..args.single_pushes {
        let start = tally.now_ns();
        single_requests.push(push().await?);
        if !wait(args, connections, tally, k, "one at a time").await {
            bail!(
                "fanout: {name}: push {} of {} one at a time did not reach every connection (see above)",
                k + 1,
                args.single_pushes
            );
        }
        single.push(Duration::from_nanos(tally.last_frame_ns() - start));
    }
    let single_server_cpu = cpu_secs(server_pid) - single_cpu;
    let cpu = (cpu_secs(server_pid), cpu_secs(None));
    let frames = tally.frames.load(Ordering::Relaxed);
    let mut requests = Samples::new();
    let start = tally.now_ns();
    for _ in 0..args.pushes {
        requests.push(push().await?);
    }
    let last = args.single_pushes + args.pushes - 1;
    if args.pushes > 0 && !wait(args, connections, tally, last, "back to back").await {
        bail!(
            "fanout: {name}: {} pushes back to back did not all reach every connection: {} of {} deliveries (see above)",
            args.pushes,
            tally.frames.load(Ordering::Relaxed) - frames,
            connections * args.pushes
        );
    }
    let elapsed = Duration::from_nanos(tally.last_frame_ns().saturating_sub(start));
    let burst_frames = tally.frames.load(Ordering::Relaxed) - frames;
    let burst_expected = (connections * args.pushes) as u64;
    if burst_frames != burst_expected {
        bail!(
            "fanout: {name}: {burst_frames} push frames received back to back, {burst_expected} sent: duplicates"
        );
    }
    Ok(Measured {
        single,
        single_requests,
        single_server_cpu,
        burst_frames,
        burst_expected,
        burst_elapsed: elapsed,
        burst_requests: requests,
        server_cpu: cpu_secs(server_pid) - cpu.0,
        client_cpu: cpu_secs(None) - cpu.1,
    })
}

/// Waits until every connection has received push frame `index` (0-based); false, after saying
/// so, when frames stop arriving or the time is up.
async fn wait(
    args: &FanoutArgs,
    connections: usize,
    tally: &Tally,
    index: usize,
    what: &str,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let (mut frames, mut progress) = (0, Instant::now());
    while tally.reached[index].load(Ordering::Relaxed) < connections {
        let now = tally.frames.load(Ordering::Relaxed);
        if now != frames {
            (frames, progress) = (now, Instant::now());
        }
        let stalled = progress.elapsed() > Duration::from_secs(args.stall_secs);
        if stalled || Instant::now() > deadline {
            let why = if stalled {
                "no frame for"
            } else {
                "timed out after"
            };
            let secs = if stalled {
                args.stall_secs
            } else {
                args.timeout_secs
            };
            let reached: Vec<usize> = tally
                .reached
                .iter()
                .take(index + 1)
                .map(|r| r.load(Ordering::Relaxed))
                .collect();
            // Connections by push frames received, 0..=index + 1.
            let mut by_count = std::collections::BTreeMap::new();
            let mut previous = connections;
            for (j, r) in reached.iter().enumerate() {
                if previous > *r {
                    by_count.insert(j, previous - r);
                }
                previous = *r;
            }
            if previous > 0 {
                by_count.insert(index + 1, previous);
            }
            eprintln!(
                "fanout: INCOMPLETE {what} ({why} {secs} s): {} of {connections} connections got all {} pushes so far; connections by push frames received: {by_count:?}",
                reached[index],
                index + 1
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// The WebSocket URL of `account`'s session on the server at `addr`, with its own UserSig.
pub(crate) fn session_url(addr: SocketAddr, account: &str) -> String {
    format!(
        "ws://{addr}/ws?sdkappid={SDKAPPID}&identifier={account}&usersig={}",
        sign(account)
    )
}

/// The name of the account of connection `i`.
pub(crate) fn account(i: usize) -> String {
    format!("f{i:06}")
}

/// The accounts of `connections` connections.
pub(crate) fn accounts(connections: usize) -> Vec<String> {
    (0..connections).map(account).collect()
}

pub(crate) fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let host = url
        .strip_prefix("http://")
        .context("the server's URL is not http://")?;
    Ok(host.trim_end_matches('/').parse()?)
}

/// Raises this process's open-file limit (inherited by the servers it starts) to hold
/// `connections`; returns how many connections it can hold.
pub(crate) fn raise_fd_limit(connections: usize) -> anyhow::Result<usize> {
    use rlimit::Resource;
    let want = connections as u64 + 4096;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    if soft < want {
        // Raising the hard limit needs privileges; fall back to the hard limit.
        if rlimit::setrlimit(Resource::NOFILE, want, want.max(hard)).is_err() {
            rlimit::setrlimit(Resource::NOFILE, hard, hard)?;
        }
    }
    let (soft, _) = rlimit::getrlimit(Resource::NOFILE)?;
    let fit = (soft.saturating_sub(1024) as usize).min(connections);
    println!(
        "fanout: open-file limit {soft} per process (hard limit {hard}); {fit} connections{}",
        if fit < connections {
            format!(" instead of {connections}")
        } else {
            String::new()
        }
    );
    Ok(fit)
}

/// Opens `connections` WebSockets from source addresses `prefix.N` (loopback, spread so the
/// ephemeral ports of one address never run out) and waits for every `Connected` frame.
pub(crate) async fn connect_all(
    args: &FanoutArgs,
    connections: usize,
    tally: &Arc<Tally>,
    prefix: [u8; 3],
    target: impl Fn(usize) -> (SocketAddr, String),
) -> anyhow::Result<JoinSet<()>> {
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut clients = JoinSet::new();
    for i in 0..connections {
        let source = IpAddr::V4(Ipv4Addr::new(
            prefix[0],
            prefix[1],
            prefix[2],
            1 + (i % 200) as u8,
        ));
        let ((server, url), gate, tally) = (target(i), gate.clone(), tally.clone());
        clients.spawn(async move {
            let socket = {
                let Ok(_permit) = gate.acquire().await else {
                    return;
                };
                match open(server, source, &url).await {
                    Ok(socket) => socket,
                    Err(e) => {
                        if tally.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("fanout: connection {i} failed: {e:#}");
                        }
                        return;
                    }
                }
            };
            tally.connected.fetch_add(1, Ordering::Relaxed);
            read_pushes(socket, &tally).await;
        });
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    loop {
        let (connected, failed) = (
            tally.connected.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed),
        );
        if connected + failed == connections {
            if failed > 0 {
                bail!("{failed} of {connections} connections failed");
            }
            return Ok(clients);
        }
        if Instant::now() > deadline {
            bail!("only {connected} of {connections} connections opened in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects (retrying a few times) and reads the `Connected` frame.
async fn open(server: SocketAddr, source: IpAddr, url: &str) -> anyhow::Result<Socket> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_open(server, source, url).await {
            Ok(socket) => return Ok(socket),
            Err(e) if attempt >= 5 => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * attempt)).await,
        }
    }
}

async fn try_open(server: SocketAddr, source: IpAddr, url: &str) -> anyhow::Result<Socket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    // Small buffers: tens of thousands of clients share this process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.contains(r#""Type":"Connected""#) => Ok(ws),
        other => bail!("expected a Connected frame, got {other:?}"),
    }
}

async fn read_pushes(mut ws: Socket, tally: &Tally) {
    let mut received = 0;
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) if text.contains(r#""Type":"Push""#) => {
                received += 1;
                tally.frames.fetch_add(1, Ordering::Relaxed);
                tally
                    .last_frame_ns
                    .fetch_max(tally.now_ns(), Ordering::Relaxed);
                if received == 1 {
                    tally.first_push.get_or_init(|| text.to_string());
                }
                if let Some(reached) = tally.reached.get(received - 1) {
                    reached.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn report(connections: usize, args: &FanoutArgs, frame: &str, phases: &[&Phase]) {
    let raw = phases.last().expect("a baseline phase");
    println!(
        "{}: online fan-out to {connections} WebSocket clients (client and server share the machine's {} cores); frame of {} bytes; every push reached every client",
        tagcast_bench::stamp::line("tagcast-bench fanout"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        frame.len()
    );
    let mut rows = vec![vec![
        "server".to_string(),
        "deliveries".into(),
        "first push -> last frame s".into(),
        "deliveries/s".into(),
        "ratio to raw".into(),
        "push request p50 ms".into(),
        "server CPU us/delivery".into(),
        "client CPU us/delivery".into(),
    ]];
    for p in phases {
        rows.push(vec![
            p.name.to_string(),
            format!("{}/{}", p.m.burst_frames, p.m.burst_expected),
            format!("{:.3}", p.m.burst_elapsed.as_secs_f64()),
            format!("{:.0}", p.m.burst_rate()),
            format!("{:.2}", p.m.burst_rate() / raw.m.burst_rate()),
            ms(p.m.burst_requests.p50()),
            format!(
                "{:.2}",
                p.m.server_cpu * 1e6 / p.m.burst_frames.max(1) as f64
            ),
            format!(
                "{:.2}",
                p.m.client_cpu * 1e6 / p.m.burst_frames.max(1) as f64
            ),
        ]);
    }
    println!(
        "{} all-account pushes back to back, deliveries/s = deliveries / (first push request -> last frame received):",
        args.pushes
    );
    print_table(&rows);

    let single_rate = |p: &Phase| connections as f64 / p.m.single.p50().as_secs_f64().max(1e-9);
    let mut rows = vec![vec![
        "server".to_string(),
        "pushes".into(),
        "push request -> last frame p50 ms".into(),
        "max ms".into(),
        "deliveries/s at p50".into(),
        "ratio to raw".into(),
        "server CPU us/delivery".into(),
        "connect all s".into(),
        "server RSS KiB/connection".into(),
    ]];
    for p in phases.iter().filter(|p| !p.m.single.is_empty()) {
        rows.push(vec![
            p.name.to_string(),
            p.m.single.len().to_string(),
            ms(p.m.single.p50()),
            ms(p.m.single.max()),
            format!("{:.0}", single_rate(p)),
            format!("{:.2}", single_rate(p) / single_rate(raw)),
            format!(
                "{:.2}",
                p.m.single_server_cpu * 1e6 / (connections * p.m.single.len()) as f64
            ),
            format!("{:.1}", p.connect.as_secs_f64()),
            format!(
                "{:.1}",
                (p.rss_connected - p.rss_idle) * 1024.0 / connections as f64
            ),
        ]);
    }
    if rows.len() > 1 {
        println!("one push at a time, each waited for at every client:");
        print_table(&rows);
    }
}
