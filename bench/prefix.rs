//! Longest-prefix-match lookups on a full-size synthetic Internet table
//! (1,000,000 IPv4 + 250,000 IPv6 prefixes, see `xdpacct::prefix::synth`).
//!
//! Reports lookups per second on one core (criterion "elements"). Address
//! sets: `routed` = 3/4 inside a random table prefix + 1/4 uniformly random
//! (IPv6: random within 2000::/3); `uniform` = uniformly random. `chained`
//! makes each address depend on the previous result, so lookups cannot
//! overlap: that is the per-lookup latency, a worst case for a worker that
//! looks up one packet at a time.
//!
//! Run: cargo bench --bench prefix -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xdpacct::prefix::synth::{self, SplitMix64};
use xdpacct::prefix::{Lpm4, Lpm4Builder, Lpm6, Lpm6Builder};

const ADDRS: usize = 1 << 20;
/// Fewer IPv6 addresses per iteration: a lone IPv6 lookup is much slower.
const ADDRS6: usize = 1 << 18;

/// The built tables and the prefixes they were built from.
struct Tables {
    v4: Lpm4,
    v6: Lpm6,
    v4p: Vec<(u32, u8, u32)>,
    v6p: Vec<(u128, u8, u32)>,
}

fn tables() -> Tables {
    let v4p = synth::v4_prefixes(synth::FULL_V4, 1);
    let v6p = synth::v6_prefixes(synth::FULL_V6, 2);
    let t = Instant::now();
    let mut b4 = Lpm4Builder::with_capacity(v4p.len());
    for &(p, l, a) in &v4p {
        b4.insert(p, l, a).unwrap();
    }
    let v4 = b4.build();
    let t4 = t.elapsed();
    let t = Instant::now();
    let mut b6 = Lpm6Builder::with_capacity(v6p.len());
    for &(p, l, a) in &v6p {
        b6.insert(p, l, a).unwrap();
    }
    let v6 = b6.build();
    let t6 = t.elapsed();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "IPv4 table: {v4:?}, built in {t4:.2?}, {:.1} MiB",
        mib(v4.memory_bytes())
    );
    eprintln!(
        "IPv6 table: {v6:?}, built in {t6:.2?}, {:.1} MiB",
        mib(v6.memory_bytes())
    );
    eprintln!(
        "full v4+v6 table: {:.1} MiB",
        mib(v4.memory_bytes() + v6.memory_bytes())
    );
    Tables { v4, v6, v4p, v6p }
}

fn bench(c: &mut Criterion) {
    let Tables { v4, v6, v4p, v6p } = tables();

    let routed4 = synth::v4_addrs(&v4p, ADDRS, 3);
    let mut rng = SplitMix64::new(5);
    let uniform4: Vec<u32> = (0..ADDRS).map(|_| rng.next_u32()).collect();
    let routed6 = synth::v6_addrs(&v6p, ADDRS6, 4);
    let uniform6: Vec<u128> = (0..ADDRS6).map(|_| rng.next_u128()).collect();
    let hits4 = routed4.iter().filter(|&&a| v4.lookup(a).is_some()).count();
    let hits6 = routed6.iter().filter(|&&a| v6.lookup(a).is_some()).count();
    eprintln!(
        "routed sets: {:.0} % of IPv4 and {:.0} % of IPv6 addresses have a route",
        100.0 * hits4 as f64 / ADDRS as f64,
        100.0 * hits6 as f64 / ADDRS6 as f64
    );

    let mut g = c.benchmark_group("lpm");
    g.throughput(Throughput::Elements(ADDRS as u64));
    for (name, addrs) in [("v4/routed", &routed4), ("v4/uniform", &uniform4)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u32;
                for &a in addrs.iter() {
                    sum = sum.wrapping_add(v4.lookup(a).unwrap_or(0));
                }
                black_box(sum)
            })
        });
    }
    // `zero` is 0, but the compiler cannot know: `a ^ (prev & zero)` is the
    // same address, and yet each lookup must wait for the one before.
    let zero = black_box(0u32);
    g.bench_function("v4/routed-chained", |b| {
        b.iter(|| {
            let mut prev = 0u32;
            for &a in routed4.iter() {
                prev = v4.lookup(a ^ (prev & zero)).unwrap_or(1);
            }
            black_box(prev)
        })
    });
    g.throughput(Throughput::Elements(ADDRS6 as u64));
    for (name, addrs) in [("v6/routed", &routed6), ("v6/uniform", &uniform6)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u32;
                for &a in addrs.iter() {
                    sum = sum.wrapping_add(v6.lookup(a).unwrap_or(0));
                }
                black_box(sum)
            })
        });
    }
    let mut out = vec![None; ADDRS6];
    for (name, addrs) in [
        ("v6/routed-batch", &routed6),
        ("v6/uniform-batch", &uniform6),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                v6.lookup_batch(addrs, &mut out);
                black_box(&out);
            })
        });
    }
    g.bench_function("v6/routed-chained", |b| {
        b.iter(|| {
            let mut prev = 0u32;
            for &a in routed6.iter() {
                prev = v6.lookup(a ^ (prev & zero) as u128).unwrap_or(1);
            }
            black_box(prev)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
