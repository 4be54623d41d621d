//! Command-line arguments. Each `serve` flag can also be set with a `TAGCAST_*` variable;
//! flags win over variables, which win over the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tagcast",
    version,
    about = "Self-hosted, Tencent Cloud Chat compatible push audience server"
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
    Listen(ListenArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "TAGCAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TAGCAST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the durable store [default: ./tagcast-data].
    #[arg(long, env = "TAGCAST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, env = "TAGCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; with --tls-cert, serve HTTPS.
    #[arg(long, env = "TAGCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UserSigArgs {
    #[arg(long)]
    pub sdkappid: u64,
    /// The app's secret key.
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub identifier: String,
    /// Validity in seconds.
    #[arg(long, default_value_t = tagcast_usersig::DEFAULT_EXPIRE_SECS)]
    pub expire: u64,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The server's base URL (http:// or ws://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long)]
    pub sdkappid: u64,
    /// The account to connect as; it becomes known to the app, as a login does.
    #[arg(long)]
    pub identifier: String,
    /// The app's secret key, to sign a UserSig for the account.
    #[arg(long, required_unless_present = "usersig")]
    pub key: Option<String>,
    /// A ready UserSig of the account, instead of --key.
    #[arg(long, conflicts_with = "key")]
    pub usersig: Option<String>,
}
