//! Console sessions: a signed cookie and no state on the server, so that any node of a cluster
//! takes it and a restart keeps it. Each sign-in it holds is
//! `sdkappid.identifier.expires.mac`, the MAC an HMAC-SHA256 under the app's secret key: as
//! strong as a UserSig, valid for `LIFETIME`, and void for every browser once the key changes.
//! Sign-out removes a sign-in from the browser's cookie; a copy taken before stays valid until
//! it expires, as a copied UserSig does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::state::SharedState;

/// How long a sign-in lasts.
pub const LIFETIME_SECS: u64 = 8 * 3600;
/// The cookie's name.
pub const COOKIE: &str = "tagcast_console";
/// Sign-ins one cookie holds at most (one per app); the oldest goes first.
pub const MAX_SIGN_INS: usize = 8;

/// An admin signed in to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub sdkappid: u64,
    pub identifier: String,
    /// Unix seconds.
    pub expires: u64,
}

impl SignIn {
    /// Its form in the cookie, signed with the app's `key`.
    fn encode(&self, key: &str) -> String {
        format!(
            "{}.{}.{}.{}",
            self.sdkappid,
            URL_SAFE_NO_PAD.encode(&self.identifier),
            self.expires,
            self.mac(key, "session")
        )
    }

    /// The token a change must carry (`X-Tagcast-Csrf`): derived from the sign-in, so a page
    /// of another origin, which cannot read it, cannot make one.
    pub fn csrf(&self, key: &str) -> String {
        self.mac(key, "csrf")
    }

    fn mac(&self, key: &str, purpose: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.hmac(key, purpose).finalize().into_bytes())
    }

    /// The HMAC of this sign-in for `purpose`, under `key`.
    fn hmac(&self, key: &str, purpose: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        let signed = format!(
            "tagcast-console {purpose} {} {} {}",
            self.sdkappid, self.identifier, self.expires
        );
        mac.update(signed.as_bytes());
        mac
    }

    /// `text` read as one sign-in, if its MAC verifies under its app's key and it has not
    /// expired at `now`.
    fn decode(state: &SharedState, text: &str, now: u64) -> Option<SignIn> {
        let mut parts = text.split('.');
        let (app, identifier, expires, mac) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sign_in = SignIn {
            sdkappid: app.parse().ok()?,
            identifier: String::from_utf8(URL_SAFE_NO_PAD.decode(identifier).ok()?).ok()?,
            expires: expires.parse().ok()?,
        };
        let app = state.apps.get(&sign_in.sdkappid)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        // In constant time.
        let signed = sign_in.hmac(&app.secret_key, "session");
        signed.verify_slice(&mac).ok()?;
        (now < sign_in.expires && app.admins.contains(&sign_in.identifier)).then_some(sign_in)
    }
}

/// The valid sign-ins of the cookie `value` at `now`, one per app.
pub fn read(state: &SharedState, value: &str, now: u64) -> Vec<SignIn> {
    let mut sign_ins: Vec<SignIn> = Vec::new();
    for part in value.split('~').take(MAX_SIGN_INS) {
        if let Some(sign_in) = SignIn::decode(state, part, now)
            && !sign_ins.iter().any(|s| s.sdkappid == sign_in.sdkappid)
        {
            sign_ins.push(sign_in);
        }
    }
    sign_ins
}

/// The cookie's value holding `sign_ins`, each signed with its app's key.
pub fn write(state: &SharedState, sign_ins: &[SignIn]) -> String {
    let signed = sign_ins.iter().filter_map(|s| {
        let app = state.apps.get(&s.sdkappid)?;
        Some(s.encode(&app.secret_key))
    });
    signed.collect::<Vec<_>>().join("~")
}
