//! Reads, each on its own consistent snapshot; they never wait for the writer, and run on the
//! blocking pool (see `Store::read`).

use std::collections::BTreeMap;

use crate::tables::{ReadTables, Result, With};
use crate::{AccountId, AppId, AttrSchema, Store};

impl Store {
    /// Each account's tags in the order added, or None for an account that does not exist.
    pub async fn get_tags(&self, app: AppId, names: &[String]) -> Result<Vec<Option<Vec<String>>>> {
        let names = names.to_vec();
        self.read("get_tags", move |t| {
            per_account(t, app, &names, With::TAGS, |t, id| {
                let ids = t.account_tag_ids(app, id)?;
                let mut tags = Vec::with_capacity(ids.len());
                for tag in ids {
                    tags.extend(t.tag_name(app, tag)?);
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
    ) -> Result<Vec<Option<BTreeMap<String, String>>>> {
        let names = names.to_vec();
        self.read("get_attrs", move |t| {
            let schema = t.attr_schema(app)?;
            per_account(t, app, &names, With::ATTRS, |t, id| {
                Ok(t.account_attrs(app, id)?
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
    pub async fn attr_schema(&self, app: AppId) -> Result<AttrSchema> {
        self.read("attr_schema", move |t| t.attr_schema(app)).await
    }

    /// Each account's id, or None for an account that does not exist.
    pub async fn account_ids(
        &self,
        app: AppId,
        names: &[String],
    ) -> Result<Vec<Option<AccountId>>> {
        let names = names.to_vec();
        self.read("account_ids", move |t| {
            t.prefetch_accounts(app, &names, With::ID)?;
            names.iter().map(|name| t.account_id(app, name)).collect()
        })
        .await
    }

    /// Each account id's name, or None for an id no account has.
    pub async fn account_names(
        &self,
        app: AppId,
        ids: &[AccountId],
    ) -> Result<Vec<Option<String>>> {
        let ids = ids.to_vec();
        self.read("account_names", move |t| {
            ids.iter().map(|id| t.account_name(app, *id)).collect()
        })
        .await
    }
}

/// `read` of each named account that exists, None for the others, in order.
fn per_account<T>(
    t: &mut dyn ReadTables,
    app: AppId,
    names: &[String],
    with: With,
    mut read: impl FnMut(&mut dyn ReadTables, AccountId) -> Result<T>,
) -> Result<Vec<Option<T>>> {
    t.prefetch_accounts(app, names, with)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let value = match t.account_id(app, name)? {
            Some(id) => Some(read(t, id)?),
            None => None,
        };
        out.push(value);
    }
    Ok(out)
}
