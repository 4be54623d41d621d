//! The audience index of every app, kept exact by the writer and rebuilt from the tables at open.

use std::collections::HashMap;
use std::sync::RwLock;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};
use tagcast_audience::{AppIndex, AppIndexBuilder, Change};

use crate::codec::{attrs_in, tag_ids_in};
use crate::schema::{ACCOUNT_ATTRS, ACCOUNT_NAMES, ACCOUNT_TAGS, TAG_NAMES};
use crate::{AppId, StoreError};

/// All apps' indexes. Readers evaluate under a shared lock; the writer applies each committed
/// batch's changes under the exclusive lock, before answering its callers.
#[derive(Debug, Default)]
pub(crate) struct Audiences {
    apps: RwLock<HashMap<AppId, AppIndex>>,
}

impl Audiences {
    pub fn read<R>(&self, app: AppId, f: impl FnOnce(&AppIndex) -> R) -> R {
        let apps = self
            .apps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match apps.get(&app) {
            Some(index) => f(index),
            None => f(&AppIndex::default()),
        }
    }

    /// Accounts over all apps.
    pub fn account_count(&self) -> u64 {
        let apps = self
            .apps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        apps.values().map(|index| index.accounts().len()).sum()
    }

    /// Takes the indexes of `rebuilt` (after the writer reopened the database).
    pub fn replace(&self, rebuilt: Audiences) {
        let rebuilt = rebuilt
            .apps
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *self
            .apps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = rebuilt;
    }

    pub fn apply(&self, changes: &[(AppId, Change)]) {
        if changes.is_empty() {
            return;
        }
        let mut apps = self
            .apps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (app, change) in changes {
            apps.entry(*app).or_default().apply(change);
        }
    }

    /// Builds every app's index from the tables: accounts and tags on one thread, attributes on
    /// another, each on its own snapshot of the same committed state.
    pub fn rebuild(db: &Database) -> Result<Self, StoreError> {
        let txn = db.begin_read()?;
        let (tags, attrs) = std::thread::scope(|scope| {
            let attrs = scope.spawn(|| scan_attrs(&txn));
            (scan_accounts_and_tags(&txn), attrs.join())
        });
        let mut builders = tags?;
        let attrs = attrs
            .map_err(|_| StoreError::Interrupted("the index rebuild thread panicked".into()))??;
        for (app, builder) in attrs {
            builders.entry(app).or_default().merge(builder);
        }
        let mut tag_names: HashMap<(AppId, u32), String> = HashMap::new();
        for entry in txn.open_table(TAG_NAMES)?.iter()? {
            let (key, name) = entry?;
            tag_names.insert(key.value(), name.value().to_string());
        }
        let apps = builders
            .into_iter()
            .map(|(app, builder)| {
                let index = builder.finish(|id| tag_names.get(&(app, id)).cloned());
                (app, index)
            })
            .collect();
        Ok(Self {
            apps: RwLock::new(apps),
        })
    }
}

type Builders = HashMap<AppId, AppIndexBuilder>;

fn scan_accounts_and_tags(txn: &ReadTransaction) -> Result<Builders, StoreError> {
    let mut builders = Builders::new();
    for entry in txn.open_table(ACCOUNT_NAMES)?.iter()? {
        let (key, _) = entry?;
        let (app, account) = key.value();
        builders.entry(app).or_default().account(account);
    }
    for entry in txn.open_table(ACCOUNT_TAGS)?.iter()? {
        let (key, tags) = entry?;
        let (app, account) = key.value();
        let builder = builders.entry(app).or_default();
        let ids = tag_ids_in(tags.value()).map_err(|e| e.at("account tag list", (app, account)))?;
        for tag in ids {
            builder.tag(account, tag);
        }
    }
    Ok(builders)
}

fn scan_attrs(txn: &ReadTransaction) -> Result<Builders, StoreError> {
    let mut builders = Builders::new();
    for entry in txn.open_table(ACCOUNT_ATTRS)?.iter()? {
        let (key, attrs) = entry?;
        let (app, account) = key.value();
        let builder = builders.entry(app).or_default();
        for attr in attrs_in(attrs.value()) {
            let (slot, value) = attr.map_err(|e| e.at("account attributes", (app, account)))?;
            builder.attr(account, slot, value);
        }
    }
    Ok(builders)
}
