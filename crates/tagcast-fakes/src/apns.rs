//! Apple's APNs provider API as Apple documents it ("Sending notification requests to APNs",
//! "Handling notification responses from APNs"): HTTP/2 only (TLS offers ALPN `h2` alone and
//! the server speaks nothing else), with a self-signed certificate for `localhost` and
//! `127.0.0.1`; token authentication with an ES256 provider
//! token naming the key id and the team; `POST /3/device/{token}` with `apns-topic`,
//! `apns-push-type`, `apns-expiration`, `apns-collapse-id`, `apns-priority` and `apns-id`
//! checked; an `aps` payload of at most 4 KiB. Refusals carry Apple's status and
//! `{"reason": ...}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tagcast_push::webpush::unix_now;

use crate::server::{self, Served};
use crate::{Ledger, Scripted};

/// The largest payload of an alert notification, in bytes.
const MAX_PAYLOAD: usize = 4096;
/// The longest `apns-collapse-id`, in bytes.
const MAX_COLLAPSE_ID: usize = 64;
/// How old a provider token may be: Apple refuses tokens issued more than an hour ago.
const TOKEN_LIFETIME: u64 = 3600;
/// How far ahead of this clock a token's `iat` may be (the provider's clock may run fast).
const CLOCK_SKEW: u64 = 60;
/// Verified tokens remembered; the cache starts afresh beyond it.
const MAX_CACHED_TOKENS: usize = 1024;

/// A notification Apple accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub device_token: String,
    /// `apns-topic`: the app's bundle id.
    pub topic: String,
    /// `apns-push-type` (always `alert`: the only type the fake takes).
    pub push_type: String,
    /// `apns-expiration` (unix seconds; 0: deliver once), when given.
    pub expiration: Option<u64>,
    pub collapse_id: Option<String>,
    /// `apns-priority` (10, 5 or 1), when given.
    pub priority: Option<u8>,
    pub payload: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A fresh ES256 signing key like the `.p8` file Apple hands a team: the private key as
/// PKCS#8 PEM (what `tagcast_push::apns::Credentials::from_p8` reads) and its public key as
/// PEM (what `Apple::start` verifies provider tokens with).
pub fn test_key() -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("rcgen generates P-256 keys");
    (pair.serialize_pem(), pair.public_key_pem())
}

/// Apple's push server for one team's signing key and one app (topic), on 127.0.0.1; stops
/// when dropped.
pub struct Apple {
    served: Served<State>,
    ca_pem: String,
}

impl Apple {
    /// Starts the server for the key `key_id` of team `team_id`, whose public half is
    /// `public_key_pem`, taking notifications for `topic`.
    ///
    /// # Panics
    ///
    /// When `public_key_pem` is not a P-256 public key, or no port can be bound.
    pub async fn start(key_id: &str, team_id: &str, topic: &str, public_key_pem: &[u8]) -> Self {
        let public_key = DecodingKey::from_ec_pem(public_key_pem)
            .unwrap_or_else(|e| panic!("Apple::start: not a P-256 public key PEM: {e}"));
        let (tls, ca_pem) = tls();
        let served = server::serve(Some(tls), |_| State {
            key_id: key_id.to_string(),
            team_id: team_id.to_string(),
            topic: topic.to_string(),
            public_key,
            tokens: RwLock::default(),
            ids: AtomicU64::new(0),
            ledger: Ledger::new(),
        })
        .await;
        Self { served, ca_pem }
    }

    /// The base URL, `https://127.0.0.1:PORT` (the certificate also names `localhost`): what
    /// an app's APNs endpoint is set to.
    pub fn url(&self) -> String {
        format!("https://{}", self.served.addr)
    }

    /// The server's self-signed certificate, PEM: the CA a client must trust (tagcast's
    /// `ca_file`).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    ledger_methods!(device_token);
}

/// A TLS configuration offering only `h2`, with a fresh self-signed certificate; and that
/// certificate's PEM.
fn tls() -> (tokio_rustls::TlsAcceptor, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).expect("rcgen signs a certificate");
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .expect("rcgen's key is PKCS#8");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(vec![cert.cert.der().clone()], key)
        })
        .expect("rustls takes rcgen's certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert.cert.pem(),
    )
}

struct State {
    key_id: String,
    team_id: String,
    topic: String,
    public_key: DecodingKey,
    /// Provider tokens whose signature, header and issuer verified, with their `iat`.
    tokens: RwLock<HashMap<String, u64>>,
    /// Numbers the `apns-id`s of requests that have none.
    ids: AtomicU64,
    ledger: Ledger<Received>,
}

/// Why Apple refuses a request: its status, its reason, and details for `rejected()`.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    detail: String,
}

fn refuse(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason,
        detail: detail.into(),
    }
}

fn bad(reason: &'static str, detail: impl Into<String>) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, reason, detail)
}

impl server::Handler for State {
    fn answer(&self, request: Request<Option<Bytes>>) -> Response<Full<Bytes>> {
        self.ledger.seen();
        let id = match apns_id(request.headers()) {
            Ok(Some(id)) => id,
            Ok(None) => self.next_id(),
            Err(refusal) => return self.refused(refusal, self.next_id()),
        };
        let received = match self.check(&request) {
            Ok(received) => received,
            Err(refusal) => return self.refused(refusal, id),
        };
        let device = received.device_token.clone();
        let response = match self.ledger.take(&device, received) {
            Ok(body) => server::reply(StatusCode::OK, body),
            Err(Scripted::Gone) => {
                let millis = unix_now() * 1000;
                let body = json!({ "reason": "Unregistered", "timestamp": millis });
                server::json(StatusCode::GONE, &body)
            }
            Err(Scripted::Throttle { retry_after_secs }) => server::retry_after(
                reason(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
                retry_after_secs,
            ),
            Err(Scripted::Fail) => reason(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
            Err(Scripted::BadRequest) => reason(StatusCode::BAD_REQUEST, "BadDeviceToken"),
        };
        server::with(response, APNS_ID, id)
    }
}

const APNS_ID: HeaderName = HeaderName::from_static("apns-id");

/// Apple's error answer: `status` and `{"reason": reason}`.
fn reason(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    server::json(status, &json!({ "reason": reason }))
}

/// The request's `apns-id`, which must be a canonical UUID when given.
fn apns_id(headers: &http::HeaderMap) -> Result<Option<HeaderValue>, Refusal> {
    let duplicated = |_| bad("DuplicateHeaders", "apns-id is repeated");
    let Some(id) = server::single(headers, "apns-id").map_err(duplicated)? else {
        return Ok(None);
    };
    let canonical = id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    match canonical {
        true => Ok(HeaderValue::from_str(id).ok()),
        false => Err(bad("BadMessageId", format!("apns-id {id:?} is not a UUID"))),
    }
}

impl State {
    /// A fresh `apns-id` (a UUID, as Apple gives when the request names none).
    fn next_id(&self) -> HeaderValue {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let id = format!("00000000-0000-4000-8000-{n:012x}");
        HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static(""))
    }

    /// Records why `refusal` and answers it.
    fn refused(&self, refusal: Refusal, id: HeaderValue) -> Response<Full<Bytes>> {
        let Refusal {
            status,
            reason: why,
            detail,
        } = refusal;
        self.ledger
            .reject(format!("{} {why}: {detail}", status.as_u16()));
        server::with(reason(status, why), APNS_ID, id)
    }

    /// The notification in `request`, if Apple would take it.
    fn check(&self, request: &Request<Option<Bytes>>) -> Result<Received, Refusal> {
        if request.method() != Method::POST {
            let detail = format!("{} is not POST", request.method());
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                detail,
            ));
        }
        let path = request.uri().path();
        let device_token = path
            .strip_prefix("/3/device/")
            .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "BadPath", path))?;
        if device_token.is_empty() {
            return Err(bad("MissingDeviceToken", "no token in :path"));
        }
        // Device tokens are bytes in hex (32 today; Apple says they may grow, up to 100).
        let hex = device_token.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || device_token.len() % 2 != 0 || device_token.len() > 200 {
            return Err(bad(
                "BadDeviceToken",
                format!("{device_token:?} is not hex bytes"),
            ));
        }
        let headers = request.headers();
        let header = |name: &'static str| {
            server::single(headers, name)
                .map_err(|_| bad("DuplicateHeaders", format!("{name} is repeated")))
        };
        let authorization = header("authorization")?.ok_or_else(|| {
            let detail = "no authorization header";
            refuse(StatusCode::FORBIDDEN, "MissingProviderToken", detail)
        })?;
        self.verify(authorization)?;
        let topic = header("apns-topic")?.ok_or_else(|| bad("MissingTopic", "no apns-topic"))?;
        if topic != self.topic {
            return Err(bad(
                "BadTopic",
                format!("apns-topic {topic:?}, not {:?}", self.topic),
            ));
        }
        let push_type = header("apns-push-type")?.unwrap_or_default();
        if push_type != "alert" {
            let detail = format!("apns-push-type {push_type:?}, not \"alert\"");
            return Err(bad("InvalidPushType", detail));
        }
        let expiration = match header("apns-expiration")? {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| bad("BadExpirationDate", format!("apns-expiration {text:?}")))?,
            ),
        };
        let collapse_id = header("apns-collapse-id")?;
        if let Some(id) = collapse_id
            && id.len() > MAX_COLLAPSE_ID
        {
            let detail = format!("apns-collapse-id is {} bytes, over 64", id.len());
            return Err(bad("BadCollapseId", detail));
        }
        let priority = match header("apns-priority")? {
            None => None,
            Some(text @ ("10" | "5" | "1")) => text.parse().ok(),
            Some(text) => return Err(bad("BadPriority", format!("apns-priority {text:?}"))),
        };
        let payload = payload(request.body().as_deref())?;
        Ok(Received {
            device_token: device_token.to_string(),
            topic: topic.to_string(),
            push_type: push_type.to_string(),
            expiration,
            collapse_id: collapse_id.map(str::to_string),
            priority,
            payload,
            at: Instant::now(),
        })
    }

    /// Checks the `authorization` header's provider token: an ES256 JWT of this key id and
    /// team, verified with the team's public key, issued within the last hour. A token is
    /// verified once; later requests with it only have its age checked.
    fn verify(&self, authorization: &str) -> Result<(), Refusal> {
        let invalid =
            |detail: String| refuse(StatusCode::FORBIDDEN, "InvalidProviderToken", detail);
        let token = authorization
            .strip_prefix("bearer ")
            .or_else(|| authorization.strip_prefix("Bearer "))
            .ok_or_else(|| invalid("authorization is not a bearer token".into()))?;
        let known = crate::read(&self.tokens).get(token).copied();
        let issued = match known {
            Some(issued) => issued,
            None => {
                let issued = self.verify_signed(token).map_err(invalid)?;
                let mut tokens = crate::write(&self.tokens);
                if tokens.len() >= MAX_CACHED_TOKENS {
                    tokens.clear();
                }
                tokens.insert(token.to_string(), issued);
                issued
            }
        };
        let now = unix_now();
        if issued > now + CLOCK_SKEW {
            return Err(invalid(format!("iat {issued} is ahead of now ({now})")));
        }
        if now.saturating_sub(issued) > TOKEN_LIFETIME {
            let detail = format!("iat {issued} is more than an hour before now ({now})");
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "ExpiredProviderToken",
                detail,
            ));
        }
        Ok(())
    }

    /// The `iat` of `token` if its header, signature and issuer are right.
    fn verify_signed(&self, token: &str) -> Result<u64, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if header.alg != Algorithm::ES256 {
            return Err(format!("alg {:?}, not ES256", header.alg));
        }
        if header.kid.as_deref() != Some(&self.key_id) {
            return Err(format!("kid {:?}, not {:?}", header.kid, self.key_id));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(token, &self.public_key, &validation)
            .map_err(|e| format!("signature: {e}"))?
            .claims;
        if claims["iss"] != self.team_id.as_str() {
            return Err(format!("iss {}, not {:?}", claims["iss"], self.team_id));
        }
        claims["iat"]
            .as_u64()
            .ok_or_else(|| format!("iat {} is not a time", claims["iat"]))
    }
}

/// The payload of `body`: a JSON object of at most 4 KiB with an `aps` dictionary that has an
/// `alert` (a string or a dictionary), as an alert notification needs.
fn payload(body: Option<&[u8]>) -> Result<Value, Refusal> {
    let too_large = |len: String| {
        let detail = format!("payload of {len} bytes, over {MAX_PAYLOAD}");
        refuse(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", detail)
    };
    let body = body.ok_or_else(|| too_large("more than 64 Ki".into()))?;
    if body.len() > MAX_PAYLOAD {
        return Err(too_large(body.len().to_string()));
    }
    if body.is_empty() {
        return Err(bad("PayloadEmpty", "no payload"));
    }
    // Apple documents no reason for a payload that is not JSON or has no alert; the fake says
    // BadPayload.
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| bad("BadPayload", format!("payload is not JSON: {e}")))?;
    let alert = &payload["aps"]["alert"];
    if !(alert.is_object() || alert.is_string()) {
        return Err(bad("BadPayload", format!("no aps.alert in {payload}")));
    }
    Ok(payload)
}
