//! The HMAC-SHA256 over the "content to be signed" lines (spec §7.1 step 1).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::VerifyError;

type HmacSha256 = Hmac<Sha256>;

/// The values covered by `TLS.sig`.
pub(crate) struct SignedFields<'a> {
    pub identifier: &'a str,
    pub sdkappid: u64,
    pub time: u64,
    pub expire: u64,
    /// The `TLS.userbuf` string exactly as it appears in the token; its line is signed only
    /// when the token carries the field (even if empty), as every official library does.
    pub userbuf: Option<&'a str>,
}

/// The exact text the official libraries feed to HMAC: one `TLS.name:value\n` line per field.
pub(crate) fn content_to_sign(fields: &SignedFields<'_>) -> String {
    let mut content = format!(
        "TLS.identifier:{}\nTLS.sdkappid:{}\nTLS.time:{}\nTLS.expire:{}\n",
        fields.identifier, fields.sdkappid, fields.time, fields.expire
    );
    if let Some(userbuf) = fields.userbuf {
        content.push_str(&format!("TLS.userbuf:{userbuf}\n"));
    }
    content
}

pub(crate) fn compute(key: &str, fields: &SignedFields<'_>) -> [u8; 32] {
    keyed(key)
        .chain_update(content_to_sign(fields))
        .finalize()
        .into_bytes()
        .into()
}

/// Constant-time comparison against the decoded `TLS.sig` bytes.
pub(crate) fn verify(
    key: &str,
    fields: &SignedFields<'_>,
    sig_in_token: &[u8],
) -> Result<(), VerifyError> {
    keyed(key)
        .chain_update(content_to_sign(fields))
        .verify_slice(sig_in_token)
        .map_err(|_| VerifyError::BadSignature)
}

/// The console key is used as its raw UTF-8 bytes (not hex-decoded), like every official lib.
fn keyed(key: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length")
}
