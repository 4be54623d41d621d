//! The provider a run notifies through: one of the strict local fakes of `tagcast-fakes`,
//! running on a Tokio runtime of its own (so that its CPU time is its threads'), the config
//! tables that point tagcast at it, its devices, and what it received.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tagcast_fakes::{apns::Apple, fcm::Google, webpush::PushService};

use super::threads::Pool;

pub const KEY_ID: &str = "KEY1234567";
pub const TEAM_ID: &str = "TEAM123456";
pub const TOPIC: &str = "com.example.tagcast";
pub const PROJECT: &str = "bench-project";
pub const EMAIL: &str = "push@bench-project.iam.gserviceaccount.com";
pub const CONTACT: &str = "mailto:ops@example.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    Apns,
    Fcm,
    Webpush,
}

impl Provider {
    /// The `Platform` of device_register and the statistics' `Provider`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Apns => "apns",
            Provider::Fcm => "fcm",
            Provider::Webpush => "webpush",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Provider::Apns => "APNs",
            Provider::Fcm => "FCM",
            Provider::Webpush => "Web Push",
        }
    }
}

enum Kind {
    Apple { apple: Apple, p8: String },
    Google(Google),
    Web(PushService),
}

/// A running fake, with the devices registered to it.
pub struct Fake {
    pub provider: Provider,
    kind: Kind,
    /// The devices' tokens as device_register takes them, and the name each arrives under.
    pub devices: Vec<Device>,
}

pub struct Device {
    pub token: Value,
    /// The APNs or FCM token, or the Web Push subscription's id.
    pub key: String,
}

/// A notification the fake accepted: which device, when, and whether it was of the task.
pub struct Arrival {
    pub device: String,
    pub at: Instant,
    pub of_task: bool,
}

impl Fake {
    /// Starts the fake of `provider` on `pool`'s runtime, with `devices` devices.
    pub async fn start(provider: Provider, pool: &Pool, devices: usize) -> anyhow::Result<Fake> {
        let kind = pool
            .spawn(async move {
                match provider {
                    Provider::Apns => {
                        let (p8, public) = tagcast_fakes::apns::test_key();
                        let apple = Apple::start(KEY_ID, TEAM_ID, TOPIC, public.as_bytes()).await;
                        Kind::Apple { apple, p8 }
                    }
                    Provider::Fcm => {
                        let public = tagcast_fakes::fcm::PUBLIC_KEY_PEM.as_bytes();
                        Kind::Google(Google::start(PROJECT, EMAIL, public).await)
                    }
                    Provider::Webpush => Kind::Web(PushService::start().await),
                }
            })
            .await
            .context("starting the fake")?;
        let mut fake = Fake {
            provider,
            kind,
            devices: Vec::new(),
        };
        // Seconds of work: off the runtime's hands.
        fake.devices = tokio::task::block_in_place(|| fake.make_devices(devices))?;
        Ok(fake)
    }

    /// `n` devices, made on every core: a Web Push subscription is a P-256 key pair.
    fn make_devices(&self, n: usize) -> anyhow::Result<Vec<Device>> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let chunk = n.div_ceil(cores).max(1);
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|start| {
                    let end = (start + chunk).min(n);
                    scope.spawn(move || (start..end).map(|i| self.device(i)).collect::<Vec<_>>())
                })
                .collect();
            let mut devices = Vec::with_capacity(n);
            for part in parts {
                devices.extend(
                    part.join()
                        .map_err(|_| anyhow::anyhow!("making devices failed"))?,
                );
            }
            Ok(devices)
        })
    }

    fn device(&self, i: usize) -> Device {
        match &self.kind {
            Kind::Apple { .. } => {
                let token = format!("{i:064x}");
                Device {
                    token: json!(token),
                    key: token,
                }
            }
            Kind::Google(_) => {
                let token = format!("bench-fcm-{i:08}");
                Device {
                    token: json!(token),
                    key: token,
                }
            }
            Kind::Web(web) => {
                let subscribed = web.subscribe();
                Device {
                    token: serde_json::from_str(&subscribed.json).unwrap_or(Value::Null),
                    key: subscribed.id,
                }
            }
        }
    }

    /// The `[apps.*]` table of this provider for tagcast's config, its credentials written to
    /// files in `dir`; and the VAPID key file for Web Push, which the baseline signs with too.
    pub fn tables(&self, dir: &Path, vapid_private: &str) -> anyhow::Result<String> {
        let write = |name: &str, content: &str| -> anyhow::Result<String> {
            let path = dir.join(name);
            std::fs::write(&path, content)?;
            Ok(path.display().to_string())
        };
        Ok(match &self.kind {
            Kind::Apple { apple, p8 } => format!(
                "[apps.apns]\nkey_file = {key:?}\nkey_id = {KEY_ID:?}\nteam_id = {TEAM_ID:?}\n\
                 topic = {TOPIC:?}\nendpoint = {url:?}\nsandbox_endpoint = {url:?}\nca_file = {ca:?}\n",
                key = write("apns.p8", p8)?,
                url = apple.url(),
                ca = write("apple-ca.pem", &apple.ca_pem())?,
            ),
            Kind::Google(google) => format!(
                "[apps.fcm]\nservice_account_file = {sa:?}\nendpoint = {url:?}\n",
                sa = write("service-account.json", &self.service_account())?,
                url = google.url(),
            ),
            Kind::Web(_) => format!(
                "[apps.webpush]\nvapid_key_file = {key:?}\ncontact = {CONTACT:?}\n",
                key = write("vapid.key", vapid_private)?,
            ),
        })
    }

    /// The base URL the requests go to (Web Push: the origin of every endpoint).
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::Apple { apple, .. } => apple.url(),
            Kind::Google(google) => google.url(),
            Kind::Web(web) => web.url(),
        }
    }

    /// The APNs server's certificate, which a client must trust.
    pub fn ca_pem(&self) -> Option<String> {
        match &self.kind {
            Kind::Apple { apple, .. } => Some(apple.ca_pem()),
            _ => None,
        }
    }

    /// The APNs signing key (PKCS#8 PEM).
    pub fn p8(&self) -> Option<&str> {
        match &self.kind {
            Kind::Apple { p8, .. } => Some(p8),
            _ => None,
        }
    }

    /// The FCM service account's JSON file.
    pub fn service_account(&self) -> String {
        match &self.kind {
            Kind::Google(google) => {
                tagcast_fakes::fcm::service_account_json(PROJECT, EMAIL, &google.token_uri())
            }
            _ => String::new(),
        }
    }

    pub fn received_count(&self) -> usize {
        match &self.kind {
            Kind::Apple { apple, .. } => apple.received_count(),
            Kind::Google(google) => google.received_count(),
            Kind::Web(web) => web.received_count(),
        }
    }

    /// Every request seen, access-token grants left out.
    pub fn notification_requests(&self) -> usize {
        match &self.kind {
            Kind::Apple { apple, .. } => apple.requests(),
            Kind::Google(google) => google.requests() - google.token_grants(),
            Kind::Web(web) => web.requests(),
        }
    }

    pub fn rejected(&self) -> Vec<String> {
        match &self.kind {
            Kind::Apple { apple, .. } => apple.rejected(),
            Kind::Google(google) => google.rejected(),
            Kind::Web(web) => web.rejected(),
        }
    }

    /// What was accepted from the `from`th notification on, checked against the task (its
    /// collapse id, collapse key or payload's TaskId).
    pub fn arrivals(&self, from: usize, task: &str) -> Vec<Arrival> {
        let apns_collapse = &task[..task.len().min(64)];
        match &self.kind {
            Kind::Apple { apple, .. } => tail(apple.received(), from, |r| Arrival {
                of_task: r.collapse_id.as_deref() == Some(apns_collapse),
                device: r.device_token,
                at: r.at,
            }),
            Kind::Google(google) => tail(google.received(), from, |r| Arrival {
                of_task: r.message["android"]["collapse_key"] == task,
                device: r.token,
                at: r.at,
            }),
            Kind::Web(web) => tail(web.received(), from, |r| {
                let payload: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
                Arrival {
                    of_task: payload["TaskId"] == task,
                    device: r.subscription_id,
                    at: r.at,
                }
            }),
        }
    }

    /// What the `from`th notification was sent with: APNs its `apns-expiration`, FCM and Web
    /// Push their TTL in seconds.
    pub fn lifetime(&self, from: usize) -> Option<u64> {
        match &self.kind {
            Kind::Apple { apple, .. } => apple.received().get(from)?.expiration,
            Kind::Google(google) => {
                let received = google.received();
                let ttl = received.get(from)?.message["android"]["ttl"].as_str()?;
                ttl.strip_suffix('s')?.split('.').next()?.parse().ok()
            }
            Kind::Web(web) => Some(web.received().get(from)?.ttl),
        }
    }

    /// Checks that what arrived from the `from`th notification on is every device once, all
    /// of `task`, and that nothing was refused; when it arrived.
    pub fn check(&self, from: usize, task: &str, what: &str) -> anyhow::Result<Span> {
        let rejected = self.rejected();
        if !rejected.is_empty() {
            bail!(
                "{what}: the {} fake refused {} requests, first: {}",
                self.provider.label(),
                rejected.len(),
                rejected[0]
            );
        }
        let arrivals = self.arrivals(from, task);
        if let Some(other) = arrivals.iter().find(|a| !a.of_task) {
            bail!(
                "{what}: {} got a notification of another task",
                other.device
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for arrival in &arrivals {
            *seen.entry(&arrival.device).or_default() += 1;
        }
        let missing = self
            .devices
            .iter()
            .filter(|d| !seen.contains_key(d.key.as_str()))
            .count();
        let repeated = seen.values().filter(|&&n| n > 1).count();
        if missing > 0 || repeated > 0 || arrivals.len() != self.devices.len() {
            bail!(
                "{what}: {} notifications for {} devices: {missing} devices missed, {repeated} notified more than once",
                arrivals.len(),
                self.devices.len()
            );
        }
        Span::of(arrivals.iter().map(|a| a.at).collect()).context("no device")
    }
}

/// A pause in the arrivals at least this long is a stall: at 10,000 notifications a second
/// they come every 0.1 ms.
const STALL: Duration = Duration::from_millis(2);

/// When the notifications arrived: the first, the last, and the stalls between (no arrival
/// for `STALL` or longer), which show a sender that stops between its batches.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub first: Instant,
    pub last: Instant,
    pub stalls: usize,
    pub stalled: Duration,
}

impl Span {
    fn of(mut at: Vec<Instant>) -> Option<Span> {
        at.sort_unstable();
        let pauses = at.windows(2).map(|w| w[1] - w[0]).filter(|&p| p >= STALL);
        let (stalls, stalled) = pauses.fold((0, Duration::ZERO), |(n, t), p| (n + 1, t + p));
        Some(Span {
            first: *at.first()?,
            last: *at.last()?,
            stalls,
            stalled,
        })
    }
}

fn tail<R>(received: Vec<R>, from: usize, arrival: impl Fn(R) -> Arrival) -> Vec<Arrival> {
    received.into_iter().skip(from).map(arrival).collect()
}
