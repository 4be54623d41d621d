//! Helpers to hand-craft tokens the way other generators (Go, Java, third-party code) would.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, Mac};
use sha2::Sha256;

mod vectors;
#[allow(unused_imports)] // as for dead_code: each test binary uses a different subset
pub use vectors::{DEMO_KEY, HMAC_VECTORS};
pub const APP: u64 = 1_400_000_000;
pub const T0: u64 = 1_700_000_000;

/// zlib at `level` (0 = stored blocks, as the current Go library does), then Tencent's alphabet.
pub fn wrap_json(json: &str, level: u32) -> String {
    wrap_bytes(json.as_bytes(), level)
}

pub fn wrap_bytes(payload: &[u8], level: u32) -> String {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(payload).unwrap();
    to_tencent_alphabet(&STANDARD.encode(encoder.finish().unwrap()))
}

pub fn to_tencent_alphabet(std_base64: &str) -> String {
    std_base64
        .replace('+', "*")
        .replace('/', "-")
        .replace('=', "_")
}

/// Base64 of HMAC-SHA256 over the content lines, computed independently of the crate.
pub fn tls_sig(
    key: &str,
    identifier: &str,
    sdkappid: u64,
    time: u64,
    expire: u64,
    userbuf: Option<&str>,
) -> String {
    let mut content = format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    );
    if let Some(userbuf) = userbuf {
        content.push_str(&format!("TLS.userbuf:{userbuf}\n"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(content.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Undoes a token down to its JSON text (for asserting what `sign` produced).
pub fn unwrap_to_json(token: &str) -> serde_json::Value {
    use std::io::Read;
    let std_base64 = token.replace('*', "+").replace('-', "/").replace('_', "=");
    let compressed = STANDARD.decode(std_base64).unwrap();
    let mut json = String::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}
