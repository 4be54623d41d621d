//! FCM HTTP v1: a service account (its JSON file: `project_id`, `client_email`, `private_key`,
//! `token_uri`) gets an OAuth 2.0 access token with the JWT-bearer grant (RFC 7523: an RS256
//! assertion signed with its key), reused until shortly before it expires, and sends each
//! message with `POST /v1/projects/{project_id}/messages:send`.

use std::sync::Mutex;
use std::time::Duration;

use http::{Request, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Alert, Outcome, by_status, retry_after};

/// Where messages go (tests point it elsewhere).
pub const API: &str = "https://fcm.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
/// An access token is renewed this long before it expires.
const RENEW_BEFORE: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid service account: {0}")]
    ServiceAccount(String),
    #[error("cannot sign the token request: {0}")]
    Sign(String),
    #[error("unexpected token response: {0}")]
    TokenResponse(String),
}

#[derive(Deserialize)]
struct ServiceAccountFile {
    project_id: String,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: String,
}

/// A service account and the access token it holds.
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub token_uri: String,
    key_id: Option<String>,
    key: EncodingKey,
    /// The access token and when it expires (unix seconds).
    token: Mutex<Option<(String, u64)>>,
}

impl ServiceAccount {
    /// From the service account's JSON file.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let file: ServiceAccountFile =
            serde_json::from_slice(json).map_err(|e| Error::ServiceAccount(e.to_string()))?;
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|e| Error::ServiceAccount(format!("private_key: {e}")))?;
        Ok(Self {
            project_id: file.project_id,
            client_email: file.client_email,
            token_uri: file.token_uri,
            key_id: file.private_key_id,
            key,
            token: Mutex::new(None),
        })
    }

    /// The access token to use at `now` (unix seconds), if the one held is still good.
    pub fn cached_token(&self, now: u64) -> Option<String> {
        let held = self.token.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref()
            .filter(|(_, expires)| now + RENEW_BEFORE < *expires)
            .map(|(token, _)| token.clone())
    }

    /// The request for a new access token at `now`: the JWT-bearer grant to `token_uri`.
    pub fn token_request(&self, now: u64) -> Result<Request<Vec<u8>>, Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Sign(e.to_string()))?;
        let form = format!(
            "grant_type={}&assertion={}",
            utf8_percent_encode(GRANT, NON_ALPHANUMERIC),
            utf8_percent_encode(&assertion, NON_ALPHANUMERIC)
        );
        Request::post(&self.token_uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.into_bytes())
            .map_err(|e| Error::Sign(e.to_string()))
    }

    /// Keeps the access token of a successful token response received at `now`.
    pub fn token_received(&self, body: &[u8], now: u64) -> Result<String, Error> {
        let response: Value =
            serde_json::from_slice(body).map_err(|e| Error::TokenResponse(e.to_string()))?;
        let token = response["access_token"]
            .as_str()
            .ok_or_else(|| Error::TokenResponse("no access_token".into()))?;
        let lifetime = response["expires_in"]
            .as_u64()
            .unwrap_or(ASSERTION_LIFETIME);
        let held = (token.to_string(), now + lifetime);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
        Ok(token.to_string())
    }
}

/// One message to one device.
pub struct Notification<'a> {
    pub device_token: &'a str,
    pub alert: &'a Alert,
    /// How long FCM keeps it for an offline device.
    pub ttl: Duration,
    /// Replaces an undelivered message, and a shown notification, with the same key (tagcast:
    /// the TaskId).
    pub collapse_key: &'a str,
}

/// The `messages:send` request for `notification`, to `api` (`API`, or a test's).
pub fn request(
    api: &str,
    project_id: &str,
    access_token: &str,
    notification: &Notification<'_>,
) -> Request<Vec<u8>> {
    let url = format!(
        "{}/v1/projects/{project_id}/messages:send",
        api.trim_end_matches('/')
    );
    Request::post(url)
        .header(header::AUTHORIZATION, format!("Bearer {access_token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(message(notification).to_string().into_bytes())
        .unwrap_or_else(|_| Request::new(Vec::new()))
}

/// The message: the shown notification, Android's collapse key, tag, TTL, sound and channel,
/// and `Ext` as data for the app.
pub fn message(notification: &Notification<'_>) -> Value {
    let alert = notification.alert;
    let mut shown = serde_json::Map::new();
    for (key, value) in [
        ("title", &alert.title),
        ("body", &alert.body),
        ("image", &alert.image),
    ] {
        if let Some(value) = value {
            shown.insert(key.into(), json!(value));
        }
    }
    let mut android_shown = json!({ "tag": notification.collapse_key });
    if let Some(sound) = &alert.sound {
        android_shown["sound"] = json!(sound);
    }
    if let Some(channel) = &alert.android_channel {
        android_shown["channel_id"] = json!(channel);
    }
    let mut message = json!({
        "token": notification.device_token,
        "notification": shown,
        "android": {
            "collapse_key": notification.collapse_key,
            "ttl": format!("{}s", notification.ttl.as_secs()),
            "notification": android_shown,
        },
    });
    if let Some(ext) = &alert.ext {
        message["data"] = json!({ "ext": ext });
    }
    json!({ "message": message })
}

/// What FCM's answer means: `UNREGISTERED` (404) is a device gone; `QUOTA_EXCEEDED`,
/// `UNAVAILABLE` and `INTERNAL` (429, 5xx) are retried.
pub fn outcome(status: u16, headers: &http::HeaderMap, body: &[u8]) -> Outcome {
    let error = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let code = error["error"]["details"]
        .as_array()
        .and_then(|details| details.iter().find_map(|d| d["errorCode"].as_str()))
        .or_else(|| error["error"]["status"].as_str())
        .map_or_else(|| format!("HTTP {status}"), str::to_string);
    match code.as_str() {
        "UNREGISTERED" => Outcome::Gone { reason: code },
        _ if status == 404 => Outcome::Gone { reason: code },
        _ => by_status(status, code, retry_after(headers)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const KEY: &str = include_str!("../fixtures/test-rsa-key.pem");
    const PUBLIC: &str = include_str!("../fixtures/test-rsa-key.pub.pem");

    fn account() -> ServiceAccount {
        let file = json!({
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "kid-1",
            "private_key": KEY,
            "client_email": "push@demo-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        ServiceAccount::from_json(file.to_string().as_bytes()).unwrap()
    }

    /// The form fields of a token request.
    fn form(request: &Request<Vec<u8>>) -> Vec<(String, String)> {
        let body = std::str::from_utf8(request.body()).unwrap();
        body.split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn the_token_request_is_a_jwt_bearer_grant_signed_by_the_service_account() {
        let account = account();
        let now = 1_800_000_000;
        let request = account.token_request(now).unwrap();
        assert_eq!(request.uri(), "https://oauth2.googleapis.com/token");
        assert_eq!(
            request.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let fields = form(&request);
        assert_eq!(fields[0], ("grant_type".into(), GRANT.into()));
        let assertion = &fields[1].1;
        assert_eq!(
            jsonwebtoken::decode_header(assertion)
                .unwrap()
                .kid
                .as_deref(),
            Some("kid-1")
        );
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&["https://oauth2.googleapis.com/token"]);
        let decoding = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Value>(assertion, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["iss"], "push@demo-project.iam.gserviceaccount.com");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"], now + 3600);
    }

    #[test]
    fn an_access_token_is_reused_until_shortly_before_it_expires() {
        let account = account();
        assert_eq!(account.cached_token(100), None);
        let body = br#"{"access_token":"ya29.t","expires_in":3599,"token_type":"Bearer"}"#;
        assert_eq!(account.token_received(body, 100).unwrap(), "ya29.t");
        assert_eq!(account.cached_token(100 + 3000).as_deref(), Some("ya29.t"));
        assert_eq!(account.cached_token(100 + 3599 - 300), None);
        assert!(account.token_received(b"{}", 100).is_err());
        let broken =
            json!({ "project_id": "p", "client_email": "e", "private_key": "x", "token_uri": "u" });
        assert!(ServiceAccount::from_json(broken.to_string().as_bytes()).is_err());
    }

    #[test]
    fn a_message_targets_the_device_with_the_mapped_notification() {
        let alert = Alert {
            title: Some("Sale".into()),
            body: Some("50% off".into()),
            sound: Some("ding".into()),
            android_channel: Some("promos".into()),
            ext: Some("{\"k\":1}".into()),
            ..Alert::default()
        };
        let notification = Notification {
            device_token: "fcm:token",
            alert: &alert,
            ttl: Duration::from_secs(600),
            collapse_key: "task-1",
        };
        let request = request(API, "demo-project", "ya29.t", &notification);
        assert_eq!(
            request.uri(),
            "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"
        );
        assert_eq!(request.headers()["authorization"], "Bearer ya29.t");
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(
            body,
            json!({ "message": {
                "token": "fcm:token",
                "notification": { "title": "Sale", "body": "50% off" },
                "android": { "collapse_key": "task-1", "ttl": "600s",
                             "notification": { "tag": "task-1", "sound": "ding", "channel_id": "promos" } },
                "data": { "ext": "{\"k\":1}" }
            }})
        );
    }

    #[test]
    fn answers_are_classified_as_google_documents_them() {
        let none = http::HeaderMap::new();
        assert_eq!(
            outcome(200, &none, br#"{"name":"projects/p/messages/1"}"#),
            Outcome::Accepted
        );
        let unregistered = br#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(
            outcome(404, &none, unregistered),
            Outcome::Gone {
                reason: "UNREGISTERED".into()
            }
        );
        let quota = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"errorCode":"QUOTA_EXCEEDED"}]}}"#;
        assert!(
            matches!(outcome(429, &none, quota), Outcome::Retry { reason, .. } if reason == "QUOTA_EXCEEDED")
        );
        assert!(matches!(outcome(503, &none, b""), Outcome::Retry { .. }));
        let invalid = br#"{"error":{"code":400,"status":"INVALID_ARGUMENT"}}"#;
        assert!(
            matches!(outcome(400, &none, invalid), Outcome::Failed { reason } if reason == "INVALID_ARGUMENT")
        );
    }
}
