//! The `tagcast` command: `serve` runs the server, `usersig` prints a UserSig.

mod cli;
mod dev_app;
mod listen;
mod settings;

use clap::Parser;
use tagcast_server::ServerHandle;

use crate::cli::{Cli, Command, ServeArgs, UserSigArgs};
use crate::dev_app::DevAppInfo;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Listen(args) => tokio::runtime::Runtime::new()?.block_on(listen::listen(args)),
        Command::Usersig(args) => {
            print_usersig(&args);
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let (config, dev_app) = settings::resolve(&args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let handle = ServerHandle::new();
        let tls = config.tls.is_some();
        tokio::spawn(announce_when_listening(handle.clone(), tls, dev_app));
        tokio::spawn(shutdown_on_signal(handle.clone()));
        tagcast_server::serve(config, handle).await
    })?;
    Ok(())
}

/// Prints the bound address on stdout once listening: with `--listen 127.0.0.1:0` this is how a
/// caller learns the port.
async fn announce_when_listening(handle: ServerHandle, tls: bool, dev_app: Option<DevAppInfo>) {
    if let Some(addr) = handle.listening().await {
        if let Some(info) = &dev_app {
            dev_app::print_banner(info, addr, tls);
        }
        let scheme = if tls { "https" } else { "http" };
        println!("tagcast listening on {scheme}://{addr}");
        tracing::info!(%addr, scheme, "listening");
    }
}

async fn shutdown_on_signal(handle: ServerHandle) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn print_usersig(args: &UserSigArgs) {
    let now = tagcast_server::now_unix();
    println!(
        "{}",
        tagcast_usersig::sign(args.sdkappid, &args.key, &args.identifier, args.expire, now)
    );
}
