//! `tagcast listen`: a minimal client that connects as one account and prints what it receives.
//!
//! Each text frame is one JSON line on stdout; connection events go to stderr. A dropped
//! connection is retried with exponential backoff; what retrying cannot fix (a refused login, an
//! untrusted certificate) ends the command instead.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use crate::cli::ListenArgs;
use crate::failure::Failure;

/// The close code of a session replaced by a newer login of the same account.
const REPLACED: u16 = 4000;
/// The first wait before reconnecting; it doubles after each failed attempt.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A connection that lasted this long was healthy: the next wait starts again from 1 s.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Longest wait for the TCP, TLS and WebSocket handshakes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A ping this often keeps proxies from closing an idle connection, and its pong shows the
/// connection is alive.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Nothing heard (not even a pong) for this long: the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

pub async fn listen(args: ListenArgs) -> Result<(), Failure> {
    let credentials = Credentials::from_args(&args)?;
    let tls = client_tls(args.ca.as_deref()).map_err(Failure::config)?;
    let base = websocket_base(&args.url).map_err(Failure::config)?;
    let mut backoff = Backoff::default();
    loop {
        let url = websocket_url(
            &base,
            args.sdkappid,
            &args.identifier,
            &credentials.usersig(),
        );
        let started = Instant::now();
        let ended = session(&url, &args, tls.clone()).await;
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let why = match ended {
            Ended::Retry(why) => why,
            Ended::Replaced(reason) => {
                eprintln!(
                    "tagcast listen: the server ended the session of {}: {reason}; not reconnecting",
                    args.identifier
                );
                return Ok(());
            }
            Ended::Fatal(error) => return Err(Failure::runtime(error)),
        };
        let delay = backoff.next_delay();
        eprintln!(
            "tagcast listen: {why}; reconnecting in {:.1} s",
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }
}

/// How the account proves who it is: a UserSig signed afresh for each connection, or given.
enum Credentials {
    Key {
        sdkappid: u64,
        key: String,
        identifier: String,
    },
    UserSig(String),
}

impl Credentials {
    fn from_args(args: &ListenArgs) -> Result<Self, Failure> {
        if let Some(sig) = &args.usersig {
            if args.key.key_flag_given() {
                return Err(Failure::config(anyhow!(
                    "--key and --usersig cannot be used together"
                )));
            }
            return Ok(Self::UserSig(sig.clone()));
        }
        match args.key.resolve()? {
            Some(key) => Ok(Self::Key {
                sdkappid: args.sdkappid,
                key,
                identifier: args.identifier.clone(),
            }),
            None => Err(Failure::config(anyhow!(
                "{}; or a ready --usersig",
                crate::key::NEEDED
            ))),
        }
    }

    fn usersig(&self) -> String {
        match self {
            Self::Key {
                sdkappid,
                key,
                identifier,
            } => tagcast_usersig::sign(
                *sdkappid,
                key,
                identifier,
                tagcast_usersig::DEFAULT_EXPIRE_SECS,
                tagcast_server::now_unix(),
            ),
            Self::UserSig(sig) => sig.clone(),
        }
    }
}

/// Why a connection attempt or a session ended.
enum Ended {
    /// Dropped, refused for now, or closed by the server: worth connecting again.
    Retry(String),
    /// Another login of the account took over (close code 4000).
    Replaced(String),
    /// Retrying cannot help.
    Fatal(anyhow::Error),
}

/// One connection: connects, prints each frame, and says how it ended.
async fn session(url: &str, args: &ListenArgs, tls: Arc<rustls::ClientConfig>) -> Ended {
    let connect = connect_async_tls_with_config(url, None, true, Some(Connector::Rustls(tls)));
    let socket = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => {
            return Ended::Retry(format!(
                "cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}",
                args.url
            ));
        }
        Ok(Err(error)) => return connect_error(error, args),
        Ok(Ok((socket, _response))) => socket,
    };
    eprintln!(
        "tagcast listen: connected to {} as {}",
        args.url, args.identifier
    );
    let (mut write, mut read) = socket.split();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            message = read.next() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(Message::Text(frame))) => println!("{frame}"),
                    Some(Ok(Message::Close(frame))) => return closed(frame),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Ended::Retry(format!("connection lost: {error}")),
                    None => return Ended::Retry("connection closed by the server".into()),
                }
            }
            _ = ping.tick() => {
                if let Err(error) = write.send(Message::Ping(Default::default())).await {
                    return Ended::Retry(format!("connection lost: {error}"));
                }
            }
            _ = tokio::time::sleep_until(last_heard + SILENCE_LIMIT) => {
                return Ended::Retry(format!(
                    "connection lost: nothing heard for {SILENCE_LIMIT:?}"
                ));
            }
        }
    }
}

fn closed(frame: Option<tungstenite::protocol::CloseFrame>) -> Ended {
    let Some(frame) = frame else {
        return Ended::Retry("the server closed the connection".into());
    };
    let code = u16::from(frame.code);
    let reason = match (code, frame.reason.as_str()) {
        (REPLACED, "") => format!("replaced by a newer session (close code {code})"),
        (_, "") => format!("close code {code}"),
        (_, reason) => format!("{reason} (close code {code})"),
    };
    if code == REPLACED {
        Ended::Replaced(reason)
    } else {
        Ended::Retry(format!("the server closed the connection: {reason}"))
    }
}

/// Sorts a failed connection attempt: refused logins, TLS failures and bad URLs are final.
fn connect_error(error: tungstenite::Error, args: &ListenArgs) -> Ended {
    let url = &args.url;
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let envelope = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok());
            let detail = match &envelope {
                Some(e) => format!(
                    "ErrorCode {}: {}",
                    e["ErrorCode"],
                    e["ErrorInfo"].as_str().unwrap_or_default()
                ),
                None => format!("HTTP {status}"),
            };
            if status.is_server_error() {
                Ended::Retry(format!("{url} cannot take the session now ({detail})"))
            } else if status == tungstenite::http::StatusCode::UNAUTHORIZED {
                Ended::Fatal(anyhow!(
                    "{url} refused the login of {} (HTTP {status}, {detail})",
                    args.identifier
                ))
            } else {
                Ended::Fatal(anyhow!(
                    "{url} refused the connection (HTTP {status}, {detail})"
                ))
            }
        }
        tungstenite::Error::Io(io) => match tls_error(&io) {
            Some(tls) => Ended::Fatal(anyhow!(
                "TLS with {url} failed: {}",
                explain_tls(tls, args.ca.is_some())
            )),
            None => Ended::Retry(format!("cannot connect to {url}: {io}")),
        },
        // What answered is not an HTTP server: most likely a TLS port reached with http://.
        tungstenite::Error::Protocol(ProtocolError::HttparseError(bad)) => Ended::Fatal(anyhow!(
            "{url} did not answer in HTTP ({bad}); if it serves HTTPS, use https://"
        )),
        tungstenite::Error::Tls(tls) => Ended::Fatal(anyhow!("TLS with {url} failed: {tls}")),
        tungstenite::Error::Url(bad) => Ended::Fatal(anyhow!("bad --url {url}: {bad}")),
        tungstenite::Error::HttpFormat(bad) => Ended::Fatal(anyhow!("bad --url {url}: {bad}")),
        other => Ended::Retry(format!("cannot connect to {url}: {other}")),
    }
}

/// The rustls error inside an I/O error of the handshake, if that is what it is.
fn tls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The TLS error, with what to do about an untrusted certificate.
fn explain_tls(error: &rustls::Error, ca_given: bool) -> String {
    let rustls::Error::InvalidCertificate(cause) = error else {
        return error.to_string();
    };
    let hint = match cause {
        rustls::CertificateError::UnknownIssuer if ca_given => {
            "the server's certificate is not signed by the --ca certificates nor a public CA"
        }
        rustls::CertificateError::UnknownIssuer => {
            "the server's certificate is not trusted; for a private CA or a self-signed \
             certificate, pass its PEM file with --ca"
        }
        // webpki refuses a certificate marked as a CA (`basicConstraints CA:TRUE`, as `openssl
        // req -x509` makes by default) as a server's own certificate, even when trusted.
        other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server's certificate is a CA certificate; serve a certificate issued by that CA, \
             or a self-signed one without CA:TRUE"
        }
        _ => return error.to_string(),
    };
    format!("{error}: {hint}")
}

/// The client TLS settings: the public roots of webpki-roots, plus the `--ca` certificates.
fn client_tls(ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        for cert in read_ca(path)? {
            roots
                .add(cert)
                .with_context(|| format!("--ca {}: not a usable certificate", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_ca(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the --ca file {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--ca {}: bad PEM", path.display()))?;
    if certs.is_empty() {
        bail!(
            "no PEM certificate found in the --ca file {}",
            path.display()
        );
    }
    Ok(certs)
}

/// Exponential backoff with jitter: 1 s doubling to 30 s, each wait between half and all of it.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let full = FIRST_DELAY
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        full.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `http://host` becomes `ws://host` (`https` becomes `wss`).
fn websocket_base(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = base.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        Ok(base.to_string())
    } else {
        bail!("--url must start with http://, https://, ws:// or wss://");
    }
}

/// The session endpoint `BASE/ws?...` of the account.
fn websocket_url(base: &str, sdkappid: u64, identifier: &str, usersig: &str) -> String {
    let identifier = utf8_percent_encode(identifier, NON_ALPHANUMERIC);
    format!(
        "{base}/ws?sdkappid={sdkappid}&identifier={identifier}&usersig={usersig}&contenttype=json"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_the_websocket_endpoint() {
        let base = websocket_base("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            websocket_url(&base, 1, "小明 a", "sig"),
            "ws://127.0.0.1:8080/ws?sdkappid=1&identifier=%E5%B0%8F%E6%98%8E%20a&usersig=sig&contenttype=json"
        );
        assert_eq!(websocket_base("https://h").unwrap(), "wss://h");
        assert_eq!(websocket_base("wss://h/").unwrap(), "wss://h");
        assert!(websocket_base("ftp://h").is_err());
    }

    #[test]
    fn backoff_doubles_to_30_s_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        for (i, delay) in delays.iter().enumerate() {
            let full = Duration::from_secs(1 << i).min(MAX_DELAY);
            assert!(
                *delay >= full / 2 && *delay <= full,
                "attempt {i}: {delay:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST_DELAY);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not PEM").unwrap();
        let error = client_tls(Some(&path)).unwrap_err();
        assert!(
            format!("{error:#}").contains("no PEM certificate"),
            "{error:#}"
        );
        assert!(client_tls(None).is_ok());
    }
}
