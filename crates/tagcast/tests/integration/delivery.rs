//! End to end with real WebSocket clients: who receives a push, offline catch-up, revoke,
//! callbacks, idempotency across a restart, reports.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::ws::*;

/// Accounts and their tags: the audience tests select among them.
const PEOPLE: [(&str, &[&str]); 6] = [
    ("d_a", &["x"]),
    ("d_b", &["x", "y"]),
    ("d_c", &["y"]),
    ("d_d", &["z"]),
    ("d_e", &["x", "z"]),
    ("d_f", &[]),
];

async fn people(server: &Server) -> Vec<Client> {
    let names: Vec<&str> = PEOPLE.iter().map(|(n, _)| *n).collect();
    import(server, &PUSH_APP, &names).await;
    name_attrs(server, &PUSH_APP, json!({ "0": "city" })).await;
    for (name, tags) in PEOPLE {
        if !tags.is_empty() {
            add_tags(server, &PUSH_APP, name, tags).await;
        }
    }
    set_attrs(server, &PUSH_APP, "d_b", json!({ "city": "sz" })).await;
    set_attrs(server, &PUSH_APP, "d_e", json!({ "city": "bj" })).await;
    let mut clients = Vec::new();
    for name in names {
        clients.push(Client::connect(server, &PUSH_APP, name).await);
    }
    clients
}

#[tokio::test]
async fn each_push_reaches_exactly_the_accounts_it_selects() {
    let server = Server::start();
    let mut clients = people(&server).await;
    let cases: [(Value, &[&str]); 5] = [
        (
            json!({ "Condition": { "TagsOr": ["x", "y"], "TagsNot": ["z"] } }),
            &["d_a", "d_b", "d_c"],
        ),
        (json!({ "Condition": { "TagsAnd": ["x", "y"] } }), &["d_b"]),
        (
            json!({ "Condition": { "TagsNot": ["x"] } }),
            &["d_c", "d_d", "d_f"],
        ),
        (
            json!({ "Condition": { "AttrsOr": { "city": "sz" } } }),
            &["d_b"],
        ),
        (
            json!({ "Audience": { "Or": [
                { "And": [{ "Tag": "x" }, { "Not": { "Attr": "city", "Eq": "sz" } }] },
                { "Attr": "city", "Exists": true }
            ] } }),
            &["d_a", "d_b", "d_e"],
        ),
    ];
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); PEOPLE.len()];
    for (i, (selector, receivers)) in cases.iter().enumerate() {
        let task = push(&server, &PUSH_APP, 100 + i as u32, selector.clone()).await;
        for (who, (name, _)) in PEOPLE.iter().enumerate() {
            if receivers.contains(name) {
                expected[who].push(task.clone());
            }
        }
    }
    let end = marker(&server, &PUSH_APP, 999).await;
    for (client, expected) in clients.iter_mut().zip(expected) {
        assert_eq!(
            client.pushes_until(&end).await,
            expected,
            "{}",
            client.account
        );
    }
}

#[tokio::test]
async fn a_push_frame_carries_the_message() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["frame_a"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "frame_a").await;
    let body = json!({
        "From_Account": "shop",
        "MsgRandom": 5,
        "MsgBody": text_body("sale"),
        "OfflinePushInfo": { "Title": "t", "Desc": "d" },
    });
    let task = server.ok(&PUSH_APP, "timpush/push", body).await["TaskId"].clone();
    let frame = client.next_frame().await;
    assert_eq!(frame["Type"], "Push");
    assert_eq!(frame["TaskId"], task);
    assert_eq!(frame["From_Account"], "shop");
    assert_eq!(frame["MsgBody"], text_body("sale"));
    assert_eq!(
        frame["OfflinePushInfo"],
        json!({ "Title": "t", "Desc": "d" })
    );
    let sent = frame["SendTime"].as_u64().expect("SendTime");
    assert!(
        sent.abs_diff(now()) < 600,
        "SendTime {sent} is the push's time"
    );
}

#[tokio::test]
async fn an_offline_account_gets_missed_pushes_on_reconnect_in_order_and_once() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["off_a", "off_b"]).await;
    add_tags(&server, &PUSH_APP, "off_a", &["fan"]).await;
    let first = push(
        &server,
        &PUSH_APP,
        1,
        json!({ "Condition": { "TagsAnd": ["fan"] } }),
    )
    .await;
    let not_mine = push(
        &server,
        &PUSH_APP,
        2,
        json!({ "Condition": { "TagsAnd": ["nobody"] } }),
    )
    .await;
    let second = marker(&server, &PUSH_APP, 3).await;
    // im_push without MsgLifeTime is online only: an offline account never gets it.
    let online_only = server
        .ok(
            &PUSH_APP,
            "all_member_push/im_push",
            json!({ "MsgRandom": 4, "MsgBody": text_body("now") }),
        )
        .await["TaskId"]
        .clone();

    let mut client = Client::connect(&server, &PUSH_APP, "off_a").await;
    let first_frame = client.next_frame().await;
    let second_frame = client.next_frame().await;
    assert_eq!(
        [&first_frame["TaskId"], &second_frame["TaskId"]],
        [&json!(first), &json!(second)]
    );
    // Nothing else was in the backlog: neither the push for others nor the online-only one.
    let live = marker(&server, &PUSH_APP, 6).await;
    let rest = client.pushes_until(&live).await;
    assert!(
        rest.is_empty(),
        "only the account's stored pushes come from the backlog, got {rest:?} \
         (not mine: {not_mine}, online only: {online_only})"
    );
    client.close().await;

    let mut client = Client::connect(&server, &PUSH_APP, "off_a").await;
    let end = marker(&server, &PUSH_APP, 5).await;
    let again = client.pushes_until(&end).await;
    assert!(
        again.is_empty(),
        "nothing is delivered twice, got {again:?}"
    );
}

#[tokio::test]
async fn a_revoked_push_stops_and_connected_recipients_are_told() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["rv_online", "rv_offline"]).await;
    let mut online = Client::connect(&server, &PUSH_APP, "rv_online").await;
    let task = marker(&server, &PUSH_APP, 10).await;
    assert_eq!(online.next_frame().await["TaskId"], task);

    server
        .ok(&PUSH_APP, "timpush/revoke", json!({ "TaskId": task }))
        .await;
    let frame = online.next_frame().await;
    assert_eq!(frame, json!({ "Type": "Revoke", "TaskId": task }));
    let again = server
        .call(&PUSH_APP, "timpush/revoke", json!({ "TaskId": task }))
        .await;
    assert_fail(&again, 90050, &task);

    let mut offline = Client::connect(&server, &PUSH_APP, "rv_offline").await;
    let end = marker(&server, &PUSH_APP, 11).await;
    assert_eq!(
        offline.pushes_until(&end).await,
        Vec::<String>::new(),
        "the offline copy is withdrawn"
    );
    let stats = statistics(&server, &[&task]).await;
    assert_eq!(stats[0]["Revoked"], 1, "{stats}");
}

#[tokio::test]
async fn connecting_counts_as_logging_in() {
    let server = Server::start();
    assert_account_status(&server, &PUSH_APP, &[("newbie", "NotImported")]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "newbie").await;
    assert_account_status(&server, &PUSH_APP, &[("newbie", "Imported")]).await;
    add_tags(&server, &PUSH_APP, "newbie", &["fresh"]).await;
    let task = push(
        &server,
        &PUSH_APP,
        20,
        json!({ "Condition": { "TagsAnd": ["fresh"] } }),
    )
    .await;
    assert_eq!(client.next_frame().await["TaskId"], task);
}

#[tokio::test]
async fn a_websocket_with_a_bad_usersig_is_refused_with_its_code() {
    let server = Server::start();
    let other_key = tagcast_usersig::sign(PUSH_APP.sdkappid, "wrong-key", "ws_x", 3600, now());
    for (usersig, code) in [("", 70002), ("garbage", 70003), (other_key.as_str(), 70009)] {
        let url = ws_url(&server, &PUSH_APP, "ws_x", usersig).replacen("ws", "http", 1);
        let response = server.request(reqwest::Method::GET, &url, "").await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("JSON body");
        assert_fail(&body, code, "UserSig");
    }
}

#[tokio::test]
async fn batch_pushes_reach_the_listed_accounts() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["bt_a", "bt_b"]).await;
    let mut a = Client::connect(&server, &PUSH_APP, "bt_a").await;
    let mut b = Client::connect(&server, &PUSH_APP, "bt_b").await;
    let body = json!({
        "From_Account": "administrator",
        "To_Account": ["bt_a", "bt_ghost"],
        "MsgRandom": 30,
        "OfflinePushInfo": { "Title": "t", "Desc": "d" },
        "DataId": "biz-1",
    });
    let r = server.ok(&PUSH_APP, "timpush/batch", body).await;
    let task = r["TaskId"].as_str().expect("TaskId").to_string();
    assert!(task.starts_with("batch_"), "{task}");
    assert_eq!(error_list(&r), one_error("bt_ghost", 70107));
    let end = marker(&server, &PUSH_APP, 31).await;
    assert_eq!(a.pushes_until(&end).await, vec![task]);
    assert_eq!(b.pushes_until(&end).await, Vec::<String>::new());
}

#[tokio::test]
async fn msg_random_is_idempotent_across_a_restart() {
    let mut server = Server::start();
    import(&server, &PUSH_APP, &["idem_a"]).await;
    let first = marker(&server, &PUSH_APP, 4242).await;
    server.crash_and_restart();
    let again = marker(&server, &PUSH_APP, 4242).await;
    assert_eq!(again, first, "the same MsgRandom returns the first TaskId");
    let mut client = Client::connect(&server, &PUSH_APP, "idem_a").await;
    let end = marker(&server, &PUSH_APP, 4243).await;
    assert_eq!(
        client.pushes_until(&end).await,
        vec![first.clone()],
        "pushed once"
    );
    let r = server
        .ok(
            &PUSH_APP,
            "timpush/all_member_push_statistics",
            window(None),
        )
        .await;
    let tasks: Vec<&Value> = r["Results"]
        .as_array()
        .expect("Results")
        .iter()
        .map(|t| &t["TaskID"])
        .collect();
    assert_eq!(tasks, [&json!(first), &json!(end)]);
}

#[tokio::test]
async fn statistics_and_trace_come_from_recorded_deliveries() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["st_on", "st_off", "st_out"]).await;
    add_tags(&server, &PUSH_APP, "st_on", &["st"]).await;
    add_tags(&server, &PUSH_APP, "st_off", &["st"]).await;
    let mut online = Client::connect(&server, &PUSH_APP, "st_on").await;
    let task = push(
        &server,
        &PUSH_APP,
        40,
        json!({ "Condition": { "TagsAnd": ["st"] } }),
    )
    .await;
    assert_eq!(online.next_frame().await["TaskId"], task);

    let stats = statistics_once_delivered(&server, &task, 1).await;
    assert_eq!(stats[0]["AudienceCount"], 2);
    assert_eq!(stats[0]["Type"], "Tag");
    assert_eq!(stats[0]["Revoked"], 0);

    let trace = |user: &'static str| {
        let server = &server;
        let task = task.clone();
        async move {
            server
                .ok(
                    &PUSH_APP,
                    "timpush/all_member_push_trace",
                    json!({ "TaskID": task, "UserID": user }),
                )
                .await["InstanceTrace"]
                .clone()
        }
    };
    let delivered = trace("st_on").await;
    assert_eq!(
        delivered[0]["IMCommitStat"]["IMStat"]["PushStatus"],
        "Delivered"
    );
    assert_eq!(
        delivered[0]["PushTime"].as_str().map(str::len),
        Some(19),
        "{delivered}"
    );
    let pending = trace("st_off").await;
    assert_eq!(
        pending[0]["IMCommitStat"]["IMStat"]["PushStatus"],
        "Pending"
    );
    assert_eq!(trace("st_out").await, json!([]));
    assert_eq!(
        stats[0]["CaughtUpCount"], 0,
        "a delivery at send is not a catch-up"
    );

    // The offline account connects: its delivery comes from the backlog.
    let mut late = Client::connect(&server, &PUSH_APP, "st_off").await;
    assert_eq!(late.next_frame().await["TaskId"], task);
    let stats = statistics_once_delivered(&server, &task, 2).await;
    assert_eq!(stats[0]["CaughtUpCount"], 1, "{stats}");
}

#[tokio::test]
async fn account_pushes_lists_the_accounts_own_pushes_and_how_each_reached_it() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["ap_me", "ap_other"]).await;
    add_tags(&server, &PUSH_APP, "ap_me", &["ap"]).await;
    let tagged = json!({ "Condition": { "TagsAnd": ["ap"] } });
    let caught_up = push(&server, &PUSH_APP, 60, tagged.clone()).await;
    push(
        &server,
        &PUSH_APP,
        61,
        json!({ "Condition": { "TagsAnd": ["nobody"] } }),
    )
    .await;
    let revoked = push(&server, &PUSH_APP, 62, tagged.clone()).await;
    server
        .ok(&PUSH_APP, "timpush/revoke", json!({ "TaskId": revoked }))
        .await;
    let mut client = Client::connect(&server, &PUSH_APP, "ap_me").await;
    assert_eq!(client.next_frame().await["TaskId"], caught_up);
    let live = push(&server, &PUSH_APP, 63, tagged).await;
    assert_eq!(client.next_frame().await["TaskId"], live);

    let (pushes, _) = eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let r = account_pushes(&server, "ap_me").await;
            let delivered = r["Pushes"].as_array().map_or(0, |p| {
                p.iter().filter(|p| p["PushStatus"] == "Delivered").count()
            });
            match delivered == 2 {
                true => Ok(r),
                false => Err(r.to_string()),
            }
        },
    )
    .await;
    assert_eq!(pushes["Complete"], 1);
    let list = pushes["Pushes"].as_array().expect("Pushes");
    let summary: Vec<(&str, &str, u64)> = list
        .iter()
        .map(|p| {
            let id = p["TaskID"].as_str().unwrap_or_default();
            let status = p["PushStatus"].as_str().unwrap_or_default();
            (id, status, p["CaughtUp"].as_u64().unwrap_or(9))
        })
        .collect();
    assert_eq!(
        summary,
        [
            (live.as_str(), "Delivered", 0),
            (revoked.as_str(), "Revoked", 0),
            (caught_up.as_str(), "Delivered", 1),
        ],
        "newest first, only pushes whose audience has the account: {pushes}"
    );
    assert_eq!(list[0]["Type"], "Tag");
    assert!(
        list[0]["DeliveredTime"].as_u64().unwrap_or(0)
            >= list[0]["TaskTime"].as_u64().unwrap_or(u64::MAX)
    );
    assert_eq!(list[1]["DeliveredTime"], 0);
    // Every push in the window was to everyone or tagged: the other account has none of them.
    assert_eq!(
        account_pushes(&server, "ap_other").await["Pushes"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_pushes_lists_at_most_100_and_says_when_it_left_older_ones_out() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["apl_me"]).await;
    let mut tasks = Vec::new();
    for n in 0..101 {
        tasks.push(marker(&server, &PUSH_APP, 700 + n).await);
    }
    let answer = account_pushes(&server, "apl_me").await;
    let listed: Vec<&str> = answer["Pushes"]
        .as_array()
        .expect("Pushes")
        .iter()
        .filter_map(|p| p["TaskID"].as_str())
        .collect();
    let newest: Vec<&str> = tasks.iter().rev().take(100).map(String::as_str).collect();
    assert_eq!(listed, newest, "the newest 100, newest first");
    assert_eq!(answer["Complete"], 0, "the oldest push was left out");
}

#[tokio::test]
async fn account_pushes_refuses_what_it_cannot_answer_with_the_documented_codes() {
    let server = Server::start();
    import(&server, &PUSH_APP, &["apx_me"]).await;
    let path = "tagcast/account_pushes";
    let now = now();
    let week_and_a_second =
        json!({ "UserID": "apx_me", "StartTime": now - 604_801, "EndTime": now });
    assert_fail(
        &server.call(&PUSH_APP, path, week_and_a_second).await,
        90001,
        "EndTime",
    );
    let backwards = json!({ "UserID": "apx_me", "StartTime": now, "EndTime": now - 1 });
    assert_fail(
        &server.call(&PUSH_APP, path, backwards).await,
        90001,
        "EndTime",
    );
    let unknown = json!({ "UserID": "apx_nobody", "StartTime": now - 60, "EndTime": now });
    assert_fail(
        &server.call(&PUSH_APP, path, unknown).await,
        70107,
        "apx_nobody",
    );
    let wrong_type = json!({ "UserID": 7, "StartTime": now - 60, "EndTime": now });
    assert_fail(
        &server.call(&PUSH_APP, path, wrong_type).await,
        90001,
        "UserID",
    );
    let no_window = json!({ "UserID": "apx_me" });
    assert_fail(
        &server.call(&PUSH_APP, path, no_window).await,
        90001,
        "StartTime",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_leaves_the_store_keep_secs_after_it_ends_and_a_live_one_stays() {
    let server = Server::start_with("[reports]\nkeep_secs = 2\n", None);
    import(&server, &PUSH_APP, &["kp_on", "kp_off"]).await;
    let mut online = Client::connect(&server, &PUSH_APP, "kp_on").await;
    // Online only: it ends as it is made.
    let body = json!({ "MsgRandom": 80, "MsgBody": text_body("now"), "MsgLifeTime": 0 });
    let ended = server.ok(&PUSH_APP, "all_member_push/im_push", body).await["TaskId"]
        .as_str()
        .expect("TaskId")
        .to_string();
    let stored = marker(&server, &PUSH_APP, 81).await;
    assert_eq!(online.next_frame().await["TaskId"], ended);
    assert_eq!(online.next_frame().await["TaskId"], stored);
    assert_eq!(
        statistics(&server, &[&ended]).await[0]["TaskID"],
        ended.as_str()
    );

    let (gone, _) = eventually(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            let r = server
                .call(
                    &PUSH_APP,
                    "timpush/all_member_push_statistics",
                    window(Some(&[&ended])),
                )
                .await;
            match r["ErrorCode"] == 90049 {
                true => Ok(r),
                false => Err(r.to_string()),
            }
        },
    )
    .await;
    assert_fail(&gone, 90049, &ended);
    let trace = json!({ "TaskID": ended, "UserID": "kp_on" });
    assert_fail(
        &server
            .call(&PUSH_APP, "timpush/all_member_push_trace", trace)
            .await,
        90049,
        &ended,
    );
    let listed = account_pushes(&server, "kp_on").await["Pushes"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["TaskID"], stored.as_str());
    // The stored push still reaches an account that connects, and is still reported.
    let mut late = Client::connect(&server, &PUSH_APP, "kp_off").await;
    assert_eq!(late.next_frame().await["TaskId"], stored);
    let stats = statistics_once_delivered(&server, &stored, 2).await;
    assert_eq!(stats[0]["CaughtUpCount"], 1);
}

/// `tagcast/account_pushes` for `user` over the last and next hour.
async fn account_pushes(server: &Server, user: &str) -> Value {
    let mut body = window(None);
    body["UserID"] = json!(user);
    server.ok(&PUSH_APP, "tagcast/account_pushes", body).await
}

#[tokio::test]
async fn callbacks_report_each_delivery_to_the_app() {
    let CallbackReceiver {
        url, mut received, ..
    } = CallbackReceiver::start(0).await;
    let server = Server::start_with_callback(&url);
    import(&server, &PUSH_APP, &["cb_a"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "cb_a").await;
    let body = json!({ "MsgRandom": 50, "MsgBody": text_body("hi"), "DataId": "order-7" });
    let task = server.ok(&PUSH_APP, "timpush/push", body).await["TaskId"].clone();
    assert_eq!(client.next_frame().await["TaskId"], task);

    let (query, body) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("a callback within 10 s")
        .expect("callback receiver running");
    assert!(
        query.contains(&format!("SdkAppid={}", PUSH_APP.sdkappid)),
        "{query}"
    );
    assert!(
        query.contains("CallbackCommand=Push.AllMemberPush"),
        "{query}"
    );
    let event = &body["Events"][0];
    assert_eq!(event["CallbackCommand"], "Push.AllMemberPush");
    assert_eq!(event["TaskId"], task);
    assert_eq!(event["To_Account"], "cb_a");
    assert_eq!(event["EventType"], 2);
    assert_eq!(event["ErrCode"], 0);
    assert_eq!(event["DataId"], "order-7");
}

#[tokio::test]
async fn a_refused_callback_is_retried_until_the_app_takes_it() {
    let CallbackReceiver {
        url, mut received, ..
    } = CallbackReceiver::start(2).await;
    let server = Server::start_with_callback(&url);
    import(&server, &PUSH_APP, &["cb_retry"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "cb_retry").await;
    let task = marker(&server, &PUSH_APP, 60).await;
    assert_eq!(client.next_frame().await["TaskId"], task);
    let (_, body) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("the third attempt is taken within 10 s")
        .expect("callback receiver running");
    assert_eq!(body["Events"][0]["TaskId"], task);
    assert_eq!(body["Events"][0]["To_Account"], "cb_retry");
}

// Multi-threaded: the receiver answers while this thread waits for the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_events_wait_in_the_store_through_a_crash() {
    let mut receiver = CallbackReceiver::start(0).await;
    receiver
        .refusing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut server = Server::start_with_callback(&receiver.url);
    import(&server, &PUSH_APP, &["cb_crash"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "cb_crash").await;
    let task = marker(&server, &PUSH_APP, 62).await;
    assert_eq!(client.next_frame().await["TaskId"], task);
    // Refused once: the event waits for its retry when the server dies.
    receiver.await_refused(1).await;
    server.crash_and_restart();
    receiver
        .refusing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let body = receiver.next_body().await;
    assert_eq!(body["Events"][0]["TaskId"], task);
    assert_eq!(body["Events"][0]["To_Account"], "cb_crash");
}

// Multi-threaded: the receiver must answer while this thread waits for the server to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_sends_the_last_callback_events_first() {
    // The first attempt is refused, so the event is waiting for its retry when the stop comes.
    let CallbackReceiver {
        url, mut received, ..
    } = CallbackReceiver::start(1).await;
    let mut server = Server::start_with_callback(&url);
    import(&server, &PUSH_APP, &["cb_stop"]).await;
    let mut client = Client::connect(&server, &PUSH_APP, "cb_stop").await;
    let task = marker(&server, &PUSH_APP, 61).await;
    assert_eq!(client.next_frame().await["TaskId"], task);
    let status = server.graceful_restart();
    assert!(status.success(), "{status}");
    // The stopped process sent it before it exited.
    let (_, body) = received
        .try_recv()
        .expect("the event was sent before the server exited");
    assert_eq!(body["Events"][0]["TaskId"], task);
    assert_eq!(body["Events"][0]["To_Account"], "cb_stop");
}

async fn statistics(server: &Server, tasks: &[&str]) -> Value {
    let r = server
        .ok(
            &PUSH_APP,
            "timpush/all_member_push_statistics",
            window(Some(tasks)),
        )
        .await;
    r["Results"].clone()
}

/// The statistics of `task` once its deliveries to `accounts` accounts are recorded (they are
/// recorded a moment after they happen).
async fn statistics_once_delivered(server: &Server, task: &str, accounts: u64) -> Value {
    let probe = || async {
        let stats = statistics(server, &[task]).await;
        match stats[0]["DeliveredCount"] == accounts {
            true => Ok(stats),
            false => Err(stats.to_string()),
        }
    };
    eventually(Duration::from_secs(10), Duration::from_millis(50), probe)
        .await
        .0
}

/// A statistics request over the last day, for `tasks` or all of them.
fn window(tasks: Option<&[&str]>) -> Value {
    let mut body = json!({ "StartTime": now() - 3600, "EndTime": now() + 3600 });
    if let Some(tasks) = tasks {
        body["TaskID"] = json!(tasks);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_sent_at_once_all_arrive_in_order() {
    let server = Server::start();
    let names = ["burst_a", "burst_b", "burst_c"];
    import(&server, &PUSH_APP, &names).await;
    let mut clients = Vec::new();
    for name in names {
        clients.push(Client::connect(&server, &PUSH_APP, name).await);
    }
    let pushes = (0..40u32).map(|n| marker(&server, &PUSH_APP, 500 + n));
    let mut tasks = futures_util::future::join_all(pushes).await;
    // Sequence numbers give the order the server published them in.
    tasks.sort_by_key(|id| {
        u64::from_str_radix(id.split('_').nth(2).unwrap_or("0"), 16).unwrap_or(0)
    });
    let end = marker(&server, &PUSH_APP, 999).await;
    for client in &mut clients {
        assert_eq!(client.pushes_until(&end).await, tasks, "{}", client.account);
    }
}
