//! The console in a real browser (issue 11): Debian's chromium, headless, driven over WebDriver
//! (fantoccini) through the chromedriver that scripts/test.sh starts once for the run
//! (`TAGCAST_TEST_WEBDRIVER`); run alone, a test starts its own.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::*;

/// A browser session, and the chromedriver this test started if it had to.
struct Browser {
    client: Client,
    _driver: Option<Driver>,
}

/// A chromedriver of this test's own, stopped when it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    async fn open() -> Self {
        let (url, driver) = match std::env::var("TAGCAST_TEST_WEBDRIVER") {
            Ok(url) => (url, None),
            Err(_) => {
                let (url, driver) = own_driver();
                (url, Some(driver))
            }
        };
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"] }),
        );
        let mut client = None;
        // chromedriver may still be starting.
        for _ in 0..50 {
            let plain = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(plain)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(connected) => {
                    client = Some(connected);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client
            .unwrap_or_else(|| panic!("no WebDriver at {url}: run scripts/browser.sh install"));
        Browser {
            client,
            _driver: driver,
        }
    }

    /// The text of the first element matching `css`, once it has some (within 10 s).
    async fn text_of(&self, css: &str) -> String {
        let element = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        for _ in 0..100 {
            let text = element.text().await.unwrap_or_default();
            if !text.trim().is_empty() {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} stayed empty");
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.element(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// The first element matching `css`, once there is one (within 10 s).
    async fn element(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.expect(css);
    }

    /// Chooses the option of value `value` in the select `css`.
    async fn choose(&self, css: &str, value: &str) {
        let select = self.element(css).await;
        select.select_by_value(value).await.expect(css);
    }

    /// The text of `css` once `done` holds for it (within 10 s).
    async fn text_when(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                text = element.text().await.unwrap_or_default();
                if done(&text) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} stayed {text:?}");
    }

    /// Refreshes the pushes page until the text of `css` is `wanted` (within 10 s).
    async fn refreshed_until(&self, css: &str, wanted: &str) {
        let mut text = String::new();
        for _ in 0..50 {
            self.click("#pushes-refresh").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Each refresh makes the rows anew: look the cell up again.
            if let Ok(cell) = self.client.find(Locator::Css(css)).await {
                text = cell.text().await.unwrap_or_default();
            }
            if text == wanted {
                return;
            }
        }
        panic!("{css} stayed {text:?}, not {wanted:?}");
    }

    /// Shows the console's page `name` and waits for it.
    async fn page(&self, name: &str) {
        let go = format!("location.hash = '#{name}'");
        self.client.execute(&go, vec![]).await.expect("navigate");
        self.element(&format!("section#{name}:not([hidden])")).await;
    }

    /// Loads `server`'s console, at `fragment` (e.g. `#accounts`, or "").
    async fn console(&self, server: &Server, fragment: &str) {
        let page = format!("{}/console{fragment}", server.base);
        self.client.goto(&page).await.expect("the console loads");
    }

    /// Finds `account` on the accounts page, which is shown.
    async fn find_account(&self, account: &str) {
        self.fill("#account-id", account).await;
        self.click("#account-form button").await;
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Starts chromedriver on a free port: its URL, and the process.
fn own_driver() -> (String, Driver) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver: run scripts/browser.sh install");
    (format!("http://127.0.0.1:{port}"), Driver(child))
}

/// Signs in to APP through the page's form with `secret` as the app's key.
async fn sign_in_with_key(browser: &Browser, server: &Server, secret: &str) {
    sign_in_to(browser, server, &APP, secret).await;
}

/// Signs in to `app` as its admin through the page's form with `secret` as the app's key.
async fn sign_in_to(browser: &Browser, server: &Server, app: &TestApp, secret: &str) {
    browser.console(server, "").await;
    browser.fill("#sdkappid", &app.sdkappid.to_string()).await;
    browser.fill("#identifier", app.admin).await;
    browser.fill("#secret", secret).await;
    let submit = browser
        .client
        .find(Locator::Css("#sign-in-form button"))
        .await
        .unwrap();
    submit.click().await.expect("submit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_key_works_and_a_wrong_key_shows_the_apis_error() {
    let server = Server::start();
    let browser = Browser::open().await;
    sign_in_with_key(&browser, &server, "not the key").await;
    let error = browser.text_of("#sign-in-error").await;
    assert!(error.starts_with("70009:"), "{error}");
    sign_in_with_key(&browser, &server, APP.key).await;
    browser.element("section#overview:not([hidden])").await;
    let app = browser.text_of("#app").await;
    assert_eq!(app, format!("{} ({})", APP.sdkappid, APP.admin));
    // The key is not left in the page, and the session is an HttpOnly cookie it cannot read.
    let secret = browser.client.find(Locator::Css("#secret")).await.unwrap();
    assert_eq!(secret.prop("value").await.unwrap().as_deref(), Some(""));
    let cookies = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""));
    // Signing out through the page (with its CSRF token) ends the session.
    browser.click("#sign-out").await;
    browser.element("#pages[hidden]").await;
    browser.element("section#sign-in:not([hidden])").await;
    let (status, _) = session_of(&browser).await;
    assert_eq!(status, 401);
    browser.close().await;
}

/// The status and answer of `api/session`, asked from the page (with its cookie).
async fn session_of(browser: &Browser) -> (u64, Value) {
    let ask = "const done = arguments[arguments.length - 1];
        fetch('/console/api/session').then(async (r) => done([r.status, await r.json()]));";
    let answer = browser.client.execute_async(ask, vec![]).await.unwrap();
    (answer[0].as_u64().unwrap(), answer[1].clone())
}

/// A browser signed in to APP's console as its admin.
async fn signed_in(server: &Server) -> Browser {
    signed_in_to(server, &APP).await
}

/// A browser signed in to `app`'s console as its admin.
async fn signed_in_to(server: &Server, app: &TestApp) -> Browser {
    let browser = Browser::open().await;
    sign_in_to(&browser, server, app, app.key).await;
    browser.element("#pages:not([hidden])").await;
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_page_offers_only_signing_in() {
    let server = Server::start();
    let browser = Browser::open().await;
    browser.console(&server, "#accounts").await;
    browser.element("section#sign-in:not([hidden])").await;
    for hidden in ["#accounts", "#pages", "#app-bar"] {
        let element = browser.element(hidden).await;
        assert!(!element.is_displayed().await.unwrap(), "{hidden} is shown");
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_edited_in_the_page_are_what_get_tag_answers() {
    let server = Server::start();
    import(&server, &APP, &["xiaoming"]).await;
    let browser = signed_in(&server).await;
    browser.page("accounts").await;
    browser.find_account("xiaoming").await;
    browser
        .text_when("#account-status", |t| t.contains("exists"))
        .await;
    browser.fill("#tag-input", "gold, weekly").await;
    browser.click("#tag-form button").await;
    browser
        .text_when("#account-tags", |t| {
            t.contains("gold") && t.contains("weekly")
        })
        .await;
    assert_eq!(
        tags_of(&server, &APP, "xiaoming").await,
        json!(["gold", "weekly"])
    );
    browser
        .click("#account-tags button[aria-label='Remove tag gold']")
        .await;
    browser
        .text_when("#account-tags", |t| !t.contains("gold"))
        .await;
    assert_eq!(tags_of(&server, &APP, "xiaoming").await, json!(["weekly"]));
    // The API's own error, with its code: a tag over 50 bytes.
    browser.fill("#tag-input", &"t".repeat(51)).await;
    browser.click("#tag-form button").await;
    let error = browser.text_of("#account-error").await;
    assert!(error.contains("xiaoming: 9"), "{error}");
    assert_eq!(tags_of(&server, &APP, "xiaoming").await, json!(["weekly"]));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builders_count_is_audience_count_and_follows_changes() {
    let server = Server::start();
    server
        .ok(
            &APP,
            "timpush/set_attr_name",
            json!({ "AttrNames": { "0": "city" } }),
        )
        .await;
    let accounts: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
    let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
    import(&server, &APP, &names).await;
    let user_tags: Vec<Value> = accounts
        .iter()
        .enumerate()
        .map(|(i, account)| {
            let tags: Vec<&str> = [(i % 2 == 0, "A"), (i % 3 == 0, "B")]
                .into_iter()
                .filter_map(|(has, tag)| has.then_some(tag))
                .collect();
            json!({ "To_Account": account, "Tags": tags })
        })
        .collect();
    server
        .ok(&APP, "timpush/add_tag", json!({ "UserTags": user_tags }))
        .await;
    let user_attrs: Vec<Value> = accounts
        .iter()
        .enumerate()
        .map(|(i, account)| {
            let city = ["X", "Y", "Z", "Z", "X"][i % 5];
            json!({ "To_Account": account, "Attrs": { "city": city } })
        })
        .collect();
    server
        .ok(&APP, "timpush/set_attr", json!({ "UserAttrs": user_attrs }))
        .await;

    let browser = signed_in(&server).await;
    browser.page("audience").await;
    // (tag A AND NOT tag B) OR attr city = X
    browser.choose("#kind-r", "Or").await;
    browser.click("[data-path='r'] > .add .add-group").await;
    browser.click("[data-path='r-0'] > .add .add-tag").await;
    browser.fill("#tag-r-0-0", "A").await;
    browser.click("[data-path='r-0'] > .add .add-not").await;
    browser.fill("#tag-r-0-1-0", "B").await;
    browser.click("[data-path='r'] > .add .add-attr").await;
    browser.fill("#value-r-1", "X").await;
    let expression = json!({ "Or": [
        { "And": [{ "Tag": "A" }, { "Not": { "Tag": "B" } }] },
        { "Attr": "city", "Eq": "X" },
    ] });
    let json_shown = browser.text_of("#audience-json").await;
    assert_eq!(
        serde_json::from_str::<Value>(&json_shown).unwrap(),
        json!({ "Audience": expression })
    );
    let expected = audience_count(&server, &APP, expression).await;
    assert!(expected > 0 && expected < 40, "{expected}");
    let count = browser
        .text_when("#count", |t| t == expected.to_string())
        .await;
    assert_eq!(count, expected.to_string());
    // Change it: city = Y instead; the count follows.
    browser.fill("#value-r-1", "Y").await;
    let changed = json!({ "Or": [
        { "And": [{ "Tag": "A" }, { "Not": { "Tag": "B" } }] },
        { "Attr": "city", "Eq": "Y" },
    ] });
    let expected_now = audience_count(&server, &APP, changed).await;
    assert_ne!(expected_now, expected, "the change must change the count");
    browser
        .text_when("#count", |t| t == expected_now.to_string())
        .await;
    // An incomplete condition shows the API's error: an empty tag is 90040.
    browser.click("[data-path='r'] > .add .add-tag").await;
    let error = browser.text_of("#audience-error").await;
    assert!(error.starts_with("90040:"), "{error}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_sent_from_the_page_reaches_a_client_and_so_does_its_revoke() {
    let server = Server::start();
    import(&server, &APP, &["alice", "bob"]).await;
    let mut alice = crate::ws::Client::connect(&server, &APP, "alice").await;
    let browser = signed_in(&server).await;
    browser.page("compose").await;
    browser.fill("#compose-text", "Spring sale").await;
    browser.fill("#compose-title-field", "News").await;
    let preview = browser.text_when("#preview", |t| t.contains("News")).await;
    assert!(preview.contains("Spring sale"), "{preview}");
    browser.click("#compose-form button[type=submit]").await;
    let everyone = server.ok(&APP, "tagcast/audience_count", json!({})).await["Count"].clone();
    let confirm = browser.text_of("#confirm-count").await;
    assert_eq!(confirm, format!("Send to exactly {everyone} accounts?"));
    browser.click("#send").await;
    browser
        .text_when("#compose-sent", |t| t.starts_with("Sent"))
        .await;
    let task_id = browser
        .element("#compose-sent")
        .await
        .attr("data-task-id")
        .await
        .unwrap()
        .expect("the TaskId");
    let frame = alice.next_frame().await;
    assert_eq!(frame["Type"], "Push", "{frame}");
    assert_eq!(frame["TaskId"], task_id.as_str(), "{frame}");
    assert_eq!(frame["MsgBody"][0]["MsgContent"]["Text"], "Spring sale");
    assert_eq!(frame["OfflinePushInfo"]["Title"], "News");

    // The history shows it delivered to alice (recorded within a moment), then revokes it.
    browser.page("pushes").await;
    let row = format!("#push-rows tr[data-task='{task_id}']");
    browser
        .refreshed_until(&format!("{row} .at-send"), "1")
        .await;
    browser.click(&format!("{row} button.danger")).await;
    let revoke = alice.next_frame().await;
    assert_eq!(revoke, json!({ "Type": "Revoke", "TaskId": task_id }));
    browser
        .text_when(&format!("{row} .state"), |t| t == "revoked")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pushes_page_shows_each_funnel_step_and_an_account_only_its_own_pushes() {
    let providers = crate::notify::Providers::start().await;
    let server = providers.server();
    let tagged = ["f_live", "f_late", "f_phone", "f_refused"];
    import(&server, &PUSH_APP, &tagged).await;
    import(&server, &PUSH_APP, &["f_other"]).await;
    for account in tagged {
        add_tags(&server, &PUSH_APP, account, &["funnel"]).await;
    }
    add_tags(&server, &PUSH_APP, "f_other", &["elsewhere"]).await;
    for account in ["f_phone", "f_refused"] {
        let token = json!(format!("fcm-{account}"));
        crate::notify::register(&server, account, "fcm", token).await;
    }
    providers
        .google
        .script("fcm-f_refused", tagcast_fakes::Script::BadRequest);
    let mut live = crate::ws::Client::connect(&server, &PUSH_APP, "f_live").await;
    let notify = json!({ "OfflinePushInfo": { "Title": "Funnel" } });
    let funnel = |tag: &str| {
        let mut body = notify.clone();
        body["Condition"] = json!({ "TagsAnd": [tag] });
        body
    };
    let task = crate::ws::push(&server, &PUSH_APP, 70, funnel("funnel")).await;
    let not_theirs = crate::ws::push(&server, &PUSH_APP, 71, funnel("elsewhere")).await;
    assert_eq!(live.next_frame().await["TaskId"], task);
    let mut late = crate::ws::Client::connect(&server, &PUSH_APP, "f_late").await;
    assert_eq!(late.next_frame().await["TaskId"], task);

    // What the page must show, as the API reports it once every step is recorded.
    let window = json!({ "StartTime": now() - 60, "EndTime": now() + 60, "TaskID": [task] });
    let (loss, _) = eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let stats = server
                .ok(
                    &PUSH_APP,
                    "timpush/all_member_push_statistics",
                    window.clone(),
                )
                .await;
            let fcm = &stats["Results"][0]["OfflinePush"]["Platforms"][1];
            let done = stats["Results"][0]["DeliveredCount"] == 2
                && fcm["Accepted"] == 1
                && fcm["Failed"] == 1;
            match done {
                true => Ok(server
                    .ok(&PUSH_APP, "timpush/all_member_push_loss", window.clone())
                    .await),
                false => Err(stats.to_string()),
            }
        },
    )
    .await;
    let reason = loss["Results"][0]["PlatformReadyToSendLoss"][0]["ErrCode"]
        .as_str()
        .expect("the refused device's reason")
        .to_string();
    assert!(!reason.is_empty(), "{loss}");

    let browser = signed_in_to(&server, &PUSH_APP).await;
    browser.page("pushes").await;
    let row = format!("#push-rows tr[data-task='{task}']");
    browser
        .refreshed_until(&format!("{row} .at-send"), "1")
        .await;
    let cells = [
        ".audience",
        ".at-send",
        ".caught-up",
        ".accepted",
        ".failed",
    ];
    let mut shown = Vec::new();
    for cell in cells {
        shown.push(browser.text_of(&format!("{row} {cell}")).await);
    }
    assert_eq!(
        shown,
        ["4", "1", "1", "1", &format!("fcm {reason}: 1")],
        "audience, at send, on reconnect, devices accepted, failed by reason"
    );

    browser.page("accounts").await;
    for (account, theirs, status, not_theirs) in [
        ("f_late", &task, "Delivered on reconnect", &not_theirs),
        ("f_other", &not_theirs, "Pending", &task),
    ] {
        browser.find_account(account).await;
        let pushes = browser
            .text_when("#account-pushes", |t| t.contains(theirs.as_str()))
            .await;
        assert!(pushes.contains(status), "{account}: {pushes}");
        assert!(!pushes.contains(not_theirs.as_str()), "{account}: {pushes}");
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_receives_a_push_sent_through_the_rest_api() {
    let server = Server::start();
    let browser = signed_in(&server).await;
    browser.page("live").await;
    browser.fill("#live-account", "watcher").await;
    browser.click("#live-connect").await;
    browser
        .text_when("#live-frames", |t| t.contains("connected"))
        .await;
    let r = server
        .ok(
            &APP,
            "timpush/batch",
            json!({
                "From_Account": APP.admin,
                "To_Account": ["watcher"],
                "MsgRandom": 4242,
                "MsgBody": crate::ws::text_body("to the live view"),
                "OfflinePushInfo": { "Title": "Live" },
            }),
        )
        .await;
    let task_id = r["TaskId"].as_str().unwrap().to_string();
    let frames = browser
        .text_when("#live-frames", |t| t.contains(&task_id))
        .await;
    assert!(frames.contains("to the live view"), "{frames}");
    browser.close().await;
}

/// Runs axe-core (scripts/browser.sh install fetches it) on the page shown: its serious and
/// critical violations.
async fn accessibility_violations(browser: &Browser) -> Vec<Value> {
    let path = std::env::var("TAGCAST_TEST_AXE").unwrap_or_else(|_| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        format!("{root}/.cache/axe-core-4.14.1/axe.min.js")
    });
    let axe = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}: run scripts/browser.sh install"));
    browser
        .client
        .execute(&axe, vec![])
        .await
        .expect("axe loads");
    let run = "const done = arguments[arguments.length - 1];
        axe.run(document, { resultTypes: ['violations'] })
          .then((r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target) }))))
          .catch((e) => done([{ id: 'axe failed', help: String(e) }]));";
    let violations = browser
        .client
        .execute_async(run, vec![])
        .await
        .expect("axe runs");
    violations.as_array().cloned().unwrap_or_default()
}

/// Where the screenshots go, when asked for (`TAGCAST_TEST_SCREENSHOTS=docs/screenshots`).
fn screenshot_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("TAGCAST_TEST_SCREENSHOTS")?;
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    Some(root.join(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_the_accessibility_check_at_desktop_and_phone_width() {
    let server = Server::start();
    server
        .ok(
            &APP,
            "timpush/set_attr_name",
            json!({ "AttrNames": { "0": "city", "1": "age" } }),
        )
        .await;
    import(&server, &APP, &["xiaoming", "xiaohong"]).await;
    server
        .ok(
            &APP,
            "timpush/add_tag",
            json!({ "UserTags": [{ "To_Account": "xiaoming", "Tags": ["gold", "weekly"] }] }),
        )
        .await;
    crate::ws::push(&server, &APP, 7, json!({})).await;
    let browser = Browser::open().await;
    browser.console(&server, "").await;
    let mut failures = Vec::new();
    for (width, height, suffix) in [(1280, 900, ""), (390, 844, "-phone")] {
        browser
            .client
            .set_window_rect(0, 0, width, height)
            .await
            .expect("resize");
        if suffix.is_empty() {
            check_page(&browser, "sign-in", suffix, &mut failures).await;
            sign_in_with_key(&browser, &server, APP.key).await;
            browser.element("#pages:not([hidden])").await;
        }
        for page in [
            "overview",
            "accounts",
            "attributes",
            "audience",
            "compose",
            "pushes",
            "live",
        ] {
            browser.page(page).await;
            fill_in(&browser, page).await;
            check_page(&browser, page, suffix, &mut failures).await;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    browser.close().await;
}

/// Gives `page` something to show, as an operator would.
async fn fill_in(browser: &Browser, page: &str) {
    match page {
        "overview" => drop(
            browser
                .text_when("#overview-figures", |t| t.contains("Accounts"))
                .await,
        ),
        "accounts" => {
            browser.find_account("xiaoming").await;
            browser
                .text_when("#account-tags", |t| t.contains("gold"))
                .await;
        }
        "attributes" => {
            browser.element("#attr-names input[name='name-9']").await;
        }
        "audience" => {
            if browser.client.find(Locator::Css("#tag-r-0")).await.is_err() {
                browser.click("[data-path='r'] > .add .add-tag").await;
                browser.fill("#tag-r-0", "gold").await;
            }
            browser.text_when("#count", |t| t == "1").await;
        }
        "compose" => {
            browser.fill("#compose-text", "Weekend offer").await;
            browser.fill("#compose-title-field", "News").await;
        }
        "pushes" => drop(
            browser
                .text_when("#push-rows", |t| t.contains("sent"))
                .await,
        ),
        _ => {}
    }
}

async fn check_page(browser: &Browser, page: &str, suffix: &str, failures: &mut Vec<String>) {
    for violation in accessibility_violations(browser).await {
        failures.push(format!("{page}{suffix}: {violation}"));
    }
    if let Some(dir) = screenshot_dir() {
        let png = browser.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{page}{suffix}.png")), png).expect("screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_drops_repeated_task_ids_and_backs_off_when_refused() {
    let server = Server::start();
    let browser = Browser::open().await;
    browser.console(&server, "").await;
    // A refused handshake (no such app) closes each attempt: the waits double from 100 ms up
    // to the 400 ms cap, each between half and all of its ceiling.
    let run = "const done = arguments[arguments.length - 1];
        import('/client/tagcast.js').then(({ TagcastClient }) => {
          const url = `ws://${location.host}/ws?sdkappid=7&identifier=x&usersig=x`;
          const client = new TagcastClient({ url, minDelay: 100, maxDelay: 400 });
          const pushes = [];
          client.addEventListener('push', (e) => pushes.push(e.detail.TaskId));
          for (const id of ['a', 'a', 'b', 'a']) client.receive(JSON.stringify({ Type: 'Push', TaskId: id }));
          client.receive('not json');
          const delays = [];
          client.addEventListener('state', (e) => {
            if (e.detail.state !== 'waiting') return;
            delays.push(e.detail.delay);
            if (delays.length === 5) { client.stop(); done({ pushes, delays }); }
          });
          client.start();
        }).catch((e) => done({ error: String(e) }));";
    let result = browser.client.execute_async(run, vec![]).await.unwrap();
    assert_eq!(result["pushes"], json!(["a", "b"]), "{result}");
    let delays: Vec<u64> = serde_json::from_value(result["delays"].clone()).expect("{result}");
    for (delay, ceiling) in delays.iter().zip([100, 200, 400, 400, 400]) {
        assert!(
            (ceiling / 2..=ceiling).contains(delay),
            "{delay} not within half and all of {ceiling}: {delays:?}"
        );
    }
    // Served to apps of any origin.
    let module = server
        .client()
        .get(format!("{}/client/tagcast.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(module.headers()["access-control-allow-origin"], "*");
    assert!(
        module
            .text()
            .await
            .unwrap()
            .contains("export class TagcastClient")
    );
    browser.close().await;
}
