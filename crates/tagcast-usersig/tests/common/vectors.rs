//! The test vectors of spec §7.3, shared by the integration tests (through `common`) and the
//! crate's unit tests (`src/tests.rs` includes this file by path).

/// The demo secret key of the spec's samples.
pub const DEMO_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// (key, identifier, sdkappid, time, expire, expected TLS.sig)
pub const HMAC_VECTORS: [(&str, &str, u64, u64, u64, &str); 3] = [
    (
        "test-secret-key-1234567890abcdef",
        "user_42",
        20030819,
        1718764800,
        604800,
        "8y4PAvIKGCmKvubBW+DGnAa/LQ9VpBWp4fEjtiQ/VHQ=",
    ),
    (
        "test-secret",
        "opl-link-user",
        1400000000,
        1700000000,
        3600,
        "Ep374JN4C508IdcirVt88USTNmTFp6Znr1lv4Y6KmdU=",
    ),
    (
        DEMO_KEY,
        "administrator",
        1400000000,
        1700000000,
        86400,
        "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60=",
    ),
];
