//! The synthetic app of the benchmarks: a data model that any exporter can replay.
//!
//! Every account is a pure function of `(seed, index)`: it has its own ChaCha8 stream (portable
//! and stable across platforms), so accounts can be generated in any order, in parallel, in
//! chunks, and again later (to build a baseline, or to export the very same data to another
//! database) without storing anything but the seed and the account count.
//!
//! - Accounts are named `u{index:08}` and get dense ids in index order when loaded in order.
//! - 1000 tags `tag1`..`tag1000`, drawn by rank from a Zipf distribution (exponent 1): 5 to 20
//!   distinct tags per account.
//! - 10 attributes (the 10 slots of an app), each with a realistic spread and a probability of
//!   being set at all; see [`ATTRS`].

use std::collections::BTreeMap;

use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Zipf};
use tagcast_store::{BulkAccount, SlotUpdate};

/// The sdkappid of the synthetic app.
pub const SDKAPPID: u64 = 1_400_000_000;
/// Distinct tags (Tencent's per-app default limit).
pub const TAGS: usize = 1000;
/// Fewest and most tags per account.
pub const TAGS_PER_ACCOUNT: (usize, usize) = (5, 20);
/// The default seed.
pub const DEFAULT_SEED: u64 = 42;

/// How an attribute's values are spread.
#[derive(Debug, Clone, Copy)]
pub enum Spread {
    /// Rank `r` (1-based) of `n` values with probability proportional to `1 / r^s`.
    Zipf { n: usize, s: f64 },
    /// Listed weights, one per value.
    Weights(&'static [f64]),
    /// A whole number from a normal distribution, clamped to `[min, max]`.
    Normal {
        mean: f64,
        sd: f64,
        min: i64,
        max: i64,
    },
}

/// One attribute slot of the synthetic app.
#[derive(Debug, Clone, Copy)]
pub struct AttrSpec {
    pub name: &'static str,
    /// Probability that an account has a value at all.
    pub presence: f64,
    pub spread: Spread,
    /// Value names for `Weights` (same length); else values are generated (see `value_name`).
    pub labels: &'static [&'static str],
}

/// The 10 attributes, in slot order.
pub const ATTRS: [AttrSpec; 10] = [
    AttrSpec {
        name: "city",
        presence: 0.9,
        spread: Spread::Zipf { n: 50, s: 1.0 },
        labels: &[],
    },
    AttrSpec {
        name: "age",
        presence: 0.85,
        spread: Spread::Normal {
            mean: 30.0,
            sd: 11.0,
            min: 13,
            max: 80,
        },
        labels: &[],
    },
    AttrSpec {
        name: "gender",
        presence: 0.95,
        spread: Spread::Weights(&[48.0, 48.0, 4.0]),
        labels: &["male", "female", "other"],
    },
    AttrSpec {
        name: "os",
        presence: 1.0,
        spread: Spread::Weights(&[62.0, 33.0, 5.0]),
        labels: &["android", "ios", "harmonyos"],
    },
    AttrSpec {
        name: "vip_level",
        presence: 1.0,
        spread: Spread::Weights(&[50.0, 20.0, 10.0, 7.0, 5.0, 3.0, 2.0, 1.5, 1.0, 0.5]),
        labels: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    },
    AttrSpec {
        name: "country",
        presence: 0.98,
        spread: Spread::Zipf { n: 100, s: 1.0 },
        labels: &[],
    },
    AttrSpec {
        name: "lang",
        presence: 0.98,
        spread: Spread::Zipf { n: 20, s: 1.0 },
        labels: &[],
    },
    AttrSpec {
        name: "plan",
        presence: 1.0,
        spread: Spread::Weights(&[80.0, 15.0, 5.0]),
        labels: &["free", "basic", "premium"],
    },
    AttrSpec {
        name: "channel",
        presence: 0.9,
        spread: Spread::Zipf { n: 30, s: 1.0 },
        labels: &[],
    },
    AttrSpec {
        name: "app_version",
        presence: 1.0,
        spread: Spread::Zipf { n: 12, s: 1.2 },
        labels: &[],
    },
];

/// Slot of each attribute, by name, for conditions.
pub mod slot {
    pub const CITY: u8 = 0;
    pub const AGE: u8 = 1;
    pub const GENDER: u8 = 2;
    pub const OS: u8 = 3;
    pub const VIP_LEVEL: u8 = 4;
    pub const COUNTRY: u8 = 5;
    pub const LANG: u8 = 6;
    pub const PLAN: u8 = 7;
    pub const CHANNEL: u8 = 8;
    pub const APP_VERSION: u8 = 9;
}

/// One generated account: tag ids (`0..TAGS`, id `t` is named `tag{t+1}`, in the order drawn)
/// and per slot the value id (see [`Model::value_name`]), if set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthAccount {
    pub index: u64,
    pub tags: Vec<u16>,
    pub attrs: [Option<u16>; 10],
}

enum Sampler {
    Zipf(Zipf<f64>),
    Weights(WeightedIndex<f64>),
    Normal(Normal<f64>, i64, i64),
}

/// The synthetic app's generator.
pub struct Model {
    seed: u64,
    tags: Zipf<f64>,
    samplers: Vec<Sampler>,
    values: Vec<Vec<String>>,
}

impl Model {
    pub fn new(seed: u64) -> Self {
        let samplers = ATTRS
            .iter()
            .map(|spec| match spec.spread {
                Spread::Zipf { n, s } => {
                    Sampler::Zipf(Zipf::new(n as f64, s).expect("valid Zipf parameters"))
                }
                Spread::Weights(w) => {
                    Sampler::Weights(WeightedIndex::new(w).expect("valid weights"))
                }
                Spread::Normal { mean, sd, min, max } => Sampler::Normal(
                    Normal::new(mean, sd).expect("valid normal parameters"),
                    min,
                    max,
                ),
            })
            .collect();
        let values = ATTRS.iter().map(value_names).collect();
        Self {
            seed,
            tags: Zipf::new(TAGS as f64, 1.0).expect("valid Zipf parameters"),
            samplers,
            values,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn account_name(index: u64) -> String {
        format!("u{index:08}")
    }

    pub fn tag_name(tag: u16) -> String {
        format!("tag{}", tag as usize + 1)
    }

    /// The tag id of `tag{rank}`.
    pub fn tag_id(name: &str) -> Option<u16> {
        let rank: usize = name.strip_prefix("tag")?.parse().ok()?;
        (1..=TAGS).contains(&rank).then(|| (rank - 1) as u16)
    }

    /// Every value an attribute slot can take, by value id.
    pub fn values(&self, slot: u8) -> &[String] {
        &self.values[slot as usize]
    }

    pub fn value_name(&self, slot: u8, value: u16) -> &str {
        &self.values[slot as usize][value as usize]
    }

    /// The value id of a value of `slot`.
    pub fn value_id(&self, slot: u8, value: &str) -> Option<u16> {
        self.values[slot as usize]
            .iter()
            .position(|v| v == value)
            .map(|i| i as u16)
    }

    /// The account at `index`: the same for the same seed, whenever and wherever generated.
    pub fn account(&self, index: u64) -> SynthAccount {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let want = rng.random_range(TAGS_PER_ACCOUNT.0..=TAGS_PER_ACCOUNT.1);
        let mut tags: Vec<u16> = Vec::with_capacity(want);
        // Distinct tags; the Zipf head collides often, so bound the draws.
        for _ in 0..want * 50 {
            if tags.len() == want {
                break;
            }
            let tag = (self.tags.sample(&mut rng) as usize - 1) as u16;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let mut attrs = [None; 10];
        for (slot, (spec, sampler)) in ATTRS.iter().zip(&self.samplers).enumerate() {
            if !rng.random_bool(spec.presence) {
                continue;
            }
            let value = match sampler {
                Sampler::Zipf(z) => z.sample(&mut rng) as usize - 1,
                Sampler::Weights(w) => w.sample(&mut rng),
                Sampler::Normal(n, min, max) => {
                    let v = (n.sample(&mut rng).round() as i64).clamp(*min, *max);
                    (v - min) as usize
                }
            };
            attrs[slot] = Some(value as u16);
        }
        SynthAccount { index, tags, attrs }
    }

    /// The account as the store loads it.
    pub fn bulk_account(&self, account: &SynthAccount) -> BulkAccount {
        let attrs: BTreeMap<u8, String> = account
            .attrs
            .iter()
            .enumerate()
            .filter_map(|(slot, v)| Some((slot as u8, self.value_name(slot as u8, (*v)?).into())))
            .collect();
        BulkAccount {
            name: Self::account_name(account.index),
            tags: account.tags.iter().map(|t| Self::tag_name(*t)).collect(),
            attrs,
        }
    }

    /// The attribute names of the app's 10 slots (`set_attr_name`).
    pub fn attr_names() -> Vec<SlotUpdate> {
        ATTRS
            .iter()
            .enumerate()
            .map(|(slot, spec)| SlotUpdate {
                slot: slot as u8,
                name: spec.name.to_string(),
                account_type: None,
            })
            .collect()
    }
}

fn value_names(spec: &AttrSpec) -> Vec<String> {
    match spec.spread {
        Spread::Weights(_) => spec.labels.iter().map(|s| s.to_string()).collect(),
        Spread::Normal { min, max, .. } => (min..=max).map(|v| v.to_string()).collect(),
        Spread::Zipf { n, .. } => (1..=n)
            .map(|rank| match spec.name {
                // The most common version is the newest.
                "app_version" => format!("5.{}.0", n - rank),
                name => format!("{name}{rank}"),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_reproducible_and_in_range() {
        let model = Model::new(7);
        for i in [0, 1, 999, 123_456_789] {
            let a = model.account(i);
            assert_eq!(a, Model::new(7).account(i));
            assert!((TAGS_PER_ACCOUNT.0..=TAGS_PER_ACCOUNT.1).contains(&a.tags.len()));
            for (slot, v) in a.attrs.iter().enumerate() {
                if let Some(v) = v {
                    assert!((*v as usize) < model.values(slot as u8).len());
                }
            }
        }
        assert_ne!(model.account(1), model.account(2));
        assert_eq!(Model::tag_id(&Model::tag_name(999)), Some(999));
        assert_eq!(model.value_name(slot::AGE, 0), "13");
        assert_eq!(model.value_name(slot::APP_VERSION, 0), "5.11.0");
    }
}
