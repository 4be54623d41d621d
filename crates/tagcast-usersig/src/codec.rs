//! The outer layers of a token: Tencent's Base64 alphabet swap and zlib.

use std::io::Read;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use crate::VerifyError;

/// Inflated JSON is ~200 bytes; anything near this is an attack (a "zip bomb"), not a token.
pub(crate) const MAX_INFLATED_BYTES: u64 = 64 * 1024;

/// Standard alphabet, always padded on output, as every official library emits.
const STD_PADDED: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Standard alphabet, lenient like the decoders official libraries use (Python's `b64decode`,
/// Go's non-strict `StdEncoding`): padding optional, non-zero trailing bits ignored.
const STD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(crate) fn encode_std_base64(bytes: &[u8]) -> String {
    STD_PADDED.encode(bytes)
}

pub(crate) fn decode_std_base64(text: &str) -> Option<Vec<u8>> {
    STD_LENIENT.decode(text).ok()
}

/// zlib (default level, as Python/Node/Java use), then Base64 with Tencent's alphabet swap.
pub(crate) fn encode_token(json: &[u8]) -> String {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    std::io::Write::write_all(&mut encoder, json).expect("writing to a Vec cannot fail");
    let compressed = encoder.finish().expect("writing to a Vec cannot fail");
    to_tencent_alphabet(&encode_std_base64(&compressed))
}

/// Reverses the alphabet swap, Base64-decodes and inflates, returning the JSON bytes.
pub(crate) fn decode_token(token: &str) -> Result<Vec<u8>, VerifyError> {
    let std_base64 = from_tencent_alphabet(token);
    let compressed = decode_std_base64(&std_base64)
        .ok_or_else(|| VerifyError::malformed("base64 decoding failed"))?;
    inflate_bounded(&compressed)
}

fn to_tencent_alphabet(std_base64: &str) -> String {
    std_base64
        .chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            other => other,
        })
        .collect()
}

fn from_tencent_alphabet(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            other => other,
        })
        .collect()
}

/// Inflates a zlib stream (any level, including stored blocks; the Adler-32 trailer is checked),
/// refusing output larger than [`MAX_INFLATED_BYTES`].
fn inflate_bounded(compressed: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let mut inflated = Vec::new();
    ZlibDecoder::new(compressed)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| VerifyError::malformed(format!("zlib inflate failed: {e}")))?;
    if inflated.len() as u64 > MAX_INFLATED_BYTES {
        return Err(VerifyError::malformed(format!(
            "zlib payload exceeds {MAX_INFLATED_BYTES} bytes"
        )));
    }
    Ok(inflated)
}
