//! The `ActionStatus/ErrorCode/ErrorInfo` envelope every response carries.

use serde::Serialize;

use crate::Code;

/// An API-level failure: rendered as HTTP 200 with `ActionStatus: "FAIL"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {info}", code.number())]
pub struct ApiError {
    pub code: Code,
    pub info: String,
}

impl ApiError {
    pub fn new(code: Code, info: impl Into<String>) -> Self {
        Self {
            code,
            info: info.into(),
        }
    }
}

impl From<Code> for ApiError {
    fn from(code: Code) -> Self {
        Self::new(code, code.text())
    }
}

/// A response body: the envelope fields followed by the endpoint's own fields.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    #[serde(rename = "ActionStatus")]
    pub action_status: &'static str,
    #[serde(rename = "ErrorInfo")]
    pub error_info: String,
    #[serde(rename = "ErrorCode")]
    pub error_code: u32,
    #[serde(flatten)]
    pub body: T,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(body: T) -> Self {
        Self {
            action_status: "OK",
            error_info: String::new(),
            error_code: 0,
            body,
        }
    }
}

impl Envelope<serde_json::Map<String, serde_json::Value>> {
    /// A failure envelope; `extra` carries fields some endpoints keep on failure (`"TaskId": ""`).
    pub fn fail(error: &ApiError, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        Self {
            action_status: "FAIL",
            error_info: error.info.clone(),
            error_code: error.code.number(),
            body: extra,
        }
    }
}

/// One element of an `ErrorList`: an account the call could not serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorItem {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "ErrorCode")]
    pub error_code: u32,
    #[serde(rename = "ErrorInfo")]
    pub error_info: String,
}

impl ErrorItem {
    pub fn new(to_account: impl Into<String>, error: ApiError) -> Self {
        Self {
            to_account: to_account.into(),
            error_code: error.code.number(),
            error_info: error.info,
        }
    }
}
