//! APNs against tagcast-fakes' Apple, which checks each request as Apple documents it: HTTP/2
//! over TLS; a provider token that verifies (ES256) with the public half of the team's key and
//! names the key id and the team; `apns-topic`, `apns-push-type`, `apns-expiration`,
//! `apns-collapse-id`, `apns-priority` and an `aps` payload. Devices scripted gone, throttled or
//! failing get Apple's 410, 429 and 500.

use std::time::Duration;

use serde_json::json;
use tagcast_fakes::Script;
use tagcast_fakes::apns::Apple;
use tagcast_push::apns::{self, Credentials, Notification};
use tagcast_push::{Alert, Outcome, send};

const KEY_ID: &str = "KEY1234567";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";

#[tokio::test]
async fn notifications_reach_apples_server_signed_and_its_answers_are_read() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (private, public) = tagcast_fakes::apns::test_key();
    let credentials = Credentials::from_p8(private.as_bytes(), KEY_ID, TEAM_ID).unwrap();
    let apple = Apple::start(KEY_ID, TEAM_ID, TOPIC, public.as_bytes()).await;
    apple.script("aa00", Script::Gone);
    let throttle = Script::Throttle {
        retry_after_secs: 1,
        times: 1,
    };
    apple.script("bb00", throttle);
    apple.script("cc00", Script::Fail500 { times: 1 });
    let base = apple.url();
    let client = tagcast_push::client(Some(apple.ca_pem().as_bytes()), true).unwrap();
    let alert = Alert::from_offline_push_info(&json!({ "Title": "Sale", "Desc": "50% off" }));
    let expiration = tagcast_push::webpush::unix_now() + 3600;
    let send_to = |device: &'static str, token: String| {
        let notification = Notification {
            device_token: device,
            topic: TOPIC,
            alert: &alert,
            expiration,
            collapse_id: "6b0faec5_53724e01_1_00000001",
        };
        let request = apns::request(&base, &token, &notification);
        let client = client.clone();
        async move {
            let answer = send(&client, request, Duration::from_secs(5))
                .await
                .unwrap();
            apns::outcome(answer.status, &answer.headers, &answer.body)
        }
    };
    let token = credentials
        .token(tagcast_push::webpush::unix_now())
        .unwrap();
    assert_eq!(send_to("ff00", token.clone()).await, Outcome::Accepted);
    let got = apple.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].device_token, "ff00");
    assert_eq!(
        got[0].payload["aps"]["alert"],
        json!({ "title": "Sale", "body": "50% off" })
    );
    assert_eq!(
        (got[0].topic.as_str(), got[0].push_type.as_str()),
        (TOPIC, "alert")
    );
    assert_eq!(got[0].expiration, Some(expiration));
    assert_eq!(
        got[0].collapse_id.as_deref(),
        Some("6b0faec5_53724e01_1_00000001")
    );
    assert_eq!(got[0].priority, Some(10));
    assert!(
        matches!(send_to("aa00", token.clone()).await, Outcome::Gone { reason } if reason == "Unregistered")
    );
    assert_eq!(
        send_to("bb00", token.clone()).await,
        Outcome::Retry {
            reason: "TooManyRequests".into(),
            after: Some(Duration::from_secs(1))
        }
    );
    assert!(matches!(
        send_to("cc00", token).await,
        Outcome::Retry { .. }
    ));
    // A token signed with another key is refused (403, not retried).
    let (stranger, _) = tagcast_fakes::apns::test_key();
    let forged = Credentials::from_p8(stranger.as_bytes(), KEY_ID, TEAM_ID)
        .unwrap()
        .token(tagcast_push::webpush::unix_now())
        .unwrap();
    let refused = send_to("ff01", forged).await;
    assert!(
        matches!(&refused, Outcome::Failed { reason } if reason.contains("InvalidProviderToken")),
        "{refused:?}"
    );
    assert_eq!(apple.received().len(), 1);
    assert_eq!(apple.requests(), 5);
    let rejected = apple.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].starts_with("403 InvalidProviderToken"),
        "{rejected:?}"
    );
}
