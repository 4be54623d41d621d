//! One app's bitmaps and the evaluation of expressions over them.

use std::borrow::Cow;
use std::collections::HashMap;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use crate::expr::{Cmp, Expr};

const SLOTS: usize = 10;

/// A change to stored data, applied to the index once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AccountAdded(u32),
    /// The account's tags and attributes are reported removed separately.
    AccountRemoved(u32),
    TagAdded {
        account: u32,
        tag: String,
    },
    TagRemoved {
        account: u32,
        tag: String,
    },
    AttrSet {
        account: u32,
        slot: u8,
        old: Option<String>,
        new: String,
    },
    AttrRemoved {
        account: u32,
        slot: u8,
        old: String,
    },
}

/// The bitmaps of one app.
#[derive(Debug, Default, Clone)]
pub struct AppIndex {
    all: RoaringBitmap,
    tags: HashMap<String, RoaringBitmap>,
    attrs: [HashMap<String, RoaringBitmap>; SLOTS],
}

impl AppIndex {
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::AccountAdded(id) => {
                self.all.insert(*id);
            }
            Change::AccountRemoved(id) => {
                self.all.remove(*id);
            }
            Change::TagAdded { account, tag } => {
                self.tags.entry(tag.clone()).or_default().insert(*account);
            }
            Change::TagRemoved { account, tag } => remove_from(&mut self.tags, tag, *account),
            Change::AttrSet {
                account,
                slot,
                old,
                new,
            } => {
                let Some(values) = self.attrs.get_mut(*slot as usize) else {
                    return;
                };
                if let Some(old) = old {
                    remove_from(values, old, *account);
                }
                values.entry(new.clone()).or_default().insert(*account);
            }
            Change::AttrRemoved { account, slot, old } => {
                if let Some(values) = self.attrs.get_mut(*slot as usize) {
                    remove_from(values, old, *account);
                }
            }
        }
    }

    /// Every account of the app.
    pub fn accounts(&self) -> &RoaringBitmap {
        &self.all
    }

    /// Number of distinct tags with at least one account.
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// Approximate heap bytes held by the bitmaps (serialized size, which tracks memory closely).
    pub fn bitmap_bytes(&self) -> usize {
        let attrs = self.attrs.iter().flat_map(|slot| slot.values());
        std::iter::once(&self.all)
            .chain(self.tags.values())
            .chain(attrs)
            .map(RoaringBitmap::serialized_size)
            .sum()
    }

    /// The accounts `expr` selects.
    pub fn evaluate(&self, expr: &Expr) -> RoaringBitmap {
        self.eval(expr).into_owned()
    }

    /// How many accounts `expr` selects, without building the set where a shortcut exists.
    pub fn count(&self, expr: &Expr) -> u64 {
        if let Some(values) = self.value_sets(expr) {
            // An account has one value per slot: the value sets are disjoint, so sizes add up.
            return values.iter().map(|accounts| accounts.len()).sum();
        }
        match expr {
            Expr::Not(inner) => self.all.len() - self.eval(inner).intersection_len(&self.all),
            Expr::And(parts) if parts.len() == 2 => {
                let (a, b) = (&parts[0], &parts[1]);
                match (a, b) {
                    (_, Expr::Not(neg)) => self.eval(a).difference_len(&self.eval(neg)),
                    (Expr::Not(neg), _) => self.eval(b).difference_len(&self.eval(neg)),
                    _ => self.intersection_count(a, b),
                }
            }
            Expr::Or(parts) if parts.len() == 2 => {
                self.eval(&parts[0]).union_len(&self.eval(&parts[1]))
            }
            _ => self.eval(expr).len(),
        }
    }

    fn eval(&self, expr: &Expr) -> Cow<'_, RoaringBitmap> {
        match expr {
            Expr::All => Cow::Borrowed(&self.all),
            Expr::Tag(tag) => self.bitmap(self.tags.get(tag)),
            Expr::AttrEq { slot, value } => self.bitmap(
                self.attrs
                    .get(*slot as usize)
                    .and_then(|values| values.get(value)),
            ),
            Expr::AttrExists { slot } => Cow::Owned(self.union_of_values(*slot, |_| true)),
            Expr::AttrCmp { slot, cmp } => {
                Cow::Owned(self.union_of_values(*slot, |value| numeric_match(value, cmp)))
            }
            Expr::And(parts) => self.eval_and(parts),
            Expr::Or(parts) => {
                let mut out = RoaringBitmap::new();
                for part in parts {
                    out |= self.eval(part).as_ref();
                }
                Cow::Owned(out)
            }
            Expr::Not(inner) => Cow::Owned(&self.all - self.eval(inner).as_ref()),
        }
    }

    /// Intersects the positive parts, smallest first, then subtracts the negated ones.
    fn eval_and(&self, parts: &[Expr]) -> Cow<'_, RoaringBitmap> {
        let (negated, positive): (Vec<&Expr>, Vec<&Expr>) =
            parts.iter().partition(|p| matches!(p, Expr::Not(_)));
        let mut sets: Vec<Cow<'_, RoaringBitmap>> = positive.iter().map(|p| self.eval(p)).collect();
        sets.sort_by_key(|s| s.len());
        let mut sets = sets.into_iter();
        let mut out = match sets.next() {
            Some(first) if negated.is_empty() && sets.len() == 0 => return first,
            Some(first) => first.into_owned(),
            None => self.all.clone(),
        };
        for set in sets {
            if out.is_empty() {
                break;
            }
            out &= set.as_ref();
        }
        for neg in negated {
            if let Expr::Not(inner) = neg {
                out -= self.eval(inner).as_ref();
            }
        }
        Cow::Owned(out)
    }

    fn bitmap<'a>(&'a self, found: Option<&'a RoaringBitmap>) -> Cow<'a, RoaringBitmap> {
        found.map_or_else(|| Cow::Owned(RoaringBitmap::new()), Cow::Borrowed)
    }

    /// |a AND b|, summing over the value sets of an attribute comparison instead of first
    /// building their union.
    fn intersection_count(&self, a: &Expr, b: &Expr) -> u64 {
        match (self.value_sets(a), self.value_sets(b)) {
            (Some(sets), _) => {
                let other = self.eval(b);
                sets.iter().map(|s| s.intersection_len(&other)).sum()
            }
            (None, Some(sets)) => {
                let other = self.eval(a);
                sets.iter().map(|s| s.intersection_len(&other)).sum()
            }
            (None, None) => self.eval(a).intersection_len(&self.eval(b)),
        }
    }

    /// The (disjoint) sets of accounts per matching value, for the attribute expressions that
    /// are unions of values.
    fn value_sets(&self, expr: &Expr) -> Option<Vec<&RoaringBitmap>> {
        match expr {
            Expr::AttrExists { slot } => Some(self.matching_values(*slot, |_| true).collect()),
            Expr::AttrCmp { slot, cmp } => Some(
                self.matching_values(*slot, |v| numeric_match(v, cmp))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn matching_values(
        &self,
        slot: u8,
        keep: impl Fn(&str) -> bool,
    ) -> impl Iterator<Item = &RoaringBitmap> {
        self.attrs
            .get(slot as usize)
            .into_iter()
            .flatten()
            .filter(move |(value, _)| keep(value))
            .map(|(_, accounts)| accounts)
    }

    fn union_of_values(&self, slot: u8, keep: impl Fn(&str) -> bool) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for accounts in self.matching_values(slot, keep) {
            out |= accounts;
        }
        out
    }
}

/// A value compares as the number it spells; other values never match.
fn numeric_match(value: &str, cmp: &Cmp) -> bool {
    value.parse::<f64>().is_ok_and(|v| cmp.matches(v))
}

fn remove_from(map: &mut HashMap<String, RoaringBitmap>, key: &str, account: u32) {
    if let Some(bitmap) = map.get_mut(key) {
        bitmap.remove(account);
        if bitmap.is_empty() {
            map.remove(key);
        }
    }
}

/// Builds an app's index from a scan of the store, without a string allocation per entry.
/// Accounts in ascending id order (a redb scan) are appended in O(1); others (a PostgreSQL
/// heap scan) are collected and sorted once at the end, rather than inserted one by one.
///
/// Builders of separate scans (say, tags on one thread and attributes on another) combine with
/// `merge`.
#[derive(Default)]
pub struct AppIndexBuilder {
    all: Collected,
    /// Indexed by tag id: ids are small and dense within an app.
    tags_by_id: Vec<Collected>,
    attrs: [FxHashMap<String, Collected>; SLOTS],
}

/// The accounts of one bitmap while it is built: those that came in order, and the rest.
#[derive(Default)]
struct Collected {
    ordered: RoaringBitmap,
    unordered: Vec<u32>,
}

impl Collected {
    fn of(account: u32) -> Self {
        let mut collected = Self::default();
        collected.add(account);
        collected
    }

    fn add(&mut self, account: u32) {
        if self.ordered.try_push(account).is_err() {
            self.unordered.push(account);
        }
    }

    fn merge(&mut self, other: Collected) {
        self.ordered |= other.ordered;
        self.unordered.extend(other.unordered);
    }

    fn is_empty(&self) -> bool {
        self.ordered.is_empty() && self.unordered.is_empty()
    }

    fn compact(&mut self) {
        if self.unordered.is_empty() {
            return;
        }
        let mut unordered = std::mem::take(&mut self.unordered);
        unordered.sort_unstable();
        unordered.dedup();
        // Sorted and deduplicated just above, so this cannot fail.
        if let Ok(rest) = RoaringBitmap::from_sorted_iter(unordered) {
            self.ordered |= rest;
        }
    }

    fn finish(mut self) -> RoaringBitmap {
        self.compact();
        self.ordered
    }
}

impl AppIndexBuilder {
    pub fn account(&mut self, account: u32) {
        self.all.add(account);
    }

    pub fn tag(&mut self, account: u32, tag_id: u32) {
        let id = tag_id as usize;
        if id >= self.tags_by_id.len() {
            self.tags_by_id.resize_with(id + 1, Collected::default);
        }
        self.tags_by_id[id].add(account);
    }

    pub fn attr(&mut self, account: u32, slot: u8, value: &str) {
        let Some(values) = self.attrs.get_mut(slot as usize) else {
            return;
        };
        match values.get_mut(value) {
            Some(collected) => collected.add(account),
            None => {
                values.insert(value.to_string(), Collected::of(account));
            }
        }
    }

    /// Sorts what came out of order into the bitmaps now, so that builders filled on several
    /// threads do that work there, each for its own part, before they are merged.
    pub fn compact(&mut self) {
        let attrs = self.attrs.iter_mut().flat_map(|values| values.values_mut());
        for collected in std::iter::once(&mut self.all)
            .chain(self.tags_by_id.iter_mut())
            .chain(attrs)
        {
            collected.compact();
        }
    }

    /// Adds what `other` collected.
    pub fn merge(&mut self, other: AppIndexBuilder) {
        self.all.merge(other.all);
        if other.tags_by_id.len() > self.tags_by_id.len() {
            self.tags_by_id
                .resize_with(other.tags_by_id.len(), Collected::default);
        }
        for (mine, theirs) in self.tags_by_id.iter_mut().zip(other.tags_by_id) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.attrs.iter_mut().zip(other.attrs) {
            for (value, accounts) in theirs {
                mine.entry(value).or_default().merge(accounts);
            }
        }
    }

    /// The index, with tag ids turned into names; ids without a name or account are dropped.
    pub fn finish(self, tag_name: impl Fn(u32) -> Option<String>) -> AppIndex {
        let tags = self
            .tags_by_id
            .into_iter()
            .enumerate()
            .filter(|(_, collected)| !collected.is_empty())
            .filter_map(|(id, collected)| Some((tag_name(id as u32)?, collected.finish())))
            .collect();
        let attrs = self.attrs.map(|values| {
            values
                .into_iter()
                .map(|(value, collected)| (value, collected.finish()))
                .collect()
        });
        AppIndex {
            all: self.all.finish(),
            tags,
            attrs,
        }
    }
}
