//! Response bodies (the fields after the envelope).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ErrorItem;

/// A body with nothing but an optional `ErrorList`.
#[derive(Debug, Default, Serialize)]
pub struct WithErrors {
    #[serde(rename = "ErrorList", skip_serializing_if = "Vec::is_empty")]
    pub error_list: Vec<ErrorItem>,
}

#[derive(Debug, Serialize)]
pub struct GetTag {
    #[serde(rename = "UserTags")]
    pub user_tags: Vec<UserTags>,
    #[serde(rename = "ErrorList", skip_serializing_if = "Vec::is_empty")]
    pub error_list: Vec<ErrorItem>,
}

#[derive(Debug, Serialize)]
pub struct UserTags {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GetAttrName {
    #[serde(rename = "AttrNames")]
    pub attr_names: BTreeMap<String, String>,
    /// Only the new (`timpush`) family reports account types.
    #[serde(rename = "AttrTypes", skip_serializing_if = "Option::is_none")]
    pub attr_types: Option<BTreeMap<String, u8>>,
}

#[derive(Debug, Serialize)]
pub struct GetAttr {
    #[serde(rename = "UserAttrs")]
    pub user_attrs: Vec<UserAttrs>,
    #[serde(rename = "ErrorList", skip_serializing_if = "Vec::is_empty")]
    pub error_list: Vec<ErrorItem>,
}

#[derive(Debug, Serialize)]
pub struct UserAttrs {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Attrs")]
    pub attrs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct MultiAccountImport {
    #[serde(rename = "FailAccounts")]
    pub fail_accounts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct AccountDelete {
    #[serde(rename = "ResultItem")]
    pub result_item: Vec<DeleteResult>,
}

#[derive(Debug, Serialize)]
pub struct DeleteResult {
    #[serde(rename = "ResultCode")]
    pub result_code: u32,
    #[serde(rename = "ResultInfo")]
    pub result_info: String,
    #[serde(rename = "UserID")]
    pub user_id: String,
}

#[derive(Debug, Serialize)]
pub struct AccountCheck {
    #[serde(rename = "ResultItem")]
    pub result_item: Vec<CheckResult>,
}

#[derive(Debug, Serialize)]
pub struct CheckResult {
    #[serde(rename = "UserID")]
    pub user_id: String,
    #[serde(rename = "ResultCode")]
    pub result_code: u32,
    #[serde(rename = "ResultInfo")]
    pub result_info: String,
    #[serde(rename = "AccountStatus")]
    pub account_status: &'static str,
}
