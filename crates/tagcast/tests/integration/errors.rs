//! Every documented error code the tag, attribute and account APIs return, with an ErrorInfo that
//! names the problem, and proof that a refused request changed nothing. (UserSig and query
//! codes are in `auth.rs`; body-parsing codes in `bad_input.rs`.)

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn non_post_methods_are_60008_on_every_path() {
    let server = Server::start();
    for path in all_api_paths() {
        let r = server
            .send_json(Method::GET, &server.url(&APP, path), "{}")
            .await;
        assert_fail(&r, 60008, "GET");
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let url = server.url(&APP, "timpush/add_tag");
        let r = server.send_json(method.clone(), &url, "{}").await;
        assert_fail(&r, 60008, method.as_str());
    }
}

#[tokio::test]
async fn unknown_paths_are_60009() {
    let server = Server::start();
    let query = admin_query(&APP);
    for path in [
        "/v4/timpush/normal_push_statistics",
        "/v4/timpush/add_sched_task",
        "/v4/timpush/ADD_TAG",
        "/v4/timpush/add_tag/",
        "/v4/timpush/im_add_tag",
        "/v4/all_member_push/add_tag",
        "/v4/im_open_login_svc/account_import/x",
        "/v4/",
        "/v4",
        "/v3/timpush/add_tag",
        "/timpush/add_tag",
        "/",
        "/foo",
    ] {
        let url = format!("{}{path}?{query}", server.base);
        let r = server.post_raw(&url, b"{}".to_vec()).await;
        assert_fail(&r, 60009, path);
        // The path is checked before the method.
        let r = server.send_json(Method::GET, &url, "{}").await;
        assert_fail(&r, 60009, path);
    }
}

#[tokio::test]
async fn more_accounts_than_the_limit_fail_the_whole_request_with_90018() {
    let server = Server::start();
    let four = ["many_a", "many_b", "many_c", "many_d"];
    import(&server, &TIGHT_APP, &four).await;
    name_attrs(&server, &TIGHT_APP, json!({ "0": "city" })).await;
    let mut requests = every_account_api_body(&four);
    let replace = with_replace(tags_body_for(&four, &["t"]), 1);
    requests.insert(1, ("timpush/add_tag", replace, "UserTags"));
    for (new_path, body, field) in &requests {
        for path in both_families(new_path) {
            let r = server.call(&TIGHT_APP, path, body.clone()).await;
            assert_fail(&r, 90018, field);
            assert_fail(&r, 90018, "limit of 3");
        }
    }
    // Nothing of the refused writes was stored.
    for account in four {
        assert_eq!(tags_of(&server, &TIGHT_APP, account).await, json!([]));
        assert_eq!(attrs_of(&server, &TIGHT_APP, account).await, json!({}));
    }
    // Exactly the limit is fine.
    let body = tags_body_for(&four[..3], &["t"]);
    server.ok(&TIGHT_APP, "timpush/add_tag", body).await;
    assert_eq!(tags_of(&server, &TIGHT_APP, "many_c").await, json!(["t"]));
    assert_eq!(tags_of(&server, &TIGHT_APP, "many_d").await, json!([]));
}

#[tokio::test]
async fn unknown_accounts_are_70107_in_error_list_of_every_account_api() {
    let server = Server::start();
    import(&server, &APP, &["known_1"]).await;
    name_attrs(&server, &APP, json!({ "0": "city" })).await;
    let both = ["ghost_1", "known_1"];
    let requests = [
        ("timpush/add_tag", tags_body_for(&both, &["a"])),
        ("timpush/remove_tag", tags_body_for(&both, &["zz"])),
        ("timpush/clear_all_tags", accounts_body(&both)),
        ("timpush/get_tag", accounts_body(&both)),
        (
            "timpush/set_attr",
            json!({ "UserAttrs": [ { "To_Account": "ghost_1", "Attrs": { "city": "x" } },
                                   { "To_Account": "known_1", "Attrs": { "city": "y" } } ] }),
        ),
        ("timpush/get_attr", accounts_body(&both)),
        (
            "timpush/remove_attr",
            attrs_body_for(&both, json!(["city"])),
        ),
    ];
    for (new_path, body) in &requests {
        for path in both_families(new_path) {
            let r = server.call(&APP, path, body.clone()).await;
            assert_item_error(&r, path, "ghost_1", 70107, &["ghost_1"]);
        }
    }
    // The known account of the same requests was served.
    let r = server
        .call(&APP, "timpush/add_tag", tags_body_for(&both, &["b"]))
        .await;
    assert_eq!(error_list(&r), one_error("ghost_1", 70107));
    assert_eq!(tags_of(&server, &APP, "known_1").await, json!(["b"]));
    // get_tag and get_attr do not invent an entry for the unknown account.
    let r = server
        .call(&APP, "timpush/get_tag", accounts_body(&["ghost_1"]))
        .await;
    assert_eq!(r["UserTags"], json!([]));
    let r = server
        .call(&APP, "timpush/get_attr", accounts_body(&["ghost_1"]))
        .await;
    assert_eq!(r["UserAttrs"], json!([]));
}

#[tokio::test]
async fn too_many_tags_in_one_add_is_90032_for_that_account_only() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["per_add_a", "per_add_b"]).await;
    let body = json!({ "UserTags": [
        { "To_Account": "per_add_a", "Tags": ["t1", "t2", "t3", "t4"] },
        { "To_Account": "per_add_b", "Tags": ["ok"] } ] });
    for path in both_families("timpush/add_tag") {
        let r = server.call(&TIGHT_APP, path, body.clone()).await;
        assert_item_error(&r, path, "per_add_a", 90032, &["limit of 3"]);
    }
    assert_eq!(tags_of(&server, &TIGHT_APP, "per_add_a").await, json!([]));
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_add_b").await,
        json!(["ok"])
    );

    // Replace=1 has its own, larger, per-request limit (4).
    let four_tags = ["t1", "t2", "t3", "t4"];
    let body = with_replace(tag_body("per_add_a", &four_tags), 1);
    let r = server.call(&TIGHT_APP, "timpush/add_tag", body).await;
    assert_no_error_list(&r);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_add_a").await,
        json!(four_tags)
    );
    let r = server
        .call(
            &TIGHT_APP,
            "timpush/add_tag",
            json!({ "Replace": 1, "UserTags": [
                { "To_Account": "per_add_a", "Tags": ["r1", "r2", "r3", "r4", "r5"] },
                { "To_Account": "per_add_b", "Tags": ["r1"] } ] }),
        )
        .await;
    assert_item_error(&r, "Replace", "per_add_a", 90032, &["limit of 4"]);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_add_a").await,
        json!(four_tags)
    );
    // Replace overwrote b's tags.
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_add_b").await,
        json!(["r1"])
    );
}

#[tokio::test]
async fn an_account_over_its_tag_limit_is_90032() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["per_acc"]).await;
    let add = |tags: &[&str]| server.call(&TIGHT_APP, "timpush/add_tag", tag_body("per_acc", tags));
    assert_no_error_list(&add(&["a", "b", "c"]).await);
    // 3 + 3 = 6 > 5.
    let r = add(&["d", "e", "f"]).await;
    assert_item_error(&r, "d e f", "per_acc", 90032, &["6 tags", "limit of 5"]);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_acc").await,
        json!(["a", "b", "c"])
    );
    // Tags already held do not count twice: re-adding them plus two new ones reaches 5.
    assert_no_error_list(&add(&["a", "d", "e"]).await);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_acc").await,
        json!(["a", "b", "c", "d", "e"])
    );
    let r = server
        .call(
            &TIGHT_APP,
            "all_member_push/im_add_tag",
            tag_body("per_acc", &["f"]),
        )
        .await;
    assert_eq!(error_list(&r), one_error("per_acc", 90032));
    // Re-adding a held tag at the limit is still a no-op success.
    assert_no_error_list(&add(&["e"]).await);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "per_acc").await,
        json!(["a", "b", "c", "d", "e"])
    );
}

#[tokio::test]
async fn an_app_over_its_distinct_tag_limit_is_90032() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["app_a", "app_b", "app_c", "app_d"]).await;
    let add = |account: &str, tags: &[&str]| {
        server.call(&TIGHT_APP, "timpush/add_tag", tag_body(account, tags))
    };
    assert_no_error_list(&add("app_a", &["a1", "a2", "a3"]).await);
    assert_no_error_list(&add("app_b", &["b1", "b2", "b3"]).await);
    // 6 distinct tags; 3 more would make 9 > 8.
    let r = add("app_c", &["c1", "c2", "c3"]).await;
    assert_item_error(&r, "c1 c2 c3", "app_c", 90032, &["8 distinct tags"]);
    assert_eq!(tags_of(&server, &TIGHT_APP, "app_c").await, json!([]));
    // Existing tags cost nothing; two new ones reach exactly 8.
    assert_no_error_list(&add("app_c", &["a1", "c1", "c2"]).await);
    let r = add("app_d", &["d1"]).await;
    assert_eq!(error_list(&r), one_error("app_d", 90032));
    assert_no_error_list(&add("app_d", &["b3", "a1"]).await);
    // Clearing app_b frees b1 and b2 (b3 is still held by app_d); then d1 fits.
    server
        .ok(
            &TIGHT_APP,
            "timpush/clear_all_tags",
            accounts_body(&["app_b"]),
        )
        .await;
    assert_no_error_list(&add("app_d", &["d1", "d2"]).await);
    assert_eq!(
        tags_of(&server, &TIGHT_APP, "app_d").await,
        json!(["b3", "a1", "d1", "d2"])
    );
}

#[tokio::test]
async fn empty_and_over_long_tags_are_90040_and_90020() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["len_a", "len_b"]).await;
    let cases = [
        (json!(["ok", ""]), 90040, "empty"),
        (json!(["abcdefghijk"]), 90020, "11 bytes"),
        // Bytes, not characters: 4 characters, 12 bytes.
        (json!(["标签标签"]), 90020, "12 bytes"),
    ];
    for path in both_families("timpush/add_tag") {
        for (tags, code, mentions) in &cases {
            let r = server
                .call(
                    &TIGHT_APP,
                    path,
                    json!({ "UserTags": [ { "To_Account": "len_a", "Tags": tags },
                                          { "To_Account": "len_b", "Tags": ["fine"] } ] }),
                )
                .await;
            let case = format!("{path} {tags}");
            assert_item_error(&r, &case, "len_a", *code, &[mentions]);
        }
    }
    assert_eq!(tags_of(&server, &TIGHT_APP, "len_a").await, json!([]));
    assert_eq!(tags_of(&server, &TIGHT_APP, "len_b").await, json!(["fine"]));
    // Exactly 10 bytes is fine (3 characters of 3 bytes + 1).
    let tags = ["abcdefghij", "标签标x"];
    let r = server
        .call(&TIGHT_APP, "timpush/add_tag", tag_body("len_a", &tags))
        .await;
    assert_no_error_list(&r);
    assert_eq!(tags_of(&server, &TIGHT_APP, "len_a").await, json!(tags));
}

#[tokio::test]
async fn replace_other_than_0_or_1_is_90001_and_writes_nothing() {
    let server = Server::start();
    import(&server, &APP, &["repl"]).await;
    for replace in [
        json!(2),
        json!(-1),
        json!(256),
        json!("1"),
        json!(1.5),
        json!(true),
    ] {
        let body = with_replace(tag_body("repl", &["x"]), replace);
        let r = server.call(&APP, "timpush/add_tag", body).await;
        assert_fail(&r, 90001, "Replace");
    }
    assert_eq!(tags_of(&server, &APP, "repl").await, json!([]));
}

#[tokio::test]
async fn over_long_attribute_values_are_90033_for_that_account_only() {
    let server = Server::start();
    import(&server, &TIGHT_APP, &["val_a", "val_b"]).await;
    name_attrs(&server, &TIGHT_APP, json!({ "0": "city", "1": "sex" })).await;
    let body = json!({ "UserAttrs": [
        { "To_Account": "val_a", "Attrs": { "sex": "m", "city": "123456789" } },
        { "To_Account": "val_b", "Attrs": { "city": "12345678" } } ] });
    for path in both_families("timpush/set_attr") {
        let r = server.call(&TIGHT_APP, path, body.clone()).await;
        assert_item_error(&r, path, "val_a", 90033, &["city", "9 bytes"]);
    }
    // The whole account was skipped, including its valid attribute.
    assert_eq!(attrs_of(&server, &TIGHT_APP, "val_a").await, json!({}));
    assert_eq!(
        attrs_of(&server, &TIGHT_APP, "val_b").await,
        json!({ "city": "12345678" })
    );
}

#[tokio::test]
async fn undefined_attribute_names_fail_the_whole_request_with_90033() {
    let server = Server::start();
    import(&server, &APP, &["undef_a", "undef_b"]).await;
    name_attrs(&server, &APP, json!({ "0": "city" })).await;
    set_attrs(&server, &APP, "undef_a", json!({ "city": "Paris" })).await;
    let body = json!({ "UserAttrs": [
        { "To_Account": "undef_a", "Attrs": { "city": "Rome" } },
        { "To_Account": "undef_b", "Attrs": { "city": "Oslo", "mood": "x" } } ] });
    for path in both_families("timpush/set_attr") {
        let r = server.call(&APP, path, body.clone()).await;
        assert_fail(&r, 90033, "mood");
        assert_no_error_list(&r);
    }
    let body = json!({ "UserAttrs": [
        { "To_Account": "undef_a", "Attrs": ["city"] },
        { "To_Account": "undef_b", "Attrs": ["mood"] } ] });
    for path in both_families("timpush/remove_attr") {
        let r = server.call(&APP, path, body.clone()).await;
        assert_fail(&r, 90033, "mood");
    }
    // Attribute slot numbers are not names either.
    let body = attr_body("undef_b", json!({ "0": "Oslo" }));
    let r = server.call(&APP, "timpush/set_attr", body).await;
    assert_fail(&r, 90033, "'0'");
    assert_eq!(
        attrs_of(&server, &APP, "undef_a").await,
        json!({ "city": "Paris" })
    );
    assert_eq!(attrs_of(&server, &APP, "undef_b").await, json!({}));
}

#[tokio::test]
async fn registration_id_attributes_are_90035_on_user_id_accounts() {
    let server = Server::start();
    import(&server, &APP, &["reg_a", "reg_b"]).await;
    let names = json!({ "0": "sex", "2": "country" });
    name_typed_attrs(&server, &APP, names, json!({ "2": 1 })).await;
    let body = json!({ "UserAttrs": [
        { "To_Account": "reg_a", "Attrs": { "sex": "m", "country": "CN" } },
        { "To_Account": "reg_b", "Attrs": { "sex": "f" } } ] });
    for path in both_families("timpush/set_attr") {
        let r = server.call(&APP, path, body.clone()).await;
        assert_item_error(&r, path, "reg_a", 90035, &["country"]);
    }
    assert_eq!(attrs_of(&server, &APP, "reg_a").await, json!({}));
    assert_eq!(
        attrs_of(&server, &APP, "reg_b").await,
        json!({ "sex": "f" })
    );
}

#[tokio::test]
async fn set_attr_name_refusals_are_90033_and_change_nothing() {
    let server = Server::start();
    let names = json!({ "0": "sex", "1": "city", "2": "country" });
    name_typed_attrs(&server, &APP, names, json!({ "0": 0, "1": 0, "2": 1 })).await;
    let before = server.call(&APP, "timpush/get_attr_name", json!({})).await;
    let long = "n".repeat(51);
    let refusals = [
        (json!({ "AttrNames": { "10": "x" } }), "'10'"),
        (json!({ "AttrNames": { "a": "x" } }), "'a'"),
        (json!({ "AttrNames": { "-1": "x" } }), "'-1'"),
        (json!({ "AttrNames": { "01": "x" } }), "'01'"),
        (json!({ "AttrNames": { "": "x" } }), "''"),
        (json!({ "AttrNames": { "3": "" } }), "AttrNames.3"),
        (json!({ "AttrNames": { "3": long } }), "51"),
        // A valid slot in the same request is not applied either.
        (json!({ "AttrNames": { "3": "age", "11": "x" } }), "'11'"),
        (
            json!({ "AttrNames": { "3": "dup", "4": "dup" } }),
            "attrName:dup already exists at index:3",
        ),
        (
            json!({ "AttrNames": { "5": "city" } }),
            "attrName:city already exists at index:1",
        ),
        (
            json!({ "AttrNames": { "2": "country" }, "AttrTypes": { "2": 0 } }),
            "cannot be changed",
        ),
        (
            json!({ "AttrNames": { "1": "city" }, "AttrTypes": { "1": 1 } }),
            "cannot be changed",
        ),
        (
            json!({ "AttrNames": { "3": "age" }, "AttrTypes": { "4": 1 } }),
            "AttrTypes key '4'",
        ),
        (
            json!({ "AttrNames": { "3": "age" }, "AttrTypes": { "3": 2 } }),
            "AttrTypes.3",
        ),
    ];
    for (body, mentions) in &refusals {
        for path in both_families("timpush/set_attr_name") {
            let r = server.call(&APP, path, body.clone()).await;
            assert_fail(&r, 90033, mentions);
        }
    }
    assert_eq!(
        server.call(&APP, "timpush/get_attr_name", json!({})).await,
        before
    );

    // The accepted variants: 50-byte names, an unchanged AttrType, merge by slot, renaming.
    let fifty = "n".repeat(50);
    let names = json!({ "2": "country", "9": fifty });
    name_typed_attrs(&server, &APP, names, json!({ "2": 1 })).await;
    let body = json!({ "AttrNames": { "0": "gender" } });
    server
        .ok(&APP, "all_member_push/im_set_attr_name", body)
        .await;
    let r = server.call(&APP, "timpush/get_attr_name", json!({})).await;
    assert_eq!(
        r["AttrNames"],
        json!({ "0": "gender", "1": "city", "2": "country", "9": fifty })
    );
    assert_eq!(r["AttrTypes"], json!({ "0": 0, "1": 0, "2": 1, "9": 0 }));
}

#[tokio::test]
async fn account_import_refusals_are_70402_and_40601() {
    let server = Server::start();
    let refusals = [
        (json!({ "UserID": "" }), 70402, "UserID"),
        (json!({ "UserID": "u".repeat(33) }), 70402, "33"),
        // 11 three-byte characters: 33 bytes.
        (json!({ "UserID": "张".repeat(11) }), 70402, "33"),
        (
            json!({ "UserID": "nick_long", "Nick": "n".repeat(501) }),
            40601,
            "Nick",
        ),
        (
            json!({ "UserID": "face_long", "FaceUrl": "f".repeat(501) }),
            40601,
            "FaceUrl",
        ),
    ];
    for (body, code, mentions) in &refusals {
        let r = server
            .call(&APP, "im_open_login_svc/account_import", body.clone())
            .await;
        assert_fail(&r, *code, mentions);
    }
    let body = user_items("CheckItem", &["nick_long", "face_long", &"u".repeat(33)]);
    let r = server
        .call(&APP, "im_open_login_svc/account_check", body)
        .await;
    for item in r["ResultItem"].as_array().unwrap() {
        assert_eq!(item["AccountStatus"], "NotImported", "{r}");
    }
    // The boundaries are accepted.
    for body in [
        json!({ "UserID": "u".repeat(32) }),
        json!({ "UserID": "张".repeat(10) }),
        json!({ "UserID": "edge", "Nick": "n".repeat(500), "FaceUrl": "f".repeat(500) }),
    ] {
        server
            .ok(&APP, "im_open_login_svc/account_import", body)
            .await;
    }
}

#[tokio::test]
async fn account_list_sizes_outside_1_to_100_are_70402() {
    let server = Server::start();
    let many: Vec<String> = (0..101).map(|i| format!("bulk_{i}")).collect();
    let many = as_strs(&many);
    let cases = [
        (
            "multiaccount_import",
            json!({ "Accounts": many }),
            "Accounts",
        ),
        ("multiaccount_import", json!({ "Accounts": [] }), "Accounts"),
        (
            "account_delete",
            user_items("DeleteItem", &many),
            "DeleteItem",
        ),
        (
            "account_delete",
            user_items("DeleteItem", &[]),
            "DeleteItem",
        ),
        ("account_check", user_items("CheckItem", &many), "CheckItem"),
        ("account_check", user_items("CheckItem", &[]), "CheckItem"),
    ];
    for (api, body, field) in &cases {
        let path = format!("im_open_login_svc/{api}");
        let r = server.call(&APP, &path, body.clone()).await;
        assert_fail(&r, 70402, field);
    }
    // Nothing of the 101 was imported; exactly 100 is fine.
    let r = server
        .ok(
            &APP,
            "im_open_login_svc/account_check",
            user_items("CheckItem", &many[..100]),
        )
        .await;
    assert!(
        r["ResultItem"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["AccountStatus"] == "NotImported"),
        "{r}"
    );
    let body = json!({ "Accounts": &many[..100] });
    let r = server
        .call(&APP, "im_open_login_svc/multiaccount_import", body)
        .await;
    assert_eq!(r["FailAccounts"], json!([]), "{r}");
}

#[tokio::test]
async fn account_delete_of_unknown_and_reimport_semantics() {
    let server = Server::start();
    import(&server, &APP, &["del_me"]).await;
    name_attrs(&server, &APP, json!({ "0": "city" })).await;
    add_tags(&server, &APP, "del_me", &["t"]).await;
    set_attrs(&server, &APP, "del_me", json!({ "city": "x" })).await;

    // Importing again is harmless: the tags and attributes stay.
    let body = json!({ "UserID": "del_me" });
    server
        .ok(&APP, "im_open_login_svc/account_import", body)
        .await;
    import(&server, &APP, &["del_me"]).await;
    assert_eq!(tags_of(&server, &APP, "del_me").await, json!(["t"]));
    assert_eq!(
        attrs_of(&server, &APP, "del_me").await,
        json!({ "city": "x" })
    );

    // Deleting twice: the second time it does not exist.
    for expected in [json!(0), json!(70107)] {
        let r = delete_account(&server, &APP, "del_me").await;
        assert_ok(&r);
        assert_eq!(r["ResultItem"][0]["ResultCode"], expected, "{r}");
    }
    let r = server
        .call(&APP, "timpush/get_tag", accounts_body(&["del_me"]))
        .await;
    assert_eq!(error_list(&r), one_error("del_me", 70107));

    // A re-imported account starts empty.
    import(&server, &APP, &["del_me"]).await;
    assert_eq!(tags_of(&server, &APP, "del_me").await, json!([]));
    assert_eq!(attrs_of(&server, &APP, "del_me").await, json!({}));
}

/// The behaviours the spec leaves UNCONFIRMED, as tagcast decided them.
#[tokio::test]
async fn unconfirmed_semantics_are_as_decided() {
    let server = Server::start();
    // Nothing configured: empty objects, AttrTypes only in the new family.
    let r = server.call(&APP, "timpush/get_attr_name", json!({})).await;
    assert_eq!(
        r,
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
                "AttrNames": {}, "AttrTypes": {} })
    );
    let r = server
        .call(&APP, "all_member_push/im_get_attr_name", json!({}))
        .await;
    assert_eq!(
        r,
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "AttrNames": {} })
    );

    import(&server, &APP, &["sem_a"]).await;
    // No tags / no attributes: empty, not missing.
    let r = server
        .call(&APP, "timpush/get_tag", accounts_body(&["sem_a"]))
        .await;
    assert_eq!(
        r["UserTags"],
        json!([{ "To_Account": "sem_a", "Tags": [] }])
    );
    let r = server
        .call(&APP, "timpush/get_attr", accounts_body(&["sem_a"]))
        .await;
    assert_eq!(
        r["UserAttrs"],
        json!([{ "To_Account": "sem_a", "Attrs": {} }])
    );

    // Adding a tag twice (in one request and across requests) is a no-op.
    for _ in 0..2 {
        let body = tag_body("sem_a", &["x", "y", "x"]);
        let r = server.call(&APP, "timpush/add_tag", body).await;
        assert_no_error_list(&r);
    }
    assert_eq!(tags_of(&server, &APP, "sem_a").await, json!(["x", "y"]));
    // Removing a tag the account does not have is a silent no-op.
    let body = tag_body("sem_a", &["nope", "x"]);
    let r = server.call(&APP, "timpush/remove_tag", body).await;
    assert_no_error_list(&r);
    assert_ok(&r);
    assert_eq!(tags_of(&server, &APP, "sem_a").await, json!(["y"]));
    // Removing an attribute the account does not have is a no-op too.
    name_attrs(&server, &APP, json!({ "0": "city" })).await;
    let body = attr_body("sem_a", json!(["city"]));
    let r = server.call(&APP, "timpush/remove_attr", body).await;
    assert_no_error_list(&r);
    assert_ok(&r);
    // set_attr upserts the listed attributes and keeps the others.
    name_attrs(&server, &APP, json!({ "1": "sex" })).await;
    for attrs in [json!({ "city": "a", "sex": "m" }), json!({ "city": "b" })] {
        set_attrs(&server, &APP, "sem_a", attrs).await;
    }
    assert_eq!(
        attrs_of(&server, &APP, "sem_a").await,
        json!({ "city": "b", "sex": "m" })
    );
}
