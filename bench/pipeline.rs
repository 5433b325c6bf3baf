//! The whole pipeline as operators run it, per core: every feature on,
//! assembled by `engine::Engine` from settings exactly as `xdpacct run`
//! does (tables, shard, worker, flow-export observer), next to the plain
//! worker in the same run for the ratio.
//!
//! - 10,000 IPv4 hosts in 40 labelled /24-sized ranges and 10,240 IPv6
//!   hosts (/64s) in 40 labelled /56 ranges;
//! - a full synthetic BGP table: 1,000,000 IPv4 + 250,000 IPv6 prefixes
//!   with the DFZ's prefix-length shares (`prefix::synth::V4_LENGTHS`,
//!   `V6_LENGTHS`, IPv6 clustered in the RIR blocks);
//! - 100 named networks of 20 prefixes each (10 IPv4, 10 IPv6);
//! - flow export (IPFIX to a UDP socket on 127.0.0.1) with 100,000 live
//!   flows in a 262,144-flow cache (warmed before each bench);
//! - traffic: 70 % IPv4 / 30 % IPv6 frames; each frame picks one of the
//!   100,000 flows Zipf-skewed (s = 1) within its family, and each flow's
//!   remote address lies in a table prefix picked Zipf-skewed (s = 1) over
//!   the whole table; IMIX sizes 7:4:1 of 64 (IPv6: 78), 590 and 1514 bytes
//!   on the wire (128 bytes of headers captured, as a ring's frame holds).
//!
//! Frames are handed to the worker in batches of 64 by a capture that
//! cycles over 2^18 prepared frames, in a thread pinned to a core; the
//! worker runs for the whole bench (its flow cache is never flushed).
//! `two_workers_two_cores` runs two queues of the same engine on cores 0
//! and 1 with their own flows: its rate is the sum (per core = half).
//!
//! Each bench also prints its rate per CPU-second of the worker threads
//! (their run time from `/proc/self/task/<tid>/schedstat`): on a machine
//! shared with other work the wall-clock rate also counts the time the
//! worker waited for a CPU, the CPU-time rate does not.
//!
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use xdpacct::capture::{Capture, CaptureError, Frame};
use xdpacct::engine::Engine;
use xdpacct::prefix::synth::{self, SplitMix64};
use xdpacct::settings::raw::{self, NetworkConfig, RangeConfig};
use xdpacct::settings::{AsFileFormat, Settings};
use xdpacct::shard::worker::Worker;

#[path = "support.rs"]
mod support;

/// Frames prepared per worker (cycled).
const FRAMES: usize = 1 << 18;
/// Live flows per worker.
const FLOWS: usize = 100_000;
/// Captured bytes kept per frame (the headers).
const SNAP: usize = 128;
const V4_HOSTS: u32 = 10_000;
const V6_RANGES: u32 = 40;

/// Prepared frames: headers in one arena, `SNAP` bytes apart.
struct Frames {
    arena: Vec<u8>,
    /// (captured length, wire length) of frame i, at `i * SNAP`.
    lens: Vec<(u16, u32)>,
    /// Frames before this one are handed out once (the warm-up: every
    /// flow once); the capture then cycles over the rest.
    loop_from: usize,
}

/// Inverse-CDF Zipf (s = 1) sampler over `0..n`.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut cdf: Vec<f64> = (1..=n).map(|k| 1.0 / k as f64).collect();
        for i in 1..n {
            cdf[i] += cdf[i - 1];
        }
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut SplitMix64) -> usize {
        let total = self.cdf[self.cdf.len() - 1];
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

#[derive(Clone, Copy)]
struct Flow {
    v6: bool,
    local: u128,
    remote: u128,
    inbound: bool,
    sport: u16,
    dport: u16,
    proto: u8,
}

fn v4_local(h: u32) -> u32 {
    u32::from(Ipv4Addr::new(100, 64, 0, 0)) + h
}

fn v6_local(h: u32) -> u128 {
    // 2001:db8:0:h::1, inside range h / 256 (2001:db8:0:xx00::/56).
    (0x2001_0db8u128 << 96) | ((h as u128) << 64) | 1
}

/// `FLOWS` flows (70 % IPv4), remotes Zipf over the table's prefixes.
fn flows(v4p: &[(u32, u8, u32)], v6p: &[(u128, u8, u32)], seed: u64) -> Vec<Flow> {
    let mut rng = SplitMix64::new(seed);
    let (z4, z6) = (Zipf::new(v4p.len()), Zipf::new(v6p.len()));
    (0..FLOWS)
        .map(|i| {
            let v6 = i >= FLOWS * 7 / 10;
            let r = rng.next_u128();
            let (local, remote) = if v6 {
                let (p, l, _) = v6p[z6.sample(&mut rng)];
                let h = rng.below((V6_RANGES * 256) as u64) as u32;
                (v6_local(h), p | (r & !mask128(l)))
            } else {
                let (p, l, _) = v4p[z4.sample(&mut rng)];
                let h = rng.below(V4_HOSTS as u64) as u32;
                let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
                (v4_local(h) as u128, (p | (r as u32 & !m)) as u128)
            };
            let tcp = rng.below(100) < 85;
            Flow {
                v6,
                local,
                remote,
                inbound: rng.below(2) == 0,
                sport: 1024 + rng.below(60_000) as u16,
                dport: [443, 80, 53, 25, 993][rng.below(5) as usize],
                proto: if tcp { 6 } else { 17 },
            }
        })
        .collect()
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// The headers of one frame of `f` with `wire` bytes on the wire.
fn frame(f: &Flow, wire: u32, out: &mut [u8]) -> usize {
    out[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    out[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    let (src, dst) = if f.inbound {
        (f.remote, f.local)
    } else {
        (f.local, f.remote)
    };
    let l4 = if f.v6 {
        out[12..14].copy_from_slice(&[0x86, 0xdd]);
        let ip = &mut out[14..54];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((wire - 54) as u16).to_be_bytes());
        ip[6] = f.proto;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.to_be_bytes());
        ip[24..40].copy_from_slice(&dst.to_be_bytes());
        54
    } else {
        out[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut out[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((wire - 14) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = f.proto;
        ip[12..16].copy_from_slice(&(src as u32).to_be_bytes());
        ip[16..20].copy_from_slice(&(dst as u32).to_be_bytes());
        34
    };
    let (sp, dp) = if f.inbound {
        (f.dport, f.sport)
    } else {
        (f.sport, f.dport)
    };
    out[l4..l4 + 2].copy_from_slice(&sp.to_be_bytes());
    out[l4 + 2..l4 + 4].copy_from_slice(&dp.to_be_bytes());
    if f.proto == 6 {
        out[l4 + 12] = 5 << 4;
        out[l4 + 13] = 0x10;
        l4 + 20
    } else {
        out[l4 + 4..l4 + 6].copy_from_slice(&((wire as usize - l4) as u16).to_be_bytes());
        l4 + 8
    }
}

/// Which frames of the mix to keep.
#[derive(Clone, Copy, PartialEq)]
enum Mix {
    Both,
    V4,
    V6,
}

/// `FRAMES` frames: 70 % IPv4, flows Zipf within the family, IMIX sizes.
fn traffic(flows: &[Flow], seed: u64, mix: Mix) -> Frames {
    let mut rng = SplitMix64::new(seed);
    let n4 = flows.iter().filter(|f| !f.v6).count();
    let (z4, z6) = (Zipf::new(n4), Zipf::new(flows.len() - n4));
    // Warm-up: every flow of the mix once, 64 bytes.
    let warm: Vec<&Flow> = flows
        .iter()
        .filter(|f| match mix {
            Mix::Both => true,
            Mix::V4 => !f.v6,
            Mix::V6 => f.v6,
        })
        .collect();
    let total = warm.len() + FRAMES;
    let mut arena = vec![0u8; total * SNAP];
    let mut lens = Vec::with_capacity(total);
    for (i, f) in warm.iter().enumerate() {
        let wire = if f.v6 { 78 } else { 64 };
        let hdr = frame(f, wire, &mut arena[i * SNAP..(i + 1) * SNAP]);
        lens.push((hdr.max(60).min(wire as usize) as u16, wire));
    }
    for i in warm.len()..total {
        let v6 = match mix {
            Mix::Both => rng.below(10) < 3,
            Mix::V4 => false,
            Mix::V6 => true,
        };
        let f = if v6 {
            &flows[n4 + z6.sample(&mut rng)]
        } else {
            &flows[z4.sample(&mut rng)]
        };
        let wire = match rng.below(12) {
            0..=6 => {
                if v6 {
                    78
                } else {
                    64
                }
            }
            7..=10 => 590,
            _ => 1514,
        };
        let out = &mut arena[i * SNAP..(i + 1) * SNAP];
        let hdr = frame(f, wire, out);
        lens.push((hdr.max(60).min(wire as usize).min(SNAP) as u16, wire));
    }
    Frames {
        arena,
        lens,
        loop_from: warm.len(),
    }
}

/// 64-byte IPv4 frames of the engine bench (10,000 hosts, no tables).
fn plain_frames() -> Frames {
    let src = support::frames64(FRAMES, V4_HOSTS);
    let mut arena = vec![0u8; FRAMES * SNAP];
    for (i, f) in src.iter().enumerate() {
        arena[i * SNAP..i * SNAP + 64].copy_from_slice(f);
    }
    Frames {
        arena,
        lens: vec![(64, 64); FRAMES],
        loop_from: 0,
    }
}

/// A worker's feed: the bench thread sets a frame budget, the worker's
/// capture hands that many frames out (cycling over `Frames`) and reports.
struct Feed {
    budget: AtomicU64,
    quit: AtomicBool,
    done: std::sync::Mutex<mpsc::Sender<()>>,
}

struct LoopCapture {
    frames: Arc<Frames>,
    pos: usize,
    feed: Arc<Feed>,
}

impl Capture for LoopCapture {
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, mut f: F) -> Result<usize, CaptureError> {
        let left = self.feed.budget.load(Ordering::Acquire);
        if left == 0 {
            if self.feed.quit.load(Ordering::Relaxed) {
                return Err(CaptureError::Closed);
            }
            std::thread::sleep(Duration::from_micros(20));
            return Ok(0);
        }
        let n = (max as u64).min(left) as usize;
        let n = n.min(self.frames.lens.len() - self.pos);
        for i in self.pos..self.pos + n {
            let (cap, wire) = self.frames.lens[i];
            f(Frame {
                data: &self.frames.arena[i * SNAP..i * SNAP + cap as usize],
                wire_len: wire,
                timestamp_ns: 0,
            });
        }
        self.pos += n;
        if self.pos == self.frames.lens.len() {
            self.pos = self.frames.loop_from;
        }
        if self.feed.budget.fetch_sub(n as u64, Ordering::AcqRel) == n as u64 {
            let _ = self.feed.done.lock().map(|d| d.send(()));
        }
        Ok(n)
    }
}

/// A worker running in its own thread on `core`, fed on demand.
struct Running {
    feed: Arc<Feed>,
    done: mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The worker thread's id, for its CPU time.
    tid: String,
}

/// Nanoseconds thread `tid` of this process has run on a CPU (0 when
/// /proc cannot tell).
fn cpu_ns(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Frames handed out and worker CPU time spent on them, over a bench.
#[derive(Default)]
struct CpuTally {
    frames: u64,
    cpu_ns: u64,
}

impl CpuTally {
    fn report(&self, name: &str) {
        if self.cpu_ns > 0 {
            eprintln!(
                "pipeline/{name}: {:.2} Mpps per CPU-second of the worker(s)",
                self.frames as f64 / self.cpu_ns as f64 * 1e3
            );
        }
    }
}

impl Running {
    fn start(mut worker: Worker, frames: Arc<Frames>, core: Option<core_affinity::CoreId>) -> Self {
        let (tx, rx) = mpsc::channel();
        let feed = Arc::new(Feed {
            budget: AtomicU64::new(0),
            quit: AtomicBool::new(false),
            done: std::sync::Mutex::new(tx),
        });
        let f = feed.clone();
        let (tid_tx, tid_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            // "<pid>/task/<tid>"
            let me = std::fs::read_link("/proc/thread-self").unwrap_or_default();
            let tid = me.file_name().map(|t| t.to_string_lossy().into_owned());
            let _ = tid_tx.send(tid.unwrap_or_default());
            let stop = AtomicBool::new(false);
            let mut cap = LoopCapture {
                frames,
                pos: 0,
                feed: f,
            };
            let _ = worker.run(&mut cap, &stop);
        });
        Running {
            feed,
            done: rx,
            thread: Some(thread),
            tid: tid_rx.recv().unwrap_or_default(),
        }
    }

    fn give(&self, frames: u64) {
        self.feed.budget.store(frames, Ordering::Release);
    }

    fn wait(&self) {
        let _ = self.done.recv();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.feed.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Times `iters` passes of `frames` frames through every running worker;
/// adds the frames and the workers' CPU time to `tally`.
fn timed(workers: &[&Running], frames: u64, iters: u64, tally: &mut CpuTally) -> Duration {
    let cpu0: u64 = workers.iter().map(|w| cpu_ns(&w.tid)).sum();
    let t = Instant::now();
    for w in workers {
        w.give(frames * iters);
    }
    for w in workers {
        w.wait();
    }
    let wall = t.elapsed();
    let cpu1: u64 = workers.iter().map(|w| cpu_ns(&w.tid)).sum();
    tally.frames += frames * iters * workers.len() as u64;
    tally.cpu_ns += cpu1.saturating_sub(cpu0);
    wall
}

/// The settings of the pipeline: every feature on.
fn settings(
    dir: &std::path::Path,
    v4p: &[(u32, u8, u32)],
    v6p: &[(u128, u8, u32)],
    collector: u16,
) -> Settings {
    let routes = dir.join("routes.txt");
    synth::write_prefix_asn(
        std::io::BufWriter::new(std::fs::File::create(&routes).unwrap()),
        v4p,
        v6p,
    )
    .unwrap();
    let mut acct = support::accounting(V4_HOSTS);
    for i in 0..V6_RANGES {
        acct.ranges.push(RangeConfig {
            prefix: Some(format!("2001:db8:0:{:x}::/56", i * 256)),
            labels: [("customer".to_string(), format!("v6c{i}"))].into(),
            ..Default::default()
        });
    }
    acct.local_networks.push("2001:db8::/32".into());
    acct.as_file = Some(routes.display().to_string());
    acct.as_file_format = Some(AsFileFormat::PrefixAsn);
    // 100 networks over the most used remote prefixes (Zipf rank k, k + 100, ...).
    acct.networks = (0..100)
        .map(|k| {
            let mut prefixes = Vec::new();
            for j in 0..10 {
                let (p, l, _) = v4p[k + 100 * j];
                prefixes.push(format!("{}/{l}", Ipv4Addr::from(p)));
                let (p, l, _) = v6p[k + 100 * j];
                prefixes.push(format!("{}/{l}", Ipv6Addr::from(p)));
            }
            NetworkConfig {
                name: format!("net{k}"),
                prefixes,
                labels: [("kind".to_string(), "peer".to_string())].into(),
            }
        })
        .collect();
    let raw = raw::Config {
        accounting: acct,
        netflow: raw::NetflowConfig {
            collectors: vec![format!("127.0.0.1:{collector}")],
            version: Some(10),
            max_flows: Some(262_144),
            idle_timeout: Some(600),
            active_timeout: Some(1800),
            ..Default::default()
        },
        ..Default::default()
    };
    Settings::from_raw(&raw, "pipeline bench").unwrap()
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let v4p = synth::v4_prefixes(synth::FULL_V4, 1);
    let v6p = synth::v6_prefixes(synth::FULL_V6, 2);
    // Flow export's datagrams land here (read by nobody: the kernel drops
    // them once the buffer is full, as a slow collector would).
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = collector.local_addr().unwrap().port();
    let settings = settings(dir.path(), &v4p, &v6p, port);
    let mut engine = Engine::build(&settings).unwrap();
    engine.start_export().unwrap();
    eprintln!("pipeline: tables built in {:.1?}", t.elapsed());

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let core = |i: usize| cores.get(i).copied();
    // One engine: four queues, each with its own shard and flow cache.
    let flows_a = flows(&v4p, &v6p, 11);
    let flows_b = flows(&v4p, &v6p, 12);
    let both = Arc::new(traffic(&flows_a, 21, Mix::Both));
    let only4 = Arc::new(traffic(&flows_a, 22, Mix::V4));
    let only6 = Arc::new(traffic(&flows_a, 23, Mix::V6));
    let other = Arc::new(traffic(&flows_b, 24, Mix::Both));
    let plain_shard = support::shard(&support::accounting(V4_HOSTS));

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(FRAMES as u64));

    {
        let w = Running::start(
            Worker::new(plain_shard, 64),
            Arc::new(plain_frames()),
            core(1),
        );
        let mut tally = CpuTally::default();
        g.bench_function("plain_worker_64B_10k_hosts", |b| {
            b.iter_custom(|iters| timed(&[&w], FRAMES as u64, iters, &mut tally))
        });
        tally.report("plain_worker_64B_10k_hosts");
    }
    for (name, frames) in [
        ("all_features_1_core", &both),
        ("all_features_v4_only_1_core", &only4),
        ("all_features_v6_only_1_core", &only6),
    ] {
        let w = Running::start(
            engine.add_queue("bench0", 0, 1).unwrap(),
            frames.clone(),
            core(1),
        );
        // Warm: every flow in the cache (100,000 live flows), tables touched.
        w.give(frames.lens.len() as u64 + FRAMES as u64);
        w.wait();
        let mut tally = CpuTally::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| timed(&[&w], FRAMES as u64, iters, &mut tally))
        });
        tally.report(name);
    }
    g.throughput(Throughput::Elements(2 * FRAMES as u64));
    if cores.len() >= 2 {
        let a = Running::start(
            engine.add_queue("bench0", 1, 1).unwrap(),
            both.clone(),
            core(0),
        );
        let b2 = Running::start(
            engine.add_queue("bench0", 2, 1).unwrap(),
            other.clone(),
            core(1),
        );
        for w in [&a, &b2] {
            w.give(both.lens.len() as u64 + FRAMES as u64);
        }
        for w in [&a, &b2] {
            w.wait();
        }
        let mut tally = CpuTally::default();
        g.bench_function("all_features_two_workers_two_cores", |b| {
            b.iter_custom(|iters| timed(&[&a, &b2], FRAMES as u64, iters, &mut tally))
        });
        // Frames of both workers over the CPU time of both: per core.
        tally.report("all_features_two_workers_two_cores (per core)");
    }
    g.finish();
    drop(collector);
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
