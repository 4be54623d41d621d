//! UserSigs produced by Tencent's official generators (see scripts/gen-usersig-fixtures.py and
//! the `generators` list inside the fixture for the exact package versions).

use serde::Deserialize;
use tagcast_usersig::{VerifyError, verify};

const FIXTURE: &str = include_str!("fixtures/official.json");

#[derive(Deserialize)]
struct Fixture {
    generators: Vec<String>,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    generator: String,
    sdkappid: u64,
    key: String,
    identifier: String,
    time: u64,
    expire: u64,
    usersig: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("fixture is valid JSON")
}

#[test]
fn fixture_covers_python_and_node_generators() {
    let fixture = fixture();
    assert!(fixture.entries.len() >= 10);
    for prefix in ["pypi:tls-sig-api-v2", "npm:tls-sig-api-v2"] {
        assert!(fixture.generators.iter().any(|g| g.starts_with(prefix)));
        assert!(
            fixture
                .entries
                .iter()
                .any(|e| e.generator.starts_with(prefix))
        );
    }
    assert!(
        fixture
            .entries
            .iter()
            .any(|e| e.generator.contains("userbuf"))
    );
    assert!(fixture.entries.iter().any(|e| !e.identifier.is_ascii()));
}

#[test]
fn official_generator_sigs_verify() {
    for e in fixture().entries {
        let result = verify(&e.usersig, e.sdkappid, &e.identifier, &e.key, e.time);
        assert_eq!(result, Ok(()), "{} / {:?}", e.generator, e.identifier);
        let last_second = e.time + e.expire;
        let result = verify(&e.usersig, e.sdkappid, &e.identifier, &e.key, last_second);
        assert_eq!(
            result,
            Ok(()),
            "{} / {:?} at expiry",
            e.generator,
            e.identifier
        );
    }
}

#[test]
fn official_generator_sigs_fail_with_the_wrong_key() {
    for e in fixture().entries {
        let wrong_key = format!("{}x", e.key);
        let result = verify(&e.usersig, e.sdkappid, &e.identifier, &wrong_key, e.time);
        assert_eq!(result, Err(VerifyError::BadSignature), "{}", e.generator);
    }
}

#[test]
fn official_generator_sigs_expire() {
    for e in fixture().entries {
        let after = e.time + e.expire + 1;
        let result = verify(&e.usersig, e.sdkappid, &e.identifier, &e.key, after);
        let expected = VerifyError::Expired {
            expired_at: e.time + e.expire,
        };
        assert_eq!(result, Err(expected), "{}", e.generator);
    }
}

#[test]
fn official_generator_sigs_are_bound_to_their_identifier() {
    for e in fixture().entries {
        let other = format!("{}_", e.identifier);
        let err = verify(&e.usersig, e.sdkappid, &other, &e.key, e.time).unwrap_err();
        assert_eq!(err.code(), 70013, "{}", e.generator);
    }
}
