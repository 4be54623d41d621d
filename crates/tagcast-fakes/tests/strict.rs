//! The fakes refuse what their providers refuse, with the provider's answer: signatures of
//! another key, stale or unknown tokens, bodies that do not decrypt, malformed headers. (What
//! they accept, and their scripted answers, are tested by tagcast-push's tests, which use
//! them.)

use std::time::Duration;

use http::{HeaderValue, Request};
use serde_json::{Value, json};
use tagcast_fakes::Script;
use tagcast_fakes::apns::Apple;
use tagcast_fakes::fcm::{self as google, Google};
use tagcast_fakes::webpush::PushService;
use tagcast_push::webpush::{Subscription, Urgency, Vapid, unix_now};
use tagcast_push::{Alert, Answer, apns, fcm, send, webpush};

const KEY_ID: &str = "KEY1234567";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";
const EMAIL: &str = "push@demo-project.iam.gserviceaccount.com";

/// A client for the plain-HTTP fakes.
fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tagcast_push::client(None, false).unwrap()
}

async fn exchange(client: &reqwest::Client, request: Request<Vec<u8>>) -> Answer {
    send(client, request, Duration::from_secs(5)).await.unwrap()
}

/// The JSON of an answer's body.
fn body(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

fn alert() -> Alert {
    Alert::from_offline_push_info(&json!({ "Title": "Sale", "Desc": "50% off" }))
}

#[tokio::test]
async fn apple_refuses_stale_or_foreign_tokens_and_bad_headers_with_its_reasons() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (private, public) = tagcast_fakes::apns::test_key();
    let apple = Apple::start(KEY_ID, TEAM_ID, TOPIC, public.as_bytes()).await;
    let client = tagcast_push::client(Some(apple.ca_pem().as_bytes()), true).unwrap();
    let alert = alert();
    let long_payload = Alert {
        body: Some("x".repeat(5000)),
        ..alert.clone()
    };
    let request = |key: &str, key_id: &str, iat: u64, alert: &Alert| {
        let token = apns::Credentials::from_p8(key.as_bytes(), key_id, TEAM_ID)
            .unwrap()
            .token(iat)
            .unwrap();
        let notification = apns::Notification {
            device_token: "0a1b2c3d",
            topic: TOPIC,
            alert,
            expiration: 0,
            collapse_id: "task-1",
        };
        apns::request(&apple.url(), &token, &notification)
    };
    let now = unix_now();
    let (stranger, _) = tagcast_fakes::apns::test_key();
    let mut bad_topic = request(&private, KEY_ID, now, &alert);
    bad_topic
        .headers_mut()
        .insert("apns-topic", HeaderValue::from_static("com.other.app"));
    let mut bad_priority = request(&private, KEY_ID, now, &alert);
    bad_priority
        .headers_mut()
        .insert("apns-priority", HeaderValue::from_static("7"));
    let mut bad_collapse_id = request(&private, KEY_ID, now, &alert);
    let long_id = HeaderValue::from_str(&"c".repeat(65)).unwrap();
    bad_collapse_id
        .headers_mut()
        .insert("apns-collapse-id", long_id);
    let mut bad_device = request(&private, KEY_ID, now, &alert);
    *bad_device.uri_mut() = format!("{}/3/device/not-hex", apple.url()).parse().unwrap();
    let cases = [
        (
            request(&stranger, KEY_ID, now, &alert),
            403,
            "InvalidProviderToken",
        ),
        (
            request(&private, "OTHERKEY00", now, &alert),
            403,
            "InvalidProviderToken",
        ),
        (
            request(&private, KEY_ID, now - 2 * 3600, &alert),
            403,
            "ExpiredProviderToken",
        ),
        (
            request(&private, KEY_ID, now + 600, &alert),
            403,
            "InvalidProviderToken",
        ),
        (bad_topic, 400, "BadTopic"),
        (bad_priority, 400, "BadPriority"),
        (bad_collapse_id, 400, "BadCollapseId"),
        (bad_device, 400, "BadDeviceToken"),
        (
            request(&private, KEY_ID, now, &long_payload),
            413,
            "PayloadTooLarge",
        ),
    ];
    let count = cases.len();
    for (request, status, reason) in cases {
        let answer = exchange(&client, request).await;
        assert_eq!(
            (answer.status, body(&answer)["reason"].as_str()),
            (status, Some(reason))
        );
    }
    assert_eq!(apple.rejected().len(), count, "{:?}", apple.rejected());
    assert!(apple.received().is_empty());
    assert_eq!(apple.requests(), count);
}

#[tokio::test]
async fn google_grants_only_its_accounts_assertions_and_takes_only_its_live_tokens() {
    let google = Google::start("demo-project", EMAIL, google::PUBLIC_KEY_PEM.as_bytes()).await;
    let client = plain_client();
    let account = |key: &str, token_uri: &str| {
        let mut file: Value = serde_json::from_str(&google::service_account_json(
            "demo-project",
            EMAIL,
            token_uri,
        ))
        .unwrap();
        file["private_key"] = json!(key);
        fcm::ServiceAccount::from_json(file.to_string().as_bytes()).unwrap()
    };
    // Another key's grant, or one for another audience, gets no token.
    for stranger in [
        account(google::OTHER_PRIVATE_KEY_PEM, &google.token_uri()),
        account(
            google::PRIVATE_KEY_PEM,
            "https://oauth2.googleapis.com/token",
        ),
    ] {
        let mut request = stranger.token_request(unix_now()).unwrap();
        *request.uri_mut() = google.token_uri().parse().unwrap();
        let answer = exchange(&client, request).await;
        assert_eq!(
            (answer.status, body(&answer)["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    assert_eq!(google.token_grants(), 0);
    let account = account(google::PRIVATE_KEY_PEM, &google.token_uri());
    let token = |lifetime: Duration| {
        google.set_token_lifetime(lifetime);
        let (client, account) = (client.clone(), &account);
        async move {
            let now = unix_now();
            let answer = exchange(&client, account.token_request(now).unwrap()).await;
            assert_eq!(body(&answer)["expires_in"], lifetime.as_secs());
            account.token_received(&answer.body, now).unwrap()
        }
    };
    let live = token(Duration::from_secs(3600)).await;
    let expired = token(Duration::ZERO).await;
    assert_eq!(google.token_grants(), 2);
    let alert = alert();
    let message = |access: &str, project: &str| {
        let notification = fcm::Notification {
            device_token: "fcm:one",
            alert: &alert,
            ttl: Duration::from_secs(60),
            collapse_key: "task-1",
        };
        fcm::request(&google.url(), project, access, &notification)
    };
    let mut no_notification = message(&live, "demo-project");
    *no_notification.body_mut() = br#"{"message":{"token":"fcm:one"}}"#.to_vec();
    let mut unknown_field = message(&live, "demo-project");
    *unknown_field.body_mut() =
        br#"{"message":{"token":"fcm:one","notification":{},"priority":"high"}}"#.to_vec();
    let cases = [
        (
            message("ya29.forged", "demo-project"),
            401,
            "UNAUTHENTICATED",
        ),
        (message(&expired, "demo-project"), 401, "UNAUTHENTICATED"),
        (message(&live, "other-project"), 403, "PERMISSION_DENIED"),
        (no_notification, 400, "INVALID_ARGUMENT"),
        (unknown_field, 400, "INVALID_ARGUMENT"),
    ];
    for (request, status, code) in cases {
        let answer = exchange(&client, request).await;
        assert_eq!(
            (answer.status, body(&answer)["error"]["status"].as_str()),
            (status, Some(code)),
            "{:?}",
            google.rejected().last()
        );
    }
    assert!(google.received().is_empty());
    // A throttled device is told when to come back, then accepted.
    let throttle = Script::Throttle {
        retry_after_secs: 7,
        times: 1,
    };
    google.script("fcm:one", throttle);
    let answer = exchange(&client, message(&live, "demo-project")).await;
    assert_eq!(
        fcm::outcome(answer.status, &answer.headers, &answer.body),
        tagcast_push::Outcome::Retry {
            reason: "QUOTA_EXCEEDED".into(),
            after: Some(Duration::from_secs(7))
        }
    );
    let answer = exchange(&client, message(&live, "demo-project")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(google.received().len(), 1);
    assert_eq!(google.requests(), 2 + 2 + 5 + 2);
}

#[tokio::test]
async fn the_push_service_refuses_what_does_not_decrypt_or_verify() {
    let service = PushService::start().await;
    let client = plain_client();
    let vapid = Vapid::generate("mailto:ops@example.com");
    let subscribed = service.subscribe();
    let subscription = Subscription::parse(&subscribed.json).unwrap();
    let notification = webpush::Notification {
        payload: b"{}",
        ttl: Duration::from_secs(60),
        topic: None,
        urgency: Urgency::Normal,
    };
    let request = || webpush::request(&subscription, &vapid, &notification).unwrap();
    let mut tampered = request();
    let last = tampered.body().len() - 1;
    tampered.body_mut()[last] ^= 1;
    // Another subscription's keys: the body is encrypted to someone else.
    let other = Subscription::parse(&service.subscribe().json).unwrap();
    let mut misdirected = webpush::request(&other, &vapid, &notification).unwrap();
    *misdirected.uri_mut() = subscribed.endpoint.parse().unwrap();
    // The signature of one key presented as another's.
    let mut forged = request();
    let impostor = Vapid::generate("mailto:ops@example.com").public_key();
    let authorization = forged.headers()["authorization"].to_str().unwrap();
    let (signature, _) = authorization.split_once(", k=").unwrap();
    let authorization = format!("{signature}, k={impostor}");
    forged.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&authorization).unwrap(),
    );
    let mut no_ttl = request();
    no_ttl.headers_mut().remove("ttl");
    let mut bad_topic = request();
    bad_topic
        .headers_mut()
        .insert("topic", HeaderValue::from_static("not a topic"));
    let mut unknown = request();
    *unknown.uri_mut() = format!("{}/push/nobody", service.url()).parse().unwrap();
    let mut too_large = request();
    *too_large.body_mut() = vec![0; 4097];
    let cases = [
        (tampered, 400),
        (misdirected, 400),
        (forged, 401),
        (no_ttl, 400),
        (bad_topic, 400),
        (unknown, 404),
        (too_large, 413),
    ];
    let count = cases.len();
    for (request, status) in cases {
        let answer = exchange(&client, request).await;
        assert_eq!(answer.status, status, "{:?}", service.rejected().last());
    }
    assert_eq!(service.rejected().len(), count);
    assert!(service.received().is_empty());
    let answer = exchange(&client, request()).await;
    assert_eq!(answer.status, 201);
    assert!(answer.headers.contains_key("location"));
    assert_eq!(service.received()[0].payload, b"{}");
}

#[tokio::test]
async fn a_fake_stops_when_dropped() {
    let service = PushService::start().await;
    let subscription = Subscription::parse(&service.subscribe().json).unwrap();
    let vapid = Vapid::generate("mailto:ops@example.com");
    let notification = webpush::Notification {
        payload: b"{}",
        ttl: Duration::from_secs(60),
        topic: None,
        urgency: Urgency::Normal,
    };
    let client = plain_client();
    let request = || webpush::request(&subscription, &vapid, &notification).unwrap();
    assert_eq!(exchange(&client, request()).await.status, 201);
    drop(service);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = send(&plain_client(), request(), Duration::from_secs(5)).await;
    assert!(after.is_err(), "{after:?}");
}
