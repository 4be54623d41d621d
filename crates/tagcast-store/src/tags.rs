//! Changing one account's tag list while keeping the per-app tag table exact.

use std::collections::HashSet;

use redb::{ReadableTable, Table};
use tagcast_audience::Change;

use crate::codec::{decode_tag_ids, encode_tag_ids};
use crate::schema::{ACCOUNT_TAGS, APPS, TAG_NAMES, TAGS};
use crate::{AccountId, AppId, ItemError, StoreError, TagLimits};

/// The tables a tag write touches, opened once per write.
pub(crate) struct TagTables<'txn> {
    pub apps: Table<'txn, AppId, (u32, u32, u32)>,
    pub account_tags: Table<'txn, (AppId, AccountId), &'static [u8]>,
    pub tags: Table<'txn, (AppId, &'static str), (u32, u32)>,
    pub tag_names: Table<'txn, (AppId, u32), &'static str>,
}

impl<'txn> TagTables<'txn> {
    pub fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            apps: txn.open_table(APPS)?,
            account_tags: txn.open_table(ACCOUNT_TAGS)?,
            tags: txn.open_table(TAGS)?,
            tag_names: txn.open_table(TAG_NAMES)?,
        })
    }

    /// The account's tags, in the order they were added.
    pub fn account_tags(&self, app: AppId, account: AccountId) -> Result<Vec<String>, StoreError> {
        let ids = match self.account_tags.get((app, account))? {
            Some(bytes) => decode_tag_ids(bytes.value())
                .map_err(|e| e.at("account tag list", (app, account)))?,
            None => return Ok(Vec::new()),
        };
        let mut names = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(name) = self.tag_names.get((app, id))? {
                names.push(name.value().to_string());
            }
        }
        Ok(names)
    }

    /// Makes `target` (deduplicated, order kept) the account's tag list. Checked against
    /// `limits` only where the change grows something, so removals always succeed.
    pub fn set_account_tags(
        &mut self,
        app: AppId,
        account: AccountId,
        target: &[String],
        limits: &TagLimits,
        changes: &mut Vec<(AppId, Change)>,
    ) -> Result<Result<(), ItemError>, StoreError> {
        let current = self.account_tags(app, account)?;
        let target = dedup(target);
        let current_set: HashSet<&str> = current.iter().map(String::as_str).collect();
        let target_set: HashSet<&str> = target.iter().copied().collect();
        let added: Vec<&str> = target
            .iter()
            .copied()
            .filter(|t| !current_set.contains(t))
            .collect();
        let removed: Vec<&str> = current
            .iter()
            .map(String::as_str)
            .filter(|t| !target_set.contains(t))
            .collect();
        if let Err(e) =
            self.check_limits(app, current.len(), target.len(), &added, &removed, limits)?
        {
            return Ok(Err(e));
        }
        for tag in &removed {
            self.release_tag(app, tag)?;
            changes.push((
                app,
                Change::TagRemoved {
                    account,
                    tag: tag.to_string(),
                },
            ));
        }
        for tag in &added {
            changes.push((
                app,
                Change::TagAdded {
                    account,
                    tag: tag.to_string(),
                },
            ));
        }
        let mut ids = Vec::with_capacity(target.len());
        for tag in &target {
            let id = if current_set.contains(tag) {
                self.tag_id(app, tag)?
            } else {
                self.acquire_tag(app, tag)?
            };
            ids.extend(id);
        }
        self.write_ids(app, account, &ids)?;
        Ok(Ok(()))
    }

    fn check_limits(
        &self,
        app: AppId,
        current_len: usize,
        target_len: usize,
        added: &[&str],
        removed: &[&str],
        limits: &TagLimits,
    ) -> Result<Result<(), ItemError>, StoreError> {
        if target_len > current_len && target_len > limits.max_tags_per_account {
            return Ok(Err(ItemError::TooManyTagsForAccount {
                would_have: target_len,
                limit: limits.max_tags_per_account,
            }));
        }
        let mut created = 0;
        for tag in added {
            if self.tags.get((app, *tag))?.is_none() {
                created += 1;
            }
        }
        if created == 0 {
            return Ok(Ok(()));
        }
        let mut freed = 0;
        for tag in removed {
            if self
                .tags
                .get((app, *tag))?
                .is_some_and(|g| g.value().1 <= 1)
            {
                freed += 1;
            }
        }
        let live = self.apps.get(app)?.map_or(0, |g| g.value().2) as usize;
        if (live + created).saturating_sub(freed) > limits.max_tags_per_app {
            return Ok(Err(ItemError::TooManyTagsForApp {
                limit: limits.max_tags_per_app,
            }));
        }
        Ok(Ok(()))
    }

    fn tag_id(&self, app: AppId, tag: &str) -> Result<Option<u32>, StoreError> {
        Ok(self.tags.get((app, tag))?.map(|g| g.value().0))
    }

    /// Counts one more account on `tag`, creating it (with a fresh id) if no account had it.
    fn acquire_tag(&mut self, app: AppId, tag: &str) -> Result<Option<u32>, StoreError> {
        let existing = self.tags.get((app, tag))?.map(|g| g.value());
        let (id, count) = match existing {
            Some(entry) => entry,
            None => {
                let (next_account, next_tag, live) =
                    self.apps.get(app)?.map_or((0, 0, 0), |g| g.value());
                self.apps
                    .insert(app, (next_account, next_tag + 1, live + 1))?;
                self.tag_names.insert((app, next_tag), tag)?;
                (next_tag, 0)
            }
        };
        self.tags.insert((app, tag), (id, count + 1))?;
        Ok(Some(id))
    }

    /// Counts one account less on `tag`, dropping it when none is left.
    fn release_tag(&mut self, app: AppId, tag: &str) -> Result<(), StoreError> {
        let Some((id, count)) = self.tags.get((app, tag))?.map(|g| g.value()) else {
            return Ok(());
        };
        if count > 1 {
            self.tags.insert((app, tag), (id, count - 1))?;
            return Ok(());
        }
        self.tags.remove((app, tag))?;
        self.tag_names.remove((app, id))?;
        let counters = self.apps.get(app)?.map(|g| g.value());
        if let Some((next_account, next_tag, live)) = counters {
            self.apps
                .insert(app, (next_account, next_tag, live.saturating_sub(1)))?;
        }
        Ok(())
    }

    fn write_ids(&mut self, app: AppId, account: AccountId, ids: &[u32]) -> Result<(), StoreError> {
        if ids.is_empty() {
            self.account_tags.remove((app, account))?;
        } else {
            self.account_tags
                .insert((app, account), encode_tag_ids(ids).as_slice())?;
        }
        Ok(())
    }
}

fn dedup(tags: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    tags.iter()
        .map(String::as_str)
        .filter(|t| seen.insert(*t))
        .collect()
}
