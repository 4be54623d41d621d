//! Wire details every API shares: the body of the APIs without fields, empty `Condition`
//! members (90039), and the `contenttype` and `random` query parameters.

use serde_json::{Value, json};

use crate::common::*;
use crate::ws::text_body;

/// The APIs whose request has no fields: they take `{}`.
const NO_FIELD_APIS: [&str; 2] = ["timpush/get_attr_name", "all_member_push/im_get_attr_name"];

#[tokio::test]
async fn apis_without_fields_parse_their_body_as_a_json_object() {
    let server = Server::start();
    let deep_arrays = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(20_000), "}".repeat(20_000));
    let deep_member = format!(r#"{{"x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    let shallow_member = format!(r#"{{"x":{}{}}}"#, "[".repeat(100), "]".repeat(100));
    let refused: [(&str, &str); 10] = [
        ("", "EOF"),
        ("  ", "EOF"),
        ("[]", "expected a JSON object, got an array"),
        (r#""{}""#, "expected a JSON object, got a string"),
        ("7", "expected a JSON object, got a number"),
        ("null", "expected a JSON object, got null"),
        ("{", "EOF"),
        ("{} {}", "trailing characters"),
        (&deep_arrays, "expected a JSON object, got an array"),
        (&deep_objects, "recursion limit exceeded"),
    ];
    for path in NO_FIELD_APIS {
        for (body, mentions) in refused
            .iter()
            .chain([&(deep_member.as_str(), "recursion limit")])
        {
            let r = server
                .post_raw(&server.url(&APP, path), body.as_bytes().to_vec())
                .await;
            assert_fail(&r, 90001, mentions);
        }
        // What the spec shows, and any object of reasonable depth (unknown members ignored).
        for body in [
            "{}",
            " {} \n",
            r#"{"x":1,"y":{"z":[null]}}"#,
            &shallow_member,
        ] {
            let r = server
                .post_raw(&server.url(&APP, path), body.as_bytes().to_vec())
                .await;
            assert_ok_for(&r, path);
            assert_eq!(r["AttrNames"], json!({}), "{path}: {r}");
        }
    }
}

/// Two accounts: `tagged` has tag `a`, `located` has `city` = `sz`.
async fn tag_and_attr_accounts(server: &Server) {
    import(server, &PUSH_APP, &["tagged", "located"]).await;
    server
        .ok(
            &PUSH_APP,
            "timpush/set_attr_name",
            json!({ "AttrNames": { "0": "city" } }),
        )
        .await;
    server
        .ok(
            &PUSH_APP,
            "timpush/add_tag",
            json!({ "UserTags": [{ "To_Account": "tagged", "Tags": ["a"] }] }),
        )
        .await;
    server
        .ok(
            &PUSH_APP,
            "timpush/set_attr",
            json!({ "UserAttrs": [{ "To_Account": "located", "Attrs": { "city": "sz" } }] }),
        )
        .await;
}

#[tokio::test]
async fn an_empty_condition_member_counts_as_absent_on_both_sides_in_either_order() {
    let server = Server::start();
    tag_and_attr_accounts(&server).await;
    // (JSON text, is it a non-empty member?)
    let tag_values = [("null", false), ("[]", false), (r#"["a"]"#, true)];
    let attr_values = [("null", false), ("{}", false), (r#"{"city":"sz"}"#, true)];
    let url = server.url(&PUSH_APP, "tagcast/audience_count");
    for tag_field in ["TagsAnd", "TagsOr", "TagsNot"] {
        for attr_field in ["AttrsAnd", "AttrsOr"] {
            for (tags, has_tags) in [("", false)].into_iter().chain(tag_values) {
                for (attrs, has_attrs) in [("", false)].into_iter().chain(attr_values) {
                    let tag = (!tags.is_empty()).then(|| format!(r#""{tag_field}":{tags}"#));
                    let attr = (!attrs.is_empty()).then(|| format!(r#""{attr_field}":{attrs}"#));
                    let members: Vec<String> =
                        [tag.clone(), attr.clone()].into_iter().flatten().collect();
                    let reversed: Vec<String> = [attr, tag].into_iter().flatten().collect();
                    for members in [members.join(","), reversed.join(",")] {
                        let body = format!(r#"{{"Condition":{{{members}}}}}"#);
                        let r = server.post_raw(&url, body.clone().into_bytes()).await;
                        if has_tags && has_attrs {
                            assert_fail(&r, 90039, "");
                            continue;
                        }
                        assert_ok_for(&r, &body);
                        // Either side alone selects one account (TagsNot: all but the tagged
                        // one); no condition selects both.
                        let expected = if has_tags || has_attrs { 1 } else { 2 };
                        assert_eq!(r["Count"], expected, "{body}: {r}");
                    }
                }
            }
        }
    }
    // Several members at once, the empty ones on the other side of a non-empty one.
    let cases = [
        (
            json!({ "TagsOr": ["a"], "TagsNot": [], "AttrsAnd": {}, "AttrsOr": {} }),
            Some(1),
        ),
        (
            json!({ "AttrsAnd": { "city": "sz" }, "AttrsOr": {}, "TagsAnd": [], "TagsOr": [], "TagsNot": [] }),
            Some(1),
        ),
        (
            json!({ "TagsAnd": [], "TagsOr": [], "TagsNot": [], "AttrsAnd": {}, "AttrsOr": {} }),
            Some(2),
        ),
        (
            json!({ "TagsNot": ["a"], "AttrsOr": { "city": "sz" }, "AttrsAnd": {} }),
            None,
        ),
        (
            json!({ "TagsAnd": [], "TagsOr": ["a"], "AttrsAnd": {}, "AttrsOr": { "city": "sz" } }),
            None,
        ),
    ];
    for (condition, count) in cases {
        let r = server
            .call(
                &PUSH_APP,
                "tagcast/audience_count",
                json!({ "Condition": condition }),
            )
            .await;
        match count {
            Some(count) => {
                assert_ok(&r);
                assert_eq!(r["Count"], count, "{condition}: {r}");
            }
            None => assert_fail(&r, 90039, ""),
        }
    }
    // An empty member of the wrong type is still refused.
    for condition in [json!({ "TagsOr": {} }), json!({ "AttrsAnd": [] })] {
        let r = server
            .call(
                &PUSH_APP,
                "tagcast/audience_count",
                json!({ "Condition": condition }),
            )
            .await;
        assert_fail(&r, 90001, "Condition.");
    }
}

#[tokio::test]
async fn pushes_treat_empty_condition_members_as_absent() {
    let server = Server::start();
    tag_and_attr_accounts(&server).await;
    let push = |random: u32, extra: Value| {
        let mut body = json!({ "MsgRandom": random, "MsgBody": text_body("x") });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let accepted = [
        json!({ "Condition": { "AttrsAnd": { "city": "sz" }, "TagsOr": [] } }),
        json!({ "Condition": { "TagsOr": ["a"], "AttrsAnd": {} } }),
        json!({ "Condition": {}, "Audience": { "Tag": "a" } }),
        json!({ "Condition": { "TagsOr": [], "AttrsOr": {} }, "Audience": { "Tag": "a" } }),
    ];
    for (i, extra) in accepted.into_iter().enumerate() {
        let r = server
            .call(
                &PUSH_APP,
                "timpush/push",
                push(100 + i as u32, extra.clone()),
            )
            .await;
        assert_ok_for(&r, &extra.to_string());
    }
    let refused = [
        json!({ "Condition": { "TagsOr": ["a"], "AttrsAnd": { "city": "sz" } } }),
        json!({ "Condition": { "AttrsAnd": { "city": "sz" }, "TagsOr": ["a"] } }),
        json!({ "Condition": { "TagsOr": ["a"] }, "Audience": { "Tag": "a" } }),
    ];
    for (i, extra) in refused.into_iter().enumerate() {
        let r = server
            .call(&PUSH_APP, "timpush/push", push(200 + i as u32, extra))
            .await;
        assert_fail(&r, 90039, "");
        assert_eq!(r["TaskId"], "");
    }
}

/// The admin query of `app` without `contenttype` and `random`, then `extra`.
fn query(app: &TestApp, extra: &str) -> String {
    format!(
        "sdkappid={}&identifier={}&usersig={}{extra}",
        app.sdkappid,
        app.admin,
        sig(app, app.admin)
    )
}

#[tokio::test]
async fn contenttype_and_random_may_be_missing_but_never_wrong() {
    let server = Server::start();
    let accepted = [
        "",
        "&contenttype=json",
        "&contenttype=JSON",
        "&random=0",
        "&random=4294967295",
        "&random=12345&contenttype=json",
        "&contenttype=json&random=007",
    ];
    let refused = [
        ("&contenttype=xml", "contenttype must be json, got 'xml'"),
        ("&contenttype=", "contenttype must be json"),
        ("&contenttype=application/json", "contenttype must be json"),
        (
            "&random=abc",
            "random must be an integer from 0 to 4294967295, got 'abc'",
        ),
        ("&random=", "random must be an integer"),
        ("&random=-1", "random must be an integer"),
        ("&random=%2B1", "got '+1'"),
        ("&random=4294967296", "random must be an integer"),
        ("&random=1.5", "random must be an integer"),
        ("&contenttype=json&random=x", "random must be an integer"),
    ];
    let calls = [
        ("timpush/get_attr_name", json!({})),
        ("all_member_push/im_get_attr_name", json!({})),
        (
            "im_open_login_svc/account_check",
            json!({ "CheckItem": [{ "UserID": "nobody" }] }),
        ),
    ];
    for (path, body) in &calls {
        for extra in accepted {
            let r = server
                .call_with_query(path, &query(&APP, extra), body.clone())
                .await;
            assert_ok_for(&r, &format!("{path} with {extra:?}"));
        }
        for (extra, mentions) in refused {
            let r = server
                .call_with_query(path, &query(&APP, extra), body.clone())
                .await;
            assert_fail(&r, 60002, mentions);
        }
    }
    // The WebSocket endpoint reads the same query, and refuses before the upgrade.
    let url = format!(
        "{}/ws?sdkappid={}&identifier=someone&usersig={}&contenttype=xml",
        server.base,
        APP.sdkappid,
        sig(&APP, "someone")
    );
    let response = server.request(reqwest::Method::GET, &url, "").await;
    assert_eq!(response.status(), 401);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_fail(&body, 60002, "contenttype");
}
