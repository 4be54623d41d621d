//! Prometheus metrics of the whole process, served at `/metrics`: requests, connections and
//! sessions, deliveries, pushes, callbacks, the store, and the standard process metrics.

use std::path::PathBuf;
use std::sync::{LazyLock, OnceLock};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tagcast_push::Outcome;
use tagcast_store::{Platform, StoreHealth, TaskKind};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    connections: IntGauge,
    sessions: IntGauge,
    deliveries: IntCounterVec,
    live_tasks: IntGauge,
    pushes: IntCounterVec,
    fanning_out: IntGauge,
    callback_attempts: IntCounter,
    callback_failures: IntCounter,
    callback_retries: IntCounter,
    callback_dropped: IntCounter,
    pushes_removed: IntCounter,
    device_answers: IntCounterVec,
    device_failures: IntCounterVec,
    device_queue: IntGaugeVec,
    device_latency: HistogramVec,
    store_bytes: IntGauge,
    store_healthy: IntGauge,
    store_commits: IntGauge,
    store_failed_commits: IntGauge,
    store_writer_panics: IntGauge,
    store_reopens: IntGauge,
    index_rebuild_seconds: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
/// The embedded store's file, whose size is reported (none with PostgreSQL).
static STORE_FILE: OnceLock<PathBuf> = OnceLock::new();

fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let counter = |name: &str, help: &str| {
            register(r, IntCounter::new(name, help).expect("valid metric"))
        };
        let gauge =
            |name: &str, help: &str| register(r, IntGauge::new(name, help).expect("valid metric"));
        let counters = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process metrics registered once");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tagcast_request_duration_seconds",
                "REST API latency by API",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
            &["api"],
        )
        .expect("valid metric");
        let device_latency = HistogramVec::new(
            HistogramOpts::new(
                "tagcast_device_request_duration_seconds",
                "Time from a device notification's turn to its provider's answer, by provider",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
            &["provider"],
        )
        .expect("valid metric");
        let device_queue = IntGaugeVec::new(
            Opts::new(
                "tagcast_device_queue",
                "Device notifications waiting for their provider or in flight, by provider",
            ),
            &["provider"],
        )
        .expect("valid metric");
        Self {
            device_answers: counters(
                "tagcast_device_notifications_total",
                "Device notifications answered, by provider and outcome (accepted, gone, retry, failed)",
                &["provider", "outcome"],
            ),
            device_failures: counters(
                "tagcast_device_failures_total",
                "Device notifications refused or not answered, by provider and reason",
                &["provider", "reason"],
            ),
            device_queue: register(r, device_queue),
            device_latency: register(r, device_latency),
            requests: counters(
                "tagcast_requests_total",
                "REST API requests by API and ErrorCode",
                &["api", "code"],
            ),
            latency: register(r, latency),
            connections: gauge(
                "tagcast_connections",
                "Open TCP connections, HTTP and WebSocket",
            ),
            sessions: gauge("tagcast_sessions", "Connected WebSocket sessions"),
            deliveries: counters(
                "tagcast_deliveries_total",
                "Pushes written to sessions: online as published, or backlog on reconnect",
                &["path"],
            ),
            live_tasks: gauge(
                "tagcast_live_tasks",
                "Pushes kept for offline recipients (the offline backlog)",
            ),
            pushes: counters(
                "tagcast_pushes_total",
                "Push tasks created, by audience kind",
                &["kind"],
            ),
            fanning_out: gauge(
                "tagcast_fan_outs_in_progress",
                "Pushes published and not yet queued to every connected recipient",
            ),
            callback_attempts: counter("tagcast_callback_attempts_total", "Callback requests sent"),
            callback_failures: counter(
                "tagcast_callback_failures_total",
                "Callback requests refused or failed",
            ),
            callback_retries: counter(
                "tagcast_callback_retries_total",
                "Callback requests sent again after a failure",
            ),
            callback_dropped: counter(
                "tagcast_callback_dropped_events_total",
                "Callback events dropped: queue full, or every attempt failed",
            ),
            pushes_removed: counter(
                "tagcast_pushes_removed_total",
                "Ended pushes removed with their records, [reports] keep_secs after they ended",
            ),
            store_bytes: gauge(
                "tagcast_store_bytes",
                "Size of the embedded store's file (0 with PostgreSQL)",
            ),
            store_healthy: gauge(
                "tagcast_store_healthy",
                "1 while the store commits writes, 0 while it is failing",
            ),
            store_commits: gauge(
                "tagcast_store_commits",
                "Write transactions committed since start",
            ),
            store_failed_commits: gauge(
                "tagcast_store_failed_commits",
                "Write batches that failed since start",
            ),
            store_writer_panics: gauge(
                "tagcast_store_writer_panics",
                "Times the store's writer panicked since start",
            ),
            store_reopens: gauge(
                "tagcast_store_reopens",
                "Times the store was reopened to recover from an I/O error",
            ),
            index_rebuild_seconds: register(
                r,
                Gauge::new(
                    "tagcast_index_rebuild_seconds",
                    "Time to open the store and rebuild the audience index at start",
                )
                .expect("valid metric"),
            ),
            registry,
        }
    }
}

pub fn observe_request(api: &str, code: u32, seconds: f64) {
    METRICS
        .requests
        .with_label_values(&[api, &code.to_string()])
        .inc();
    METRICS.latency.with_label_values(&[api]).observe(seconds);
}

pub fn connection_opened() {
    METRICS.connections.inc();
}

pub fn connection_closed() {
    METRICS.connections.dec();
}

pub fn session_opened() {
    METRICS.sessions.inc();
}

pub fn session_closed() {
    METRICS.sessions.dec();
}

pub fn delivered(path: &str, count: usize) {
    METRICS
        .deliveries
        .with_label_values(&[path])
        .inc_by(count as u64);
}

pub fn set_live_tasks(count: usize) {
    METRICS.live_tasks.set(count as i64);
}

pub fn push_created(kind: TaskKind) {
    let kind = format!("{kind:?}");
    METRICS.pushes.with_label_values(&[&kind]).inc();
}

pub fn fan_out_queued() {
    METRICS.fanning_out.inc();
}

pub fn fan_out_done() {
    METRICS.fanning_out.dec();
}

pub fn callback_attempt(retry: bool) {
    METRICS.callback_attempts.inc();
    if retry {
        METRICS.callback_retries.inc();
    }
}

pub fn callback_failed() {
    METRICS.callback_failures.inc();
}

pub fn callback_events_dropped(count: usize) {
    METRICS.callback_dropped.inc_by(count as u64);
}

pub fn pushes_removed(count: usize) {
    METRICS.pushes_removed.inc_by(count as u64);
}

/// A device notification waits for its provider until the guard is dropped.
pub fn device_queued(platform: Platform) -> impl Drop {
    let gauge = METRICS.device_queue.with_label_values(&[platform.name()]);
    gauge.inc();
    Queued(gauge)
}

struct Queued(IntGauge);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A provider answered (or did not) after `elapsed`.
pub fn device_answered(platform: Platform, outcome: &Outcome, elapsed: std::time::Duration) {
    let provider = platform.name();
    let (name, reason) = match outcome {
        Outcome::Accepted => ("accepted", None),
        Outcome::Gone { reason } => ("gone", Some(reason)),
        Outcome::Retry { reason, .. } => ("retry", Some(reason)),
        Outcome::Failed { reason } => ("failed", Some(reason)),
    };
    let m = &*METRICS;
    m.device_answers.with_label_values(&[provider, name]).inc();
    if let Some(reason) = reason {
        m.device_failures
            .with_label_values(&[provider, reason])
            .inc();
    }
    m.device_latency
        .with_label_values(&[provider])
        .observe(elapsed.as_secs_f64());
}

/// Records the start-up facts: where the embedded store's file is (none with PostgreSQL) and how
/// long opening the store took.
pub fn store_opened(file: Option<PathBuf>, seconds: f64) {
    if let Some(file) = file {
        let _ = STORE_FILE.set(file);
    }
    METRICS.index_rebuild_seconds.set(seconds);
}

/// The text exposition format served at `/metrics`, with the store's state as of now.
pub fn render(health: &StoreHealth) -> String {
    let m = &*METRICS;
    m.store_healthy.set(i64::from(health.is_ok()));
    m.store_commits.set(health.commits as i64);
    m.store_failed_commits.set(health.failed_commits as i64);
    m.store_writer_panics.set(health.writer_panics as i64);
    m.store_reopens.set(health.reopens as i64);
    if let Some(size) = STORE_FILE
        .get()
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
    {
        m.store_bytes.set(size as i64);
    }
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
