//! The test vectors of spec §7.3.

mod common;

use common::{HMAC_VECTORS, unwrap_to_json};
use tagcast_usersig::{DEFAULT_EXPIRE_SECS, VerifyError, sign, verify};

const WORKED_TOKEN: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwokpuZl5mcUlRYkl*UVQBcUp2YkFBZkpSlaGJgZQAJFJrSjILEpVsrIwM4EJlWTmAgUMzVEVFmemAw2v9HFM1S43Dw9NDS0tTAqzzNAPiTC3KDUyzA9xz9TOtIwqMCw1DijIizQzsFWqBQC8iDOS";

#[test]
fn sign_embeds_the_spec_hmac_vectors() {
    for (key, identifier, sdkappid, time, expire, expected_sig) in HMAC_VECTORS {
        let token = sign(sdkappid, key, identifier, expire, time);
        let json = unwrap_to_json(&token);
        assert_eq!(json["TLS.sig"], expected_sig, "vector for {identifier}");
    }
}

#[test]
fn sign_emits_the_documented_json_fields() {
    let (key, identifier, sdkappid, time, expire, sig) = HMAC_VECTORS[2];
    let json = unwrap_to_json(&sign(sdkappid, key, identifier, expire, time));
    let expected = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": time,
        "TLS.sig": sig,
    });
    assert_eq!(json, expected);
}

#[test]
fn sign_output_uses_only_the_url_safe_alphabet() {
    let token = sign(
        1400000000,
        common::DEMO_KEY,
        "administrator",
        DEFAULT_EXPIRE_SECS,
        1,
    );
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '_')),
        "{token}"
    );
}

#[test]
fn every_hmac_vector_token_verifies() {
    for (key, identifier, sdkappid, time, expire, _) in HMAC_VECTORS {
        let token = sign(sdkappid, key, identifier, expire, time);
        assert_eq!(verify(&token, sdkappid, identifier, key, time), Ok(()));
    }
}

#[test]
fn worked_token_verifies_until_its_last_valid_second() {
    for now in [1_700_000_000, 1_700_086_400] {
        let result = verify(
            WORKED_TOKEN,
            1400000000,
            "administrator",
            common::DEMO_KEY,
            now,
        );
        assert_eq!(result, Ok(()), "at {now}");
    }
}

#[test]
fn worked_token_is_expired_one_second_later() {
    let result = verify(
        WORKED_TOKEN,
        1400000000,
        "administrator",
        common::DEMO_KEY,
        1_700_086_401,
    );
    let err = result.unwrap_err();
    assert_eq!(
        err,
        VerifyError::Expired {
            expired_at: 1_700_086_400
        }
    );
    assert_eq!(err.code(), 70001);
    assert_eq!(err.to_string(), "UserSig expired at 1700086400");
}
