//! What the handlers share: the apps with their keys, admins and rate limiters, the store, the
//! delivery hub and the transport limits.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tagcast_proto::{ApiError, Code};
use tagcast_store::{Store, TagLimits};

use crate::config::{AppConfig, HttpConfig, Limits, WsConfig};
use crate::delivery::{Hub, Notifier, Providers};
use crate::routes::Route;
use crate::sync::{read, write};

pub struct AppState {
    pub sdkappid: u64,
    pub secret_key: String,
    pub admins: HashSet<String>,
    pub limits: Limits,
    pub push_enabled: bool,
    /// This node's share of the app's rates.
    buckets: RwLock<Buckets>,
    /// What reaches the app's devices while it is closed.
    pub providers: Providers,
}

/// The token buckets of one app on this node: each rate split evenly over the live nodes.
struct Buckets {
    nodes: u32,
    /// One per API, so a flood of one API never starves another.
    limiters: HashMap<&'static str, DefaultDirectRateLimiter>,
    /// Recalls have their own rate and code (90051).
    revokes: DefaultDirectRateLimiter,
}

impl Buckets {
    fn new(limits: &Limits, nodes: u32) -> Self {
        let limiters = Route::all()
            .map(|route| {
                let rate = limits
                    .api_calls_per_second_by_api
                    .get(route.name)
                    .copied()
                    .unwrap_or(limits.api_calls_per_second);
                (route.name, RateLimiter::direct(share(rate, nodes)))
            })
            .collect();
        Self {
            nodes,
            limiters,
            revokes: RateLimiter::direct(share(limits.revokes_per_second, nodes)),
        }
    }
}

/// One node's share of `per_second` among `nodes`: a token every `nodes / per_second` seconds,
/// bursts of the share (at least one call).
fn share(per_second: u32, nodes: u32) -> Quota {
    let per_second = per_second.max(1);
    let nodes = nodes.max(1);
    let period = Duration::from_secs_f64(f64::from(nodes) / f64::from(per_second));
    let burst = NonZeroU32::new(per_second / nodes).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

impl AppState {
    /// The app of `config`, its provider credentials loaded (an error names the config key).
    pub fn load(config: &AppConfig) -> Result<Self, String> {
        Ok(Self {
            providers: Providers::load(config)?,
            ..Self::new(config)
        })
    }

    /// The app of `config`, without push providers.
    pub fn new(config: &AppConfig) -> Self {
        Self {
            providers: Providers::default(),
            sdkappid: config.sdkappid,
            secret_key: config.secret_key.clone(),
            admins: config.admins.iter().cloned().collect(),
            limits: config.limits.clone(),
            push_enabled: config.push_enabled,
            buckets: RwLock::new(Buckets::new(&config.limits, 1)),
        }
    }

    /// Splits the app's rates over `nodes` live nodes (buckets start full again when the
    /// number changes).
    pub fn share_with(&self, nodes: usize) {
        let nodes = u32::try_from(nodes).unwrap_or(u32::MAX).max(1);
        if read(&self.buckets).nodes != nodes {
            *write(&self.buckets) = Buckets::new(&self.limits, nodes);
        }
    }

    /// Takes one call of `route` from its bucket; false when the bucket is empty.
    pub fn admit(&self, route: &Route) -> bool {
        read(&self.buckets)
            .limiters
            .get(route.name)
            .is_none_or(|l| l.check().is_ok())
    }

    /// Takes one recall from the app's recall bucket; false when it is empty.
    pub fn admit_revoke(&self) -> bool {
        read(&self.buckets).revokes.check().is_ok()
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
    /// Sends the pushes' device notifications while this node leads; stops when dropped.
    pub _notifier: Notifier,
    pub http: HttpConfig,
    pub websocket: WsConfig,
    /// The web console, unless `[console] enabled = false`.
    pub console: Option<crate::console::Console>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted_in_a_burst(quota: Quota) -> u32 {
        let limiter = RateLimiter::direct(quota);
        (0..1000).take_while(|_| limiter.check().is_ok()).count() as u32
    }

    #[test]
    fn each_node_gets_an_even_share_of_a_rate_and_at_least_one_call() {
        assert_eq!(admitted_in_a_burst(share(100, 1)), 100);
        assert_eq!(admitted_in_a_burst(share(100, 3)), 33);
        assert_eq!(admitted_in_a_burst(share(1, 3)), 1);
        assert_eq!(
            share(100, 4).replenish_interval(),
            Duration::from_millis(40)
        );
        assert_eq!(share(1, 3).replenish_interval(), Duration::from_secs(3));
        // Zero nodes (never reported) counts as this one alone.
        assert_eq!(admitted_in_a_burst(share(10, 0)), 10);
    }
}
