//! Resolves the server's settings from the config file, `TAGCAST_*` variables and flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use tagcast_server::config::{
    AppConfig, ClusterConfig, ConsoleConfig, HttpConfig, ReportsConfig, ServerConfig, TlsConfig,
    WsConfig,
};
use tagcast_store::Location;

use crate::cli::ServeArgs;
use crate::dev_app::{self, DevAppInfo};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "tagcast-data";

/// The TOML config file. Unknown keys are refused, so a typo never goes unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    node_id: Option<String>,
    #[serde(default)]
    store: StoreFileConfig,
    #[serde(default)]
    cluster: ClusterConfig,
    tls: Option<TlsConfig>,
    cache_mb: Option<usize>,
    /// Test-only fault injection (`[[testing.faults]]`, see `tagcast_store::FaultPlan`).
    #[serde(default)]
    testing: tagcast_store::FaultPlan,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    websocket: WsConfig,
    #[serde(default)]
    console: ConsoleConfig,
    #[serde(default)]
    reports: ReportsConfig,
    #[serde(default)]
    apps: Vec<AppConfig>,
}

/// The `[store]` table: without `url`, the embedded store in `data_dir`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFileConfig {
    /// A PostgreSQL connection URL (`postgres://user@host:port/db`).
    url: Option<String>,
}

/// File < environment < flags; with no config file, the development app.
pub fn resolve(args: &ServeArgs) -> anyhow::Result<(ServerConfig, Option<DevAppInfo>)> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => file.tls,
    };
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let store = match args.store_url.clone().or(file.store.url) {
        Some(url) => Location::Postgres(url),
        None => Location::Embedded(data_dir.clone()),
    };
    let listen = match args.listen.or(file.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse()?,
    };
    let (apps, dev_app) = match args.config {
        Some(_) => (file.apps, None),
        // The development app's key is kept in `data_dir`, whichever store keeps the records.
        None => {
            let (app, info) = dev_app::load_or_generate(&data_dir)?;
            (vec![app], Some(info))
        }
    };
    let cache_mb = file
        .cache_mb
        .unwrap_or(tagcast_store::DEFAULT_CACHE_BYTES >> 20);
    let config = ServerConfig {
        listen,
        store,
        tls,
        cache_mb,
        faults: file.testing,
        http: file.http,
        websocket: file.websocket,
        cluster: ClusterConfig {
            node_id: args.node_id.clone().or(file.node_id),
            ..file.cluster
        },
        console: file.console,
        reports: file.reports,
        apps,
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    Ok((config, dev_app))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    // One line naming the file, the place and the key, rather than toml's multi-line report.
    toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!(", line {line}, column {column}")
        });
        anyhow::anyhow!(
            "invalid config file {}{at}: {}",
            path.display(),
            e.message().trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = toml::from_str::<FileConfig>("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn unknown_limit_is_named() {
        let text = "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\n[apps.limits]\ntags_per_ap = 5\n";
        let err = toml::from_str::<FileConfig>(text).unwrap_err();
        assert!(err.to_string().contains("tags_per_ap"), "{err}");
    }

    #[test]
    fn the_store_table_takes_a_url_and_nothing_else() {
        let file: FileConfig = toml::from_str("[store]\nurl = \"postgres://u@h/db\"\n").unwrap();
        assert_eq!(file.store.url.as_deref(), Some("postgres://u@h/db"));
        let err =
            toml::from_str::<FileConfig>("[store]\nuri = \"postgres://u@h/db\"\n").unwrap_err();
        assert!(err.to_string().contains("uri"), "{err}");
    }

    #[test]
    fn limits_default_to_tencents() {
        let text = "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\n[apps.limits]\ntags_per_app = 5\n";
        let file: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(file.apps[0].limits.tags_per_app, 5);
        assert_eq!(file.apps[0].limits.accounts_per_request, 100);
        assert_eq!(file.apps[0].limits.api_calls_per_second, 100);
    }
}
