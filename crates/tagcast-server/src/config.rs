//! Server and per-app settings. Every limit of the Tencent API is configurable per app, with
//! Tencent's numbers as defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tagcast_store::Location;

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where the records are kept: the embedded store in the data directory, or PostgreSQL.
    pub store: Location,
    pub tls: Option<TlsConfig>,
    /// Page cache of the embedded store, in MiB.
    pub cache_mb: usize,
    /// Faults the store injects, from the `[testing]` table: for tests only, refused unless the
    /// binary is built with the `fault-injection` feature.
    pub faults: tagcast_store::FaultPlan,
    pub http: HttpConfig,
    pub websocket: WsConfig,
    pub cluster: ClusterConfig,
    pub console: ConsoleConfig,
    pub reports: ReportsConfig,
    pub apps: Vec<AppConfig>,
}

impl ServerConfig {
    /// How the server opens its store.
    pub fn store_options(&self) -> tagcast_store::StoreOptions {
        tagcast_store::StoreOptions {
            cache_bytes: self.cache_mb << 20,
            node_id: Some(self.node_id()),
            node_gone_after: Duration::from_secs(self.cluster.node_gone_after_secs),
            faults: self.faults.clone(),
        }
    }

    /// `node_id`, or the host's name and the port listened on: the same across restarts, and
    /// unique among the nodes of one machine.
    pub fn node_id(&self) -> String {
        self.cluster
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", tagcast_store::host_name(), self.listen.port()))
    }

    /// Where the store is, for logs and messages; never shows a password.
    pub fn store_description(&self) -> String {
        describe_store(&self.store)
    }
}

/// `location` for logs and messages: `embedded store in DIR/tagcast.redb` or
/// `PostgreSQL store at postgres://user:***@host/db` (see [`redact_url`]).
pub fn describe_store(location: &Location) -> String {
    match location {
        Location::Embedded(dir) => format!(
            "embedded store in {}",
            dir.join(tagcast_store::FILE_NAME).display()
        ),
        Location::Postgres(url) => format!("PostgreSQL store at {}", redact_url(url)),
    }
}

/// `url` with its password replaced by `***`: the one in `user:password@`, and the value of a
/// `password=` parameter (`?password=...` or a `key=value` connection string).
pub fn redact_url(url: &str) -> String {
    let mut out = match url.split_once("://") {
        // From the user's ':' to the last '@': a password holding an unescaped '@', '/' or '?'
        // is hidden whole (at worst, more than the password is).
        Some((scheme, rest)) => match (rest.find(':'), rest.rfind('@')) {
            (Some(colon), Some(at)) if colon < at => {
                format!("{scheme}://{}:***@{}", &rest[..colon], &rest[at + 1..])
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    };
    let mut from = 0;
    while let Some(found) = out[from..].find("password=") {
        let start = from + found + "password=".len();
        let end = out[start..]
            .find(|c: char| c == '&' || c == '#' || c.is_whitespace())
            .map_or(out.len(), |n| start + n);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

/// The schemes of a PostgreSQL connection URL.
const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// Checks a `[store] url` before anything connects; the message never shows a password.
fn validate_store_url(url: &str) -> Result<(), String> {
    if !POSTGRES_SCHEMES
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Err(format!(
            "url: '{}' is not a PostgreSQL URL (postgres://user@host:port/db or postgresql://...)",
            redact_url(url)
        ));
    }
    Ok(())
}

/// How long a push's records stay once it has ended (`[reports]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// Seconds a push's task, audience, deliveries and device answers are kept after its
    /// lifetime ends (its statistics, loss and traces go with them): Tencent keeps 7 days.
    pub keep_secs: u64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            keep_secs: 7 * 86_400,
        }
    }
}

impl ReportsConfig {
    fn validate(&self) -> Result<(), String> {
        match self.keep_secs {
            0 => Err("keep_secs: must be at least 1".into()),
            _ => Ok(()),
        }
    }

    pub fn keep(&self) -> Duration {
        Duration::from_secs(self.keep_secs)
    }
}

/// Several nodes on one PostgreSQL store (`node_id`, `[cluster]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name among the nodes (not from the `[cluster]` table: the top-level
    /// `node_id`, `--node-id` or `TAGCAST_NODE_ID`).
    #[serde(skip)]
    pub node_id: Option<String>,
    /// A node that has not said it is alive for this many seconds is taken for gone.
    pub node_gone_after_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            node_gone_after_secs: tagcast_store::DEFAULT_NODE_GONE_AFTER.as_secs(),
        }
    }
}

impl ClusterConfig {
    fn validate(&self) -> Result<(), String> {
        if self.node_gone_after_secs == 0 {
            return Err("node_gone_after_secs: must be at least 1".into());
        }
        if let Some(id) = &self.node_id {
            let fine = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
            if id.is_empty() || id.len() > 64 || !id.chars().all(fine) {
                return Err(format!(
                    "node_id: '{id}' must be 1 to 64 letters, digits, '-', '_', '.' or ':'"
                ));
            }
        }
        Ok(())
    }
}

/// The web console (`[console]`): whether it is served, and where.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    pub enabled: bool,
    /// `/` then letters, digits, `-`, `_` and `/`; not under a path tagcast serves otherwise.
    pub path: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/console".into(),
        }
    }
}

impl ConsoleConfig {
    fn validate(&self) -> Result<(), String> {
        let path = &self.path;
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_/".contains(c);
        if !path.starts_with('/')
            || path.len() < 2
            || path.ends_with('/')
            || path.contains("//")
            || !path.chars().all(allowed)
        {
            return Err(format!(
                "path: '{path}' must be like /console: '/' then letters, digits, '-', '_' or \
                 '/', not ending in '/'"
            ));
        }
        let taken = [
            "/v4", "/ws", "/healthz", "/metrics", "/cluster", "/webpush", "/client",
        ];
        let under = |t: &&&str| path == **t || path.starts_with(&format!("{t}/"));
        match taken.iter().find(under) {
            Some(other) => Err(format!(
                "path: '{path}' is under {other}, which tagcast serves"
            )),
            None => Ok(()),
        }
    }
}

/// Limits of the listener against idle, slow and too many connections (`[http]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Open connections at most, HTTP and WebSocket together; 0 = the process's descriptor
    /// limit less a reserve. At the cap, the oldest connection with no request in flight is
    /// closed to admit a new one.
    pub max_connections: usize,
    /// A request's head must arrive within this many seconds of its first byte (or of the
    /// connection's start), TLS handshake included.
    pub header_timeout_secs: u64,
    /// A request's body must arrive within this many seconds (60008 otherwise).
    pub body_timeout_secs: u64,
    /// A connection with no request and no traffic for this many seconds is closed.
    pub idle_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 0,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
        }
    }
}

impl HttpConfig {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    fn validate(&self) -> Result<(), String> {
        positive(&[
            ("header_timeout_secs", self.header_timeout_secs as usize),
            ("body_timeout_secs", self.body_timeout_secs as usize),
            ("idle_timeout_secs", self.idle_timeout_secs as usize),
        ])
    }
}

/// Keepalive and limits of WebSocket sessions (`[websocket]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// The server pings each session this often.
    pub ping_interval_secs: u64,
    /// A session that sends nothing for this long after a ping is closed (4002).
    pub pong_timeout_secs: u64,
    /// Largest message (and frame) a client may send; larger closes the session (1009).
    pub max_message_bytes: usize,
    /// Bytes the server buffers for a session that does not read; beyond, it is closed (4001).
    pub max_write_buffer_bytes: usize,
    /// Messages (pings included) a client may send per second; beyond, it is closed (1008).
    pub max_client_messages_per_sec: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            ping_interval_secs: 30,
            pong_timeout_secs: 20,
            max_message_bytes: 4096,
            max_write_buffer_bytes: 256 * 1024,
            max_client_messages_per_sec: 50,
        }
    }
}

impl WsConfig {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }

    pub fn pong_timeout(&self) -> Duration {
        Duration::from_secs(self.pong_timeout_secs)
    }

    fn validate(&self) -> Result<(), String> {
        positive(&[
            ("ping_interval_secs", self.ping_interval_secs as usize),
            ("pong_timeout_secs", self.pong_timeout_secs as usize),
            ("max_message_bytes", self.max_message_bytes),
            (
                "max_client_messages_per_sec",
                self.max_client_messages_per_sec as usize,
            ),
        ])?;
        // The write buffer must hold at least one push frame.
        if self.max_write_buffer_bytes < 16 * 1024 {
            return Err("max_write_buffer_bytes: must be at least 16384".into());
        }
        Ok(())
    }
}

/// The first of `values` that is 0, as an error naming its key.
fn positive(values: &[(&str, usize)]) -> Result<(), String> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(format!("{key}: must be greater than 0")),
        None => Ok(()),
    }
}

/// PEM files of the certificate chain and private key; with them the server speaks HTTPS.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One app (SDKAppID) served by this server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub sdkappid: u64,
    /// The app's secret key; UserSigs are HMAC-signed with its UTF-8 bytes.
    pub secret_key: String,
    /// Accounts allowed to call the REST API.
    pub admins: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    /// Where `Push.AllMemberPush` delivery events are POSTed; none = no callbacks.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// All-user, tag and batch pushes are allowed (else 90045).
    #[serde(default = "enabled")]
    pub push_enabled: bool,
    /// Apple's push service, for the app's iOS and macOS devices.
    #[serde(default)]
    pub apns: Option<ApnsConfig>,
    /// Firebase Cloud Messaging (HTTP v1), for its Android devices.
    #[serde(default)]
    pub fcm: Option<FcmConfig>,
    /// Web Push, for its browsers.
    #[serde(default)]
    pub webpush: Option<WebPushConfig>,
}

/// `[apps.apns]`: token authentication with the team's `.p8` key.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// The `.p8` file Apple's developer site gives (a PKCS#8 P-256 key).
    pub key_file: PathBuf,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    #[serde(default = "apns_production")]
    pub endpoint: String,
    #[serde(default = "apns_sandbox")]
    pub sandbox_endpoint: String,
    /// PEM certificates to trust besides the public roots (tests, proxies).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[apps.fcm]`: a service account of the Firebase project.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The service account's JSON key file.
    pub service_account_file: PathBuf,
    #[serde(default = "fcm_api")]
    pub endpoint: String,
    /// Overrides the file's `token_uri` (tests).
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[apps.webpush]`: the app server's VAPID identity.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebPushConfig {
    /// The VAPID private key, base64url, as `tagcast vapid-key` writes it.
    pub vapid_key_file: PathBuf,
    /// Who push services may contact about this app: `mailto:` or `https:`.
    pub contact: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn apns_production() -> String {
    "https://api.push.apple.com".into()
}

fn apns_sandbox() -> String {
    "https://api.sandbox.push.apple.com".into()
}

fn fcm_api() -> String {
    "https://fcm.googleapis.com".into()
}

fn enabled() -> bool {
    true
}

/// Per-app limits. Defaults are Tencent's published numbers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Accounts in one tag/attribute call (90018).
    pub accounts_per_request: usize,
    /// Accounts in one account_import/delete/check call (70402).
    pub accounts_per_account_request: usize,
    /// Tags for one account in one add_tag call with Replace=0 (90032).
    pub tags_per_add: usize,
    /// Tags for one account in one add_tag call with Replace=1 (90032).
    pub tags_per_replace: usize,
    /// Tags one account may have.
    pub tags_per_account: usize,
    /// Distinct tags one app may have.
    pub tags_per_app: usize,
    /// Bytes in a tag (90020).
    pub tag_bytes: usize,
    /// Bytes in an attribute name (90033).
    pub attr_name_bytes: usize,
    /// Bytes in an attribute value (90033).
    pub attr_value_bytes: usize,
    /// Bytes in a UserID (70402).
    pub account_id_bytes: usize,
    /// Bytes in a Nick or FaceUrl of account_import (40601).
    pub profile_field_bytes: usize,
    /// Bytes in a request body.
    pub body_bytes: usize,
    /// Calls per second of each API, unless `api_calls_per_second_by_api` names it (60007).
    pub api_calls_per_second: u32,
    /// Per-API overrides, keyed by the path after `/v4/`, e.g. `"timpush/get_tag" = 1000`.
    pub api_calls_per_second_by_api: BTreeMap<String, u32>,
    /// Bytes in a push or batch request body (90056).
    pub push_body_bytes: usize,
    /// Bytes of a push's MsgBody (80002).
    pub msg_body_bytes: usize,
    /// Tags in each of TagsAnd, TagsOr, TagsNot of a push condition (90032).
    pub condition_tags: usize,
    /// Accounts in one batch push (90001).
    pub batch_accounts: usize,
    /// All-user, tag and attribute pushes per UTC day (90047).
    pub push_daily_quota: u32,
    /// Least milliseconds between two such pushes (90024).
    pub push_min_interval_ms: u64,
    /// A push repeating a MsgRandom seen this recently returns the first TaskId (0 = never).
    pub msg_random_window_secs: u64,
    /// How long a `timpush` push waits for offline recipients (the old family uses MsgLifeTime).
    pub offline_retention_secs: u64,
    /// Longest MsgLifeTime of `im_push` (90026).
    pub max_msg_lifetime_secs: u64,
    /// How long after creation a task can be revoked (90052).
    pub revoke_window_secs: u64,
    /// Revokes per second (90051).
    pub revokes_per_second: u32,
    /// Pushes kept for offline recipients at once (each holds its audience in memory); beyond,
    /// new ones are refused with 90047 until some expire.
    pub max_live_tasks: usize,
    /// Devices an account keeps; registering one more drops its oldest.
    pub devices_per_account: usize,
    /// Accept Web Push endpoints on loopback or private addresses (tests, closed networks);
    /// by default only `https` URLs to public hosts are.
    pub webpush_private_endpoints: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            accounts_per_request: 100,
            accounts_per_account_request: 100,
            tags_per_add: 10,
            tags_per_replace: 100,
            tags_per_account: 100,
            tags_per_app: 1000,
            tag_bytes: 50,
            attr_name_bytes: 50,
            attr_value_bytes: 50,
            account_id_bytes: 32,
            profile_field_bytes: 500,
            body_bytes: 1 << 20,
            api_calls_per_second: 100,
            api_calls_per_second_by_api: BTreeMap::new(),
            push_body_bytes: 10 * 1024,
            msg_body_bytes: 8 * 1024,
            condition_tags: 10,
            batch_accounts: 500,
            push_daily_quota: 100,
            push_min_interval_ms: 1000,
            msg_random_window_secs: 7 * 86_400,
            offline_retention_secs: 7 * 86_400,
            max_msg_lifetime_secs: 7 * 86_400,
            revoke_window_secs: 86_400,
            revokes_per_second: 1,
            max_live_tasks: 100_000,
            devices_per_account: 10,
            webpush_private_endpoints: false,
        }
    }
}

impl ServerConfig {
    /// Checks what types alone cannot; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if let Location::Postgres(url) = &self.store {
            validate_store_url(url).map_err(|e| format!("store.{e}"))?;
        }
        self.http.validate().map_err(|e| format!("http.{e}"))?;
        self.cluster
            .validate()
            .map_err(|e| match e.starts_with("node_id") {
                true => e,
                false => format!("cluster.{e}"),
            })?;
        self.websocket
            .validate()
            .map_err(|e| format!("websocket.{e}"))?;
        self.reports
            .validate()
            .map_err(|e| format!("reports.{e}"))?;
        if self.console.enabled {
            self.console
                .validate()
                .map_err(|e| format!("console.{e}"))?;
        }
        if self.apps.is_empty() {
            return Err("apps: at least one [[apps]] entry is required".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            if !seen.insert(app.sdkappid) {
                return Err(format!(
                    "apps[{i}].sdkappid: {} is configured twice",
                    app.sdkappid
                ));
            }
            app.validate().map_err(|e| format!("apps[{i}].{e}"))?;
        }
        Ok(())
    }
}

impl AppConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.callback_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "callback_url: '{url}' is not an http:// or https:// URL"
            ));
        }
        if self.secret_key.is_empty() {
            return Err("secret_key: must not be empty".into());
        }
        if self.admins.is_empty() || self.admins.iter().any(String::is_empty) {
            return Err("admins: needs at least one non-empty admin identifier".into());
        }
        self.limits.validate().map_err(|e| format!("limits.{e}"))
    }
}

impl Limits {
    fn validate(&self) -> Result<(), String> {
        positive(&[
            ("accounts_per_request", self.accounts_per_request),
            (
                "accounts_per_account_request",
                self.accounts_per_account_request,
            ),
            ("tags_per_add", self.tags_per_add),
            ("tags_per_replace", self.tags_per_replace),
            ("tags_per_account", self.tags_per_account),
            ("tags_per_app", self.tags_per_app),
            ("tag_bytes", self.tag_bytes),
            ("attr_name_bytes", self.attr_name_bytes),
            ("attr_value_bytes", self.attr_value_bytes),
            ("account_id_bytes", self.account_id_bytes),
            ("body_bytes", self.body_bytes),
            ("api_calls_per_second", self.api_calls_per_second as usize),
            ("push_body_bytes", self.push_body_bytes),
            ("msg_body_bytes", self.msg_body_bytes),
            ("condition_tags", self.condition_tags),
            ("batch_accounts", self.batch_accounts),
            ("revokes_per_second", self.revokes_per_second as usize),
            ("max_live_tasks", self.max_live_tasks),
            ("devices_per_account", self.devices_per_account),
        ])?;
        if let Some((api, _)) = self
            .api_calls_per_second_by_api
            .iter()
            .find(|(_, v)| **v == 0)
        {
            return Err(format!(
                "api_calls_per_second_by_api.\"{api}\": must be greater than 0"
            ));
        }
        if let Some(api) = self
            .api_calls_per_second_by_api
            .keys()
            .find(|api| crate::routes::Route::from_path(api).is_none())
        {
            return Err(format!(
                "api_calls_per_second_by_api.\"{api}\": no such API"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_path_is_a_plain_path_of_its_own() {
        let at = |path: &str| ConsoleConfig {
            enabled: true,
            path: path.into(),
        };
        for good in ["/console", "/ops/push-console", "/a_b/c1"] {
            assert_eq!(at(good).validate(), Ok(()), "{good}");
        }
        for bad in [
            "console",
            "/",
            "/console/",
            "//x",
            "/a b",
            "/x?y",
            "/v4",
            "/v4/x",
            "/ws",
            "/client",
        ] {
            assert!(at(bad).validate().is_err(), "{bad}");
        }
        assert!(
            at("/v4x").validate().is_ok(),
            "only under /v4 itself is taken"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            (
                "postgres://tagcast:s3cret@db.example:5432/tagcast",
                "postgres://tagcast:***@db.example:5432/tagcast",
            ),
            // A password with unescaped '@' or '/' is hidden whole.
            ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
            ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u@[::1]:5432/db", "postgres://u@[::1]:5432/db"),
            (
                "postgres://u:p@[::1]:5432/db",
                "postgres://u:***@[::1]:5432/db",
            ),
            ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),
            (
                "postgres://tagcast@db/tagcast",
                "postgres://tagcast@db/tagcast",
            ),
            ("postgres://db/tagcast", "postgres://db/tagcast"),
            (
                "postgres://u@h/db?sslmode=disable&password=s3cret&x=1",
                "postgres://u@h/db?sslmode=disable&password=***&x=1",
            ),
            ("mysql://root:hunter2@h/db", "mysql://root:***@h/db"),
            (
                "host=h user=u password=s3cret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_store_url_needs_a_postgres_scheme() {
        assert!(validate_store_url("postgres://u@h:5432/db").is_ok());
        assert!(validate_store_url("postgresql://u@h/db").is_ok());
        for url in [
            "",
            "mysql://root:hunter2@h/db",
            "host=h user=u",
            "Postgres://h/db",
        ] {
            let err = validate_store_url(url).unwrap_err();
            assert!(err.starts_with("url: "), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
