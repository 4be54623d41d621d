//! The JSON document inside a token (spec §7.1 step 3).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::VerifyError;
use crate::codec;
use crate::mac::SignedFields;

const SUPPORTED_VERSION: &str = "2.0";

/// A decoded token: what it claims, and the signature over those claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub identifier: String,
    pub sdkappid: u64,
    pub time: u64,
    pub expire: u64,
    pub userbuf: Option<String>,
    pub sig: Vec<u8>,
}

impl Claims {
    /// Parses the inflated JSON. Key order and whitespace are irrelevant; numbers may also be
    /// numeric strings because some third-party generators emit `"TLS.time":"1700000000"`.
    pub fn parse(json: &[u8]) -> Result<Self, VerifyError> {
        let doc: Value = serde_json::from_slice(json)
            .map_err(|e| VerifyError::malformed(format!("payload is not JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| VerifyError::malformed("payload is not a JSON object"))?;
        check_version(obj)?;
        Ok(Claims {
            identifier: string_field(obj, "TLS.identifier")?.to_owned(),
            sdkappid: integer_field(obj, "TLS.sdkappid")?,
            time: integer_field(obj, "TLS.time")?,
            expire: integer_field(obj, "TLS.expire")?,
            userbuf: optional_string_field(obj, "TLS.userbuf")?.map(str::to_owned),
            sig: sig_field(obj)?,
        })
    }

    pub fn signed_fields(&self) -> SignedFields<'_> {
        SignedFields {
            identifier: &self.identifier,
            sdkappid: self.sdkappid,
            time: self.time,
            expire: self.expire,
            userbuf: self.userbuf.as_deref(),
        }
    }
}

/// The JSON the official Node/Python libraries emit (same key order as Python), compact.
pub(crate) fn to_compact_json(fields: &SignedFields<'_>, sig_base64: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Wire<'a> {
        #[serde(rename = "TLS.ver")]
        ver: &'a str,
        #[serde(rename = "TLS.identifier")]
        identifier: &'a str,
        #[serde(rename = "TLS.sdkappid")]
        sdkappid: u64,
        #[serde(rename = "TLS.expire")]
        expire: u64,
        #[serde(rename = "TLS.time")]
        time: u64,
        #[serde(rename = "TLS.userbuf", skip_serializing_if = "Option::is_none")]
        userbuf: Option<&'a str>,
        #[serde(rename = "TLS.sig")]
        sig: &'a str,
    }
    let wire = Wire {
        ver: SUPPORTED_VERSION,
        identifier: fields.identifier,
        sdkappid: fields.sdkappid,
        expire: fields.expire,
        time: fields.time,
        userbuf: fields.userbuf,
        sig: sig_base64,
    };
    serde_json::to_vec(&wire).expect("serializing strings and integers cannot fail")
}

/// Version 1 tokens (ECDSA, pre-2019 apps) and anything else are out of scope.
fn check_version(obj: &Map<String, Value>) -> Result<(), VerifyError> {
    let version = string_field(obj, "TLS.ver")?;
    if version != SUPPORTED_VERSION {
        return Err(VerifyError::malformed(format!(
            "unsupported TLS.ver '{version}' (only '{SUPPORTED_VERSION}' is supported)"
        )));
    }
    Ok(())
}

fn required<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a Value, VerifyError> {
    obj.get(name)
        .ok_or_else(|| VerifyError::malformed(format!("missing field {name}")))
}

fn string_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, VerifyError> {
    required(obj, name)?
        .as_str()
        .ok_or_else(|| VerifyError::malformed(format!("field {name} is not a string")))
}

/// `null` counts as absent: Go's `[]byte` field decodes `null` to nil, i.e. "no userbuf".
fn optional_string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, VerifyError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(VerifyError::malformed(format!(
            "field {name} is not a string"
        ))),
    }
}

fn integer_field(obj: &Map<String, Value>, name: &str) -> Result<u64, VerifyError> {
    let value = required(obj, name)?;
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_decimal(s),
        _ => None,
    };
    parsed.ok_or_else(|| {
        VerifyError::malformed(format!("field {name} is not a non-negative integer"))
    })
}

/// Canonical decimal only (ASCII digits, no sign, no leading zero): the HMAC content re-renders
/// the number in plain decimal, so "+5", " 5" or "05" would not match what the generator signed.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return None;
    }
    s.parse().ok()
}

fn sig_field(obj: &Map<String, Value>) -> Result<Vec<u8>, VerifyError> {
    let sig = string_field(obj, "TLS.sig")?;
    codec::decode_std_base64(sig)
        .ok_or_else(|| VerifyError::malformed("field TLS.sig is not base64"))
}
