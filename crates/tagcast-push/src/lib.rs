//! What tagcast sends to the push providers that reach devices whose app is closed (issue 10),
//! and how it reads their answers: APNs, FCM HTTP v1 and Web Push. Each provider's module
//! builds its requests and classifies its answers; sending, queueing and retrying is the
//! server's.

pub mod apns;
pub mod fcm;
pub mod h2;
pub mod net;
pub mod webpush;

use std::time::Duration;

use serde_json::Value;

/// The notification a device shows, from a push's `OfflinePushInfo` (Tencent's fields; see
/// docs/extensions.md for the mapping onto each provider).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alert {
    pub title: Option<String>,
    /// `ApnsInfo.Title`: the title on Apple devices, instead of `title`.
    pub apns_title: Option<String>,
    pub subtitle: Option<String>,
    pub body: Option<String>,
    /// `Ext`: passed through to the app.
    pub ext: Option<String>,
    pub sound: Option<String>,
    /// `ApnsInfo.BadgeMode` 0 (the default) counts the push on the badge.
    pub badge: bool,
    pub image: Option<String>,
    pub mutable_content: bool,
    /// `AndroidInfo.GoogleChannelID`: the Android notification channel.
    pub android_channel: Option<String>,
}

impl Alert {
    /// From `OfflinePushInfo`.
    pub fn from_offline_push_info(info: &Value) -> Self {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let apns = &info["ApnsInfo"];
        let android = &info["AndroidInfo"];
        Self {
            title: text(&info["Title"]),
            apns_title: text(&apns["Title"]),
            subtitle: text(&apns["SubTitle"]),
            body: text(&info["Desc"]),
            ext: text(&info["Ext"]),
            sound: text(&apns["Sound"]).or_else(|| text(&android["Sound"])),
            badge: apns["BadgeMode"].as_u64() != Some(1),
            image: text(&apns["Image"]),
            mutable_content: apns["MutableContent"].as_u64() == Some(1),
            android_channel: text(&android["GoogleChannelID"]),
        }
    }
}

/// What a provider's answer to one notification means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted for delivery.
    Accepted,
    /// The device is gone (uninstalled, token expired): remove it.
    Gone { reason: String },
    /// Try again later (throttled, or the provider failed); `after` is the provider's
    /// `Retry-After` when it gave one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for good (a bad request, bad credentials): counted, not retried.
    Failed { reason: String },
}

/// A provider's answer, its body cut at `MAX_ANSWER` bytes.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// The most of an answer's body that is read: providers answer with a few hundred bytes, and a
/// Web Push endpoint is any server a browser named.
pub const MAX_ANSWER: usize = 64 * 1024;

/// A client for a provider: rustls with the public roots and, when given, the PEM
/// certificates of `ca` (a test's or a proxy's); HTTP/2 only when `http2_only` (APNs).
pub fn client(ca: Option<&[u8]>, http2_only: bool) -> Result<reqwest::Client, String> {
    client_builder(ca, http2_only)?
        .build()
        .map_err(|e| e.to_string())
}

/// `client`, for endpoints browsers name (Web Push): names that resolve to a loopback or
/// private address are refused unless `private_allowed`, and redirects are not followed.
pub fn endpoint_client(
    ca: Option<&[u8]>,
    private_allowed: bool,
) -> Result<reqwest::Client, String> {
    let mut builder = client_builder(ca, false)?.redirect(reqwest::redirect::Policy::none());
    if !private_allowed {
        builder = builder.dns_resolver(std::sync::Arc::new(net::PublicOnly));
    }
    builder.build().map_err(|e| e.to_string())
}

fn client_builder(ca: Option<&[u8]>, http2_only: bool) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(pem) = ca {
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("ca: {e}"))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if http2_only {
        builder = builder.http2_prior_knowledge();
    }
    Ok(builder)
}

/// Sends `request` with `client`, within `timeout`; the answer, or why there is none.
pub async fn send(
    client: &reqwest::Client,
    request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<Answer, String> {
    let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
        .map_err(|e| format!("request: {e}"))?;
    within(timeout, async {
        let mut response = client.execute(request).await.map_err(|e| causes(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER
            && let Some(chunk) = response.chunk().await.map_err(|e| causes(&e))?
        {
            keep_within_cap(&mut body, &chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    })
    .await
}

/// `exchange`'s outcome, or an error once `timeout` has passed without one.
async fn within(
    timeout: Duration,
    exchange: impl Future<Output = Result<Answer, String>>,
) -> Result<Answer, String> {
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// Appends what of `chunk` fits in `MAX_ANSWER` bytes of `body`.
fn keep_within_cap(body: &mut Vec<u8>, chunk: &[u8]) {
    let room = MAX_ANSWER.saturating_sub(body.len());
    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

/// An error with its causes, which reqwest keeps out of its own message ("error sending
/// request" says nothing of a refused address or an untrusted certificate).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `Retry-After` of an answer, in seconds (the HTTP-date form is not used by the
/// providers).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse().ok().map(Duration::from_secs)
}

/// What an answer with `status` and no more specific meaning is.
pub fn by_status(status: u16, reason: String, after: Option<Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Accepted,
        429 | 500..=599 => Outcome::Retry { reason, after },
        _ => Outcome::Failed { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offline_push_info_maps_onto_an_alert() {
        let info = json!({
            "PushFlag": 0, "Title": "Sale", "Desc": "50% off", "Ext": "{\"k\":1}",
            "ApnsInfo": { "Title": "Sale!", "Sound": "ding.aiff", "BadgeMode": 1, "SubTitle": "today",
                          "Image": "https://img.example/x.png", "MutableContent": 1 },
            "AndroidInfo": { "GoogleChannelID": "promos" }
        });
        let alert = Alert::from_offline_push_info(&info);
        assert_eq!(alert.title.as_deref(), Some("Sale"));
        assert_eq!(alert.apns_title.as_deref(), Some("Sale!"));
        assert_eq!(alert.body.as_deref(), Some("50% off"));
        assert_eq!(alert.subtitle.as_deref(), Some("today"));
        assert_eq!(alert.sound.as_deref(), Some("ding.aiff"));
        assert!(!alert.badge, "BadgeMode 1 does not count");
        assert!(alert.mutable_content);
        assert_eq!(alert.android_channel.as_deref(), Some("promos"));
        let plain = Alert::from_offline_push_info(&json!({ "Title": "" }));
        assert_eq!(
            plain,
            Alert {
                badge: true,
                ..Alert::default()
            }
        );
    }

    #[test]
    fn statuses_without_more_meaning_are_classified() {
        assert_eq!(by_status(200, String::new(), None), Outcome::Accepted);
        let after = Some(Duration::from_secs(3));
        assert!(
            matches!(by_status(429, "x".into(), after), Outcome::Retry { after: a, .. } if a == after)
        );
        assert!(matches!(
            by_status(503, "x".into(), None),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            by_status(403, "x".into(), None),
            Outcome::Failed { .. }
        ));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
