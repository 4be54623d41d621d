//! The writes the API makes, each applied atomically inside the writer's shared transaction.

use std::collections::BTreeMap;

use tagcast_audience::Change;

use crate::devices::{AccountKind, account_kind};
use crate::tables::{ReadTables, Result, With};
use crate::tags::{account_tags, set_account_tags};
use crate::writer::WriteCtx;
use crate::{
    AccountId, AppId, AttrSchema, AttrSlot, ItemError, ItemResult, RequestError, Store, TagLimits,
};

/// What to do with the listed tags of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagEdit {
    /// Add them to the account's tags.
    Add,
    /// Make them the account's only tags.
    Replace,
    /// Remove them.
    Remove,
}

/// A slot to (re)name in `set_attr_names`; `account_type` None keeps the current one (0 if new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotUpdate {
    pub slot: u8,
    pub name: String,
    pub account_type: Option<u8>,
}

/// One account of a bulk load: its tags and its attribute values by slot.
#[derive(Debug, Clone, Default)]
pub struct BulkAccount {
    pub name: String,
    pub tags: Vec<String>,
    pub attrs: BTreeMap<u8, String>,
}

impl Store {
    /// Loads many accounts in one write (for data generators and migrations): each is imported,
    /// then given exactly `tags` and `attrs`, through the same code paths as the API, so the
    /// index and the tag bookkeeping stay exact. Returns per account the tag-limit result.
    pub async fn bulk_load(
        &self,
        app: AppId,
        accounts: Vec<BulkAccount>,
        limits: TagLimits,
    ) -> Result<Vec<ItemResult>> {
        let names = accounts.iter().map(|a| a.name.clone()).collect();
        self.writer
            .write_prefetched(
                "bulk_load",
                prefetch_names(app, names, With::ALL),
                move |ctx| {
                    let mut results = Vec::with_capacity(accounts.len());
                    for account in accounts {
                        let id = import_account(ctx, app, &account.name)?;
                        let tags = &account.tags;
                        results.push(set_account_tags(
                            ctx.tables,
                            app,
                            id,
                            tags,
                            &limits,
                            &mut ctx.changes.index,
                        )?);
                        write_account_attrs(ctx, app, id, account.attrs)?;
                    }
                    Ok(results)
                },
            )
            .await
    }

    /// Imports accounts; returns, for each, whether it was new. Importing twice is harmless.
    pub async fn import_accounts(&self, app: AppId, names: Vec<String>) -> Result<Vec<bool>> {
        let with = With::ID;
        self.for_each_account("import_accounts", app, names, with, |ctx, app, name| {
            let existed = ctx.tables.account_id(app, name)?.is_some();
            import_account(ctx, app, name)?;
            Ok(!existed)
        })
        .await
    }

    /// The account's id, importing it when it is new, as Tencent's login does (a WebSocket
    /// connection, a device registration). A known account costs one read, no write.
    pub async fn log_in(&self, app: AppId, name: &str) -> Result<AccountId> {
        let names = [name.to_string()];
        if let Some(id) = self.account_ids(app, &names).await?[0] {
            return Ok(id);
        }
        self.import_accounts(app, names.to_vec()).await?;
        self.account_ids(app, &names).await?[0].ok_or_else(|| {
            crate::StoreError::NotCommitted("the account was deleted while logging in".into())
        })
    }

    /// Deletes accounts with their tags and attributes; returns, for each, whether it existed.
    pub async fn delete_accounts(&self, app: AppId, names: Vec<String>) -> Result<Vec<bool>> {
        self.for_each_account("delete_accounts", app, names, With::ALL, delete_account)
            .await
    }

    async fn for_each_account(
        &self,
        op: &'static str,
        app: AppId,
        names: Vec<String>,
        with: With,
        write: fn(&mut WriteCtx<'_>, AppId, &str) -> Result<bool>,
    ) -> Result<Vec<bool>> {
        self.writer
            .write_prefetched(op, prefetch_names(app, names.clone(), with), move |ctx| {
                names.iter().map(|name| write(ctx, app, name)).collect()
            })
            .await
    }

    /// Adds, replaces or removes tags of each listed account.
    pub async fn edit_tags(
        &self,
        app: AppId,
        edit: TagEdit,
        items: Vec<(String, Vec<String>)>,
        limits: TagLimits,
    ) -> Result<Vec<ItemResult>> {
        let names: Vec<String> = items.iter().map(|(name, _)| name.clone()).collect();
        let tags: Vec<String> = items.iter().flat_map(|(_, t)| t).cloned().collect();
        let prefetch = move |t: &mut dyn ReadTables| {
            t.prefetch_accounts(app, &names, With::TAGS)?;
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            t.prefetch_tags(app, &tags)
        };
        self.writer
            .write_prefetched("edit_tags", prefetch, move |ctx| {
                items
                    .iter()
                    .map(|(name, tags)| edit_account_tags(ctx, app, name, edit, tags, &limits))
                    .collect()
            })
            .await
    }

    /// Removes every tag of each listed account.
    pub async fn clear_tags(
        &self,
        app: AppId,
        names: Vec<String>,
        limits: TagLimits,
    ) -> Result<Vec<ItemResult>> {
        let items = names.into_iter().map(|name| (name, Vec::new())).collect();
        self.edit_tags(app, TagEdit::Replace, items, limits).await
    }

    /// Names attribute slots, merging with the slots already named.
    pub async fn set_attr_names(
        &self,
        app: AppId,
        updates: Vec<SlotUpdate>,
    ) -> Result<Result<(), RequestError>> {
        self.writer
            .write("set_attr_names", move |ctx| {
                let current = ctx.tables.attr_schema(app)?;
                let merged = match merge_schema(current, &updates) {
                    Ok(schema) => schema,
                    Err(e) => return Ok(Err(e)),
                };
                ctx.tables.set_attr_schema(app, &merged)?;
                Ok(Ok(()))
            })
            .await
    }

    /// Sets attribute values (by name) of each listed account, keeping its other attributes.
    /// Every name must be defined for the app, or nothing is written.
    pub async fn set_attrs(
        &self,
        app: AppId,
        items: Vec<(String, BTreeMap<String, String>)>,
    ) -> Result<Result<Vec<ItemResult>, RequestError>> {
        let names = items.iter().map(|(name, _)| name.clone()).collect();
        self.writer
            .write_prefetched(
                "set_attrs",
                prefetch_names(app, names, With::ATTRS),
                move |ctx| {
                    let schema = ctx.tables.attr_schema(app)?;
                    if let Err(e) = check_names(&schema, items.iter().flat_map(|(_, a)| a.keys())) {
                        return Ok(Err(e));
                    }
                    let results = items
                        .iter()
                        .map(|(name, attrs)| set_account_attrs(ctx, &schema, app, name, attrs))
                        .collect::<Result<_, _>>()?;
                    Ok(Ok(results))
                },
            )
            .await
    }

    /// Removes the named attributes of each listed account. Every name must be defined for the
    /// app, or nothing is written.
    pub async fn remove_attrs(
        &self,
        app: AppId,
        items: Vec<(String, Vec<String>)>,
    ) -> Result<Result<Vec<ItemResult>, RequestError>> {
        let names = items.iter().map(|(name, _)| name.clone()).collect();
        self.writer
            .write_prefetched(
                "remove_attrs",
                prefetch_names(app, names, With::ATTRS),
                move |ctx| {
                    let schema = ctx.tables.attr_schema(app)?;
                    if let Err(e) = check_names(&schema, items.iter().flat_map(|(_, a)| a.iter())) {
                        return Ok(Err(e));
                    }
                    let results = items
                        .iter()
                        .map(|(name, attrs)| remove_account_attrs(ctx, &schema, app, name, attrs))
                        .collect::<Result<_, _>>()?;
                    Ok(Ok(results))
                },
            )
            .await
    }
}

/// A prefetch of the named accounts, `with` those of their records.
fn prefetch_names(
    app: AppId,
    names: Vec<String>,
    with: With,
) -> impl FnOnce(&mut dyn ReadTables) -> Result<()> + Send + 'static {
    move |t: &mut dyn ReadTables| t.prefetch_accounts(app, &names, with)
}

/// The account's id, importing it first if it does not exist.
pub(crate) fn import_account(ctx: &mut WriteCtx<'_>, app: AppId, name: &str) -> Result<AccountId> {
    if let Some(id) = ctx.tables.account_id(app, name)? {
        return Ok(id);
    }
    let mut counters = ctx.tables.app_counters(app)?;
    let id = counters.next_account;
    counters.next_account += 1;
    ctx.tables.set_app_counters(app, counters)?;
    ctx.tables.insert_account(app, id, name)?;
    ctx.record(app, Change::AccountAdded(id));
    Ok(id)
}

pub(crate) fn delete_account(ctx: &mut WriteCtx<'_>, app: AppId, name: &str) -> Result<bool> {
    let Some(id) = ctx.tables.account_id(app, name)? else {
        return Ok(false);
    };
    // Releasing tags never hits a limit, so the limits given here are never consulted.
    let no_limits = TagLimits {
        max_tags_per_account: usize::MAX,
        max_tags_per_app: usize::MAX,
    };
    let _ = set_account_tags(ctx.tables, app, id, &[], &no_limits, &mut ctx.changes.index)?;
    write_account_attrs(ctx, app, id, BTreeMap::new())?;
    for device in ctx.tables.account_devices(app, id)? {
        if let Some(device) = ctx.tables.device(app, &device)? {
            ctx.tables.remove_device(app, &device)?;
        }
    }
    ctx.tables.remove_account(app, id, name)?;
    ctx.record(app, Change::AccountRemoved(id));
    Ok(true)
}

fn edit_account_tags(
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    name: &str,
    edit: TagEdit,
    tags: &[String],
    limits: &TagLimits,
) -> Result<ItemResult> {
    let Some(id) = ctx.tables.account_id(app, name)? else {
        return Ok(Err(ItemError::AccountNotFound));
    };
    let target = match edit {
        TagEdit::Replace => tags.to_vec(),
        TagEdit::Add => {
            let mut target = account_tags(ctx.tables, app, id)?;
            target.extend_from_slice(tags);
            target
        }
        TagEdit::Remove => {
            let mut target = account_tags(ctx.tables, app, id)?;
            target.retain(|t| !tags.contains(t));
            target
        }
    };
    set_account_tags(ctx.tables, app, id, &target, limits, &mut ctx.changes.index)
}

fn merge_schema(
    mut schema: AttrSchema,
    updates: &[SlotUpdate],
) -> Result<AttrSchema, RequestError> {
    for update in updates {
        let current_type = schema.slots[update.slot as usize]
            .as_ref()
            .map(|s| s.account_type);
        let account_type = match (current_type, update.account_type) {
            (Some(current), Some(wanted)) if current != wanted => {
                return Err(RequestError::AttrTypeChange {
                    slot: update.slot,
                    current,
                });
            }
            (current, wanted) => wanted.or(current).unwrap_or(0),
        };
        schema.slots[update.slot as usize] = Some(AttrSlot {
            name: update.name.clone(),
            account_type,
        });
    }
    check_unique_names(&schema)?;
    Ok(schema)
}

fn check_unique_names(schema: &AttrSchema) -> Result<(), RequestError> {
    for (slot, attr) in schema.named() {
        if schema.slot_of(&attr.name) != Some(slot) {
            let first = schema.slot_of(&attr.name).unwrap_or(slot);
            return Err(RequestError::DuplicateAttrName {
                name: attr.name.clone(),
                slot: first,
            });
        }
    }
    Ok(())
}

fn check_names<'a>(
    schema: &AttrSchema,
    mut names: impl Iterator<Item = &'a String>,
) -> Result<(), RequestError> {
    match names.find(|name| schema.slot_of(name).is_none()) {
        Some(unknown) => Err(RequestError::UnknownAttribute(unknown.clone())),
        None => Ok(()),
    }
}

fn set_account_attrs(
    ctx: &mut WriteCtx<'_>,
    schema: &AttrSchema,
    app: AppId,
    name: &str,
    attrs: &BTreeMap<String, String>,
) -> Result<ItemResult> {
    let Some(id) = ctx.tables.account_id(app, name)? else {
        return Ok(Err(ItemError::AccountNotFound));
    };
    // A slot's values are for the accounts of its AttrTypes only.
    let kind = account_kind(ctx.tables, app, id, name)?;
    let other = attrs.keys().find_map(|attr| {
        let bound_to = slot_kind(schema, attr)?;
        (bound_to != kind).then_some((attr, bound_to))
    });
    if let Some((attr, bound_to)) = other {
        return Ok(Err(ItemError::AccountTypeMismatch {
            what: "attribute",
            name: attr.clone(),
            bound_to,
        }));
    }
    let mut values = ctx.tables.account_attrs(app, id)?;
    for (attr, value) in attrs {
        if let Some(slot) = schema.slot_of(attr) {
            values.insert(slot, value.clone());
        }
    }
    write_account_attrs(ctx, app, id, values)?;
    Ok(Ok(()))
}

fn remove_account_attrs(
    ctx: &mut WriteCtx<'_>,
    schema: &AttrSchema,
    app: AppId,
    name: &str,
    attrs: &[String],
) -> Result<ItemResult> {
    let Some(id) = ctx.tables.account_id(app, name)? else {
        return Ok(Err(ItemError::AccountNotFound));
    };
    let slots: Vec<u8> = attrs.iter().filter_map(|a| schema.slot_of(a)).collect();
    let mut values = ctx.tables.account_attrs(app, id)?;
    values.retain(|slot, _| !slots.contains(slot));
    write_account_attrs(ctx, app, id, values)?;
    Ok(Ok(()))
}

fn slot_kind(schema: &AttrSchema, attr: &str) -> Option<AccountKind> {
    let slot = schema.slot_of(attr)?;
    let slot = schema.slots[slot as usize].as_ref()?;
    Some(AccountKind::from_attr_type(slot.account_type))
}

/// Makes `values` the account's attributes, recording for the index what changed.
fn write_account_attrs(
    ctx: &mut WriteCtx<'_>,
    app: AppId,
    id: AccountId,
    values: BTreeMap<u8, String>,
) -> Result<()> {
    let old = ctx.tables.account_attrs(app, id)?;
    for (slot, old_value) in &old {
        if !values.contains_key(slot) {
            let change = Change::AttrRemoved {
                account: id,
                slot: *slot,
                old: old_value.clone(),
            };
            ctx.record(app, change);
        }
    }
    for (slot, value) in &values {
        let old_value = old.get(slot);
        if old_value != Some(value) {
            let change = Change::AttrSet {
                account: id,
                slot: *slot,
                old: old_value.cloned(),
                new: value.clone(),
            };
            ctx.record(app, change);
        }
    }
    ctx.tables.set_account_attrs(app, id, &values)
}
