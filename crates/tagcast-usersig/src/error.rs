//! The reasons a UserSig is refused, and Tencent's error code for each.

/// Why a UserSig was refused; each maps to Tencent's error code via `code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No UserSig was supplied (70002).
    #[error("UserSig is empty")]
    Empty,
    /// The UserSig could not be decoded; the message says which layer failed (70003).
    #[error("UserSig is malformed: {0}")]
    Malformed(String),
    /// The token was issued for another application (70014).
    #[error("UserSig sdkappid {in_sig} does not match sdkappid {expected}")]
    SdkAppIdMismatch { in_sig: u64, expected: u64 },
    /// The token was issued for another user (70013).
    #[error("UserSig identifier '{in_sig}' does not match identifier '{expected}'")]
    IdentifierMismatch { in_sig: String, expected: String },
    /// `now > TLS.time + TLS.expire` (70001).
    #[error("UserSig expired at {expired_at}")]
    Expired { expired_at: u64 },
    /// `TLS.time` is further ahead of the server's clock than `MAX_CLOCK_SKEW_SECS` (70003).
    #[error(
        "UserSig was issued at {issued_at}, more than {} s after the server's time {now}: check the signer's clock",
        crate::MAX_CLOCK_SKEW_SECS
    )]
    IssuedInFuture { issued_at: u64, now: u64 },
    /// The HMAC does not match: wrong key, or the token was altered (70009).
    #[error("UserSig signature is invalid (wrong key or altered token)")]
    BadSignature,
}

impl VerifyError {
    /// Tencent Cloud Chat's `ErrorCode` for this refusal.
    pub fn code(&self) -> u32 {
        match self {
            VerifyError::Empty => 70002,
            VerifyError::Malformed(_) | VerifyError::IssuedInFuture { .. } => 70003,
            VerifyError::SdkAppIdMismatch { .. } => 70014,
            VerifyError::IdentifierMismatch { .. } => 70013,
            VerifyError::Expired { .. } => 70001,
            VerifyError::BadSignature => 70009,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        VerifyError::Malformed(what.into())
    }
}
