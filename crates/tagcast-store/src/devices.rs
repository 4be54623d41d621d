//! Devices that receive notifications while their app is closed (issue 10): each is registered
//! to one account of its app, with the platform that reaches it and the platform's address for
//! it (an APNs device token, an FCM registration token, a Web Push subscription).
//!
//! A device's RegistrationID is derived from its app, platform and token, so registering the
//! same device again gives the same RegistrationID; registered by another account, it moves to
//! that account. An account keeps its `max_per_account` most recently registered devices.
//!
//! A device registered without an account gets an account of its own, named after its
//! RegistrationID: a RegistrationID account, which can be tagged, given attributes of
//! RegistrationID slots (`AttrTypes` 1) and pushed to like any other. It is its device: when
//! the device is removed or moves to a UserID account, the account is deleted with its tags and
//! attributes. A tag is bound to the type of the accounts that have it (90035 for the other).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tables::{ReadTables, Result};
use crate::write_ops::{delete_account, import_account};
use crate::writer::WriteCtx;
use crate::{AccountId, AppId, RequestError, Store};

/// An app's devices, counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceCensus {
    /// The accounts that have at least one.
    pub owners: roaring::RoaringBitmap,
    pub apns: u64,
    pub fcm: u64,
    pub webpush: u64,
}

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

/// The two types of account Tencent distinguishes (`AttrTypes`: 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// An IM account, imported or logged in.
    UserId,
    /// The account of a device registered without one.
    RegistrationId,
}

impl AccountKind {
    /// The kind numbered `attr_type` in `AttrTypes` (1: RegistrationID, else UserID).
    pub fn from_attr_type(attr_type: u8) -> AccountKind {
        match attr_type {
            1 => AccountKind::RegistrationId,
            _ => AccountKind::UserId,
        }
    }

    /// The kind's number in `AttrTypes`.
    pub fn attr_type(self) -> u8 {
        match self {
            AccountKind::UserId => 0,
            AccountKind::RegistrationId => 1,
        }
    }
}

impl std::fmt::Display for AccountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccountKind::UserId => "UserID",
            AccountKind::RegistrationId => "RegistrationID",
        })
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

/// Whether `name` has the shape `registration_id` gives: 8-4-4-4-12 upper-case hex digits.
pub fn is_registration_id(name: &str) -> bool {
    name.len() == 36
        && name.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('A'..='F').contains(&c),
        })
}

/// The kind of account `id`. A RegistrationID account is named after the device it owns; no
/// UserID account can own a device whose RegistrationID is its own name (that would take a
/// SHA-256 preimage), and none can take the name of a RegistrationID account.
pub(crate) fn account_kind(
    t: &mut dyn ReadTables,
    app: AppId,
    id: AccountId,
    name: &str,
) -> Result<AccountKind> {
    // Most names cannot be RegistrationIDs: those cost no device lookup.
    if is_registration_id(name) && t.device(app, name)?.is_some_and(|d| d.account == id) {
        return Ok(AccountKind::RegistrationId);
    }
    Ok(AccountKind::UserId)
}

/// Removes `device`, and its account if that is the device's RegistrationID account.
pub(crate) fn remove_device(ctx: &mut WriteCtx<'_>, app: AppId, device: &Device) -> Result<()> {
    let owner = ctx.tables.account_name(app, device.account)?;
    if owner.as_deref() == Some(device.registration_id.as_str()) {
        delete_account(ctx, app, &device.registration_id)?;
        return Ok(());
    }
    ctx.tables.remove_device(app, device)
}

impl Store {
    /// Registers `device` to `account` (moving it from another account that had it), keeping
    /// at most `max_per_account` devices for the account; with no account, to the device's own
    /// RegistrationID account, created when new. 90035 (`AccountTypeMismatch`) for a
    /// RegistrationID account given another device, or a UserID account that has the name.
    pub async fn register_device(
        &self,
        app: AppId,
        account: Option<AccountId>,
        device: NewDevice,
        max_per_account: usize,
        now_ms: u64,
    ) -> Result<Result<Registered, RequestError>> {
        self.writer
            .write("register_device", move |ctx| {
                register(ctx, app, account, device, max_per_account, now_ms)
            })
            .await
    }

    /// Removes the device, if it is registered (to `account`, when given); whether it was. A
    /// RegistrationID account goes with its device.
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
                remove_device(ctx, app, &device)?;
                Ok(true)
            })
            .await
    }

    /// Who has devices and how many each platform has: a scan of the app's devices.
    pub async fn device_census(&self, app: AppId) -> Result<DeviceCensus> {
        self.read("device_census", move |t| {
            let mut census = DeviceCensus::default();
            t.each_device(app, &mut |device| {
                census.owners.insert(device.account);
                match device.platform {
                    Platform::Apns => census.apns += 1,
                    Platform::Fcm => census.fcm += 1,
                    Platform::WebPush => census.webpush += 1,
                }
            })?;
            Ok(census)
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
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    owner: Option<AccountId>,
    new: NewDevice,
    max_per_account: usize,
    now_ms: u64,
) -> Result<Result<Registered, RequestError>> {
    let registration_id = registration_id(app, new.platform, &new.token);
    let earlier = ctx.tables.device(app, &registration_id)?;
    let account = match owner {
        Some(account) => account_for_device(ctx, app, account)?,
        None => own_account(ctx, app, &registration_id)?,
    };
    let account = match account {
        Ok(account) => account,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(earlier) = earlier.filter(|d| d.account != account) {
        remove_device(ctx, app, &earlier)?;
    }
    let device = Device {
        registration_id: registration_id.clone(),
        account,
        platform: new.platform,
        token: new.token,
        sandbox: new.sandbox,
        registered_ms: now_ms,
    };
    ctx.tables.put_device(app, &device)?;
    let dropped = drop_oldest(ctx, app, account, max_per_account)?;
    Ok(Ok(Registered {
        registration_id,
        dropped,
    }))
}

/// `account`, unless it is a RegistrationID account, which has only its own device.
fn account_for_device(
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    account: AccountId,
) -> Result<Result<AccountId, RequestError>> {
    let name = ctx.tables.account_name(app, account)?.unwrap_or_default();
    if account_kind(ctx.tables, app, account, &name)? == AccountKind::RegistrationId {
        return Ok(Err(RequestError::OwnDeviceOnly(name)));
    }
    Ok(Ok(account))
}

/// The RegistrationID account of the device `registration_id`, created when new.
fn own_account(
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    registration_id: &str,
) -> Result<Result<AccountId, RequestError>> {
    let Some(id) = ctx.tables.account_id(app, registration_id)? else {
        return Ok(Ok(import_account(ctx, app, registration_id)?));
    };
    if account_kind(ctx.tables, app, id, registration_id)? == AccountKind::UserId {
        return Ok(Err(RequestError::NameOfUserId(registration_id.to_string())));
    }
    Ok(Ok(id))
}

/// Removes the account's oldest devices beyond `max_per_account`; their RegistrationIDs.
fn drop_oldest(
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    account: AccountId,
    max_per_account: usize,
) -> Result<Vec<String>> {
    let devices = devices_of(ctx.tables, app, account)?;
    let excess = devices.len().saturating_sub(max_per_account.max(1));
    let mut dropped = Vec::new();
    for old in devices.into_iter().take(excess) {
        ctx.tables.remove_device(app, &old)?;
        dropped.push(old.registration_id);
    }
    Ok(dropped)
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
        assert!(is_registration_id(&id));
    }

    #[test]
    fn only_the_shape_of_a_registration_id_is_one() {
        assert!(is_registration_id("379C2F0D-290D-47AE-94D1-919058C39C77"));
        for name in [
            "379c2f0d-290d-47ae-94d1-919058c39c77",
            "379C2F0D-290D-47AE-94D1-919058C39C7",
            "379C2F0D-290D-47AE-94D1-919058C39C77X",
            "379C2F0D+290D-47AE-94D1-919058C39C77",
            "379C2F0D-290D-47AE-94D1-919058C39G77",
            "xiaoming",
        ] {
            assert!(!is_registration_id(name), "{name}");
        }
    }
}
