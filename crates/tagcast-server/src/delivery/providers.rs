//! Each app's push providers, loaded at start from the files its config names. The files hold
//! secrets: an error names the file and what is wrong with it, never what it contains.

use std::path::Path;
use std::sync::Arc;

use tagcast_push::{apns, fcm, webpush};

use crate::config::{ApnsConfig, AppConfig, FcmConfig, WebPushConfig};

/// APNs for one app: its team's credentials, the app's topic and the two hosts.
pub struct Apns {
    pub credentials: apns::Credentials,
    pub topic: String,
    pub endpoint: String,
    pub sandbox_endpoint: String,
    /// Certificates to trust besides the system's (PEM), from `ca_file`.
    pub ca: Option<Vec<u8>>,
}

/// FCM for one app: its service account and where messages go.
pub struct Fcm {
    pub account: fcm::ServiceAccount,
    pub endpoint: String,
    pub ca: Option<Vec<u8>>,
}

/// Web Push for one app: its VAPID identity.
pub struct WebPush {
    pub vapid: webpush::Vapid,
    pub ca: Option<Vec<u8>>,
}

/// What an app can reach devices with; each provider only when configured.
#[derive(Default, Clone)]
pub struct Providers {
    pub apns: Option<Arc<Apns>>,
    pub fcm: Option<Arc<Fcm>>,
    pub webpush: Option<Arc<WebPush>>,
}

impl Providers {
    /// Loads the providers `app` configures; the error names the config key.
    pub fn load(app: &AppConfig) -> Result<Self, String> {
        Ok(Self {
            apns: app.apns.as_ref().map(load_apns).transpose()?.map(Arc::new),
            fcm: app.fcm.as_ref().map(load_fcm).transpose()?.map(Arc::new),
            webpush: app
                .webpush
                .as_ref()
                .map(load_webpush)
                .transpose()?
                .map(Arc::new),
        })
    }
}

impl Providers {
    /// What the app reaches devices with, for the start-up log: ids and hosts, no secret.
    pub fn describe(&self) -> Vec<String> {
        let mut described = Vec::new();
        if let Some(apns) = &self.apns {
            described.push(format!(
                "apns (team {}, key {}, topic {}, {} and {}{})",
                apns.credentials.team_id,
                apns.credentials.key_id,
                apns.topic,
                apns.endpoint,
                apns.sandbox_endpoint,
                trusting(&apns.ca)
            ));
        }
        if let Some(fcm) = &self.fcm {
            described.push(format!(
                "fcm (project {}, {}, tokens from {}{})",
                fcm.account.project_id,
                fcm.endpoint,
                fcm.account.token_uri,
                trusting(&fcm.ca)
            ));
        }
        if let Some(webpush) = &self.webpush {
            let key = webpush.vapid.public_key();
            described.push(format!(
                "webpush (VAPID public key {key}{})",
                trusting(&webpush.ca)
            ));
        }
        described
    }
}

/// What the log says of a `ca_file`.
fn trusting(ca: &Option<Vec<u8>>) -> &'static str {
    match ca {
        Some(_) => ", trusting its ca_file too",
        None => "",
    }
}

/// The certificates of `ca_file` (PEM), checked; the error names `key`.
fn read_ca(key: &str, path: Option<&Path>) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let pem = read(key, path)?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(Some(pem)),
        _ => Err(format!("{key}: no PEM certificate in {}", path.display())),
    }
}

/// The bytes of a credentials file.
fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

fn load_apns(config: &ApnsConfig) -> Result<Apns, String> {
    let pem = read("apns.key_file", &config.key_file)?;
    let credentials = apns::Credentials::from_p8(&pem, &config.key_id, &config.team_id)
        .map_err(|e| format!("apns.key_file: {}: {e}", config.key_file.display()))?;
    Ok(Apns {
        credentials,
        topic: config.topic.clone(),
        endpoint: config.endpoint.clone(),
        sandbox_endpoint: config.sandbox_endpoint.clone(),
        ca: read_ca("apns.ca_file", config.ca_file.as_deref())?,
    })
}

fn load_fcm(config: &FcmConfig) -> Result<Fcm, String> {
    let json = read("fcm.service_account_file", &config.service_account_file)?;
    let mut account = fcm::ServiceAccount::from_json(&json).map_err(|e| {
        format!(
            "fcm.service_account_file: {}: {e}",
            config.service_account_file.display()
        )
    })?;
    if let Some(token_uri) = &config.token_uri {
        account.token_uri = token_uri.clone();
    }
    Ok(Fcm {
        account,
        endpoint: config.endpoint.clone(),
        ca: read_ca("fcm.ca_file", config.ca_file.as_deref())?,
    })
}

fn load_webpush(config: &WebPushConfig) -> Result<WebPush, String> {
    if !(config.contact.starts_with("mailto:") || config.contact.starts_with("https:")) {
        return Err(format!(
            "webpush.contact: '{}' is not a mailto: or https: URI",
            config.contact
        ));
    }
    let key = read("webpush.vapid_key_file", &config.vapid_key_file)?;
    let key = String::from_utf8_lossy(&key);
    let vapid = webpush::Vapid::from_private_key(&key, config.contact.clone()).map_err(|e| {
        format!(
            "webpush.vapid_key_file: {}: {e} (tagcast vapid-key writes one)",
            config.vapid_key_file.display()
        )
    })?;
    Ok(WebPush {
        vapid,
        ca: read_ca("webpush.ca_file", config.ca_file.as_deref())?,
    })
}
