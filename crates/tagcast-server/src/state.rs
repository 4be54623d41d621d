//! What the handlers share: the apps with their keys, admins and rate limiters, the store, the
//! delivery hub and the transport limits.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tagcast_proto::{ApiError, Code};
use tagcast_store::{Store, TagLimits};

use crate::config::{AppConfig, HttpConfig, Limits, WsConfig};
use crate::delivery::Hub;
use crate::routes::Route;

pub struct AppState {
    pub sdkappid: u64,
    pub secret_key: String,
    pub admins: HashSet<String>,
    pub limits: Limits,
    pub push_enabled: bool,
    /// One token bucket per API, so a flood of one API never starves another.
    limiters: HashMap<&'static str, DefaultDirectRateLimiter>,
    /// Recalls have their own rate and code (90051).
    revokes: DefaultDirectRateLimiter,
}

impl AppState {
    pub fn new(config: &AppConfig) -> Self {
        let limiters = Route::all()
            .map(|route| {
                let rate = config
                    .limits
                    .api_calls_per_second_by_api
                    .get(route.name)
                    .copied()
                    .unwrap_or(config.limits.api_calls_per_second);
                let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN));
                (route.name, RateLimiter::direct(quota))
            })
            .collect();
        Self {
            sdkappid: config.sdkappid,
            secret_key: config.secret_key.clone(),
            admins: config.admins.iter().cloned().collect(),
            limits: config.limits.clone(),
            push_enabled: config.push_enabled,
            limiters,
            revokes: RateLimiter::direct(Quota::per_second(
                NonZeroU32::new(config.limits.revokes_per_second).unwrap_or(NonZeroU32::MIN),
            )),
        }
    }

    /// Takes one call of `route` from its bucket; false when the bucket is empty.
    pub fn admit(&self, route: &Route) -> bool {
        self.limiters
            .get(route.name)
            .is_none_or(|l| l.check().is_ok())
    }

    /// Takes one recall from the app's recall bucket; false when it is empty.
    pub fn admit_revoke(&self) -> bool {
        self.revokes.check().is_ok()
    }

    /// A UserID this app accepts: 1 to `account_id_bytes` bytes (70402 otherwise).
    pub fn check_user_id(&self, field: &str, id: &str) -> Result<(), ApiError> {
        let limit = self.limits.account_id_bytes;
        if id.is_empty() || id.len() > limit {
            return Err(ApiError::new(
                Code::InvalidParameters,
                format!(
                    "{field}: UserID '{}' must be 1 to {limit} bytes, got {}",
                    crate::api::shown(id),
                    id.len()
                ),
            ));
        }
        Ok(())
    }

    pub fn tag_limits(&self) -> TagLimits {
        TagLimits {
            max_tags_per_account: self.limits.tags_per_account,
            max_tags_per_app: self.limits.tags_per_app,
        }
    }
}

pub struct SharedState {
    pub apps: HashMap<u64, AppState>,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub http: HttpConfig,
    pub websocket: WsConfig,
}
