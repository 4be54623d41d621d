//! The audience index kept by the writer always equals the index rebuilt from disk, and both
//! equal a model of the accounts' tags and attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use tagcast_audience::{AppIndex, Expr};
use tagcast_store::{AppId, SlotUpdate, Store, TagEdit, TagLimits};

const APPS: [AppId; 2] = [7, 8];
const ACCOUNTS: &[&str] = &["a", "b", "c", "d"];
const TAGS: &[&str] = &["t0", "t1", "t2", "t3"];
const VALUES: &[&str] = &["x", "y"];
const ATTRS: &[&str] = &["city", "age"];
const LIMITS: TagLimits = TagLimits {
    max_tags_per_account: 100,
    max_tags_per_app: 1000,
};

#[derive(Debug, Clone)]
enum Op {
    Import(usize, usize),
    Delete(usize, usize),
    Tags(usize, usize, TagEdit, Vec<usize>),
    SetAttr(usize, usize, usize, usize),
    RemoveAttr(usize, usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let app = 0..APPS.len();
    let account = 0..ACCOUNTS.len();
    let edit = prop_oneof![
        Just(TagEdit::Add),
        Just(TagEdit::Replace),
        Just(TagEdit::Remove)
    ];
    prop_oneof![
        (app.clone(), account.clone()).prop_map(|(p, a)| Op::Import(p, a)),
        (app.clone(), account.clone()).prop_map(|(p, a)| Op::Delete(p, a)),
        (
            app.clone(),
            account.clone(),
            edit,
            proptest::collection::vec(0..TAGS.len(), 0..3)
        )
            .prop_map(|(p, a, e, t)| Op::Tags(p, a, e, t)),
        (
            app.clone(),
            account.clone(),
            0..ATTRS.len(),
            0..VALUES.len()
        )
            .prop_map(|(p, a, n, v)| Op::SetAttr(p, a, n, v)),
        (app, account, 0..ATTRS.len()).prop_map(|(p, a, n)| Op::RemoveAttr(p, a, n)),
    ]
}

/// Per app, per account: (tags, attribute slot -> value).
type Model = BTreeMap<(usize, usize), (BTreeSet<usize>, BTreeMap<u8, usize>)>;

fn apply_model(model: &mut Model, op: &Op) {
    match op {
        Op::Import(p, a) => {
            model.entry((*p, *a)).or_default();
        }
        Op::Delete(p, a) => {
            model.remove(&(*p, *a));
        }
        Op::Tags(p, a, edit, tags) => {
            if let Some((have, _)) = model.get_mut(&(*p, *a)) {
                match edit {
                    TagEdit::Add => have.extend(tags),
                    TagEdit::Replace => *have = tags.iter().copied().collect(),
                    TagEdit::Remove => have.retain(|t| !tags.contains(t)),
                }
            }
        }
        Op::SetAttr(p, a, n, v) => {
            if let Some((_, attrs)) = model.get_mut(&(*p, *a)) {
                attrs.insert(*n as u8, *v);
            }
        }
        Op::RemoveAttr(p, a, n) => {
            if let Some((_, attrs)) = model.get_mut(&(*p, *a)) {
                attrs.remove(&(*n as u8));
            }
        }
    }
}

async fn apply_store(store: &Store, op: &Op) {
    let name = |a: &usize| vec![ACCOUNTS[*a].to_string()];
    match op {
        Op::Import(p, a) => drop(store.import_accounts(APPS[*p], name(a)).await.unwrap()),
        Op::Delete(p, a) => drop(store.delete_accounts(APPS[*p], name(a)).await.unwrap()),
        Op::Tags(p, a, edit, tags) => {
            let tags = tags.iter().map(|t| TAGS[*t].to_string()).collect();
            let items = vec![(ACCOUNTS[*a].to_string(), tags)];
            store
                .edit_tags(APPS[*p], *edit, items, LIMITS)
                .await
                .unwrap();
        }
        Op::SetAttr(p, a, n, v) => {
            let attrs = BTreeMap::from([(ATTRS[*n].to_string(), VALUES[*v].to_string())]);
            let items = vec![(ACCOUNTS[*a].to_string(), attrs)];
            store.set_attrs(APPS[*p], items).await.unwrap().unwrap();
        }
        Op::RemoveAttr(p, a, n) => {
            let items = vec![(ACCOUNTS[*a].to_string(), vec![ATTRS[*n].to_string()])];
            store.remove_attrs(APPS[*p], items).await.unwrap().unwrap();
        }
    }
}

/// Names (as store ids are not known to the model) of the accounts `expr` selects.
async fn selected(store: &Store, app: AppId, expr: &Expr) -> BTreeSet<String> {
    let ids: Vec<u32> = store.with_audience(app, |index: &AppIndex| {
        index.evaluate(expr).iter().collect()
    });
    let names = store.account_names(app, &ids).await.unwrap();
    names.into_iter().flatten().collect()
}

fn expected(
    model: &Model,
    p: usize,
    keep: impl Fn(&(BTreeSet<usize>, BTreeMap<u8, usize>)) -> bool,
) -> BTreeSet<String> {
    model
        .iter()
        .filter(|((app, _), data)| *app == p && keep(data))
        .map(|((_, a), _)| ACCOUNTS[*a].to_string())
        .collect()
}

async fn check(store: &Store, model: &Model) {
    for (p, app) in APPS.iter().enumerate() {
        assert_eq!(
            selected(store, *app, &Expr::All).await,
            expected(model, p, |_| true)
        );
        for (t, tag) in TAGS.iter().enumerate() {
            let got = selected(store, *app, &Expr::Tag(tag.to_string())).await;
            assert_eq!(
                got,
                expected(model, p, |(tags, _)| tags.contains(&t)),
                "tag {tag}"
            );
        }
        for slot in 0..ATTRS.len() as u8 {
            for (v, value) in VALUES.iter().enumerate() {
                let expr = Expr::AttrEq {
                    slot,
                    value: value.to_string(),
                };
                let want = expected(model, p, |(_, attrs)| attrs.get(&slot) == Some(&v));
                assert_eq!(
                    selected(store, *app, &expr).await,
                    want,
                    "attr {slot}={value}"
                );
            }
        }
    }
}

fn reopen(dir: &Path) -> Store {
    for _ in 0..500 {
        if let Ok(store) = Store::open(dir) {
            return store;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Store::open(dir).expect("reopening the store")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn live_and_rebuilt_indexes_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut model = Model::new();
        runtime.block_on(async {
            let store = Store::open(dir.path()).unwrap();
            let slots = ATTRS
                .iter()
                .enumerate()
                .map(|(i, name)| SlotUpdate { slot: i as u8, name: name.to_string(), account_type: None })
                .collect::<Vec<_>>();
            for app in APPS {
                store.set_attr_names(app, slots.clone()).await.unwrap().unwrap();
            }
            for op in &ops {
                apply_store(&store, op).await;
                apply_model(&mut model, op);
                check(&store, &model).await;
            }
        });
        let store = reopen(dir.path());
        runtime.block_on(check(&store, &model));
    }
}

#[test]
fn bulk_load_matches_the_api_paths_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = APPS[0];
    let accounts: Vec<tagcast_store::BulkAccount> = (0..1000)
        .map(|i| tagcast_store::BulkAccount {
            name: format!("user{i}"),
            tags: (0..TAGS.len())
                .filter(|t| i % (t + 2) == 0)
                .map(|t| TAGS[t].to_string())
                .collect(),
            attrs: BTreeMap::from([(0u8, VALUES[i % 2].to_string())]),
        })
        .collect();
    runtime.block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let results = store.bulk_load(app, accounts, LIMITS).await.unwrap();
        assert!(results.iter().all(Result::is_ok));
        check_bulk(&store, app).await;
    });
    runtime.block_on(check_bulk(&reopen(dir.path()), app));
}

/// What `bulk_load_matches_the_api_paths_and_survives_reopening` loaded.
async fn check_bulk(store: &Store, app: AppId) {
    let expected_tag = |t: usize| -> BTreeSet<String> {
        (0..1000)
            .filter(|i| i % (t + 2) == 0)
            .map(|i| format!("user{i}"))
            .collect()
    };
    for (t, tag) in TAGS.iter().enumerate() {
        assert_eq!(
            selected(store, app, &Expr::Tag(tag.to_string())).await,
            expected_tag(t),
            "{tag}"
        );
    }
    let xs = selected(
        store,
        app,
        &Expr::AttrEq {
            slot: 0,
            value: "x".into(),
        },
    )
    .await;
    assert_eq!(xs.len(), 500);
    let tags = store.get_tags(app, &["user6".to_string()]).await.unwrap();
    assert_eq!(tags, vec![Some(vec!["t0".to_string(), "t1".to_string()])]);
}
