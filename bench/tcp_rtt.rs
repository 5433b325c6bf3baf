//! Handshake RTT (`[tcp_rtt]`) on the worker's hot path: the worker loop on
//! 64-byte frames with 10,000 configured hosts, with and without the probe,
//! on a mix where 2 % of the frames are TCP handshake frames (SYN, SYN/ACK,
//! ACK) and the rest TCP data and pure ACKs with random sequence numbers.
//! The difference per frame is the probe's cost.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use criterion::{black_box, criterion_group, Criterion, Throughput};

use xdpacct::capture::{Capture, CaptureError, Frame};
use xdpacct::rtt::table::HandshakeTable;
use xdpacct::rtt::{Probe, RttShard};
use xdpacct::shard::worker::Worker;

#[path = "support.rs"]
mod support;

/// Frames from memory with frame times (as pcap replay and AF_PACKET give).
struct Timed<'a> {
    frames: &'a [Vec<u8>],
    next: usize,
    t: u64,
}

impl Capture for Timed<'_> {
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, mut f: F) -> Result<usize, CaptureError> {
        if self.next >= self.frames.len() {
            return Err(CaptureError::Closed);
        }
        let end = (self.next + max).min(self.frames.len());
        for fr in &self.frames[self.next..end] {
            self.t += 1_000;
            f(Frame {
                data: fr,
                wire_len: fr.len() as u32,
                timestamp_ns: self.t,
            });
        }
        let n = end - self.next;
        self.next = end;
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)] // one frame's fields, in header order
fn set_tcp(f: &mut [u8], src: u32, dst: u32, sport: u16, dport: u16, seq: u32, ack: u32, fl: u8) {
    f[26..30].copy_from_slice(&src.to_be_bytes());
    f[30..34].copy_from_slice(&dst.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..42].copy_from_slice(&seq.to_be_bytes());
    f[42..46].copy_from_slice(&ack.to_be_bytes());
    f[47] = fl;
}

/// `n` frames, `handshake_pct` % of them handshake frames in triples.
fn mix(n: usize, handshake_pct: usize) -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = support::frames64(n, 10_000)
        .into_iter()
        .map(|f| f.to_vec())
        .collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Data and pure ACKs: random sequence and acknowledgment numbers.
    for f in frames.iter_mut() {
        let r = rnd();
        f[38..42].copy_from_slice(&(r as u32).to_be_bytes());
        f[42..46].copy_from_slice(&((r >> 32) as u32).to_be_bytes());
        f[47] = if r % 3 == 0 { 0x18 } else { 0x10 };
    }
    let triples = n * handshake_pct / 100 / 3;
    let stride = n / triples.max(1);
    for h in 0..triples {
        let at = h * stride;
        let r = rnd();
        let client = u32::from_be_bytes([100, 64, 0, 0]) + (r as u32 % 10_000);
        let server = u32::from_be_bytes([203, 0, 0, 0]) | ((r >> 32) as u32 & 0xffff);
        let cport = 1024 + (r >> 48) as u16 % 60_000;
        let (cisn, sisn) = (rnd() as u32, rnd() as u32);
        set_tcp(&mut frames[at], client, server, cport, 443, cisn, 0, 0x02);
        set_tcp(
            &mut frames[at + 1],
            server,
            client,
            443,
            cport,
            sisn,
            cisn.wrapping_add(1),
            0x12,
        );
        set_tcp(
            &mut frames[at + 2],
            client,
            server,
            cport,
            443,
            cisn.wrapping_add(1),
            sisn.wrapping_add(1),
            0x10,
        );
    }
    frames
}

fn worker_with_and_without_rtt(c: &mut Criterion) {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let mut g = c.benchmark_group("tcp_rtt");
    for pct in [0usize, 2] {
        let frames = mix(8192, pct);
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(format!("worker_64B_{pct}pct_handshakes_rtt_off"), |b| {
            let mut worker = Worker::new(shard.clone(), 64);
            let stop = AtomicBool::new(false);
            b.iter(|| {
                let mut cap = Timed {
                    frames: &frames,
                    next: 0,
                    t: 1,
                };
                black_box(worker.run(&mut cap, &stop).is_ok());
            })
        });
        g.bench_function(format!("worker_64B_{pct}pct_handshakes_rtt_on"), |b| {
            let table = Arc::new(HandshakeTable::new(65_536, 10_000_000_000));
            let probe = Probe::new(table, Arc::new(RttShard::default()));
            let mut worker = Worker::new(shard.clone(), 64).with_rtt(probe);
            let stop = AtomicBool::new(false);
            let mut t = 1;
            b.iter(|| {
                let mut cap = Timed {
                    frames: &frames,
                    next: 0,
                    t,
                };
                black_box(worker.run(&mut cap, &stop).is_ok());
                t = cap.t;
            })
        });
    }
    g.finish();
}

/// On a shared machine criterion's means swing by tens of percent between
/// runs; the probe's cost is a few ns in ~50. So the two workers also run
/// interleaved, off and on alternately, many times: the minimum and the
/// median per frame of each, and their differences, are printed.
///
/// `TCP_RTT_ONLY=off` or `on` runs only that worker (`TCP_RTT_ROUNDS`
/// rounds, default 400, the 2 % mix) and nothing else: for instruction
/// counts, repeatable where times are not, e.g.
/// `valgrind --tool=callgrind --toggle-collect='*Worker*run*'`; the
/// difference of the two runs' counts over rounds x 8,192 is the probe's
/// instructions per frame.
fn interleaved() {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let only = std::env::var("TCP_RTT_ONLY").ok();
    let rounds: usize = std::env::var("TCP_RTT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(400);
    let pcts: &[usize] = if only.is_some() { &[2] } else { &[0, 2] };
    for &pct in pcts {
        let frames = mix(8192, pct);
        let table = Arc::new(HandshakeTable::new(65_536, 10_000_000_000));
        let rtt = Arc::new(RttShard::default());
        let mut off = Worker::new(shard.clone(), 64);
        let mut on =
            Worker::new(shard.clone(), 64).with_rtt(Probe::new(table.clone(), rtt.clone()));
        let stop = AtomicBool::new(false);
        let (mut t_off, mut t_on) = (Vec::new(), Vec::new());
        let mut t = 1;
        for round in 0..rounds {
            for which in [round % 2, 1 - round % 2] {
                match (only.as_deref(), which) {
                    (Some("off"), 1) | (Some("on"), 0) => continue,
                    _ => {}
                }
                let mut cap = Timed {
                    frames: &frames,
                    next: 0,
                    t,
                };
                let start = std::time::Instant::now();
                let w = if which == 0 { &mut off } else { &mut on };
                black_box(w.run(&mut cap, &stop).is_ok());
                let ns = start.elapsed().as_nanos() as f64 / frames.len() as f64;
                t = cap.t;
                if which == 0 {
                    t_off.push(ns)
                } else {
                    t_on.push(ns)
                }
            }
        }
        if only.is_some() {
            let (n, v) = if t_on.is_empty() {
                ("off", &t_off)
            } else {
                ("on", &t_on)
            };
            println!(
                "tcp_rtt {n} only: {rounds} rounds, {:.2} ns/frame mean",
                v.iter().sum::<f64>() / v.len().max(1) as f64
            );
            return;
        }
        let stat = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            (v[0], v[v.len() / 2])
        };
        let (off_min, off_med) = stat(&mut t_off);
        let (on_min, on_med) = stat(&mut t_on);
        let measured = rtt.outcomes[0].get();
        println!(
            "tcp_rtt interleaved, {pct} % handshake frames, {rounds} rounds of {} frames: \
             off min {off_min:.2} / median {off_med:.2} ns/frame, on min {on_min:.2} / median \
             {on_med:.2} ns/frame; added: min {:+.2}, median {:+.2} ns/frame \
             ({measured} handshakes measured)",
            frames.len(),
            on_min - off_min,
            on_med - off_med
        );
    }
}

criterion_group!(benches, worker_with_and_without_rtt);

fn main() {
    interleaved();
    if std::env::var_os("TCP_RTT_ONLY").is_some() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
