//! tagcast's device registration (issue 10): `tagcast/device_register`, `device_unregister` (an
//! account for itself with its own UserSig, or an admin for any account) and `device_list`
//! (admins). Tokens are checked for shape and length before they are stored, and never shown
//! whole in an answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use tagcast_proto::{ApiError, Code};
use tagcast_store::{AccountId, Device, NewDevice, Platform};

use super::{Ctx, Reply, reply, shown};

/// Longest FCM registration token, and longest Web Push endpoint, accepted.
const MAX_FCM_TOKEN: usize = 4096;
const MAX_ENDPOINT: usize = 2048;
/// Longest RegistrationID looked up (tagcast's are 36 characters).
const MAX_REGISTRATION_ID: usize = 64;

#[derive(Deserialize)]
struct Register {
    #[serde(rename = "To_Account")]
    to_account: Option<String>,
    #[serde(rename = "Platform")]
    platform: String,
    #[serde(rename = "Token")]
    token: Value,
    #[serde(rename = "Sandbox", default)]
    sandbox: u8,
}

#[derive(Deserialize)]
struct Unregister {
    #[serde(rename = "To_Account")]
    to_account: Option<String>,
    #[serde(rename = "RegistrationID")]
    registration_id: String,
}

#[derive(Deserialize)]
struct List {
    #[serde(rename = "To_Account")]
    to_account: String,
}

pub async fn register(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body: Register = ctx.parse(body)?;
    // An admin naming no account registers a device alone: it becomes its own
    // RegistrationID account.
    let name = match (ctx.is_admin, body.to_account) {
        (true, None) => None,
        (_, to_account) => Some(target(ctx, to_account)?),
    };
    let device = new_device(ctx, &body.platform, &body.token, body.sandbox)?;
    let account = match &name {
        Some(name) => Some(account_of(ctx, name, !ctx.is_admin).await?),
        None => None,
    };
    let limit = ctx.app.limits.devices_per_account;
    let registered = ctx
        .store
        .register_device(
            ctx.app.sdkappid,
            account,
            device,
            limit,
            crate::clock::now_ms(),
        )
        .await
        .map_err(|e| ctx.internal(e))?
        .map_err(super::request_error)?;
    if !registered.dropped.is_empty() {
        tracing::info!(
            account = %shown(name.as_deref().unwrap_or_default()),
            dropped = registered.dropped.len(),
            "older devices dropped: the account keeps limits.devices_per_account"
        );
    }
    reply(json!({ "RegistrationID": registered.registration_id }))
}

pub async fn unregister(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body: Unregister = ctx.parse(body)?;
    if body.registration_id.len() > MAX_REGISTRATION_ID {
        return Err(invalid(format!(
            "RegistrationID: at most {MAX_REGISTRATION_ID} bytes, got {}",
            body.registration_id.len()
        )));
    }
    // An admin removes any device of the app unless it names an account; an account only its own.
    let owner = match (ctx.is_admin, body.to_account) {
        (true, None) => None,
        (_, to_account) => {
            let name = target(ctx, to_account)?;
            Some(account_of(ctx, &name, false).await?)
        }
    };
    let removed = ctx
        .store
        .unregister_device(ctx.app.sdkappid, owner, body.registration_id)
        .await
        .map_err(|e| ctx.internal(e))?;
    reply(json!({ "Removed": u8::from(removed) }))
}

pub async fn list(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body: List = ctx.parse(body)?;
    let account = account_of(ctx, &body.to_account, false).await?;
    let devices = ctx
        .store
        .devices(ctx.app.sdkappid, account)
        .await
        .map_err(|e| ctx.internal(e))?;
    let devices: Vec<Value> = devices.iter().map(shown_device).collect();
    reply(json!({ "Devices": devices }))
}

/// The account a call is for: the caller itself unless an admin names another (90009 for an
/// account naming another).
fn target(ctx: &Ctx<'_>, to_account: Option<String>) -> Result<String, ApiError> {
    match to_account {
        Some(name) if name != ctx.identifier && !ctx.is_admin => Err(ApiError::new(
            Code::AdminRequired,
            format!(
                "'{}' may register and remove only its own devices, not those of '{}'",
                shown(ctx.identifier),
                shown(&name)
            ),
        )),
        Some(name) => Ok(name),
        None => Ok(ctx.identifier.to_string()),
    }
}

/// The id of account `name`: 70107 if it does not exist, unless `log_in` (an account registering
/// its own device logs in, as a WebSocket connection does).
async fn account_of(ctx: &Ctx<'_>, name: &str, log_in: bool) -> Result<AccountId, ApiError> {
    let app = ctx.app.sdkappid;
    if log_in {
        ctx.app.check_user_id("To_Account", name)?;
        return ctx
            .store
            .log_in(app, name)
            .await
            .map_err(|e| ctx.internal(e));
    }
    let ids = ctx
        .store
        .account_ids(app, &[name.to_string()])
        .await
        .map_err(|e| ctx.internal(e))?;
    ids[0].ok_or_else(|| {
        ApiError::new(
            Code::AccountNotFound,
            format!("account '{}' does not exist", shown(name)),
        )
    })
}

fn invalid(info: String) -> ApiError {
    ApiError::new(Code::JsonParse, info)
}

/// The device described by `Platform`, `Token` and `Sandbox`, its token checked and put in its
/// one stored form (90001 otherwise).
fn new_device(
    ctx: &Ctx<'_>,
    platform: &str,
    token: &Value,
    sandbox: u8,
) -> Result<NewDevice, ApiError> {
    let platform = match platform {
        "apns" => Platform::Apns,
        "fcm" => Platform::Fcm,
        "webpush" => Platform::WebPush,
        other => {
            return Err(invalid(format!(
                "Platform: '{}' is not one of apns, fcm, webpush",
                shown(other)
            )));
        }
    };
    if sandbox > 1 || (sandbox == 1 && platform != Platform::Apns) {
        return Err(invalid(
            "Sandbox: 0, or 1 for an APNs development build".into(),
        ));
    }
    let token = match platform {
        Platform::Apns => apns_token(token)?,
        Platform::Fcm => fcm_token(token)?,
        Platform::WebPush => subscription(token, ctx.app.limits.webpush_private_endpoints)?,
    };
    Ok(NewDevice {
        platform,
        token,
        sandbox: sandbox == 1,
    })
}

fn token_string(token: &Value) -> Result<&str, ApiError> {
    token
        .as_str()
        .ok_or_else(|| invalid("Token: must be a string for this platform".into()))
}

/// An APNs device token: 32 to 100 bytes in hex (Apple's are 32 today), stored in lower case.
fn apns_token(token: &Value) -> Result<String, ApiError> {
    let token = token_string(token)?;
    let hex = token.len() % 2 == 0 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || !(64..=200).contains(&token.len()) {
        return Err(invalid(format!(
            "Token: an APNs device token is 64 to 200 hex digits, got {} characters",
            token.len()
        )));
    }
    Ok(token.to_ascii_lowercase())
}

/// An FCM registration token: up to 4096 characters of letters, digits and `-_:.`.
fn fcm_token(token: &Value) -> Result<String, ApiError> {
    let token = token_string(token)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_:.".contains(&b);
    if token.is_empty() || token.len() > MAX_FCM_TOKEN || !token.bytes().all(allowed) {
        return Err(invalid(format!(
            "Token: an FCM registration token is 1 to {MAX_FCM_TOKEN} characters of letters, \
             digits and -_:."
        )));
    }
    Ok(token.to_string())
}

/// A browser's `PushSubscription` (`endpoint`, `keys.p256dh`, `keys.auth`), stored as compact
/// JSON of those three fields.
fn subscription(token: &Value, private_allowed: bool) -> Result<String, ApiError> {
    let field = |path: &[&str]| {
        let mut value = token;
        for key in path {
            value = &value[key];
        }
        value
            .as_str()
            .ok_or_else(|| invalid(format!("Token.{}: required string", path.join("."))))
    };
    let endpoint = field(&["endpoint"])?;
    check_endpoint(endpoint, private_allowed)?;
    let p256dh = field(&["keys", "p256dh"])?;
    let key = URL_SAFE_NO_PAD.decode(p256dh.trim_end_matches('='));
    if !key.is_ok_and(|k| k.len() == 65 && k[0] == 4) {
        return Err(invalid(
            "Token.keys.p256dh: an uncompressed P-256 public key (65 bytes), base64url".into(),
        ));
    }
    let auth = field(&["keys", "auth"])?;
    if !URL_SAFE_NO_PAD
        .decode(auth.trim_end_matches('='))
        .is_ok_and(|a| a.len() == 16)
    {
        return Err(invalid(
            "Token.keys.auth: a 16-byte authentication secret, base64url".into(),
        ));
    }
    let stored = json!({ "endpoint": endpoint, "keys": { "p256dh": p256dh, "auth": auth } });
    Ok(stored.to_string())
}

/// A push service's URL: `https`, at most 2048 bytes, and a public host unless the app allows
/// private ones (then `http` too). A host name is checked again when it is resolved, at send
/// time.
fn check_endpoint(endpoint: &str, private_allowed: bool) -> Result<(), ApiError> {
    let refuse = |why: &str| invalid(format!("Token.endpoint: {why}"));
    if endpoint.len() > MAX_ENDPOINT {
        return Err(refuse("longer than 2048 bytes"));
    }
    let url = reqwest::Url::parse(endpoint).map_err(|e| refuse(&format!("not a URL: {e}")))?;
    let host = url.host_str().ok_or_else(|| refuse("has no host"))?;
    let private = tagcast_push::net::is_private_host(host);
    match (url.scheme(), private) {
        (_, true) if !private_allowed => Err(refuse(
            "a loopback or private address, which this app does not accept \
             (limits.webpush_private_endpoints)",
        )),
        ("https", _) => Ok(()),
        ("http", true) => Ok(()),
        _ => Err(refuse("must be an https URL")),
    }
}

/// A device as `device_list` shows it: the token cut to a few characters (a Web Push
/// subscription to its push service's origin).
fn shown_device(device: &Device) -> Value {
    json!({
        "RegistrationID": device.registration_id,
        "Platform": device.platform.name(),
        "Token": masked(device),
        "Sandbox": u8::from(device.sandbox),
        "RegisterTime": device.registered_ms / 1000,
    })
}

pub(super) fn masked(device: &Device) -> String {
    if device.platform == Platform::WebPush {
        let endpoint = serde_json::from_str::<Value>(&device.token)
            .ok()
            .and_then(|t| {
                t["endpoint"]
                    .as_str()
                    .and_then(|e| reqwest::Url::parse(e).ok())
            });
        return endpoint.map_or_else(
            || "…".into(),
            |url| format!("{}/…", url.origin().ascii_serialization()),
        );
    }
    let token = &device.token;
    match token.len() > 12 {
        true => format!("{}…{}", &token[..6], &token[token.len() - 4..]),
        false => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_and_public_unless_allowed() {
        assert!(
            check_endpoint(
                "https://updates.push.services.mozilla.com/wpush/v2/x",
                false
            )
            .is_ok()
        );
        assert!(check_endpoint("http://updates.push.services.mozilla.com/x", false).is_err());
        assert!(check_endpoint("https://127.0.0.1:8443/push", false).is_err());
        assert!(check_endpoint("https://127.0.0.1:8443/push", true).is_ok());
        assert!(check_endpoint("http://localhost:9000/push", true).is_ok());
        assert!(check_endpoint("ftp://example.com/x", true).is_err());
        assert!(
            check_endpoint(&format!("https://example.com/{}", "a".repeat(2048)), false).is_err()
        );
        assert!(check_endpoint("not a url", true).is_err());
    }
}
