//! `audience`: exact audience counts on one thread, roaring index vs per-account scan.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use tagcast_audience::{AppIndex, AppIndexBuilder, Cmp, Expr};
use tagcast_bench::stats::{ms, print_table, rss_mib, time_batched};
use tagcast_bench::synth::{DEFAULT_SEED, Model, SDKAPPID, slot};
use tagcast_store::Store;

use crate::scan::{Pred, Scan};

#[derive(Debug, clap::Args)]
pub struct AudienceArgs {
    /// Data directory written by `gen` [default: target/bench-data/ACCOUNTS].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Build the index in memory from the model instead of opening a store.
    #[arg(long)]
    pub in_memory: bool,
    /// Accounts (with --in-memory, or to find the default data directory).
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: u64,
    /// Seed (with --in-memory).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Timed samples of each roaring count (each a batch of calls filling 0.5 ms, divided).
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Timed runs of each scan count (a scan is far slower).
    #[arg(long, default_value_t = 20)]
    pub scan_iters: usize,
    /// Accounts whose stored tags and attributes are checked against the model.
    #[arg(long, default_value_t = 2000)]
    pub check_accounts: u64,
}

enum Source {
    Store(Store),
    Memory(Box<AppIndex>),
}

impl Source {
    fn with<R>(&self, f: impl FnOnce(&AppIndex) -> R) -> R {
        match self {
            Source::Store(store) => store.with_audience(SDKAPPID, f),
            Source::Memory(index) => f(index),
        }
    }
}

/// The conditions measured, with their labels.
pub fn conditions() -> Vec<(&'static str, Expr)> {
    let tag = |t: &str| Expr::Tag(t.into());
    let attr = |slot: u8, value: &str| Expr::AttrEq {
        slot,
        value: value.into(),
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        ("1 tag: tag5", tag("tag5")),
        (
            "AND of 2 tags: tag3 & tag10",
            Expr::And(vec![tag("tag3"), tag("tag10")]),
        ),
        (
            "OR of 3 tags: tag20 | tag50 | tag100",
            Expr::Or(vec![tag("tag20"), tag("tag50"), tag("tag100")]),
        ),
        (
            "AND with NOT: tag2 & !tag7",
            Expr::And(vec![tag("tag2"), Expr::Not(Box::new(tag("tag7")))]),
        ),
        ("attr equality: city = city1", attr(slot::CITY, "city1")),
        (
            "attr AND tag: os = ios & tag4",
            Expr::And(vec![attr(slot::OS, "ios"), tag("tag4")]),
        ),
        (
            "Condition: TagsAnd[tag1] TagsOr[tag6,tag30] TagsNot[tag15]",
            Expr::from_condition(
                &strings(&["tag1"]),
                &strings(&["tag6", "tag30"]),
                &strings(&["tag15"]),
                &[],
                &[],
            ),
        ),
        (
            "extra: Audience age >= 18 & plan = premium",
            Expr::And(vec![
                Expr::AttrCmp {
                    slot: slot::AGE,
                    cmp: Cmp::Ge(18.0),
                },
                attr(slot::PLAN, "premium"),
            ]),
        ),
        ("extra: all accounts", Expr::All),
    ]
}

pub fn run(args: &AudienceArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let rss_before = rss_mib(None);
    let started = Instant::now();
    let (source, accounts, seed, what) = if args.in_memory {
        let index = build_in_memory(&Model::new(args.seed), args.accounts);
        (
            Source::Memory(Box::new(index)),
            args.accounts,
            args.seed,
            "in-memory build",
        )
    } else {
        let data = args
            .data
            .clone()
            .unwrap_or_else(|| crate::default_data_dir(args.accounts));
        let meta = crate::gen_data::read_meta(&data)?;
        let store = {
            let _guard = runtime.enter();
            Store::open(&data)?
        };
        (
            Source::Store(store),
            meta.accounts,
            meta.seed,
            "Store::open (index rebuild)",
        )
    };
    let build = started.elapsed();
    let rss_after = rss_mib(None);
    let (in_index, tags, bitmap_bytes) =
        source.with(|i| (i.accounts().len(), i.tag_count(), i.bitmap_bytes()));
    println!(
        "audience: {accounts} accounts, {tags} tags; {what}: {:.2} s; VmRSS {rss_before:.0} MiB before, {rss_after:.0} MiB after (+{:.0} MiB); bitmaps {:.0} MiB serialized",
        build.as_secs_f64(),
        rss_after - rss_before,
        bitmap_bytes as f64 / (1 << 20) as f64
    );
    if in_index != accounts {
        bail!("the index holds {in_index} accounts, expected {accounts}");
    }
    let model = Model::new(seed);
    if let Source::Store(store) = &source {
        runtime.block_on(check_store(store, &model, accounts, args.check_accounts))?;
    }

    let started = Instant::now();
    let scan = Scan::build(&model, accounts, 2);
    println!(
        "baseline: per-account scan representation ({:.0} MiB) built from the model in {:.2} s",
        scan.bytes() as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );

    let mut rows = vec![vec![
        "condition".to_string(),
        "count".into(),
        "roaring p50 ms".into(),
        "roaring p99 ms".into(),
        "evaluate p50 ms".into(),
        "scan p50 ms".into(),
        "scan/roaring (p50)".into(),
        "calls per roaring sample".into(),
    ]];
    let mut mismatches = Vec::new();
    for (label, expr) in conditions() {
        let count = source.with(|i| i.count(&expr));
        let (roaring, batch) =
            time_batched(args.iters, || source.with(|i| i.count(black_box(&expr))));
        let (evaluate, _) = time_batched(args.iters, || {
            source.with(|i| i.evaluate(black_box(&expr)).len())
        });
        let pred = Pred::compile(&model, &expr);
        let scanned = scan.count(&pred);
        let (scan_time, _) = time_batched(args.scan_iters, || scan.count(black_box(&pred)));
        if scanned != count {
            mismatches.push(format!(
                "{label}: the index counts {count}, the scan {scanned}"
            ));
        }
        if count == 0 {
            mismatches.push(format!(
                "{label}: matches no account, so it measures nothing"
            ));
        }
        rows.push(vec![
            label.to_string(),
            count.to_string(),
            ms(roaring.p50()),
            ms(roaring.p99()),
            ms(evaluate.p50()),
            ms(scan_time.p50()),
            format!(
                "{:.0}x",
                scan_time.p50().as_secs_f64() / roaring.p50().as_secs_f64().max(1e-9)
            ),
            batch.to_string(),
        ]);
    }
    // Check first: a run whose counts disagree prints no table.
    if !mismatches.is_empty() {
        bail!(
            "audience: {} wrong counts:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
    println!(
        "{}: audience counts at {accounts} accounts, one thread ({} samples per roaring count, each a batch of calls filling at least 0.5 ms divided by its calls; {} scan runs each):",
        tagcast_bench::stamp::line("tagcast-bench audience"),
        args.iters,
        args.scan_iters
    );
    print_table(&rows);
    Ok(())
}

/// The index the store would rebuild, built straight from the model.
fn build_in_memory(model: &Model, accounts: u64) -> AppIndex {
    let mut builder = AppIndexBuilder::default();
    for i in 0..accounts {
        let a = model.account(i);
        let id = i as u32;
        builder.account(id);
        for t in &a.tags {
            builder.tag(id, *t as u32);
        }
        for (slot, v) in a.attrs.iter().enumerate() {
            if let Some(v) = v {
                builder.attr(id, slot as u8, model.value_name(slot as u8, *v));
            }
        }
    }
    builder.finish(|t| Some(Model::tag_name(t as u16)))
}

/// Checks that sampled accounts are stored exactly as the model generates them, with dense ids in
/// generation order, so the scan baseline (built from the model) holds the store's data.
async fn check_store(
    store: &Store,
    model: &Model,
    accounts: u64,
    samples: u64,
) -> anyhow::Result<()> {
    let samples = samples.min(accounts);
    if samples == 0 {
        return Ok(());
    }
    let step = (accounts / samples).max(1);
    let indexes: Vec<u64> = (0..samples).map(|k| k * step).collect();
    let names: Vec<String> = indexes.iter().map(|i| Model::account_name(*i)).collect();
    let ids = store.account_ids(SDKAPPID, &names).await?;
    let tags = store.get_tags(SDKAPPID, &names).await?;
    let attrs = store.get_attrs(SDKAPPID, &names).await?;
    let attr_names = Model::attr_names();
    for (k, &i) in indexes.iter().enumerate() {
        let want = model.bulk_account(&model.account(i));
        let named: std::collections::BTreeMap<String, String> = want
            .attrs
            .iter()
            .map(|(slot, v)| (attr_names[*slot as usize].name.clone(), v.clone()))
            .collect();
        if ids[k] != Some(i as u32)
            || tags[k].as_ref() != Some(&want.tags)
            || attrs[k].as_ref() != Some(&named)
        {
            bail!(
                "account {} is stored as id {:?}, tags {:?}, attrs {:?}; the model says {:?}",
                names[k],
                ids[k],
                tags[k],
                attrs[k],
                want
            );
        }
    }
    println!("check: {samples} sampled accounts are stored exactly as generated");
    Ok(())
}
