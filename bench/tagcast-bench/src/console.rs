//! `console`: in the web console's audience builder, in Debian's chromium, at N accounts, the
//! time from a keystroke to the updated exact count on the page; against, in the same run and
//! from the same page, the REST API's `audience_count` of the same expression fetched directly
//! (the baseline) and the console's own `api/reach` fetched directly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tagcast_bench::stats::{Samples, ms, print_table, ratio, rss_mib};
use tagcast_bench::synth::{Model, SDKAPPID};

use crate::client::Api;
use crate::server::{KEY, Server, tagcast_bin};

/// How long the builder waits for typing to pause before it asks (console.js).
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Backspace, as WebDriver types it.
const BACKSPACE: &str = "\u{E003}";

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub set: crate::DataSetArgs,
    /// Keystrokes timed (and as many fetches of each baseline).
    #[arg(long, default_value_t = 40)]
    pub samples: usize,
    /// The chromedriver to drive chromium with (bench/console.sh starts one).
    #[arg(long)]
    pub webdriver: String,
    /// The tagcast binary [default: beside this one].
    #[arg(long)]
    pub tagcast_bin: Option<PathBuf>,
}

pub async fn run(args: &ConsoleArgs) -> anyhow::Result<()> {
    let bin = tagcast_bin(&args.tagcast_bin)?;
    let data = args.set.dir();
    let meta =
        crate::gen_data::generate(&data, args.set.accounts, args.set.seed, 50_000, false).await?;
    let work = data.with_file_name(format!("{}-console-run", meta.accounts));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(work.join("data"))?;
    std::fs::copy(data.join("tagcast.redb"), work.join("data/tagcast.redb"))?;
    let server = Server::start(&bin, &work.join("data"), &work).await?;
    println!(
        "console: {} accounts; tagcast started in {:.2} s, VmRSS {:.0} MiB",
        meta.accounts,
        server.startup.as_secs_f64(),
        rss_mib(server.pid())
    );
    let api = Api::new(&server.url)?;
    let model = Model::new(args.set.seed);
    let city = model.value_name(0, 0).to_string();
    let expression = |value: &str| {
        json!({ "Or": [
            { "And": [{ "Tag": Model::tag_name(0) }, { "Not": { "Tag": Model::tag_name(1) } }] },
            { "Attr": "city", "Eq": value },
        ] })
    };
    // The two expressions a keystroke switches between, and their exact counts.
    let typed = format!("{city}x");
    let mut expected = Vec::new();
    for value in [&city, &typed] {
        let (reply, _) = api
            .call(
                "tagcast/audience_count",
                &json!({ "Audience": expression(value) }),
            )
            .await?;
        expected.push(reply["Count"].as_u64().context("Count")?);
    }
    if expected[0] == expected[1] {
        bail!(
            "console: both expressions count {}: nothing to follow",
            expected[0]
        );
    }

    let browser = open_browser(&args.webdriver).await?;
    let result = measure(
        &browser,
        &server.url,
        &city,
        &expected,
        &expression,
        args.samples,
    )
    .await;
    let _ = browser.close().await;
    let (keystroke, reach, rest) = result?;
    report(&keystroke, &reach, &rest, meta.accounts, args.samples);
    server.stop().await;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

async fn open_browser(webdriver: &str) -> anyhow::Result<Client> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"] }),
    );
    let plain = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(plain)
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .with_context(|| format!("no WebDriver at {webdriver}"))
}

/// Signs in, builds `(tag1 AND NOT tag2) OR city = CITY`, then times keystrokes in the city's
/// value and each baseline; every count shown is checked against `expected`.
async fn measure(
    browser: &Client,
    base: &str,
    city: &str,
    expected: &[u64],
    expression: &dyn Fn(&str) -> Value,
    samples: usize,
) -> anyhow::Result<(Samples, Samples, Samples)> {
    browser.goto(&format!("{base}/console")).await?;
    fill(browser, "#sdkappid", &SDKAPPID.to_string()).await?;
    fill(browser, "#identifier", "administrator").await?;
    fill(browser, "#secret", KEY).await?;
    click(browser, "#sign-in-form button").await?;
    wait_for(browser, "#pages:not([hidden])").await?;
    browser
        .execute("location.hash = '#audience'", vec![])
        .await?;
    wait_for(browser, "section#audience:not([hidden])").await?;
    browser
        .find(Locator::Css("#kind-r"))
        .await?
        .select_by_value("Or")
        .await?;
    click(browser, "[data-path='r'] > .add .add-group").await?;
    click(browser, "[data-path='r-0'] > .add .add-tag").await?;
    fill(browser, "#tag-r-0-0", &Model::tag_name(0)).await?;
    click(browser, "[data-path='r-0'] > .add .add-not").await?;
    fill(browser, "#tag-r-0-1-0", &Model::tag_name(1)).await?;
    click(browser, "[data-path='r'] > .add .add-attr").await?;
    fill(browser, "#value-r-1", city).await?;
    let mut answer = settled(browser, expected[0]).await?;

    let mut keystroke = Samples::new();
    let value = wait_for(browser, "#value-r-1").await?;
    for i in 0..samples + 3 {
        // Type an `x`, then take it back: the count switches between the two expressions.
        let (key, want) = if i % 2 == 0 {
            ("x", expected[1])
        } else {
            (BACKSPACE, expected[0])
        };
        value.send_keys(key).await?;
        let (now, took) = shown_count(browser, answer, want).await?;
        answer = now;
        if i >= 3 {
            keystroke.push(took);
        }
    }
    let reach = fetched(browser, "reach", &expression(city), samples).await?;
    let rest = fetched(browser, "rest", &expression(city), samples).await?;
    Ok((keystroke, reach, rest))
}

/// Waits for an answer after `after` on the page; fails unless it shows `want`. Which answer it
/// is, and the time the page measured from the keystroke to showing it.
async fn shown_count(browser: &Client, after: u64, want: u64) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let read = "const c = document.getElementById('count');
        return [Number(c.dataset.answer || 0), Number(c.dataset.tookMs || 0), c.textContent,
                document.getElementById('audience-error').textContent];";
    while started.elapsed() < Duration::from_secs(30) {
        let shown = browser.execute(read, vec![]).await?;
        let answer = shown[0].as_u64().unwrap_or(0);
        if answer > after {
            let error = shown[3].as_str().unwrap_or_default();
            if !error.is_empty() {
                bail!("console: the builder shows an error: {error}");
            }
            let count = shown[2].as_str().unwrap_or_default();
            if count != want.to_string() {
                bail!("console: the builder shows {count}, audience_count says {want}");
            }
            let took = Duration::from_secs_f64(shown[1].as_f64().unwrap_or(0.0) / 1000.0);
            return Ok((answer, took));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bail!("console: no count within 30 s")
}

/// Waits, while the expression is being typed in, until the page shows `want`: the answer it is.
async fn settled(browser: &Client, want: u64) -> anyhow::Result<u64> {
    let started = Instant::now();
    let read = "const c = document.getElementById('count');
        return [Number(c.dataset.answer || 0), c.textContent];";
    while started.elapsed() < Duration::from_secs(30) {
        let shown = browser.execute(read, vec![]).await?;
        if shown[1].as_str() == Some(want.to_string().as_str()) {
            return Ok(shown[0].as_u64().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("console: the builder never showed {want}")
}

/// `samples` fetches from the page, timed in the page: the console's `api/reach` ("reach") or
/// the REST API's `audience_count` with the admin's UserSig ("rest").
async fn fetched(
    browser: &Client,
    which: &str,
    audience: &Value,
    samples: usize,
) -> anyhow::Result<Samples> {
    let query = format!(
        "sdkappid={SDKAPPID}&identifier=administrator&usersig={}&random=1&contenttype=json",
        crate::client::sign("administrator")
    );
    let script = "const [which, body, query, n] = arguments; const done = arguments[arguments.length - 1];
        (async () => {
          const session = await (await fetch('/console/api/session')).json();
          const csrf = session.SignedIn[0].Csrf;
          const url = which === 'reach' ? `/console/api/reach?sdkappid=${session.SignedIn[0].SdkAppId}`
            : `/v4/tagcast/audience_count?${query}`;
          const times = [];
          for (let i = 0; i < n + 3; i += 1) {
            const started = performance.now();
            const answer = await (await fetch(url, { method: 'POST', body,
              headers: { 'Content-Type': 'application/json', 'X-Tagcast-Csrf': csrf } })).json();
            if (answer.ActionStatus !== 'OK') throw new Error(JSON.stringify(answer));
            if (i >= 3) times.push(performance.now() - started);
          }
          return times;
        })().then(done, (e) => done(String(e)));";
    let body = json!({ "Audience": audience }).to_string();
    let args = vec![json!(which), json!(body), json!(query), json!(samples)];
    let times = browser.execute_async(script, args).await?;
    let Some(times) = times.as_array() else {
        bail!("console: {which} failed: {times}");
    };
    let mut out = Samples::new();
    for t in times {
        out.push(Duration::from_secs_f64(t.as_f64().unwrap_or(0.0) / 1000.0));
    }
    Ok(out)
}

fn report(keystroke: &Samples, reach: &Samples, rest: &Samples, accounts: u64, samples: usize) {
    let baseline = rest.p50();
    let mut after_debounce = Samples::new();
    for took in keystroke.iter() {
        after_debounce.push(took.saturating_sub(DEBOUNCE));
    }
    let mut rows = vec![vec![
        "from the page".to_string(),
        "p50 ms".into(),
        "p99 ms".into(),
        "max ms".into(),
        "p50 / baseline p50".into(),
    ]];
    let measured: [(&str, &Samples); 4] = [
        (
            "keystroke -> count shown (150 ms debounce included)",
            keystroke,
        ),
        (
            "keystroke -> count shown, less the 150 ms debounce",
            &after_debounce,
        ),
        (
            "fetch console api/reach (count, online, with devices)",
            reach,
        ),
        ("baseline: fetch REST tagcast/audience_count", rest),
    ];
    for (label, s) in measured {
        rows.push(vec![
            label.to_string(),
            ms(s.p50()),
            ms(s.p99()),
            ms(s.max()),
            ratio(s.p50(), baseline),
        ]);
    }
    println!(
        "{}: the audience builder's exact count at {accounts} accounts, `(tag1 AND NOT tag2) OR city = <top city>` ({samples} keystrokes, every count checked against audience_count):",
        tagcast_bench::stamp::line("tagcast-bench console"),
    );
    print_table(&rows);
}

async fn wait_for(browser: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("console: {css} never appeared"))
}

async fn click(browser: &Client, css: &str) -> anyhow::Result<()> {
    wait_for(browser, css).await?.click().await?;
    Ok(())
}

async fn fill(browser: &Client, css: &str, value: &str) -> anyhow::Result<()> {
    let field = wait_for(browser, css).await?;
    field.clear().await?;
    field.send_keys(value).await?;
    Ok(())
}
