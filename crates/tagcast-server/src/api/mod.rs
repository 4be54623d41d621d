//! The handlers of the REST API, one module per family of data.

mod accounts;
mod attrs;
mod audience;
mod devices;
mod push;
pub(crate) mod reports;
mod tags;
mod task_ids;

pub use audience::reach;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tagcast_proto::{ApiError, Code, Envelope, ErrorItem};
use tagcast_store::{ItemError, ItemResult, RequestError, Store, StoreError};

use crate::delivery::Hub;
use crate::routes::{Family, Op, Route};
use crate::state::AppState;

/// One authenticated request.
pub struct Ctx<'a> {
    pub app: &'a AppState,
    /// The caller: an admin, or an account on the routes it may call for itself.
    pub identifier: &'a str,
    pub is_admin: bool,
    pub route: Route,
    pub store: &'a Store,
    pub hub: &'a Arc<Hub>,
}

/// What a JSON value starting with `first` is, for anything but an object (and for bytes that
/// start no JSON value, None: the parser then explains the syntax error).
fn json_kind(first: u8) -> Option<&'static str> {
    match first {
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'n' => Some("null"),
        b't' | b'f' => Some("a boolean"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// A serialized OK response.
pub type Reply = Result<Vec<u8>, ApiError>;

/// Runs the API of `ctx.route` on `body`. A handler that panics is answered with the family's
/// internal-error code, like a storage failure, never with a dropped connection.
pub async fn dispatch(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    match AssertUnwindSafe(run(ctx, body)).catch_unwind().await {
        Ok(reply) => reply,
        Err(_) => {
            tracing::error!(api = ctx.route.name, "the handler panicked");
            Err(ApiError::new(
                ctx.internal_code(),
                "internal error, please retry: the request failed inside the server",
            ))
        }
    }
}

async fn run(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    match ctx.route.op {
        Op::AddTag => tags::add_tag(ctx, body).await,
        Op::RemoveTag => tags::remove_tag(ctx, body).await,
        Op::ClearAllTags => tags::clear_all_tags(ctx, body).await,
        Op::GetTag => tags::get_tag(ctx, body).await,
        Op::SetAttrName => attrs::set_attr_name(ctx, body).await,
        Op::GetAttrName => attrs::get_attr_name(ctx, body).await,
        Op::SetAttr => attrs::set_attr(ctx, body).await,
        Op::GetAttr => attrs::get_attr(ctx, body).await,
        Op::RemoveAttr => attrs::remove_attr(ctx, body).await,
        Op::AccountImport => accounts::account_import(ctx, body).await,
        Op::MultiAccountImport => accounts::multiaccount_import(ctx, body).await,
        Op::AccountDelete => accounts::account_delete(ctx, body).await,
        Op::AccountCheck => accounts::account_check(ctx, body).await,
        Op::Push => push::push(ctx, body).await,
        Op::Batch => push::batch(ctx, body).await,
        Op::Revoke => push::revoke(ctx, body).await,
        Op::Statistics => reports::statistics(ctx, body).await,
        Op::Trace => reports::trace(ctx, body).await,
        Op::Loss => reports::loss(ctx, body).await,
        Op::AccountPushes => reports::account_pushes(ctx, body).await,
        Op::AudienceCount => audience::audience_count(ctx, body).await,
        Op::DeviceRegister => devices::register(ctx, body).await,
        Op::DeviceUnregister => devices::unregister(ctx, body).await,
        Op::DeviceList => devices::list(ctx, body).await,
    }
}

impl Ctx<'_> {
    /// Parses the body, which must be a JSON object, as `T`; the error names the offending field.
    pub fn parse<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        // serde would also take a struct written as an array; Tencent's bodies are objects.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if let Some(found) = first.and_then(|b| json_kind(*b)) {
            return Err(ApiError::new(
                self.parse_error_code(),
                format!("invalid request body: expected a JSON object, got {found}"),
            ));
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(body);
        let value = serde_path_to_error::deserialize(&mut *deserializer).map_err(|e| {
            let path = e.path().to_string();
            let info = if path == "." {
                format!("invalid request body: {}", e.inner())
            } else {
                // A path into deep nesting is cut like any echoed value.
                format!("invalid request body at {}: {}", shown(&path), e.inner())
            };
            ApiError::new(self.parse_error_code(), info)
        })?;
        // Like `serde_json::from_slice`: only whitespace may follow the JSON value.
        deserializer.end().map_err(|e| {
            ApiError::new(
                self.parse_error_code(),
                format!("invalid request body: {e}"),
            )
        })?;
        // PostgreSQL's text cannot hold U+0000; refuse it on every backend alike, before any
        // write can fail the requests it is batched with.
        if has_escaped_nul(body) {
            return Err(ApiError::new(
                self.parse_error_code(),
                "invalid request body: strings may not contain U+0000",
            ));
        }
        Ok(value)
    }

    fn parse_error_code(&self) -> Code {
        match self.route.family {
            Family::Account => Code::RequestJsonParse,
            Family::TimPush | Family::AllMemberPush | Family::Tagcast => Code::JsonParse,
        }
    }

    /// A storage failure, reported with the family's internal-error code (91000, 70500): the
    /// request may be retried.
    pub fn internal(&self, error: StoreError) -> ApiError {
        tracing::error!(api = self.route.name, %error, "storage failure");
        ApiError::new(
            self.internal_code(),
            format!("internal error, please retry: {error}"),
        )
    }

    /// The family's internal-error code.
    pub fn internal_code(&self) -> Code {
        match self.route.family {
            Family::Account => Code::AccountInternal,
            Family::TimPush | Family::AllMemberPush | Family::Tagcast => Code::Internal,
        }
    }

    /// Refuses a request listing more accounts than the app allows (90018).
    pub fn check_account_count(&self, field: &str, count: usize) -> Result<(), ApiError> {
        let limit = self.app.limits.accounts_per_request;
        if count > limit {
            return Err(ApiError::new(
                Code::TooManyAccounts,
                format!("{field} has {count} accounts, more than the limit of {limit}"),
            ));
        }
        Ok(())
    }
}

/// Serializes an OK response with `body`'s fields after the envelope.
pub fn reply<T: Serialize>(body: T) -> Reply {
    serde_json::to_vec(&Envelope::ok(body))
        .map_err(|e| ApiError::new(Code::Internal, format!("cannot encode the response: {e}")))
}

/// Per-account outcome of a multi-account write, in request order.
type Checked<T> = Vec<(String, Result<T, ApiError>)>;

/// Writes the elements that passed validation with `write`, and returns the `ErrorList` of all
/// elements that failed, validation or write, in request order.
pub async fn write_valid<T, F, Fut>(
    elements: Checked<T>,
    write: F,
) -> Result<Vec<ErrorItem>, ApiError>
where
    F: FnOnce(Vec<(String, T)>) -> Fut,
    Fut: Future<Output = Result<Vec<ItemResult>, ApiError>>,
{
    let mut valid = Vec::new();
    let mut outcome: Vec<(String, Option<ApiError>)> = Vec::with_capacity(elements.len());
    for (account, checked) in elements {
        match checked {
            Ok(item) => {
                valid.push((account.clone(), item));
                outcome.push((account, None));
            }
            Err(e) => outcome.push((account, Some(e))),
        }
    }
    let mut written = write(valid).await?.into_iter();
    let mut errors = Vec::new();
    for (account, failed) in outcome {
        let error = match failed {
            Some(e) => Some(e),
            None => written
                .next()
                .and_then(Result::err)
                .map(|e| item_error(&account, e)),
        };
        errors.extend(error.map(|e| ErrorItem::new(account, e)));
    }
    Ok(errors)
}

/// Pairs each requested account with what was found for it: `entry` builds the found ones, the
/// others go to an `ErrorList` with 70107. Request order is kept.
pub fn split_found<T, E>(
    accounts: Vec<String>,
    found: Vec<Option<T>>,
    entry: impl Fn(String, T) -> E,
) -> (Vec<E>, Vec<ErrorItem>) {
    let mut entries = Vec::new();
    let mut error_list = Vec::new();
    for (account, value) in accounts.into_iter().zip(found) {
        match value {
            Some(value) => entries.push(entry(account, value)),
            None => error_list.push(ErrorItem::new(account.clone(), not_found(&account))),
        }
    }
    (entries, error_list)
}

/// The documented code for a per-account failure of the store.
pub fn item_error(account: &str, error: ItemError) -> ApiError {
    let code = match error {
        ItemError::AccountNotFound => return not_found(account),
        ItemError::TooManyTagsForAccount { .. } | ItemError::TooManyTagsForApp { .. } => {
            Code::TooManyTags
        }
        ItemError::AccountTypeMismatch { .. } => Code::AccountTypeMismatch,
    };
    ApiError::new(code, error.to_string())
}

/// The documented code for a whole request the store refused.
pub fn request_error(error: RequestError) -> ApiError {
    let code = match error {
        RequestError::OwnDeviceOnly(_) | RequestError::NameOfUserId(_) => Code::AccountTypeMismatch,
        RequestError::UnknownAttribute(_)
        | RequestError::DuplicateAttrName { .. }
        | RequestError::AttrTypeChange { .. } => Code::InvalidAttribute,
    };
    ApiError::new(code, error.to_string())
}

pub fn not_found(account: &str) -> ApiError {
    ApiError::new(
        Code::AccountNotFound,
        format!("account '{}' does not exist", shown(account)),
    )
}

/// Longest piece of a client's value echoed in an `ErrorInfo`.
const SHOWN_BYTES: usize = 64;

/// `value` as quoted in an `ErrorInfo`: cut to a readable length, so a 10 KB value is not echoed.
pub fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= SHOWN_BYTES {
        return value.into();
    }
    let end = (0..=SHOWN_BYTES)
        .rev()
        .find(|i| value.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}...", &value[..end]).into()
}

/// Whether the JSON text `body` has a string holding U+0000: valid JSON can only write it as the
/// escape `\u0000`, and a backslash outside a string is not valid JSON.
fn has_escaped_nul(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some(at) = rest.iter().position(|b| *b == b'\\') {
        let escape = &rest[at..];
        if escape[1..].starts_with(b"u0000") {
            return true;
        }
        // Skip the escaped character too, so `\\u0000` (a backslash, then text) is not one.
        rest = escape.get(2..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{has_escaped_nul, shown};

    #[test]
    fn only_an_escaped_nul_is_a_nul() {
        assert!(has_escaped_nul(br#"{"Tags":["a\u0000"]}"#));
        assert!(has_escaped_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\u0001\n"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\"}"#));
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        assert_eq!(shown("short"), "short");
        let long = "é".repeat(40);
        let cut = shown(&long);
        assert!(cut.ends_with("..."));
        assert_eq!(cut.len(), 64 + 3);
    }
}
