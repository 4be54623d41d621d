//! UserSig verification cost, against HMAC-SHA256 of the same content alone (the floor any
//! verifier pays) measured in the same run.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const NOW: u64 = 1_700_000_000;

fn bench(c: &mut Criterion) {
    let sig = tagcast_usersig::sign(1_400_000_000, KEY, "administrator", 86_400, NOW);
    let content = format!(
        "TLS.identifier:administrator\nTLS.sdkappid:1400000000\nTLS.time:{NOW}\nTLS.expire:86400\n"
    );
    let mut group = c.benchmark_group("usersig");
    group.bench_function("verify", |b| {
        b.iter(|| {
            tagcast_usersig::verify(black_box(&sig), 1_400_000_000, "administrator", KEY, NOW)
        })
    });
    group.bench_function("hmac_only_baseline", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).expect("any key length");
            mac.update(black_box(content.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("sign", |b| {
        b.iter(|| {
            tagcast_usersig::sign(1_400_000_000, KEY, black_box("administrator"), 86_400, NOW)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
