//! Who may call: the query parameters, UserSig failures, admins, rate limits, and app isolation.

use serde_json::{Value, json};

use crate::common::*;

/// The UserSig of spec §7.3 (sdkappid 1400000000, "administrator", signed with the demo key that
/// APP also uses; issued at 1700000000 for 86400 s), as Tencent's libraries produce it.
const SPEC_USERSIG: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwokpuZl5mcUlRYkl*UVQBcUp2YkFBZkpSlaGJgZQAJFJrSjILEpVsrIwM4EJlWTmAgUMzVEVFmemAw2v9HFM1S43Dw9NDS0tTAqzzNAPiTC3KDUyzA9xz9TOtIwqMCw1DijIizQzsFWqBQC8iDOS";

fn add_tag_body(account: &str, tag: &str) -> Value {
    json!({ "UserTags": [ { "To_Account": account, "Tags": [tag] } ] })
}

/// Every byte as `%XX`, as an over-eager client escapes a query value.
fn percent_encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn each_usersig_failure_has_its_code() {
    let server = Server::start();
    import(&server, &APP, &["sig_victim"]).await;
    let admin = APP.admin;
    let now = now();
    let valid = sig(&APP, admin);
    let cases: Vec<(String, u32, &str)> = vec![
        (query_with_sig(&APP, admin, ""), 70002, "empty"),
        (query_with_sig(&APP, admin, "%20%20"), 70002, "empty"),
        (
            format!(
                "sdkappid={}&identifier={admin}&contenttype=json",
                APP.sdkappid
            ),
            70002,
            "empty",
        ),
        (
            query_with_sig(&APP, admin, "not-a-usersig!"),
            70003,
            "base64",
        ),
        // Base64 of "hello world": decodes, but is not zlib.
        (
            query_with_sig(&APP, admin, "aGVsbG8gd29ybGQ_"),
            70003,
            "zlib",
        ),
        (
            query_with_sig(&APP, admin, &valid[..valid.len() - 12]),
            70003,
            "malformed",
        ),
        (
            query_with_sig(
                &APP,
                admin,
                &tagcast_usersig::sign(APP.sdkappid, APP.key, admin, 60, now - 3600),
            ),
            70001,
            "expired",
        ),
        (
            query_with_sig(
                &APP,
                admin,
                &tagcast_usersig::sign(APP.sdkappid, OTHER_APP.key, admin, 86_400, now),
            ),
            70009,
            "signature",
        ),
        (
            query_with_sig(&APP, admin, &sig(&APP, "second_admin")),
            70013,
            "second_admin",
        ),
        (
            query_with_sig(
                &APP,
                admin,
                &tagcast_usersig::sign(OTHER_APP.sdkappid, APP.key, admin, 86_400, now),
            ),
            70014,
            "1400000002",
        ),
        // No identifier at all: the sig's identifier does not match "".
        (
            format!("sdkappid={}&usersig={valid}", APP.sdkappid),
            70013,
            "administrator",
        ),
    ];
    for (query, code, mentions) in &cases {
        for path in [
            "timpush/add_tag",
            "all_member_push/im_add_tag",
            "im_open_login_svc/account_import",
        ] {
            let body = if path.starts_with("im_open") {
                json!({ "UserID": "sig_intruder" })
            } else {
                add_tag_body("sig_victim", "intruder")
            };
            let r = server
                .post_raw(
                    &server.url_with_query(path, query),
                    body.to_string().into_bytes(),
                )
                .await;
            assert_fail(&r, *code, mentions);
        }
    }
    assert_eq!(tags_of(&server, &APP, "sig_victim").await, json!([]));
    let r = server
        .call(
            &APP,
            "im_open_login_svc/account_check",
            json!({ "CheckItem": [ { "UserID": "sig_intruder" } ] }),
        )
        .await;
    assert_eq!(r["ResultItem"][0]["AccountStatus"], "NotImported", "{r}");

    // The boundaries: a sig issued in the past but still within its validity works.
    let still_valid = tagcast_usersig::sign(APP.sdkappid, APP.key, admin, 86_400, now - 3600);
    let r = server
        .post_raw(
            &server.url_with_query(
                "timpush/add_tag",
                &query_with_sig(&APP, admin, &still_valid),
            ),
            add_tag_body("sig_victim", "legit").to_string().into_bytes(),
        )
        .await;
    assert_ok(&r);
    assert_eq!(tags_of(&server, &APP, "sig_victim").await, json!(["legit"]));
}

#[tokio::test]
async fn percent_encoded_query_values_work() {
    let server = Server::start();
    import(&server, &APP, &["pct_user"]).await;
    let usersig = sig(&APP, APP.admin);
    // Tencent's alphabet uses `*`, `-` and `_`; a client may escape them, or everything.
    let partly = usersig
        .replace('*', "%2A")
        .replace('-', "%2D")
        .replace('_', "%5F");
    let queries = [
        query_with_sig(&APP, APP.admin, &partly),
        query_with_sig(
            &APP,
            &percent_encode_all(APP.admin),
            &percent_encode_all(&usersig),
        ),
        // Parameter order does not matter; unknown parameters are ignored.
        format!(
            "contenttype=json&random=7&extra=1&usersig={}&identifier={}&sdkappid={}",
            percent_encode_all(&usersig),
            APP.admin,
            percent_encode_all(&APP.sdkappid.to_string())
        ),
    ];
    for (i, query) in queries.iter().enumerate() {
        let tag = format!("pct{i}");
        let r = server
            .post_raw(
                &server.url_with_query("timpush/add_tag", query),
                add_tag_body("pct_user", &tag).to_string().into_bytes(),
            )
            .await;
        assert_ok(&r);
    }
    assert_eq!(
        tags_of(&server, &APP, "pct_user").await,
        json!(["pct0", "pct1", "pct2"])
    );
}

#[tokio::test]
async fn non_admins_are_refused_with_their_familys_code() {
    let server = Server::start();
    import(&server, &APP, &["na_user"]).await;
    let query = query_with_sig(&APP, NOT_ADMIN, &sig(&APP, NOT_ADMIN));
    for path in all_api_paths() {
        let body = match path {
            "im_open_login_svc/account_import" => json!({ "UserID": "na_new" }),
            "im_open_login_svc/multiaccount_import" => json!({ "Accounts": ["na_new"] }),
            "im_open_login_svc/account_delete" => {
                json!({ "DeleteItem": [ { "UserID": "na_user" } ] })
            }
            "timpush/add_tag" | "all_member_push/im_add_tag" => add_tag_body("na_user", "x"),
            _ => json!({}),
        };
        let r = server
            .post_raw(
                &server.url_with_query(path, &query),
                body.to_string().into_bytes(),
            )
            .await;
        let code = if path.starts_with("im_open_login_svc/") {
            70403
        } else {
            90009
        };
        assert_fail(&r, code, NOT_ADMIN);
        assert_fail(&r, code, "admin");
    }
    // Nothing was done: na_user still exists and has no tag, na_new was not imported.
    assert_eq!(tags_of(&server, &APP, "na_user").await, json!([]));
    let r = server
        .call(
            &APP,
            "im_open_login_svc/account_check",
            json!({ "CheckItem": [ { "UserID": "na_new" } ] }),
        )
        .await;
    assert_eq!(r["ResultItem"][0]["AccountStatus"], "NotImported", "{r}");

    // Every configured admin may call, in every family.
    let second = query_with_sig(&APP, "second_admin", &sig(&APP, "second_admin"));
    for (path, body) in [
        ("timpush/add_tag", add_tag_body("na_user", "by_second")),
        (
            "all_member_push/im_get_tag",
            json!({ "To_Account": ["na_user"] }),
        ),
        (
            "im_open_login_svc/account_import",
            json!({ "UserID": "na_second" }),
        ),
    ] {
        let r = server
            .post_raw(
                &server.url_with_query(path, &second),
                body.to_string().into_bytes(),
            )
            .await;
        assert_ok(&r);
    }
    assert_eq!(
        tags_of(&server, &APP, "na_user").await,
        json!(["by_second"])
    );
}

#[tokio::test]
async fn sdkappid_problems_are_60012_60006_and_70020() {
    let server = Server::start();
    let usersig = sig(&APP, APP.admin);
    let identifier = APP.admin;
    let mut cases: Vec<(String, u32, String)> = vec![
        (
            format!("identifier={identifier}&usersig={usersig}"),
            60012,
            "sdkappid".into(),
        ),
        (String::new(), 60012, "sdkappid".into()),
        (
            format!(
                "SDKAPPID={}&identifier={identifier}&usersig={usersig}",
                APP.sdkappid
            ),
            60012,
            "sdkappid".into(),
        ),
        (
            format!("sdkappid=999&identifier={identifier}&usersig={usersig}"),
            70020,
            "999".into(),
        ),
    ];
    for bad in [
        "abc",
        "",
        "-1",
        "1400000001x",
        "1.4e9",
        "99999999999999999999999",
    ] {
        cases.push((
            format!("sdkappid={bad}&identifier={identifier}&usersig={usersig}"),
            60006,
            format!("'{bad}'"),
        ));
    }
    for (query, code, mentions) in &cases {
        for path in ["timpush/get_tag", "im_open_login_svc/account_check"] {
            let r = server
                .post_raw(
                    &server.url_with_query(path, query),
                    br#"{"To_Account":[]}"#.to_vec(),
                )
                .await;
            assert_fail(&r, *code, mentions);
        }
    }
    // The path and the method are checked before the app: an unknown path or a GET without any
    // query still gets its own code.
    let r = server
        .post_raw(&format!("{}/v4/timpush/nope", server.base), b"{}".to_vec())
        .await;
    assert_fail(&r, 60009, "timpush/nope");
    let r: Value = server
        .client()
        .get(format!("{}/v4/timpush/get_tag", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_fail(&r, 60008, "GET");
}

#[tokio::test]
async fn usersigs_of_other_keys_and_apps_are_refused() {
    let server = Server::start();
    let now = now();
    let cases: Vec<(&TestApp, String, String, u32)> = vec![
        // A correctly built UserSig, for the right app and admin, signed with another app's key.
        (
            &APP,
            APP.admin.into(),
            tagcast_usersig::sign(APP.sdkappid, OTHER_APP.key, APP.admin, 86_400, now),
            70009,
        ),
        (
            &TIGHT_APP,
            TIGHT_APP.admin.into(),
            tagcast_usersig::sign(TIGHT_APP.sdkappid, APP.key, TIGHT_APP.admin, 86_400, now),
            70009,
        ),
        (
            &OTHER_APP,
            OTHER_APP.admin.into(),
            tagcast_usersig::sign(OTHER_APP.sdkappid, APP.key, OTHER_APP.admin, 86_400, now),
            70009,
        ),
        // Another app's genuine admin UserSig, presented to this app.
        (
            &APP,
            OTHER_APP.admin.into(),
            sig(&OTHER_APP, OTHER_APP.admin),
            70014,
        ),
        // TIGHT_APP's admin has the same name as APP's: its UserSig still only works for TIGHT_APP.
        (
            &APP,
            APP.admin.into(),
            sig(&TIGHT_APP, TIGHT_APP.admin),
            70014,
        ),
        (&TIGHT_APP, APP.admin.into(), sig(&APP, APP.admin), 70014),
        // The spec's official token: right key (the demo key), but issued for sdkappid 1400000000.
        (&APP, "administrator".into(), SPEC_USERSIG.into(), 70014),
    ];
    for (app, identifier, usersig, code) in &cases {
        let query = query_with_sig(app, identifier, usersig);
        let r = server
            .post_raw(
                &server.url_with_query("timpush/get_tag", &query),
                br#"{"To_Account":[]}"#.to_vec(),
            )
            .await;
        assert_fail(&r, *code, "UserSig");
    }
    // The official token for its own sdkappid: that app is not served here.
    let query = format!("sdkappid=1400000000&identifier=administrator&usersig={SPEC_USERSIG}");
    let r = server
        .post_raw(
            &server.url_with_query("timpush/get_tag", &query),
            br#"{"To_Account":[]}"#.to_vec(),
        )
        .await;
    assert_fail(&r, 70020, "1400000000");
}

#[tokio::test]
async fn rate_limit_is_60007_per_app_and_api() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["rl_user"]).await;
    // The bucket holds 2 calls and starts full: two calls always pass. Then it refills at 2/s, so
    // a run of quick calls must hit the limit long before 20 of them.
    let mut codes = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let r = server
            .call(&TIGHT_APP, "timpush/get_attr_name", json!({}))
            .await;
        let code = r["ErrorCode"].as_u64().unwrap();
        codes.push(code);
        if code == 60007 {
            refused = Some(r);
            break;
        }
        assert_ok(&r);
    }
    assert_eq!(&codes[..2], &[0, 0], "{codes:?}");
    let refused = refused.unwrap_or_else(|| panic!("never rate limited: {codes:?}"));
    assert_fail(&refused, 60007, "timpush/get_attr_name");

    // Other APIs of the same app have their own buckets, the old-family twin included…
    let r = server
        .call(
            &TIGHT_APP,
            "timpush/add_tag",
            add_tag_body("rl_user", "still"),
        )
        .await;
    assert_ok(&r);
    let r = server
        .call(&TIGHT_APP, "all_member_push/im_get_attr_name", json!({}))
        .await;
    assert_ok(&r);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "rl_user").await,
        json!(["still"])
    );
    // …and other apps have their own limits.
    for _ in 0..5 {
        let r = server.call(&APP, "timpush/get_attr_name", json!({})).await;
        assert_ok(&r);
    }
}

#[tokio::test]
async fn apps_never_see_each_others_data() {
    let server = Server::start();
    // The same account name in two apps.
    import(&server, &APP, &["twin", "only_in_app"]).await;
    import(&server, &OTHER_APP, &["twin"]).await;
    let r = server
        .call(&APP, "timpush/add_tag", add_tag_body("twin", "app-tag"))
        .await;
    assert_ok(&r);
    let r = server
        .call(
            &OTHER_APP,
            "timpush/add_tag",
            add_tag_body("twin", "other-tag"),
        )
        .await;
    assert_ok(&r);
    assert_eq!(tags_of(&server, &APP, "twin").await, json!(["app-tag"]));
    assert_eq!(
        tags_of(&server, &OTHER_APP, "twin").await,
        json!(["other-tag"])
    );

    // Attribute names are per app.
    let r = server
        .call(
            &APP,
            "timpush/set_attr_name",
            json!({ "AttrNames": { "0": "city" } }),
        )
        .await;
    assert_ok(&r);
    let r = server
        .call(&OTHER_APP, "timpush/get_attr_name", json!({}))
        .await;
    assert_eq!(r["AttrNames"], json!({}), "{r}");
    let r = server
        .call(
            &OTHER_APP,
            "timpush/set_attr",
            json!({ "UserAttrs": [ { "To_Account": "twin", "Attrs": { "city": "x" } } ] }),
        )
        .await;
    assert_fail(&r, 90033, "city");

    // Accounts are per app.
    let r = server
        .call(
            &OTHER_APP,
            "timpush/get_tag",
            json!({ "To_Account": ["only_in_app"] }),
        )
        .await;
    assert_eq!(error_list(&r), vec![("only_in_app".to_string(), 70107)]);
    let r = server
        .call(
            &OTHER_APP,
            "im_open_login_svc/account_check",
            json!({ "CheckItem": [ { "UserID": "only_in_app" } ] }),
        )
        .await;
    assert_eq!(r["ResultItem"][0]["AccountStatus"], "NotImported", "{r}");
    let r = server
        .call(
            &OTHER_APP,
            "im_open_login_svc/account_delete",
            json!({ "DeleteItem": [ { "UserID": "twin" } ] }),
        )
        .await;
    assert_eq!(r["ResultItem"][0]["ResultCode"], 0, "{r}");
    assert_eq!(tags_of(&server, &APP, "twin").await, json!(["app-tag"]));

    // APP's admin UserSig cannot be used to read OTHER_APP, whatever identifier is claimed.
    for identifier in [APP.admin, OTHER_APP.admin] {
        let query = query_with_sig(&OTHER_APP, identifier, &sig(&APP, APP.admin));
        let r = server
            .post_raw(
                &server.url_with_query("timpush/get_tag", &query),
                br#"{"To_Account":["twin"]}"#.to_vec(),
            )
            .await;
        assert_eq!(r["ActionStatus"], "FAIL", "{r}");
        assert_eq!(r.get("UserTags"), None, "{r}");
    }
}
