//! Changing one account's tag list while keeping the per-app tag entries exact.

use std::collections::HashSet;

use tagcast_audience::Change;

use crate::devices::{AccountKind, account_kind};
use crate::tables::{Result, Tables, TagEntry};
use crate::{AccountId, AppId, ItemError, TagLimits};

/// The account's tags, in the order they were added.
pub(crate) fn account_tags(
    t: &mut dyn Tables,
    app: AppId,
    account: AccountId,
) -> Result<Vec<String>> {
    let ids = t.account_tag_ids(app, account)?;
    let mut names = Vec::with_capacity(ids.len());
    for id in ids {
        names.extend(t.tag_name(app, id)?);
    }
    Ok(names)
}

/// Makes `target` (deduplicated, order kept) the account's tag list. Checked against `limits`
/// only where the change grows something, so removals always succeed.
pub(crate) fn set_account_tags(
    t: &mut dyn Tables,
    app: AppId,
    account: AccountId,
    target: &[String],
    limits: &TagLimits,
    changes: &mut Vec<(AppId, Change)>,
) -> Result<Result<(), ItemError>> {
    let current = account_tags(t, app, account)?;
    let target = dedup(target);
    let current_set: HashSet<&str> = current.iter().map(String::as_str).collect();
    let target_set: HashSet<&str> = target.iter().copied().collect();
    let added: Vec<&str> = target
        .iter()
        .copied()
        .filter(|tag| !current_set.contains(tag))
        .collect();
    let removed: Vec<&str> = current
        .iter()
        .map(String::as_str)
        .filter(|tag| !target_set.contains(tag))
        .collect();
    if let Err(e) = check_limits(
        t,
        app,
        current.len(),
        target.len(),
        &added,
        &removed,
        limits,
    )? {
        return Ok(Err(e));
    }
    let kind = kind_of(t, app, account)?;
    if let Some(e) = bound_to_other_kind(t, app, kind, &added)? {
        return Ok(Err(e));
    }
    for tag in &removed {
        release_tag(t, app, tag)?;
        let tag = tag.to_string();
        changes.push((app, Change::TagRemoved { account, tag }));
    }
    for tag in &added {
        let tag = tag.to_string();
        changes.push((app, Change::TagAdded { account, tag }));
    }
    let mut ids = Vec::with_capacity(target.len());
    for tag in &target {
        let id = if current_set.contains(tag) {
            t.tag(app, tag)?.map(|entry| entry.id)
        } else {
            Some(acquire_tag(t, app, tag, kind)?)
        };
        ids.extend(id);
    }
    t.set_account_tag_ids(app, account, &ids)?;
    Ok(Ok(()))
}

fn check_limits(
    t: &mut dyn Tables,
    app: AppId,
    current_len: usize,
    target_len: usize,
    added: &[&str],
    removed: &[&str],
    limits: &TagLimits,
) -> Result<Result<(), ItemError>> {
    if target_len > current_len && target_len > limits.max_tags_per_account {
        return Ok(Err(ItemError::TooManyTagsForAccount {
            would_have: target_len,
            limit: limits.max_tags_per_account,
        }));
    }
    let mut created = 0;
    for tag in added {
        if t.tag(app, tag)?.is_none() {
            created += 1;
        }
    }
    if created == 0 {
        return Ok(Ok(()));
    }
    let mut freed = 0;
    for tag in removed {
        if t.tag(app, tag)?.is_some_and(|entry| entry.accounts <= 1) {
            freed += 1;
        }
    }
    let live = t.app_counters(app)?.live_tags as usize;
    if (live + created).saturating_sub(freed) > limits.max_tags_per_app {
        return Ok(Err(ItemError::TooManyTagsForApp {
            limit: limits.max_tags_per_app,
        }));
    }
    Ok(Ok(()))
}

fn kind_of(t: &mut dyn Tables, app: AppId, account: AccountId) -> Result<AccountKind> {
    let name = t.account_name(app, account)?.unwrap_or_default();
    account_kind(t, app, account, &name)
}

/// The 90035 of the first of `added` that accounts of the other kind have.
fn bound_to_other_kind(
    t: &mut dyn Tables,
    app: AppId,
    kind: AccountKind,
    added: &[&str],
) -> Result<Option<ItemError>> {
    for tag in added {
        let Some(entry) = t.tag(app, tag)? else {
            continue;
        };
        if entry.kind != kind {
            return Ok(Some(ItemError::AccountTypeMismatch {
                what: "tag",
                name: tag.to_string(),
                bound_to: entry.kind,
            }));
        }
    }
    Ok(None)
}

/// Counts one more account on `tag`, creating it (with a fresh id, bound to accounts of
/// `kind`) if no account had it.
fn acquire_tag(t: &mut dyn Tables, app: AppId, tag: &str, kind: AccountKind) -> Result<u32> {
    let entry = match t.tag(app, tag)? {
        Some(entry) => TagEntry {
            accounts: entry.accounts + 1,
            ..entry
        },
        None => {
            let mut counters = t.app_counters(app)?;
            let id = counters.next_tag;
            counters.next_tag += 1;
            counters.live_tags += 1;
            t.set_app_counters(app, counters)?;
            TagEntry {
                id,
                accounts: 1,
                kind,
            }
        }
    };
    t.put_tag(app, tag, entry)?;
    Ok(entry.id)
}

/// Counts one account less on `tag`, dropping it when none is left.
fn release_tag(t: &mut dyn Tables, app: AppId, tag: &str) -> Result<()> {
    let Some(entry) = t.tag(app, tag)? else {
        return Ok(());
    };
    if entry.accounts > 1 {
        let accounts = entry.accounts - 1;
        return t.put_tag(app, tag, TagEntry { accounts, ..entry });
    }
    t.remove_tag(app, tag, entry.id)?;
    let mut counters = t.app_counters(app)?;
    counters.live_tags = counters.live_tags.saturating_sub(1);
    t.set_app_counters(app, counters)
}

fn dedup(tags: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    tags.iter()
        .map(String::as_str)
        .filter(|tag| seen.insert(*tag))
        .collect()
}
