//! FCM HTTP v1 against a local Google: its token endpoint takes only a JWT-bearer grant whose
//! RS256 assertion verifies with the service account's public key (issuer, audience, scope),
//! and its `messages:send` only the access token it issued, for the project, with a device
//! token and a notification; `UNREGISTERED` for the device named so.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tagcast_push::fcm::{self, Notification, ServiceAccount};
use tagcast_push::{Alert, Outcome, send};

const KEY: &str = include_str!("../fixtures/test-rsa-key.pem");
const PUBLIC: &str = include_str!("../fixtures/test-rsa-key.pub.pem");
const EMAIL: &str = "push@demo-project.iam.gserviceaccount.com";
const ISSUED: &str = "ya29.issued-by-the-fake";

struct Google {
    token_uri: String,
    token_requests: AtomicUsize,
    messages: Mutex<Vec<Value>>,
}

async fn token(State(google): State<Arc<Google>>, body: String) -> axum::response::Response {
    google.token_requests.fetch_add(1, Ordering::SeqCst);
    let fields: Vec<(String, String)> = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            (k.to_string(), v.into_owned())
        })
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if field("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (StatusCode::BAD_REQUEST, "unsupported_grant_type").into_response();
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&google.token_uri]);
    validation.set_issuer(&[EMAIL]);
    let key = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
    let assertion = field("assertion").unwrap_or_default();
    match jsonwebtoken::decode::<Value>(&assertion, &key, &validation) {
        Ok(data)
            if data.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging" =>
        {
            axum::Json(
                json!({ "access_token": ISSUED, "expires_in": 3599, "token_type": "Bearer" }),
            )
            .into_response()
        }
        Ok(_) => (StatusCode::BAD_REQUEST, "invalid_scope").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid_grant: {e}")).into_response(),
    }
}

async fn messages(
    State(google): State<Arc<Google>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {ISSUED}")) || project != "demo-project" {
        let error = json!({ "error": { "code": 401, "status": "UNAUTHENTICATED" } });
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    let message = &body["message"];
    if !message["token"].is_string() || !message["notification"].is_object() {
        let error = json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT" } });
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    if message["token"] == "gone" {
        let error = json!({ "error": { "code": 404, "status": "NOT_FOUND",
            "details": [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED" }] } });
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    }
    google.messages.lock().unwrap().push(message.clone());
    axum::Json(json!({ "name": "projects/demo-project/messages/1" })).into_response()
}

#[tokio::test]
async fn messages_reach_google_with_a_token_got_once_by_the_service_accounts_grant() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let google = Arc::new(Google {
        token_uri: format!("{base}/token"),
        token_requests: AtomicUsize::new(0),
        messages: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route(
            "/v1/projects/{project}/messages:send",
            axum::routing::post(messages),
        )
        .with_state(google.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let file = json!({
        "type": "service_account", "project_id": "demo-project", "private_key": KEY,
        "client_email": EMAIL, "token_uri": google.token_uri,
    });
    let account = ServiceAccount::from_json(file.to_string().as_bytes()).unwrap();
    let client = tagcast_push::client(None, false).unwrap();
    let alert = Alert::from_offline_push_info(&json!({ "Title": "Sale", "Desc": "50% off" }));
    for device in ["fcm:one", "fcm:two", "gone"] {
        let now = tagcast_push::webpush::unix_now();
        let access = match account.cached_token(now) {
            Some(token) => token,
            None => {
                let request = account.token_request(now).unwrap();
                let answer = send(&client, request, Duration::from_secs(5))
                    .await
                    .unwrap();
                assert_eq!(
                    answer.status,
                    200,
                    "{}",
                    String::from_utf8_lossy(&answer.body)
                );
                account.token_received(&answer.body, now).unwrap()
            }
        };
        let notification = Notification {
            device_token: device,
            alert: &alert,
            ttl: Duration::from_secs(600),
            collapse_key: "task-1",
        };
        let request = fcm::request(&base, &account.project_id, &access, &notification);
        let answer = send(&client, request, Duration::from_secs(5))
            .await
            .unwrap();
        let outcome = fcm::outcome(answer.status, &answer.headers, &answer.body);
        match device {
            "gone" => assert_eq!(
                outcome,
                Outcome::Gone {
                    reason: "UNREGISTERED".into()
                }
            ),
            _ => assert_eq!(outcome, Outcome::Accepted, "{device}"),
        }
    }
    assert_eq!(
        google.token_requests.load(Ordering::SeqCst),
        1,
        "the access token was reused"
    );
    let messages = google.messages.lock().unwrap().clone();
    let devices: Vec<&Value> = messages.iter().map(|m| &m["token"]).collect();
    assert_eq!(devices, [&json!("fcm:one"), &json!("fcm:two")]);
    assert_eq!(
        messages[0]["notification"],
        json!({ "title": "Sale", "body": "50% off" })
    );
    // A grant signed with another key gets no token.
    let stranger = json!({
        "type": "service_account", "project_id": "demo-project",
        "private_key": include_str!("../fixtures/other-rsa-key.pem"),
        "client_email": EMAIL, "token_uri": google.token_uri,
    });
    let stranger = ServiceAccount::from_json(stranger.to_string().as_bytes()).unwrap();
    let request = stranger
        .token_request(tagcast_push::webpush::unix_now())
        .unwrap();
    let answer = send(&client, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains("invalid_grant"));
}
