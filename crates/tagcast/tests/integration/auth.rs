//! Who may call: the query parameters, UserSig failures, admins, rate limits, and app isolation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// The UserSig of spec §7.3 (sdkappid 1400000000, "administrator", signed with the demo key that
/// APP also uses; issued at 1700000000 for 86400 s), as Tencent's libraries produce it.
const SPEC_USERSIG: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwokpuZl5mcUlRYkl*UVQBcUp2YkFBZkpSlaGJgZQAJFJrSjILEpVsrIwM4EJlWTmAgUMzVEVFmemAw2v9HFM1S43Dw9NDS0tTAqzzNAPiTC3KDUyzA9xz9TOtIwqMCw1DijIizQzsFWqBQC8iDOS";

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
    // A query for APP's admin carrying `usersig`.
    let with = |usersig: &str| query_with_sig(&APP, admin, usersig);
    // A UserSig for APP's admin, with the given claims and key.
    let signed =
        |sdkappid, key, expire, time| tagcast_usersig::sign(sdkappid, key, admin, expire, time);
    let cases: Vec<(String, u32, &str)> = vec![
        (with(""), 70002, "empty"),
        (with("%20%20"), 70002, "empty"),
        (
            format!(
                "sdkappid={}&identifier={admin}&contenttype=json",
                APP.sdkappid
            ),
            70002,
            "empty",
        ),
        (with("not-a-usersig!"), 70003, "base64"),
        // Base64 of "hello world": decodes, but is not zlib.
        (with("aGVsbG8gd29ybGQ_"), 70003, "zlib"),
        (with(&valid[..valid.len() - 12]), 70003, "malformed"),
        (
            with(&signed(APP.sdkappid, APP.key, 60, now - 3600)),
            70001,
            "expired",
        ),
        (
            with(&signed(APP.sdkappid, OTHER_APP.key, 86_400, now)),
            70009,
            "signature",
        ),
        (with(&sig(&APP, "second_admin")), 70013, "second_admin"),
        (
            with(&signed(OTHER_APP.sdkappid, APP.key, 86_400, now)),
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
                tag_body("sig_victim", &["intruder"])
            };
            let r = server.call_with_query(path, query, body).await;
            assert_fail(&r, *code, mentions);
        }
    }
    assert_eq!(tags_of(&server, &APP, "sig_victim").await, json!([]));
    assert_account_status(&server, &APP, &[("sig_intruder", "NotImported")]).await;

    // The boundaries: a sig issued in the past but still within its validity works.
    let still_valid = signed(APP.sdkappid, APP.key, 86_400, now - 3600);
    let body = tag_body("sig_victim", &["legit"]);
    let r = server
        .call_with_query("timpush/add_tag", &with(&still_valid), body)
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
        let body = tag_body("pct_user", &[&format!("pct{i}")]);
        let r = server.call_with_query("timpush/add_tag", query, body).await;
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
            "im_open_login_svc/account_delete" => user_items("DeleteItem", &["na_user"]),
            "timpush/add_tag" | "all_member_push/im_add_tag" => tag_body("na_user", &["x"]),
            _ => json!({}),
        };
        let r = server.call_with_query(path, &query, body).await;
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
    assert_account_status(&server, &APP, &[("na_new", "NotImported")]).await;

    // Every configured admin may call, in every family.
    let second = query_with_sig(&APP, "second_admin", &sig(&APP, "second_admin"));
    for (path, body) in [
        ("timpush/add_tag", tag_body("na_user", &["by_second"])),
        ("all_member_push/im_get_tag", accounts_body(&["na_user"])),
        (
            "im_open_login_svc/account_import",
            json!({ "UserID": "na_second" }),
        ),
    ] {
        let r = server.call_with_query(path, &second, body).await;
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
                .call_with_query(path, query, accounts_body(&[]))
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
    let url = format!("{}/v4/timpush/get_tag", server.base);
    let r: Value = server
        .request(Method::GET, &url, "")
        .await
        .json()
        .await
        .unwrap();
    assert_fail(&r, 60008, "GET");
}

#[tokio::test]
async fn usersigs_of_other_keys_and_apps_are_refused() {
    let server = Server::start();
    let now = now();
    // `app`'s admin, signed correctly but with `key`.
    let signed_with =
        |app: &TestApp, key: &str| tagcast_usersig::sign(app.sdkappid, key, app.admin, 86_400, now);
    let cases: Vec<(&TestApp, &str, String, u32)> = vec![
        // A correctly built UserSig, for the right app and admin, signed with another app's key.
        (&APP, APP.admin, signed_with(&APP, OTHER_APP.key), 70009),
        (
            &TIGHT_APP,
            TIGHT_APP.admin,
            signed_with(&TIGHT_APP, APP.key),
            70009,
        ),
        (
            &OTHER_APP,
            OTHER_APP.admin,
            signed_with(&OTHER_APP, APP.key),
            70009,
        ),
        // Another app's genuine admin UserSig, presented to this app.
        (
            &APP,
            OTHER_APP.admin,
            sig(&OTHER_APP, OTHER_APP.admin),
            70014,
        ),
        // TIGHT_APP's admin has the same name as APP's: its UserSig still only works for TIGHT_APP.
        (&APP, APP.admin, sig(&TIGHT_APP, TIGHT_APP.admin), 70014),
        (&TIGHT_APP, APP.admin, sig(&APP, APP.admin), 70014),
        // The spec's official token: right key (the demo key), but issued for sdkappid 1400000000.
        (&APP, "administrator", SPEC_USERSIG.into(), 70014),
    ];
    for (app, identifier, usersig, code) in &cases {
        let query = query_with_sig(app, identifier, usersig);
        let r = server
            .call_with_query("timpush/get_tag", &query, accounts_body(&[]))
            .await;
        assert_fail(&r, *code, "UserSig");
    }
    // The official token for its own sdkappid: that app is not served here.
    let query = format!("sdkappid=1400000000&identifier=administrator&usersig={SPEC_USERSIG}");
    let r = server
        .call_with_query("timpush/get_tag", &query, accounts_body(&[]))
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
    add_tags(&server, &TIGHT_APP, "rl_user", &["still"]).await;
    server
        .ok(&TIGHT_APP, "all_member_push/im_get_attr_name", json!({}))
        .await;
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "rl_user").await,
        json!(["still"])
    );
    // …and other apps have their own limits.
    for _ in 0..5 {
        server.ok(&APP, "timpush/get_attr_name", json!({})).await;
    }
}

#[tokio::test]
async fn apps_never_see_each_others_data() {
    let server = Server::start();
    // The same account name in two apps.
    import(&server, &APP, &["twin", "only_in_app"]).await;
    import(&server, &OTHER_APP, &["twin"]).await;
    add_tags(&server, &APP, "twin", &["app-tag"]).await;
    add_tags(&server, &OTHER_APP, "twin", &["other-tag"]).await;
    assert_eq!(tags_of(&server, &APP, "twin").await, json!(["app-tag"]));
    assert_eq!(
        tags_of(&server, &OTHER_APP, "twin").await,
        json!(["other-tag"])
    );

    // Attribute names are per app.
    name_attrs(&server, &APP, json!({ "0": "city" })).await;
    let r = server
        .call(&OTHER_APP, "timpush/get_attr_name", json!({}))
        .await;
    assert_eq!(r["AttrNames"], json!({}), "{r}");
    let body = attr_body("twin", json!({ "city": "x" }));
    let r = server.call(&OTHER_APP, "timpush/set_attr", body).await;
    assert_fail(&r, 90033, "city");

    // Accounts are per app.
    let r = server
        .call(
            &OTHER_APP,
            "timpush/get_tag",
            accounts_body(&["only_in_app"]),
        )
        .await;
    assert_eq!(error_list(&r), one_error("only_in_app", 70107));
    assert_account_status(&server, &OTHER_APP, &[("only_in_app", "NotImported")]).await;
    let r = delete_account(&server, &OTHER_APP, "twin").await;
    assert_eq!(r["ResultItem"][0]["ResultCode"], 0, "{r}");
    assert_eq!(tags_of(&server, &APP, "twin").await, json!(["app-tag"]));

    // APP's admin UserSig cannot be used to read OTHER_APP, whatever identifier is claimed.
    for identifier in [APP.admin, OTHER_APP.admin] {
        let query = query_with_sig(&OTHER_APP, identifier, &sig(&APP, APP.admin));
        let r = server
            .call_with_query("timpush/get_tag", &query, accounts_body(&["twin"]))
            .await;
        assert_eq!(r["ActionStatus"], "FAIL", "{r}");
        assert_eq!(r.get("UserTags"), None, "{r}");
    }
}
