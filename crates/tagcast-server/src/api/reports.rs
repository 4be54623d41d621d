//! `all_member_push_statistics` and `all_member_push_trace`, answered from the recorded
//! deliveries of each task.

use serde_json::{Map, Value, json};
use tagcast_proto::{ApiError, Code};
use tagcast_store::{RoaringBitmap, TaskMeta};

use super::audience::{parse_object, present};
use super::push::find_task;
use super::{Ctx, Reply, not_found, reply};

/// Longest statistics window (7 days).
const MAX_WINDOW_SECS: u64 = 7 * 86_400;
/// Most TaskIDs in one statistics request.
const MAX_TASKS: usize = 5;

/// Per task: audience, deliveries and state; all tasks of the window when `TaskID` is empty.
pub async fn statistics(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body = parse_object(ctx, body)?;
    let start = seconds(&body, "StartTime")?;
    let end = seconds(&body, "EndTime")?;
    if end < start || end - start > MAX_WINDOW_SECS {
        return Err(ApiError::new(
            Code::JsonParse,
            format!("EndTime must follow StartTime by at most {MAX_WINDOW_SECS} seconds"),
        ));
    }
    let ids: Vec<String> = match present(&body, "TaskID") {
        None => Vec::new(),
        Some(value) => serde_json::from_value(value.clone())
            .ok()
            .filter(|ids: &Vec<String>| ids.len() <= MAX_TASKS)
            .ok_or_else(|| {
                ApiError::new(
                    Code::JsonParse,
                    format!("TaskID must be an array of at most {MAX_TASKS} strings"),
                )
            })?,
    };
    let tasks = if ids.is_empty() {
        ctx.store
            .tasks_created_between(ctx.app.sdkappid, start * 1000, end * 1000)
            .await
            .map_err(|e| ctx.internal(e))?
    } else {
        let mut tasks = Vec::with_capacity(ids.len());
        for id in &ids {
            tasks.push(find_task(ctx, id).await?);
        }
        tasks
    };
    let mut results = Vec::with_capacity(tasks.len());
    for task in &tasks {
        results.push(task_statistics(ctx, task).await?);
    }
    reply(json!({ "Results": results }))
}

async fn task_statistics(ctx: &Ctx<'_>, task: &TaskMeta) -> Result<Value, ApiError> {
    let delivered = delivered(ctx, task).await?;
    Ok(json!({
        "TaskID": task.task_id,
        "TaskTime": task.created_ms / 1000,
        "Type": format!("{:?}", task.kind),
        "AudienceCount": task.audience_size,
        "DeliveredCount": delivered.len(),
        "StoredForOffline": u8::from(task.stored_for_offline()),
        "ExpireTime": task.expires_ms / 1000,
        "Revoked": u8::from(task.revoked_ms.is_some()),
        "RevokeTime": task.revoked_ms.map_or(0, |ms| ms / 1000),
    }))
}

async fn delivered(ctx: &Ctx<'_>, task: &TaskMeta) -> Result<RoaringBitmap, ApiError> {
    let deliveries = ctx
        .store
        .deliveries(ctx.app.sdkappid, task.seq)
        .await
        .map_err(|e| ctx.internal(e))?;
    Ok(deliveries
        .into_iter()
        .fold(RoaringBitmap::new(), |all, (_, accounts)| all | accounts))
}

/// One account's record for one task: when it was delivered, or why not yet.
pub async fn trace(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body = parse_object(ctx, body)?;
    let task_id = string(&body, "TaskID")?;
    let user = string(&body, "UserID")?;
    let task = find_task(ctx, &task_id).await?;
    let ids = ctx
        .store
        .account_ids(ctx.app.sdkappid, std::slice::from_ref(&user))
        .await
        .map_err(|e| ctx.internal(e))?;
    let account = ids[0].ok_or_else(|| not_found(&user))?;
    let audience = ctx
        .store
        .task_audience(ctx.app.sdkappid, task.seq)
        .await
        .map_err(|e| ctx.internal(e))?;
    if !audience.is_some_and(|a| a.contains(account)) {
        return reply(json!({ "InstanceTrace": [] }));
    }
    let deliveries = ctx
        .store
        .deliveries(ctx.app.sdkappid, task.seq)
        .await
        .map_err(|e| ctx.internal(e))?;
    let delivered_at = deliveries
        .iter()
        .find(|(_, a)| a.contains(account))
        .map(|(second, _)| *second);
    let status = match delivered_at {
        Some(_) => "Delivered",
        None if task.revoked_ms.is_some() => "Revoked",
        None if task.expires_ms <= crate::clock::now_ms() => "Expired",
        None => "Pending",
    };
    let event_time = delivered_at.unwrap_or(0);
    reply(json!({
        "InstanceTrace": [{
            "InstanceId": format!("{}_{}", task.task_id, user),
            "PushTime": delivered_at.map_or_else(String::new, datetime),
            "EventType": 2,
            "PushPlatform": 0,
            "IMCommitStat": {
                "IMStat": { "PushStatus": status, "ErrorCode": 0, "ErrorInfo": "", "EventTime": event_time }
            }
        }]
    }))
}

/// `YYYY-MM-DD hh:mm:ss` in UTC, as Tencent's trace shows times.
fn datetime(unix_secs: u64) -> String {
    chrono::DateTime::from_timestamp(unix_secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn seconds(body: &Map<String, Value>, field: &str) -> Result<u64, ApiError> {
    present(body, field).and_then(Value::as_u64).ok_or_else(|| {
        ApiError::new(
            Code::JsonParse,
            format!("{field} must be a unix time in seconds"),
        )
    })
}

fn string(body: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match present(body, field) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ApiError::new(
            Code::JsonParse,
            format!("{field} is required and must be a string"),
        )),
    }
}
