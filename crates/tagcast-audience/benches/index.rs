//! Micro-benchmarks of the audience index on a synthetic app: counts and full evaluation of
//! typical conditions, against a scan of per-account tag lists measured in the same run.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tagcast_audience::{AppIndex, Change, Expr};

const ACCOUNTS: u32 = 1_000_000;
const TAGS: u32 = 1000;

/// Deterministic pseudo-random tags: 5 to 20 per account, skewed towards low tag numbers.
fn tags_of(account: u32) -> Vec<u32> {
    let mut state = u64::from(account).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let count = 5 + next() % 16;
    let mut tags: Vec<u32> = (0..count)
        .map(|_| {
            let u = (next() % 1_000_000) as f64 / 1_000_000.0;
            ((TAGS as f64).powf(u) - 1.0) as u32
        })
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

fn build() -> (AppIndex, Vec<Vec<u32>>) {
    let mut index = AppIndex::default();
    let mut lists = Vec::with_capacity(ACCOUNTS as usize);
    for account in 0..ACCOUNTS {
        index.apply(&Change::AccountAdded(account));
        let tags = tags_of(account);
        for tag in &tags {
            index.apply(&Change::TagAdded {
                account,
                tag: format!("tag{tag}"),
            });
        }
        lists.push(tags);
    }
    (index, lists)
}

fn tag(t: u32) -> Expr {
    Expr::Tag(format!("tag{t}"))
}

/// A named condition, as an expression and as the scan's predicate over sorted tag ids.
type Condition = (&'static str, Expr, fn(&[u32]) -> bool);

fn conditions() -> Vec<Condition> {
    vec![
        ("one tag", tag(3), |t| t.contains(&3)),
        ("and of 2", Expr::And(vec![tag(1), tag(5)]), |t| {
            t.contains(&1) && t.contains(&5)
        }),
        ("or of 3", Expr::Or(vec![tag(10), tag(20), tag(30)]), |t| {
            t.contains(&10) || t.contains(&20) || t.contains(&30)
        }),
        (
            "and with not",
            Expr::And(vec![tag(0), Expr::Not(Box::new(tag(2)))]),
            |t| t.contains(&0) && !t.contains(&2),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let (index, lists) = build();
    let mut group = c.benchmark_group("audience_1m");
    for (name, expr, matches) in conditions() {
        group.bench_with_input(BenchmarkId::new("roaring_count", name), &expr, |b, e| {
            b.iter(|| black_box(index.count(e)))
        });
        group.bench_with_input(BenchmarkId::new("roaring_evaluate", name), &expr, |b, e| {
            b.iter(|| black_box(index.evaluate(e).len()))
        });
        group.bench_function(BenchmarkId::new("scan_baseline", name), |b| {
            b.iter(|| black_box(lists.iter().filter(|t| matches(t)).count()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
