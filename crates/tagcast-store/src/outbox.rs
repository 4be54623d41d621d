//! The callback outbox: batches of callback events are stored in the transaction that records
//! their deliveries, so none is lost with the node that made them; the leader sends them,
//! retries those the app refused, and settles each once sent or given up on. Delivery to the app
//! is at least once: a batch sent just before its sender died is sent again by the next leader.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::tables::{Callback, Result};
use crate::{AppId, Store};

/// Most batches an app's outbox holds (100 events each); new ones are dropped beyond it, so an
/// app whose endpoint is down cannot fill the store.
pub const MAX_CALLBACK_BATCHES: u64 = 1_000;

/// A batch waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackBatch {
    pub app: AppId,
    pub id: u64,
    pub callback: Callback,
}

/// What became of a batch after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Sent, or given up on: it leaves the outbox.
    Done,
    /// Refused or failed: tried again at `next_attempt_ms`.
    Retry { next_attempt_ms: u64 },
}

/// Queues `bodies` in the outbox within a write; returns the positions of those dropped
/// because their app's outbox was full.
pub(crate) fn queue(
    t: &mut dyn crate::tables::Tables,
    bodies: Vec<(AppId, String)>,
    now_ms: u64,
) -> Result<Vec<usize>> {
    let mut room: HashMap<AppId, u64> = HashMap::new();
    let mut dropped = Vec::new();
    for (i, (app, body)) in bodies.into_iter().enumerate() {
        let room = match room.entry(app) {
            Entry::Occupied(room) => room.into_mut(),
            Entry::Vacant(entry) => {
                entry.insert(MAX_CALLBACK_BATCHES.saturating_sub(t.callback_count(app)?))
            }
        };
        if *room == 0 {
            dropped.push(i);
            continue;
        }
        *room -= 1;
        let callback = Callback {
            body,
            attempts: 0,
            next_attempt_ms: now_ms,
        };
        t.put_callback(app, rand::random(), &callback)?;
    }
    Ok(dropped)
}

impl Store {
    /// Up to `limit` batches due at `now_ms`, the longest due first.
    pub async fn due_callbacks(&self, now_ms: u64, limit: usize) -> Result<Vec<CallbackBatch>> {
        let due = self.read("due_callbacks", move |t| t.callbacks_due(now_ms, limit));
        Ok(due
            .await?
            .into_iter()
            .map(|(app, id, callback)| CallbackBatch { app, id, callback })
            .collect())
    }

    /// Records the outcome of attempts, counting each retried one as an attempt more.
    pub async fn settle_callbacks(&self, outcomes: Vec<(AppId, u64, Settled)>) -> Result<()> {
        self.writer
            .write("settle_callbacks", move |ctx| {
                for (app, id, settled) in outcomes {
                    match settled {
                        Settled::Done => ctx.tables.remove_callback(app, id)?,
                        Settled::Retry { next_attempt_ms } => {
                            // Gone if another leader settled it meanwhile.
                            if let Some(mut callback) = ctx.tables.callback(app, id)? {
                                callback.attempts += 1;
                                callback.next_attempt_ms = next_attempt_ms;
                                ctx.tables.put_callback(app, id, &callback)?;
                            }
                        }
                    }
                }
                Ok(())
            })
            .await
    }
}
