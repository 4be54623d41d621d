//! `push`: how long `timpush/push` takes, request to TaskId, on the real server at N accounts,
//! against a minimal durable write on the same server in the same run.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use serde_json::{Value, json};
use tagcast_bench::stats::{Samples, ms, print_table, ratio, rss_mib};
use tagcast_bench::synth::Model;

use crate::client::Api;
use crate::server::{Server, tagcast_bin};

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub set: crate::DataSetArgs,
    /// Timed rounds; each runs every operation once, interleaved.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Untimed rounds first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// The tagcast binary [default: beside this one].
    #[arg(long)]
    pub tagcast_bin: Option<PathBuf>,
}

/// A push's body, with `extra` fields added.
fn push_body(msg_random: u32, extra: Value) -> Value {
    let mut body = json!({
        "MsgRandom": msg_random,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "benchmark push"}}],
        "OfflinePushInfo": {"Title": "tagcast", "Desc": "benchmark push"},
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

pub async fn run(args: &PushArgs) -> anyhow::Result<()> {
    let bin = tagcast_bin(&args.tagcast_bin)?;
    let data = args.set.dir();
    let meta =
        crate::gen_data::generate(&data, args.set.accounts, args.set.seed, 50_000, false).await?;
    let accounts = meta.accounts;

    // Push on a copy, so the cached data set stays as generated and every run starts alike.
    let work = data.with_file_name(format!(
        "{}-push-run",
        data.file_name()
            .map_or("data".into(), |n| n.to_string_lossy())
    ));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(work.join("data"))?;
    let started = Instant::now();
    std::fs::copy(data.join("tagcast.redb"), work.join("data/tagcast.redb"))?;
    let copy = started.elapsed();

    let server = Server::start(&bin, &work.join("data"), &work).await?;
    println!(
        "push: {accounts} accounts; data copied in {:.1} s; tagcast started (store open + index rebuild) in {:.2} s, server VmRSS {:.0} MiB",
        copy.as_secs_f64(),
        server.startup.as_secs_f64(),
        rss_mib(server.pid())
    );
    let api = Api::new(&server.url)?;

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Distinct MsgRandoms: a repeated one would return the earlier task without pushing.
    let mut next_random = (run_id as u32) | 1;
    let mut random = move || {
        next_random = next_random.wrapping_add(1);
        next_random
    };
    let tag_condition = json!({"TagsOr": ["tag5"]});
    let condition3 =
        json!({"TagsAnd": ["tag1"], "TagsOr": ["tag6", "tag30"], "TagsNot": ["tag15"]});

    let labels = [
        "BASELINE account_import (1 new account)",
        "add_tag (1 account, 1 tag)",
        "audience_count, all accounts (no write)",
        "push: all accounts (no Condition)",
        "push: Condition TagsOr[tag5]",
        "push: Condition TagsAnd+TagsOr+TagsNot",
    ];
    let mut samples: Vec<Samples> = labels.iter().map(|_| Samples::new()).collect();
    let mut task_ids = HashSet::new();
    for round in 0..args.warmup + args.rounds {
        let k = round as u64;
        let calls: [(&str, Value); 6] = [
            (
                "im_open_login_svc/account_import",
                json!({"UserID": format!("bench{run_id:x}n{k}")}),
            ),
            (
                "timpush/add_tag",
                json!({"UserTags": [{
                    "To_Account": Model::account_name((k * 7919 + run_id) % accounts),
                    "Tags": ["tag1000"],
                }]}),
            ),
            ("tagcast/audience_count", json!({})),
            ("timpush/push", push_body(random(), json!({}))),
            (
                "timpush/push",
                push_body(random(), json!({"Condition": tag_condition})),
            ),
            (
                "timpush/push",
                push_body(random(), json!({"Condition": condition3})),
            ),
        ];
        for (i, (path, body)) in calls.iter().enumerate() {
            let (reply, took) = api.call(path, body).await?;
            if *path == "timpush/push" {
                let id = reply["TaskId"].as_str().unwrap_or_default().to_string();
                if id.is_empty() || !task_ids.insert(id.clone()) {
                    bail!("push returned no new TaskId: {reply}");
                }
            }
            if round >= args.warmup {
                samples[i].push(took);
            }
        }
    }
    let sizes = [
        String::new(),
        String::new(),
        accounts.to_string(),
        accounts.to_string(),
        count(&api, json!({"Condition": tag_condition})).await?,
        count(&api, json!({"Condition": condition3})).await?,
    ];
    // Check first: a push whose audience is empty measures nothing.
    for (label, size) in labels.iter().zip(&sizes) {
        if size == "0" || size == "null" {
            bail!("push: `{label}` has an audience of {size} accounts: it measures nothing");
        }
    }
    let baseline = samples[0].p50();
    let mut rows = vec![vec![
        "operation".to_string(),
        "audience".into(),
        "p50 ms".into(),
        "p99 ms".into(),
        "max ms".into(),
        "p50 / baseline p50".into(),
    ]];
    for ((label, s), size) in labels.iter().zip(&samples).zip(&sizes) {
        rows.push(vec![
            label.to_string(),
            size.clone(),
            ms(s.p50()),
            ms(s.p99()),
            ms(s.max()),
            ratio(s.p50(), baseline),
        ]);
    }
    println!(
        "{}: push creation at {accounts} accounts, request -> reply over HTTP/1.1 keep-alive, sequential ({} rounds after {} warm-up; no client online):",
        tagcast_bench::stamp::line("tagcast-bench push"),
        args.rounds,
        args.warmup
    );
    print_table(&rows);
    println!(
        "push: server VmRSS after the run {:.0} MiB",
        rss_mib(server.pid())
    );
    server.stop().await;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

async fn count(api: &Api, body: Value) -> anyhow::Result<String> {
    let (reply, _) = api.call("tagcast/audience_count", &body).await?;
    Ok(reply["Count"].to_string())
}
