//! The `tagcast` command: `serve` runs the server, `usersig` prints a UserSig, `listen` prints
//! what an account receives, `migrate` copies a store into another.
//!
//! Exit status: 0 on success, 1 on a failure while running, 2 on a usage, config or start-up
//! error. An error is one line on stderr, without a backtrace.

mod cli;
mod dev_app;
mod failure;
mod key;
mod listen;
mod logging;
mod migrate;
mod settings;

use std::process::ExitCode;

use anyhow::anyhow;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use tagcast_server::ServerHandle;

use crate::cli::{Cli, Command, KeyArgs, LogFormat, ServeArgs, UserSigArgs};
use crate::dev_app::DevAppInfo;
use crate::failure::Failure;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    note_key_source(&mut cli.command, &matches);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Listen(args) => tokio::runtime::Runtime::new()
            .map_err(Failure::runtime)
            .and_then(|runtime| runtime.block_on(listen::listen(args))),
        Command::Usersig(args) => print_usersig(&args),
        Command::Migrate(args) => migrate::migrate(args),
        Command::VapidKey(args) => write_vapid_key(&args.out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Records whether `--key` came from TAGCAST_KEY: a variable is a default that `--key-file` and
/// `--usersig` override, where `--key` on the command line conflicts with them.
fn note_key_source(command: &mut Command, matches: &ArgMatches) {
    let (keys, name): (&mut KeyArgs, _) = match command {
        Command::Usersig(args) => (&mut args.key, "usersig"),
        Command::Listen(args) => (&mut args.key, "listen"),
        Command::Serve(_) | Command::Migrate(_) | Command::VapidKey(_) => return,
    };
    keys.key_from_env = matches
        .subcommand_matches(name)
        .and_then(|sub| sub.value_source("key"))
        == Some(ValueSource::EnvVariable);
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    logging::init(args.log_format).map_err(Failure::config)?;
    let json = args.log_format == LogFormat::Json;
    serve_logged(args).map_err(|mut failure| {
        if json {
            // With JSON logs, the failure is one more JSON line rather than plain text.
            tracing::error!(exit_status = failure.status, "{}", failure.message());
            failure.logged = true;
        }
        failure
    })
}

fn serve_logged(args: ServeArgs) -> Result<(), Failure> {
    let (config, dev_app) = settings::resolve(&args).map_err(Failure::config)?;
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::config)?;
    let served = runtime.block_on(async move {
        let handle = ServerHandle::new();
        let tls = config.tls.is_some();
        let store = config.store_description();
        let console = (config.console.enabled).then(|| config.console.path.clone());
        let announced = Announced {
            tls,
            dev_app,
            store,
            console,
        };
        let announce = tokio::spawn(announce_when_listening(handle.clone(), announced));
        tokio::spawn(shutdown_on_signal(handle.clone()));
        let served = tagcast_server::serve(config, handle).await;
        // The server is past start-up once it listened: a failure then is a runtime one.
        let announced = announce
            .await
            .map_err(|e| Failure::runtime(anyhow!("start-up announcement failed: {e}")))?;
        match (served, announced) {
            (Err(error), Ok(false)) => Err(Failure::config(error)),
            (Err(error), Ok(true)) => Err(Failure::runtime(error)),
            (Ok(()), Err(failure)) | (Err(_), Err(failure)) => Err(failure),
            (Ok(()), Ok(_)) => Ok(()),
        }
    });
    // The store's threads drive their PostgreSQL connections through this runtime until the
    // process ends: shutting it down first would fail (and panic) their last statements.
    // Everything acknowledged is durable already, so nothing is lost by not waiting.
    std::mem::forget(runtime);
    served
}

/// What the start-up announcement says.
struct Announced {
    tls: bool,
    dev_app: Option<DevAppInfo>,
    /// Where the records are.
    store: String,
    /// The console's path, if it is served.
    console: Option<String>,
}

/// Once listening: keeps a new development app's key, prints its banner, then prints the bound
/// address on stdout (with `--listen 127.0.0.1:0` this is how a caller learns the port) and the
/// console's URL. Returns whether the server listened.
async fn announce_when_listening(
    handle: ServerHandle,
    announced: Announced,
) -> Result<bool, Failure> {
    let Announced {
        tls,
        dev_app,
        store,
        console,
    } = announced;
    let Some(addr) = handle.listening().await else {
        return Ok(false);
    };
    if let Some(info) = &dev_app {
        if let Err(error) = info.keep() {
            handle.graceful_shutdown(None);
            return Err(Failure::config(error));
        }
        dev_app::print_banner(info, addr, tls, &store);
    }
    let scheme = if tls { "https" } else { "http" };
    println!("tagcast listening on {scheme}://{addr}");
    if let Some(path) = console {
        println!("console: {scheme}://{addr}{path}");
    }
    tracing::info!(%addr, scheme, "listening");
    Ok(true)
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

/// Creates `path` with a new VAPID private key, readable by its owner only, and prints the
/// public key.
fn write_vapid_key(path: &std::path::Path) -> Result<(), Failure> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let vapid = tagcast_push::webpush::Vapid::generate("");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .map_err(|e| Failure::config(anyhow!("cannot create {}: {e}", path.display())))?;
    writeln!(file, "{}", vapid.private_key())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::runtime(anyhow!("cannot write {}: {e}", path.display())))?;
    println!("{}", vapid.public_key());
    Ok(())
}

fn print_usersig(args: &UserSigArgs) -> Result<(), Failure> {
    let key = args
        .key
        .resolve()?
        .ok_or_else(|| Failure::config(anyhow!(key::NEEDED)))?;
    let now = tagcast_server::now_unix();
    println!(
        "{}",
        tagcast_usersig::sign(args.sdkappid, &key, &args.identifier, args.expire, now)
    );
    Ok(())
}
