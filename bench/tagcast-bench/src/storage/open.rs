//! `open`: how long the store takes to open (connect, check the schema, rebuild the audience
//! index from the records), from PostgreSQL or from the embedded file, and what the index then
//! holds: the synthetic app's accounts and the count of every condition of the comparison.

use std::path::PathBuf;
use std::time::Instant;

use tagcast_bench::stats::{proc_status_kb, rss_mib};
use tagcast_bench::synth::SDKAPPID;
use tagcast_store::{Location, Store, StoreOptions};

use crate::compare::workload;

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct OpenArgs {
    /// The PostgreSQL store at this URL (postgres://user@host:port/db).
    #[arg(long)]
    pub store_url: Option<String>,
    /// The embedded store in this data directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Prints one line: `open store=... seconds=... accounts=... counts=a,b,...` (the counts in the
/// order of `workload::conditions`), and the resident memory after the open.
pub async fn run(args: &OpenArgs) -> anyhow::Result<()> {
    let (location, store) = match (&args.store_url, &args.data) {
        (Some(url), _) => (Location::Postgres(url.clone()), "postgres"),
        (None, Some(dir)) => {
            // Opening creates a store where there is none: that would measure nothing.
            if !dir.join(tagcast_store::FILE_NAME).is_file() {
                anyhow::bail!(
                    "open: no embedded store in {} (no {})",
                    dir.display(),
                    tagcast_store::FILE_NAME
                );
            }
            (Location::Embedded(dir.clone()), "embedded")
        }
        (None, None) => anyhow::bail!("open: --store-url or --data"),
    };
    let started = Instant::now();
    let opened = Store::open_at(&location, StoreOptions::default()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let accounts = opened.with_audience(SDKAPPID, |i| i.accounts().len());
    let counts: Vec<String> = workload::conditions()
        .iter()
        .map(|cond| {
            let expr = cond.expr();
            opened
                .with_audience(SDKAPPID, |i| i.count(&expr))
                .to_string()
        })
        .collect();
    println!(
        "open store={store} seconds={seconds:.2} accounts={accounts} counts={} rss_mib={:.0} peak_rss_mib={:.0} commit={}",
        counts.join(","),
        rss_mib(None),
        proc_status_kb(None, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
        tagcast_bench::stamp::commit()
    );
    Ok(())
}
