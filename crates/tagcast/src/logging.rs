//! The server's log lines on stderr: text (coloured only on a terminal) or JSON, filtered by
//! `TAGCAST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The variable holding the log filter, e.g. `debug` or `info,tagcast_server=debug`.
const FILTER_VAR: &str = "TAGCAST_LOG";

/// Installs the logger; a `TAGCAST_LOG` that is not a valid filter is a config error.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var(FILTER_VAR) {
        Ok(directives) => EnvFilter::try_new(&directives)
            .map_err(|e| anyhow::anyhow!("invalid {FILTER_VAR} {directives:?}: {e}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line, with `timestamp`, `level`, `message`, the event's fields and
        // `target` at the top level.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
