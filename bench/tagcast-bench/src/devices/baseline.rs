//! The baseline: the same fake sent the same notifications by a minimal client doing nothing
//! else. Each request is made by tagcast-push's builders, as tagcast makes it (the APNs
//! provider token and the FCM access token reused, each Web Push body encrypted to its
//! subscription and signed with the same VAPID key), and sent with hyper straight over its
//! connection: no store, no batches, no pool, `in_flight` requests at once (tagcast's limit per
//! provider), each worker taking the next device as soon as its answer is in. One more form sends
//! them with tagcast's own client (reqwest) instead, to tell the cost of the client library from
//! that of the rest of tagcast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tagcast_bench::stats::machine_cpu_secs;
use tagcast_push::webpush::unix_now;
use tagcast_push::{Alert, apns, fcm, webpush};
use tokio::net::TcpStream;

use super::fakes::{CONTACT, Fake, KEY_ID, Provider, Span, TEAM_ID, TOPIC};
use super::{DevicesArgs, Pools};

/// How the client talks to the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// HTTP/2, every request a stream of one connection (TLS with ALPN h2 for APNs, prior
    /// knowledge in plain text for the others): what tagcast does with APNs and FCM
    /// (`tagcast_push::h2`).
    Http2,
    /// HTTP/1.1, one keep-alive connection per request in flight: what tagcast's Web Push
    /// client does with a plain-text endpoint.
    Http1,
    /// reqwest (`tagcast_push::client` and `send`), tagcast's Web Push client, to tell the cost
    /// of a pooled general client.
    Reqwest,
}

impl Form {
    /// The forms screened for `provider`: APNs speaks HTTP/2 only.
    pub fn for_provider(provider: Provider) -> &'static [Form] {
        match provider {
            Provider::Apns => &[Form::Http2, Form::Reqwest],
            Provider::Fcm | Provider::Webpush => &[Form::Http2, Form::Http1, Form::Reqwest],
        }
    }

    pub fn describe(self, in_flight: usize) -> String {
        match self {
            Form::Http2 => format!("HTTP/2, 1 connection, {in_flight} streams"),
            Form::Http1 => format!("HTTP/1.1, {in_flight} connections"),
            Form::Reqwest => format!("reqwest (tagcast's Web Push client), {in_flight} in flight"),
        }
    }
}

/// The notification tagcast sent, to send again.
pub struct Notice {
    pub alert: Alert,
    pub task: String,
    /// APNs: `apns-expiration`; FCM and Web Push: the TTL, in seconds.
    pub lifetime: u64,
}

/// Makes each request as tagcast does.
enum Builder {
    Apns {
        credentials: apns::Credentials,
        base: String,
    },
    Fcm {
        account: fcm::ServiceAccount,
        api: String,
    },
    Web {
        vapid: webpush::Vapid,
        payload: Vec<u8>,
    },
}

impl Builder {
    async fn new(fake: &Fake, notice: &Notice, vapid_private: &str) -> anyhow::Result<Builder> {
        Ok(match fake.provider {
            Provider::Apns => Builder::Apns {
                credentials: apns::Credentials::from_p8(
                    fake.p8().unwrap_or_default().as_bytes(),
                    KEY_ID,
                    TEAM_ID,
                )?,
                base: fake.url(),
            },
            Provider::Fcm => {
                let account = fcm::ServiceAccount::from_json(fake.service_account().as_bytes())?;
                access_token(&account).await?;
                Builder::Fcm {
                    account,
                    api: fake.url(),
                }
            }
            Provider::Webpush => Builder::Web {
                vapid: webpush::Vapid::from_private_key(vapid_private, CONTACT)?,
                payload: webpush::payload(&notice.alert, &notice.task),
            },
        })
    }

    /// The request to the device whose stored token is `token` (Web Push: its subscription's
    /// JSON, parsed here as tagcast parses it for every notification).
    fn request(&self, token: &str, notice: &Notice) -> anyhow::Result<http::Request<Vec<u8>>> {
        let ttl = Duration::from_secs(notice.lifetime);
        Ok(match self {
            Builder::Apns { credentials, base } => {
                let token_now = credentials.token(unix_now())?;
                let notification = apns::Notification {
                    device_token: token,
                    topic: TOPIC,
                    alert: &notice.alert,
                    expiration: notice.lifetime,
                    collapse_id: &notice.task,
                };
                apns::request(base, &token_now, &notification)
            }
            Builder::Fcm { account, api } => {
                let access = account
                    .cached_token(unix_now())
                    .context("the access token expired")?;
                let notification = fcm::Notification {
                    device_token: token,
                    alert: &notice.alert,
                    ttl,
                    collapse_key: &notice.task,
                };
                fcm::request(api, &account.project_id, &access, &notification)
            }
            Builder::Web { vapid, payload } => {
                let subscription = webpush::Subscription::parse(token)?;
                let notification = webpush::Notification {
                    payload,
                    ttl,
                    topic: Some(&notice.task),
                    urgency: webpush::Urgency::Normal,
                };
                webpush::request(&subscription, vapid, &notification)?
            }
        })
    }
}

/// An FCM access token from the fake's token endpoint, kept in `account` (before the clock
/// starts, as tagcast's first request fetches it).
async fn access_token(account: &fcm::ServiceAccount) -> anyhow::Result<()> {
    let client = tagcast_push::client(None, false).map_err(anyhow::Error::msg)?;
    let now = unix_now();
    let request = account.token_request(now)?;
    let answer = tagcast_push::send(&client, request, Duration::from_secs(10))
        .await
        .map_err(anyhow::Error::msg)?;
    account.token_received(&answer.body, now)?;
    Ok(())
}

/// One request at a time on a connection (HTTP/1.1), one stream of a shared one (HTTP/2), or
/// one request of tagcast's client.
enum Lane {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    Reqwest(reqwest::Client),
}

impl Lane {
    /// Sends `request`; the answer's status, its body read.
    async fn send(&mut self, request: http::Request<Vec<u8>>) -> anyhow::Result<(u16, Bytes)> {
        if let Lane::Reqwest(client) = self {
            let answer = tagcast_push::send(client, request, Duration::from_secs(10))
                .await
                .map_err(anyhow::Error::msg)?;
            return Ok((answer.status, Bytes::from(answer.body)));
        }
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let response = match self {
            Lane::H1(sender) => {
                sender.ready().await?;
                sender.send_request(origin_form(request)?).await?
            }
            Lane::H2(sender) => sender.send_request(request).await?,
            Lane::Reqwest(_) => unreachable!("answered above"),
        };
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// An HTTP/1.1 request names its path, and its host in `Host`.
fn origin_form<B>(mut request: http::Request<B>) -> anyhow::Result<http::Request<B>> {
    let uri = request.uri().clone();
    let host = uri.authority().context("no host")?.as_str().parse()?;
    request.headers_mut().insert(http::header::HOST, host);
    *request.uri_mut() = uri.path_and_query().context("no path")?.as_str().parse()?;
    Ok(request)
}

/// A connection to the fake at `url` (https: TLS trusting `ca`, ALPN h2) in `form`, driven by a
/// task of the current runtime.
async fn connect(url: &str, ca: Option<&str>, form: Form) -> anyhow::Result<Lane> {
    let (tls, host) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(host), _) => (true, host),
        (None, Some(host)) => (false, host),
        _ => bail!("{url} is not an http(s) URL"),
    };
    let addr: SocketAddr = host
        .parse()
        .with_context(|| format!("{url}: not an address"))?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    if tls {
        let stream = tls_connect(tcp, ca.context("no CA for TLS")?, addr).await?;
        return handshake_h2(TokioIo::new(stream)).await;
    }
    match form {
        Form::Http2 => handshake_h2(TokioIo::new(tcp)).await,
        Form::Http1 => {
            let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(connection);
            Ok(Lane::H1(sender))
        }
        Form::Reqwest => bail!("reqwest connects by itself"),
    }
}

async fn handshake_h2<T>(io: TokioIo<T>) -> anyhow::Result<Lane>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(connection);
    Ok(Lane::H2(sender))
}

async fn tls_connect(
    tcp: TcpStream,
    ca: &str,
    addr: SocketAddr,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Ok(connector.connect(ServerName::from(addr.ip()), tcp).await?)
}

/// What a baseline run measured.
pub struct Run {
    pub form: Form,
    /// First request sent (connections open) -> the fake's last arrival.
    pub elapsed: Duration,
    pub span: Span,
    pub client_cpu: f64,
    pub fake_cpu: f64,
    /// The machine's busy CPU seconds, every process.
    pub machine: f64,
}

impl Run {
    pub fn rate(&self, devices: usize) -> f64 {
        devices as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends `notice` to every device of `fake` in `form`, from the client's runtime; checks that
/// the fake took each once and refused nothing.
pub async fn run(
    fake: &Fake,
    pools: Pools<'_>,
    form: Form,
    notice: Arc<Notice>,
    args: &DevicesArgs,
    vapid_private: &str,
) -> anyhow::Result<Run> {
    let (client, fake_pool, in_flight) = (pools.client, pools.fake, args.in_flight);
    let builder = Arc::new(Builder::new(fake, &notice, vapid_private).await?);
    let tokens: Arc<Vec<String>> = Arc::new(
        fake.devices
            .iter()
            .map(|d| {
                d.token
                    .as_str()
                    .map_or_else(|| d.token.to_string(), str::to_string)
            })
            .collect(),
    );
    let before = fake.received_count();
    let (url, ca, provider) = (fake.url(), fake.ca_pem(), fake.provider);
    let task = notice.task.clone();
    let (client_cpu, fake_cpu) = (client.cpu_secs(), fake_pool.cpu_secs());
    let machine = machine_cpu_secs().0;
    let started = client
        .spawn(async move {
            let lanes = lanes(&url, ca.as_deref(), (provider, form), in_flight).await?;
            let started = Instant::now();
            send_all(lanes, builder, tokens, notice).await?;
            anyhow::Ok(started)
        })
        .await??;
    let (client_cpu, fake_cpu, machine) = (
        client.cpu_secs() - client_cpu,
        fake_pool.cpu_secs() - fake_cpu,
        machine_cpu_secs().0 - machine,
    );
    let what = format!("baseline ({})", form.describe(in_flight));
    let span = fake.check(before, &task, &what)?;
    Ok(Run {
        form,
        elapsed: span.last.saturating_duration_since(started),
        span,
        client_cpu,
        fake_cpu,
        machine,
    })
}

/// The client tagcast's providers build for `provider` (delivery/providers.rs), the app
/// allowing private Web Push endpoints.
fn tagcast_client(provider: Provider, ca: Option<&str>) -> Result<reqwest::Client, String> {
    let ca = ca.map(str::as_bytes);
    match provider {
        Provider::Apns => tagcast_push::client(ca, true),
        Provider::Fcm => tagcast_push::client(ca, false),
        Provider::Webpush => tagcast_push::endpoint_client(ca, true),
    }
}

/// `in_flight` lanes: streams of one HTTP/2 connection, HTTP/1.1 connections, or requests of
/// tagcast's client.
async fn lanes(
    url: &str,
    ca: Option<&str>,
    (provider, form): (Provider, Form),
    in_flight: usize,
) -> anyhow::Result<Vec<Lane>> {
    let mut lanes = Vec::with_capacity(in_flight);
    match form {
        Form::Http2 => {
            let Lane::H2(shared) = connect(url, ca, form).await? else {
                bail!("no HTTP/2 connection");
            };
            lanes.extend((0..in_flight).map(|_| Lane::H2(shared.clone())));
        }
        Form::Http1 => {
            for _ in 0..in_flight {
                lanes.push(connect(url, ca, form).await?);
            }
        }
        Form::Reqwest => {
            let client = tagcast_client(provider, ca).map_err(anyhow::Error::msg)?;
            lanes.extend((0..in_flight).map(|_| Lane::Reqwest(client.clone())));
        }
    }
    Ok(lanes)
}

/// One worker per lane, each taking the next device until there is none.
async fn send_all(
    lanes: Vec<Lane>,
    builder: Arc<Builder>,
    tokens: Arc<Vec<String>>,
    notice: Arc<Notice>,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for mut lane in lanes {
        let (next, builder, tokens, notice) = (
            next.clone(),
            builder.clone(),
            tokens.clone(),
            notice.clone(),
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else {
                    return anyhow::Ok(());
                };
                let (status, body) = lane.send(builder.request(token, &notice)?).await?;
                if !(200..300).contains(&status) {
                    bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}
