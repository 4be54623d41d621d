//! The web console (issue 11), served at `[console] path` (default `/console`). Its page and
//! scripts are embedded in the binary, so `cargo build` alone makes a working console and the
//! page needs no internet. This part: the page, its assets, and signing in as an app's admin
//! with the app's key or a UserSig (checked as the API checks it) into a signed, HttpOnly,
//! SameSite=Strict cookie; every change carries the session's CSRF token.

mod calls;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tagcast_proto::{ApiError, Code, Envelope};

use crate::config::ConsoleConfig;
use crate::state::{AppState, SharedState};
use session::SignIn;

/// The largest request the console takes.
const MAX_BODY: usize = 8 * 1024;
/// The page's header: only its own scripts, styles and connections; never in a frame.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' \
                      data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
                      frame-ancestors 'none'";

/// An embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/console.js"),
    },
    Asset {
        name: "tagcast.js",
        content_type: "text/javascript; charset=utf-8",
        body: CLIENT_MODULE,
    },
];

/// The browser client library (docs/client.md), also served to apps at `/client/tagcast.js`.
const CLIENT_MODULE: &str = include_str!("assets/tagcast.js");

/// `/client/tagcast.js`, served whether or not the console is: apps of any origin may import it.
pub async fn client_module() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        CLIENT_MODULE,
    )
        .into_response()
}

/// The console as this server serves it.
pub struct Console {
    path: String,
    /// The page, its links made absolute under `path`.
    index: String,
    /// Cookies are marked `Secure`: the server listens on HTTPS.
    secure: bool,
    censuses: calls::Censuses,
}

impl Console {
    /// The console `config` describes, if it is enabled.
    pub fn new(config: &ConsoleConfig, https: bool) -> Option<Self> {
        config.enabled.then(|| Self {
            path: config.path.clone(),
            index: include_str!("assets/index.html").replace("%BASE%", &config.path),
            secure: https,
            censuses: calls::Censuses::default(),
        })
    }

    /// Its routes.
    pub fn routes(&self) -> Router<Arc<SharedState>> {
        let path = &self.path;
        Router::new()
            .route(path, get(index))
            .route(&format!("{path}/assets/{{name}}"), get(asset))
            .route(&format!("{path}/api/sign_in"), post(sign_in))
            .route(&format!("{path}/api/session"), get(session))
            .route(&format!("{path}/api/sign_out"), post(sign_out))
            .route(&format!("{path}/api/overview"), post(calls::overview))
            .route(&format!("{path}/api/reach"), post(calls::reach))
            .route(&format!("{path}/api/usersig"), post(calls::usersig))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            // The API's calls have the API's body limits, checked as the body is read.
            .route(&format!("{path}/api/v4/{{*route}}"), post(calls::api))
    }
}

/// The console of `state`: its routes exist only when it has one.
fn console(state: &SharedState) -> &Console {
    state
        .console
        .as_ref()
        .expect("console routes without a console")
}

async fn index(State(state): State<Arc<SharedState>>) -> Response {
    let page = console(&state).index.clone();
    with_policy(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => with_policy(
            (
                [
                    (header::CONTENT_TYPE, asset.content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                asset.body,
            )
                .into_response(),
        ),
        None => (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
    }
}

fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// What signing in sends: the app, the admin, and its key or a UserSig.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct SignInRequest {
    sdk_app_id: u64,
    identifier: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    user_sig: Option<String>,
}

async fn sign_in(
    State(state): State<Arc<SharedState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A form of another site can post only form types; this takes JSON alone.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        let error = ApiError::new(Code::HttpParse, "signing in takes application/json");
        return failure(StatusCode::UNSUPPORTED_MEDIA_TYPE, &error);
    }
    let request: SignInRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &ApiError::new(Code::JsonParse, e.to_string()),
            );
        }
    };
    let now = crate::now_unix();
    let app = match check_admin(&state, &request, now) {
        Ok(app) => app,
        Err(error) => return failure(StatusCode::UNAUTHORIZED, &error),
    };
    let new = SignIn {
        sdkappid: app.sdkappid,
        identifier: request.identifier,
        expires: now + session::LIFETIME_SECS,
    };
    let mut sign_ins = signed_in(&state, &headers, now);
    sign_ins.retain(|s| s.sdkappid != new.sdkappid);
    sign_ins.push(new);
    let excess = sign_ins.len().saturating_sub(session::MAX_SIGN_INS);
    sign_ins.drain(..excess);
    answer_setting_cookie(&state, &sign_ins)
}

/// The app of `request`, if its identifier is an admin whose key or UserSig is right.
fn check_admin<'a>(
    state: &'a SharedState,
    request: &SignInRequest,
    now: u64,
) -> Result<&'a AppState, ApiError> {
    let app = state.apps.get(&request.sdk_app_id).ok_or_else(|| {
        ApiError::new(
            Code::SdkAppIdNotFound,
            format!("SDKAppID {} not found", request.sdk_app_id),
        )
    })?;
    let identifier = &request.identifier;
    match (&request.key, &request.user_sig) {
        (Some(key), None) => {
            if !same_secret(key, &app.secret_key) {
                return Err(ApiError::new(
                    Code::UserSigVerifyFailed,
                    "the key is not the app's secret key",
                ));
            }
        }
        (None, Some(user_sig)) => {
            tagcast_usersig::verify(user_sig, app.sdkappid, identifier, &app.secret_key, now)
                .map_err(|e| ApiError::new(crate::auth::usersig_code(e.code()), e.to_string()))?
        }
        _ => {
            return Err(ApiError::new(
                Code::UserSigEmpty,
                "give either Key or UserSig",
            ));
        }
    }
    if !app.admins.contains(identifier) {
        return Err(ApiError::new(
            Code::AdminRequired,
            format!("identifier '{identifier}' is not an App admin"),
        ));
    }
    Ok(app)
}

/// Whether `given` is `secret`, in time that does not depend on where they differ.
fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

async fn session(State(state): State<Arc<SharedState>>, headers: HeaderMap) -> Response {
    let sign_ins = signed_in(&state, &headers, crate::now_unix());
    if sign_ins.is_empty() {
        return failure(StatusCode::UNAUTHORIZED, &not_signed_in());
    }
    session_body(&state, &sign_ins).into_response()
}

/// Signs out of the app `sdkappid` of the query.
async fn sign_out(State(state): State<Arc<SharedState>>, uri: Uri, headers: HeaderMap) -> Response {
    let leaving = match authorized(&state, &uri, &headers) {
        Ok(sign_in) => sign_in,
        Err((status, error)) => return failure(status, &error),
    };
    let mut sign_ins = signed_in(&state, &headers, crate::now_unix());
    sign_ins.retain(|s| s.sdkappid != leaving.sdkappid);
    answer_setting_cookie(&state, &sign_ins)
}

/// The sign-in of the app `sdkappid` of the query, if the request carries its CSRF token; else
/// the answer that refuses it (401 not signed in, 403 no token).
fn authorized(
    state: &SharedState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<SignIn, (StatusCode, ApiError)> {
    let wanted = crate::auth::query_params(uri.query().unwrap_or(""))
        .get("sdkappid")
        .and_then(|id| id.parse::<u64>().ok());
    let sign_in = signed_in(state, headers, crate::now_unix())
        .into_iter()
        .find(|s| Some(s.sdkappid) == wanted)
        .ok_or_else(|| (StatusCode::UNAUTHORIZED, not_signed_in()))?;
    check_csrf(state, &sign_in, headers).map_err(|e| (StatusCode::FORBIDDEN, e))?;
    Ok(sign_in)
}

/// The header a change must carry: the CSRF token of its sign-in.
pub const CSRF_HEADER: &str = "x-tagcast-csrf";

fn check_csrf(state: &SharedState, sign_in: &SignIn, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = &state.apps[&sign_in.sdkappid].secret_key;
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match given {
        Some(token) if same_secret(token, &sign_in.csrf(key)) => Ok(()),
        _ => Err(ApiError::new(
            Code::AdminRequired,
            format!("a change needs the session's {CSRF_HEADER} header"),
        )),
    }
}

fn not_signed_in() -> ApiError {
    ApiError::new(
        Code::AdminRequired,
        "not signed in: sign in as an App admin",
    )
}

/// The valid sign-ins of the request's cookie.
fn signed_in(state: &SharedState, headers: &HeaderMap, now: u64) -> Vec<SignIn> {
    let cookies = headers.get_all(header::COOKIE).iter();
    let value = cookies
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(session::COOKIE)?.strip_prefix('='));
    value.map_or_else(Vec::new, |v| session::read(state, v, now))
}

/// Each sign-in, with the CSRF token the page sends with its changes.
fn session_body(
    state: &SharedState,
    sign_ins: &[SignIn],
) -> axum::Json<Envelope<Map<String, Value>>> {
    let signed: Vec<Value> = sign_ins
        .iter()
        .map(|s| {
            json!({
                "SdkAppId": s.sdkappid,
                "Identifier": s.identifier,
                "ExpireTime": s.expires,
                "Csrf": s.csrf(&state.apps[&s.sdkappid].secret_key),
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert("SignedIn".into(), Value::Array(signed));
    axum::Json(Envelope::ok(body))
}

/// The session's answer, with the cookie now holding `sign_ins`.
fn answer_setting_cookie(state: &SharedState, sign_ins: &[SignIn]) -> Response {
    let mut response = session_body(state, sign_ins).into_response();
    set_cookie(state, &mut response, &session::write(state, sign_ins));
    response
}

fn set_cookie(state: &SharedState, response: &mut Response, value: &str) {
    let console = console(state);
    let max_age = if value.is_empty() {
        0
    } else {
        session::LIFETIME_SECS
    };
    let secure = if console.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        session::COOKIE,
        console.path
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
}

fn failure(status: StatusCode, error: &ApiError) -> Response {
    (status, axum::Json(Envelope::fail(error, Map::new()))).into_response()
}
