//! The console in a real browser (issue 11): Debian's chromium, headless, driven over WebDriver
//! (fantoccini) through the chromedriver that scripts/test.sh starts once for the run
//! (`TAGCAST_TEST_WEBDRIVER`); run alone, a test starts its own.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

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
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
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

/// Signs in through the page's form with `secret` as the app's key.
async fn sign_in_with_key(browser: &Browser, server: &Server, secret: &str) {
    let page = format!("{}/console", server.base);
    browser.client.goto(&page).await.expect("the console loads");
    browser.fill("#sdkappid", &APP.sdkappid.to_string()).await;
    browser.fill("#identifier", APP.admin).await;
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
    let signed_in = browser.text_of("#apps li").await;
    assert!(
        signed_in.contains(&format!("App {} as {}", APP.sdkappid, APP.admin)),
        "{signed_in}"
    );
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
    let out = browser
        .client
        .find(Locator::Css("#apps button"))
        .await
        .unwrap();
    out.click().await.unwrap();
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#signed-in[hidden]"))
        .await
        .expect("signed out");
    browser.close().await;
}
