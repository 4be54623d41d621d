//! Property: whatever `sign` produces, `verify` accepts within its validity window, and only
//! for the exact (sdkappid, identifier, key) it was made for.

mod common;

use proptest::prelude::*;
use tagcast_usersig::{VerifyError, sign, verify};

/// Times up to year ~2100 and validities up to ~30 years, so `time + expire` stays realistic.
fn time() -> impl Strategy<Value = u64> {
    0u64..4_102_444_800
}

fn expire() -> impl Strategy<Value = u64> {
    0u64..1_000_000_000
}

proptest! {
    #[test]
    fn sign_then_verify_roundtrips(
        sdkappid in any::<u64>(),
        key in any::<String>(),
        identifier in any::<String>(),
        time in time(),
        expire in expire(),
        elapsed_fraction in 0.0f64..=1.0,
    ) {
        let token = sign(sdkappid, &key, &identifier, expire, time);
        let now = time + (expire as f64 * elapsed_fraction) as u64;
        prop_assert_eq!(verify(&token, sdkappid, &identifier, &key, now), Ok(()));
        prop_assert_eq!(
            verify(&token, sdkappid, &identifier, &key, time + expire + 1),
            Err(VerifyError::Expired { expired_at: time + expire })
        );
    }

    #[test]
    fn a_different_key_never_verifies(
        key in "[0-9a-f]{64}",
        other_key in "[0-9a-f]{64}",
        identifier in "[A-Za-z0-9_-]{1,32}",
        time in time(),
    ) {
        prop_assume!(key != other_key);
        let token = sign(1_400_000_000, &key, &identifier, 3600, time);
        prop_assert_eq!(
            verify(&token, 1_400_000_000, &identifier, &other_key, time),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn arbitrary_input_never_panics(
        input in any::<String>(),
        sdkappid in any::<u64>(),
        identifier in any::<String>(),
        now in any::<u64>(),
    ) {
        let _ = verify(&input, sdkappid, &identifier, "key", now);
    }

    #[test]
    fn tencent_alphabet_noise_never_panics(input in "[A-Za-z0-9*_-]{0,400}") {
        let result = verify(&input, 1, "a", "key", 0);
        prop_assert!(result.is_err());
    }

    #[test]
    fn arbitrary_zlib_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = verify(&common::wrap_bytes(&payload, 6), 1, "a", "key", 0);
    }

    #[test]
    fn arbitrary_field_values_never_panic(
        sdkappid in json_value(),
        time in json_value(),
        expire in json_value(),
        identifier in json_value(),
        sig in json_value(),
        userbuf in json_value(),
    ) {
        let json = serde_json::json!({
            "TLS.ver": "2.0", "TLS.sdkappid": sdkappid, "TLS.time": time,
            "TLS.expire": expire, "TLS.identifier": identifier, "TLS.sig": sig,
            "TLS.userbuf": userbuf,
        });
        let result = verify(&common::wrap_json(&json.to_string(), 6), 1, "a", "key", 0);
        prop_assert!(result.is_err());
    }
}

/// Scalars of every JSON type, biased towards the edge cases of the integer fields.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[0-9]{0,25}".prop_map(Value::from),
        "[A-Za-z0-9+/=]{0,60}".prop_map(Value::from),
    ]
}
