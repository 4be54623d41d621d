//! A Web Push service as RFC 8030 (delivery), RFC 8291 (message encryption) and RFC 8292
//! (VAPID) describe it: `POST /push/{id}` to a subscription it made, with a `TTL`, an
//! `Urgency` and a `Topic` that are well formed, an `aes128gcm` body of at most 4096 bytes
//! that decrypts with the subscription's keys, and a VAPID signature for this service's
//! origin, unexpired and valid for at most 24 hours (`tagcast_push::webpush::open`). It
//! answers 201 Created with a `Location`; 400 for a malformed request or a body that does not
//! decrypt, 401 for a missing or bad VAPID signature, 404 for an unknown subscription, 413 for
//! a body too large. Plain HTTP on 127.0.0.1 (HTTP/1.1 or HTTP/2): tagcast sends there when
//! the app allows private endpoints (`webpush_private_endpoints`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::rand_core::{OsRng, RngCore};
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::server::{self, Served};
use crate::{Ledger, Scripted};

/// The largest body taken; RFC 8030 §7.2 has push services take at least this much.
const MAX_BODY: usize = 4096;
/// The longest `Topic` (RFC 8030 §5.4).
const MAX_TOPIC: usize = 32;
/// How long after its `exp` a VAPID signature is still taken: jwt-simple's default time
/// tolerance, which `tagcast_push::webpush::open` verifies with.
const EXPIRY_TOLERANCE: u64 = 900;
/// Verified `Authorization` values remembered; the cache starts afresh beyond it.
const MAX_CACHED_SIGNATURES: usize = 1024;

/// A push message the service accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Which subscription (`Subscribed::id`) it went to.
    pub subscription_id: String,
    /// The VAPID public key (base64url) that signed it: the application server's.
    pub vapid_key: String,
    /// The payload, decrypted.
    pub payload: Vec<u8>,
    /// `TTL`, in seconds.
    pub ttl: u64,
    pub topic: Option<String>,
    pub urgency: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// A new subscription, as a browser would hand it to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The subscription's id, the last segment of its endpoint: what `script` and
    /// `Received::subscription_id` name.
    pub id: String,
    /// `url()/push/{id}`.
    pub endpoint: String,
    /// `PushSubscription.toJSON()`: `{"endpoint", "keys": {"p256dh", "auth"}}`, base64url:
    /// what a browser sends to register.
    pub json: String,
}

/// A push service on 127.0.0.1 whose subscriptions are made by `subscribe`; stops when
/// dropped.
pub struct PushService {
    served: Served<State>,
}

impl PushService {
    /// Starts the service.
    ///
    /// # Panics
    ///
    /// When no port can be bound.
    pub async fn start() -> Self {
        let served = server::serve(None, |addr| State {
            origin: format!("http://{addr}"),
            subscriptions: RwLock::default(),
            verified: RwLock::default(),
            next: AtomicU64::new(1),
            ledger: Ledger::new(),
        })
        .await;
        Self { served }
    }

    /// The service's origin, `http://127.0.0.1:PORT`: the audience VAPID signatures must name.
    pub fn url(&self) -> String {
        self.served.state.origin.clone()
    }

    /// A new subscription, as a browser makes one: a fresh P-256 key pair and a 16-byte
    /// authentication secret, kept by the service to decrypt what is pushed to it.
    pub fn subscribe(&self) -> Subscribed {
        let private = p256::SecretKey::random(&mut OsRng);
        let mut auth = [0u8; 16];
        OsRng.fill_bytes(&mut auth);
        let n = self.served.state.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("sub{n}");
        let endpoint = format!("{}/push/{id}", self.url());
        let point = private.public_key().to_encoded_point(false);
        let json = json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(point.as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            },
        });
        let public = point.as_bytes().to_vec();
        let keys = Arc::new(Keys {
            private,
            public,
            auth,
        });
        crate::write(&self.served.state.subscriptions).insert(id.clone(), keys);
        Subscribed {
            id,
            endpoint,
            json: json.to_string(),
        }
    }

    ledger_methods!(id);
}

/// What the service keeps of a subscription: the browser's half of the keys.
struct Keys {
    private: p256::SecretKey,
    /// The public key, uncompressed: kept, as deriving it again is a P-256 multiplication.
    public: Vec<u8>,
    auth: [u8; 16],
}

impl Keys {
    /// An `aes128gcm` body (RFC 8188) encrypted to these keys (RFC 8291 §3.4), decrypted:
    /// `web_push_native::decrypt` with the public key kept instead of derived.
    fn decrypt(&self, body: Vec<u8>) -> Result<Vec<u8>, String> {
        // The header: salt (16), record size (4), key id length (1), key id: the sender's key.
        let sender = body
            .get(20)
            .and_then(|&len| body.get(21..21 + usize::from(len)))
            .ok_or("decrypt: no sender key")?;
        let sender = p256::PublicKey::from_sec1_bytes(sender)
            .map_err(|_| "decrypt: the sender key is not a P-256 point")?;
        let shared =
            p256::ecdh::diffie_hellman(self.private.to_nonzero_scalar(), sender.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public);
        info.extend_from_slice(sender.to_encoded_point(false).as_bytes());
        let mut ikm = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(&self.auth), shared.raw_secret_bytes().as_ref())
            .expand(&info, &mut ikm)
            .map_err(|e| format!("decrypt: {e}"))?;
        ece_native::decrypt(ikm, body).map_err(|e| format!("decrypt: {e}"))
    }
}

/// A VAPID `Authorization` value whose signature verified for this origin: the key it named
/// (base64url) and its `exp`.
#[derive(Clone)]
struct Verified {
    key: String,
    expires: u64,
}

struct State {
    origin: String,
    subscriptions: RwLock<HashMap<String, Arc<Keys>>>,
    /// By `Authorization` value: an application server reuses its signature (RFC 8292 §2), and
    /// the same bytes verify the same way again; only their expiry is checked again.
    verified: RwLock<HashMap<String, Verified>>,
    /// Numbers subscriptions and messages.
    next: AtomicU64,
    ledger: Ledger<Received>,
}

impl server::Handler for State {
    fn answer(&self, request: Request<Option<Bytes>>) -> Response<Full<Bytes>> {
        self.ledger.seen();
        let (id, received) = match self.check(request) {
            Ok(accepted) => accepted,
            Err((status, why)) => {
                self.ledger.reject(format!("{} {why}", status.as_u16()));
                return server::reply(status, why);
            }
        };
        match self.ledger.take(&id, received) {
            Ok(body) => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let location = format!("{}/message/{n}", self.origin);
                let created = server::reply(StatusCode::CREATED, body);
                match HeaderValue::from_str(&location) {
                    Ok(location) => server::with(created, header::LOCATION, location),
                    Err(_) => created,
                }
            }
            Err(Scripted::Gone) => server::reply(StatusCode::GONE, "the subscription expired"),
            Err(Scripted::Throttle { retry_after_secs }) => server::retry_after(
                server::reply(StatusCode::TOO_MANY_REQUESTS, "too many messages"),
                retry_after_secs,
            ),
            Err(Scripted::Fail) => server::reply(StatusCode::INTERNAL_SERVER_ERROR, "failed"),
            Err(Scripted::BadRequest) => server::reply(StatusCode::BAD_REQUEST, "refused"),
        }
    }
}

impl State {
    /// The subscription `request` pushes to and the message in it, if the service takes it;
    /// else the status and why.
    fn check(
        &self,
        request: Request<Option<Bytes>>,
    ) -> Result<(String, Received), (StatusCode, String)> {
        let bad = |why: String| (StatusCode::BAD_REQUEST, why);
        if request.method() != Method::POST {
            let why = format!("{} is not POST", request.method());
            return Err((StatusCode::METHOD_NOT_ALLOWED, why));
        }
        let path = request.uri().path();
        let not_found = || (StatusCode::NOT_FOUND, format!("no subscription at {path}"));
        let id = path.strip_prefix("/push/").ok_or_else(not_found)?;
        let keys = crate::read(&self.subscriptions)
            .get(id)
            .cloned()
            .ok_or_else(not_found)?;
        let id = id.to_string();
        let headers = request.headers();
        let header = |name: &'static str| {
            server::single(headers, name).map_err(|_| bad(format!("{name} is repeated")))
        };
        let ttl = header("ttl")?.ok_or_else(|| bad("no TTL".into()))?;
        let ttl = ttl
            .parse::<u64>()
            .map_err(|_| bad(format!("TTL {ttl:?} is not a number of seconds")))?;
        let urgency = header("urgency")?;
        if let Some(urgency) = urgency
            && !matches!(urgency, "very-low" | "low" | "normal" | "high")
        {
            return Err(bad(format!("Urgency {urgency:?}")));
        }
        let topic = header("topic")?;
        if let Some(topic) = topic {
            let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            if topic.is_empty() || topic.len() > MAX_TOPIC || !topic.bytes().all(url_safe) {
                return Err(bad(format!(
                    "Topic {topic:?} is not 1 to 32 base64url characters"
                )));
            }
        }
        if header("content-encoding")? != Some("aes128gcm") {
            return Err(bad("Content-Encoding is not aes128gcm".into()));
        }
        let (urgency, topic) = (urgency.map(str::to_string), topic.map(str::to_string));
        let (parts, body) = request.into_parts();
        let body = match body {
            Some(body) if body.len() <= MAX_BODY => body.to_vec(),
            too_large => {
                let size = too_large.map_or("over 64 Ki".into(), |b| b.len().to_string());
                let why = format!("a body of {size} bytes, over {MAX_BODY}");
                return Err((StatusCode::PAYLOAD_TOO_LARGE, why));
            }
        };
        let request = Request::from_parts(parts, body);
        let (vapid_key, payload) = self.open(&request, &keys).map_err(|why| {
            match why.starts_with("decrypt") {
                true => bad(why),
                // RFC 8292 §4.1: a missing or invalid VAPID signature is 401.
                false => (StatusCode::UNAUTHORIZED, why),
            }
        })?;
        let received = Received {
            subscription_id: id.clone(),
            vapid_key,
            payload,
            ttl,
            topic,
            urgency,
            at: Instant::now(),
        };
        Ok((id, received))
    }
}

impl State {
    /// `tagcast_push::webpush::open` (the VAPID signature, then the body decrypted), with the
    /// verification of an `Authorization` value verified before remembered: that value is then
    /// checked for expiry only, and the body still decrypted.
    fn open(&self, request: &Request<Vec<u8>>, keys: &Keys) -> Result<(String, Vec<u8>), String> {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let known = crate::read(&self.verified).get(authorization).cloned();
        let Some(known) = known else {
            let opened =
                tagcast_push::webpush::open(request, &self.origin, &keys.private, &keys.auth)?;
            self.remember(authorization, &opened.0);
            return Ok(opened);
        };
        let now = tagcast_push::webpush::unix_now();
        if now > known.expires + EXPIRY_TOLERANCE {
            return Err(format!("VAPID signature: expired at {}", known.expires));
        }
        Ok((known.key, keys.decrypt(request.body().clone())?))
    }

    /// Keeps `authorization`, which just verified naming `key`, with its `exp`.
    fn remember(&self, authorization: &str, key: &str) {
        let Some(expires) = vapid_expiry(authorization) else {
            return;
        };
        let mut verified = crate::write(&self.verified);
        if verified.len() >= MAX_CACHED_SIGNATURES {
            verified.clear();
        }
        let key = key.to_string();
        verified.insert(authorization.to_string(), Verified { key, expires });
    }
}

/// The `exp` claim of the token in a VAPID `Authorization` value (`vapid t=..., k=...`).
fn vapid_expiry(authorization: &str) -> Option<u64> {
    let rest = authorization.strip_prefix("vapid ")?;
    let token = rest.split(',').find_map(|p| p.trim().strip_prefix("t="))?;
    let claims = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice::<serde_json::Value>(&claims).ok()?["exp"].as_u64()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tagcast_push::webpush::{Notification, Subscription, Urgency, Vapid, request, unix_now};

    use super::*;
    use crate::server::Handler;

    /// A request to `subscribed`, signed by `vapid`, as the service's handler takes it.
    fn push(subscribed: &Subscribed, vapid: &Vapid) -> Request<Option<Bytes>> {
        let subscription = Subscription::parse(&subscribed.json).unwrap();
        let notification = Notification {
            payload: b"{}",
            ttl: Duration::from_secs(60),
            topic: None,
            urgency: Urgency::Normal,
        };
        request(&subscription, vapid, &notification)
            .unwrap()
            .map(|body| Some(Bytes::from(body)))
    }

    /// RFC 8291 §5 and Appendix A: the user agent's keys and a message encrypted to them.
    #[test]
    fn kept_keys_decrypt_the_rfc_8291_example() {
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let keys = Keys {
            private: p256::SecretKey::from_slice(&decode(
                "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
            ))
            .unwrap(),
            public: decode(
                "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            ),
            auth: decode("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap(),
        };
        let message = decode(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        );
        let plaintext = b"When I grow up, I want to be a watermelon";
        assert_eq!(keys.decrypt(message.clone()).unwrap(), plaintext);
        let mut tampered = message;
        *tampered.last_mut().unwrap() ^= 1;
        assert!(keys.decrypt(tampered).unwrap_err().starts_with("decrypt"));
        assert!(keys.decrypt(vec![0; 20]).is_err(), "no header");
    }

    #[tokio::test]
    async fn a_verified_vapid_signature_is_reused_until_it_expires_and_bodies_still_decrypt() {
        let service = PushService::start().await;
        let state = &service.served.state;
        let vapid = Vapid::generate("mailto:ops@example.com");
        let subscribed = service.subscribe();
        assert_eq!(state.answer(push(&subscribed, &vapid)).status(), 201);
        let authorization = vapid.authorization(&service.url()).unwrap();
        let cached = crate::read(&state.verified)[&authorization].clone();
        assert_eq!(cached.key, vapid.public_key());
        assert!(cached.expires > unix_now() + 11 * 3600, "the token's exp");
        // Reused: a remembered value is not verified again (the key it named is taken as is).
        crate::write(&state.verified).insert(
            authorization.clone(),
            Verified {
                key: "remembered".into(),
                expires: cached.expires,
            },
        );
        assert_eq!(state.answer(push(&subscribed, &vapid)).status(), 201);
        assert_eq!(service.received()[1].vapid_key, "remembered");
        assert_eq!(
            service.received()[1].payload,
            b"{}",
            "decrypted all the same"
        );
        // A body that does not decrypt is refused whatever its signature.
        let mut tampered = push(&subscribed, &vapid);
        if let Some(body) = tampered.body_mut() {
            let mut bytes = body.to_vec();
            *bytes.last_mut().unwrap() ^= 1;
            *body = Bytes::from(bytes);
        }
        assert_eq!(state.answer(tampered).status(), 400);
        // Past its exp (and jwt-simple's tolerance), a remembered value is refused.
        let expired = unix_now() - EXPIRY_TOLERANCE - 1;
        crate::write(&state.verified).insert(
            authorization,
            Verified {
                key: vapid.public_key(),
                expires: expired,
            },
        );
        assert_eq!(state.answer(push(&subscribed, &vapid)).status(), 401);
        assert!(
            service.rejected()[1].contains("expired"),
            "{:?}",
            service.rejected()
        );
        assert_eq!(service.received_count(), 2);
    }
}
