//! Table layout, and each app's attribute names.
//!
//! Every key starts with the app id, so no lookup can cross from one app into another.

use redb::{Database, TableDefinition};

use crate::{AccountId, AppId, StoreError};

/// Per app: (next account id, next tag id, number of distinct tags in use).
pub(crate) const APPS: TableDefinition<AppId, (u32, u32, u32)> = TableDefinition::new("apps");
/// (app, account name) -> account id.
pub(crate) const ACCOUNTS: TableDefinition<(AppId, &str), AccountId> =
    TableDefinition::new("accounts");
/// (app, account id) -> account name.
pub(crate) const ACCOUNT_NAMES: TableDefinition<(AppId, AccountId), &str> =
    TableDefinition::new("account_names");
/// (app, account id) -> the account's tag ids, in the order they were added (see `codec`).
pub(crate) const ACCOUNT_TAGS: TableDefinition<(AppId, AccountId), &[u8]> =
    TableDefinition::new("account_tags");
/// (app, account id) -> the account's attribute values by slot (see `codec`).
pub(crate) const ACCOUNT_ATTRS: TableDefinition<(AppId, AccountId), &[u8]> =
    TableDefinition::new("account_attrs");
/// (app, tag) -> (tag id, number of accounts that have it).
pub(crate) const TAGS: TableDefinition<(AppId, &str), (u32, u32)> = TableDefinition::new("tags");
/// (app, tag id) -> tag.
pub(crate) const TAG_NAMES: TableDefinition<(AppId, u32), &str> = TableDefinition::new("tag_names");
/// app -> the app's attribute slots (see `codec`).
pub(crate) const ATTR_SCHEMAS: TableDefinition<AppId, &[u8]> = TableDefinition::new("attr_schemas");

/// Creates every table, so readers never meet a missing one.
pub(crate) fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(APPS)?;
    txn.open_table(ACCOUNTS)?;
    txn.open_table(ACCOUNT_NAMES)?;
    txn.open_table(ACCOUNT_TAGS)?;
    txn.open_table(ACCOUNT_ATTRS)?;
    txn.open_table(TAGS)?;
    txn.open_table(TAG_NAMES)?;
    txn.open_table(ATTR_SCHEMAS)?;
    txn.commit()?;
    Ok(())
}

/// Number of attribute slots an app has (`"0"`..`"9"`).
pub const ATTR_SLOTS: usize = 10;

/// One named attribute slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSlot {
    pub name: String,
    /// 0 = UserID accounts, 1 = RegistrationID accounts.
    pub account_type: u8,
}

/// An app's attribute slots, by slot index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrSchema {
    pub slots: [Option<AttrSlot>; ATTR_SLOTS],
}

impl AttrSchema {
    /// The slot index holding attribute `name`.
    pub fn slot_of(&self, name: &str) -> Option<u8> {
        self.slots
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|s| s.name == name))
            .map(|i| i as u8)
    }

    /// The named slots as (index, slot).
    pub fn named(&self) -> impl Iterator<Item = (u8, &AttrSlot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.as_ref().map(|s| (i as u8, s)))
    }
}
