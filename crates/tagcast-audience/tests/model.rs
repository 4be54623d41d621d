//! The index selects exactly what a brute-force model over the same accounts selects.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tagcast_audience::{AppIndex, Change, Cmp, Expr};

const TAGS: &[&str] = &["a", "b", "c", "d", "e"];
const CITIES: &[&str] = &["sz", "bj", "sh"];
const AGES: &[&str] = &["5", "17", "18", "40", "x"];

#[derive(Debug, Clone)]
struct Account {
    tags: BTreeSet<String>,
    attrs: BTreeMap<u8, String>,
}

fn account() -> impl Strategy<Value = Account> {
    (
        proptest::sample::subsequence(TAGS, 0..=TAGS.len()),
        proptest::option::of(proptest::sample::select(CITIES)),
        proptest::option::of(proptest::sample::select(AGES)),
    )
        .prop_map(|(tags, city, age)| {
            let mut attrs = BTreeMap::new();
            if let Some(city) = city {
                attrs.insert(0, city.to_string());
            }
            if let Some(age) = age {
                attrs.insert(1, age.to_string());
            }
            Account {
                tags: tags.into_iter().map(String::from).collect(),
                attrs,
            }
        })
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Expr::All),
        proptest::sample::select(TAGS).prop_map(|t| Expr::Tag(t.to_string())),
        proptest::sample::select(CITIES).prop_map(|c| Expr::AttrEq {
            slot: 0,
            value: c.to_string()
        }),
        (0u8..3).prop_map(|slot| Expr::AttrExists { slot }),
        (0u8..4, 0.0f64..50.0).prop_map(|(op, x)| {
            let cmp = [Cmp::Lt(x), Cmp::Le(x), Cmp::Gt(x), Cmp::Ge(x)][op as usize];
            Expr::AttrCmp { slot: 1, cmp }
        }),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Expr::And),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

fn model_matches(expr: &Expr, a: &Account) -> bool {
    match expr {
        Expr::All => true,
        Expr::Tag(t) => a.tags.contains(t),
        Expr::AttrEq { slot, value } => a.attrs.get(slot) == Some(value),
        Expr::AttrExists { slot } => a.attrs.contains_key(slot),
        Expr::AttrCmp { slot, cmp } => a
            .attrs
            .get(slot)
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| cmp.matches(v)),
        Expr::And(parts) => parts.iter().all(|p| model_matches(p, a)),
        Expr::Or(parts) => parts.iter().any(|p| model_matches(p, a)),
        Expr::Not(inner) => !model_matches(inner, a),
    }
}

fn build(accounts: &[Account]) -> AppIndex {
    let mut index = AppIndex::default();
    for (id, a) in accounts.iter().enumerate() {
        let account = id as u32;
        index.apply(&Change::AccountAdded(account));
        for tag in &a.tags {
            index.apply(&Change::TagAdded {
                account,
                tag: tag.clone(),
            });
        }
        for (slot, value) in &a.attrs {
            index.apply(&Change::AttrSet {
                account,
                slot: *slot,
                old: None,
                new: value.clone(),
            });
        }
    }
    index
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn index_agrees_with_model(accounts in proptest::collection::vec(account(), 0..60), e in expr()) {
        let index = build(&accounts);
        let expected: Vec<u32> = (0..accounts.len() as u32)
            .filter(|id| model_matches(&e, &accounts[*id as usize]))
            .collect();
        let selected: Vec<u32> = index.evaluate(&e).iter().collect();
        prop_assert_eq!(&selected, &expected);
        prop_assert_eq!(index.count(&e), expected.len() as u64);
    }

    #[test]
    fn tencent_condition_matches_its_reading(
        accounts in proptest::collection::vec(account(), 0..60),
        and in proptest::sample::subsequence(TAGS, 0..3),
        or in proptest::sample::subsequence(TAGS, 0..3),
        not in proptest::sample::subsequence(TAGS, 0..3),
    ) {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (and, or, not) = (owned(&and), owned(&or), owned(&not));
        let e = Expr::from_condition(&and, &or, &not, &[], &[]);
        let index = build(&accounts);
        let expected: Vec<u32> = (0..accounts.len() as u32)
            .filter(|id| {
                let tags = &accounts[*id as usize].tags;
                and.iter().all(|t| tags.contains(t))
                    && (or.is_empty() || or.iter().any(|t| tags.contains(t)))
                    && !not.iter().any(|t| tags.contains(t))
            })
            .collect();
        prop_assert_eq!(index.evaluate(&e).iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn removals_undo_additions(accounts in proptest::collection::vec(account(), 1..30), e in expr()) {
        let mut index = build(&accounts);
        for (id, a) in accounts.iter().enumerate().skip(1) {
            let account = id as u32;
            for tag in &a.tags {
                index.apply(&Change::TagRemoved { account, tag: tag.clone() });
            }
            for (slot, value) in &a.attrs {
                index.apply(&Change::AttrRemoved { account, slot: *slot, old: value.clone() });
            }
            index.apply(&Change::AccountRemoved(account));
        }
        let only_first = build(&accounts[..1]);
        prop_assert_eq!(index.evaluate(&e), only_first.evaluate(&e));
    }
}
