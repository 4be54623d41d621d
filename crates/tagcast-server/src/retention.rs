//! Ended pushes leave the store `[reports] keep_secs` after their lifetime ends, with every
//! record of theirs (audience, deliveries, catch-ups, fan-out, device answers): what would
//! otherwise grow with every push ever made, and slow the scans of tasks. The leading node
//! removes them; a push whose fan-out to devices is still going stays until it finishes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::state::SharedState;

/// Tasks removed in one write.
const BATCH: usize = 1000;
/// The longest wait between two rounds.
const MOST_EVERY: Duration = Duration::from_secs(3600);

/// Every round (half of `keep`, at least a second and at most an hour), while this node leads,
/// removes the pushes that ended more than `keep` ago. Stops when the server does.
pub async fn remove_ended_pushes(state: Weak<SharedState>, keep: Duration) {
    let every = (keep / 2).clamp(Duration::from_secs(1), MOST_EVERY);
    loop {
        tokio::time::sleep(every).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        if state.store.is_leader() {
            remove_round(&state, keep).await;
        }
    }
}

async fn remove_round(state: &Arc<SharedState>, keep: Duration) {
    let ended_before = crate::clock::now_ms().saturating_sub(keep.as_millis() as u64);
    loop {
        match state.store.prune_tasks(ended_before, BATCH).await {
            Ok(removed) => {
                crate::metrics::pushes_removed(removed);
                if removed > 0 {
                    tracing::info!(removed, "removed pushes ended more than keep_secs ago");
                }
                if removed < BATCH {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not remove ended pushes; next round retries");
                return;
            }
        }
    }
}
