//! Every push validation error, quota and revoke code, and the audience_count extension checked
//! against a model over random tag sets.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::common::*;
use crate::ws::*;

fn body_with(extra: Value) -> Value {
    let mut body = json!({ "MsgRandom": 1, "MsgBody": text_body("x") });
    for (k, v) in extra.as_object().expect("an object").clone() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(&k);
        } else {
            body[k] = v;
        }
    }
    body
}

#[tokio::test]
async fn every_push_validation_error_has_its_code() {
    let server = Server::start();
    name_attrs(&server, &PUSH_APP, json!({ "0": "city" })).await;
    let long_tag = "t".repeat(51);
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let cases: Vec<(&str, Value, u32, &str)> = vec![
        (
            "timpush/push",
            json!({ "MsgRandom": null }),
            90005,
            "MsgRandom",
        ),
        (
            "timpush/push",
            json!({ "MsgRandom": "7" }),
            90005,
            "MsgRandom",
        ),
        (
            "timpush/push",
            json!({ "MsgRandom": -1 }),
            90005,
            "MsgRandom",
        ),
        (
            "timpush/push",
            json!({ "MsgRandom": 4_294_967_296u64 }),
            90005,
            "MsgRandom",
        ),
        (
            "timpush/push",
            json!({ "MsgBody": { "MsgType": "TIMTextElem" } }),
            90007,
            "array",
        ),
        (
            "timpush/push",
            json!({ "MsgBody": [] }),
            90002,
            "no element",
        ),
        (
            "timpush/push",
            json!({ "MsgBody": [{ "MsgType": "Nope", "MsgContent": {} }] }),
            90002,
            "MsgBody[0].MsgType",
        ),
        (
            "timpush/push",
            json!({ "MsgBody": [{ "MsgType": "TIMTextElem" }] }),
            90010,
            "MsgBody[0].MsgContent",
        ),
        (
            "timpush/push",
            json!({ "MsgBody": null }),
            90002,
            "OfflinePushInfo",
        ),
        (
            "all_member_push/im_push",
            json!({ "MsgBody": null, "OfflinePushInfo": {} }),
            90002,
            "MsgBody is required",
        ),
        (
            "timpush/push",
            json!({ "MsgBody": text_body(&"x".repeat(9000)) }),
            80002,
            "MsgBody",
        ),
        (
            "all_member_push/im_push",
            json!({ "MsgLifeTime": 604_801 }),
            90026,
            "MsgLifeTime",
        ),
        (
            "all_member_push/im_push",
            json!({ "MsgLifeTime": -5 }),
            90026,
            "MsgLifeTime",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsAnd": eleven } }),
            90032,
            "Condition.TagsAnd",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsNot": [""] } }),
            90040,
            "Condition.TagsNot",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsOr": [long_tag] } }),
            90020,
            "Condition.TagsOr",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsAnd": ["a"], "TagsOr": ["a", "b"] } }),
            90022,
            "'a'",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsAnd": ["a"], "AttrsOr": { "city": "sz" } } }),
            90039,
            "together",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsNot": ["a"], "AttrsAnd": { "city": "sz" } } }),
            90039,
            "together",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "AttrsAnd": { "planet": "mars" } } }),
            90033,
            "planet",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsAnd": "a" } }),
            90001,
            "Condition.TagsAnd",
        ),
        (
            "timpush/push",
            json!({ "Condition": [] }),
            90001,
            "Condition",
        ),
        (
            "timpush/push",
            json!({ "Condition": { "TagsOr": ["a"] }, "Audience": { "All": true } }),
            90039,
            "together",
        ),
        (
            "timpush/push",
            json!({ "Audience": { "Foo": 1 } }),
            90001,
            "Audience",
        ),
        (
            "timpush/push",
            json!({ "Audience": { "And": [{ "Not": 5 }] } }),
            90001,
            "Audience.And[0].Not",
        ),
        (
            "timpush/push",
            json!({ "Audience": { "Attr": "planet", "Eq": "x" } }),
            90033,
            "planet",
        ),
        (
            "timpush/push",
            json!({ "Audience": { "Attr": "city", "Gt": "x" } }),
            90001,
            "Audience.Gt",
        ),
        (
            "timpush/push",
            json!({ "Audience": { "Tag": "" } }),
            90040,
            "Audience.Tag",
        ),
        (
            "timpush/push",
            json!({ "DataId": "d".repeat(65) }),
            90057,
            "DataId",
        ),
        (
            "timpush/push",
            json!({ "OfflinePushInfo": "x" }),
            90001,
            "OfflinePushInfo",
        ),
    ];
    for (path, extra, code, mentions) in cases {
        let r = server.call(&PUSH_APP, path, body_with(extra.clone())).await;
        assert_fail(&r, code, mentions);
        assert_eq!(
            r["TaskId"], "",
            "{path} {extra}: a failed push has an empty TaskId"
        );
    }
    let mut deep = json!({ "Tag": "a" });
    for _ in 0..20 {
        deep = json!({ "Not": deep });
    }
    let r = server
        .call(
            &PUSH_APP,
            "timpush/push",
            body_with(json!({ "Audience": deep })),
        )
        .await;
    assert_fail(&r, 90001, "deeper");
    let stats = server
        .ok(
            &PUSH_APP,
            "timpush/all_member_push_statistics",
            json!({ "StartTime": 0, "EndTime": 3600 }),
        )
        .await;
    assert_eq!(
        stats["Results"],
        json!([]),
        "no refused push created a task"
    );
}

#[tokio::test]
async fn a_push_body_over_10_kb_is_90056() {
    let server = Server::start();
    let body = body_with(json!({ "OfflinePushInfo": { "Ext": "e".repeat(11 * 1024) } }));
    let r = server.call(&PUSH_APP, "timpush/push", body).await;
    assert_fail(&r, 90056, "10240");
    marker(&server, &PUSH_APP, 2).await;
}

#[tokio::test]
async fn quotas_and_feature_switch() {
    let server = Server::start();
    let r = server
        .call(&NO_PUSH_APP, "timpush/push", body_with(json!({})))
        .await;
    assert_fail(&r, 90045, "not enabled");

    let first = marker(&server, &QUOTA_APP, 1).await;
    marker(&server, &QUOTA_APP, 2).await;
    let r = server
        .call(
            &QUOTA_APP,
            "timpush/push",
            body_with(json!({ "MsgRandom": 3 })),
        )
        .await;
    assert_fail(&r, 90047, "daily quota of 2");
    assert_eq!(
        marker(&server, &QUOTA_APP, 1).await,
        first,
        "a retry is answered past the quota"
    );

    // TIGHT_APP keeps Tencent's default: pushes at least 1 s apart.
    marker(&server, &TIGHT_APP, 1).await;
    let r = server
        .call(
            &TIGHT_APP,
            "timpush/push",
            body_with(json!({ "MsgRandom": 2 })),
        )
        .await;
    assert_fail(&r, 90024, "1000 ms");
}

#[tokio::test]
async fn every_batch_error_has_its_code() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["b_ok"]).await;
    let base = json!({
        "From_Account": "administrator",
        "To_Account": ["b_ok"],
        "MsgRandom": 3,
        "OfflinePushInfo": { "Title": "t" },
    });
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let cases: [(Value, u32, &str); 7] = [
        (json!({ "From_Account": null }), 90001, "From_Account"),
        (json!({ "To_Account": [] }), 90001, "To_Account has 0"),
        (json!({ "To_Account": many }), 90001, "To_Account has 501"),
        (json!({ "To_Account": "b_ok" }), 90001, "To_Account"),
        (
            json!({ "MsgRandom": "x" }),
            90001,
            "Invalid format of MsgRandom",
        ),
        (json!({ "OfflinePushInfo": null }), 90001, "OfflinePushInfo"),
        (json!({ "DataId": "d".repeat(65) }), 90057, "DataId"),
    ];
    for (change, code, mentions) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = server.call(&PUSH_APP, "timpush/batch", body).await;
        assert_fail(&r, code, mentions);
        assert_eq!(r["TaskId"], "");
    }
    server.ok(&PUSH_APP, "timpush/batch", base).await;
}

#[tokio::test]
async fn every_revoke_error_has_its_code() {
    let server = Server::start();
    let revoke = |app: &'static TestApp, body: Value| {
        let server = &server;
        async move { server.call(app, "timpush/revoke", body).await }
    };
    let r = revoke(&PUSH_APP, json!({ "TaskId": "nonsense" })).await;
    assert_fail(&r, 90049, "nonsense");
    let r = revoke(&PUSH_APP, json!({})).await;
    assert_fail(&r, 90001, "TaskId");
    let other = marker(&server, &QUOTA_APP, 7).await;
    let r = revoke(&PUSH_APP, json!({ "TaskId": other })).await;
    assert_fail(&r, 90049, &other);
    // QUOTA_APP's recall window is 0 s: every task is already too old.
    let r = revoke(&QUOTA_APP, json!({ "TaskId": other })).await;
    assert_fail(&r, 90052, "window");

    let online_only = server
        .ok(
            &PUSH_APP,
            "all_member_push/im_push",
            json!({ "MsgRandom": 8, "MsgBody": text_body("x") }),
        )
        .await["TaskId"]
        .clone();
    let r = revoke(&PUSH_APP, json!({ "TaskId": online_only })).await;
    assert_fail(&r, 90053, "OfflinePushInfo");
    let with_info = json!({ "TaskId": online_only, "OfflinePushInfo": { "Title": "withdrawn" } });
    assert_ok(&revoke(&PUSH_APP, with_info.clone()).await);
    assert_fail(&revoke(&PUSH_APP, with_info).await, 90050, "already");

    // APP keeps Tencent's default of one recall per second.
    let batch = |n: u32| json!({ "From_Account": "a", "To_Account": ["x"], "MsgRandom": n, "OfflinePushInfo": {} });
    let t1 = server.ok(&APP, "timpush/batch", batch(1)).await["TaskId"].clone();
    let t2 = server.ok(&APP, "timpush/batch", batch(2)).await["TaskId"].clone();
    assert_ok(&revoke(&APP, json!({ "TaskId": t1 })).await);
    assert_fail(
        &revoke(&APP, json!({ "TaskId": t2 })).await,
        90051,
        "per second",
    );
}

/// Tags of the random accounts of one case.
const POOL: [&str; 4] = ["pa", "pb", "pc", "pd"];

#[derive(Debug, Clone)]
enum Selector {
    Condition(Vec<usize>, Vec<usize>, Vec<usize>),
    Audience(Value),
}

fn tag_set() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 0..3)
}

fn expr() -> impl Strategy<Value = Value> {
    let leaf = (0..POOL.len()).prop_map(|t| json!({ "Tag": POOL[t] }));
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({ "And": v })),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({ "Or": v })),
            inner.prop_map(|e| json!({ "Not": e })),
        ]
    })
}

fn selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        (tag_set(), tag_set(), tag_set()).prop_map(|(and, or, not)| {
            let or = or.into_iter().filter(|t| !and.contains(t)).collect();
            Selector::Condition(and, or, not)
        }),
        expr().prop_map(Selector::Audience),
    ]
}

fn model(selector: &Selector, tags: &BTreeSet<usize>) -> bool {
    match selector {
        Selector::Condition(and, or, not) => {
            and.iter().all(|t| tags.contains(t))
                && (or.is_empty() || or.iter().any(|t| tags.contains(t)))
                && !not.iter().any(|t| tags.contains(t))
        }
        Selector::Audience(expr) => eval(expr, tags),
    }
}

fn eval(expr: &Value, tags: &BTreeSet<usize>) -> bool {
    if let Some(tag) = expr["Tag"].as_str() {
        return tags.contains(&POOL.iter().position(|p| *p == tag).unwrap());
    }
    if let Some(parts) = expr["And"].as_array() {
        return parts.iter().all(|p| eval(p, tags));
    }
    if let Some(parts) = expr["Or"].as_array() {
        return parts.iter().any(|p| eval(p, tags));
    }
    !eval(&expr["Not"], tags)
}

/// The request body selecting `selector` among the accounts of case `case` only: every account
/// of the case has the case's tag, and the selector is ANDed with it.
fn count_body(case: usize, selector: &Selector) -> Value {
    let case_tag = format!("case{case}");
    let names = |ts: &[usize]| ts.iter().map(|t| POOL[*t]).collect::<Vec<_>>();
    match selector {
        Selector::Condition(and, or, not) => {
            let mut and = names(and);
            and.push(&case_tag);
            json!({ "Condition": { "TagsAnd": and, "TagsOr": names(or), "TagsNot": names(not) } })
        }
        Selector::Audience(expr) => json!({ "Audience": { "And": [{ "Tag": case_tag }, expr] } }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn audience_counts_match_a_model_of_tencent_conditions_and_extension_expressions() {
    let server = Server::start();
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config::with_cases(24));
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (
        proptest::collection::vec(tag_set(), 1..8),
        proptest::collection::vec(selector(), 1..5),
    );
    let result = runner.run(&strategy, |(accounts, selectors)| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let names: Vec<String> = (0..accounts.len())
                    .map(|i| format!("c{case}_{i}"))
                    .collect();
                import(&server, &PUSH_APP, &as_strs(&names)).await;
                for (name, tags) in names.iter().zip(&accounts) {
                    let mut tags: Vec<String> = tags.iter().map(|t| POOL[*t].to_string()).collect();
                    tags.push(format!("case{case}"));
                    add_tags(&server, &PUSH_APP, name, &as_strs(&tags)).await;
                }
                for selector in &selectors {
                    let expected = accounts
                        .iter()
                        .filter(|tags| model(selector, &tags.iter().copied().collect()))
                        .count();
                    let r = server
                        .ok(
                            &PUSH_APP,
                            "tagcast/audience_count",
                            count_body(case, selector),
                        )
                        .await;
                    assert_eq!(r["Count"], expected, "{selector:?} over {accounts:?}");
                }
            })
        });
        Ok(())
    });
    result.unwrap();
}
