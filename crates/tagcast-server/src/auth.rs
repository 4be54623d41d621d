//! Who is calling: the query parameters, the app, the UserSig and the admin check.

use std::collections::HashMap;

use percent_encoding::percent_decode_str;
use tagcast_proto::{ApiError, Code};

use crate::routes::Family;
use crate::state::{AppState, SharedState};

/// Finds the app named by `sdkappid` and checks that `identifier` is its admin with a valid
/// UserSig; returns the app and the admin.
pub fn authenticate<'a>(
    state: &'a SharedState,
    raw_query: Option<&str>,
    family: Family,
) -> Result<(&'a AppState, String), ApiError> {
    let (app, identifier) = authenticate_account(state, raw_query)?;
    if !app.admins.contains(&identifier) {
        return Err(ApiError::new(
            admin_code(family),
            format!("identifier '{identifier}' is not an App admin"),
        ));
    }
    Ok((app, identifier))
}

/// Finds the app named by `sdkappid` and checks the UserSig of `identifier`, any account of the
/// app; returns the app and the identifier.
pub fn authenticate_account<'a>(
    state: &'a SharedState,
    raw_query: Option<&str>,
) -> Result<(&'a AppState, String), ApiError> {
    let params = query_params(raw_query.unwrap_or(""));
    check_transport_params(&params)?;
    let sdkappid = params
        .get("sdkappid")
        .ok_or_else(|| ApiError::from(Code::SdkAppIdMissing))?;
    let sdkappid: u64 = sdkappid.parse().map_err(|_| {
        ApiError::new(
            Code::InvalidSdkAppId,
            format!("sdkappid '{sdkappid}' is not a number"),
        )
    })?;
    let app = state.apps.get(&sdkappid).ok_or_else(|| {
        ApiError::new(
            Code::SdkAppIdNotFound,
            format!("SDKAppID {sdkappid} not found"),
        )
    })?;
    let identifier = params.get("identifier").map(String::as_str).unwrap_or("");
    let usersig = params.get("usersig").map(String::as_str).unwrap_or("");
    tagcast_usersig::verify(
        usersig,
        sdkappid,
        identifier,
        &app.secret_key,
        crate::now_unix(),
    )
    .map_err(|e| ApiError::new(usersig_code(e.code()), e.to_string()))?;
    Ok((app, identifier.to_string()))
}

/// `contenttype` and `random`, which say nothing about the caller: each may be missing (some
/// clients leave them out), but one that is given must be what Tencent requires (60002).
fn check_transport_params(params: &HashMap<String, String>) -> Result<(), ApiError> {
    if let Some(content_type) = params.get("contenttype")
        && !content_type.eq_ignore_ascii_case("json")
    {
        return Err(ApiError::new(
            Code::HttpParse,
            format!(
                "contenttype must be json, got '{}'",
                crate::api::shown(content_type)
            ),
        ));
    }
    if let Some(random) = params.get("random")
        && !is_u32(random)
    {
        return Err(ApiError::new(
            Code::HttpParse,
            format!(
                "random must be an integer from 0 to 4294967295, got '{}'",
                crate::api::shown(random)
            ),
        ));
    }
    Ok(())
}

/// Decimal digits only (Rust's parser would also take a leading `+`), within u32.
fn is_u32(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok()
}

/// Query parameters, percent-decoded: some clients escape the UserSig.
pub(crate) fn query_params(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub(crate) fn usersig_code(number: u32) -> Code {
    Code::ALL
        .iter()
        .copied()
        .find(|c| c.number() == number)
        .unwrap_or(Code::UserSigInvalid)
}

/// Each family reports a non-admin caller with its own documented code.
fn admin_code(family: Family) -> Code {
    match family {
        Family::Account => Code::AccountAdminRequired,
        Family::TimPush | Family::AllMemberPush | Family::Tagcast => Code::AdminRequired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_percent_decoded() {
        let params =
            query_params("sdkappid=1&usersig=eJy%2A%2Dx_&identifier=admin&contenttype=json");
        assert_eq!(params["usersig"], "eJy*-x_");
        assert_eq!(params["identifier"], "admin");
        assert_eq!(params["sdkappid"], "1");
    }

    #[test]
    fn contenttype_and_random_may_be_missing_but_not_wrong() {
        let check = |query: &str| check_transport_params(&query_params(query)).map_err(|e| e.code);
        assert_eq!(check(""), Ok(()));
        assert_eq!(check("contenttype=json&random=0"), Ok(()));
        assert_eq!(check("contenttype=JSON&random=4294967295"), Ok(()));
        assert_eq!(check("random=007"), Ok(()));
        for bad in [
            "contenttype=xml",
            "contenttype=",
            "contenttype=json5",
            "random=abc",
            "random=",
            "random=-1",
            "random=+5",
            "random=4294967296",
            "random=1.5",
            "random=%201",
        ] {
            assert_eq!(check(bad), Err(Code::HttpParse), "{bad}");
        }
    }

    #[test]
    fn every_usersig_failure_maps_to_its_own_code() {
        for number in [70001, 70002, 70003, 70009, 70013, 70014] {
            assert_eq!(usersig_code(number).number(), number);
        }
    }
}
