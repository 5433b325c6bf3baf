//! Handshake RTT (`[tcp_rtt]`) on the worker's hot path: the worker loop on
//! 64-byte frames with 10,000 configured hosts, with and without the probe,
//! on a mix where 2 % of the frames are TCP handshake frames (SYN, SYN/ACK,
//! ACK) and the rest TCP data and pure ACKs with random sequence numbers.
//! The difference per frame is the probe's cost.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

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
        set_tcp(&mut frames[at + 1], server, client, 443, cport, sisn, cisn.wrapping_add(1), 0x12);
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

criterion_group!(benches, worker_with_and_without_rtt);
criterion_main!(benches);
