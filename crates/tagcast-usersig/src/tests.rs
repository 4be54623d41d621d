//! Unit tests that need the crate's internals (HMAC content, decoded claims).

use proptest::prelude::*;

use super::*;
use crate::mac::{SignedFields, content_to_sign};

#[path = "../tests/common/vectors.rs"]
mod vectors;
use vectors::{DEMO_KEY, HMAC_VECTORS};

fn fields<'a>(identifier: &'a str, userbuf: Option<&'a str>) -> SignedFields<'a> {
    SignedFields {
        identifier,
        sdkappid: 1400000000,
        time: 1700000000,
        expire: 86400,
        userbuf,
    }
}

#[test]
fn content_is_four_newline_terminated_lines() {
    assert_eq!(
        content_to_sign(&fields("administrator", None)),
        "TLS.identifier:administrator\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:86400\n"
    );
}

#[test]
fn content_gains_a_userbuf_line_only_when_present() {
    assert!(
        content_to_sign(&fields("a", Some("AAEC")))
            .ends_with("TLS.expire:86400\nTLS.userbuf:AAEC\n")
    );
    assert!(content_to_sign(&fields("a", Some(""))).ends_with("TLS.userbuf:\n"));
}

#[test]
fn hmac_matches_the_spec_vectors() {
    for (key, identifier, sdkappid, time, expire, expected) in HMAC_VECTORS {
        let f = SignedFields {
            identifier,
            sdkappid,
            time,
            expire,
            userbuf: None,
        };
        assert_eq!(
            codec::encode_std_base64(&mac::compute(key, &f)),
            expected,
            "vector for {identifier}"
        );
    }
}

#[test]
fn decode_recovers_what_sign_encoded() {
    let token = sign(7, "k", "ünïcødé \"quoted\"", 60, 1000);
    let claims = decode(&token).unwrap();
    assert_eq!(claims.identifier, "ünïcødé \"quoted\"");
    assert_eq!((claims.sdkappid, claims.time, claims.expire), (7, 1000, 60));
    assert_eq!(claims.userbuf, None);
    assert_eq!(claims.sig.len(), 32);
}

/// Replaces the character at `index` with a different one from the token alphabet.
fn flip_char(token: &str, index: usize, replacement_seed: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_";
    let mut bytes = token.as_bytes().to_vec();
    let original = bytes[index];
    let candidates: Vec<u8> = ALPHABET
        .iter()
        .copied()
        .filter(|&c| c != original)
        .collect();
    bytes[index] = candidates[replacement_seed % candidates.len()];
    String::from_utf8(bytes).expect("token alphabet is ASCII")
}

proptest! {
    /// A single changed character never panics, and is only ever accepted when it did not change
    /// the decoded claims at all (e.g. it only touched Base64 slack bits past the last byte).
    #[test]
    fn flipping_any_single_char_is_refused_unless_the_claims_are_unchanged(
        identifier in "[A-Za-z0-9_@.-]{1,32}",
        time in 0u64..4_102_444_800,
        index_seed in any::<usize>(),
        replacement_seed in any::<usize>(),
    ) {
        let key = DEMO_KEY;
        let token = sign(1400000000, key, &identifier, 3600, time);
        let mutated = flip_char(&token, index_seed % token.len(), replacement_seed);
        let result = verify(&mutated, 1400000000, &identifier, key, time);
        if result.is_ok() {
            prop_assert_eq!(decode(&mutated).unwrap(), decode(&token).unwrap());
        }
    }
}

/// Exhaustive over one token: the only single-character edits that still verify sit in the last
/// few characters, where they touch deflate's end-of-block padding bits, Base64 slack bits, or
/// append bytes after the zlib trailer (ignored, as Go's and Python's zlib readers do), and in
/// every such case the decoded claims are identical to the original's.
#[test]
fn flipping_each_char_of_a_token_is_refused_except_in_harmless_tail_bits() {
    let key = DEMO_KEY;
    let token = sign(1400000000, key, "administrator", 86400, 1700000000);
    let original = decode(&token).unwrap();
    for index in 0..token.len() {
        for seed in 0..64 {
            let mutated = flip_char(&token, index, seed);
            if verify(&mutated, 1400000000, "administrator", key, 1700000000).is_ok() {
                assert_eq!(decode(&mutated).unwrap(), original, "{mutated}");
                assert!(
                    index + 12 >= token.len(),
                    "accepted edit at {index}: {mutated}"
                );
            }
        }
    }
}
