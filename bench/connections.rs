//! Cost of the busiest-connections view (`[connections] top`): the flow
//! cache's expiry sweep with and without the view, and the worker's flow
//! path per frame (enqueue, drain, expire per batch) with and without it.
//!
//! `cargo bench --profile ci --bench connections`
//!
//! Manual timing, the two variants interleaved, minimum and median of the
//! rounds printed: criterion's means swing more than the difference on a
//! shared machine.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use xdpacct::export::cache::SweepVisitor;
use xdpacct::export::connections::TopView;
use xdpacct::export::{FlowCache, FlowCacheConfig, FlowRecord, FlowStats};
use xdpacct::wire::{FrameFacts, L3Addrs};

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn flow(i: u32) -> FrameFacts {
    FrameFacts {
        addrs: L3Addrs::V4 {
            src: i.to_be_bytes(),
            dst: [198, 51, 100, (i % 250) as u8],
        },
        ip_len: 576,
        protocol: 6,
        src_port: (i % 60_000) as u16 + 1024,
        dst_port: 443,
        tcp_flags: 0x10,
        has_l4: true,
        ..FrameFacts::default()
    }
}

fn cache(flows: usize) -> FlowCache {
    let cfg = FlowCacheConfig {
        max_flows: flows,
        idle_timeout_ms: 600_000,
        active_timeout_ms: 600_000,
    };
    FlowCache::new(&cfg, Arc::new(FlowStats::default()))
}

struct Sink(u64);
impl SweepVisitor for Sink {
    fn export(&mut self, r: FlowRecord) {
        self.0 += r.packets;
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

/// Full sweeps of a cache holding `flows` flows: ms per sweep (one sweep
/// a second in the daemon) without and with a view of `top`.
fn sweep(flows: usize, top: usize) {
    let mut c = cache(flows);
    let mut x = 7u64;
    for i in 0..flows as u32 {
        let bytes = xorshift(&mut x) % 1_000_000;
        c.update(0, &flow(i), bytes, 0, 1_000, &mut |_| {});
    }
    let mut view = TopView::new(top, 600_000);
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    let mut t = 1_000u64;
    c.expire_with(t, &mut Sink(0));
    for _ in 0..30 {
        t += 1_000;
        let s = Instant::now();
        c.expire_with(t, &mut Sink(0));
        plain.push(s.elapsed().as_secs_f64() * 1e3);
        t += 1_000;
        let s = Instant::now();
        c.expire_with(t, &mut view);
        with.push(s.elapsed().as_secs_f64() * 1e3);
    }
    assert_eq!(c.len(), flows);
    let (p, pm) = stats(plain);
    let (w, wm) = stats(with);
    println!(
        "sweep of {flows} flows ({} slots): plain {p:.3} ms (median {pm:.3}), with top {top} {w:.3} ms (median {wm:.3}): +{:.3} ms per second per worker",
        c.capacity(),
        w - p
    );
}

/// The worker's flow path per frame: `frames` frames over `flows` flows,
/// batches of 64, the clock advancing as at `pps` frames per second.
fn per_frame(flows: usize, top: usize, pps: u64) {
    let frames = 4_000_000usize;
    let mut x = 11u64;
    let order: Vec<u32> = (0..frames)
        .map(|_| (xorshift(&mut x) % flows as u64) as u32)
        .collect();
    let facts: Vec<FrameFacts> = (0..flows as u32).map(flow).collect();
    let run = |with_view: bool| -> f64 {
        let mut c = cache(flows * 2);
        let mut view = TopView::new(top, 600_000);
        let mut sink = Sink(0);
        let start_ms = 1_700_000_000_000u64;
        let s = Instant::now();
        for (b, batch) in order.chunks(64).enumerate() {
            let now = start_ms + (b as u64 * 64 * 1000) / pps;
            if with_view {
                c.expire_with(now, &mut view);
                for &i in batch {
                    c.enqueue(0, &facts[i as usize], 576, 0, now, &mut |r| view.export(r));
                }
                c.drain(&mut |r| view.export(r));
            } else {
                c.expire_with(now, &mut sink);
                for &i in batch {
                    c.enqueue(0, &facts[i as usize], 576, 0, now, &mut |r| sink.export(r));
                }
                c.drain(&mut |r| sink.export(r));
            }
        }
        black_box((&sink.0, &view));
        s.elapsed().as_secs_f64() * 1e9 / frames as f64
    };
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        plain.push(run(false));
        with.push(run(true));
    }
    let (p, pm) = stats(plain);
    let (w, wm) = stats(with);
    println!(
        "per frame, {flows} flows, clock at {pps} pps: plain {p:.2} ns (median {pm:.2}), with top {top} {w:.2} ns (median {wm:.2}): {:+.2} ns",
        w - p
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    sweep(65_536, 1000);
    sweep(65_536, 20);
    sweep(1 << 20, 1000);
    per_frame(50_000, 1000, 10_000_000);
    per_frame(50_000, 1000, 1_000_000);
}
