//! Google as FCM HTTP v1 senders meet it: the OAuth 2.0 token endpoint (`POST /token`), which
//! grants an access token only for a JWT-bearer assertion (RFC 7523) signed RS256 by the
//! service account's key, with its email as issuer, the token endpoint as audience, the
//! Firebase Messaging scope and a lifetime of at most an hour; and
//! `POST /v1/projects/{project_id}/messages:send`, which takes only an access token it issued
//! and has not expired, and a message to a device token with a notification or data. Errors
//! carry Google's statuses and bodies (`{"error": {"code", "message", "status", "details"}}`).
//! Plain HTTP on 127.0.0.1 (HTTP/1.1 or HTTP/2): tagcast's FCM endpoint and token URI are
//! settings.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tagcast_push::webpush::unix_now;

use crate::server::{self, Served};
use crate::{Ledger, Scripted};

/// The service account's private key (RSA 2048, PKCS#8 PEM; a test key that signs nothing
/// real): what `service_account_json` puts in the file.
pub const PRIVATE_KEY_PEM: &str = include_str!("../../tagcast-push/fixtures/test-rsa-key.pem");
/// The public half of `PRIVATE_KEY_PEM`: what `Google::start` verifies grants with.
pub const PUBLIC_KEY_PEM: &str = include_str!("../../tagcast-push/fixtures/test-rsa-key.pub.pem");
/// Another RSA key: a stranger's, whose grants a `Google` started with `PUBLIC_KEY_PEM`
/// refuses.
pub const OTHER_PRIVATE_KEY_PEM: &str =
    include_str!("../../tagcast-push/fixtures/other-rsa-key.pem");

/// The scope a grant must ask for.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest an assertion may be valid (`exp - iat`), as Google allows.
const MAX_ASSERTION_LIFETIME: u64 = 3600;
/// How far ahead of this clock an assertion's `iat` may be.
const CLOCK_SKEW: u64 = 60;
/// How long an access token lasts unless `set_token_lifetime` says otherwise.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

/// The fields a v1 `Message` has (Google refuses unknown ones).
const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];

/// A message Google accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The device's registration token (`message.token`).
    pub token: String,
    /// The whole `message` object.
    pub message: Value,
    /// When it arrived.
    pub at: Instant,
}

/// The content of a service-account JSON file for `project_id` and `client_email`, with
/// `PRIVATE_KEY_PEM` and `token_uri` (`Google::token_uri()`): what tagcast's FCM settings name.
pub fn service_account_json(project_id: &str, client_email: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "0000000000000000000000000000000000000001",
        "private_key": PRIVATE_KEY_PEM,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

/// Google's token endpoint and FCM API for one project and one service account, on
/// 127.0.0.1; stops when dropped.
pub struct Google {
    served: Served<State>,
}

impl Google {
    /// Starts Google for the service account `client_email` of `project_id`, whose public key
    /// is `public_key_pem` (`PUBLIC_KEY_PEM` for `service_account_json`'s key).
    ///
    /// # Panics
    ///
    /// When `public_key_pem` is not an RSA public key, or no port can be bound.
    pub async fn start(project_id: &str, client_email: &str, public_key_pem: &[u8]) -> Self {
        let public_key = DecodingKey::from_rsa_pem(public_key_pem)
            .unwrap_or_else(|e| panic!("Google::start: not an RSA public key PEM: {e}"));
        let served = server::serve(None, |addr| State {
            project_id: project_id.to_string(),
            client_email: client_email.to_string(),
            token_uri: format!("http://{addr}/token"),
            public_key,
            token_lifetime: AtomicU64::new(DEFAULT_TOKEN_LIFETIME.as_secs()),
            tokens: RwLock::default(),
            grants: AtomicUsize::new(0),
            names: AtomicU64::new(0),
            ledger: Ledger::new(),
        })
        .await;
        Self { served }
    }

    /// The API's base URL, `http://127.0.0.1:PORT`: tagcast's FCM `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.served.addr)
    }

    /// The token endpoint, `url()` + `/token`: the service account's `token_uri`.
    pub fn token_uri(&self) -> String {
        self.served.state.token_uri.clone()
    }

    /// How long the access tokens granted from now on last (`expires_in`); an hour unless
    /// set. Messages with an expired token get 401 `UNAUTHENTICATED`.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        let seconds = lifetime.as_secs();
        self.served
            .state
            .token_lifetime
            .store(seconds, Ordering::Relaxed);
    }

    ledger_methods!(token);

    /// How many access tokens were granted.
    pub fn token_grants(&self) -> usize {
        self.served.state.grants.load(Ordering::Relaxed)
    }
}

struct State {
    project_id: String,
    client_email: String,
    token_uri: String,
    public_key: DecodingKey,
    /// Seconds.
    token_lifetime: AtomicU64,
    /// The access tokens granted, and when each expires.
    tokens: RwLock<HashMap<String, Instant>>,
    grants: AtomicUsize,
    /// Numbers the accepted messages' names.
    names: AtomicU64,
    ledger: Ledger<Received>,
}

/// A refused request: the answer, and why for `rejected()`.
struct Refusal {
    status: StatusCode,
    body: Value,
    why: String,
}

/// An API error as Google writes it: `status` with its canonical name `grpc`, FCM's
/// `error_code` in the details when it has one.
fn api_error(
    status: StatusCode,
    grpc: &str,
    error_code: Option<&str>,
    message: impl Into<String>,
) -> Refusal {
    let message = message.into();
    let mut error = json!({ "code": status.as_u16(), "message": message, "status": grpc });
    if let Some(code) = error_code {
        error["details"] = json!([{ "@type": FCM_ERROR, "errorCode": code }]);
    }
    Refusal {
        status,
        body: json!({ "error": error }),
        why: format!("{} {grpc}: {message}", status.as_u16()),
    }
}

/// `messages:send` refused as an invalid argument.
fn invalid(message: impl Into<String>) -> Refusal {
    api_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        Some("INVALID_ARGUMENT"),
        message,
    )
}

/// A token request refused as OAuth 2.0 says (RFC 6749 §5.2).
fn oauth_error(error: &str, description: impl Into<String>) -> Refusal {
    let description = description.into();
    Refusal {
        status: StatusCode::BAD_REQUEST,
        body: json!({ "error": error, "error_description": description }),
        why: format!("400 {error}: {description}"),
    }
}

impl server::Handler for State {
    fn answer(&self, request: Request<Option<Bytes>>) -> Response<Full<Bytes>> {
        self.ledger.seen();
        let path = request.uri().path();
        let answered = match (request.method(), path) {
            (&Method::POST, "/token") => self.grant(&request),
            (&Method::POST, _) if path.starts_with("/v1/projects/") => self.send(&request),
            _ => Err(api_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                None,
                format!("{} {path} is not an API of this fake", request.method()),
            )),
        };
        answered.unwrap_or_else(|refusal| {
            self.ledger.reject(refusal.why);
            server::json(refusal.status, &refusal.body)
        })
    }
}

impl State {
    /// The token endpoint: an access token for a valid JWT-bearer grant.
    fn grant(&self, request: &Request<Option<Bytes>>) -> Result<Response<Full<Bytes>>, Refusal> {
        let form_type = "application/x-www-form-urlencoded";
        let content_type = request.headers().get(header::CONTENT_TYPE);
        if !content_type.is_some_and(|v| v.as_bytes().starts_with(form_type.as_bytes())) {
            return Err(oauth_error("invalid_request", "the body is not a form"));
        }
        let body = request.body().as_deref().unwrap_or_default();
        let fields = form(body);
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if field("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
            let detail = format!("grant_type {:?}", field("grant_type"));
            return Err(oauth_error("unsupported_grant_type", detail));
        }
        let assertion =
            field("assertion").ok_or_else(|| oauth_error("invalid_request", "no assertion"))?;
        self.verify_assertion(assertion)?;
        let lifetime = self.token_lifetime.load(Ordering::Relaxed);
        let token = format!("ya29.fake-{}", crate::random_hex(24));
        let expires = Instant::now() + Duration::from_secs(lifetime);
        crate::write(&self.tokens).insert(token.clone(), expires);
        self.grants.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "access_token": token, "expires_in": lifetime, "token_type": "Bearer" });
        Ok(server::json(StatusCode::OK, &body))
    }

    /// Checks a grant's assertion: RS256 with the service account's key, issued by its email
    /// for this token endpoint, with the messaging scope, for at most an hour.
    fn verify_assertion(&self, assertion: &str) -> Result<(), Refusal> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.token_uri]);
        validation.set_issuer(&[&self.client_email]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &self.public_key, &validation)
            .map_err(|e| oauth_error("invalid_grant", format!("Invalid JWT: {e}")))?
            .claims;
        let scopes = claims["scope"].as_str().unwrap_or_default();
        if !scopes.split_whitespace().any(|scope| scope == SCOPE) {
            return Err(oauth_error("invalid_scope", format!("scope {:?}", scopes)));
        }
        let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
        let (Some(iat), Some(exp)) = (iat, exp) else {
            return Err(oauth_error("invalid_grant", "Invalid JWT: no iat or exp"));
        };
        if exp.saturating_sub(iat) > MAX_ASSERTION_LIFETIME {
            let detail = "Invalid JWT: Token must be a short-lived token (60 minutes)";
            return Err(oauth_error("invalid_grant", detail));
        }
        if iat > unix_now() + CLOCK_SKEW {
            return Err(oauth_error(
                "invalid_grant",
                "Invalid JWT: iat is in the future",
            ));
        }
        Ok(())
    }

    /// `messages:send`: a message to one device, with a granted access token.
    fn send(&self, request: &Request<Option<Bytes>>) -> Result<Response<Full<Bytes>>, Refusal> {
        let path = request.uri().path();
        let project = path
            .strip_prefix("/v1/projects/")
            .and_then(|rest| rest.strip_suffix("/messages:send"))
            .filter(|project| !project.contains('/'))
            .ok_or_else(|| {
                let detail = format!("{path} is not /v1/projects/{{project_id}}/messages:send");
                api_error(StatusCode::NOT_FOUND, "NOT_FOUND", None, detail)
            })?;
        self.authenticate(request.headers())?;
        if project != self.project_id {
            let detail = format!(
                "Permission 'cloudmessaging.messages.create' denied on resource \
                 '//cloudresourcemanager.googleapis.com/projects/{project}'"
            );
            return Err(api_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                None,
                detail,
            ));
        }
        let json_type = request.headers().get(header::CONTENT_TYPE);
        if !json_type.is_some_and(|v| v.as_bytes().starts_with(b"application/json")) {
            return Err(invalid("Content-Type is not application/json"));
        }
        let body = request
            .body()
            .as_deref()
            .ok_or_else(|| invalid("the request is too large"))?;
        let mut body: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
        let validate_only = body["validate_only"].as_bool().unwrap_or(false);
        let message = body.get_mut("message").map(Value::take).unwrap_or_default();
        let token = check_message(&body, &message)?;
        if validate_only {
            return Ok(self.sent());
        }
        let received = Received {
            token: token.clone(),
            message,
            at: Instant::now(),
        };
        Ok(match self.ledger.take(&token, received) {
            Ok(body) if body.is_empty() => self.sent(),
            Ok(chatty) => server::reply(StatusCode::OK, chatty),
            Err(scripted) => scripted_answer(scripted),
        })
    }

    /// Checks the bearer access token: one this Google granted, unexpired.
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        let unauthenticated = |detail: &str| {
            let message = format!(
                "Request had invalid authentication credentials. Expected OAuth 2 access \
                 token, login cookie or other valid authentication credential ({detail})."
            );
            api_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None, message)
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("no bearer token"))?;
        let expires = crate::read(&self.tokens)
            .get(token)
            .copied()
            .ok_or_else(|| unauthenticated("a token this server did not grant"))?;
        if Instant::now() >= expires {
            return Err(unauthenticated("an expired token"));
        }
        Ok(())
    }

    /// The answer to a message sent: its name.
    fn sent(&self) -> Response<Full<Bytes>> {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        let name = format!("projects/{}/messages/0:{n:016x}", self.project_id);
        server::json(StatusCode::OK, &json!({ "name": name }))
    }
}

/// How FCM answers a well-formed message that a script refuses.
fn scripted_answer(scripted: Scripted) -> Response<Full<Bytes>> {
    let refusal = match scripted {
        Scripted::Gone => api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            Some("UNREGISTERED"),
            "Requested entity was not found.",
        ),
        Scripted::Throttle { .. } => api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            Some("QUOTA_EXCEEDED"),
            "Quota exceeded for quota metric 'Send requests'.",
        ),
        Scripted::Fail => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            Some("UNAVAILABLE"),
            "The service is currently unavailable.",
        ),
        Scripted::BadRequest => {
            invalid("The registration token is not a valid FCM registration token")
        }
    };
    let answer = server::json(refusal.status, &refusal.body);
    match scripted {
        Scripted::Throttle { retry_after_secs } => server::retry_after(answer, retry_after_secs),
        _ => answer,
    }
}

/// The device token of `message` (the request's `message`, taken out of `body`), if Google
/// would take it: no unknown fields; a non-empty `token` (the fake delivers to devices only,
/// not topics or conditions); a `notification` of strings or `data` of strings; a well-formed
/// `android` block when there is one.
fn check_message(body: &Value, message: &Value) -> Result<String, Refusal> {
    let Some(top) = body.as_object() else {
        return Err(invalid("the request is not a JSON object"));
    };
    if let Some(unknown) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "message" | "validate_only"))
    {
        return Err(invalid(format!(
            "Unknown name \"{unknown}\": Cannot find field."
        )));
    }
    let Some(fields) = message.as_object() else {
        return Err(invalid("no message"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !MESSAGE_FIELDS.contains(&k.as_str()))
    {
        let detail = format!("Unknown name \"{unknown}\" at 'message': Cannot find field.");
        return Err(invalid(detail));
    }
    if fields.contains_key("topic") || fields.contains_key("condition") {
        return Err(invalid(
            "the fake delivers to a token only, not a topic or a condition",
        ));
    }
    let token = match &message["token"] {
        Value::String(token) if !token.is_empty() => token.clone(),
        _ => return Err(invalid("message.token is missing or empty")),
    };
    let strings = |field: &str, allowed: Option<&[&str]>| match &message[field] {
        Value::Null => Ok(false),
        Value::Object(map) => match map.iter().find(|(key, value)| {
            !value.is_string() || allowed.is_some_and(|names| !names.contains(&key.as_str()))
        }) {
            Some((key, _)) => Err(invalid(format!(
                "message.{field}.{key} is not allowed there"
            ))),
            None => Ok(true),
        },
        _ => Err(invalid(format!("message.{field} is not an object"))),
    };
    let notification = strings("notification", Some(&["title", "body", "image"]))?;
    let data = strings("data", None)?;
    if !notification && !data {
        return Err(invalid("the message has neither notification nor data"));
    }
    check_android(&message["android"])?;
    Ok(token)
}

/// Checks `message.android`, when there is one: an object whose `ttl` is a duration in
/// seconds (`"600s"`, `"3.5s"`), `priority` NORMAL or HIGH, `collapse_key` a string and
/// `notification` an object.
fn check_android(android: &Value) -> Result<(), Refusal> {
    if android.is_null() {
        return Ok(());
    }
    if !android.is_object() {
        return Err(invalid("message.android is not an object"));
    }
    if let Some(ttl) = android.get("ttl") {
        let duration = ttl
            .as_str()
            .and_then(|t| t.strip_suffix('s'))
            .is_some_and(|n| {
                let (whole, fraction) = n.split_once('.').unwrap_or((n, "0"));
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                digits(whole) && digits(fraction) && fraction.len() <= 9
            });
        if !duration {
            return Err(invalid(format!(
                "message.android.ttl {ttl} is not a duration"
            )));
        }
    }
    if let Some(priority) = android.get("priority")
        && !matches!(
            priority.as_str(),
            Some("NORMAL" | "HIGH" | "normal" | "high")
        )
    {
        return Err(invalid(format!("message.android.priority {priority}")));
    }
    if android.get("collapse_key").is_some_and(|k| !k.is_string()) {
        return Err(invalid("message.android.collapse_key is not a string"));
    }
    if android.get("notification").is_some_and(|n| !n.is_object()) {
        return Err(invalid("message.android.notification is not an object"));
    }
    Ok(())
}

/// The fields of a form body (`application/x-www-form-urlencoded`), decoded.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
