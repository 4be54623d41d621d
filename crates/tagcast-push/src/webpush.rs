//! Web Push: a notification to a browser's push subscription is an HTTP POST to its endpoint
//! (RFC 8030) whose body is encrypted to the subscription's keys with `aes128gcm` (RFC 8291)
//! and whose `Authorization` identifies the app server by its VAPID key (RFC 8292).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request, Uri, header};
use sha2::{Digest, Sha256};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::jwt_simple::reexports::coarsetime;
use web_push_native::p256;

/// How long a VAPID signature is valid: RFC 8292 allows at most 24 hours.
const VAPID_VALIDITY: Duration = Duration::from_secs(12 * 3600);
/// A signature is reused for its origin (RFC 8292 §2 allows it) until this long before it
/// expires: signing every request would cost an ECDSA signature per notification.
const VAPID_RENEW_BEFORE: Duration = Duration::from_secs(3600);
/// Origins whose signatures are kept (push services are few); beyond it the cache starts afresh.
const MAX_SIGNED_ORIGINS: usize = 256;
/// The longest `Topic` RFC 8030 allows.
const MAX_TOPIC: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid subscription: {0}")]
    Subscription(String),
    #[error("invalid VAPID key: {0}")]
    Vapid(String),
    #[error("encryption failed: {0}")]
    Encryption(String),
}

/// A browser's push subscription: where to send, and the keys to encrypt to.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub endpoint: Uri,
    p256dh: p256::PublicKey,
    auth: web_push_native::Auth,
}

/// A string field of a subscription, without base64 padding.
fn text(value: &serde_json::Value) -> Option<&str> {
    value.as_str().map(|s| s.trim_end_matches('='))
}

impl Subscription {
    /// From the JSON a browser's `PushSubscription.toJSON()` gives (`endpoint`, `keys.p256dh`,
    /// `keys.auth`, base64url).
    pub fn parse(json: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Subscription(why.into());
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::Subscription(e.to_string()))?;
        let endpoint = text(&value["endpoint"]).ok_or_else(|| bad("no endpoint"))?;
        let endpoint: Uri = endpoint.parse().map_err(|_| bad("endpoint is not a URL"))?;
        let key = text(&value["keys"]["p256dh"]).ok_or_else(|| bad("no keys.p256dh"))?;
        let key = URL_SAFE_NO_PAD
            .decode(key)
            .map_err(|_| bad("keys.p256dh is not base64url"))?;
        let p256dh = p256::PublicKey::from_sec1_bytes(&key)
            .map_err(|_| bad("keys.p256dh is not a P-256 key"))?;
        let auth = text(&value["keys"]["auth"]).ok_or_else(|| bad("no keys.auth"))?;
        let auth = URL_SAFE_NO_PAD
            .decode(auth)
            .map_err(|_| bad("keys.auth is not base64url"))?;
        if auth.len() != 16 {
            return Err(bad("keys.auth is not 16 bytes"));
        }
        Ok(Self {
            endpoint,
            p256dh,
            auth: web_push_native::Auth::clone_from_slice(&auth),
        })
    }

    /// The endpoint's origin (scheme, host, and port when it is not the default), the audience
    /// of a VAPID signature.
    pub fn origin(&self) -> Result<String, Error> {
        let (scheme, authority) = match (self.endpoint.scheme_str(), self.endpoint.authority()) {
            (Some(scheme), Some(authority)) => (scheme, authority),
            _ => return Err(Error::Subscription("endpoint has no scheme or host".into())),
        };
        let default_port = matches!(
            (scheme, authority.port_u16()),
            ("https", Some(443)) | ("http", Some(80))
        );
        let host = authority.host();
        Ok(match authority.port_u16() {
            Some(port) if !default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        })
    }
}

/// An app server's VAPID identity: its P-256 key pair and a contact (`mailto:` or `https:`).
pub struct Vapid {
    key: ES256KeyPair,
    contact: String,
    /// The `Authorization` value signed for each audience origin, and when (unix seconds).
    signed: Mutex<HashMap<String, (String, u64)>>,
}

impl Vapid {
    /// A new key pair.
    pub fn generate(contact: impl Into<String>) -> Self {
        Self {
            key: ES256KeyPair::generate(),
            contact: contact.into(),
            signed: Mutex::default(),
        }
    }

    /// From the private key's 32 bytes, base64url (as `private_key` writes them).
    pub fn from_private_key(private: &str, contact: impl Into<String>) -> Result<Self, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(private.trim().trim_end_matches('='))
            .map_err(|e| Error::Vapid(format!("not base64url: {e}")))?;
        let key = ES256KeyPair::from_bytes(&bytes).map_err(|e| Error::Vapid(e.to_string()))?;
        Ok(Self {
            key,
            contact: contact.into(),
            signed: Mutex::default(),
        })
    }

    /// The private key, base64url: keep it secret.
    pub fn private_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.to_bytes())
    }

    /// The public key as browsers take it (`applicationServerKey`): the uncompressed point,
    /// base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.public_key().public_key().to_bytes_uncompressed())
    }

    /// The `Authorization` header for requests to `origin` (RFC 8292 §3).
    pub fn authorization(&self, origin: &str) -> Result<String, Error> {
        self.authorization_at(origin, unix_now())
    }

    /// The `Authorization` header for requests to `origin` at `now` (unix seconds): the one
    /// signed for it before while more than `VAPID_RENEW_BEFORE` of it is left, else a new one.
    pub fn authorization_at(&self, origin: &str, now: u64) -> Result<String, Error> {
        let reuse = (VAPID_VALIDITY - VAPID_RENEW_BEFORE).as_secs();
        // Held while signing, so that requests arriving together sign once.
        let mut signed = self.signed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((value, at)) = signed.get(origin)
            && (*at..*at + reuse).contains(&now)
        {
            return Ok(value.clone());
        }
        let value = self.sign(origin, now)?;
        if signed.len() >= MAX_SIGNED_ORIGINS {
            signed.clear();
        }
        signed.insert(origin.to_string(), (value.clone(), now));
        Ok(value)
    }

    /// A new `Authorization` value for `origin`, issued at `now` and valid `VAPID_VALIDITY`.
    fn sign(&self, origin: &str, now: u64) -> Result<String, Error> {
        let at = coarsetime::Duration::from_secs(now);
        let mut claims = Claims::create(VAPID_VALIDITY.into())
            .with_audience(origin)
            .with_subject(&self.contact);
        claims.issued_at = Some(at);
        claims.invalid_before = Some(at);
        claims.expires_at = Some(at + VAPID_VALIDITY.into());
        let token = self
            .key
            .sign(claims)
            .map_err(|e| Error::Vapid(e.to_string()))?;
        Ok(format!("vapid t={token}, k={}", self.public_key()))
    }
}

/// How soon the browser should wake for it (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Normal,
    High,
}

/// One notification to one subscription.
pub struct Notification<'a> {
    pub payload: &'a [u8],
    /// How long the push service keeps it for a browser that is offline.
    pub ttl: Duration,
    /// Replaces an undelivered notification of the same topic (tagcast: the TaskId).
    pub topic: Option<&'a str>,
    pub urgency: Urgency,
}

/// The request that delivers `notification` to `subscription`, signed by `vapid`.
pub fn request(
    subscription: &Subscription,
    vapid: &Vapid,
    notification: &Notification<'_>,
) -> Result<Request<Vec<u8>>, Error> {
    let body = web_push_native::encrypt(
        notification.payload.to_vec(),
        &subscription.p256dh,
        &subscription.auth,
    )
    .map_err(|e| Error::Encryption(e.to_string()))?;
    let authorization = vapid.authorization(&subscription.origin()?)?;
    let mut builder = Request::post(subscription.endpoint.clone())
        .header(header::CONTENT_ENCODING, "aes128gcm")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::AUTHORIZATION, authorization)
        .header("TTL", notification.ttl.as_secs())
        .header(
            "Urgency",
            match notification.urgency {
                Urgency::Normal => "normal",
                Urgency::High => "high",
            },
        );
    if let Some(topic) = notification.topic {
        builder = builder.header("Topic", topic_header(topic));
    }
    builder
        .body(body)
        .map_err(|e| Error::Encryption(e.to_string()))
}

/// A `Topic` header: the topic itself when it is at most 32 characters of the base64url
/// alphabet, else a 32-character digest of it (the same topic always gives the same header).
pub fn topic_header(topic: &str) -> HeaderValue {
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let value = if topic.len() <= MAX_TOPIC && topic.bytes().all(url_safe) {
        topic.to_string()
    } else {
        URL_SAFE_NO_PAD.encode(Sha256::digest(topic.as_bytes()))[..MAX_TOPIC].to_string()
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("tagcast"))
}

/// What a push service's answer means (RFC 8030 §5, §6.2): 201 accepted; 404 and 410, the
/// subscription is gone; 429 and 5xx retried; anything else (400 bad request, 401/403 a VAPID
/// key the service refuses, 413 too large) fails for good.
pub fn outcome(answer: &crate::Answer) -> crate::Outcome {
    let reason = format!("HTTP {}", answer.status);
    match answer.status {
        404 | 410 => crate::Outcome::Gone { reason },
        status => crate::by_status(status, reason, crate::retry_after(&answer.headers)),
    }
}

/// The most plaintext one notification carries: RFC 8291's 4096-byte record less its header
/// (86 bytes), tag (16) and padding delimiter (1).
pub const MAX_PAYLOAD: usize = 3993;

/// What the browser's service worker receives, as JSON: the push's `TaskId` and the
/// notification's `Title`, `Desc`, `Ext` and `Image` (Tencent's names), each when set.
pub fn payload(alert: &crate::Alert, task_id: &str) -> Vec<u8> {
    let mut payload = serde_json::json!({ "TaskId": task_id });
    for (key, value) in [
        ("Title", &alert.title),
        ("Desc", &alert.body),
        ("Ext", &alert.ext),
        ("Image", &alert.image),
    ] {
        if let Some(value) = value {
            payload[key] = serde_json::json!(value);
        }
    }
    payload.to_string().into_bytes()
}

/// Seconds since the epoch, for the checks of a signature's expiry.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks a request as a push service does (RFC 8292 §3, RFC 8291): the VAPID signature
/// verifies with the key it names, for `origin`, unexpired and valid for at most 24 hours;
/// returns that key (base64url) and the decrypted payload. The test suite's push service uses
/// it with the subscription's private key.
pub fn open(
    request: &Request<Vec<u8>>,
    origin: &str,
    ua_private: &p256::SecretKey,
    auth: &[u8],
) -> Result<(String, Vec<u8>), String> {
    use web_push_native::jwt_simple::algorithms::ES256PublicKey;
    use web_push_native::jwt_simple::common::VerificationOptions;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("no {name} header"))
    };
    if header("content-encoding")? != "aes128gcm" {
        return Err("Content-Encoding is not aes128gcm".into());
    }
    header("ttl")?
        .parse::<u64>()
        .map_err(|_| "TTL is not a number".to_string())?;
    let authorization = header("authorization")?;
    let rest = authorization
        .strip_prefix("vapid ")
        .ok_or("Authorization is not vapid")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let (token, key) = token.zip(key).ok_or("vapid needs t= and k=")?;
    let raw = URL_SAFE_NO_PAD
        .decode(key)
        .map_err(|_| "k is not base64url")?;
    let public = ES256PublicKey::from_bytes(&raw).map_err(|e| format!("k: {e}"))?;
    let options = VerificationOptions {
        allowed_audiences: Some([origin.to_string()].into_iter().collect()),
        ..Default::default()
    };
    let claims = public
        .verify_token::<web_push_native::jwt_simple::claims::NoCustomClaims>(token, Some(options))
        .map_err(|e| format!("VAPID signature: {e}"))?;
    let expires = claims.expires_at.ok_or("no exp")?.as_secs();
    if expires > unix_now() + 24 * 3600 {
        return Err("exp is more than 24 hours ahead".into());
    }
    if claims.subject.is_none() {
        return Err("no sub (contact)".into());
    }
    let auth = web_push_native::Auth::clone_from_slice(auth);
    let payload = web_push_native::decrypt(request.body().clone(), ua_private, &auth)
        .map_err(|e| format!("decrypt: {e}"))?;
    Ok((key.to_string(), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8291 §5 and Appendix A.
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const MESSAGE: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn decode(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    fn ua_private() -> p256::SecretKey {
        p256::SecretKey::from_slice(&decode(UA_PRIVATE)).unwrap()
    }

    fn subscription(endpoint: &str) -> Subscription {
        let json = serde_json::json!({
            "endpoint": endpoint,
            "keys": { "p256dh": UA_PUBLIC, "auth": AUTH }
        });
        Subscription::parse(&json.to_string()).unwrap()
    }

    #[test]
    fn the_rfc_8291_example_decrypts_to_its_plaintext() {
        let auth = web_push_native::Auth::clone_from_slice(&decode(AUTH));
        let opened = web_push_native::decrypt(decode(MESSAGE), &ua_private(), &auth).unwrap();
        assert_eq!(opened, PLAINTEXT);
        // The example's keys are a real pair: the private key gives the public one.
        let public = ua_private().public_key();
        assert_eq!(subscription("https://push.example.net/x").p256dh, public);
    }

    #[test]
    fn a_request_opens_with_the_subscriptions_keys_and_its_vapid_key() {
        let vapid = Vapid::generate("mailto:ops@example.com");
        let sub = subscription("https://127.0.0.1:8443/push/abc");
        assert_eq!(sub.origin().unwrap(), "https://127.0.0.1:8443");
        let notification = Notification {
            payload: PLAINTEXT,
            ttl: Duration::from_secs(3600),
            topic: Some("6b0faec5_53724e01_1_00000001"),
            urgency: Urgency::Normal,
        };
        let request = request(&sub, &vapid, &notification).unwrap();
        assert_eq!(request.uri(), &sub.endpoint);
        assert_eq!(request.headers()["ttl"], "3600");
        assert_eq!(request.headers()["topic"], "6b0faec5_53724e01_1_00000001");
        assert_eq!(request.headers()["urgency"], "normal");
        let (key, payload) = open(
            &request,
            "https://127.0.0.1:8443",
            &ua_private(),
            &decode(AUTH),
        )
        .unwrap();
        assert_eq!(payload, PLAINTEXT);
        assert_eq!(key, vapid.public_key());
        // Another origin, another app server's key or a changed body are refused.
        assert!(open(&request, "https://127.0.0.1", &ua_private(), &decode(AUTH)).is_err());
        let mut tampered = request;
        let last = tampered.body().len() - 1;
        tampered.body_mut()[last] ^= 1;
        assert!(
            open(
                &tampered,
                "https://127.0.0.1:8443",
                &ua_private(),
                &decode(AUTH)
            )
            .is_err()
        );
    }

    /// The `exp` of the token in an `Authorization` value.
    fn expiry(authorization: &str) -> u64 {
        let token = authorization
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        let claims = decode(token.split('.').nth(1).unwrap());
        serde_json::from_slice::<serde_json::Value>(&claims).unwrap()["exp"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn a_vapid_signature_is_reused_per_origin_until_an_hour_before_it_expires() {
        let vapid = Vapid::generate("mailto:ops@example.com");
        let (a, b) = ("https://a.example", "https://b.example");
        let now = unix_now();
        let first = vapid.authorization_at(a, now).unwrap();
        assert_eq!(expiry(&first), now + 12 * 3600);
        // Reused within the window, for its origin only.
        assert_eq!(
            vapid.authorization_at(a, now + 11 * 3600 - 1).unwrap(),
            first
        );
        let other = vapid.authorization_at(b, now + 60).unwrap();
        assert_ne!(other, first);
        assert_eq!(expiry(&other), now + 60 + 12 * 3600);
        // Renewed an hour before it expires (and if the clock went back), then reused.
        let renewed = vapid.authorization_at(a, now + 11 * 3600).unwrap();
        assert_eq!(expiry(&renewed), now + 23 * 3600);
        assert_eq!(
            vapid.authorization_at(a, now + 11 * 3600 + 5).unwrap(),
            renewed
        );
        let back = vapid.authorization_at(a, now + 3600).unwrap();
        assert_eq!(expiry(&back), now + 13 * 3600);
        // What is reused is what a push service verifies.
        let sub = subscription("https://a.example/push/x");
        let notification = Notification {
            payload: PLAINTEXT,
            ttl: Duration::from_secs(60),
            topic: None,
            urgency: Urgency::Normal,
        };
        let request = request(&sub, &vapid, &notification).unwrap();
        assert_eq!(
            request.headers()["authorization"],
            vapid.authorization(a).unwrap()
        );
        let (_, payload) = open(&request, a, &ua_private(), &decode(AUTH)).unwrap();
        assert_eq!(payload, PLAINTEXT);
    }

    #[test]
    fn a_vapid_key_survives_its_text_form() {
        let vapid = Vapid::generate("mailto:ops@example.com");
        let again =
            Vapid::from_private_key(&vapid.private_key(), "mailto:ops@example.com").unwrap();
        assert_eq!(again.public_key(), vapid.public_key());
        assert_eq!(decode(&vapid.public_key()).len(), 65);
        assert!(Vapid::from_private_key("not a key", "x").is_err());
    }

    #[test]
    fn long_or_unsafe_topics_become_a_stable_digest() {
        let long = "x".repeat(40);
        let topic = topic_header(&long);
        assert_eq!(topic.len(), 32);
        assert_eq!(topic, topic_header(&long));
        assert_eq!(topic_header("a b").len(), 32);
        assert_eq!(topic_header("short_id-1"), "short_id-1");
    }

    #[test]
    fn subscriptions_with_bad_keys_are_refused() {
        for json in [
            r#"{"keys":{"p256dh":"BCVx","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}"#,
            r#"{"endpoint":"https://a.example/x","keys":{"p256dh":"AAAA","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}"#,
            r#"{"endpoint":"https://a.example/x","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"AAAA"}}"#,
            "not json",
        ] {
            assert!(Subscription::parse(json).is_err(), "{json}");
        }
    }
}
