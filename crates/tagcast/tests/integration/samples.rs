//! Wire compatibility: the spec's sample request of every endpoint, in both URL families, answered
//! with the spec sample's shape and values.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// The RegistrationID of the spec samples. It is 36 bytes, so it can never be an imported UserID
/// (≤ 32 bytes): every sample that names it reports it as an unknown account.
const REG_ID: &str = "379C2F0D-290D-47AE-94D1-919058C39C77";

const OK: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;

fn ok_envelope() -> Value {
    serde_json::from_str(OK).unwrap()
}

/// The field names of a response object, sorted.
fn keys(response: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = response
        .as_object()
        .expect("response is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Asserts an OK response carrying exactly `extra` fields besides the envelope.
#[track_caller]
fn assert_ok_with_fields(response: &Value, extra: &[&str]) {
    assert_ok(response);
    let mut expected = vec!["ActionStatus", "ErrorCode", "ErrorInfo"];
    expected.extend_from_slice(extra);
    expected.sort_unstable();
    assert_eq!(keys(response), expected, "{response}");
}

/// Asserts each `ErrorList` element has Tencent's fields with the right types.
#[track_caller]
fn assert_error_list_shape(response: &Value) {
    for item in response["ErrorList"].as_array().expect("ErrorList array") {
        assert!(item["To_Account"].is_string(), "{item}");
        assert!(item["ErrorCode"].is_u64(), "{item}");
        // Docs omit ErrorInfo in elements; when present it must be a string.
        assert!(item.get("ErrorInfo").is_none_or(Value::is_string), "{item}");
    }
}

/// Asserts an OK response carrying exactly `fields` besides the envelope, whose well-formed
/// `ErrorList` names exactly `account` as unknown (70107).
#[track_caller]
fn assert_only_unknown(response: &Value, fields: &[&str], account: &str) {
    assert_ok_with_fields(response, fields);
    assert_error_list_shape(response);
    assert_eq!(error_list(response), one_error(account, 70107));
}

/// `UserAttrs`/`UserTags` sorted by account: the spec says their order is not guaranteed.
fn by_account(list: &Value) -> Vec<Value> {
    let mut items = list.as_array().expect("array").clone();
    items.sort_by(|a, b| a["To_Account"].as_str().cmp(&b["To_Account"].as_str()));
    items
}

/// Runs the spec samples of §3.1–3.9 against one family. `new` selects `timpush/` paths
/// (with `AttrTypes` and `Replace`), otherwise the `all_member_push/im_` twins.
async fn run_tag_and_attr_samples(new: bool) {
    let server = Server::start();
    // Calls the `timpush/` path `p`, or its old-family twin.
    let call = |p: &'static str, body: Value| {
        let path = if new { p } else { old_family(p) };
        server.call(&APP, path, body)
    };
    import(&server, &APP, &["xiaoming", "xiaohong", "xiaohua"]).await;

    // §3.1 set_attr_name; AttrTypes is a new-family field.
    let mut body = json!({ "AttrNames": { "0": "sex", "1": "city", "2": "country" } });
    if new {
        body["AttrTypes"] = json!({ "0": 0, "1": 0, "2": 1 });
    }
    let r = call("timpush/set_attr_name", body).await;
    assert_eq!(r, ok_envelope());

    // §3.2 get_attr_name: AttrTypes only in the new family.
    let r = call("timpush/get_attr_name", json!({})).await;
    let mut expected = json!({
        "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
        "AttrNames": { "0": "sex", "1": "city", "2": "country" }
    });
    if new {
        expected["AttrTypes"] = json!({ "0": 0, "1": 0, "2": 1 });
    }
    assert_eq!(r, expected);

    // §3.3 set_attr, literally; the RegistrationID is not an account here.
    let body = json!({ "UserAttrs": [
        { "To_Account": "xiaoming", "Attrs": { "sex": "male", "city": "ShenZhen" } },
        { "To_Account": REG_ID, "Attrs": { "sex": "female" } } ] });
    let r = call("timpush/set_attr", body).await;
    assert_only_unknown(&r, &["ErrorList"], REG_ID);

    // §3.4 get_attr, literally.
    let body = json!({ "To_Account": ["Mary", "xiaoming", "xiaohua"] });
    let r = call("timpush/get_attr", body).await;
    assert_only_unknown(&r, &["ErrorList", "UserAttrs"], "Mary");
    assert_eq!(
        by_account(&r["UserAttrs"]),
        vec![
            json!({ "To_Account": "xiaohua", "Attrs": {} }),
            json!({ "To_Account": "xiaoming", "Attrs": { "sex": "male", "city": "ShenZhen" } }),
        ]
    );

    // §3.5 remove_attr, literally.
    let body = json!({ "UserAttrs": [ { "To_Account": "Mary", "Attrs": ["sex", "city"] },
                                      { "To_Account": "xiaoming", "Attrs": ["sex", "city"] } ] });
    let r = call("timpush/remove_attr", body).await;
    assert_ok_with_fields(&r, &["ErrorList"]);
    assert_eq!(error_list(&r), one_error("Mary", 70107));
    assert_eq!(attrs_of(&server, &APP, "xiaoming").await, json!({}));

    // §3.6 add_tag, literally (Replace is a new-family field).
    let mut body = json!({ "UserTags": [
        { "To_Account": "xiaoming", "Tags": ["GoldMember", "WeekPassUser"] },
        { "To_Account": REG_ID, "Tags": ["PlatinumMember"] } ] });
    if new {
        body["Replace"] = json!(0);
    }
    let r = call("timpush/add_tag", body).await;
    assert_only_unknown(&r, &["ErrorList"], REG_ID);
    let body = json!({ "UserTags": [
        { "To_Account": "xiaohong", "Tags": ["PlatinumMember", "MonthPassUser"] } ] });
    let r = call("timpush/add_tag", body).await;
    assert_eq!(r, ok_envelope());

    // §3.7 get_tag, literally: the response is the spec's sample response.
    let body = json!({ "To_Account": ["xiaoming", "xiaohong", "Mary"] });
    let r = call("timpush/get_tag", body).await;
    assert_only_unknown(&r, &["ErrorList", "UserTags"], "Mary");
    assert_eq!(
        by_account(&r["UserTags"]),
        vec![
            json!({ "To_Account": "xiaohong", "Tags": ["PlatinumMember", "MonthPassUser"] }),
            json!({ "To_Account": "xiaoming", "Tags": ["GoldMember", "WeekPassUser"] }),
        ]
    );

    // §3.8 remove_tag, literally.
    let body = json!({ "UserTags": [ { "To_Account": "xiaoming",
                                       "Tags": ["GoldMember", "WeekPassUser"] } ] });
    let r = call("timpush/remove_tag", body).await;
    assert_eq!(r, ok_envelope());
    assert_eq!(tags_of(&server, &APP, "xiaoming").await, json!([]));
    assert_eq!(
        tags_of(&server, &APP, "xiaohong").await,
        json!(["PlatinumMember", "MonthPassUser"])
    );

    // §3.9 clear_all_tags / im_remove_all_tags, literally.
    let body = json!({ "To_Account": ["xiaoming", "xiaohong"] });
    let r = call("timpush/clear_all_tags", body).await;
    assert_eq!(r, ok_envelope());
    assert_eq!(tags_of(&server, &APP, "xiaohong").await, json!([]));
}

#[tokio::test]
async fn timpush_samples_match_the_spec() {
    run_tag_and_attr_samples(true).await;
}

#[tokio::test]
async fn all_member_push_samples_match_the_spec() {
    run_tag_and_attr_samples(false).await;
}

#[tokio::test]
async fn account_samples_match_the_spec() {
    let server = Server::start();

    let r = server
        .call(
            &APP,
            "im_open_login_svc/account_import",
            json!({ "UserID": "test", "Nick": "test", "FaceUrl": "http://www.qq.com" }),
        )
        .await;
    assert_eq!(r, ok_envelope());

    let r = server
        .call(
            &APP,
            "im_open_login_svc/multiaccount_import",
            json!({ "Accounts": ["test1", "test2", "test3", "test4", "test5"] }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "FailAccounts": [] })
    );

    // FailAccounts lists exactly the ids that cannot be UserIDs; the others are imported.
    let long = "x".repeat(33);
    let r = server
        .call(
            &APP,
            "im_open_login_svc/multiaccount_import",
            json!({ "Accounts": ["test6", "", long, "test7"] }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
                "FailAccounts": ["", long] })
    );

    let r = server
        .call(
            &APP,
            "im_open_login_svc/account_check",
            json!({ "CheckItem": [ { "UserID": "test1" }, { "UserID": "UserID_2" },
                                   { "UserID": "test7" }, { "UserID": "test" } ] }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "ResultItem": [
            { "UserID": "test1", "ResultCode": 0, "ResultInfo": "", "AccountStatus": "Imported" },
            { "UserID": "UserID_2", "ResultCode": 0, "ResultInfo": "",
              "AccountStatus": "NotImported" },
            { "UserID": "test7", "ResultCode": 0, "ResultInfo": "", "AccountStatus": "Imported" },
            { "UserID": "test", "ResultCode": 0, "ResultInfo": "", "AccountStatus": "Imported" } ] })
    );

    let r = server
        .call(
            &APP,
            "im_open_login_svc/account_delete",
            json!({ "DeleteItem": [ { "UserID": "test1" }, { "UserID": "UserID_2" } ] }),
        )
        .await;
    assert_eq!(
        r,
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "ResultItem": [
            { "ResultCode": 0, "ResultInfo": "", "UserID": "test1" },
            { "ResultCode": 70107, "ResultInfo": "Err_TLS_PT_Open_Login_Account_Not_Exist",
              "UserID": "UserID_2" } ] })
    );

    let expected = [("test1", "NotImported"), ("test2", "Imported")];
    let r = assert_account_status(&server, &APP, &expected).await;
    assert_ok(&r);
}

/// Both families serve the same data: what one writes the other reads.
#[tokio::test]
async fn both_families_share_one_data_set() {
    let server = Server::start();
    import(&server, &APP, &["fam_a", "fam_b"]).await;

    name_typed_attrs(&server, &APP, json!({ "0": "level" }), json!({ "0": 0 })).await;
    let body = json!({ "AttrNames": { "1": "region" } });
    server
        .ok(&APP, "all_member_push/im_set_attr_name", body)
        .await;
    let r = server
        .call(&APP, "all_member_push/im_get_attr_name", json!({}))
        .await;
    assert_ok_with_fields(&r, &["AttrNames"]);
    assert_eq!(r["AttrNames"], json!({ "0": "level", "1": "region" }));
    let r = server.call(&APP, "timpush/get_attr_name", json!({})).await;
    assert_ok_with_fields(&r, &["AttrNames", "AttrTypes"]);
    assert_eq!(r["AttrTypes"], json!({ "0": 0, "1": 0 }));

    let body = tag_body("fam_a", &["old"]);
    server.ok(&APP, "all_member_push/im_add_tag", body).await;
    let body = with_replace(tag_body("fam_a", &["new"]), 0);
    server.ok(&APP, "timpush/add_tag", body).await;
    let body = accounts_body(&["fam_a"]);
    let r = server.call(&APP, "all_member_push/im_get_tag", body).await;
    assert_eq!(
        r["UserTags"],
        json!([{ "To_Account": "fam_a", "Tags": ["old", "new"] }])
    );

    let body = attr_body("fam_b", json!({ "level": "3" }));
    let r = server.call(&APP, "all_member_push/im_set_attr", body).await;
    assert_eq!(r, ok_envelope());
    assert_eq!(
        attrs_of(&server, &APP, "fam_b").await,
        json!({ "level": "3" })
    );
    let body = attr_body("fam_b", json!(["level"]));
    let r = server.call(&APP, "timpush/remove_attr", body).await;
    assert_eq!(r, ok_envelope());
    let body = accounts_body(&["fam_b"]);
    let r = server.call(&APP, "all_member_push/im_get_attr", body).await;
    assert_eq!(
        r["UserAttrs"],
        json!([{ "To_Account": "fam_b", "Attrs": {} }])
    );

    let body = accounts_body(&["fam_a"]);
    let r = server
        .call(&APP, "all_member_push/im_remove_all_tags", body)
        .await;
    assert_eq!(r, ok_envelope());
    assert_eq!(tags_of(&server, &APP, "fam_a").await, json!([]));
}

/// Every one of the 22 paths is served (none answers 60009) and answers `{}`-style bodies
/// with the envelope in the documented field order.
#[tokio::test]
async fn every_path_is_routed_and_answers_the_envelope_first() {
    let server = Server::start();
    let paths = all_api_paths();
    assert_eq!(paths.len(), 22);
    for path in paths {
        let response = server
            .request(Method::POST, &server.url(&APP, path), "{}")
            .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let text = response.text().await.unwrap();
        assert!(
            text.starts_with(r#"{"ActionStatus":"#),
            "{path}: envelope first: {text}"
        );
        let r: Value = serde_json::from_str(&text).unwrap();
        assert_ne!(r["ErrorCode"], 60009, "{path}: {r}");
        assert!(r["ErrorInfo"].is_string(), "{path}: {r}");
    }
}
