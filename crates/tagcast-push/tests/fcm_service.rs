//! FCM HTTP v1 against tagcast-fakes' Google: its token endpoint takes only a JWT-bearer grant
//! whose RS256 assertion verifies with the service account's public key (issuer, audience,
//! scope, lifetime), and its `messages:send` only an unexpired access token it issued, for the
//! project, with a device token and a notification; `UNREGISTERED` for the device scripted
//! gone.

use std::time::Duration;

use serde_json::{Value, json};
use tagcast_fakes::Script;
use tagcast_fakes::fcm::{self as google, Google};
use tagcast_push::fcm::{self, Notification, ServiceAccount};
use tagcast_push::{Alert, Outcome, send};

const EMAIL: &str = "push@demo-project.iam.gserviceaccount.com";

#[tokio::test]
async fn messages_reach_google_with_a_token_got_once_by_the_service_accounts_grant() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let google = Google::start("demo-project", EMAIL, google::PUBLIC_KEY_PEM.as_bytes()).await;
    google.script("gone", Script::Gone);
    let file = google::service_account_json("demo-project", EMAIL, &google.token_uri());
    let account = ServiceAccount::from_json(file.as_bytes()).unwrap();
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
        let request = fcm::request(&google.url(), &account.project_id, &access, &notification);
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
    assert_eq!(google.token_grants(), 1, "the access token was reused");
    let messages = google.received();
    let devices: Vec<&str> = messages.iter().map(|m| m.token.as_str()).collect();
    assert_eq!(devices, ["fcm:one", "fcm:two"]);
    assert_eq!(
        messages[0].message["notification"],
        json!({ "title": "Sale", "body": "50% off" })
    );
    assert_eq!(google.rejected(), Vec::<String>::new());
    // A grant signed with another key gets no token.
    let mut stranger: Value = serde_json::from_str(&file).unwrap();
    stranger["private_key"] = json!(google::OTHER_PRIVATE_KEY_PEM);
    let stranger = ServiceAccount::from_json(stranger.to_string().as_bytes()).unwrap();
    let request = stranger
        .token_request(tagcast_push::webpush::unix_now())
        .unwrap();
    let answer = send(&client, request, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains("invalid_grant"));
    assert_eq!(google.token_grants(), 1);
}
