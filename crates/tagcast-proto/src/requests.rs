//! Request bodies, field for field as Tencent documents them.
//!
//! Unknown fields are ignored, as Tencent's own server does; missing, null or mistyped required
//! fields fail to parse, and the parser names the field.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `add_tag` / `im_add_tag`.
#[derive(Debug, Clone, Deserialize)]
pub struct AddTag {
    #[serde(rename = "Replace", default)]
    pub replace: Option<u8>,
    #[serde(rename = "UserTags")]
    pub user_tags: Vec<UserTags>,
}

/// `remove_tag` / `im_remove_tag`.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoveTag {
    #[serde(rename = "UserTags")]
    pub user_tags: Vec<UserTags>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserTags {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<String>,
}

/// `get_tag`, `clear_all_tags`, `get_attr` and their old-family twins: a list of accounts.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountList {
    #[serde(rename = "To_Account")]
    pub to_account: Vec<String>,
}

/// `set_attr_name` / `im_set_attr_name`: slot number (`"0"`..`"9"`) to name, and to account type.
#[derive(Debug, Clone, Deserialize)]
pub struct SetAttrName {
    #[serde(rename = "AttrNames")]
    pub attr_names: BTreeMap<String, String>,
    #[serde(rename = "AttrTypes", default)]
    pub attr_types: Option<BTreeMap<String, u8>>,
}

/// `set_attr` / `im_set_attr`.
#[derive(Debug, Clone, Deserialize)]
pub struct SetAttr {
    #[serde(rename = "UserAttrs")]
    pub user_attrs: Vec<UserAttrValues>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserAttrValues {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Attrs")]
    pub attrs: BTreeMap<String, String>,
}

/// `remove_attr` / `im_remove_attr`.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoveAttr {
    #[serde(rename = "UserAttrs")]
    pub user_attrs: Vec<UserAttrNames>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserAttrNames {
    #[serde(rename = "To_Account")]
    pub to_account: String,
    #[serde(rename = "Attrs")]
    pub attrs: Vec<String>,
}

/// `account_import`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountImport {
    #[serde(rename = "UserID")]
    pub user_id: String,
    #[serde(rename = "Nick", default)]
    pub nick: Option<String>,
    #[serde(rename = "FaceUrl", default)]
    pub face_url: Option<String>,
}

/// `multiaccount_import`.
#[derive(Debug, Clone, Deserialize)]
pub struct MultiAccountImport {
    #[serde(rename = "Accounts")]
    pub accounts: Vec<String>,
}

/// `account_delete`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountDelete {
    #[serde(rename = "DeleteItem")]
    pub delete_item: Vec<UserIdItem>,
}

/// `account_check`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountCheck {
    #[serde(rename = "CheckItem")]
    pub check_item: Vec<UserIdItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserIdItem {
    #[serde(rename = "UserID")]
    pub user_id: String,
}
