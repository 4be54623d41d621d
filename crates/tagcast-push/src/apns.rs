//! APNs over HTTP/2 with token authentication: each request carries a provider token, an ES256
//! JWT signed with the team's `.p8` key, naming the key id and the team; Apple wants the token
//! renewed no more often than every 20 minutes and no less than every 60, so one is reused for
//! 40 minutes. Requests go to `/3/device/{token}` of the production or the sandbox host.

use std::sync::Mutex;
use std::time::Duration;

use http::{Request, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{Alert, Outcome, by_status, retry_after};

pub const PRODUCTION: &str = "https://api.push.apple.com";
pub const SANDBOX: &str = "https://api.sandbox.push.apple.com";

/// How long one provider token is used (Apple: renew after 20 minutes, before 60).
pub const TOKEN_REUSE: Duration = Duration::from_secs(40 * 60);
/// Longest `apns-collapse-id` Apple accepts, in bytes.
const MAX_COLLAPSE_ID: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid APNs key: {0}")]
    Key(String),
    #[error("cannot sign the APNs provider token: {0}")]
    Sign(String),
}

/// The team's signing key and the provider token made with it.
pub struct Credentials {
    key: EncodingKey,
    pub key_id: String,
    pub team_id: String,
    /// The current token and when it was issued (unix seconds).
    token: Mutex<Option<(String, u64)>>,
}

impl Credentials {
    /// From the `.p8` file's PEM (a PKCS#8 P-256 key), its key id and the team id.
    pub fn from_p8(pem: &[u8], key_id: &str, team_id: &str) -> Result<Self, Error> {
        let key = EncodingKey::from_ec_pem(pem).map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self {
            key,
            key_id: key_id.to_string(),
            team_id: team_id.to_string(),
            token: Mutex::new(None),
        })
    }

    /// The provider token at `now` (unix seconds): the current one while it is younger than
    /// `TOKEN_REUSE`, else a new one.
    pub fn token(&self, now: u64) -> Result<String, Error> {
        let mut current = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, issued)) = current.as_ref()
            && now.saturating_sub(*issued) < TOKEN_REUSE.as_secs()
        {
            return Ok(token.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = json!({ "iss": self.team_id, "iat": now });
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Sign(e.to_string()))?;
        *current = Some((token.clone(), now));
        Ok(token)
    }
}

/// One notification to one device.
pub struct Notification<'a> {
    pub device_token: &'a str,
    /// The app's bundle id.
    pub topic: &'a str,
    pub alert: &'a Alert,
    /// Until when (unix seconds) APNs keeps trying an offline device; 0: once only.
    pub expiration: u64,
    /// Replaces a shown notification with the same id (tagcast: the TaskId).
    pub collapse_id: &'a str,
}

/// The request for `notification`, to the host `base` (`PRODUCTION`, `SANDBOX`, or a test's).
pub fn request(base: &str, token: &str, notification: &Notification<'_>) -> Request<Vec<u8>> {
    let url = format!(
        "{}/3/device/{}",
        base.trim_end_matches('/'),
        notification.device_token
    );
    let collapse_id = cut(notification.collapse_id, MAX_COLLAPSE_ID);
    Request::post(url)
        .header(header::AUTHORIZATION, format!("bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("apns-topic", notification.topic)
        .header("apns-push-type", "alert")
        .header("apns-priority", "10")
        .header("apns-expiration", notification.expiration.to_string())
        .header("apns-collapse-id", collapse_id)
        .body(payload(notification.alert).to_string().into_bytes())
        .unwrap_or_else(|_| Request::new(Vec::new()))
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The JSON payload: `aps` with the alert, sound, badge and mutable-content; `ext` and the
/// image beside it for the app (and its notification service extension).
pub fn payload(alert: &Alert) -> Value {
    let mut shown = serde_json::Map::new();
    for (key, value) in [
        ("title", alert.apns_title.as_ref().or(alert.title.as_ref())),
        ("subtitle", alert.subtitle.as_ref()),
        ("body", alert.body.as_ref()),
    ] {
        if let Some(value) = value {
            shown.insert(key.into(), json!(value));
        }
    }
    let mut aps = json!({ "alert": shown });
    if let Some(sound) = &alert.sound {
        aps["sound"] = json!(sound);
    }
    if alert.badge {
        aps["badge"] = json!(1);
    }
    if alert.mutable_content {
        aps["mutable-content"] = json!(1);
    }
    let mut payload = json!({ "aps": aps });
    if let Some(ext) = &alert.ext {
        payload["ext"] = json!(ext);
    }
    if let Some(image) = &alert.image {
        payload["image"] = json!(image);
    }
    payload
}

/// What APNs's answer means: 410, or 400 `BadDeviceToken` / `DeviceTokenNotForTopic`, is a
/// device gone; 429 and 5xx are retried (after `Retry-After` when given).
pub fn outcome(status: u16, headers: &http::HeaderMap, body: &[u8]) -> Outcome {
    let reason = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let gone = status == 410
        || (status == 400
            && matches!(reason.as_str(), "BadDeviceToken" | "DeviceTokenNotForTopic"));
    match gone {
        true => Outcome::Gone { reason },
        false => by_status(status, reason, retry_after(headers)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    /// A fresh P-256 key: its PKCS#8 PEM (as in a `.p8` file) and its public key's PEM.
    fn key() -> (String, String) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        (pair.serialize_pem(), pair.public_key_pem())
    }

    #[test]
    fn the_provider_token_verifies_with_the_public_key_and_is_reused_for_40_minutes() {
        let (private, public) = key();
        let credentials =
            Credentials::from_p8(private.as_bytes(), "KEY1234567", "TEAM123456").unwrap();
        let now = 1_800_000_000;
        let token = credentials.token(now).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let decoding = DecodingKey::from_ec_pem(public.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims, json!({ "iss": "TEAM123456", "iat": now }));
        // Reused before 40 minutes, renewed after.
        assert_eq!(credentials.token(now + 39 * 60).unwrap(), token);
        let renewed = credentials.token(now + 40 * 60).unwrap();
        assert_ne!(renewed, token);
        // Another key does not verify it.
        let (_, other) = key();
        let other = DecodingKey::from_ec_pem(other.as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&renewed, &other, &validation).is_err());
        assert!(Credentials::from_p8(b"not a key", "k", "t").is_err());
    }

    #[test]
    fn a_request_has_apples_headers_and_payload() {
        let alert = Alert {
            title: Some("Sale".into()),
            body: Some("50% off".into()),
            sound: Some("ding.aiff".into()),
            badge: true,
            mutable_content: true,
            ext: Some("{\"k\":1}".into()),
            ..Alert::default()
        };
        let long_task_id = "t".repeat(70);
        let request = request(
            SANDBOX,
            "jwt",
            &Notification {
                device_token: "ab12",
                topic: "com.example.app",
                alert: &alert,
                expiration: 1_800_003_600,
                collapse_id: &long_task_id,
            },
        );
        assert_eq!(
            request.uri(),
            "https://api.sandbox.push.apple.com/3/device/ab12"
        );
        let h = request.headers();
        assert_eq!(h["authorization"], "bearer jwt");
        assert_eq!(h["apns-topic"], "com.example.app");
        assert_eq!(h["apns-push-type"], "alert");
        assert_eq!(h["apns-expiration"], "1800003600");
        assert_eq!(h["apns-collapse-id"].len(), 64);
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(
            body,
            json!({
                "aps": { "alert": { "title": "Sale", "body": "50% off" }, "sound": "ding.aiff",
                         "badge": 1, "mutable-content": 1 },
                "ext": "{\"k\":1}"
            })
        );
    }

    #[test]
    fn answers_are_classified_as_apple_documents_them() {
        let none = http::HeaderMap::new();
        assert_eq!(outcome(200, &none, b""), Outcome::Accepted);
        let gone = outcome(410, &none, br#"{"reason":"Unregistered","timestamp":1}"#);
        assert_eq!(
            gone,
            Outcome::Gone {
                reason: "Unregistered".into()
            }
        );
        assert!(matches!(
            outcome(400, &none, br#"{"reason":"BadDeviceToken"}"#),
            Outcome::Gone { .. }
        ));
        assert!(matches!(
            outcome(400, &none, br#"{"reason":"BadTopic"}"#),
            Outcome::Failed { .. }
        ));
        let mut headers = http::HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "5".parse().unwrap());
        let throttled = outcome(429, &headers, br#"{"reason":"TooManyRequests"}"#);
        assert_eq!(
            throttled,
            Outcome::Retry {
                reason: "TooManyRequests".into(),
                after: Some(Duration::from_secs(5))
            }
        );
        assert!(matches!(
            outcome(500, &none, b"oops"),
            Outcome::Retry { .. }
        ));
    }
}
