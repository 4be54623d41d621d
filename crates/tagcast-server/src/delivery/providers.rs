//! Each app's push providers, loaded at start from the files its config names, and how a
//! notification is sent through them. The files hold secrets: an error names the file and what
//! is wrong with it, never what it contains.
//!
//! APNs and FCM each have one HTTP/2 connection per host (`tagcast_push::h2`), every request
//! a stream of it; Web Push a client with a pool, for the many hosts browsers name. Each
//! provider takes at most `IN_FLIGHT` requests at once; a sender waits for room, so a slow
//! provider holds back its own fan-out and nothing else.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tagcast_push::h2::Http2;
use tagcast_push::{Alert, Answer, Outcome, apns, fcm, webpush};
use tagcast_store::{Device, Platform};
use tokio::sync::Semaphore;

use crate::config::{ApnsConfig, AppConfig, FcmConfig, WebPushConfig};

/// Requests to one provider of one app at once.
const IN_FLIGHT: usize = 256;
/// How long a provider has to answer a request.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// APNs for one app: its team's credentials, the app's topic and the two hosts.
pub struct Apns {
    pub credentials: apns::Credentials,
    pub topic: String,
    pub endpoint: String,
    pub sandbox_endpoint: String,
    /// Certificates to trust besides the system's (PEM), from `ca_file`.
    pub ca: Option<Vec<u8>>,
    production: Http2,
    sandbox: Http2,
    lanes: Semaphore,
}

/// FCM for one app: its service account and where messages go.
pub struct Fcm {
    pub account: fcm::ServiceAccount,
    pub endpoint: String,
    pub ca: Option<Vec<u8>>,
    messages: Http2,
    /// For the token endpoint.
    client: reqwest::Client,
    lanes: Semaphore,
    /// Held while an access token is fetched, so that one request fetches it for all.
    fetching: tokio::sync::Mutex<()>,
}

/// Web Push for one app: its VAPID identity.
pub struct WebPush {
    pub vapid: webpush::Vapid,
    pub ca: Option<Vec<u8>>,
    /// Refuses private addresses unless the app allows them (`webpush_private_endpoints`).
    client: reqwest::Client,
    lanes: Semaphore,
}

/// One push's notification, as every device of it gets it.
pub struct Notice {
    pub alert: Alert,
    /// Replaces a shown notification of the same push: its TaskId.
    pub collapse_id: String,
    /// Until when the providers keep trying an offline device (unix ms); 0 for a push without
    /// an offline lifetime, tried once.
    pub expires_ms: u64,
    /// The Web Push payload (see `webpush::payload`).
    pub webpush_payload: Vec<u8>,
}

impl Notice {
    /// What is left of the lifetime at `now_ms`, for the providers' TTLs.
    fn ttl(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.expires_ms.saturating_sub(now_ms))
    }
}

/// What an app can reach devices with; each provider only when configured.
#[derive(Default, Clone)]
pub struct Providers {
    pub apns: Option<Arc<Apns>>,
    pub fcm: Option<Arc<Fcm>>,
    pub webpush: Option<Arc<WebPush>>,
}

impl Providers {
    /// Loads the providers `app` configures; the error names the config key.
    pub fn load(app: &AppConfig) -> Result<Self, String> {
        let private = app.limits.webpush_private_endpoints;
        Ok(Self {
            apns: app.apns.as_ref().map(load_apns).transpose()?.map(Arc::new),
            fcm: app.fcm.as_ref().map(load_fcm).transpose()?.map(Arc::new),
            webpush: app
                .webpush
                .as_ref()
                .map(|config| load_webpush(config, private))
                .transpose()?
                .map(Arc::new),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.apns.is_none() && self.fcm.is_none() && self.webpush.is_none()
    }

    /// Sends `notice` to `device` through its platform's provider; what the answer means.
    pub async fn send(&self, device: &Device, notice: &Notice) -> Outcome {
        let platform = device.platform;
        let _queued = crate::metrics::device_queued(platform);
        let started = Instant::now();
        let outcome = match platform {
            Platform::Apns => match &self.apns {
                Some(apns) => apns.send(device, notice).await,
                None => not_configured(platform),
            },
            Platform::Fcm => match &self.fcm {
                Some(fcm) => fcm.send(device, notice).await,
                None => not_configured(platform),
            },
            Platform::WebPush => match &self.webpush {
                Some(webpush) => webpush.send(device, notice).await,
                None => not_configured(platform),
            },
        };
        crate::metrics::device_answered(platform, &outcome, started.elapsed());
        outcome
    }
}

fn not_configured(platform: Platform) -> Outcome {
    Outcome::Failed {
        reason: format!("{} is not configured for this app", platform.name()),
    }
}

/// Reads the answer to a request with `classify`; no answer asks for a retry.
async fn exchange(
    answer: impl Future<Output = Result<Answer, String>>,
    classify: impl FnOnce(&Answer) -> Outcome,
) -> Outcome {
    match answer.await {
        Ok(answer) => classify(&answer),
        Err(error) => {
            tracing::debug!(%error, "push provider did not answer");
            Outcome::Retry {
                reason: "no answer".into(),
                after: None,
            }
        }
    }
}

impl Apns {
    async fn send(&self, device: &Device, notice: &Notice) -> Outcome {
        let _lane = self.lanes.acquire().await;
        let token = match self.credentials.token(webpush::unix_now()) {
            Ok(token) => token,
            Err(error) => {
                return Outcome::Failed {
                    reason: format!("provider token: {error}"),
                };
            }
        };
        let (base, connection) = match device.sandbox {
            true => (&self.sandbox_endpoint, &self.sandbox),
            false => (&self.endpoint, &self.production),
        };
        let notification = apns::Notification {
            device_token: &device.token,
            topic: &self.topic,
            alert: &notice.alert,
            expiration: notice.expires_ms / 1000,
            collapse_id: &notice.collapse_id,
        };
        let request = apns::request(base, &token, &notification);
        exchange(connection.send(request, TIMEOUT), |a| {
            apns::outcome(a.status, &a.headers, &a.body)
        })
        .await
    }
}

impl Fcm {
    async fn send(&self, device: &Device, notice: &Notice) -> Outcome {
        let _lane = self.lanes.acquire().await;
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(%error, "no FCM access token");
                return Outcome::Retry {
                    reason: "no access token".into(),
                    after: None,
                };
            }
        };
        let notification = fcm::Notification {
            device_token: &device.token,
            alert: &notice.alert,
            ttl: notice.ttl(crate::clock::now_ms()),
            collapse_key: &notice.collapse_id,
        };
        let request = fcm::request(
            &self.endpoint,
            &self.account.project_id,
            &token,
            &notification,
        );
        exchange(self.messages.send(request, TIMEOUT), |a| {
            fcm::outcome(a.status, &a.headers, &a.body)
        })
        .await
    }

    /// The cached access token, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, String> {
        if let Some(token) = self.account.cached_token(webpush::unix_now()) {
            return Ok(token);
        }
        let _fetching = self.fetching.lock().await;
        let now = webpush::unix_now();
        if let Some(token) = self.account.cached_token(now) {
            return Ok(token);
        }
        let request = self.account.token_request(now).map_err(|e| e.to_string())?;
        let answer = tagcast_push::send(&self.client, request, TIMEOUT).await?;
        if !(200..300).contains(&answer.status) {
            return Err(format!(
                "the token endpoint answered HTTP {}",
                answer.status
            ));
        }
        self.account
            .token_received(&answer.body, now)
            .map_err(|e| e.to_string())
    }
}

impl WebPush {
    async fn send(&self, device: &Device, notice: &Notice) -> Outcome {
        let _lane = self.lanes.acquire().await;
        if notice.webpush_payload.len() > webpush::MAX_PAYLOAD {
            return Outcome::Failed {
                reason: "payload too large".into(),
            };
        }
        let subscription = match webpush::Subscription::parse(&device.token) {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::debug!(%error, "stored Web Push subscription unusable");
                return Outcome::Failed {
                    reason: "bad subscription".into(),
                };
            }
        };
        let notification = webpush::Notification {
            payload: &notice.webpush_payload,
            ttl: notice.ttl(crate::clock::now_ms()),
            topic: Some(&notice.collapse_id),
            urgency: webpush::Urgency::Normal,
        };
        match webpush::request(&subscription, &self.vapid, &notification) {
            Ok(request) => {
                let answer = tagcast_push::send(&self.client, request, TIMEOUT);
                exchange(answer, webpush::outcome).await
            }
            Err(error) => {
                tracing::warn!(%error, "Web Push request not made");
                Outcome::Failed {
                    reason: "encryption failed".into(),
                }
            }
        }
    }
}

impl Providers {
    /// What the app reaches devices with, for the start-up log: ids and hosts, no secret.
    pub fn describe(&self) -> Vec<String> {
        let mut described = Vec::new();
        if let Some(apns) = &self.apns {
            described.push(format!(
                "apns (team {}, key {}, topic {}, {} and {}{})",
                apns.credentials.team_id,
                apns.credentials.key_id,
                apns.topic,
                apns.endpoint,
                apns.sandbox_endpoint,
                trusting(&apns.ca)
            ));
        }
        if let Some(fcm) = &self.fcm {
            described.push(format!(
                "fcm (project {}, {}, tokens from {}{})",
                fcm.account.project_id,
                fcm.endpoint,
                fcm.account.token_uri,
                trusting(&fcm.ca)
            ));
        }
        if let Some(webpush) = &self.webpush {
            let key = webpush.vapid.public_key();
            described.push(format!(
                "webpush (VAPID public key {key}{})",
                trusting(&webpush.ca)
            ));
        }
        described
    }
}

/// What the log says of a `ca_file`.
fn trusting(ca: &Option<Vec<u8>>) -> &'static str {
    match ca {
        Some(_) => ", trusting its ca_file too",
        None => "",
    }
}

/// The certificates of `ca_file` (PEM), checked; the error names `key`.
fn read_ca(key: &str, path: Option<&Path>) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let pem = read(key, path)?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(Some(pem)),
        _ => Err(format!("{key}: no PEM certificate in {}", path.display())),
    }
}

/// The bytes of a credentials file.
fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

fn load_apns(config: &ApnsConfig) -> Result<Apns, String> {
    let pem = read("apns.key_file", &config.key_file)?;
    let credentials = apns::Credentials::from_p8(&pem, &config.key_id, &config.team_id)
        .map_err(|e| format!("apns.key_file: {}: {e}", config.key_file.display()))?;
    let ca = read_ca("apns.ca_file", config.ca_file.as_deref())?;
    Ok(Apns {
        credentials,
        topic: config.topic.clone(),
        endpoint: config.endpoint.clone(),
        sandbox_endpoint: config.sandbox_endpoint.clone(),
        production: Http2::new(&config.endpoint, ca.as_deref())
            .map_err(|e| format!("apns.endpoint: {e}"))?,
        sandbox: Http2::new(&config.sandbox_endpoint, ca.as_deref())
            .map_err(|e| format!("apns.sandbox_endpoint: {e}"))?,
        ca,
        lanes: Semaphore::new(IN_FLIGHT),
    })
}

fn load_fcm(config: &FcmConfig) -> Result<Fcm, String> {
    let json = read("fcm.service_account_file", &config.service_account_file)?;
    let mut account = fcm::ServiceAccount::from_json(&json).map_err(|e| {
        format!(
            "fcm.service_account_file: {}: {e}",
            config.service_account_file.display()
        )
    })?;
    if let Some(token_uri) = &config.token_uri {
        account.token_uri = token_uri.clone();
    }
    let ca = read_ca("fcm.ca_file", config.ca_file.as_deref())?;
    Ok(Fcm {
        account,
        endpoint: config.endpoint.clone(),
        messages: Http2::new(&config.endpoint, ca.as_deref())
            .map_err(|e| format!("fcm.endpoint: {e}"))?,
        client: tagcast_push::client(ca.as_deref(), false).map_err(|e| format!("fcm: {e}"))?,
        ca,
        lanes: Semaphore::new(IN_FLIGHT),
        fetching: tokio::sync::Mutex::new(()),
    })
}

fn load_webpush(config: &WebPushConfig, private_allowed: bool) -> Result<WebPush, String> {
    if !(config.contact.starts_with("mailto:") || config.contact.starts_with("https:")) {
        return Err(format!(
            "webpush.contact: '{}' is not a mailto: or https: URI",
            config.contact
        ));
    }
    let key = read("webpush.vapid_key_file", &config.vapid_key_file)?;
    let key = String::from_utf8_lossy(&key);
    let vapid = webpush::Vapid::from_private_key(&key, config.contact.clone()).map_err(|e| {
        format!(
            "webpush.vapid_key_file: {}: {e} (tagcast vapid-key writes one)",
            config.vapid_key_file.display()
        )
    })?;
    let ca = read_ca("webpush.ca_file", config.ca_file.as_deref())?;
    Ok(WebPush {
        vapid,
        client: tagcast_push::endpoint_client(ca.as_deref(), private_allowed)
            .map_err(|e| format!("webpush: {e}"))?,
        ca,
        lanes: Semaphore::new(IN_FLIGHT),
    })
}
