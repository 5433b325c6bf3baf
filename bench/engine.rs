//! Parse + account per core on 64-byte frames with 10,000 configured hosts,
//! and the scrape of 100,000 host series.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use xdpacct::capture::Frame;
use xdpacct::metrics::{EngineCollector, Exposition};
use xdpacct::shard::worker::account;
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
                    },
                ));
            }
        })
    });
    g.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    scraper.join().unwrap();
}

criterion_group!(benches, parse_and_account, account_while_scraping, scrape);
criterion_main!(benches);
