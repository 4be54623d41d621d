//! Reads, each on its own consistent snapshot; they never wait for the writer, and run on the
//! blocking pool (see `Store::read`).

use std::collections::BTreeMap;

use redb::ReadTransaction;

use crate::codec::{decode_attrs, decode_schema, decode_tag_ids};
use crate::schema::{
    ACCOUNT_ATTRS, ACCOUNT_NAMES, ACCOUNT_TAGS, ACCOUNTS, ATTR_SCHEMAS, TAG_NAMES,
};
use crate::{AccountId, AppId, AttrSchema, Store, StoreError};

impl Store {
    /// Each account's tags in the order added, or None for an account that does not exist.
    pub async fn get_tags(
        &self,
        app: AppId,
        names: &[String],
    ) -> Result<Vec<Option<Vec<String>>>, StoreError> {
        let names = names.to_vec();
        self.read("get_tags", move |txn| {
            let account_tags = txn.open_table(ACCOUNT_TAGS)?;
            let tag_names = txn.open_table(TAG_NAMES)?;
            per_account(txn, app, &names, |id| {
                let ids = match account_tags.get((app, id))? {
                    Some(g) => decode_tag_ids(g.value())
                        .map_err(|e| e.at("account tag list", (app, id)))?,
                    None => Vec::new(),
                };
                let mut tags = Vec::with_capacity(ids.len());
                for tag in ids {
                    tags.extend(tag_names.get((app, tag))?.map(|g| g.value().to_string()));
                }
                Ok(tags)
            })
        })
        .await
    }

    /// Each account's attributes by name, or None for an account that does not exist.
    pub async fn get_attrs(
        &self,
        app: AppId,
        names: &[String],
    ) -> Result<Vec<Option<BTreeMap<String, String>>>, StoreError> {
        let names = names.to_vec();
        self.read("get_attrs", move |txn| {
            let schema = schema_in(txn, app)?;
            let account_attrs = txn.open_table(ACCOUNT_ATTRS)?;
            per_account(txn, app, &names, |id| {
                let values = match account_attrs.get((app, id))? {
                    Some(g) => decode_attrs(g.value())
                        .map_err(|e| e.at("account attributes", (app, id)))?,
                    None => Vec::new(),
                };
                Ok(values
                    .into_iter()
                    .filter_map(|(slot, value)| {
                        let attr = schema.slots.get(slot as usize)?.as_ref()?;
                        Some((attr.name.clone(), value))
                    })
                    .collect())
            })
        })
        .await
    }

    /// The app's attribute slots.
    pub async fn attr_schema(&self, app: AppId) -> Result<AttrSchema, StoreError> {
        self.read("attr_schema", move |txn| schema_in(txn, app))
            .await
    }

    /// Each account's id, or None for an account that does not exist.
    pub async fn account_ids(
        &self,
        app: AppId,
        names: &[String],
    ) -> Result<Vec<Option<AccountId>>, StoreError> {
        let names = names.to_vec();
        self.read("account_ids", move |txn| {
            let accounts = txn.open_table(ACCOUNTS)?;
            names
                .iter()
                .map(|name| Ok(accounts.get((app, name.as_str()))?.map(|g| g.value())))
                .collect()
        })
        .await
    }

    /// Each account id's name, or None for an id no account has.
    pub async fn account_names(
        &self,
        app: AppId,
        ids: &[AccountId],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let ids = ids.to_vec();
        self.read("account_names", move |txn| {
            let names = txn.open_table(ACCOUNT_NAMES)?;
            ids.iter()
                .map(|id| Ok(names.get((app, *id))?.map(|g| g.value().to_string())))
                .collect()
        })
        .await
    }
}

/// `read` of each named account that exists, None for the others, in order.
fn per_account<T>(
    txn: &ReadTransaction,
    app: AppId,
    names: &[String],
    mut read: impl FnMut(AccountId) -> Result<T, StoreError>,
) -> Result<Vec<Option<T>>, StoreError> {
    let accounts = txn.open_table(ACCOUNTS)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let id = accounts.get((app, name.as_str()))?.map(|g| g.value());
        out.push(id.map(&mut read).transpose()?);
    }
    Ok(out)
}

fn schema_in(txn: &ReadTransaction, app: AppId) -> Result<AttrSchema, StoreError> {
    let table = txn.open_table(ATTR_SCHEMAS)?;
    match table.get(app)? {
        Some(g) => decode_schema(g.value()).map_err(|e| e.at("attribute schema", app)),
        None => Ok(AttrSchema::default()),
    }
}
