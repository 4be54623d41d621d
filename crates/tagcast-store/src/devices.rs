//! Devices that receive notifications while their app is closed (issue 10): each is registered
//! to one account of its app, with the platform that reaches it and the platform's address for
//! it (an APNs device token, an FCM registration token, a Web Push subscription).
//!
//! A device's RegistrationID is derived from its app, platform and token, so registering the
//! same device again gives the same RegistrationID; registered by another account, it moves to
//! that account. An account keeps its `max_per_account` most recently registered devices.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tables::{Result, Tables};
use crate::{AccountId, AppId, Store};

/// The channel that reaches a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Platform {
    Apns,
    Fcm,
    WebPush,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::Fcm => "fcm",
            Platform::WebPush => "webpush",
        }
    }
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub registration_id: String,
    pub account: AccountId,
    pub platform: Platform,
    /// The platform's address of the device: an APNs token (hex), an FCM registration token, or
    /// a Web Push subscription as JSON (`endpoint`, `keys.p256dh`, `keys.auth`).
    pub token: String,
    /// APNs only: the device runs a development build (Apple's sandbox endpoint).
    pub sandbox: bool,
    pub registered_ms: u64,
}

/// A device to register.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub platform: Platform,
    pub token: String,
    pub sandbox: bool,
}

/// What `register_device` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub registration_id: String,
    /// Devices the account no longer keeps, to stay within its limit (oldest first).
    pub dropped: Vec<String>,
}

/// The RegistrationID of a device: a UUID-shaped digest of its app, platform and token.
pub fn registration_id(app: AppId, platform: Platform, token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(app.to_be_bytes());
    digest.update(platform.name().as_bytes());
    digest.update([0]);
    digest.update(token.as_bytes());
    let hex: String = digest.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Store {
    /// Registers `device` to `account` (moving it from another account that had it), keeping
    /// at most `max_per_account` devices for the account.
    pub async fn register_device(
        &self,
        app: AppId,
        account: AccountId,
        device: NewDevice,
        max_per_account: usize,
        now_ms: u64,
    ) -> Result<Registered> {
        self.writer
            .write("register_device", move |ctx| {
                register(ctx.tables, app, account, device, max_per_account, now_ms)
            })
            .await
    }

    /// Removes the device, if it is registered (to `account`, when given); whether it was.
    pub async fn unregister_device(
        &self,
        app: AppId,
        account: Option<AccountId>,
        registration_id: String,
    ) -> Result<bool> {
        self.writer
            .write("unregister_device", move |ctx| {
                let Some(device) = ctx.tables.device(app, &registration_id)? else {
                    return Ok(false);
                };
                if account.is_some_and(|owner| owner != device.account) {
                    return Ok(false);
                }
                ctx.tables.remove_device(app, &device)?;
                Ok(true)
            })
            .await
    }

    /// The account's devices, oldest first.
    pub async fn devices(&self, app: AppId, account: AccountId) -> Result<Vec<Device>> {
        self.read("devices", move |t| devices_of(t, app, account))
            .await
    }
}

fn devices_of(
    t: &mut dyn crate::tables::ReadTables,
    app: AppId,
    account: AccountId,
) -> Result<Vec<Device>> {
    let mut devices = Vec::new();
    for id in t.account_devices(app, account)? {
        devices.extend(t.device(app, &id)?);
    }
    devices.sort_by(|a, b| {
        (a.registered_ms, &a.registration_id).cmp(&(b.registered_ms, &b.registration_id))
    });
    Ok(devices)
}

fn register(
    t: &mut dyn Tables,
    app: AppId,
    account: AccountId,
    new: NewDevice,
    max_per_account: usize,
    now_ms: u64,
) -> Result<Registered> {
    let registration_id = registration_id(app, new.platform, &new.token);
    if let Some(earlier) = t.device(app, &registration_id)? {
        t.remove_device(app, &earlier)?;
    }
    let device = Device {
        registration_id: registration_id.clone(),
        account,
        platform: new.platform,
        token: new.token,
        sandbox: new.sandbox,
        registered_ms: now_ms,
    };
    t.put_device(app, &device)?;
    let devices = devices_of(t, app, account)?;
    let excess = devices.len().saturating_sub(max_per_account.max(1));
    let mut dropped = Vec::new();
    for old in devices.into_iter().take(excess) {
        t.remove_device(app, &old)?;
        dropped.push(old.registration_id);
    }
    Ok(Registered {
        registration_id,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_id_is_stable_per_app_platform_and_token() {
        let id = registration_id(1, Platform::Apns, "ab12");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id, registration_id(1, Platform::Apns, "ab12"));
        assert_ne!(id, registration_id(2, Platform::Apns, "ab12"));
        assert_ne!(id, registration_id(1, Platform::Fcm, "ab12"));
        assert_ne!(id, registration_id(1, Platform::Apns, "ab13"));
    }
}
