//! What the signed-in page calls, each for one app named by `?sdkappid=`: the REST API as the
//! signed-in admin (`api/v4/<route>`, the API's own checks, limits and errors), and what only
//! the console asks: the app's overview, an audience's reach, a UserSig for the live view.
//! Every call, reads too, carries the sign-in's CSRF token.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tagcast_proto::{ApiError, Code, Envelope};
use tagcast_store::DeviceCensus;

use super::{authorized, console, failure};
use crate::api::Ctx;
use crate::routes::Route;
use crate::state::{AppState, SharedState};

/// How long a device census is used before it is taken again: a census scans every device.
const CENSUS_AGE: Duration = Duration::from_secs(5);
/// How long a UserSig made for the live view lasts.
const LIVE_USERSIG_SECS: u64 = 3600;

/// Each app's last device census, with when it was taken.
#[derive(Default)]
pub struct Censuses(Mutex<HashMap<u64, (Instant, Arc<DeviceCensus>)>>);

impl Censuses {
    /// The app's census, at most `CENSUS_AGE` old.
    async fn of(&self, state: &SharedState, app: u64) -> Result<Arc<DeviceCensus>, ApiError> {
        let fresh = crate::sync::lock(&self.0)
            .get(&app)
            .filter(|(taken, _)| taken.elapsed() < CENSUS_AGE)
            .map(|(_, census)| census.clone());
        if let Some(census) = fresh {
            return Ok(census);
        }
        let census = Arc::new(
            state
                .store
                .device_census(app)
                .await
                .map_err(store_failure)?,
        );
        crate::sync::lock(&self.0).insert(app, (Instant::now(), census.clone()));
        Ok(census)
    }
}

/// A read the store failed, as the API reports one (91000): it may be retried.
fn store_failure(error: tagcast_store::StoreError) -> ApiError {
    tracing::error!(%error, "console: storage failure");
    ApiError::new(
        Code::Internal,
        format!("internal error, please retry: {error}"),
    )
}

/// `api/v4/<route>`: the REST API's `route`, called by the signed-in admin.
pub async fn api(
    State(state): State<Arc<SharedState>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let sign_in = match authorized(&state, &uri, &headers) {
        Ok(sign_in) => sign_in,
        Err((status, error)) => return failure(status, &error),
    };
    let Some(route) = Route::from_path(&name) else {
        let error = ApiError::new(Code::ResourceNotFound, format!("no API at /v4/{name}"));
        return failure(StatusCode::NOT_FOUND, &error);
    };
    let app = &state.apps[&sign_in.sdkappid];
    crate::console_call(&state, app, &sign_in.identifier, route, body).await
}

/// `api/overview`: the app's accounts, tags, sessions, devices and pushes today.
pub async fn overview(
    State(state): State<Arc<SharedState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer_for(&state, &uri, &headers, |app, _| overview_of(&state, app)).await
}

/// Answers the signed-in app of the query with what `work` finds for it (and the admin).
async fn answer_for<'a, F, Fut>(
    state: &'a SharedState,
    uri: &Uri,
    headers: &HeaderMap,
    work: F,
) -> Response
where
    F: FnOnce(&'a AppState, String) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    let sign_in = match authorized(state, uri, headers) {
        Ok(sign_in) => sign_in,
        Err((status, error)) => return failure(status, &error),
    };
    let app = &state.apps[&sign_in.sdkappid];
    match work(app, sign_in.identifier).await {
        Ok(body) => axum::Json(Envelope::ok(body)).into_response(),
        Err(error) => failure(StatusCode::OK, &error),
    }
}

async fn overview_of(state: &SharedState, app: &AppState) -> Result<Value, ApiError> {
    let id = app.sdkappid;
    let census = console(state).censuses.of(state, id).await?;
    let pushes_today = state
        .store
        .pushes_today(id, crate::clock::now_ms())
        .await
        .map_err(store_failure)?;
    let (accounts, tags) = state
        .store
        .with_audience(id, |index| (index.accounts().len(), index.tag_count()));
    Ok(json!({
        "Accounts": accounts,
        "TagsInUse": tags,
        "OnlineHere": state.hub.online_count(id),
        "AccountsWithDevices": census.owners.len(),
        "Devices": { "apns": census.apns, "fcm": census.fcm, "webpush": census.webpush },
        "PushesToday": pushes_today,
        "DailyQuota": app.limits.push_daily_quota,
    }))
}

/// `api/reach`: `audience_count`'s body and checks; how many accounts the audience selects,
/// how many of them are online on this node, how many have devices.
pub async fn reach(
    State(state): State<Arc<SharedState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &state;
    let work = |app, admin: String| async move { reach_of(shared, app, &admin, &body).await };
    answer_for(shared, &uri, &headers, work).await
}

async fn reach_of(
    state: &SharedState,
    app: &AppState,
    identifier: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let route = Route::from_path("tagcast/audience_count").expect("audience_count is a route");
    if !app.admit(&route) {
        return Err(ApiError::new(
            Code::RateLimited,
            "audience counts are limited to audience_count's calls per second for this app",
        ));
    }
    let census = console(state).censuses.of(state, app.sdkappid).await?;
    let ctx = Ctx {
        app,
        identifier,
        is_admin: true,
        route,
        store: &state.store,
        hub: &state.hub,
    };
    let reach = crate::api::reach(&ctx, body, &census.owners).await?;
    Ok(json!({
        "Count": reach.count,
        "OnlineHere": reach.online,
        "WithDevices": reach.with_devices,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UserSigRequest {
    identifier: String,
}

/// `api/usersig`: a UserSig for one account, for the live view to connect as it.
pub async fn usersig(
    State(state): State<Arc<SharedState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_for(&state, &uri, &headers, |app, _| async move {
        usersig_of(app, &body)
    })
    .await
}

fn usersig_of(app: &AppState, body: &[u8]) -> Result<Value, ApiError> {
    let request: UserSigRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(Code::JsonParse, format!("invalid request body: {e}")))?;
    app.check_user_id("Identifier", &request.identifier)?;
    let now = crate::now_unix();
    let sig = tagcast_usersig::sign(
        app.sdkappid,
        &app.secret_key,
        &request.identifier,
        LIVE_USERSIG_SECS,
        now,
    );
    Ok(json!({ "UserSig": sig, "ExpireTime": now + LIVE_USERSIG_SECS }))
}
