//! push / im_push, batch and revoke: create tasks over frozen audiences and hand them to the hub.

use serde_json::{Map, Value, json};
use tagcast_proto::{ApiError, Code, ErrorItem};
use tagcast_store::{Created, NewTask, PushPolicy, Revoked, RoaringBitmap, TaskKind, TaskMeta};

use super::audience::{audience_of, parse_object, present};
use super::{Ctx, Reply, not_found, reply, shown, task_ids};
use crate::clock::now_ms;
use crate::routes::Family;

/// Longest DataId (90057).
const DATA_ID_BYTES: usize = 64;
/// Message element types a push may carry.
const MSG_TYPES: &[&str] = &[
    "TIMTextElem",
    "TIMLocationElem",
    "TIMFaceElem",
    "TIMCustomElem",
    "TIMSoundElem",
    "TIMImageElem",
    "TIMFileElem",
    "TIMVideoFileElem",
];

/// `push` / `im_push`: everyone, or the accounts a condition selects.
pub async fn push(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    check_enabled(ctx)?;
    let body = parse_object(ctx, body)?;
    let msg_random = msg_random(&body, Code::MsgRandomInvalid)?;
    let content = content(ctx, &body)?;
    let lifetime_secs = lifetime(ctx, &body)?;
    let data_id = data_id(&body)?;
    let from_account = from_account(ctx, &body)?;
    let (kind, expr) = audience_of(ctx, &body).await?;
    let audience = ctx
        .store
        .with_audience(ctx.app.sdkappid, |index| index.evaluate(&expr));
    let task = NewTask {
        kind,
        from_account,
        msg_random,
        has_offline_push_info: present(&body, "OfflinePushInfo").is_some(),
        notify_devices: notifies_devices(ctx, &content),
        content,
        lifetime_secs,
        data_id,
        audience,
    };
    let policy = PushPolicy {
        daily_quota: Some(ctx.app.limits.push_daily_quota),
        min_interval_ms: ctx.app.limits.push_min_interval_ms,
        dedupe_window_ms: ctx.app.limits.msg_random_window_secs * 1000,
        task_id: task_ids::format,
    };
    let meta = create(ctx, task, policy).await?;
    reply(json!({ "TaskId": meta.task_id }))
}

/// `batch`: the listed accounts; unknown ones are reported in `ErrorList`.
pub async fn batch(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    check_enabled(ctx)?;
    let body = parse_object(ctx, body)?;
    let from_account = required_string(&body, "From_Account")?;
    let accounts = to_accounts(ctx, &body)?;
    let msg_random = msg_random(&body, Code::JsonParse)?;
    if !present(&body, "OfflinePushInfo").is_some_and(Value::is_object) {
        return Err(ApiError::new(
            Code::JsonParse,
            "OfflinePushInfo is required and must be an object",
        ));
    }
    let content = content(ctx, &body)?;
    let notify_devices = notifies_devices(ctx, &content);
    let data_id = data_id(&body)?;
    let ids = ctx
        .store
        .account_ids(ctx.app.sdkappid, &accounts)
        .await
        .map_err(|e| ctx.internal(e))?;
    let mut audience = RoaringBitmap::new();
    let mut error_list = Vec::new();
    for (account, id) in accounts.iter().zip(ids) {
        match id {
            Some(id) => {
                audience.insert(id);
            }
            None => error_list.push(ErrorItem::new(account.clone(), not_found(account))),
        }
    }
    let task = NewTask {
        kind: TaskKind::Batch,
        from_account,
        msg_random,
        content,
        lifetime_secs: ctx.app.limits.offline_retention_secs,
        data_id,
        has_offline_push_info: true,
        notify_devices,
        audience,
    };
    let policy = PushPolicy {
        daily_quota: None,
        min_interval_ms: 0,
        dedupe_window_ms: ctx.app.limits.msg_random_window_secs * 1000,
        task_id: task_ids::format,
    };
    let meta = create(ctx, task, policy).await?;
    let mut response = json!({ "TaskId": meta.task_id });
    if !error_list.is_empty() {
        response["ErrorList"] = json!(error_list);
    }
    reply(response)
}

/// `revoke`: stops the task's undelivered part, withdraws its offline copies and tells the
/// connected recipients.
pub async fn revoke(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    if !ctx.app.admit_revoke() {
        return Err(ApiError::new(
            Code::RevokeTooFrequent,
            "at most one recall per second",
        ));
    }
    let body = parse_object(ctx, body)?;
    let task_id = required_string(&body, "TaskId")?;
    let meta = find_task(ctx, &task_id).await?;
    let now_ms = now_ms();
    let window_ms = ctx.app.limits.revoke_window_secs * 1000;
    if meta.revoked_ms.is_some() {
        return Err(ApiError::new(
            Code::TaskAlreadyRevoked,
            format!("task {task_id} was already recalled"),
        ));
    }
    if now_ms >= meta.created_ms + window_ms {
        return Err(ApiError::new(
            Code::RevokeWindowExpired,
            format!("task {task_id} is older than the recall window"),
        ));
    }
    let offline_push_info = present(&body, "OfflinePushInfo");
    if !meta.stored_for_offline() && offline_push_info.is_none() {
        return Err(ApiError::from(Code::RevokeNeedsOfflinePushInfo));
    }
    // The notification shown on the push's devices is replaced by the recall's, if it has one.
    let overwrite = offline_push_info.map(|info| json!({ "OfflinePushInfo": info }).to_string());
    match ctx
        .store
        .revoke_task(ctx.app.sdkappid, meta.seq, now_ms, overwrite)
        .await
        .map_err(|e| ctx.internal(e))?
    {
        // Every node, this one included, tells its sessions from the revoke's event; this one
        // has before it answers.
        Revoked::Done(_) => ctx.hub.apply_events().await,
        Revoked::AlreadyRevoked => {
            return Err(ApiError::new(
                Code::TaskAlreadyRevoked,
                format!("task {task_id} was already recalled"),
            ));
        }
        Revoked::NotFound => return Err(task_not_found(&task_id)),
    }
    reply(json!({}))
}

/// The app's task named by `task_id` (90049 otherwise).
pub async fn find_task(ctx: &Ctx<'_>, task_id: &str) -> Result<TaskMeta, ApiError> {
    let (app, seq) = task_ids::parse(task_id)
        .filter(|(app, _)| *app == ctx.app.sdkappid)
        .ok_or_else(|| task_not_found(task_id))?;
    ctx.store
        .task(app, seq)
        .await
        .map_err(|e| ctx.internal(e))?
        .filter(|meta| meta.task_id == task_id)
        .ok_or_else(|| task_not_found(task_id))
}

fn task_not_found(task_id: &str) -> ApiError {
    ApiError::new(
        Code::TaskNotFound,
        format!("no push task {}", shown(task_id)),
    )
}

/// Stores the task and publishes it; a repeated MsgRandom returns the earlier task unpushed.
async fn create(ctx: &Ctx<'_>, task: NewTask, policy: PushPolicy) -> Result<TaskMeta, ApiError> {
    let audience = task.audience.clone();
    let app = ctx.app.sdkappid;
    let mut applied = ctx.hub.publishing().await;
    if task.lifetime_secs > 0 {
        ctx.hub.has_room(app, now_ms()).map_err(|limit| {
            ApiError::new(
                Code::DailyQuotaExceeded,
                format!(
                    "{limit} pushes are still waiting for offline recipients, the most this app \
                     may hold (limits.max_live_tasks); retry once some expire"
                ),
            )
        })?;
    }
    match ctx
        .store
        .create_task(app, task, policy, now_ms())
        .await
        .map_err(|e| ctx.internal(e))?
    {
        Created::New(meta) => {
            // Published from its event, after the other nodes' earlier tasks.
            ctx.hub
                .apply_events_locked(&mut applied, Some((app, &meta, &audience)))
                .await;
            Ok(meta)
        }
        Created::Duplicate(meta) => Ok(meta),
        Created::DailyQuotaExceeded { quota } => Err(ApiError::new(
            Code::DailyQuotaExceeded,
            format!("the daily quota of {quota} pushes is used up"),
        )),
        Created::TooFrequent { min_interval_ms } => Err(ApiError::new(
            Code::PushTooFrequent,
            format!("pushes must be at least {min_interval_ms} ms apart"),
        )),
    }
}

/// Whether a push of `content` notifies its audience's devices: the app has a provider, and
/// the push something to show and no `PushFlag` 1 (see `delivery::alert_of`).
fn notifies_devices(ctx: &Ctx<'_>, content: &str) -> bool {
    !ctx.app.providers.is_empty()
        && serde_json::from_str::<Value>(content)
            .ok()
            .and_then(|content| crate::delivery::alert_of(&content))
            .is_some()
}

fn check_enabled(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    if ctx.app.push_enabled {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::PushNotEnabled,
            "push is not enabled for this app",
        ))
    }
}

fn msg_random(body: &Map<String, Value>, code: Code) -> Result<u32, ApiError> {
    present(body, "MsgRandom")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            ApiError::new(
                code,
                "Invalid format of MsgRandom: an integer from 0 to 4294967295 is required",
            )
        })
}

fn required_string(body: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match present(body, field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ApiError::new(
            Code::JsonParse,
            format!("{field} is required and must be a non-empty string"),
        )),
    }
}

fn to_accounts(ctx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let max = ctx.app.limits.batch_accounts;
    let accounts: Vec<String> = present(body, "To_Account")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or_else(|| {
            ApiError::new(
                Code::JsonParse,
                "To_Account is required and must be an array of strings",
            )
        })?;
    if accounts.is_empty() || accounts.len() > max {
        return Err(ApiError::new(
            Code::JsonParse,
            format!(
                "To_Account has {} accounts; it must have 1 to {max}",
                accounts.len()
            ),
        ));
    }
    Ok(accounts)
}

/// The sender: `From_Account`, or the calling admin when absent.
fn from_account(ctx: &Ctx<'_>, body: &Map<String, Value>) -> Result<String, ApiError> {
    match present(body, "From_Account") {
        None => Ok(ctx.identifier.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::new(
            Code::JsonParse,
            "From_Account must be a string",
        )),
    }
}

fn data_id(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match present(body, "DataId") {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= DATA_ID_BYTES => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(ApiError::new(
            Code::DataIdTooLong,
            format!("DataId is {} bytes, longer than {DATA_ID_BYTES}", s.len()),
        )),
        Some(_) => Err(ApiError::new(Code::JsonParse, "DataId must be a string")),
    }
}

/// How long the push waits for offline recipients: `MsgLifeTime` in the old family (default 0,
/// online only), the configured retention in the new one.
fn lifetime(ctx: &Ctx<'_>, body: &Map<String, Value>) -> Result<u64, ApiError> {
    let max = ctx.app.limits.max_msg_lifetime_secs;
    match present(body, "MsgLifeTime") {
        Some(value) => value.as_u64().filter(|secs| *secs <= max).ok_or_else(|| {
            ApiError::new(
                Code::MsgLifeTimeInvalid,
                format!("MsgLifeTime must be an integer from 0 to {max}"),
            )
        }),
        None if ctx.route.family == Family::AllMemberPush => Ok(0),
        None => Ok(ctx.app.limits.offline_retention_secs),
    }
}

/// What recipients receive: `MsgBody` (checked) and the pass-through fields, serialized once.
fn content(ctx: &Ctx<'_>, body: &Map<String, Value>) -> Result<String, ApiError> {
    let msg_body = present(body, "MsgBody");
    let offline = present(body, "OfflinePushInfo");
    match msg_body {
        Some(msg_body) => check_msg_body(ctx, msg_body)?,
        None if ctx.route.family == Family::AllMemberPush => {
            return Err(ApiError::new(Code::MsgBodyInvalid, "MsgBody is required"));
        }
        None if offline.is_none() => {
            return Err(ApiError::new(
                Code::MsgBodyInvalid,
                "MsgBody or OfflinePushInfo is required",
            ));
        }
        None => {}
    }
    if offline.is_some_and(|o| !o.is_object()) {
        return Err(ApiError::new(
            Code::JsonParse,
            "OfflinePushInfo must be an object",
        ));
    }
    let mut content = Map::new();
    for field in [
        "MsgBody",
        "OfflinePushInfo",
        "MsgRandom",
        "DataId",
        "OnlineOnlyFlag",
    ] {
        if let Some(value) = present(body, field) {
            content.insert(field.to_string(), value.clone());
        }
    }
    Ok(Value::Object(content).to_string())
}

fn check_msg_body(ctx: &Ctx<'_>, msg_body: &Value) -> Result<(), ApiError> {
    let Value::Array(elements) = msg_body else {
        return Err(ApiError::new(
            Code::MsgBodyNotArray,
            "MsgBody must be an array",
        ));
    };
    if elements.is_empty() {
        return Err(ApiError::new(
            Code::MsgBodyInvalid,
            "MsgBody has no element",
        ));
    }
    for (i, element) in elements.iter().enumerate() {
        let msg_type = element.get("MsgType").and_then(Value::as_str);
        if !msg_type.is_some_and(|t| MSG_TYPES.contains(&t)) {
            return Err(ApiError::new(
                Code::MsgBodyInvalid,
                format!(
                    "MsgBody[{i}].MsgType must be one of {}",
                    MSG_TYPES.join(", ")
                ),
            ));
        }
        if !element.get("MsgContent").is_some_and(Value::is_object) {
            return Err(ApiError::new(
                Code::MsgFormatInvalid,
                format!("MsgBody[{i}].MsgContent must be an object"),
            ));
        }
    }
    let size = msg_body.to_string().len();
    let max = ctx.app.limits.msg_body_bytes;
    if size > max {
        return Err(ApiError::new(
            Code::MsgBodyTooLarge,
            format!("MsgBody is {size} bytes, more than {max}"),
        ));
    }
    Ok(())
}
