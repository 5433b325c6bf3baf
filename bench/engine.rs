//! Parse + account per core on 64-byte frames with 10,000 configured hosts,
//! and the scrape of 100,000 host series.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use xdpacct::capture::Frame;
use xdpacct::metrics::{EngineCollector, Exposition};
use xdpacct::shard::worker::{account, Worker};
use xdpacct::wire::{parse_frame, FrameFacts};

#[path = "support.rs"]
mod support;

fn parse_and_account(c: &mut Criterion) {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let frames = support::frames64(8192, 10_000);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("parse_only_64B", |b| {
        let mut facts = FrameFacts::default();
        b.iter(|| {
            for f in &frames {
                let _ = black_box(parse_frame(black_box(&f[..]), &mut facts));
            }
        })
    });
    // The same frames through the worker's loop (batches of 64, staged).
    let framed: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
    g.bench_function("worker_64B_10k_hosts", |b| {
        let mut worker = Worker::new(shard.clone(), 64);
        let stop = std::sync::atomic::AtomicBool::new(false);
        b.iter(|| {
            let mut cap = support::MemCapture::new(&framed);
            black_box(worker.run(&mut cap, &stop).is_ok());
        })
    });
    g.bench_function("parse_account_64B_10k_hosts", |b| {
        let mut facts = FrameFacts::default();
        b.iter(|| {
            let hosts = shard.hosts.load_full();
            for f in &frames {
                black_box(account(
                    &shard,
                    &hosts,
                    &mut facts,
                    Frame {
                        data: &f[..],
                        wire_len: 64,
                        timestamp_ns: 0,
                    },
                ));
            }
        })
    });
    g.finish();
}

fn scrape(c: &mut Criterion) {
    let acct = support::accounting(100_000);
    let shards: Vec<_> = (0..2).map(|_| support::shard(&acct)).collect();
    let exposition = Exposition::new();
    exposition.register_engine(Arc::new(EngineCollector::new(shards)));
    let mut g = c.benchmark_group("scrape");
    g.sample_size(10);
    g.bench_function("render_100k_hosts_2_shards", |b| {
        b.iter(|| black_box(exposition.render().len()))
    });
    g.finish();
}

/// The same per-frame work while another thread scrapes 100,000 hosts in a
/// loop: lock-free shards mean the worker should not notice.
fn account_while_scraping(c: &mut Criterion) {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let big = support::accounting(100_000);
    let frames = support::frames64(8192, 10_000);
    let exposition = Exposition::new();
    exposition.register_engine(Arc::new(EngineCollector::new(vec![
        shard.clone(),
        support::shard(&big),
    ])));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // The daemon's layout: the scraper on core 0, workers on the others.
            if let Some(c) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) {
                core_affinity::set_for_current(c);
            }
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                black_box(exposition.render().len());
            }
        })
    };
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(frames.len() as u64));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() > 1 {
        core_affinity::set_for_current(cores[1]);
    }
    g.bench_function("parse_account_64B_10k_hosts_while_scraping", |b| {
        let mut facts = FrameFacts::default();
        b.iter(|| {
            let hosts = shard.hosts.load_full();
            for f in &frames {
                black_box(account(
                    &shard,
                    &hosts,
                    &mut facts,
                    Frame {
                        data: &f[..],
                        wire_len: 64,
                        timestamp_ns: 0,
                    },
                ));
            }
        })
    });
    g.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    scraper.join().unwrap();
}

/// Parse + account with a full synthetic BGP table loaded (1,000,000 IPv4
/// and 250,000 IPv6 prefixes, `accounting.as_file`): each frame's remote
/// address is looked up. IPv4 and IPv6 frames whose remote address is drawn
/// from the table's prefixes (`synth::*_addrs`: no locality, the worst
/// case), and the same frames with Zipf-skewed remote addresses.
fn account_with_as_table(c: &mut Criterion) {
    use std::io::Write;
    use xdpacct::prefix::synth;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.txt");
    let v4p = synth::v4_prefixes(synth::FULL_V4, 1);
    let v6p = synth::v6_prefixes(synth::FULL_V6, 2);
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for &(p, l, a) in &v4p {
            writeln!(f, "{}/{l} {}", std::net::Ipv4Addr::from(p), a + 1).unwrap();
        }
        for &(p, l, a) in &v6p {
            writeln!(f, "{}/{l} {}", std::net::Ipv6Addr::from(p), a + 1).unwrap();
        }
    }
    let mut acct = support::accounting(10_000);
    acct.local_networks.push("2001:db8::/32".into());
    acct.as_file = Some(path.display().to_string());
    acct.as_file_format = Some(xdpacct::settings::AsFileFormat::PrefixAsn);
    let shard = support::shard(&acct);
    let n = 1 << 16;
    let v4: Vec<Vec<u8>> = support::frames64(n, 10_000)
        .iter()
        .zip(synth::v4_addrs(&v4p, n, 3))
        .enumerate()
        .map(|(i, (f, remote))| {
            let mut f = f.to_vec();
            // The remote side: source of inbound (even) frames, else destination.
            let at = if i % 2 == 0 { 26 } else { 30 };
            f[at..at + 4].copy_from_slice(&remote.to_be_bytes());
            f
        })
        .collect();
    let v6: Vec<Vec<u8>> = synth::v6_addrs(&v6p, n, 4)
        .into_iter()
        .enumerate()
        .map(|(i, remote)| support::frame_v6(i, remote))
        .collect();
    // Real traffic is skewed: a few remote networks carry most frames. The
    // same frames reordered so that remote addresses repeat Zipf-like
    // (s = 1 over the 65,536 frames).
    let skewed = |frames: &Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        support::zipf_indexes(n, n)
            .into_iter()
            .map(|i| frames[i].clone())
            .collect()
    };
    let (v4z, v6z) = (skewed(&v4), skewed(&v6));
    let mut g = c.benchmark_group("engine_as");
    g.throughput(Throughput::Elements(n as u64));
    for (name, frames) in [
        ("v4_full_table", &v4),
        ("v6_full_table", &v6),
        ("v4_full_table_zipf", &v4z),
        ("v6_full_table_zipf", &v6z),
    ] {
        g.bench_function(format!("parse_account_{name}"), |b| {
            let mut facts = FrameFacts::default();
            b.iter(|| {
                let hosts = shard.hosts.load_full();
                for f in frames {
                    let frame = Frame {
                        data: &f[..],
                        wire_len: f.len() as u32,
                        timestamp_ns: 0,
                    };
                    black_box(account(&shard, &hosts, &mut facts, frame));
                }
            })
        });
        // The worker's own loop: batches of 64, three passes with prefetch.
        g.bench_function(format!("worker_{name}"), |b| {
            let mut worker = Worker::new(shard.clone(), 64);
            let stop = std::sync::atomic::AtomicBool::new(false);
            b.iter(|| {
                let mut cap = support::MemCapture::new(frames);
                black_box(worker.run(&mut cap, &stop).is_ok());
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    parse_and_account,
    account_with_as_table,
    account_while_scraping,
    scrape
);
criterion_main!(benches);
