//! What the nodes sharing a store learn of each other's commits besides audience changes: tasks
//! created and revoked, and accounts logging in. A commit's events travel with it (in the change
//! log, on a shared engine) and reach the `Feed` when the index applies that commit, so every
//! node sees each app's events once, in commit order, its own included.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::{AccountId, AppId};

/// One event of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The task with this sequence number was created.
    TaskCreated(u64),
    /// The task with this sequence number was revoked.
    TaskRevoked(u64),
    /// The account connected in `session`: any earlier session of it, on any node, ends.
    Login { account: AccountId, session: u64 },
}

/// Events waiting for their consumer; beyond this they are dropped and the consumer is told to
/// read the state again instead.
const FEED_LIMIT: usize = 65_536;

/// The events applied so far and not yet taken, in order. Bounded: a consumer that falls too
/// far behind (or events lost to a rebuild of the index) is told with `Taken::missed`.
#[derive(Debug, Default)]
pub struct Feed {
    queue: Mutex<Queue>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<(AppId, Event)>,
    missed: bool,
}

/// What `Feed::take` returns.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Events were lost since the last take: the consumer must read the state again.
    pub missed: bool,
    pub events: Vec<(AppId, Event)>,
}

impl Feed {
    /// Every event waiting, oldest first.
    pub fn take(&self) -> Taken {
        let mut queue = self.lock();
        Taken {
            missed: std::mem::take(&mut queue.missed),
            events: queue.events.drain(..).collect(),
        }
    }

    /// Returns once there may be something to take.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(crate) fn push(&self, app: AppId, events: impl IntoIterator<Item = Event>) {
        let mut queue = self.lock();
        let before = queue.events.len();
        queue
            .events
            .extend(events.into_iter().map(|event| (app, event)));
        if queue.events.len() > FEED_LIMIT {
            queue.events.clear();
            queue.missed = true;
        }
        if queue.events.len() != before || queue.missed {
            drop(queue);
            self.wake.notify_one();
        }
    }

    /// Events were lost (the index was rebuilt from the records).
    pub(crate) fn missed(&self) {
        let mut queue = self.lock();
        queue.events.clear();
        queue.missed = true;
        drop(queue);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_order_and_once() {
        let feed = Feed::default();
        feed.push(1, [Event::TaskCreated(1), Event::TaskRevoked(1)]);
        feed.push(2, [Event::TaskCreated(7)]);
        let taken = feed.take();
        assert!(!taken.missed);
        assert_eq!(
            taken.events,
            vec![
                (1, Event::TaskCreated(1)),
                (1, Event::TaskRevoked(1)),
                (2, Event::TaskCreated(7))
            ]
        );
        assert_eq!(feed.take(), Taken::default());
    }

    #[test]
    fn a_feed_nobody_takes_stays_bounded_and_says_it_lost_events() {
        let feed = Feed::default();
        for seq in 0..(FEED_LIMIT as u64 + 10) {
            feed.push(1, [Event::TaskCreated(seq)]);
        }
        let taken = feed.take();
        assert!(taken.missed);
        assert!(taken.events.len() < FEED_LIMIT);
        feed.push(1, [Event::TaskCreated(1)]);
        let taken = feed.take();
        assert!(!taken.missed);
        assert_eq!(taken.events, vec![(1, Event::TaskCreated(1))]);
    }
}
