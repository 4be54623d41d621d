//! One HTTP/2 connection to a provider's host, every request a stream of it: what Apple asks
//! of APNs senders (keep a connection open, send many notifications over it) and what FCM's
//! HTTP v1 API serves as well. Against a pooled general client (reqwest) this halves the CPU
//! a notification costs (bench/devices.sh). A connection that fails, or that the provider
//! closes (GOAWAY, idle), is replaced by the next request; a ping every `KEEP_ALIVE` finds one
//! that died silently.
//!
//! `https` endpoints negotiate `h2` by ALPN and trust the public roots (webpki-roots) and the
//! certificates of an optional CA file; `http` endpoints (the test suite's fakes) speak HTTP/2
//! with prior knowledge.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use crate::{Answer, MAX_ANSWER, causes, keep_within_cap, within};

/// How long opening a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle connection is pinged, and how long its answer may take.
const KEEP_ALIVE: Duration = Duration::from_secs(60);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

type Sender = SendRequest<Full<Bytes>>;

/// The connection to one origin (`scheme://host:port`).
pub struct Http2 {
    host: String,
    port: u16,
    /// TLS for `https`, to this name.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The open connection; held while one is opened, so that one request opens it for all.
    connection: Mutex<Option<Sender>>,
}

impl Http2 {
    /// For the origin of `endpoint`, an `http` or `https` URL; `ca` adds PEM certificates to
    /// trust (a test's or a proxy's). Connects on the first request.
    pub fn new(endpoint: &str, ca: Option<&[u8]>) -> Result<Self, String> {
        let uri: Uri = endpoint.parse().map_err(|e| format!("{endpoint}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{endpoint}: not an http or https URL")),
        };
        let host = uri.host().ok_or_else(|| format!("{endpoint}: no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            true => {
                let name =
                    ServerName::try_from(host.clone()).map_err(|e| format!("{endpoint}: {e}"))?;
                Some((tls_connector(ca)?, name))
            }
            false => None,
        };
        Ok(Self {
            host,
            port,
            tls,
            connection: Mutex::new(None),
        })
    }

    /// Sends `request` (to this origin) within `timeout`; the answer, or why there is none.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        within(timeout, self.exchange(request)).await
    }

    async fn exchange(&self, request: http::Request<Vec<u8>>) -> Result<Answer, String> {
        let mut sender = self.sender().await?;
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let response = sender.send_request(request).await.map_err(|e| causes(&e))?;
        let (parts, mut body) = response.into_parts();
        let mut read = Vec::new();
        while read.len() < MAX_ANSWER
            && let Some(frame) = body.frame().await
        {
            if let Ok(data) = frame.map_err(|e| causes(&e))?.into_data() {
                keep_within_cap(&mut read, &data);
            }
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: read,
        })
    }

    /// The open connection, or a new one.
    async fn sender(&self) -> Result<Sender, String> {
        let mut connection = self.connection.lock().await;
        if let Some(open) = connection.as_ref().filter(|s| !s.is_closed()) {
            return Ok(open.clone());
        }
        *connection = None;
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| format!("connecting took more than {CONNECT_TIMEOUT:?}"))??;
        *connection = Some(opened.clone());
        Ok(opened)
    }

    async fn connect(&self) -> Result<Sender, String> {
        let at = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {at}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return handshake(tcp).await;
        };
        let tls = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS with {at}: {e}"))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(format!("{at} does not offer HTTP/2 (ALPN h2)"));
        }
        handshake(tls).await
    }
}

/// Starts HTTP/2 over `io`; the connection runs on its own task until it closes.
async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/2: {}", causes(&e)))?;
    // Its end shows in the sender (`is_closed`), which the next request replaces.
    tokio::spawn(connection);
    Ok(sender)
}

/// rustls offering `h2`, trusting the public roots and the PEM certificates of `ca`.
fn tls_connector(ca: Option<&[u8]>) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in CertificateDer::pem_slice_iter(ca.unwrap_or_default()) {
        let cert = cert.map_err(|e| format!("ca: {e}"))?;
        roots.add(cert).map_err(|e| format!("ca: {e}"))?;
    }
    // ring, named rather than the process default: the one provider of every rustls user here.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_endpoints_with_a_host_are_taken() {
        let plain = Http2::new("http://127.0.0.1:8080/v1", None).unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls.is_none()),
            ("127.0.0.1", 8080, true)
        );
        let secure = Http2::new("https://api.push.apple.com", None).unwrap();
        assert_eq!((secure.port, secure.tls.is_some()), (443, true));
        let v6 = Http2::new("http://[::1]:9/", None).unwrap();
        assert_eq!(v6.host, "::1");
        for bad in ["ftp://example.com", "example.com", "https://", ""] {
            assert!(Http2::new(bad, None).is_err(), "{bad}");
        }
        assert!(
            Http2::new(
                "https://a.example",
                Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            )
            .is_err()
        );
    }

    /// A server of HTTP/2 with prior knowledge that answers each connection's first request
    /// with the connection's number, then closes it gracefully (GOAWAY), as a provider does.
    async fn one_answer_per_connection() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for n in 1u32.. {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (answered, mut closing) = tokio::sync::mpsc::channel::<()>(1);
                let service = hyper::service::service_fn(move |_| {
                    let answered = answered.clone();
                    async move {
                        let _ = answered.try_send(());
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(n.to_string()),
                        )))
                    }
                });
                tokio::spawn(async move {
                    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => return,
                        _ = closing.recv() => connection.as_mut().graceful_shutdown(),
                    }
                    let _ = connection.await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_with_goaway_is_replaced_by_the_next_request() {
        let port = one_answer_per_connection().await;
        let client = Http2::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        for connection in 1..=3 {
            let request = http::Request::post(format!("http://127.0.0.1:{port}/"))
                .body(Vec::new())
                .unwrap();
            let answer = client.send(request, Duration::from_secs(5)).await.unwrap();
            assert_eq!(answer.body, connection.to_string().as_bytes());
            // The GOAWAY and the close arrive a moment after the answer.
            for _ in 0..100 {
                let closed = client
                    .connection
                    .lock()
                    .await
                    .as_ref()
                    .is_none_or(|s| s.is_closed());
                if closed {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_and_the_next_request_tries_again() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = Http2::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let request = || {
            http::Request::post(format!("http://127.0.0.1:{port}/"))
                .body(Vec::new())
                .unwrap()
        };
        for _ in 0..2 {
            let error = client
                .send(request(), Duration::from_secs(5))
                .await
                .unwrap_err();
            assert!(error.contains("connecting to"), "{error}");
        }
        assert!(client.connection.lock().await.is_none());
    }
}
