//! APNs against a local server that checks each request as Apple documents it: HTTP/2 over
//! TLS; a provider token that verifies (ES256) with the public half of the team's key and names
//! the key id and the team; `apns-topic`, `apns-push-type`, `apns-expiration`,
//! `apns-collapse-id` and an `aps` payload. It answers 200, or 410 / 429 / 500 for the device
//! tokens named so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tagcast_push::apns::{self, Credentials, Notification};
use tagcast_push::{Alert, Outcome, send};

const KEY_ID: &str = "KEY1234567";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.app";

/// What the server accepted: device token and payload.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

struct Apple {
    public_key: DecodingKey,
    received: Received,
}

impl Apple {
    /// Why `request` is not one Apple would take, if it is not.
    fn check(&self, request: &Request<Bytes>) -> Result<(), String> {
        if request.version() != http::Version::HTTP_2 {
            return Err(format!("{:?}, not HTTP/2", request.version()));
        }
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("no {name}"))
        };
        let token = header("authorization")?
            .strip_prefix("bearer ")
            .ok_or("authorization is not a bearer token")?;
        let jwt = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if jwt.alg != Algorithm::ES256 || jwt.kid.as_deref() != Some(KEY_ID) {
            return Err(format!("token header {jwt:?}"));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(token, &self.public_key, &validation)
            .map_err(|e| format!("InvalidProviderToken: {e}"))?
            .claims;
        let age = tagcast_push::webpush::unix_now().abs_diff(claims["iat"].as_u64().unwrap_or(0));
        if claims["iss"] != TEAM_ID || age > 3600 {
            return Err(format!("claims {claims}"));
        }
        if header("apns-topic")? != TOPIC || header("apns-push-type")? != "alert" {
            return Err("BadTopic or push type".into());
        }
        header("apns-expiration")?
            .parse::<u64>()
            .map_err(|_| "BadExpirationDate")?;
        if header("apns-collapse-id")?.len() > 64 {
            return Err("BadCollapseId".into());
        }
        let payload: Value = serde_json::from_slice(request.body()).map_err(|_| "PayloadEmpty")?;
        if !payload["aps"]["alert"].is_object() {
            return Err("no aps.alert".into());
        }
        Ok(())
    }

    fn answer(&self, request: Request<Bytes>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: Value| {
            Response::builder()
                .status(status)
                .header("apns-id", "00000000-0000-0000-0000-000000000001")
                .header("retry-after", "1")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        if let Err(reason) = self.check(&request) {
            return reply(StatusCode::BAD_REQUEST, json!({ "reason": reason }));
        }
        let device = request
            .uri()
            .path()
            .trim_start_matches("/3/device/")
            .to_string();
        match device.as_str() {
            "aa00" => reply(
                StatusCode::GONE,
                json!({ "reason": "Unregistered", "timestamp": 1 }),
            ),
            "bb00" => reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "reason": "TooManyRequests" }),
            ),
            "cc00" => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "reason": "InternalServerError" }),
            ),
            _ => {
                let payload = serde_json::from_slice(request.body()).unwrap();
                self.received.lock().unwrap().push((device, payload));
                reply(StatusCode::OK, json!({}))
            }
        }
    }
}

/// Apple's server on loopback over TLS with ALPN h2: its base URL, its CA (the self-signed
/// certificate) and what it received.
async fn apple(public_key_pem: &str) -> (String, String, Received) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let apple = Arc::new(Apple {
        public_key: DecodingKey::from_ec_pem(public_key_pem.as_bytes()).unwrap(),
        received: received.clone(),
    });
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, apple) = (acceptor.clone(), apple.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let apple = apple.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        Ok::<_, hyper::Error>(apple.answer(Request::from_parts(parts, body)))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
            });
        }
    });
    (base, cert.cert.pem(), received)
}

#[tokio::test]
async fn notifications_reach_apples_server_signed_and_its_answers_are_read() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let team_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let credentials =
        Credentials::from_p8(team_key.serialize_pem().as_bytes(), KEY_ID, TEAM_ID).unwrap();
    let (base, ca, received) = apple(&team_key.public_key_pem()).await;
    let client = tagcast_push::client(Some(ca.as_bytes()), true).unwrap();
    let alert = Alert::from_offline_push_info(&json!({ "Title": "Sale", "Desc": "50% off" }));
    let send_to = |device: &'static str, token: String| {
        let notification = Notification {
            device_token: device,
            topic: TOPIC,
            alert: &alert,
            expiration: tagcast_push::webpush::unix_now() + 3600,
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
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "ff00");
    assert_eq!(
        got[0].1["aps"]["alert"],
        json!({ "title": "Sale", "body": "50% off" })
    );
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
    // A token signed with another key is refused (400, not retried).
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = Credentials::from_p8(stranger.serialize_pem().as_bytes(), KEY_ID, TEAM_ID)
        .unwrap()
        .token(tagcast_push::webpush::unix_now())
        .unwrap();
    let refused = send_to("ff01", forged).await;
    assert!(
        matches!(&refused, Outcome::Failed { reason } if reason.contains("InvalidProviderToken")),
        "{refused:?}"
    );
    assert_eq!(received.lock().unwrap().len(), 1);
}
