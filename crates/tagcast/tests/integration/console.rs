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

/// POSTs `body` to the console's `api/{path}` for APP with `cookie` and, when given, `csrf`.
async fn app_call(
    server: &Server,
    path: &str,
    body: Vec<u8>,
    cookie: &str,
    csrf: Option<&str>,
) -> (u16, Value) {
    let url = format!(
        "{}/console/api/{path}?sdkappid={}",
        server.base, APP.sdkappid
    );
    let mut request = server
        .client()
        .post(url)
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(csrf) = csrf {
        request = request.header("X-Tagcast-Csrf", csrf);
    }
    let response = request.send().await.expect("console answers");
    (
        response.status().as_u16(),
        response.json().await.expect("JSON"),
    )
}

#[tokio::test]
async fn the_consoles_calls_need_a_session_and_its_csrf_token_and_answer_as_the_api() {
    let server = Server::start();
    import(&server, &APP, &["xiaoming"]).await;
    let (cookie, answer) = sign_in(&server).await;
    let csrf = answer["SignedIn"][0]["Csrf"].as_str().unwrap().to_string();
    let get_tag = br#"{"To_Account":["xiaoming","nobody"]}"#.to_vec();
    for path in ["v4/timpush/get_tag", "overview", "reach", "usersig"] {
        let (status, answer) = app_call(&server, path, b"{}".to_vec(), "x=y", Some(&csrf)).await;
        assert_eq!(
            (status, &answer["ErrorCode"]),
            (401, &json!(90009)),
            "{path}: {answer}"
        );
        let (status, answer) = app_call(&server, path, b"{}".to_vec(), &cookie, None).await;
        assert_eq!(
            (status, &answer["ErrorCode"]),
            (403, &json!(90009)),
            "{path}: {answer}"
        );
    }
    // Signed in to APP, not to OTHER_APP.
    let other = format!(
        "{}/console/api/overview?sdkappid={}",
        server.base, OTHER_APP.sdkappid
    );
    let refused = server
        .client()
        .post(other)
        .header(COOKIE, &cookie)
        .header("X-Tagcast-Csrf", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // The REST API's answer, ErrorList and all, byte for byte.
    let (status, through) = app_call(
        &server,
        "v4/timpush/get_tag",
        get_tag.clone(),
        &cookie,
        Some(&csrf),
    )
    .await;
    assert_eq!(status, 200);
    let direct = server
        .call(
            &APP,
            "timpush/get_tag",
            serde_json::from_slice(&get_tag).unwrap(),
        )
        .await;
    assert_eq!(through, direct);
    assert_eq!(error_list(&through), vec![("nobody".to_string(), 70107)]);
    // The API's errors and limits: malformed JSON, and a push body over 10 KB (90056).
    let (_, malformed) = app_call(
        &server,
        "v4/timpush/add_tag",
        b"{".to_vec(),
        &cookie,
        Some(&csrf),
    )
    .await;
    assert_eq!(malformed["ErrorCode"], 90001, "{malformed}");
    let huge = format!(r#"{{"MsgRandom":1,"DataId":"{}"}}"#, "x".repeat(11_000));
    let (_, too_big) = app_call(
        &server,
        "v4/timpush/push",
        huge.into_bytes(),
        &cookie,
        Some(&csrf),
    )
    .await;
    assert_eq!(too_big["ErrorCode"], 90056, "{too_big}");
    let (status, unknown) = app_call(
        &server,
        "v4/timpush/nothing",
        b"{}".to_vec(),
        &cookie,
        Some(&csrf),
    )
    .await;
    assert_eq!(
        (status, &unknown["ErrorCode"]),
        (404, &json!(60009)),
        "{unknown}"
    );
}

#[tokio::test]
async fn overview_reach_and_usersig_answer_for_the_signed_in_app() {
    let server = Server::start();
    import(&server, &APP, &["a", "b", "c"]).await;
    server
        .ok(
            &APP,
            "timpush/add_tag",
            json!({ "UserTags": [{ "To_Account": "a", "Tags": ["vip"] }, { "To_Account": "b", "Tags": ["vip"] }] }),
        )
        .await;
    let _online = crate::ws::Client::connect(&server, &APP, "a").await;
    let (cookie, answer) = sign_in(&server).await;
    let csrf = answer["SignedIn"][0]["Csrf"].as_str().unwrap().to_string();
    let call = |path: &'static str, body: Value| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        let server = &server;
        async move {
            app_call(
                server,
                path,
                body.to_string().into_bytes(),
                &cookie,
                Some(&csrf),
            )
            .await
            .1
        }
    };
    let overview = call("overview", json!({})).await;
    assert_eq!(overview["Accounts"], 3, "{overview}");
    assert_eq!(overview["TagsInUse"], 1, "{overview}");
    assert_eq!(overview["OnlineHere"], 1, "{overview}");
    assert_eq!(overview["PushesToday"], 0, "{overview}");
    assert_eq!(overview["DailyQuota"], 100, "{overview}");

    let reach = call("reach", json!({ "Audience": { "Tag": "vip" } })).await;
    assert_eq!(
        (&reach["Count"], &reach["OnlineHere"], &reach["WithDevices"]),
        (&json!(2), &json!(1), &json!(0)),
        "{reach}"
    );
    // Checked as audience_count checks it: an empty tag is 90040.
    let empty = call("reach", json!({ "Audience": { "Tag": "" } })).await;
    assert_eq!(empty["ErrorCode"], 90040, "{empty}");

    let signed = call("usersig", json!({ "Identifier": "c" })).await;
    let usersig = signed["UserSig"].as_str().expect("a UserSig");
    let url = crate::ws::ws_url(&server, &APP, "c", usersig);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the UserSig logs c in");
    let hello = futures_util::StreamExt::next(&mut socket)
        .await
        .unwrap()
        .unwrap();
    assert!(
        hello.to_text().unwrap().contains(r#""Identifier":"c""#),
        "{hello}"
    );
    let long = call("usersig", json!({ "Identifier": "x".repeat(33) })).await;
    assert_eq!(long["ErrorCode"], 70402, "{long}");
}
