//! account_import, multiaccount_import, account_delete, account_check.

use tagcast_proto::responses::{
    AccountCheck, AccountDelete, CheckResult, DeleteResult, MultiAccountImport, WithErrors,
};
use tagcast_proto::{ApiError, Code, requests};

use super::{Ctx, Reply, reply};

/// Tencent's ResultInfo for an account that does not exist.
const NOT_EXIST_INFO: &str = "Err_TLS_PT_Open_Login_Account_Not_Exist";

pub async fn account_import(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AccountImport = ctx.parse(body)?;
    ctx.app.check_user_id("UserID", &req.user_id)?;
    let limit = ctx.app.limits.profile_field_bytes;
    for (field, value) in [("Nick", &req.nick), ("FaceUrl", &req.face_url)] {
        if let Some(value) = value.as_ref().filter(|v| v.len() > limit) {
            return Err(ApiError::new(
                Code::ProfileFieldTooLong,
                format!("{field} is {} bytes, longer than {limit}", value.len()),
            ));
        }
    }
    import(ctx, vec![req.user_id]).await?;
    reply(WithErrors::default())
}

pub async fn multiaccount_import(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::MultiAccountImport = ctx.parse(body)?;
    check_count(ctx, "Accounts", req.accounts.len())?;
    let (valid, fail_accounts): (Vec<String>, Vec<String>) = req
        .accounts
        .into_iter()
        .partition(|id| ctx.app.check_user_id("Accounts", id).is_ok());
    import(ctx, valid).await?;
    reply(MultiAccountImport { fail_accounts })
}

pub async fn account_delete(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AccountDelete = ctx.parse(body)?;
    check_count(ctx, "DeleteItem", req.delete_item.len())?;
    let ids: Vec<String> = req
        .delete_item
        .into_iter()
        .map(|item| item.user_id)
        .collect();
    let existed = ctx
        .store
        .delete_accounts(ctx.app.sdkappid, ids.clone())
        .await
        .map_err(|e| ctx.internal(e))?;
    let result_item = ids
        .into_iter()
        .zip(existed)
        .map(|(user_id, existed)| DeleteResult {
            result_code: if existed {
                0
            } else {
                Code::AccountNotFound.number()
            },
            result_info: if existed {
                String::new()
            } else {
                NOT_EXIST_INFO.into()
            },
            user_id,
        })
        .collect();
    reply(AccountDelete { result_item })
}

pub async fn account_check(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let req: requests::AccountCheck = ctx.parse(body)?;
    check_count(ctx, "CheckItem", req.check_item.len())?;
    let ids: Vec<String> = req
        .check_item
        .into_iter()
        .map(|item| item.user_id)
        .collect();
    let found = ctx
        .store
        .account_ids(ctx.app.sdkappid, &ids)
        .await
        .map_err(|e| ctx.internal(e))?;
    let result_item = ids
        .into_iter()
        .zip(found)
        .map(|(user_id, id)| CheckResult {
            user_id,
            result_code: 0,
            result_info: String::new(),
            account_status: if id.is_some() {
                "Imported"
            } else {
                "NotImported"
            },
        })
        .collect();
    reply(AccountCheck { result_item })
}

async fn import(ctx: &Ctx<'_>, ids: Vec<String>) -> Result<(), ApiError> {
    ctx.store
        .import_accounts(ctx.app.sdkappid, ids)
        .await
        .map_err(|e| ctx.internal(e))?;
    Ok(())
}

fn check_count(ctx: &Ctx<'_>, field: &str, count: usize) -> Result<(), ApiError> {
    let limit = ctx.app.limits.accounts_per_account_request;
    if count == 0 || count > limit {
        return Err(ApiError::new(
            Code::InvalidParameters,
            format!("{field} has {count} entries; it must have 1 to {limit}"),
        ));
    }
    Ok(())
}
