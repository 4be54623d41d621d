//! The web console's page and sign-in (issue 11) over HTTP: the page and its scripts come from
//! the binary with a strict policy; signing in as an admin, with the app's key or a UserSig,
//! gives an HttpOnly, SameSite=Strict cookie; the API's errors come back with their codes; a
//! change without the session's CSRF token is refused.

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

use crate::common::*;

/// POSTs `body` as JSON to the console's `api/{path}`, with `cookie`; the status and answer.
async fn console_post(
    server: &Server,
    path: &str,
    body: Value,
    cookie: Option<&str>,
) -> (u16, Value) {
    let mut request = server
        .client()
        .post(format!("{}/console/api/{path}", server.base))
        .json(&body);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.expect("console answers");
    (
        response.status().as_u16(),
        response.json().await.expect("JSON"),
    )
}

/// Signs in as APP's admin with its key: the cookie (name=value) and the answer.
async fn sign_in(server: &Server) -> (String, Value) {
    let body = json!({ "SdkAppId": APP.sdkappid, "Identifier": APP.admin, "Key": APP.key });
    let response = server
        .client()
        .post(format!("{}/console/api/sign_in", server.base))
        .json(&body)
        .send()
        .await
        .expect("console answers");
    assert_eq!(response.status(), 200);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    (cookie, response.json().await.unwrap())
}

/// GETs `path` of `server`, with `cookie`.
async fn get(server: &Server, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = server.client().get(format!("{}{path}", server.base));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("the server answers")
}

async fn session(server: &Server, cookie: Option<&str>) -> (u16, Value) {
    let response = get(server, "/console/api/session", cookie).await;
    (
        response.status().as_u16(),
        response.json().await.expect("JSON"),
    )
}

#[tokio::test]
async fn the_page_and_its_scripts_come_from_the_binary_under_a_strict_policy() {
    let server = Server::start();
    let page = get(&server, "/console", None).await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"src="/console/assets/console.js""#),
        "{html}"
    );
    let script = get(&server, "/console/assets/console.js", None).await;
    assert_eq!(
        script.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(script.text().await.unwrap().contains("sign_in"));
    let missing = get(&server, "/console/assets/nope.js", None).await;
    assert_eq!(missing.status(), 404);
    let (status, answer) = session(&server, None).await;
    assert_eq!(
        (status, &answer["ErrorCode"]),
        (401, &json!(90009)),
        "{answer}"
    );
}

#[tokio::test]
async fn an_admin_signs_in_with_the_key_or_a_usersig_and_others_get_the_apis_errors() {
    let server = Server::start();
    let (cookie, answer) = sign_in(&server).await;
    assert_eq!(answer["SignedIn"][0]["SdkAppId"], APP.sdkappid, "{answer}");
    let (status, listed) = session(&server, Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(listed["SignedIn"][0]["Identifier"], APP.admin);
    let with_sig = json!({ "SdkAppId": APP.sdkappid, "Identifier": APP.admin, "UserSig": sig(&APP, APP.admin) });
    assert_eq!(
        console_post(&server, "sign_in", with_sig, None).await.0,
        200
    );

    let refused = [
        (
            json!({ "SdkAppId": APP.sdkappid, "Identifier": APP.admin, "Key": "wrong" }),
            70009,
        ),
        (
            json!({ "SdkAppId": APP.sdkappid, "Identifier": NOT_ADMIN, "Key": APP.key }),
            90009,
        ),
        (
            json!({ "SdkAppId": 7, "Identifier": APP.admin, "Key": APP.key }),
            70020,
        ),
        (
            json!({ "SdkAppId": APP.sdkappid, "Identifier": APP.admin, "UserSig": "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwiCR4pR0IAcsVQsAqvsU6Q__" }),
            70003,
        ),
        (
            json!({ "SdkAppId": APP.sdkappid, "Identifier": APP.admin }),
            70002,
        ),
        (json!({ "SdkAppId": "x" }), 90001),
    ];
    for (body, code) in refused {
        let (status, answer) = console_post(&server, "sign_in", body.clone(), None).await;
        assert_eq!(answer["ErrorCode"], code, "{body}: {answer}");
        assert_ne!(status, 200, "{body}");
        assert!(answer["ErrorInfo"].as_str().is_some_and(|i| !i.is_empty()));
    }
    // A form of another site can only post form types.
    let form = server
        .client()
        .post(format!("{}/console/api/sign_in", server.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("SdkAppId={}", APP.sdkappid))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
}

#[tokio::test]
async fn a_change_needs_the_sessions_csrf_token_and_a_forged_cookie_is_no_session() {
    let server = Server::start();
    let (cookie, answer) = sign_in(&server).await;
    let csrf = answer["SignedIn"][0]["Csrf"].as_str().unwrap().to_string();
    let sign_out = |token: Option<String>| {
        let mut request = server
            .client()
            .post(format!(
                "{}/console/api/sign_out?sdkappid={}",
                server.base, APP.sdkappid
            ))
            .header(COOKIE, &cookie);
        if let Some(token) = token {
            request = request.header("X-Tagcast-Csrf", token);
        }
        request.send()
    };
    let refused = sign_out(None).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(sign_out(Some("forged".into())).await.unwrap().status(), 403);
    assert_eq!(
        session(&server, Some(&cookie)).await.0,
        200,
        "still signed in"
    );

    let (name, value) = cookie.split_once('=').unwrap();
    let mut forged = value.to_string();
    forged.replace_range(forged.len() - 2.., "AA");
    assert_eq!(
        session(&server, Some(&format!("{name}={forged}"))).await.0,
        401
    );
    // Another expiry under the same MAC.
    let later = value.replacen(&(now() + 28_800).to_string()[..6], "999999", 1);
    assert_eq!(
        session(&server, Some(&format!("{name}={later}"))).await.0,
        401
    );

    let out = sign_out(Some(csrf)).await.unwrap();
    assert_eq!(out.status(), 200);
    let cleared = out.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let emptied = cleared.split(';').next().unwrap();
    assert_eq!(session(&server, Some(emptied)).await.0, 401);
}

#[tokio::test]
async fn the_console_can_be_switched_off() {
    let server = Server::start_with("[console]\nenabled = false\n", None);
    let page = get(&server, "/console", None).await;
    // The path is then any other unknown one: the API's error, not a page.
    assert_eq!(page.headers()[CONTENT_TYPE], "application/json");
    let answer: Value = page.json().await.unwrap();
    assert_eq!(answer["ActionStatus"], "FAIL", "{answer}");
}
