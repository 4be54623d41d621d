//! Web Push against tagcast-fakes' push service, which checks each request as RFC 8030, 8291
//! and 8292 say a push service does: the VAPID signature verifies for its origin, and the body
//! decrypts with the subscription's private key. Subscriptions scripted gone or throttled get
//! 410 and 429.

use std::time::Duration;

use serde_json::{Value, json};
use tagcast_fakes::Script;
use tagcast_fakes::webpush::PushService;
use tagcast_push::webpush::{self, Notification, Subscription, Urgency, Vapid};
use tagcast_push::{Outcome, send};

/// The subscription of `json` (`Subscribed::json`), moved to `endpoint`.
fn moved(json: &str, endpoint: &str) -> Subscription {
    let mut json: Value = serde_json::from_str(json).unwrap();
    json["endpoint"] = json!(endpoint);
    Subscription::parse(&json.to_string()).unwrap()
}

#[tokio::test]
async fn the_push_service_gets_exactly_the_payload_signed_by_the_apps_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let service = PushService::start().await;
    let vapid = Vapid::generate("mailto:ops@example.com");
    let client = reqwest::Client::new();
    let notification = Notification {
        payload: br#"{"Title":"Sale","TaskId":"t1"}"#,
        ttl: Duration::from_secs(60),
        topic: Some("t1"),
        urgency: Urgency::High,
    };
    let outcome_at = |script: Script| {
        let subscribed = service.subscribe();
        service.script(&subscribed.id, script);
        let subscription = Subscription::parse(&subscribed.json).unwrap();
        let request = webpush::request(&subscription, &vapid, &notification).unwrap();
        let client = client.clone();
        async move {
            let answer = send(&client, request, Duration::from_secs(5))
                .await
                .unwrap();
            (subscribed.id, webpush::outcome(&answer))
        }
    };
    let (s1, accepted) = outcome_at(Script::Accept).await;
    assert_eq!(accepted, Outcome::Accepted);
    let got: Vec<_> = service
        .received()
        .into_iter()
        .map(|r| {
            (
                r.subscription_id,
                r.vapid_key,
                r.payload,
                r.ttl,
                r.topic,
                r.urgency,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            s1,
            vapid.public_key(),
            notification.payload.to_vec(),
            60,
            Some("t1".into()),
            Some("high".into())
        )]
    );
    assert!(matches!(
        outcome_at(Script::Gone).await.1,
        Outcome::Gone { .. }
    ));
    let busy = Script::Throttle {
        retry_after_secs: 2,
        times: 1,
    };
    assert_eq!(
        outcome_at(busy).await.1,
        Outcome::Retry {
            reason: "HTTP 429".into(),
            after: Some(Duration::from_secs(2))
        }
    );
    // A request signed for another origin is refused by the service, and not retried.
    let s2 = service.subscribe();
    let elsewhere = moved(&s2.json, "http://127.0.0.1:1/push/x");
    let mut request = webpush::request(&elsewhere, &vapid, &notification).unwrap();
    *request.uri_mut() = s2.endpoint.parse().unwrap();
    let answer = send(&client, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(webpush::outcome(&answer), Outcome::Failed { .. }));
    assert_eq!(service.received().len(), 1, "nothing more was accepted");
    // An endpoint that answers with a megabyte costs at most MAX_ANSWER of it.
    let chatty = service.subscribe();
    service.script(&chatty.id, Script::Chatty);
    let chatty = Subscription::parse(&chatty.json).unwrap();
    let request = webpush::request(&chatty, &vapid, &notification).unwrap();
    let answer = send(&client, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body.len(), tagcast_push::MAX_ANSWER);
    // A name that resolves to this machine is refused unless the app allows private endpoints.
    let s3 = service.subscribe();
    let local = moved(&s3.json, &s3.endpoint.replace("127.0.0.1", "localhost"));
    let public_only = tagcast_push::endpoint_client(None, false).unwrap();
    let request = webpush::request(&local, &vapid, &notification).unwrap();
    let refused = send(&public_only, request, Duration::from_secs(5)).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("private address")),
        "{refused:?}"
    );
    let accepted_before = service.received().len();
    let allowed = tagcast_push::endpoint_client(None, true).unwrap();
    let request = webpush::request(&local, &vapid, &notification).unwrap();
    let answer = send(&allowed, request, Duration::from_secs(5))
        .await
        .unwrap();
    // It reached the service, which refuses it: signed for localhost, not its origin (401, a
    // VAPID signature it does not take: RFC 8292 §4.1).
    assert_eq!(
        answer.status,
        401,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(service.received().len(), accepted_before);
}
