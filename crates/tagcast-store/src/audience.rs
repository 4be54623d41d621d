//! The audience index of every app, kept exact from the engine's ordered changes and rebuilt
//! from its records at open.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use tagcast_audience::{AppIndex, AppIndexBuilder};

use crate::AppId;
use crate::engine::Changes;
use crate::events::Feed;

/// One app's index, and the position in the app's change log it reflects (engines without a
/// change log leave it 0).
#[derive(Debug, Default)]
struct AppState {
    index: AppIndex,
    position: u64,
}

/// All apps' indexes. Readers evaluate under a shared lock; the writer applies each committed
/// batch's changes under the exclusive lock, before answering its callers. The events of each
/// commit applied enter `feed` under the same lock, so they come out in commit order and once.
#[derive(Debug, Default)]
pub(crate) struct Audiences {
    apps: RwLock<HashMap<AppId, AppState>>,
    feed: Feed,
}

/// A commit's changes reached the index ahead of log order (an earlier commit, perhaps
/// another node's, is not applied yet): the index must be brought level with the log
/// (`Engine::resync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfOrder {
    pub app: AppId,
    pub applied: u64,
    pub position: u64,
}

impl Audiences {
    pub fn read<R>(&self, app: AppId, f: impl FnOnce(&AppIndex) -> R) -> R {
        let apps = self
            .apps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match apps.get(&app) {
            Some(state) => f(&state.index),
            None => f(&AppIndex::default()),
        }
    }

    /// Accounts over all apps.
    pub fn account_count(&self) -> u64 {
        let apps = self
            .apps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        apps.values()
            .map(|state| state.index.accounts().len())
            .sum()
    }

    /// The change-log position each app's index reflects.
    pub fn positions(&self) -> HashMap<AppId, u64> {
        let apps = self
            .apps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        apps.iter().map(|(app, s)| (*app, s.position)).collect()
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Takes the indexes of `rebuilt`; the events between are lost.
    pub fn replace(&self, rebuilt: Audiences) {
        let rebuilt = rebuilt
            .apps
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *self
            .apps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = rebuilt;
        self.feed.missed();
    }

    /// Applies one commit's changes and passes on its events; `positions` are the log positions
    /// it took, per app (empty for an engine without a change log). An app's changes are
    /// applied only if its position follows the one applied last: one already applied (the
    /// log's follower got there first) is skipped, one further ahead is refused, and the first
    /// such gap is returned.
    pub fn apply(&self, changes: &Changes, positions: &[(AppId, u64)]) -> Result<(), OutOfOrder> {
        if changes.is_empty() && positions.is_empty() {
            return Ok(());
        }
        let mut apps = self
            .apps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut gap = None;
        let mut held_back = HashSet::new();
        for &(app, position) in positions {
            let applied = apps.get(&app).map_or(0, |state| state.position);
            if position != applied + 1 {
                held_back.insert(app);
            }
            if position > applied + 1 {
                gap.get_or_insert(OutOfOrder {
                    app,
                    applied,
                    position,
                });
            }
        }
        for (app, change) in &changes.index {
            if !held_back.contains(app) {
                apps.entry(*app).or_default().index.apply(change);
            }
        }
        for (app, event) in &changes.events {
            if !held_back.contains(app) {
                self.feed.push(*app, [*event]);
            }
        }
        for &(app, position) in positions {
            if !held_back.contains(&app) {
                apps.entry(app).or_default().position = position;
            }
        }
        gap.map_or(Ok(()), Err)
    }
}

/// The records an index is rebuilt from, gathered by an engine (in parts, possibly on several
/// threads, then merged).
#[derive(Default)]
pub(crate) struct IndexParts {
    builders: HashMap<AppId, AppIndexBuilder>,
    tag_names: HashMap<(AppId, u32), String>,
    positions: HashMap<AppId, u64>,
}

impl IndexParts {
    pub fn account(&mut self, app: AppId, account: u32) {
        self.builders.entry(app).or_default().account(account);
    }

    pub fn tag(&mut self, app: AppId, account: u32, tag: u32) {
        self.builders.entry(app).or_default().tag(account, tag);
    }

    pub fn attr(&mut self, app: AppId, account: u32, slot: u8, value: &str) {
        self.builders
            .entry(app)
            .or_default()
            .attr(account, slot, value);
    }

    pub fn tag_name(&mut self, app: AppId, tag: u32, name: String) {
        self.tag_names.insert((app, tag), name);
    }

    /// The change-log position the records were read at.
    pub fn position(&mut self, app: AppId, position: u64) {
        self.positions.insert(app, position);
    }

    /// Does the sorting `finish` would do (see `AppIndexBuilder::compact`), on this thread.
    pub fn compact(&mut self) {
        self.builders
            .values_mut()
            .for_each(AppIndexBuilder::compact);
    }

    pub fn merge(&mut self, other: IndexParts) {
        for (app, builder) in other.builders {
            self.builders.entry(app).or_default().merge(builder);
        }
        self.tag_names.extend(other.tag_names);
        self.positions.extend(other.positions);
    }

    pub fn finish(self) -> Audiences {
        let IndexParts {
            builders,
            tag_names,
            mut positions,
        } = self;
        let mut apps: HashMap<AppId, AppState> = builders
            .into_iter()
            .map(|(app, builder)| {
                let index = builder.finish(|id| tag_names.get(&(app, id)).cloned());
                let position = positions.remove(&app).unwrap_or(0);
                (app, AppState { index, position })
            })
            .collect();
        for (app, position) in positions {
            apps.entry(app).or_default().position = position;
        }
        Audiences {
            apps: RwLock::new(apps),
            feed: Feed::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use tagcast_audience::Change;

    /// A commit tagging `account` in app 7, with an event numbered after it.
    fn tagged(account: u32) -> Changes {
        let tag = "t".to_string();
        Changes {
            index: vec![
                (7, Change::AccountAdded(account)),
                (7, Change::TagAdded { account, tag }),
            ],
            events: vec![(7, Event::TaskCreated(account.into()))],
        }
    }

    /// The events the feed passed on, as their task numbers.
    fn fed(audiences: &Audiences) -> Vec<u64> {
        let taken = audiences.feed().take();
        assert!(!taken.missed);
        taken
            .events
            .into_iter()
            .map(|(_, event)| match event {
                Event::TaskCreated(seq) => seq,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn tagged_count(audiences: &Audiences) -> u64 {
        audiences.read(7, |index| index.accounts().len())
    }

    #[test]
    fn changes_apply_in_log_order_only() {
        let audiences = Audiences::default();
        audiences.apply(&tagged(1), &[(7, 1)]).unwrap();
        audiences.apply(&tagged(2), &[(7, 2)]).unwrap();
        // Position 3 is missing: 4 is refused and not applied.
        let gap = audiences.apply(&tagged(4), &[(7, 4)]).unwrap_err();
        assert_eq!(
            gap,
            OutOfOrder {
                app: 7,
                applied: 2,
                position: 4
            }
        );
        assert_eq!(tagged_count(&audiences), 2);
        // A replay of an applied position is skipped (no double apply).
        audiences.apply(&tagged(9), &[(7, 2)]).unwrap();
        assert_eq!(tagged_count(&audiences), 2);
        audiences.apply(&tagged(3), &[(7, 3)]).unwrap();
        assert_eq!(audiences.positions()[&7], 3);
        assert_eq!(tagged_count(&audiences), 3);
        // An engine without a log passes no positions: always applied.
        audiences.apply(&tagged(5), &[]).unwrap();
        assert_eq!(tagged_count(&audiences), 4);
        // Each applied commit's events were passed on once, in order; the others were not.
        assert_eq!(fed(&audiences), vec![1, 2, 3, 5]);
    }

    #[test]
    fn a_gap_in_one_app_holds_back_only_that_apps_changes() {
        let audiences = Audiences::default();
        let mut changes = tagged(1);
        changes.index.push((8, Change::AccountAdded(1)));
        changes.index.push((9, Change::AccountAdded(1)));
        changes.events.push((8, Event::TaskCreated(8)));
        // App 7 follows its log, apps 8 and 9 are both ahead of theirs.
        let gap = audiences
            .apply(&changes, &[(7, 1), (8, 3), (9, 2)])
            .unwrap_err();
        assert_eq!(gap.app, 8);
        assert_eq!(tagged_count(&audiences), 1);
        assert_eq!(audiences.read(8, |i| i.accounts().len()), 0);
        assert_eq!(audiences.read(9, |i| i.accounts().len()), 0);
        assert_eq!(audiences.positions(), HashMap::from([(7, 1)]));
        assert_eq!(fed(&audiences), vec![1]);
    }

    #[test]
    fn a_rebuild_starts_at_the_positions_it_was_read_at() {
        let mut parts = IndexParts::default();
        parts.account(7, 1);
        parts.position(7, 41);
        parts.position(8, 5);
        let audiences = parts.finish();
        assert_eq!(audiences.positions(), HashMap::from([(7, 41), (8, 5)]));
        audiences.apply(&tagged(2), &[(7, 42)]).unwrap();
        assert_eq!(tagged_count(&audiences), 2);
    }

    #[test]
    fn a_rebuild_tells_the_feed_its_events_were_missed() {
        let audiences = Audiences::default();
        audiences.apply(&tagged(1), &[(7, 1)]).unwrap();
        audiences.replace(IndexParts::default().finish());
        let taken = audiences.feed().take();
        assert!(taken.missed);
        assert!(taken.events.is_empty());
    }
}
