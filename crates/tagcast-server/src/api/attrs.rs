//! set_attr_name, get_attr_name, set_attr, get_attr, remove_attr (and their `im_` twins).

use std::collections::BTreeMap;

use tagcast_proto::responses::{GetAttr, GetAttrName, UserAttrs, WithErrors};
use tagcast_proto::{ApiError, Code, requests};
use tagcast_store::{ATTR_SLOTS, ItemResult, SlotUpdate};

use super::{Ctx, Reply, reply, request_error, split_found, write_valid};
use crate::routes::Family;

pub async fn set_attr_name(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::SetAttrName = ctx.parse(body)?;
    let updates = slot_updates(ctx, &req)?;
    ctx.store
        .set_attr_names(ctx.app.sdkappid, updates)
        .await
        .map_err(|e| ctx.internal(e))?
        .map_err(request_error)?;
    reply(WithErrors::default())
}

pub async fn get_attr_name(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    // The request has no fields (`{}`), but its body is parsed whole like every other: a JSON
    // object, unknown members ignored, nesting deeper than serde_json's limit (128) refused.
    let _: serde_json::Map<String, serde_json::Value> = ctx.parse(body)?;
    let schema = ctx
        .store
        .attr_schema(ctx.app.sdkappid)
        .await
        .map_err(|e| ctx.internal(e))?;
    let attr_names = schema
        .named()
        .map(|(i, s)| (i.to_string(), s.name.clone()))
        .collect();
    let attr_types: BTreeMap<String, u8> = schema
        .named()
        .map(|(i, s)| (i.to_string(), s.account_type))
        .collect();
    let attr_types = (ctx.route.family == Family::TimPush).then_some(attr_types);
    reply(GetAttrName {
        attr_names,
        attr_types,
    })
}

pub async fn set_attr(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::SetAttr = ctx.parse(body)?;
    ctx.check_account_count("UserAttrs", req.user_attrs.len())?;
    let elements = req
        .user_attrs
        .into_iter()
        .map(|ua| {
            let checked = check_values(ctx, &ua.attrs).map(|()| ua.attrs);
            (ua.to_account, checked)
        })
        .collect();
    let error_list = write_valid(elements, |items| async move {
        let written = ctx.store.set_attrs(ctx.app.sdkappid, items).await;
        flatten(ctx, written)
    })
    .await?;
    reply(WithErrors { error_list })
}

pub async fn remove_attr(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::RemoveAttr = ctx.parse(body)?;
    ctx.check_account_count("UserAttrs", req.user_attrs.len())?;
    let elements = req
        .user_attrs
        .into_iter()
        .map(|ua| (ua.to_account, Ok(ua.attrs)))
        .collect();
    let error_list = write_valid(elements, |items| async move {
        let written = ctx.store.remove_attrs(ctx.app.sdkappid, items).await;
        flatten(ctx, written)
    })
    .await?;
    reply(WithErrors { error_list })
}

pub async fn get_attr(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AccountList = ctx.parse(body)?;
    ctx.check_account_count("To_Account", req.to_account.len())?;
    let found = ctx
        .store
        .get_attrs(ctx.app.sdkappid, &req.to_account)
        .await
        .map_err(|e| ctx.internal(e))?;
    let (user_attrs, error_list) = split_found(req.to_account, found, |to_account, attrs| {
        UserAttrs { to_account, attrs }
    });
    reply(GetAttr {
        user_attrs,
        error_list,
    })
}

type Written =
    Result<Result<Vec<ItemResult>, tagcast_store::RequestError>, tagcast_store::StoreError>;

/// A storage failure or a refused request fails the whole call; otherwise per-account results.
fn flatten(ctx: &Ctx<'_>, written: Written) -> Result<Vec<ItemResult>, ApiError> {
    written.map_err(|e| ctx.internal(e))?.map_err(request_error)
}

/// Validates `AttrNames` and `AttrTypes` into slot updates; any problem fails the request (90033).
fn slot_updates(ctx: &Ctx<'_>, req: &requests::SetAttrName) -> Result<Vec<SlotUpdate>, ApiError> {
    let max_bytes = ctx.app.limits.attr_name_bytes;
    let types = req.attr_types.clone().unwrap_or_default();
    if let Some(key) = types.keys().find(|k| !req.attr_names.contains_key(*k)) {
        return Err(invalid(format!(
            "AttrTypes key '{key}' is not a key of AttrNames"
        )));
    }
    let mut updates = Vec::with_capacity(req.attr_names.len());
    for (key, name) in &req.attr_names {
        let slot = parse_slot(key)?;
        if name.is_empty() || name.len() > max_bytes {
            return Err(invalid(format!(
                "AttrNames.{key}: attribute name must be 1 to {max_bytes} bytes, got {}",
                name.len()
            )));
        }
        let account_type = types.get(key).copied();
        if account_type.is_some_and(|t| t > 1) {
            return Err(invalid(format!(
                "AttrTypes.{key}: must be 0 (UserID) or 1 (RegistrationID)"
            )));
        }
        updates.push(SlotUpdate {
            slot,
            name: name.clone(),
            account_type,
        });
    }
    Ok(updates)
}

fn parse_slot(key: &str) -> Result<u8, ApiError> {
    key.parse::<u8>()
        .ok()
        .filter(|slot| (*slot as usize) < ATTR_SLOTS && key.len() == 1)
        .ok_or_else(|| {
            invalid(format!(
                "AttrNames key '{key}' is not a slot number from 0 to 9"
            ))
        })
}

/// The per-account check of one `Attrs` object: values no longer than the limit.
fn check_values(ctx: &Ctx<'_>, attrs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let max_bytes = ctx.app.limits.attr_value_bytes;
    match attrs.iter().find(|(_, value)| value.len() > max_bytes) {
        Some((name, value)) => Err(invalid(format!(
            "value of attribute '{name}' is {} bytes, longer than {max_bytes}",
            value.len()
        ))),
        None => Ok(()),
    }
}

fn invalid(info: String) -> ApiError {
    ApiError::new(Code::InvalidAttribute, info)
}
