//! Web Push against a local push service that checks each request as RFC 8030, 8291 and 8292
//! say a push service does: the VAPID signature verifies for its origin, and the body decrypts
//! with the subscription's private key. It answers 201, or 410 / 429 for the subscriptions
//! named so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tagcast_push::webpush::{self, Notification, Subscription, Urgency, Vapid};
use tagcast_push::{Outcome, send};
use web_push_native::p256;

/// What the service keeps of each notification it accepted: the VAPID key that signed it and
/// the plaintext.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct Service {
    origin: String,
    ua_private: p256::SecretKey,
    auth: Vec<u8>,
    received: Received,
}

async fn push(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    match id.as_str() {
        "gone" => return StatusCode::GONE.into_response(),
        "busy" => return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")]).into_response(),
        "chatty" => return (StatusCode::CREATED, vec![b'x'; 1 << 20]).into_response(),
        _ => {}
    }
    let mut request = http::Request::post(format!("{}/push/{id}", service.origin));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let request = request.body(body.to_vec()).unwrap();
    match webpush::open(
        &request,
        &service.origin,
        &service.ua_private,
        &service.auth,
    ) {
        Ok(opened) => {
            service.received.lock().unwrap().push(opened);
            StatusCode::CREATED.into_response()
        }
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// A push service on loopback; its origin, and what it received.
async fn service(ua_private: p256::SecretKey, auth: Vec<u8>) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let state = Arc::new(Service {
        origin: origin.clone(),
        ua_private,
        auth,
        received: received.clone(),
    });
    let app = axum::Router::new()
        .route("/push/{id}", axum::routing::post(push))
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, received)
}

/// The subscription at `endpoint` of a browser with `private` and `auth`.
fn subscribe(endpoint: &str, private: &p256::SecretKey, auth: &[u8]) -> Subscription {
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&private.public_key(), false);
    let json = serde_json::json!({
        "endpoint": endpoint,
        "keys": { "p256dh": URL_SAFE_NO_PAD.encode(point.as_bytes()), "auth": URL_SAFE_NO_PAD.encode(auth) }
    });
    Subscription::parse(&json.to_string()).unwrap()
}

#[tokio::test]
async fn the_push_service_gets_exactly_the_payload_signed_by_the_apps_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let private = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let auth = vec![7u8; 16];
    let (origin, received) = service(private.clone(), auth.clone()).await;
    let vapid = Vapid::generate("mailto:ops@example.com");
    let client = reqwest::Client::new();
    let notification = Notification {
        payload: br#"{"Title":"Sale","TaskId":"t1"}"#,
        ttl: Duration::from_secs(60),
        topic: Some("t1"),
        urgency: Urgency::High,
    };
    let outcome_at = |id: &str| {
        let subscription = subscribe(&format!("{origin}/push/{id}"), &private, &auth);
        let request = webpush::request(&subscription, &vapid, &notification).unwrap();
        let client = client.clone();
        async move {
            let answer = send(&client, request, Duration::from_secs(5))
                .await
                .unwrap();
            webpush::outcome(&answer)
        }
    };
    assert_eq!(outcome_at("s1").await, Outcome::Accepted);
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![(vapid.public_key(), notification.payload.to_vec())]
    );
    assert!(matches!(outcome_at("gone").await, Outcome::Gone { .. }));
    assert_eq!(
        outcome_at("busy").await,
        Outcome::Retry {
            reason: "HTTP 429".into(),
            after: Some(Duration::from_secs(2))
        }
    );
    // A request signed for another origin is refused by the service, and not retried.
    let elsewhere = subscribe("http://127.0.0.1:1/push/x", &private, &auth);
    let mut request = webpush::request(&elsewhere, &vapid, &notification).unwrap();
    *request.uri_mut() = format!("{origin}/push/s2").parse().unwrap();
    let answer = send(&client, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(webpush::outcome(&answer), Outcome::Failed { .. }));
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "nothing more was accepted"
    );
    // An endpoint that answers with a megabyte costs at most MAX_ANSWER of it.
    let chatty = subscribe(&format!("{origin}/push/chatty"), &private, &auth);
    let request = webpush::request(&chatty, &vapid, &notification).unwrap();
    let answer = send(&client, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body.len(), tagcast_push::MAX_ANSWER);
    // A name that resolves to this machine is refused unless the app allows private endpoints.
    let by_name = origin.replace("127.0.0.1", "localhost");
    let local = subscribe(&format!("{by_name}/push/s3"), &private, &auth);
    let public_only = tagcast_push::endpoint_client(None, false).unwrap();
    let request = webpush::request(&local, &vapid, &notification).unwrap();
    let refused = send(&public_only, request, Duration::from_secs(5)).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("private address")),
        "{refused:?}"
    );
    let allowed = tagcast_push::endpoint_client(None, true).unwrap();
    let request = webpush::request(&local, &vapid, &notification).unwrap();
    let answer = send(&allowed, request, Duration::from_secs(5))
        .await
        .unwrap();
    // It reached the service, which refuses it: signed for localhost, not its origin.
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(received.lock().unwrap().len(), 1);
}
