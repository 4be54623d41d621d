//! `all_member_push_statistics`, `all_member_push_loss` and `all_member_push_trace`, answered
//! from the recorded deliveries of each task and from its device fan-out's report and sends.

use serde_json::{Map, Value, json};
use tagcast_proto::{ApiError, Code};
use tagcast_store::{
    AccountId, DeviceReport, DeviceSend, Platform, RoaringBitmap, SendStatus, TaskMeta,
};

use super::audience::{parse_object, present};
use super::push::find_task;
use super::{Ctx, Reply, not_found, reply};

/// Longest statistics window (7 days).
const MAX_WINDOW_SECS: u64 = 7 * 86_400;
/// Most TaskIDs in one statistics request.
const MAX_TASKS: usize = 5;

/// `EventType` of a notification through a push provider (2 is the WebSocket's).
const OFFLINE: u8 = 1;
const PLATFORMS: [Platform; 3] = [Platform::Apns, Platform::Fcm, Platform::WebPush];

/// Most pushes `account_pushes` lists, and most of the window's pushes (newest first) it
/// looks through for them: each one looked at reads the push's audience.
const MAX_ACCOUNT_PUSHES: usize = 100;
const MAX_PUSHES_LOOKED_AT: usize = 1000;

/// Per task: audience, deliveries, device notifications and state; all tasks of the window
/// when `TaskID` is empty.
pub async fn statistics(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let mut results = Vec::new();
    for task in &window_tasks(ctx, body).await? {
        results.push(task_statistics(ctx, task).await?);
    }
    reply(json!({ "Results": results }))
}

/// Per task: why accounts were not reached, online (`ReadyToSendLoss`) and through each
/// provider (`PlatformReadyToSendLoss`), with the same request as the statistics.
pub async fn loss(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let mut results = Vec::new();
    for task in &window_tasks(ctx, body).await? {
        results.push(task_loss(ctx, task).await?);
    }
    reply(json!({ "Results": results }))
}

/// tagcast's number for each provider in `PushPlatform` (0 is the WebSocket).
pub fn platform_code(platform: Platform) -> u8 {
    match platform {
        Platform::Apns => 1,
        Platform::Fcm => 2,
        Platform::WebPush => 3,
    }
}

/// The tasks a statistics or loss request names: its `TaskID`s, or every task of its window.
async fn window_tasks(ctx: &Ctx<'_>, body: &[u8]) -> Result<Vec<TaskMeta>, ApiError> {
    let body = parse_object(ctx, body)?;
    let window = window_of(&body)?;
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
    if ids.is_empty() {
        return tasks_in(ctx, window).await;
    }
    let mut tasks = Vec::with_capacity(ids.len());
    for id in &ids {
        tasks.push(find_task(ctx, id).await?);
    }
    Ok(tasks)
}

/// The request's `StartTime` and `EndTime`, at most `MAX_WINDOW_SECS` apart.
fn window_of(body: &Map<String, Value>) -> Result<(u64, u64), ApiError> {
    let start = seconds(body, "StartTime")?;
    let end = seconds(body, "EndTime")?;
    if end < start || end - start > MAX_WINDOW_SECS {
        return Err(ApiError::new(
            Code::JsonParse,
            format!("EndTime must follow StartTime by at most {MAX_WINDOW_SECS} seconds"),
        ));
    }
    Ok((start, end))
}

/// The app's tasks created in the window (unix seconds), oldest first.
async fn tasks_in(ctx: &Ctx<'_>, (start, end): (u64, u64)) -> Result<Vec<TaskMeta>, ApiError> {
    ctx.store
        .tasks_created_between(ctx.app.sdkappid, start * 1000, end * 1000)
        .await
        .map_err(|e| ctx.internal(e))
}

async fn task_statistics(ctx: &Ctx<'_>, task: &TaskMeta) -> Result<Value, ApiError> {
    let delivered = delivered(ctx, task).await?;
    let caught_up = ctx
        .store
        .caught_up(ctx.app.sdkappid, task.seq)
        .await
        .map_err(|e| ctx.internal(e))?;
    let report = device_report(ctx, task).await?;
    let platforms: Vec<Value> = PLATFORMS
        .iter()
        .map(|&platform| {
            let p = report.provider(platform);
            json!({
                "PushPlatform": platform_code(platform),
                "Provider": platform.name(),
                "Requests": p.requests,
                "Accepted": p.accepted,
                "Retries": p.retries,
                "Gone": p.gone,
                "Failed": p.failed.values().sum::<u64>(),
            })
        })
        .collect();
    Ok(json!({
        "OfflinePush": {
            "NotifiesDevices": u8::from(task.notify_devices),
            "ReachedOnline": report.reached_online,
            "Overwritten": report.overwritten,
            "Platforms": platforms,
        },
        "TaskID": task.task_id,
        "TaskTime": task.created_ms / 1000,
        "Type": format!("{:?}", task.kind),
        "AudienceCount": task.audience_size,
        "DeliveredCount": delivered.len(),
        "CaughtUpCount": caught_up.intersection_len(&delivered),
        "StoredForOffline": u8::from(task.stored_for_offline()),
        "ExpireTime": task.expires_ms / 1000,
        "Revoked": u8::from(task.revoked_ms.is_some()),
        "RevokeTime": task.revoked_ms.map_or(0, |ms| ms / 1000),
    }))
}

async fn task_loss(ctx: &Ctx<'_>, task: &TaskMeta) -> Result<Value, ApiError> {
    let not_online = task.audience_size - delivered(ctx, task).await?.len();
    let mut ready_to_send = Vec::new();
    if not_online > 0 {
        ready_to_send.push(json!({
            "ErrCode": "NotOnline",
            "ErrCount": not_online,
            "ErrInfo": "not reached over the WebSocket (offline, or not yet connected)",
        }));
    }
    let report = device_report(ctx, task).await?;
    let mut platform_loss = Vec::new();
    for platform in PLATFORMS {
        let p = report.provider(platform);
        let gone = (p.gone > 0).then(|| ("DeviceGone".to_string(), p.gone));
        for (reason, count) in p.failed.iter().map(|(r, c)| (r.clone(), *c)).chain(gone) {
            platform_loss.push(json!({
                "EventType": OFFLINE,
                "PushPlatform": platform_code(platform),
                "ErrCode": reason,
                "ErrCount": count,
                "ErrInfo": format!("{} gave this reason", platform.name()),
            }));
        }
    }
    Ok(json!({
        "TaskID": task.task_id,
        "ReadyToSendLoss": ready_to_send,
        "PostSendDeliveredLoss": [],
        "PlatformReadyToSendLoss": platform_loss,
    }))
}

/// The task's device report (empty when it notifies no device).
async fn device_report(ctx: &Ctx<'_>, task: &TaskMeta) -> Result<DeviceReport, ApiError> {
    let dispatch = ctx
        .store
        .dispatch(ctx.app.sdkappid, task.seq)
        .await
        .map_err(|e| ctx.internal(e))?;
    Ok(dispatch.map(|d| d.report).unwrap_or_default())
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
    let account = account_of(ctx, &user).await?;
    if !in_audience(ctx, &task, account).await? {
        return reply(json!({ "InstanceTrace": [] }));
    }
    let online = websocket_outcome(ctx, &task, account).await?;
    let event_time = online.delivered_at.unwrap_or(0);
    let mut instances = vec![json!({
        "InstanceId": format!("{}_{}", task.task_id, user),
        "PushTime": online.delivered_at.map_or_else(String::new, datetime),
        "EventType": 2,
        "PushPlatform": 0,
        "IMCommitStat": {
            "IMStat": {
                "PushStatus": online.status, "ErrorCode": 0, "ErrorInfo": "", "EventTime": event_time
            }
        }
    })];
    let sends = ctx
        .store
        .device_sends(ctx.app.sdkappid, task.seq, account)
        .await
        .map_err(|e| ctx.internal(e))?;
    let devices = ctx
        .store
        .devices(ctx.app.sdkappid, account)
        .await
        .map_err(|e| ctx.internal(e))?;
    for send in &sends {
        let device = devices
            .iter()
            .find(|d| d.registration_id == send.registration_id);
        instances.push(device_instance(&task.task_id, send, device));
    }
    reply(json!({ "InstanceTrace": instances }))
}

/// One device's notification of a task, as a trace instance (`EventType` 1).
fn device_instance(
    task_id: &str,
    send: &DeviceSend,
    device: Option<&tagcast_store::Device>,
) -> Value {
    let status = match send.status {
        SendStatus::Accepted => "Accepted",
        SendStatus::Retrying => "Retrying",
        SendStatus::Gone => "Gone",
        SendStatus::Failed => "Failed",
    };
    let at_secs = send.at_ms / 1000;
    json!({
        "InstanceId": format!("{task_id}_{}", send.registration_id),
        "PushTime": datetime(at_secs),
        "EventType": OFFLINE,
        "PushPlatform": platform_code(send.platform),
        "RegistrationID": send.registration_id,
        "Token": device.map(super::devices::masked).unwrap_or_default(),
        "OfflinePushStat": {
            "OfflineStat": {
                "PushStatus": status,
                "ErrorCode": u8::from(!matches!(send.status, SendStatus::Accepted)),
                "ErrorInfo": send.reason,
                "Attempts": send.attempts,
                "EventTime": at_secs,
            }
        }
    })
}

/// `tagcast/account_pushes`: the window's pushes whose audience has the account, newest first
/// (at most `MAX_ACCOUNT_PUSHES`, among the window's newest `MAX_PUSHES_LOOKED_AT`), each with
/// what happened to it over the WebSocket.
pub async fn account_pushes(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let body = parse_object(ctx, body)?;
    let user = string(&body, "UserID")?;
    let window = window_of(&body)?;
    let account = account_of(ctx, &user).await?;
    let tasks = tasks_in(ctx, window).await?;
    let newest: Vec<&TaskMeta> = tasks.iter().rev().take(MAX_PUSHES_LOOKED_AT).collect();
    let seqs = newest.iter().map(|t| t.seq).collect();
    let reaching = ctx
        .store
        .tasks_reaching(ctx.app.sdkappid, seqs, account, MAX_ACCOUNT_PUSHES)
        .await
        .map_err(|e| ctx.internal(e))?;
    let mut pushes = Vec::with_capacity(reaching.len());
    for task in newest.iter().filter(|t| reaching.contains(&t.seq)) {
        let online = websocket_outcome(ctx, task, account).await?;
        pushes.push(json!({
            "TaskID": task.task_id,
            "TaskTime": task.created_ms / 1000,
            "Type": format!("{:?}", task.kind),
            "PushStatus": online.status,
            "DeliveredTime": online.delivered_at.unwrap_or(0),
            "CaughtUp": u8::from(online.caught_up),
        }));
    }
    let complete = looked_through_all(&tasks, &newest, &reaching);
    reply(json!({ "Pushes": pushes, "Complete": u8::from(complete) }))
}

/// Whether `account_pushes` looked through every task of the window: it looked at all of them
/// (no more than `MAX_PUSHES_LOOKED_AT`), and did not stop at `MAX_ACCOUNT_PUSHES` before the
/// last.
fn looked_through_all(tasks: &[TaskMeta], newest: &[&TaskMeta], reaching: &[u64]) -> bool {
    let stopped_early = reaching.len() == MAX_ACCOUNT_PUSHES
        && newest.last().map(|t| t.seq) != reaching.last().copied();
    newest.len() == tasks.len() && !stopped_early
}

/// The app's account named `user`.
async fn account_of(ctx: &Ctx<'_>, user: &str) -> Result<AccountId, ApiError> {
    let names = [user.to_string()];
    let ids = ctx
        .store
        .account_ids(ctx.app.sdkappid, &names)
        .await
        .map_err(|e| ctx.internal(e))?;
    ids[0].ok_or_else(|| not_found(user))
}

async fn in_audience(ctx: &Ctx<'_>, task: &TaskMeta, account: AccountId) -> Result<bool, ApiError> {
    let reaching = ctx
        .store
        .tasks_reaching(ctx.app.sdkappid, vec![task.seq], account, 1)
        .await
        .map_err(|e| ctx.internal(e))?;
    Ok(!reaching.is_empty())
}

/// What became of a push for one account of its audience over the WebSocket.
struct WebSocketOutcome {
    /// `Delivered`, `Revoked`, `Expired` or `Pending`.
    status: &'static str,
    /// The unix second it was delivered in.
    delivered_at: Option<u64>,
    /// It was delivered from the account's backlog when it connected, not when it was sent.
    caught_up: bool,
}

async fn websocket_outcome(
    ctx: &Ctx<'_>,
    task: &TaskMeta,
    account: AccountId,
) -> Result<WebSocketOutcome, ApiError> {
    let delivery = ctx
        .store
        .delivery_to(ctx.app.sdkappid, task.seq, account)
        .await
        .map_err(|e| ctx.internal(e))?;
    let delivered_at = delivery.map(|(second, _)| second);
    let status = match delivered_at {
        Some(_) => "Delivered",
        None if task.revoked_ms.is_some() => "Revoked",
        None if task.expires_ms <= crate::clock::now_ms() => "Expired",
        None => "Pending",
    };
    Ok(WebSocketOutcome {
        status,
        delivered_at,
        caught_up: delivery.is_some_and(|(_, caught_up)| caught_up),
    })
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
