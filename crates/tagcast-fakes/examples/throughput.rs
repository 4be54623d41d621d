//! How many requests a second each fake takes from one client (tagcast-push's) over one HTTP/2
//! connection with many streams in flight, every request checked in full:
//!
//! ```sh
//! cargo run --release -p tagcast-fakes --example throughput -- [SECONDS] [IN_FLIGHT] [FAKE...]
//! ```
//!
//! (5 seconds, 256 in flight, and the fakes `apns fcm webpush` unless told.)
//!
//! The requests are made before the clock starts, then sent over and over: the figures are the
//! fake's and the client's transport, not the client's signing or encryption.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Request;
use serde_json::json;
use tagcast_fakes::apns::Apple;
use tagcast_fakes::fcm::{self as google, Google};
use tagcast_fakes::webpush::PushService;
use tagcast_push::webpush::{Subscription, Urgency, Vapid, unix_now};
use tagcast_push::{Alert, apns, fcm, send, webpush};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let run = Duration::from_secs(number(0, 5));
    let in_flight = number(1, 256) as usize;
    let named: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    let chosen = |fake: &str| named.is_empty() || named.contains(&fake);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let alert = Alert::from_offline_push_info(&json!({ "Title": "Sale", "Desc": "50% off" }));
    let devices: Vec<String> = (0..1000).map(|i| format!("{i:064x}")).collect();
    if chosen("apns") {
        self::apns(&alert, &devices, run, in_flight).await;
    }
    if chosen("fcm") {
        self::fcm(&alert, &devices, run, in_flight).await;
    }
    if chosen("webpush") {
        self::webpush(run, in_flight).await;
    }
}

async fn apns(alert: &Alert, devices: &[String], run: Duration, in_flight: usize) {
    let (private, public) = tagcast_fakes::apns::test_key();
    let apple = Apple::start(
        "KEY1234567",
        "TEAM123456",
        "com.example.app",
        public.as_bytes(),
    )
    .await;
    let credentials =
        apns::Credentials::from_p8(private.as_bytes(), "KEY1234567", "TEAM123456").unwrap();
    let token = credentials.token(unix_now()).unwrap();
    let requests = devices
        .iter()
        .map(|device| {
            let notification = apns::Notification {
                device_token: device,
                topic: "com.example.app",
                alert,
                expiration: unix_now() + 3600,
                collapse_id: "task-1",
            };
            apns::request(&apple.url(), &token, &notification)
        })
        .collect();
    let client = tagcast_push::client(Some(apple.ca_pem().as_bytes()), true).unwrap();
    let sent = measure(&client, requests, run, in_flight).await;
    report("APNs", sent, run, in_flight, apple.received().len());
}

async fn fcm(alert: &Alert, devices: &[String], run: Duration, in_flight: usize) {
    let email = "push@demo-project.iam.gserviceaccount.com";
    let google = Google::start("demo-project", email, google::PUBLIC_KEY_PEM.as_bytes()).await;
    let file = google::service_account_json("demo-project", email, &google.token_uri());
    let account = fcm::ServiceAccount::from_json(file.as_bytes()).unwrap();
    let client = tagcast_push::client(None, true).unwrap();
    let now = unix_now();
    let answer = send(&client, account.token_request(now).unwrap(), run)
        .await
        .unwrap();
    let access = account.token_received(&answer.body, now).unwrap();
    let requests = devices
        .iter()
        .map(|device| {
            let notification = fcm::Notification {
                device_token: device,
                alert,
                ttl: Duration::from_secs(600),
                collapse_key: "task-1",
            };
            fcm::request(&google.url(), "demo-project", &access, &notification)
        })
        .collect();
    let sent = measure(&client, requests, run, in_flight).await;
    report("FCM", sent, run, in_flight, google.received().len());
}

async fn webpush(run: Duration, in_flight: usize) {
    let client = tagcast_push::client(None, true).unwrap();
    let service = PushService::start().await;
    let vapid = Vapid::generate("mailto:ops@example.com");
    let notification = webpush::Notification {
        payload: br#"{"TaskId":"task-1","Title":"Sale","Desc":"50% off"}"#,
        ttl: Duration::from_secs(600),
        topic: Some("task-1"),
        urgency: Urgency::Normal,
    };
    let requests = (0..1000)
        .map(|_| {
            let subscription = Subscription::parse(&service.subscribe().json).unwrap();
            webpush::request(&subscription, &vapid, &notification).unwrap()
        })
        .collect();
    let sent = measure(&client, requests, run, in_flight).await;
    report("Web Push", sent, run, in_flight, service.received().len());
}

/// The requests answered 2xx and the others, sending `requests` round robin with `in_flight`
/// at a time for `run`.
async fn measure(
    client: &reqwest::Client,
    requests: Vec<Request<Vec<u8>>>,
    run: Duration,
    in_flight: usize,
) -> (usize, usize) {
    let requests = Arc::new(requests);
    let (next, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let deadline = Instant::now() + run;
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (client, requests) = (client.clone(), requests.clone());
        let (next, refused) = (next.clone(), refused.clone());
        senders.spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let request = copy(&requests[n % requests.len()]);
                match send(&client, request, Duration::from_secs(10)).await {
                    Ok(answer) if (200..300).contains(&answer.status) => {}
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    senders.join_all().await;
    let refused = refused.load(Ordering::Relaxed);
    (next.load(Ordering::Relaxed) - refused, refused)
}

fn copy(request: &Request<Vec<u8>>) -> Request<Vec<u8>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn report(
    name: &str,
    (answered, refused): (usize, usize),
    run: Duration,
    in_flight: usize,
    received: usize,
) {
    let rate = answered as f64 / run.as_secs_f64();
    println!(
        "{name:9} {rate:>8.0} requests/s  ({answered} accepted in {run:?}, {in_flight} in \
         flight; {refused} not accepted; the fake recorded {received})"
    );
}
