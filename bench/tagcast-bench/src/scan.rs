//! The baseline of the audience benchmark: what an implementation without bitmaps does, a scan
//! over a compact per-account representation (tag ids and attribute value ids), evaluating the
//! condition for every account.
//!
//! The layout is as compact and cache-friendly as a scan gets: all tag ids in one array with
//! per-account offsets (no pointer per account), and the 10 attribute value ids inline.

use tagcast_audience::Expr;
use tagcast_bench::synth::{Model, SynthAccount};

/// One thread's share while building: tag counts, tags, attributes.
type Part = (Vec<u32>, Vec<u16>, Vec<[u16; 10]>);

/// Every account's tags and attributes.
pub struct Scan {
    /// Account `i`'s tags are `tags[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    tags: Vec<u16>,
    /// Value id + 1 per slot; 0 = not set.
    attrs: Vec<[u16; 10]>,
}

/// A condition compiled to ids.
#[derive(Debug, Clone)]
pub enum Pred {
    All,
    Never,
    Tag(u16),
    /// Slot and value id + 1.
    AttrEq(usize, u16),
    /// Slot and, by value id + 1, whether it matches.
    AttrIn(usize, Box<[bool]>),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
}

impl Scan {
    /// The representation of accounts `0..accounts`, generated on `threads` threads.
    pub fn build(model: &Model, accounts: u64, threads: usize) -> Self {
        let threads = threads.max(1) as u64;
        let per = accounts.div_ceil(threads);
        let parts: Vec<Part> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let range = (t * per).min(accounts)..((t + 1) * per).min(accounts);
                    s.spawn(move || {
                        let mut lens = Vec::with_capacity(range.clone().count());
                        let mut tags = Vec::new();
                        let mut attrs = Vec::with_capacity(range.clone().count());
                        for i in range {
                            let a: SynthAccount = model.account(i);
                            lens.push(a.tags.len() as u32);
                            tags.extend_from_slice(&a.tags);
                            attrs.push(a.attrs.map(|v| v.map_or(0, |v| v + 1)));
                        }
                        (lens, tags, attrs)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scan builder panicked"))
                .collect()
        });
        let mut offsets = Vec::with_capacity(accounts as usize + 1);
        let mut tags = Vec::new();
        let mut attrs = Vec::with_capacity(accounts as usize);
        offsets.push(0u32);
        for (lens, t, a) in parts {
            for len in lens {
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last.checked_add(len).expect("fewer than 2^32 tag entries"));
            }
            tags.extend_from_slice(&t);
            attrs.extend_from_slice(&a);
        }
        Self {
            offsets,
            tags,
            attrs,
        }
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Heap bytes of the representation.
    pub fn bytes(&self) -> usize {
        self.offsets.len() * 4 + self.tags.len() * 2 + self.attrs.len() * 20
    }

    /// How many accounts match.
    pub fn count(&self, pred: &Pred) -> u64 {
        (0..self.len()).filter(|&i| self.matches(i, pred)).count() as u64
    }

    fn matches(&self, i: usize, pred: &Pred) -> bool {
        match pred {
            Pred::All => true,
            Pred::Never => false,
            Pred::Tag(t) => {
                let (start, end) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
                self.tags[start..end].contains(t)
            }
            Pred::AttrEq(slot, v) => self.attrs[i][*slot] == *v,
            Pred::AttrIn(slot, table) => table[self.attrs[i][*slot] as usize],
            Pred::And(parts) => parts.iter().all(|p| self.matches(i, p)),
            Pred::Or(parts) => parts.iter().any(|p| self.matches(i, p)),
            Pred::Not(inner) => !self.matches(i, inner),
        }
    }
}

impl Pred {
    /// Compiles `expr` against the model's tag and value ids; unknown names match nobody.
    pub fn compile(model: &Model, expr: &Expr) -> Pred {
        let table = |slot: u8, keep: &dyn Fn(&str) -> bool| {
            let mut table = vec![false];
            table.extend(model.values(slot).iter().map(|v| keep(v)));
            Pred::AttrIn(slot as usize, table.into_boxed_slice())
        };
        match expr {
            Expr::All => Pred::All,
            Expr::Tag(name) => Model::tag_id(name).map_or(Pred::Never, Pred::Tag),
            Expr::AttrEq { slot, value } => model
                .value_id(*slot, value)
                .map_or(Pred::Never, |v| Pred::AttrEq(*slot as usize, v + 1)),
            Expr::AttrExists { slot } => table(*slot, &|_| true),
            Expr::AttrCmp { slot, cmp } => {
                table(*slot, &|v| v.parse::<f64>().is_ok_and(|x| cmp.matches(x)))
            }
            Expr::And(parts) => Pred::And(parts.iter().map(|p| Self::compile(model, p)).collect()),
            Expr::Or(parts) => Pred::Or(parts.iter().map(|p| Self::compile(model, p)).collect()),
            Expr::Not(inner) => Pred::Not(Box::new(Self::compile(model, inner))),
        }
    }
}
