//! Bad request bodies: each is refused as a whole with the documented code and an ErrorInfo that
//! says what is wrong, nothing stored changes, and the server keeps serving.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// A server holding one account with a tag and an attribute, to prove bad input changes nothing.
struct Fixture {
    server: Server,
}

const KEEP: &str = "bad_input_keeper";

impl Fixture {
    async fn new() -> Fixture {
        let server = Server::start();
        import(&server, &APP, &[KEEP]).await;
        name_attrs(&server, &APP, json!({ "0": "city" })).await;
        add_tags(&server, &APP, KEEP, &["keep"]).await;
        set_attrs(&server, &APP, KEEP, json!({ "city": "Paris" })).await;
        Fixture { server }
    }

    /// POSTs `body` to `path` as APP's admin.
    async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Value {
        self.server
            .post_raw(&self.server.url(&APP, path), body.into())
            .await
    }

    /// Asserts the stored data is as `new` left it and that a normal call still succeeds.
    async fn assert_unchanged_and_serving(&self) {
        let server = &self.server;
        assert_eq!(tags_of(server, &APP, KEEP).await, json!(["keep"]));
        assert_eq!(
            attrs_of(server, &APP, KEEP).await,
            json!({ "city": "Paris" })
        );
        let r = server.call(&APP, "timpush/get_attr_name", json!({})).await;
        assert_eq!(r["AttrNames"], json!({ "0": "city" }), "{r}");
        let expected = [(KEEP, "Imported"), ("bad", "NotImported")];
        assert_account_status(server, &APP, &expected).await;
    }
}

/// The push-API code of a body that does not parse, by path.
fn parse_code(path: &str) -> u32 {
    if path.starts_with("im_open_login_svc/") {
        60003
    } else {
        90001
    }
}

/// Sends each (path, body, mention) and expects the path's parse-failure code; then checks nothing
/// changed. Every case is also sent to the old-family twin of a `timpush/` path.
async fn expect_parse_failures(cases: &[(&str, Vec<u8>, &str)]) {
    let f = Fixture::new().await;
    for (path, body, mentions) in cases {
        let mut paths = vec![*path];
        if path.starts_with("timpush/") {
            paths.push(old_family(path));
        }
        for path in paths {
            let r = f.post(path, body.clone()).await;
            assert_fail(&r, parse_code(path), mentions);
            assert!(
                r["ErrorInfo"]
                    .as_str()
                    .unwrap()
                    .starts_with("invalid request body"),
                "{path}: {r}"
            );
        }
    }
    f.assert_unchanged_and_serving().await;
}

fn case<'a>(path: &'a str, body: &str, mentions: &'a str) -> (&'a str, Vec<u8>, &'a str) {
    (path, body.as_bytes().to_vec(), mentions)
}

#[tokio::test]
async fn malformed_json_is_refused() {
    let keep_tag = format!(r#"{{"UserTags":[{{"To_Account":"{KEEP}","Tags":["x"]}}]}}"#);
    expect_parse_failures(&[
        case("timpush/add_tag", "{", "EOF"),
        case("timpush/add_tag", r#"{"UserTags":"#, "EOF"),
        case("timpush/add_tag", r#"{"UserTags":[}"#, "UserTags"),
        case("timpush/add_tag", "not json", "expected"),
        // Bodies are objects: serde alone would take a struct written as an array.
        case("timpush/get_attr_name", "[]", "expected a JSON object"),
        case(
            "timpush/add_tag",
            r#"[[["a",["b"]]]]"#,
            "expected a JSON object",
        ),
        case(
            "timpush/get_tag",
            "7",
            "expected a JSON object, got a number",
        ),
        case("timpush/add_tag", "{'UserTags':[]}", "key must be a string"),
        case("timpush/add_tag", r#"{"UserTags":[],}"#, "trailing comma"),
        case(
            "timpush/remove_tag",
            r#"{"UserTags":[{"To_Account":"a" "Tags":[]}]}"#,
            "UserTags[0]",
        ),
        // A complete value followed by more bytes is not one JSON document.
        case(
            "timpush/add_tag",
            &format!("{keep_tag} trailing"),
            "trailing characters",
        ),
        case(
            "timpush/add_tag",
            &format!("{keep_tag}{keep_tag}"),
            "trailing characters",
        ),
        case(
            "timpush/get_tag",
            r#"{"To_Account":[]}}"#,
            "trailing characters",
        ),
        case("timpush/get_attr_name", "{} {}", "trailing characters"),
        case(
            "im_open_login_svc/account_import",
            r#"{"UserID":"bad""#,
            "EOF",
        ),
        case(
            "im_open_login_svc/multiaccount_import",
            r#"{"Accounts":["bad"]} x"#,
            "trailing",
        ),
        case(
            "im_open_login_svc/account_check",
            "[",
            "expected a JSON object, got an array",
        ),
    ])
    .await;
}

/// PostgreSQL's text cannot hold U+0000, so no backend takes it: refused like a parse error,
/// before anything is written (and before it could fail the writes batched with it).
#[tokio::test]
async fn strings_holding_nul_are_refused() {
    let nul = "U+0000";
    expect_parse_failures(&[
        case(
            "timpush/add_tag",
            &format!(r#"{{"UserTags":[{{"To_Account":"{KEEP}","Tags":["a\u0000b"]}}]}}"#),
            nul,
        ),
        case(
            "timpush/set_attr",
            &format!(r#"{{"UserAttrs":[{{"To_Account":"{KEEP}","Attrs":{{"city":"\u0000"}}}}]}}"#),
            nul,
        ),
        case(
            "im_open_login_svc/account_import",
            r#"{"UserID":"x\u0000"}"#,
            nul,
        ),
    ])
    .await;
}

#[tokio::test]
async fn wrong_types_are_refused_naming_the_field_path() {
    expect_parse_failures(&[
        // Top level.
        case(
            "timpush/add_tag",
            r#""UserTags""#,
            "expected a JSON object, got a string",
        ),
        case(
            "timpush/add_tag",
            "42",
            "expected a JSON object, got a number",
        ),
        case(
            "timpush/get_attr_name",
            r#""x""#,
            "expected a JSON object, got a string",
        ),
        case(
            "im_open_login_svc/account_import",
            "true",
            "expected a JSON object, got a boolean",
        ),
        // Depth 1.
        case(
            "timpush/add_tag",
            r#"{"UserTags":{"To_Account":"a"}}"#,
            "at UserTags:",
        ),
        case(
            "timpush/add_tag",
            r#"{"Replace":"0","UserTags":[]}"#,
            "at Replace:",
        ),
        case(
            "timpush/get_tag",
            r#"{"To_Account":"bad"}"#,
            "at To_Account:",
        ),
        case(
            "timpush/clear_all_tags",
            r#"{"To_Account":{"0":"bad"}}"#,
            "at To_Account:",
        ),
        case("timpush/get_attr", r#"{"To_Account":7}"#, "at To_Account:"),
        case(
            "timpush/set_attr_name",
            r#"{"AttrNames":["sex"]}"#,
            "at AttrNames:",
        ),
        case(
            "timpush/set_attr",
            r#"{"UserAttrs":"bad"}"#,
            "at UserAttrs:",
        ),
        case(
            "im_open_login_svc/account_import",
            r#"{"UserID":123}"#,
            "at UserID:",
        ),
        case(
            "im_open_login_svc/account_import",
            r#"{"UserID":"bad","Nick":5}"#,
            "at Nick:",
        ),
        case(
            "im_open_login_svc/multiaccount_import",
            r#"{"Accounts":"bad"}"#,
            "at Accounts:",
        ),
        // Depth 2.
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":5,"Tags":[]}]}"#,
            "at UserTags[0].To_Account:",
        ),
        case(
            "timpush/get_tag",
            r#"{"To_Account":["bad",5]}"#,
            "at To_Account[1]:",
        ),
        case(
            "timpush/set_attr_name",
            r#"{"AttrNames":{"0":5}}"#,
            "at AttrNames.0:",
        ),
        case(
            "timpush/set_attr_name",
            r#"{"AttrNames":{"0":"a"},"AttrTypes":{"0":"1"}}"#,
            "at AttrTypes.0:",
        ),
        case(
            "timpush/remove_attr",
            r#"{"UserAttrs":[{"To_Account":"bad","Attrs":{"city":"x"}}]}"#,
            "at UserAttrs[0].Attrs:",
        ),
        case(
            "im_open_login_svc/multiaccount_import",
            r#"{"Accounts":["bad",1]}"#,
            "at Accounts[1]:",
        ),
        case(
            "im_open_login_svc/account_delete",
            r#"{"DeleteItem":[{"UserID":1}]}"#,
            "at DeleteItem[0].UserID:",
        ),
        // Depth 3.
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":"a","Tags":["x"]},{"To_Account":"b","Tags":["y",1]}]}"#,
            "at UserTags[1].Tags[1]:",
        ),
        case(
            "timpush/remove_tag",
            r#"{"UserTags":[{"To_Account":"a","Tags":[["x"]]}]}"#,
            "at UserTags[0].Tags[0]:",
        ),
        case(
            "timpush/set_attr",
            r#"{"UserAttrs":[{"To_Account":"a","Attrs":{"city":1}}]}"#,
            "at UserAttrs[0].Attrs.city:",
        ),
        case(
            "timpush/remove_attr",
            r#"{"UserAttrs":[{"To_Account":"a","Attrs":[true]}]}"#,
            "at UserAttrs[0].Attrs[0]:",
        ),
    ])
    .await;
}

#[tokio::test]
async fn null_fields_are_refused() {
    expect_parse_failures(&[
        case(
            "timpush/add_tag",
            "null",
            "expected a JSON object, got null",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":null}"#,
            "at UserTags: invalid type: null",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[null]}"#,
            "at UserTags[0]: invalid type: null",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":null,"Tags":[]}]}"#,
            "at UserTags[0].To_Account: invalid type: null",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":"a","Tags":null}]}"#,
            "at UserTags[0].Tags: invalid type: null",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":"a","Tags":[null]}]}"#,
            "at UserTags[0].Tags[0]: invalid type: null",
        ),
        case(
            "timpush/get_tag",
            r#"{"To_Account":null}"#,
            "at To_Account: invalid type: null",
        ),
        case(
            "timpush/get_tag",
            r#"{"To_Account":[null]}"#,
            "at To_Account[0]: invalid type: null",
        ),
        case(
            "timpush/set_attr_name",
            r#"{"AttrNames":null}"#,
            "at AttrNames: invalid type: null",
        ),
        case(
            "timpush/set_attr_name",
            r#"{"AttrNames":{"0":null}}"#,
            "at AttrNames.0: invalid type: null",
        ),
        case(
            "timpush/set_attr",
            r#"{"UserAttrs":[{"To_Account":"a","Attrs":{"city":null}}]}"#,
            "at UserAttrs[0].Attrs.city: invalid type: null",
        ),
        case(
            "timpush/get_attr_name",
            "null",
            "expected a JSON object, got null",
        ),
        case(
            "im_open_login_svc/account_import",
            r#"{"UserID":null}"#,
            "at UserID: invalid type: null",
        ),
        case(
            "im_open_login_svc/account_check",
            r#"{"CheckItem":[{"UserID":null}]}"#,
            "at CheckItem[0].UserID: invalid type: null",
        ),
    ])
    .await;
}

#[tokio::test]
async fn missing_fields_are_refused_naming_the_field() {
    expect_parse_failures(&[
        case("timpush/add_tag", "{}", "missing field `UserTags`"),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"Tags":["x"]}]}"#,
            "at UserTags[0]: missing field `To_Account`",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":"a"}]}"#,
            "at UserTags[0]: missing field `Tags`",
        ),
        case(
            "timpush/remove_tag",
            r#"{"Replace":0}"#,
            "missing field `UserTags`",
        ),
        case("timpush/clear_all_tags", "{}", "missing field `To_Account`"),
        case("timpush/get_tag", "{}", "missing field `To_Account`"),
        case("timpush/get_attr", "{}", "missing field `To_Account`"),
        case(
            "timpush/set_attr_name",
            r#"{"AttrTypes":{"0":0}}"#,
            "missing field `AttrNames`",
        ),
        case(
            "timpush/set_attr",
            r#"{"UserAttrs":[{"To_Account":"a"}]}"#,
            "at UserAttrs[0]: missing field `Attrs`",
        ),
        case(
            "timpush/remove_attr",
            r#"{"UserAttrs":[{"Attrs":["city"]}]}"#,
            "at UserAttrs[0]: missing field `To_Account`",
        ),
        case(
            "im_open_login_svc/account_import",
            r#"{"Nick":"n"}"#,
            "missing field `UserID`",
        ),
        case(
            "im_open_login_svc/multiaccount_import",
            "{}",
            "missing field `Accounts`",
        ),
        case(
            "im_open_login_svc/account_delete",
            r#"{"DeleteItem":[{}]}"#,
            "at DeleteItem[0]: missing field `UserID`",
        ),
        case(
            "im_open_login_svc/account_check",
            "{}",
            "missing field `CheckItem`",
        ),
    ])
    .await;
}

/// `Tags`/`Attrs` where `UserTags`/`UserAttrs` belong (the dobyte client's keys) and the reverse.
#[tokio::test]
async fn tags_versus_user_tags_confusion_is_refused() {
    expect_parse_failures(&[
        case(
            "timpush/add_tag",
            r#"{"Tags":[{"To_Account":"a","Tags":["x"]}]}"#,
            "missing field `UserTags`",
        ),
        case(
            "timpush/remove_tag",
            r#"{"Tags":[{"To_Account":"a","Tags":["x"]}]}"#,
            "missing field `UserTags`",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":[{"To_Account":"a","UserTags":["x"]}]}"#,
            "at UserTags[0]: missing field `Tags`",
        ),
        case(
            "timpush/add_tag",
            r#"{"UserTags":["a"]}"#,
            "at UserTags[0]: invalid type: string",
        ),
        case(
            "timpush/set_attr",
            r#"{"Attrs":[{"To_Account":"a","Attrs":{"city":"x"}}]}"#,
            "missing field `UserAttrs`",
        ),
        case(
            "timpush/remove_attr",
            r#"{"Attrs":[{"To_Account":"a","Attrs":["city"]}]}"#,
            "missing field `UserAttrs`",
        ),
        case(
            "timpush/get_tag",
            r#"{"UserTags":["a"]}"#,
            "missing field `To_Account`",
        ),
        case(
            "timpush/set_attr_name",
            r#"{"Attrs":{"0":"city"}}"#,
            "missing field `AttrNames`",
        ),
        case(
            "im_open_login_svc/account_import",
            r#"{"Identifier":"a"}"#,
            "missing field `UserID`",
        ),
    ])
    .await;
}

#[tokio::test]
async fn invalid_utf8_and_empty_bodies_are_refused() {
    let bad_utf8 = |prefix: &str, suffix: &str| {
        let mut body = prefix.as_bytes().to_vec();
        body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
        body.extend_from_slice(suffix.as_bytes());
        body
    };
    let cases = vec![
        (
            "timpush/add_tag",
            bad_utf8(r#"{"UserTags":[{"To_Account":""#, r#"","Tags":["x"]}]}"#),
            "at UserTags[0].To_Account:",
        ),
        (
            "timpush/add_tag",
            bad_utf8(r#"{"UserTags":[{"To_Account":"a","Tags":[""#, r#""]}]}"#),
            "at UserTags[0].Tags[0]:",
        ),
        ("timpush/get_tag", bad_utf8("", ""), "invalid request body"),
        (
            "timpush/set_attr",
            bad_utf8(
                r#"{"UserAttrs":[{"To_Account":"a","Attrs":{"city":""#,
                r#""}}]}"#,
            ),
            "at UserAttrs[0].Attrs.city:",
        ),
        (
            "im_open_login_svc/account_import",
            bad_utf8(r#"{"UserID":""#, r#""}"#),
            "at UserID:",
        ),
        // Empty bodies: even an API without fields takes `{}`.
        ("timpush/add_tag", Vec::new(), "EOF"),
        ("timpush/get_attr_name", Vec::new(), "EOF"),
        ("timpush/clear_all_tags", b"   \n".to_vec(), "EOF"),
        ("im_open_login_svc/account_check", Vec::new(), "EOF"),
        ("im_open_login_svc/multiaccount_import", Vec::new(), "EOF"),
    ];
    expect_parse_failures(&cases).await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_the_server_survives() {
    let depth = 100_000;
    let open = "[".repeat(depth);
    let open_objects = r#"{"a":"#.repeat(depth);
    expect_parse_failures(&[
        case(
            "timpush/add_tag",
            &open,
            "expected a JSON object, got an array",
        ),
        case(
            "timpush/add_tag",
            &format!(r#"{{"UserTags":{open}"#),
            "at UserTags[0]",
        ),
        case(
            "timpush/get_tag",
            &format!(r#"{{"To_Account":{open}"#),
            "at To_Account[0]",
        ),
        case(
            "timpush/set_attr",
            &format!(r#"{{"UserAttrs":[{{"To_Account":"a","Attrs":{open_objects}"#),
            "at UserAttrs[0].Attrs.a",
        ),
        // get_attr_name has no fields, but its body is parsed whole: too deep is refused.
        case(
            "timpush/get_attr_name",
            &format!(r#"{{"x":{open}"#),
            "recursion limit exceeded",
        ),
        case("im_open_login_svc/account_check", &open_objects, "EOF"),
    ])
    .await;

    // A deep but complete unknown field is skipped without recursion: still a valid request.
    let f = Fixture::new().await;
    let closed = format!(
        r#"{{"x":{open}{close},"To_Account":["{KEEP}"]}}"#,
        close = "]".repeat(depth)
    );
    let r = f.post("timpush/get_tag", closed).await;
    assert_ok(&r);
    assert_eq!(r["UserTags"][0]["Tags"], json!(["keep"]), "{r}");
    f.assert_unchanged_and_serving().await;
}

#[tokio::test]
async fn oversize_arrays_are_refused_whole() {
    let f = Fixture::new().await;
    let server = &f.server;
    let mut accounts: Vec<String> = (0..100).map(|i| format!("big_{i}")).collect();
    accounts.push(KEEP.to_string());
    let accounts = as_strs(&accounts);
    for (path, body, _) in every_account_api_body(&accounts) {
        for path in both_families(path) {
            let r = server.call(&APP, path, body.clone()).await;
            assert_fail(&r, 90018, "101 accounts");
        }
    }
    let body = json!({ "Accounts": accounts });
    let r = server
        .call(&APP, "im_open_login_svc/multiaccount_import", body)
        .await;
    assert_fail(&r, 70402, "101 entries");
    // Eleven tags for one account in one add (the default limit is 10).
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let r = add_tags(server, &APP, KEEP, &as_strs(&eleven)).await;
    assert_eq!(error_list(&r), one_error(KEEP, 90032));
    f.assert_unchanged_and_serving().await;
}

#[tokio::test]
async fn over_long_strings_are_refused_per_their_limit() {
    let f = Fixture::new().await;
    let server = &f.server;
    let huge = "x".repeat(10_000);
    // An over-long account name is just an account that does not exist.
    let r = add_tags(server, &APP, &huge, &["x"]).await;
    assert_eq!(error_list(&r), one_error(&huge, 70107));
    // Refusals of the one account.
    let body = tag_body(KEEP, &["keep2", &huge]);
    let r = server.call(&APP, "timpush/add_tag", body).await;
    assert_eq!(error_list(&r), one_error(KEEP, 90020));
    assert!(error_info_of(&r, KEEP).contains("10000 bytes"), "{r}");
    let body = tag_body(KEEP, &["keep", &huge]);
    let r = server.call(&APP, "timpush/remove_tag", body).await;
    assert_eq!(error_list(&r), one_error(KEEP, 90020));
    let body = attr_body(KEEP, json!({ "city": huge }));
    let r = server.call(&APP, "timpush/set_attr", body).await;
    assert_eq!(error_list(&r), one_error(KEEP, 90033));
    // Each refusal of the whole request: (path, body, code, what its ErrorInfo mentions).
    let refusals = [
        (
            "timpush/set_attr_name",
            json!({ "AttrNames": { "1": huge } }),
            90033,
            "10000",
        ),
        (
            "im_open_login_svc/account_import",
            json!({ "UserID": huge }),
            70402,
            "10000",
        ),
        (
            "im_open_login_svc/account_import",
            json!({ "UserID": "bad", "Nick": huge }),
            40601,
            "Nick",
        ),
    ];
    for (path, body, code, mentions) in refusals {
        let r = server.call(&APP, path, body).await;
        assert_fail(&r, code, mentions);
    }
    let body = json!({ "Accounts": [huge] });
    let r = server
        .call(&APP, "im_open_login_svc/multiaccount_import", body)
        .await;
    assert_eq!(r["FailAccounts"], json!([huge]));
    f.assert_unchanged_and_serving().await;
}

#[tokio::test]
async fn a_body_over_the_apps_limit_is_60002() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["body_a"]).await;
    // A valid body padded with whitespace to exactly `len` bytes.
    let body = |len: usize| {
        let json = r#"{"UserTags":[{"To_Account":"body_a","Tags":["x"]}]}"#;
        let mut bytes = json.as_bytes().to_vec();
        bytes.resize(len, b' ');
        bytes
    };
    for len in [2049, 4096, 65_536] {
        let r = server
            .post_raw(&server.url(&TIGHT_APP, "timpush/add_tag"), body(len))
            .await;
        assert_fail(&r, 60002, "2048 bytes");
        assert_eq!(tags_of(&server, &TIGHT_APP, "body_a").await, json!([]));
    }
    let r = server
        .post_raw(
            &server.url(&TIGHT_APP, "im_open_login_svc/account_check"),
            vec![b' '; 3000],
        )
        .await;
    assert_fail(&r, 60002, "2048 bytes");
    // The same size is fine for an app with the default (1 MiB) limit.
    let r = server
        .post_raw(
            &server.url(&APP, "timpush/get_tag"),
            format!("{:<4096}", r#"{"To_Account":[]}"#).into_bytes(),
        )
        .await;
    assert_ok(&r);
    // Exactly at the limit is accepted.
    let r = server
        .post_raw(&server.url(&TIGHT_APP, "timpush/add_tag"), body(2048))
        .await;
    assert_ok(&r);
    assert_eq!(tags_of(&server, &TIGHT_APP, "body_a").await, json!(["x"]));
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = Server::start();
    assert_eq!(server.get_text("/healthz").await.trim(), "ok");
}

#[tokio::test]
async fn metrics_count_requests_by_api_and_code() {
    let server = Server::start();
    import(&server, &APP, &["metric_a"]).await;
    for _ in 0..2 {
        add_tags(&server, &APP, "metric_a", &["m"]).await;
    }
    let r = server
        .post_raw(
            &server.url(&APP, "all_member_push/im_get_tag"),
            b"{".to_vec(),
        )
        .await;
    assert_fail(&r, 90001, "EOF");
    let r = server
        .post_raw(&server.url(&APP, "timpush/no_such_api"), b"{}".to_vec())
        .await;
    assert_fail(&r, 60009, "timpush/no_such_api");

    let text = server.get_text("/metrics").await;
    for line in [
        r#"tagcast_requests_total{api="timpush/add_tag",code="0"} 2"#,
        r#"tagcast_requests_total{api="all_member_push/im_get_tag",code="90001"} 1"#,
        r#"tagcast_requests_total{api="im_open_login_svc/multiaccount_import",code="0"} 1"#,
        r#"tagcast_requests_total{api="unknown",code="60009"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    // Bad input never creates a label per path: unknown paths share one label.
    assert!(!text.contains("timpush/no_such_api"), "{text}");
}

/// A request refused before its body was read (bad UserSig, unknown path, body over the limit)
/// must not poison the client's pooled HTTP/1 connection for the next request.
#[tokio::test]
async fn refused_bodies_leave_pooled_connections_usable() {
    let server = Server::start();
    import(&server, &APP, &["conn_a"]).await;
    let no_sig = server.url_with_query("timpush/get_tag", &query_with_sig(&APP, APP.admin, ""));
    let cases = [
        (no_sig.clone(), 70002),
        (server.url(&APP, "timpush/nope"), 60009),
        (server.url(&TIGHT_APP, "timpush/get_tag"), 60002),
    ];
    for size in [3_000, 50_000, 200_000] {
        let mut body = br#"{"To_Account":["conn_a"]}"#.to_vec();
        body.resize(size, b' ');
        for (url, code) in &cases {
            let response = server.request(Method::POST, url, body.clone()).await;
            // Either the server read the whole body, or it says it will close the connection.
            let closes = response
                .headers()
                .get("connection")
                .is_some_and(|v| v == "close");
            let drained = size <= 64 * 1024 && *code != 60002;
            assert_eq!(closes, !drained, "{size} bytes, {code}");
            let r: Value = response.json().await.expect("JSON body");
            assert_eq!(r["ErrorCode"], *code, "{r}");
            // The next request, on the client's pool, works.
            assert_eq!(tags_of(&server, &APP, "conn_a").await, json!([]));
        }
    }
}
