//! Command-line arguments. Each `serve` flag can also be set with a `TAGCAST_*` variable;
//! flags win over variables, which win over the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tagcast",
    version,
    about = "Self-hosted, Tencent Cloud Chat compatible push audience server",
    after_help = "Exit status: 0 on success, 1 on a failure while running, 2 on a usage, config or \
                  start-up error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server. Without a config file, a development app is created and printed.
    Serve(ServeArgs),
    /// Print a UserSig (TLSSigAPIv2) for an identifier.
    Usersig(UserSigArgs),
    /// Connect as an account and print every push it receives, one JSON frame per line.
    ///
    /// Frames go to stdout, one JSON object per line; connection events go to stderr. A dropped
    /// connection is retried with exponential backoff (1 s doubling to 30 s, with jitter). It
    /// stops with exit status 1 when retrying cannot help (login refused, TLS certificate not
    /// trusted), and with 0 when a newer session of the account replaces this one.
    Listen(ListenArgs),
    /// Copy an embedded store into an empty PostgreSQL database (or back), then verify it.
    ///
    /// Stop tagcast first: the copy reads one snapshot of the source. Every record is copied as
    /// it is (account ids, tags, attributes, attribute names, push tasks with their audiences,
    /// deliveries, cursors); at the end the records of each kind are counted on both sides, and
    /// the command fails unless they match. The target must hold no tagcast data.
    Migrate(MigrateArgs),
    /// Write a new VAPID key pair for Web Push: the private key to a new file (readable by its
    /// owner only), for `[apps.webpush] vapid_key_file`; the public key to stdout, for
    /// browsers' `applicationServerKey`.
    VapidKey(VapidKeyArgs),
}

#[derive(Debug, Args)]
pub struct VapidKeyArgs {
    /// The file to create; an existing one is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to copy: a data directory, or a postgres:// URL.
    #[arg(long, value_name = "DATA_DIR|URL")]
    pub from: String,
    /// The empty store to copy into: a postgres:// URL, or a data directory.
    #[arg(long, value_name = "URL|DATA_DIR")]
    pub to: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "TAGCAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TAGCAST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded store and of the development app's key
    /// [default: ./tagcast-data].
    #[arg(long, env = "TAGCAST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the records in PostgreSQL instead of the embedded store:
    /// postgres://user[:password]@host[:port]/db (or postgresql://). A password on the command
    /// line is visible to other users of this machine (e.g. in `ps`): prefer TAGCAST_STORE_URL
    /// or the config file's `[store] url`.
    #[arg(
        long,
        env = "TAGCAST_STORE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub store_url: Option<String>,
    /// This node's name among the nodes sharing a PostgreSQL store
    /// [default: the host's name and the port listened on].
    #[arg(long, env = "TAGCAST_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, env = "TAGCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; with --tls-cert, serve HTTPS.
    #[arg(long, env = "TAGCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log lines on stderr: `text` (coloured only on a terminal) or `json` (one object per
    /// line). The filter is TAGCAST_LOG (e.g. `debug`, `tagcast_server=debug`) [default: info].
    #[arg(long, env = "TAGCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the app's secret key comes from. `--key-file` or `TAGCAST_KEY` keep it out of the
/// process list; `--key-file` wins over the variable.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The app's secret key. On the command line it is visible to other users of this machine
    /// (e.g. in `ps`): prefer --key-file or TAGCAST_KEY.
    #[arg(long, env = "TAGCAST_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// A file holding the app's secret key (a trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Whether `key` came from TAGCAST_KEY rather than --key: set after parsing.
    #[arg(skip)]
    pub key_from_env: bool,
}

#[derive(Debug, Args)]
pub struct UserSigArgs {
    #[arg(long)]
    pub sdkappid: u64,
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long)]
    pub identifier: String,
    /// Validity in seconds.
    #[arg(long, default_value_t = tagcast_usersig::DEFAULT_EXPIRE_SECS)]
    pub expire: u64,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The server's base URL (http://, https://, ws:// or wss://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long)]
    pub sdkappid: u64,
    /// The account to connect as; it becomes known to the app, as a login does.
    #[arg(long)]
    pub identifier: String,
    // The app's secret key signs a UserSig for the account at each connection.
    #[command(flatten)]
    pub key: KeyArgs,
    /// A ready UserSig of the account, instead of the app's key.
    #[arg(long, conflicts_with = "key_file")]
    pub usersig: Option<String>,
    /// A PEM file of CA certificates (or of the server's self-signed certificate) to trust for
    /// https:// and wss://, besides the built-in public roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}
