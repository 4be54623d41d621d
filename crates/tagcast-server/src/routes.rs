//! The URL table: which path is which API, and of which family.

/// The three URL families; they share handlers but differ in error codes and a few fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `v4/timpush/...`: ErrorList, AttrTypes, Replace.
    TimPush,
    /// `v4/all_member_push/im_...`.
    AllMemberPush,
    /// `v4/im_open_login_svc/...`.
    Account,
    /// `v4/tagcast/...`: tagcast's own extensions, with the `timpush` family's codes.
    Tagcast,
}

/// What a request asks for, whatever its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    AddTag,
    RemoveTag,
    ClearAllTags,
    GetTag,
    SetAttrName,
    GetAttrName,
    SetAttr,
    GetAttr,
    RemoveAttr,
    AccountImport,
    MultiAccountImport,
    AccountDelete,
    AccountCheck,
    Push,
    Batch,
    Revoke,
    Statistics,
    Trace,
    Loss,
    AccountPushes,
    AudienceCount,
    DeviceRegister,
    DeviceUnregister,
    DeviceList,
}

/// A known API path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    pub op: Op,
    pub family: Family,
    /// The path after `/v4/`, e.g. `timpush/add_tag`: the API's name in metrics and config.
    pub name: &'static str,
}

const ROUTES: &[(&str, Op, Family)] = &[
    ("timpush/add_tag", Op::AddTag, Family::TimPush),
    ("timpush/remove_tag", Op::RemoveTag, Family::TimPush),
    ("timpush/clear_all_tags", Op::ClearAllTags, Family::TimPush),
    ("timpush/get_tag", Op::GetTag, Family::TimPush),
    ("timpush/set_attr_name", Op::SetAttrName, Family::TimPush),
    ("timpush/get_attr_name", Op::GetAttrName, Family::TimPush),
    ("timpush/set_attr", Op::SetAttr, Family::TimPush),
    ("timpush/get_attr", Op::GetAttr, Family::TimPush),
    ("timpush/remove_attr", Op::RemoveAttr, Family::TimPush),
    (
        "all_member_push/im_add_tag",
        Op::AddTag,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_remove_tag",
        Op::RemoveTag,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_remove_all_tags",
        Op::ClearAllTags,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_get_tag",
        Op::GetTag,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_set_attr_name",
        Op::SetAttrName,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_get_attr_name",
        Op::GetAttrName,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_set_attr",
        Op::SetAttr,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_get_attr",
        Op::GetAttr,
        Family::AllMemberPush,
    ),
    (
        "all_member_push/im_remove_attr",
        Op::RemoveAttr,
        Family::AllMemberPush,
    ),
    (
        "im_open_login_svc/account_import",
        Op::AccountImport,
        Family::Account,
    ),
    (
        "im_open_login_svc/multiaccount_import",
        Op::MultiAccountImport,
        Family::Account,
    ),
    (
        "im_open_login_svc/account_delete",
        Op::AccountDelete,
        Family::Account,
    ),
    (
        "im_open_login_svc/account_check",
        Op::AccountCheck,
        Family::Account,
    ),
    ("timpush/push", Op::Push, Family::TimPush),
    ("all_member_push/im_push", Op::Push, Family::AllMemberPush),
    ("timpush/batch", Op::Batch, Family::TimPush),
    ("timpush/revoke", Op::Revoke, Family::TimPush),
    (
        "timpush/all_member_push_statistics",
        Op::Statistics,
        Family::TimPush,
    ),
    ("timpush/all_member_push_trace", Op::Trace, Family::TimPush),
    ("timpush/all_member_push_loss", Op::Loss, Family::TimPush),
    ("tagcast/audience_count", Op::AudienceCount, Family::Tagcast),
    ("tagcast/account_pushes", Op::AccountPushes, Family::Tagcast),
    (
        "tagcast/device_register",
        Op::DeviceRegister,
        Family::Tagcast,
    ),
    (
        "tagcast/device_unregister",
        Op::DeviceUnregister,
        Family::Tagcast,
    ),
    ("tagcast/device_list", Op::DeviceList, Family::Tagcast),
];

impl Route {
    /// Push and batch bodies have their own, smaller size limit (90056).
    pub fn is_push(&self) -> bool {
        matches!(self.op, Op::Push | Op::Batch)
    }

    /// Whether any account of the app may call it with its own UserSig (for itself), not only
    /// an admin.
    pub fn accounts_may_call(&self) -> bool {
        matches!(self.op, Op::DeviceRegister | Op::DeviceUnregister)
    }

    /// The route for a path after `/v4/`, e.g. `timpush/add_tag`.
    pub fn from_path(path: &str) -> Option<Route> {
        ROUTES
            .iter()
            .find(|(name, _, _)| *name == path)
            .map(|&(name, op, family)| Route { op, family, name })
    }

    /// Every route.
    pub fn all() -> impl Iterator<Item = Route> {
        ROUTES
            .iter()
            .map(|&(name, op, family)| Route { op, family, name })
    }
}
