//! Every `VerifyError` variant from a crafted input, and the serializations other official
//! generators produce (Go level-0 zlib with a trailing newline, Java's arbitrary key order…).

mod common;

use common::{APP, DEMO_KEY, T0, tls_sig, wrap_bytes, wrap_json};
use tagcast_usersig::{VerifyError, sign, verify};

fn verify_demo(token: &str) -> Result<(), VerifyError> {
    verify(token, APP, "admin", DEMO_KEY, T0)
}

fn assert_malformed(token: &str, mentions: &str) {
    let err = verify_demo(token).unwrap_err();
    assert_eq!(err.code(), 70003, "{err}");
    assert!(
        matches!(&err, VerifyError::Malformed(msg) if msg.contains(mentions)),
        "expected a Malformed error mentioning {mentions:?}, got {err:?}"
    );
}

/// Asserts `json`, zlib-compressed at `level`, verifies as the demo admin's UserSig.
#[track_caller]
fn assert_json_verifies(json: &str, level: u32) {
    assert_eq!(
        verify_demo(&wrap_json(json, level)),
        Ok(()),
        "level {level}: {json}"
    );
}

/// Asserts `json`, zlib-compressed at level 6, fails verification for its signature.
#[track_caller]
fn assert_json_bad_signature(json: &str) {
    assert_eq!(
        verify_demo(&wrap_json(json, 6)),
        Err(VerifyError::BadSignature),
        "{json}"
    );
}

/// The `TLS.sig` of ("admin", APP, T0, 3600) with the demo key.
fn admin_sig() -> String {
    tls_sig(DEMO_KEY, "admin", APP, T0, 3600, None)
}

/// A correctly signed compact JSON document for ("admin", APP, T0, 3600), ready to tamper with.
fn admin_json() -> String {
    let sig = admin_sig();
    format!(
        r#"{{"TLS.ver":"2.0","TLS.identifier":"admin","TLS.sdkappid":{APP},"TLS.expire":3600,"TLS.time":{T0},"TLS.sig":"{sig}"}}"#
    )
}

// --- 70002 -------------------------------------------------------------------------------

#[test]
fn empty_string_is_empty() {
    let err = verify_demo("").unwrap_err();
    assert_eq!(err, VerifyError::Empty);
    assert_eq!(err.code(), 70002);
    assert_eq!(err.to_string(), "UserSig is empty");
}

#[test]
fn whitespace_only_is_empty() {
    assert_eq!(verify_demo(" \n").unwrap_err(), VerifyError::Empty);
}

// --- 70003 -------------------------------------------------------------------------------

#[test]
fn garbage_is_malformed_base64() {
    assert_malformed("not a usersig!", "base64");
}

#[test]
fn base64_of_non_zlib_bytes_is_malformed_zlib() {
    assert_malformed("aGVsbG8gd29ybGQ_", "zlib"); // "hello world"
}

#[test]
fn zlib_of_non_json_is_malformed_json() {
    assert_malformed(&wrap_json("TLS.ver=2.0", 6), "JSON");
}

#[test]
fn json_that_is_not_an_object_is_malformed() {
    assert_malformed(&wrap_json(r#"["TLS.ver","2.0"]"#, 6), "object");
}

#[test]
fn each_missing_field_is_named() {
    for field in [
        "TLS.ver",
        "TLS.identifier",
        "TLS.sdkappid",
        "TLS.expire",
        "TLS.time",
        "TLS.sig",
    ] {
        let mut doc: serde_json::Value = serde_json::from_str(&admin_json()).unwrap();
        doc.as_object_mut().unwrap().remove(field);
        assert_malformed(
            &wrap_json(&doc.to_string(), 6),
            &format!("missing field {field}"),
        );
    }
}

#[test]
fn version_other_than_2_0_is_malformed() {
    let json = admin_json().replace(r#""TLS.ver":"2.0""#, r#""TLS.ver":"1.0""#);
    assert_malformed(&wrap_json(&json, 6), "TLS.ver");
    let json = admin_json().replace(r#""TLS.ver":"2.0""#, r#""TLS.ver":2.0"#);
    assert_malformed(&wrap_json(&json, 6), "TLS.ver");
}

#[test]
fn wrongly_typed_fields_are_malformed() {
    let cases = [
        (r#""TLS.expire":3600"#, r#""TLS.expire":-3600"#),
        (r#""TLS.expire":3600"#, r#""TLS.expire":3600.5"#),
        (r#""TLS.expire":3600"#, r#""TLS.expire":"36OO""#),
        (r#""TLS.expire":3600"#, r#""TLS.expire":"03600""#),
        (r#""TLS.expire":3600"#, r#""TLS.expire":true"#),
        (r#""TLS.identifier":"admin""#, r#""TLS.identifier":42"#),
    ];
    for (from, to) in cases {
        let json = admin_json().replace(from, to);
        let field = to.split('"').nth(1).unwrap();
        assert_malformed(&wrap_json(&json, 6), field);
    }
}

#[test]
fn sig_that_is_not_base64_is_malformed() {
    let json = admin_json().replace(&admin_sig(), "not base64!");
    assert_malformed(&wrap_json(&json, 6), "TLS.sig");
}

#[test]
fn decompression_bomb_is_refused() {
    // 1 MiB of JSON whitespace compresses to ~1 KiB; it must be refused before it is inflated.
    let padded = format!("{}{}", " ".repeat(1 << 20), admin_json());
    let bomb = wrap_json(&padded, 9);
    assert!(bomb.len() < 8 * 1024, "bomb should be small on the wire");
    assert_malformed(&bomb, "exceeds");
}

#[test]
fn truncated_token_is_malformed() {
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0);
    assert_malformed(&token[..token.len() / 2], "");
}

#[test]
fn zlib_with_bad_checksum_is_malformed() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let token = wrap_json(&admin_json(), 6);
    let mut raw = STANDARD
        .decode(token.replace('*', "+").replace('-', "/").replace('_', "="))
        .unwrap();
    *raw.last_mut().unwrap() ^= 1; // last byte of the Adler-32 trailer
    let tampered = common::to_tencent_alphabet(&STANDARD.encode(raw));
    assert_malformed(&tampered, "zlib");
}

#[test]
fn malformed_message_is_human_readable() {
    let err = verify_demo("%%%").unwrap_err();
    assert_eq!(
        err.to_string(),
        "UserSig is malformed: base64 decoding failed"
    );
}

// --- 70014 / 70013 -----------------------------------------------------------------------

#[test]
fn token_for_another_sdkappid_is_refused() {
    let token = sign(1_400_000_001, DEMO_KEY, "admin", 3600, T0);
    let err = verify_demo(&token).unwrap_err();
    assert_eq!(
        err,
        VerifyError::SdkAppIdMismatch {
            in_sig: 1_400_000_001,
            expected: APP
        }
    );
    assert_eq!(err.code(), 70014);
    assert_eq!(
        err.to_string(),
        "UserSig sdkappid 1400000001 does not match sdkappid 1400000000"
    );
}

#[test]
fn token_for_another_identifier_is_refused() {
    let token = sign(APP, DEMO_KEY, "bob", 3600, T0);
    let err = verify_demo(&token).unwrap_err();
    assert_eq!(
        err,
        VerifyError::IdentifierMismatch {
            in_sig: "bob".into(),
            expected: "admin".into()
        }
    );
    assert_eq!(err.code(), 70013);
    assert_eq!(
        err.to_string(),
        "UserSig identifier 'bob' does not match identifier 'admin'"
    );
}

#[test]
fn identifier_comparison_is_exact() {
    for other in ["Admin", "admin ", "admin\n", "ａdmin"] {
        let token = sign(APP, DEMO_KEY, other, 3600, T0);
        assert_eq!(verify_demo(&token).unwrap_err().code(), 70013, "{other:?}");
    }
}

#[test]
fn sdkappid_is_checked_before_identifier() {
    let token = sign(7, DEMO_KEY, "bob", 3600, T0);
    assert_eq!(verify_demo(&token).unwrap_err().code(), 70014);
}

// --- 70001 -------------------------------------------------------------------------------

#[test]
fn token_is_valid_through_time_plus_expire_inclusive() {
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0);
    assert_eq!(verify(&token, APP, "admin", DEMO_KEY, T0 + 3600), Ok(()));
    let err = verify(&token, APP, "admin", DEMO_KEY, T0 + 3601).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Expired {
            expired_at: T0 + 3600
        }
    );
}

#[test]
fn expiry_is_checked_before_the_signature() {
    let token = sign(APP, "some other key", "admin", 3600, T0);
    let err = verify(&token, APP, "admin", DEMO_KEY, T0 + 3601).unwrap_err();
    assert_eq!(err.code(), 70001);
}

#[test]
fn huge_expire_does_not_overflow() {
    let token = sign(APP, DEMO_KEY, "admin", u64::MAX, T0);
    assert_eq!(verify(&token, APP, "admin", DEMO_KEY, u64::MAX), Ok(()));
}

// --- clock skew (70003) ------------------------------------------------------------------

#[test]
fn token_issued_within_the_clock_skew_verifies() {
    let ahead = tagcast_usersig::MAX_CLOCK_SKEW_SECS;
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0 + ahead);
    assert_eq!(verify(&token, APP, "admin", DEMO_KEY, T0), Ok(()));
}

#[test]
fn token_issued_beyond_the_clock_skew_is_refused() {
    let ahead = tagcast_usersig::MAX_CLOCK_SKEW_SECS + 1;
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0 + ahead);
    let err = verify(&token, APP, "admin", DEMO_KEY, T0).unwrap_err();
    assert_eq!(
        err,
        VerifyError::IssuedInFuture {
            issued_at: T0 + ahead,
            now: T0
        }
    );
    assert_eq!(err.code(), 70003);
    assert!(err.to_string().contains("clock"), "{err}");
}

#[test]
fn token_issued_ten_years_ahead_is_refused() {
    let ten_years = 10 * 365 * 86_400;
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0 + ten_years);
    assert_eq!(
        verify(&token, APP, "admin", DEMO_KEY, T0).map_err(|e| e.code()),
        Err(70003)
    );
}

// --- 70009 -------------------------------------------------------------------------------

#[test]
fn token_signed_with_another_key_has_a_bad_signature() {
    let token = sign(
        APP,
        "0000000000000000000000000000000000000000000000000000000000000000",
        "admin",
        3600,
        T0,
    );
    let err = verify_demo(&token).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    assert_eq!(err.code(), 70009);
    assert!(err.to_string().contains("signature"));
}

#[test]
fn edited_claims_have_a_bad_signature() {
    // Extending the validity without re-signing must not work.
    let json = admin_json().replace(r#""TLS.expire":3600"#, r#""TLS.expire":99999999"#);
    assert_json_bad_signature(&json);
}

#[test]
fn sig_of_the_wrong_length_is_a_bad_signature() {
    let sig = admin_sig();
    let json = admin_json().replace(&sig, &sig[..40]);
    assert_json_bad_signature(&json);
}

#[test]
fn adding_or_dropping_userbuf_breaks_the_signature() {
    let added = admin_json().replace("}", r#","TLS.userbuf":"AAEC"}"#);
    assert_json_bad_signature(&added);

    let with_buf = tls_sig(DEMO_KEY, "admin", APP, T0, 3600, Some("AAEC"));
    let dropped = admin_json().replace(&admin_sig(), &with_buf);
    assert_json_bad_signature(&dropped);
}

// --- accepted serializations -------------------------------------------------------------

#[test]
fn level_0_stored_zlib_verifies() {
    assert_json_verifies(&admin_json(), 0);
}

#[test]
fn every_zlib_level_verifies() {
    for level in 0..=9 {
        assert_json_verifies(&admin_json(), level);
    }
}

#[test]
fn go_style_json_with_trailing_newline_verifies() {
    // Go's json.Encoder: struct order, []byte sig as base64, and a trailing "\n"; level 0.
    let sig = admin_sig();
    let json = format!(
        "{{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"admin\",\"TLS.sdkappid\":{APP},\"TLS.expire\":3600,\"TLS.time\":{T0},\"TLS.sig\":\"{sig}\"}}\n"
    );
    assert_json_verifies(&json, 0);
}

#[test]
fn reordered_keys_with_pretty_whitespace_verify() {
    let sig = admin_sig();
    let json = format!(
        "{{\n  \"TLS.sig\" : \"{sig}\",\r\n\t\"TLS.time\": {T0},\n  \"TLS.expire\": 3600,\n  \"TLS.identifier\": \"admin\",\n  \"TLS.sdkappid\": {APP},\n  \"TLS.ver\": \"2.0\"\n}}\n"
    );
    assert_json_verifies(&json, 6);
}

#[test]
fn numeric_strings_verify() {
    // Some third-party generators put every value in a String map.
    let sig = admin_sig();
    let json = format!(
        r#"{{"TLS.ver":"2.0","TLS.identifier":"admin","TLS.sdkappid":"{APP}","TLS.expire":"3600","TLS.time":"{T0}","TLS.sig":"{sig}"}}"#
    );
    assert_json_verifies(&json, 6);
}

#[test]
fn escaped_json_strings_verify() {
    // PHP's json_encode escapes "/" as "\/" and non-ASCII as \uXXXX; Python escapes non-ASCII.
    let sig = tls_sig(DEMO_KEY, "管理员", APP, T0, 3600, None);
    let json = format!(
        r#"{{"TLS.ver":"2.0","TLS.identifier":"\u7ba1\u7406\u5458","TLS.sdkappid":{APP},"TLS.expire":3600,"TLS.time":{T0},"TLS.sig":"{}"}}"#,
        sig.replace('/', "\\/")
    );
    assert_eq!(
        verify(&wrap_json(&json, 6), APP, "管理员", DEMO_KEY, T0),
        Ok(())
    );
}

#[test]
fn token_with_userbuf_verifies() {
    let userbuf = "AAAHeGlhb2p1blNyTgAAACcQZVVCgAAAAP8AAAAA";
    let sig = tls_sig(DEMO_KEY, "admin", APP, T0, 3600, Some(userbuf));
    let json = format!(
        r#"{{"TLS.ver":"2.0","TLS.identifier":"admin","TLS.sdkappid":{APP},"TLS.expire":3600,"TLS.time":{T0},"TLS.userbuf":"{userbuf}","TLS.sig":"{sig}"}}"#
    );
    assert_json_verifies(&json, 6);
}

#[test]
fn null_userbuf_counts_as_absent() {
    let json = admin_json().replace("}", r#","TLS.userbuf":null}"#);
    assert_json_verifies(&json, 6);
}

#[test]
fn unknown_extra_fields_are_ignored() {
    let json = admin_json().replace("}", r#","TLS.future":{"x":[1,2]}}"#);
    assert_json_verifies(&json, 6);
}

#[test]
fn missing_base64_padding_is_tolerated() {
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0);
    let unpadded = token.trim_end_matches('_');
    assert_eq!(verify_demo(unpadded), Ok(()));
}

#[test]
fn standard_alphabet_and_surrounding_whitespace_are_tolerated() {
    // A client that skipped the alphabet swap still sends valid Base64.
    let token = sign(APP, DEMO_KEY, "admin", 3600, T0);
    let standard = token.replace('*', "+").replace('-', "/").replace('_', "=");
    assert_eq!(verify_demo(&standard), Ok(()));
    assert_eq!(verify_demo(&format!("{token}\n")), Ok(()));
}

#[test]
fn non_utf8_payload_is_malformed() {
    assert_malformed(&wrap_bytes(&[0xff, 0xfe, b'{', b'}'], 6), "JSON");
}
