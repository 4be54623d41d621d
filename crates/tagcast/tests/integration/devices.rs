//! Device registration (issue 10): an account registers and removes its own devices with its
//! own UserSig, an admin any account's; tokens are checked for shape; answers never show a
//! token whole.

use serde_json::{Value, json};

use crate::common::*;

const APNS_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// A browser's subscription at a public push service, with well-formed keys.
fn subscription(endpoint: &str) -> Value {
    json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {
            "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "auth": "BTBZMqHH6r4Tts7J_aSIgg"
        }
    })
}

/// Calls `path` as `account` of APP with its own UserSig.
async fn as_account(server: &Server, account: &str, path: &str, body: Value) -> Value {
    let query = query_with_sig(&APP, account, &sig(&APP, account));
    server.call_with_query(path, &query, body).await
}

async fn register(server: &Server, account: &str, platform: &str, token: Value) -> Value {
    let body = json!({ "Platform": platform, "Token": token });
    as_account(server, account, "tagcast/device_register", body).await
}

async fn devices_of(server: &Server, account: &str) -> Vec<Value> {
    let r = server
        .ok(
            &APP,
            "tagcast/device_list",
            json!({ "To_Account": account }),
        )
        .await;
    r["Devices"].as_array().expect("Devices").clone()
}

#[tokio::test]
async fn an_account_registers_and_removes_its_own_devices() {
    let server = Server::start();
    // Registering logs the account in: it need not have been imported.
    let first = register(&server, "dev_ann", "apns", json!(APNS_TOKEN)).await;
    assert_ok(&first);
    let id = first["RegistrationID"]
        .as_str()
        .expect("RegistrationID")
        .to_string();
    assert_eq!(id.len(), 36, "{first}");
    let upper = APNS_TOKEN.to_ascii_uppercase();
    let again = register(&server, "dev_ann", "apns", json!(upper)).await;
    assert_eq!(
        again["RegistrationID"], id,
        "the same device, the same RegistrationID"
    );
    let web = register(
        &server,
        "dev_ann",
        "webpush",
        subscription("https://push.example.com/s/1"),
    )
    .await;
    assert_ok(&web);

    let listed = devices_of(&server, "dev_ann").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["RegistrationID"], id);
    assert_eq!(listed[0]["Platform"], "apns");
    assert_eq!(listed[0]["Token"], "a1b2c3…8f90", "tokens are masked");
    assert_eq!(listed[1]["Platform"], "webpush");
    assert_eq!(listed[1]["Token"], "https://push.example.com/…");
    let text = serde_json::to_string(&listed).unwrap();
    assert!(
        !text.contains(APNS_TOKEN) && !text.contains("BTBZMqHH"),
        "{text}"
    );

    // Another account can neither register for it nor remove its device.
    import(&server, &APP, &["dev_bob"]).await;
    let body = json!({ "To_Account": "dev_ann", "Platform": "fcm", "Token": "abc" });
    let r = as_account(&server, "dev_bob", "tagcast/device_register", body).await;
    assert_fail(&r, 90009, "only its own devices");
    let body = json!({ "RegistrationID": id });
    let r = as_account(
        &server,
        "dev_bob",
        "tagcast/device_unregister",
        body.clone(),
    )
    .await;
    assert_eq!(r["Removed"], 0, "{r}");
    let r = as_account(&server, "dev_ann", "tagcast/device_unregister", body).await;
    assert_eq!(r["Removed"], 1, "{r}");
    assert_eq!(devices_of(&server, "dev_ann").await.len(), 1);

    // Listing is for admins.
    let r = as_account(
        &server,
        "dev_ann",
        "tagcast/device_list",
        json!({ "To_Account": "dev_ann" }),
    )
    .await;
    assert_fail(&r, 90009, "admin");
}

#[tokio::test]
async fn an_admin_registers_for_existing_accounts_and_removes_any_device() {
    let server = Server::start();
    let body = json!({ "To_Account": "dev_nobody", "Platform": "fcm", "Token": "fcm:token-1" });
    let r = server.call(&APP, "tagcast/device_register", body).await;
    assert_fail(&r, 70107, "dev_nobody");
    import(&server, &APP, &["dev_cat"]).await;
    let body = json!({ "To_Account": "dev_cat", "Platform": "fcm", "Token": "fcm:token-1" });
    let id = server.ok(&APP, "tagcast/device_register", body).await["RegistrationID"].clone();
    let removed = server
        .ok(
            &APP,
            "tagcast/device_unregister",
            json!({ "RegistrationID": id }),
        )
        .await;
    assert_eq!(removed["Removed"], 1);
    assert!(devices_of(&server, "dev_cat").await.is_empty());
    // Deleting an account deletes its devices.
    let body = json!({ "To_Account": "dev_cat", "Platform": "fcm", "Token": "fcm:token-2" });
    server.ok(&APP, "tagcast/device_register", body).await;
    let delete = json!({ "DeleteItem": [{ "UserID": "dev_cat" }] });
    server
        .ok(&APP, "im_open_login_svc/account_delete", delete)
        .await;
    import(&server, &APP, &["dev_cat"]).await;
    assert!(devices_of(&server, "dev_cat").await.is_empty());
}

#[tokio::test]
async fn malformed_tokens_are_refused_with_90001_and_nothing_is_stored() {
    let server = Server::start();
    let long_fcm = "f".repeat(4097);
    let cases: [(&str, Value, &str); 9] = [
        ("apns", json!("not-hex"), "hex digits"),
        ("apns", json!("abc"), "64 to 200"),
        ("apns", json!(12), "must be a string"),
        ("fcm", json!("has space"), "FCM registration token"),
        ("fcm", json!(long_fcm), "FCM registration token"),
        (
            "webpush",
            subscription("https://127.0.0.1:8443/push"),
            "webpush_private_endpoints",
        ),
        (
            "webpush",
            subscription("http://push.example.com/x"),
            "https",
        ),
        (
            "webpush",
            json!({ "endpoint": "https://push.example.com/x", "keys": { "p256dh": "AAAA", "auth": "BTBZMqHH6r4Tts7J_aSIgg" } }),
            "p256dh",
        ),
        ("carrier-pigeon", json!("x"), "apns, fcm, webpush"),
    ];
    for (platform, token, mentions) in cases {
        let r = register(&server, "dev_bad", platform, token).await;
        assert_fail(&r, 90001, mentions);
    }
    let body = json!({ "Platform": "fcm", "Token": "fcm:ok", "Sandbox": 1 });
    let r = as_account(&server, "dev_bad", "tagcast/device_register", body).await;
    assert_fail(&r, 90001, "Sandbox");
    let r = as_account(
        &server,
        "dev_bad",
        "tagcast/device_register",
        json!({ "Platform": "fcm" }),
    )
    .await;
    assert_fail(&r, 90001, "Token");
    let long = json!({ "RegistrationID": "R".repeat(65) });
    let r = as_account(&server, "dev_bad", "tagcast/device_unregister", long).await;
    assert_fail(&r, 90001, "at most 64 bytes");
    // Not even the account was created: a refused registration logs nobody in.
    let r = server
        .call(
            &APP,
            "tagcast/device_list",
            json!({ "To_Account": "dev_bad" }),
        )
        .await;
    assert_fail(&r, 70107, "dev_bad");
}
