//! Flow export benches: flow-cache updates per second per core, records
//! encoded per second.
//!
//! `cargo bench --bench flow -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xdpacct::capture::Frame;
use xdpacct::export::{
    Encoder, EncoderConfig, FlowCache, FlowCacheConfig, FlowKey, FlowRecord, FlowStats, Version,
};
use xdpacct::shard::worker::account;
use xdpacct::wire::{FrameFacts, L3Addrs};

#[path = "support.rs"]
mod support;

const FLOWS: usize = 100_000;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// `n` distinct flows (a quarter IPv6), in random order.
fn distinct_facts(n: usize) -> Vec<FrameFacts> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v: Vec<FrameFacts> = (0..n)
        .map(|i| {
            let r = xorshift(&mut x);
            let addrs = if i % 4 == 0 {
                let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                src[8..16].copy_from_slice(&r.to_be_bytes());
                L3Addrs::V6 {
                    src,
                    dst: [0x2a; 16],
                }
            } else {
                L3Addrs::V4 {
                    src: (r as u32).to_be_bytes(),
                    dst: [198, 51, 100, (i % 250) as u8],
                }
            };
            FrameFacts {
                vlan: 0,
                addrs,
                ip_len: 576,
                protocol: 6,
                tos: 0,
                src_port: (i % 60_000) as u16 + 1024,
                dst_port: 443,
                tcp_flags: 0x10,
                tcp_seq: 0,
                tcp_ack: 0,
                later_fragment: false,
                has_l4: true,
            }
        })
        .collect();
    // Shuffle (Fisher-Yates).
    for i in (1..v.len()).rev() {
        let j = (xorshift(&mut x) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn cache_updates(c: &mut Criterion) {
    let facts = distinct_facts(FLOWS);
    let mut g = c.benchmark_group("flow_cache");
    g.throughput(Throughput::Elements(FLOWS as u64));

    // All 100k flows fit (max_flows 131072): every update after the first
    // pass is a hit on a random slot of a 27 MB table.
    let cfg = FlowCacheConfig {
        max_flows: 131_072,
        ..FlowCacheConfig::default()
    };
    let mut cache = FlowCache::new(&cfg, Arc::new(FlowStats::default()));
    let mut exported = 0u64;
    for f in &facts {
        cache.update(1, f, 576, 0, 1_000, &mut |_| exported += 1);
    }
    g.bench_function("update_hit_100k_flows", |b| {
        b.iter(|| {
            for f in &facts {
                cache.update(1, f, 576, 0, 1_000, &mut |_| exported += 1);
            }
        })
    });

    // 100k flows through the default 65536-flow cache: about a third of the
    // updates insert after evicting an old flow (cache pressure).
    let mut cache = FlowCache::new(&FlowCacheConfig::default(), Arc::new(FlowStats::default()));
    g.bench_function("update_churn_100k_flows_65k_cache", |b| {
        b.iter(|| {
            for f in &facts {
                cache.update(1, f, 576, 0, 1_000, &mut |r| {
                    black_box(r);
                });
            }
        })
    });

    // Insert 100k new flows into an empty cache, then expire them all.
    let mut cache = FlowCache::new(&cfg, Arc::new(FlowStats::default()));
    g.bench_function("insert_then_expire_100k_flows", |b| {
        b.iter_batched(
            || (),
            |()| {
                cache.expire(0, &mut |_| {});
                for f in &facts {
                    cache.update(1, f, 576, 0, 0, &mut |_| {});
                }
                cache.expire(3_600_000, &mut |r| {
                    black_box(r);
                });
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    black_box(exported);
}

fn encoding(c: &mut Criterion) {
    let records: Vec<FlowRecord> = distinct_facts(10_000)
        .iter()
        .enumerate()
        .map(|(i, f)| FlowRecord {
            key: FlowKey::from_facts(1, f),
            packets: i as u64 + 1,
            bytes: (i as u64 + 1) * 576,
            first_ms: 1_700_000_000_000 + i as u64,
            last_ms: 1_700_000_001_000 + i as u64,
            tcp_flags: 0x1b,
            direction: 0,
        })
        .collect();
    let mut g = c.benchmark_group("flow_encode");
    g.throughput(Throughput::Elements(records.len() as u64));
    for version in [Version::V9, Version::Ipfix] {
        let mut enc = Encoder::new(&EncoderConfig {
            version,
            ..EncoderConfig::default()
        });
        let mut bytes = 0usize;
        g.bench_function(format!("v{}_10k_records", version.number()), |b| {
            b.iter(|| {
                for r in &records {
                    enc.push(r, 1_700_000_002_000, &mut |p, _| bytes += p.len());
                }
                enc.flush(1_700_000_002_000, &mut |p, _| bytes += p.len());
            })
        });
        black_box(bytes);
    }
    g.finish();
}

/// The flow cache's share of the per-frame work, measured where it runs:
/// the engine bench's parse + account of 64-byte frames (10,000 hosts), with
/// and without the flow cache, in batches of 64 frames as the worker takes
/// them from a ring. 100,000 frames per iteration, drawn from
/// - 1k: 1,000 flows in turn (the cache stays in the CPU caches);
/// - 100k_zipf: 100,000 flows, Zipf-distributed (s = 1: the heaviest 1 % of
///   flows carry about half the frames, as on an ISP link);
/// - 100k: 100,000 flows each once, in random order (every update a random
///   slot of a 16 MiB table: the worst case, no locality at all).
fn engine_with_flows(c: &mut Criterion) {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let cfg = FlowCacheConfig {
        max_flows: 131_072,
        ..FlowCacheConfig::default()
    };
    let mut g = c.benchmark_group("engine_flow");
    g.throughput(Throughput::Elements(FLOWS as u64));
    for (name, flows, zipf) in [
        ("1k", 1_000, false),
        ("100k_zipf", FLOWS, true),
        ("100k", FLOWS, false),
    ] {
        let distinct = support::frames64(flows, 10_000);
        let frames: Vec<_> = if zipf {
            support::zipf_indexes(flows, FLOWS)
                .into_iter()
                .map(|i| distinct[i])
                .collect()
        } else {
            distinct.iter().copied().cycle().take(FLOWS).collect()
        };
        let mut facts = FrameFacts::default();
        // One pass over the frames, as the worker does it; the flow cache
        // gets each frame after `account` when there is one.
        let mut pass = |cache: Option<&mut FlowCache>| {
            let hosts = shard.hosts.load_full();
            let mut exported = 0u64;
            let mut cache = cache;
            for batch in frames.chunks(64) {
                for f in batch {
                    let frame = Frame {
                        data: &f[..],
                        wire_len: 64,
                        timestamp_ns: 0,
                    };
                    let (bytes, dir) = account(&shard, &hosts, &mut facts, frame);
                    if let Some(c) = cache.as_deref_mut() {
                        c.enqueue(1, &facts, bytes, dir as u8, 1_000, &mut |_| exported += 1);
                    }
                }
                if let Some(c) = cache.as_deref_mut() {
                    c.drain(&mut |_| exported += 1);
                }
            }
            black_box(exported);
        };
        g.bench_function(format!("parse_account_64B_{name}_flows"), |b| {
            b.iter(|| pass(None))
        });
        let mut cache = FlowCache::new(&cfg, Arc::new(FlowStats::default()));
        g.bench_function(format!("parse_account_flow_cache_64B_{name}_flows"), |b| {
            b.iter(|| pass(Some(&mut cache)))
        });
        if !zipf {
            assert!(
                cache.len() >= flows * 99 / 100,
                "frames were distinct flows"
            );
        }
    }
    g.finish();
}

criterion_group!(benches, cache_updates, engine_with_flows, encoding);
criterion_main!(benches);
