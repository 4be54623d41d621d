//! Pushes reach devices (issue 10) through local APNs, FCM and Web Push servers that check each
//! request as the providers document it (tagcast-fakes): signatures verified, Web Push payloads
//! decrypted. Who gets what is docs/extensions.md's "Notifying devices".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tagcast_fakes::{Script, apns::Apple, fcm::Google, webpush::PushService};
use tempfile::TempDir;

use crate::cluster_push::{await_leader, quick_to_fail_over};
use crate::common::*;
use crate::ws::{CallbackReceiver, Client, text_body};

const KEY_ID: &str = "KEY1234567";
const TEAM_ID: &str = "TEAM123456";
const TOPIC: &str = "com.example.tagcast";
const PROJECT: &str = "demo-project";
const EMAIL: &str = "push@demo-project.iam.gserviceaccount.com";
/// The most accounts whose requests may repeat after a crash: the notifier's batches taken
/// and not recorded (delivery::notifier::PIPELINE, 3, of BATCH, 200 accounts).
const REPEAT_BOUND: usize = 600;

/// The three providers, and PUSH_APP's config naming them (credentials in files).
pub(crate) struct Providers {
    apple: Apple,
    pub(crate) google: Google,
    web: PushService,
    vapid_public: String,
    tables: String,
    _files: TempDir,
}

impl Providers {
    pub(crate) async fn start() -> Self {
        let files = tempfile::tempdir().expect("temp dir");
        let (p8, public) = tagcast_fakes::apns::test_key();
        let apple = Apple::start(KEY_ID, TEAM_ID, TOPIC, public.as_bytes()).await;
        let google = Google::start(
            PROJECT,
            EMAIL,
            tagcast_fakes::fcm::PUBLIC_KEY_PEM.as_bytes(),
        )
        .await;
        let web = PushService::start().await;
        let vapid = tagcast_push::webpush::Vapid::generate("mailto:ops@example.com");
        let write = |name: &str, content: &str| {
            let path = files.path().join(name);
            std::fs::write(&path, content).expect("write provider file");
            path.display().to_string()
        };
        let account = tagcast_fakes::fcm::service_account_json(PROJECT, EMAIL, &google.token_uri());
        let tables = format!(
            "[apps.apns]\nkey_file = {key:?}\nkey_id = {KEY_ID:?}\nteam_id = {TEAM_ID:?}\n\
             topic = {TOPIC:?}\nendpoint = {url:?}\nsandbox_endpoint = {url:?}\nca_file = {ca:?}\n\
             [apps.fcm]\nservice_account_file = {sa:?}\nendpoint = {fcm:?}\n\
             [apps.webpush]\nvapid_key_file = {vapid_file:?}\ncontact = \"mailto:ops@example.com\"\n",
            key = write("apns.p8", &p8),
            url = apple.url(),
            ca = write("apple-ca.pem", &apple.ca_pem()),
            sa = write("service-account.json", &account),
            fcm = google.url(),
            vapid_file = write("vapid.key", &vapid.private_key()),
        );
        Self {
            apple,
            google,
            web,
            vapid_public: vapid.public_key(),
            tables,
            _files: files,
        }
    }

    pub(crate) fn server(&self) -> Server {
        self.server_reporting_to(None)
    }

    /// A server whose PUSH_APP sends its callbacks to `callback_url`.
    fn server_reporting_to(&self, callback_url: Option<&str>) -> Server {
        self.server_on(TestStore::fresh(), "", callback_url)
    }

    /// A server on `store` with `extra` TOML (see `Server::start_with`).
    fn server_on(&self, store: TestStore, extra: &str, callback_url: Option<&str>) -> Server {
        let push = PushAppExtra {
            callback_url,
            limits: "webpush_private_endpoints = true",
            tables: &self.tables,
        };
        Server::start_on_with_push_app(store, extra, push)
    }
}

/// An APNs device token (hex) for `n`.
fn apns_token(n: u32) -> String {
    format!("{n:064x}")
}

/// Registers a device for `account` with its own UserSig; its RegistrationID.
pub(crate) async fn register(
    server: &Server,
    account: &str,
    platform: &str,
    token: Value,
) -> String {
    let query = query_with_sig(&PUSH_APP, account, &sig(&PUSH_APP, account));
    let body = json!({ "Platform": platform, "Token": token });
    let r = server
        .call_with_query("tagcast/device_register", &query, body)
        .await;
    assert_ok(&r);
    r["RegistrationID"]
        .as_str()
        .expect("RegistrationID")
        .to_string()
}

/// How often each key occurs.
fn counts<'a>(keys: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for key in keys {
        *counts.entry(key.to_string()).or_default() += 1;
    }
    counts
}

fn once(keys: &[&str]) -> HashMap<String, usize> {
    keys.iter().map(|k| (k.to_string(), 1)).collect()
}

async fn statistics(server: &Server, task: &str) -> Value {
    let now = now();
    let body = json!({ "StartTime": now - 3600, "EndTime": now + 60, "TaskID": [task] });
    let r = server
        .ok(&PUSH_APP, "timpush/all_member_push_statistics", body)
        .await;
    r["Results"][0].clone()
}

/// The statistics' figures of `provider`.
fn platform(statistics: &Value, provider: &str) -> Value {
    let platforms = statistics["OfflinePush"]["Platforms"]
        .as_array()
        .expect("Platforms");
    platforms
        .iter()
        .find(|p| p["Provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} in {statistics}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_push_notifies_each_offline_device_once_as_documented() {
    let providers = Providers::start().await;
    let server = providers.server();
    let tagged = [
        "n_online", "n_apns", "n_fcm", "n_web", "n_multi", "n_gone", "n_busy", "n_flaky", "n_none",
    ];
    import(&server, &PUSH_APP, &tagged).await;
    import(&server, &PUSH_APP, &["n_outside"]).await;
    for account in tagged {
        assert!(error_list(&add_tags(&server, &PUSH_APP, account, &["notify"]).await).is_empty());
    }
    add_tags(&server, &PUSH_APP, "n_outside", &["other"]).await;
    let (apple, google, web) = (&providers.apple, &providers.google, &providers.web);
    for (account, n) in [
        ("n_online", 1),
        ("n_apns", 2),
        ("n_multi", 3),
        ("n_gone", 4),
        ("n_flaky", 5),
        ("n_outside", 6),
    ] {
        register(&server, account, "apns", json!(apns_token(n))).await;
    }
    for account in ["n_fcm", "n_multi", "n_busy"] {
        register(&server, account, "fcm", json!(format!("fcm-{account}"))).await;
    }
    let subscription = web.subscribe();
    let subscribed: Value = serde_json::from_str(&subscription.json).unwrap();
    register(&server, "n_web", "webpush", subscribed).await;
    apple.script(&apns_token(4), Script::Gone);
    apple.script(&apns_token(5), Script::Fail500 { times: 1 });
    google.script(
        "fcm-n_busy",
        Script::Throttle {
            retry_after_secs: 1,
            times: 1,
        },
    );

    let mut online = Client::connect(&server, &PUSH_APP, "n_online").await;
    let pushed_at = Instant::now();
    let body = json!({
        "MsgRandom": 1001,
        "MsgBody": text_body("hello"),
        "Condition": { "TagsOr": ["notify"] },
        "OfflinePushInfo": { "Title": "Sale", "Desc": "50% off", "Ext": "{\"k\":1}" },
    });
    let task = server.ok(&PUSH_APP, "timpush/push", body).await["TaskId"]
        .as_str()
        .expect("TaskId")
        .to_string();
    assert_eq!(online.next_frame().await["TaskId"], task.as_str());

    // Every device of the offline accounts, once: not n_online's (reached online), not
    // n_gone's (gone), not n_outside's (not in the audience).
    let apns_expected = once(&[&apns_token(2), &apns_token(3), &apns_token(5)]);
    let fcm_expected = once(&["fcm-n_fcm", "fcm-n_multi", "fcm-n_busy"]);
    let seen = || {
        (
            counts(apple.received().iter().map(|r| r.device_token.as_str())),
            counts(google.received().iter().map(|r| r.token.as_str())),
            web.received().len(),
        )
    };
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let seen = seen();
            let done = seen.0 == apns_expected && seen.1 == fcm_expected && seen.2 == 1;
            done.then_some(()).ok_or(format!("{seen:?}"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        seen(),
        (apns_expected, fcm_expected, 1),
        "nothing more came"
    );
    assert!(
        apple.rejected().is_empty() && google.rejected().is_empty() && web.rejected().is_empty()
    );

    // What each provider was sent.
    for r in apple.received() {
        assert_eq!((r.topic.as_str(), r.push_type.as_str()), (TOPIC, "alert"));
        assert_eq!(r.collapse_id.as_deref(), Some(&task[..task.len().min(64)]));
        assert!(r.expiration.unwrap() > now(), "the push's lifetime: {r:?}");
        assert_eq!(
            r.payload["aps"]["alert"],
            json!({ "title": "Sale", "body": "50% off" })
        );
        assert_eq!(r.payload["ext"], "{\"k\":1}");
        assert!(
            r.at - pushed_at >= Duration::from_secs(1),
            "after the grace period"
        );
    }
    let flaky = apple
        .received()
        .into_iter()
        .find(|r| r.device_token == apns_token(5))
        .unwrap();
    let backed_off = flaky.at - pushed_at;
    assert!(
        backed_off >= Duration::from_millis(1500),
        "a 500 is retried after 0.5-1 s: {backed_off:?}"
    );
    for r in google.received() {
        let m = &r.message;
        assert_eq!(
            m["notification"],
            json!({ "title": "Sale", "body": "50% off" })
        );
        assert_eq!(
            (&m["android"]["collapse_key"], &m["data"]["ext"]),
            (&json!(task), &json!("{\"k\":1}"))
        );
    }
    let busy = google
        .received()
        .into_iter()
        .find(|r| r.token == "fcm-n_busy")
        .unwrap();
    assert!(
        busy.at - pushed_at >= Duration::from_secs(2),
        "Retry-After: 1 honoured"
    );
    assert_eq!(
        google.token_grants(),
        1,
        "one access token for every message"
    );
    let received = &web.received()[0];
    let payload: Value = serde_json::from_slice(&received.payload).expect("a JSON payload");
    assert_eq!(
        payload,
        json!({ "TaskId": task, "Title": "Sale", "Desc": "50% off", "Ext": "{\"k\":1}" })
    );
    assert_eq!(received.vapid_key, providers.vapid_public);
    let topic = tagcast_push::webpush::topic_header(&task);
    assert_eq!(received.topic.as_deref(), topic.to_str().ok());

    // The gone device is removed.
    let devices = server
        .ok(
            &PUSH_APP,
            "tagcast/device_list",
            json!({ "To_Account": "n_gone" }),
        )
        .await;
    assert_eq!(devices["Devices"], json!([]));

    // Statistics, loss and trace agree with what the providers saw.
    let stats = statistics(&server, &task).await;
    assert_eq!(stats["OfflinePush"]["ReachedOnline"], 1, "{stats}");
    let apns = platform(&stats, "apns");
    assert_eq!(
        (
            &apns["Requests"],
            &apns["Accepted"],
            &apns["Retries"],
            &apns["Gone"],
            &apns["Failed"]
        ),
        (
            &json!(apple.requests()),
            &json!(3),
            &json!(1),
            &json!(1),
            &json!(0)
        ),
        "{apns}"
    );
    let fcm = platform(&stats, "fcm");
    assert_eq!(
        (&fcm["Requests"], &fcm["Accepted"], &fcm["Retries"]),
        (
            &json!(google.requests() - google.token_grants()),
            &json!(3),
            &json!(1)
        ),
        "{fcm}"
    );
    assert_eq!(platform(&stats, "webpush")["Accepted"], 1);
    let now = now();
    let loss = server
        .ok(
            &PUSH_APP,
            "timpush/all_member_push_loss",
            json!({ "StartTime": now - 3600, "EndTime": now + 60, "TaskID": [task] }),
        )
        .await;
    let result = &loss["Results"][0];
    assert_eq!(
        result["ReadyToSendLoss"][0]["ErrCount"],
        tagged.len() - 1,
        "{loss}"
    );
    assert_eq!(
        result["PlatformReadyToSendLoss"],
        json!([{ "EventType": 1, "PushPlatform": 1, "ErrCode": "DeviceGone", "ErrCount": 1,
                 "ErrInfo": "apns gave this reason" }]),
        "{loss}"
    );
    let trace = |user: &'static str| {
        let server = &server;
        let task = task.clone();
        async move {
            let body = json!({ "TaskID": task, "UserID": user });
            let r = server
                .ok(&PUSH_APP, "timpush/all_member_push_trace", body)
                .await;
            r["InstanceTrace"]
                .as_array()
                .expect("InstanceTrace")
                .clone()
        }
    };
    let multi = trace("n_multi").await;
    let statuses: Vec<&Value> = multi[1..]
        .iter()
        .map(|i| &i["OfflinePushStat"]["OfflineStat"]["PushStatus"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("Accepted"), &json!("Accepted")],
        "{multi:?}"
    );
    assert_eq!(trace("n_online").await.len(), 1, "no device notified");
    let gone = trace("n_gone").await;
    assert_eq!(
        gone[1]["OfflinePushStat"]["OfflineStat"]["PushStatus"],
        "Gone"
    );
    assert_eq!(
        gone[1]["Token"], "",
        "a removed device has no token to show"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_flagged_online_only_notifies_no_device() {
    let providers = Providers::start().await;
    let server = providers.server();
    register(&server, "q_apns", "apns", json!(apns_token(7))).await;
    let body = json!({
        "MsgRandom": 1002,
        "MsgBody": text_body("quiet"),
        "OfflinePushInfo": { "PushFlag": 1, "Title": "t" },
    });
    let task = server.ok(&PUSH_APP, "timpush/push", body).await["TaskId"]
        .as_str()
        .unwrap()
        .to_string();
    // A push that notifies devices is sent after a second; this one never is.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(providers.apple.requests(), 0);
    let stats = statistics(&server, &task).await;
    assert_eq!(stats["OfflinePush"]["NotifiesDevices"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_recalled_before_its_devices_are_reached_notifies_none_and_stops_retrying() {
    let providers = Providers::start().await;
    let server = providers.server();
    register(&server, "r_apns", "apns", json!(apns_token(8))).await;
    register(&server, "r_fcm", "fcm", json!("fcm-r_fcm")).await;
    let google = &providers.google;
    google.script(
        "fcm-r_fcm",
        Script::Throttle {
            retry_after_secs: 1,
            times: 100,
        },
    );
    let push = |msg_random: u32| {
        let server = &server;
        async move {
            let body = json!({
                "MsgRandom": msg_random,
                "MsgBody": text_body("recalled"),
                "OfflinePushInfo": { "Title": "t" },
            });
            let r = server.ok(&PUSH_APP, "timpush/push", body).await;
            r["TaskId"].as_str().unwrap().to_string()
        }
    };
    // Recalled within the grace period: no device is notified.
    let first = push(1004).await;
    server
        .ok(&PUSH_APP, "timpush/revoke", json!({ "TaskId": first }))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!((providers.apple.requests(), google.requests()), (0, 0));
    // Recalled while a device is retried: its retries stop.
    let second = push(1005).await;
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let n = google.requests();
            (n >= 2).then_some(()).ok_or(format!("{n} requests"))
        },
    )
    .await;
    server
        .ok(&PUSH_APP, "timpush/revoke", json!({ "TaskId": second }))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_recall = google.requests();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(google.requests(), after_recall, "no retry after the recall");
    let trace = server
        .ok(
            &PUSH_APP,
            "timpush/all_member_push_trace",
            json!({ "TaskID": second, "UserID": "r_fcm" }),
        )
        .await;
    let stat = &trace["InstanceTrace"][1]["OfflinePushStat"]["OfflineStat"];
    assert_eq!(
        (&stat["PushStatus"], &stat["ErrorInfo"]),
        (&json!("Failed"), &json!("push ended")),
        "{trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_cut_by_kill_9_notifies_every_device_after_restart() {
    const DEVICES: usize = 10_000;
    let providers = Providers::start().await;
    let mut server = providers.server();
    let accounts: Vec<String> = (0..DEVICES).map(|i| format!("k{i}")).collect();
    register_fcm_devices(&server, &accounts).await;
    let body = json!({
        "MsgRandom": 1003,
        "MsgBody": text_body("to everyone"),
        "OfflinePushInfo": { "Title": "All", "Desc": "of you" },
    });
    server.ok(&PUSH_APP, "timpush/push", body).await;
    let google = &providers.google;
    // Well into the fan-out: batches recorded, and batches sent and not recorded.
    await_received(google, 2_250).await;
    server.kill9();
    let at_kill = google.received().len();
    assert!(
        at_kill < DEVICES,
        "killed during the fan-out ({at_kill} sent)"
    );
    server.restart();
    let repeats = await_every_device(google, DEVICES).await;
    eprintln!("kill -9 after {at_kill} notifications: {repeats} repeated after restart");
}

/// Registers one FCM device for each of `accounts` on `server`, 32 at a time.
async fn register_fcm_devices(server: &Server, accounts: &[String]) {
    futures_util::stream::iter(accounts)
        .for_each_concurrent(32, |account| async move {
            register(server, account, "fcm", json!(format!("fcm-{account}"))).await;
        })
        .await;
}

/// Waits until `google` has received at least `n` notifications.
async fn await_received(google: &Google, n: usize) {
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(5),
        || async {
            let received = google.received().len();
            (received >= n)
                .then_some(())
                .ok_or(format!("{received} received"))
        },
    )
    .await;
}

/// Waits until each of `devices` FCM devices has been notified, with no request refused and
/// at most `REPEAT_BOUND` notifications repeated; how many were.
async fn await_every_device(google: &Google, devices: usize) -> usize {
    eventually(
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async {
            let distinct = counts(google.received().iter().map(|r| r.token.as_str())).len();
            (distinct == devices)
                .then_some(())
                .ok_or(format!("{distinct} of {devices} devices"))
        },
    )
    .await;
    let repeats = google.received().len() - devices;
    assert!(
        repeats <= REPEAT_BOUND,
        "{repeats} repeats, more than the bound of {REPEAT_BOUND}"
    );
    assert!(google.rejected().is_empty(), "{:?}", google.rejected());
    repeats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_whose_leader_is_killed_is_finished_by_the_next_leader() {
    if !postgres_only("fan-out takeover", "its nodes share a PostgreSQL database") {
        return;
    }
    const DEVICES: usize = 3_000;
    let providers = Providers::start().await;
    let (_store, mut cluster) =
        quick_to_fail_over(|store, config| providers.server_on(store, config, None));
    let leader = await_leader(&cluster).await;
    // The push is made on a node that does not lead; the leader sends it to the devices.
    let other = &cluster[(leader + 1) % 3];
    let accounts: Vec<String> = (0..DEVICES).map(|i| format!("t{i}")).collect();
    register_fcm_devices(other, &accounts).await;
    let body = json!({
        "MsgRandom": 1004,
        "MsgBody": text_body("to everyone"),
        "OfflinePushInfo": { "Title": "All", "Desc": "of you" },
    });
    let task = other.ok(&PUSH_APP, "timpush/push", body).await["TaskId"]
        .as_str()
        .expect("TaskId")
        .to_string();
    let google = &providers.google;
    await_received(google, 1_250).await;
    cluster[leader].kill9();
    let at_kill = google.received().len();
    assert!(
        at_kill < DEVICES,
        "killed during the fan-out ({at_kill} sent)"
    );
    let repeats = await_every_device(google, DEVICES).await;
    eprintln!("leader killed after {at_kill} notifications: {repeats} repeated by the next");
    assert_ne!(await_leader(&cluster).await, leader);
    // Every batch is counted once, whichever node sent it.
    let dead = &cluster[leader];
    for node in cluster.iter().filter(|node| !std::ptr::eq(*node, dead)) {
        eventually(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || async {
                let fcm = platform(&statistics(node, &task).await, "fcm");
                let counted = (fcm["Requests"].as_u64(), fcm["Accepted"].as_u64());
                let all = Some(DEVICES as u64);
                (counted == (all, all))
                    .then_some(())
                    .ok_or(format!("{fcm}"))
            },
        )
        .await;
    }
}

/// Registers a device with no account, as an admin: its RegistrationID.
async fn register_alone(server: &Server, token: &str) -> String {
    let body = json!({ "Platform": "apns", "Token": token });
    let r = server.ok(&PUSH_APP, "tagcast/device_register", body).await;
    r["RegistrationID"]
        .as_str()
        .expect("RegistrationID")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_alone_is_a_registration_id_account_pushes_reach() {
    let providers = Providers::start().await;
    let server = providers.server();
    let apple = &providers.apple;
    let rid = register_alone(&server, &apns_token(31)).await;
    register(&server, "rid_user", "apns", json!(apns_token(32))).await;

    // Tags and AttrTypes-1 attributes are for it, not for UserID accounts (90035), and back.
    let r = server
        .ok(
            &PUSH_APP,
            "timpush/add_tag",
            json!({ "UserTags": [
            { "To_Account": rid, "Tags": ["beta"] },
            { "To_Account": "rid_user", "Tags": ["beta"] } ] }),
        )
        .await;
    assert_item_error(
        &r,
        "add_tag",
        "rid_user",
        90035,
        &["tag 'beta'", "RegistrationID"],
    );
    name_typed_attrs(
        &server,
        &PUSH_APP,
        json!({ "0": "model", "1": "city" }),
        json!({ "0": 1 }),
    )
    .await;
    let r = server
        .ok(
            &PUSH_APP,
            "timpush/set_attr",
            json!({ "UserAttrs": [
            { "To_Account": rid, "Attrs": { "model": "x1" } },
            { "To_Account": rid, "Attrs": { "city": "sz" } } ] }),
        )
        .await;
    assert_item_error(&r, "set_attr", &rid, 90035, &["attribute 'city'", "UserID"]);
    assert_eq!(tags_of(&server, &PUSH_APP, &rid).await, json!(["beta"]));
    assert_eq!(
        attrs_of(&server, &PUSH_APP, &rid).await,
        json!({ "model": "x1" })
    );

    // A tag push, an attribute push and a batch to it reach its device, and only it.
    let conditions = [
        json!({ "TagsAnd": ["beta"] }),
        json!({ "AttrsAnd": { "model": "x1" } }),
    ];
    for (n, condition) in conditions.into_iter().enumerate() {
        let body = json!({
            "MsgRandom": 1100 + n,
            "Condition": condition,
            "OfflinePushInfo": { "Title": "For the device", "Desc": "hi" },
        });
        server.ok(&PUSH_APP, "timpush/push", body).await;
    }
    let body = json!({
        "From_Account": "rid_user",
        "To_Account": [rid],
        "MsgRandom": 1102,
        "OfflinePushInfo": { "Title": "Batch", "Desc": "hi" },
    });
    assert!(error_list(&server.ok(&PUSH_APP, "timpush/batch", body).await).is_empty());
    let seen = || counts(apple.received().iter().map(|r| r.device_token.as_str()));
    let expected = HashMap::from([(apns_token(31), 3)]);
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let seen = seen();
            (seen == expected).then_some(()).ok_or(format!("{seen:?}"))
        },
    )
    .await;

    // Its one device is its own; unregistered, the account goes with it.
    let another = json!({ "To_Account": rid, "Platform": "apns", "Token": apns_token(33) });
    let r = server
        .call(&PUSH_APP, "tagcast/device_register", another)
        .await;
    assert_fail(&r, 90035, "only its own device");
    let r = server
        .ok(
            &PUSH_APP,
            "tagcast/device_unregister",
            json!({ "RegistrationID": rid }),
        )
        .await;
    assert_eq!(r["Removed"], 1);
    let r = server
        .ok(&PUSH_APP, "timpush/get_tag", json!({ "To_Account": [rid] }))
        .await;
    assert_eq!(error_list(&r), one_error(&rid, 70107));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_with_offline_push_info_overwrites_the_notifications_shown() {
    let providers = Providers::start().await;
    let server = providers.server();
    let (apple, google) = (&providers.apple, &providers.google);
    register(&server, "o_apns", "apns", json!(apns_token(41))).await;
    register(&server, "o_fcm", "fcm", json!("fcm-o_fcm")).await;
    register(&server, "o_gone", "fcm", json!("fcm-o_gone")).await;
    google.script("fcm-o_gone", Script::Gone);
    let body = json!({
        "MsgRandom": 1201,
        "MsgBody": text_body("sale"),
        "OfflinePushInfo": { "Title": "Sale", "Desc": "50% off" },
    });
    let task = server.ok(&PUSH_APP, "timpush/push", body).await["TaskId"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = || (apple.received().len(), google.received().len());
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            let seen = sent();
            (seen == (1, 1)).then_some(()).ok_or(format!("{seen:?}"))
        },
    )
    .await;

    let recall = json!({ "TaskId": task,
        "OfflinePushInfo": { "Title": "Recalled", "Desc": "The sale is over" } });
    server.ok(&PUSH_APP, "timpush/revoke", recall).await;
    // Sent once every request begun before the recall has been answered (11 s), to the
    // devices notified: not to the one found gone.
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let seen = sent();
            (seen == (2, 2)).then_some(()).ok_or(format!("{seen:?}"))
        },
    )
    .await;
    let overwrite = apple.received().pop().unwrap();
    assert_eq!(overwrite.collapse_id.as_deref(), Some(task.as_str()));
    assert_eq!(
        overwrite.payload["aps"]["alert"],
        json!({ "title": "Recalled", "body": "The sale is over" })
    );
    let overwrite = google.received().pop().unwrap();
    assert_eq!(overwrite.token, "fcm-o_fcm");
    assert_eq!(overwrite.message["android"]["collapse_key"], json!(task));
    assert_eq!(
        overwrite.message["notification"],
        json!({ "title": "Recalled", "body": "The sale is over" })
    );
    // Recorded once the providers' answers are in, a moment after the fakes took them.
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            let stats = statistics(&server, &task).await;
            (stats["OfflinePush"]["Overwritten"] == 2)
                .then_some(())
                .ok_or(format!("{stats}"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sent(), (2, 2), "overwritten once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_outcome_is_a_push_all_member_push_event() {
    let providers = Providers::start().await;
    let mut receiver = CallbackReceiver::start(0).await;
    let server = providers.server_reporting_to(Some(&receiver.url));
    let ok = register(&server, "c_ok", "apns", json!(apns_token(51))).await;
    let gone = register(&server, "c_gone", "fcm", json!("fcm-c_gone")).await;
    providers.google.script("fcm-c_gone", Script::Gone);
    let body = json!({
        "MsgRandom": 1301,
        "MsgBody": text_body("hi"),
        "OfflinePushInfo": { "Title": "t" },
    });
    let task = server.ok(&PUSH_APP, "timpush/push", body).await["TaskId"]
        .as_str()
        .unwrap()
        .to_string();
    // No session is online: the callbacks are the devices' (EventType 1), one per device.
    let mut events = Vec::new();
    while events.len() < 2 {
        let body = receiver.next_body().await;
        events.extend(body["Events"].as_array().expect("Events").iter().cloned());
    }
    events.sort_by_key(|e| e["To_Account"].as_str().unwrap_or_default().to_string());
    let fields = |e: &Value| {
        (
            e["EventType"].clone(),
            e["TaskId"].clone(),
            e["To_Account"].clone(),
            e["PushPlatform"].clone(),
            e["RegistrationID"].clone(),
            e["ErrCode"].clone(),
        )
    };
    assert_eq!(
        events.iter().map(fields).collect::<Vec<_>>(),
        vec![
            (
                json!(1),
                json!(task),
                json!("c_gone"),
                json!(2),
                json!(gone),
                json!(1)
            ),
            (
                json!(1),
                json!(task),
                json!("c_ok"),
                json!(1),
                json!(ok),
                json!(0)
            ),
        ],
        "{events:?}"
    );
    assert!(
        events[0]["ErrInfo"]
            .as_str()
            .unwrap()
            .contains("UNREGISTERED"),
        "{events:?}"
    );
    assert_eq!(events[1]["CallbackCommand"], "Push.AllMemberPush");
}
