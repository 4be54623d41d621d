//! TLSSigAPIv2 UserSig signing and verification, wire-compatible with Tencent Cloud Chat.
//!
//! A UserSig is `base64url*(zlib(json))`, where the JSON carries the signing inputs plus
//! `TLS.sig = base64(HMAC-SHA256(key, content))` and `base64url*` is standard Base64 with
//! Tencent's own alphabet swap (`+`→`*`, `/`→`-`, `=`→`_`). See spec §7.

mod claims;
mod codec;
mod error;
mod mac;

pub use error::VerifyError;

use claims::Claims;

/// Default validity used by Tencent's libraries: 180 days.
pub const DEFAULT_EXPIRE_SECS: u64 = 15_552_000;

/// How far in the future a token's `TLS.time` may lie: signers' clocks drift a little, but a
/// token issued years ahead would outlive any expiry its signer meant to give it.
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;

/// Creates a UserSig exactly as Tencent's TLSSigAPIv2 libraries do (compact JSON, zlib, base64,
/// URL-safe alphabet swap).
///
/// `expire_secs` is a validity *duration*; the token is valid up to and including
/// `now_unix + expire_secs`.
pub fn sign(sdkappid: u64, key: &str, identifier: &str, expire_secs: u64, now_unix: u64) -> String {
    let fields = mac::SignedFields {
        identifier,
        sdkappid,
        time: now_unix,
        expire: expire_secs,
        userbuf: None,
    };
    let sig = codec::encode_std_base64(&mac::compute(key, &fields));
    let json = claims::to_compact_json(&fields, &sig);
    codec::encode_token(&json)
}

/// Verifies `usersig` (already URL-decoded by the caller) for (sdkappid, identifier) against
/// `key`, at time `now_unix`.
///
/// Checks run in the order Tencent documents: decoding (70003), sdkappid (70014),
/// identifier (70013), expiry (70001), signature (70009). A token issued more than
/// `MAX_CLOCK_SKEW_SECS` ahead of `now_unix` is refused as invalid (70003).
pub fn verify(
    usersig: &str,
    sdkappid: u64,
    identifier: &str,
    key: &str,
    now_unix: u64,
) -> Result<(), VerifyError> {
    let claims = decode(usersig)?;
    check_sdkappid(&claims, sdkappid)?;
    check_identifier(&claims, identifier)?;
    check_not_expired(&claims, now_unix)?;
    check_not_from_the_future(&claims, now_unix)?;
    mac::verify(key, &claims.signed_fields(), &claims.sig)
}

fn decode(usersig: &str) -> Result<Claims, VerifyError> {
    // Surrounding whitespace (e.g. a pasted trailing newline) is never part of a token.
    let usersig = usersig.trim();
    if usersig.is_empty() {
        return Err(VerifyError::Empty);
    }
    let json = codec::decode_token(usersig)?;
    Claims::parse(&json)
}

fn check_sdkappid(claims: &Claims, expected: u64) -> Result<(), VerifyError> {
    if claims.sdkappid == expected {
        return Ok(());
    }
    Err(VerifyError::SdkAppIdMismatch {
        in_sig: claims.sdkappid,
        expected,
    })
}

fn check_identifier(claims: &Claims, expected: &str) -> Result<(), VerifyError> {
    if claims.identifier == expected {
        return Ok(());
    }
    Err(VerifyError::IdentifierMismatch {
        in_sig: claims.identifier.clone(),
        expected: expected.to_owned(),
    })
}

fn check_not_expired(claims: &Claims, now_unix: u64) -> Result<(), VerifyError> {
    // Saturating: an absurdly long validity means "never expires", not an overflow panic.
    let expired_at = claims.time.saturating_add(claims.expire);
    if now_unix > expired_at {
        return Err(VerifyError::Expired { expired_at });
    }
    Ok(())
}

fn check_not_from_the_future(claims: &Claims, now_unix: u64) -> Result<(), VerifyError> {
    if claims.time > now_unix.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(VerifyError::IssuedInFuture {
            issued_at: claims.time,
            now: now_unix,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
