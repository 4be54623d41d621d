//! `gen`: writes the synthetic app with `Store::bulk_load`, in chunks, while the next chunk is
//! generated on another thread.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tagcast_bench::synth::{Model, SDKAPPID, TAGS};
use tagcast_store::{BulkAccount, Store, TagLimits};

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub set: crate::DataSetArgs,
    /// Accounts per `bulk_load` call.
    #[arg(long, default_value_t = 50_000)]
    pub chunk: usize,
    /// Regenerate even when DIR already holds this data set.
    #[arg(long)]
    pub force: bool,
}

/// What a finished data directory holds; written last, so its presence means complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub sdkappid: u64,
    pub accounts: u64,
    pub seed: u64,
    pub load_secs: f64,
}

const META: &str = "bench-meta.json";

pub fn read_meta(data: &Path) -> anyhow::Result<Meta> {
    let path = data.join(META);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} missing: run `tagcast-bench gen` first", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

pub async fn run(args: &GenArgs) -> anyhow::Result<()> {
    let data = args.set.dir();
    generate(
        &data,
        args.set.accounts,
        args.set.seed,
        args.chunk,
        args.force,
    )
    .await?;
    Ok(())
}

/// Makes `data` hold `accounts` accounts of seed `seed`, reusing it when it already does.
pub async fn generate(
    data: &Path,
    accounts: u64,
    seed: u64,
    chunk: usize,
    force: bool,
) -> anyhow::Result<Meta> {
    if !force
        && let Ok(meta) = read_meta(data)
        && meta.accounts == accounts
        && meta.seed == seed
    {
        println!(
            "gen: reusing {} ({accounts} accounts, seed {seed}, loaded in {:.1} s when generated)",
            data.display(),
            meta.load_secs
        );
        return Ok(meta);
    }
    if data.exists() {
        std::fs::remove_dir_all(data).with_context(|| format!("clearing {}", data.display()))?;
    }
    let store = Store::open(data)?;
    if let Err(e) = store.set_attr_names(SDKAPPID, Model::attr_names()).await? {
        bail!("set_attr_names: {e:?}");
    }
    let limits = TagLimits {
        max_tags_per_account: 100,
        max_tags_per_app: TAGS,
    };
    let chunk = chunk.max(1) as u64;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<BulkAccount>>(2);
    let generator = std::thread::spawn(move || {
        let model = Model::new(seed);
        let mut start = 0;
        while start < accounts {
            let end = (start + chunk).min(accounts);
            let batch = (start..end)
                .map(|i| model.bulk_account(&model.account(i)))
                .collect();
            if tx.send(batch).is_err() {
                return;
            }
            start = end;
        }
    });
    let started = Instant::now();
    let mut loaded = 0u64;
    let mut last_report = Instant::now();
    // Receiving blocks this thread while the next chunk is generated; the store writes on its own
    // writer thread meanwhile.
    while let Ok(batch) = tokio::task::block_in_place(|| rx.recv()) {
        let n = batch.len() as u64;
        let results = store.bulk_load(SDKAPPID, batch, limits).await?;
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
            bail!("bulk_load refused an account: {e:?}");
        }
        loaded += n;
        if last_report.elapsed().as_secs() >= 10 || loaded == accounts {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "gen: {loaded}/{accounts} accounts in {secs:.1} s ({:.0} accounts/s)",
                loaded as f64 / secs
            );
            last_report = Instant::now();
        }
    }
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("generator panicked"))?;
    let load_secs = started.elapsed().as_secs_f64();
    let (in_index, tags) = store.with_audience(SDKAPPID, |i| (i.accounts().len(), i.tag_count()));
    if in_index != accounts {
        bail!("the index holds {in_index} accounts, expected {accounts}");
    }
    // The migration that may follow opens the file from another process.
    if !store.close(Duration::from_secs(10)) {
        bail!("the store in {} did not close within 10 s", data.display());
    }
    let size = std::fs::metadata(data.join("tagcast.redb"))?.len();
    let meta = Meta {
        sdkappid: SDKAPPID,
        accounts,
        seed,
        load_secs,
    };
    std::fs::write(data.join(META), serde_json::to_string_pretty(&meta)?)?;
    println!(
        "gen: loaded {accounts} accounts ({tags} distinct tags) in {load_secs:.1} s = {:.0} accounts/s; store file {:.0} MiB; {}",
        accounts as f64 / load_secs,
        size as f64 / (1 << 20) as f64,
        data.display()
    );
    Ok(meta)
}
