//! `tagcast migrate`: copies an embedded store into an empty PostgreSQL database (or the other
//! way), with a progress bar, and verifies the counts of every kind of record at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use tagcast_store::{FILE_NAME, Location, Migrated, redact_url};

use crate::cli::MigrateArgs;
use crate::failure::Failure;

pub fn migrate(args: MigrateArgs) -> Result<(), Failure> {
    let from = location(&args.from);
    let to = location(&args.to);
    if let Location::Embedded(dir) = &from
        && !dir.join(FILE_NAME).is_file()
    {
        return Err(Failure::config(anyhow!(
            "--from {}: no embedded store there (no {FILE_NAME})",
            dir.display()
        )));
    }
    if from == to {
        return Err(Failure::config(anyhow!(
            "--from and --to name the same store"
        )));
    }
    eprintln!("copying {} into {}", describe(&from), describe(&to));
    let bar = progress_bar(args.quiet);
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::runtime)?;
    let progress = bar.clone();
    let copied = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            tagcast_store::migrate(&from, &to, |done, total| {
                progress.set_length(total);
                progress.set_position(done);
            })
        })
        .await
    });
    bar.finish_and_clear();
    let migrated = copied
        .context("the copy was interrupted")
        .map_err(Failure::runtime)?
        .context("migration failed; the target may hold part of the copy: empty it before retrying")
        .map_err(Failure::runtime)?;
    report(&migrated, started.elapsed());
    Ok(())
}

/// A `postgres://` or `postgresql://` URL, else a data directory.
fn location(arg: &str) -> Location {
    if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
        Location::Postgres(arg.to_string())
    } else {
        Location::Embedded(PathBuf::from(arg))
    }
}

fn describe(location: &Location) -> String {
    match location {
        Location::Embedded(dir) => format!("the embedded store in {}", dir.display()),
        Location::Postgres(url) => format!("PostgreSQL at {}", redact_url(url)),
    }
}

/// A bar on stderr (hidden when it is not a terminal, or with --quiet).
fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} records, {per_sec}, {eta} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn report(migrated: &Migrated, elapsed: Duration) {
    println!("{:<28} {:>12} {:>12}", "records", "source", "target");
    for ((kind, source), (_, target)) in migrated.source.rows().iter().zip(migrated.target.rows()) {
        println!("{kind:<28} {source:>12} {target:>12}");
    }
    println!(
        "copied {} records in {:.1} s; counts verified",
        migrated.target.total(),
        elapsed.as_secs_f64()
    );
}
