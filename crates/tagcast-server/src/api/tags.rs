//! add_tag, remove_tag, clear_all_tags, get_tag (and their `im_` twins).

use tagcast_proto::responses::{GetTag, UserTags, WithErrors};
use tagcast_proto::{ApiError, Code, requests};
use tagcast_store::{ItemResult, TagEdit};

use super::{Ctx, Reply, reply, shown, split_found, write_valid};

pub async fn add_tag(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AddTag = ctx.parse(body)?;
    let (edit, max_tags) = match req.replace {
        None | Some(0) => (TagEdit::Add, ctx.app.limits.tags_per_add),
        Some(1) => (TagEdit::Replace, ctx.app.limits.tags_per_replace),
        Some(other) => {
            return Err(ApiError::new(
                Code::JsonParse,
                format!("invalid request body at Replace: must be 0 or 1, got {other}"),
            ));
        }
    };
    edit_tags(ctx, edit, req.user_tags, max_tags).await
}

pub async fn remove_tag(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::RemoveTag = ctx.parse(body)?;
    edit_tags(ctx, TagEdit::Remove, req.user_tags, usize::MAX).await
}

pub async fn clear_all_tags(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AccountList = ctx.parse(body)?;
    ctx.check_account_count("To_Account", req.to_account.len())?;
    let elements = req
        .to_account
        .into_iter()
        .map(|a| (a, Ok(Vec::new())))
        .collect();
    let error_list =
        write_valid(elements, |items| write_tags(ctx, TagEdit::Replace, items)).await?;
    reply(WithErrors { error_list })
}

pub async fn get_tag(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AccountList = ctx.parse(body)?;
    ctx.check_account_count("To_Account", req.to_account.len())?;
    let found = ctx
        .store
        .get_tags(ctx.app.sdkappid, &req.to_account)
        .await
        .map_err(|e| ctx.internal(e))?;
    let (user_tags, error_list) = split_found(req.to_account, found, |to_account, tags| UserTags {
        to_account,
        tags,
    });
    reply(GetTag {
        user_tags,
        error_list,
    })
}

async fn edit_tags(
    ctx: &Ctx<'_>,
    edit: TagEdit,
    user_tags: Vec<requests::UserTags>,
    max_tags: usize,
) -> Reply {
    ctx.check_account_count("UserTags", user_tags.len())?;
    let elements = user_tags
        .into_iter()
        .map(|ut| {
            let checked = check_tags(ctx, &ut.tags, max_tags).map(|()| ut.tags);
            (ut.to_account, checked)
        })
        .collect();
    let error_list = write_valid(elements, |items| write_tags(ctx, edit, items)).await?;
    reply(WithErrors { error_list })
}

/// Applies `edit` to the accounts' tags within the app's tag limits.
async fn write_tags(
    ctx: &Ctx<'_>,
    edit: TagEdit,
    items: Vec<(String, Vec<String>)>,
) -> Result<Vec<ItemResult>, ApiError> {
    let limits = ctx.app.tag_limits();
    ctx.store
        .edit_tags(ctx.app.sdkappid, edit, items, limits)
        .await
        .map_err(|e| ctx.internal(e))
}

/// The per-account checks of one `Tags` list.
pub(super) fn check_tags(ctx: &Ctx<'_>, tags: &[String], max_tags: usize) -> Result<(), ApiError> {
    if tags.len() > max_tags {
        return Err(ApiError::new(
            Code::TooManyTags,
            format!(
                "{} tags in one request, more than the limit of {max_tags}",
                tags.len()
            ),
        ));
    }
    let max_bytes = ctx.app.limits.tag_bytes;
    for tag in tags {
        if tag.is_empty() {
            return Err(ApiError::new(Code::EmptyTag, "empty tag"));
        }
        if tag.len() > max_bytes {
            return Err(ApiError::new(
                Code::TagTooLong,
                format!(
                    "tag '{}' is {} bytes, longer than {max_bytes}",
                    shown(tag),
                    tag.len()
                ),
            ));
        }
    }
    Ok(())
}
