//! Accounting a frame never allocates, nor does reading it from a capture
//! file: a counting global allocator proves it. It counts only in threads
//! that asked for it (`counting(true)`), so tests running side by side and
//! the test harness do not disturb each other's counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use xdpacct::capture::replay::{self, Step, Walker};
use xdpacct::capture::Frame;
use xdpacct::shard::worker::{account, Worker};
use xdpacct::wire::FrameFacts;

#[path = "../bench/support.rs"]
mod support;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised and without a destructor: safe to read inside the
    // allocator (it never allocates itself).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// This thread's counted allocations (tests side by side do not mix).
    static MINE: Cell<u64> = const { Cell::new(0) };
}

/// Counts (or stops counting) this thread's allocations.
fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Relaxed);
            MINE.with(|m| m.set(m.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_and_account_allocate_nothing_per_frame() {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let mut frames: Vec<Vec<u8>> = support::frames64(4096, 10_000)
        .iter()
        .map(|f| f.to_vec())
        .collect();
    // Also truncated and garbage frames: the error paths must not allocate either.
    frames.push(frames[0][..20].to_vec());
    frames.push(vec![0xff; 60]);
    let hosts = shard.hosts.load_full();
    let mut facts = FrameFacts::default();
    counting(true);
    let before = ALLOCS.load(Relaxed);
    for _ in 0..10 {
        for f in &frames {
            account(
                &shard,
                &hosts,
                &mut facts,
                Frame {
                    data: f,
                    wire_len: f.len() as u32,
                    timestamp_ns: 0,
                },
            );
        }
    }
    let after = ALLOCS.load(Relaxed);
    counting(false);
    assert_eq!(
        after - before,
        0,
        "allocations while accounting {} frames",
        frames.len() * 10
    );
    // And the frames were counted.
    let counted: u64 = shard.snapshot().traffic.total().packets;
    assert_eq!(counted, frames.len() as u64 * 10);
}

/// A little-endian pcap of `n` frames, captured to 64 bytes of their
/// 64..=1500-byte wire length (a `-s 64` capture).
fn pcap(n: usize) -> Vec<u8> {
    let frames = support::frames64(4096, 10_000);
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 64, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for i in 0..n {
        for v in [i as u32, 0, 64, 64 + (i as u32 * 7) % 1437] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&frames[i % frames.len()]);
    }
    out
}

/// The same frames as a pcapng: SHB, an Ethernet IDB (snap length 64, ns
/// timestamps), EPBs.
fn pcapng(n: usize) -> Vec<u8> {
    let frames = support::frames64(4096, 10_000);
    let mut out = Vec::new();
    let words = |out: &mut Vec<u8>, v: &[u32]| {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    };
    words(
        &mut out,
        &[0x0a0d_0d0a, 28, 0x1a2b_3c4d, 1, u32::MAX, u32::MAX, 28],
    );
    words(&mut out, &[1, 28, 1, 64, 9 | 1 << 16, 9, 28]);
    for i in 0..n {
        words(
            &mut out,
            &[6, 96, 0, 0, i as u32, 64, 64 + (i as u32 * 7) % 1437],
        );
        out.extend_from_slice(&frames[i % frames.len()]);
        out.extend_from_slice(&96u32.to_le_bytes());
    }
    out
}

/// Walks `file` and accounts every frame: (allocations, frames).
fn walk_and_account(file: &[u8]) -> (u64, u64) {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let hosts = shard.hosts.load_full();
    let mut facts = FrameFacts::default();
    counting(true);
    let before = ALLOCS.load(Relaxed);
    let mut w = Walker::new(file).expect("a capture");
    let mut frames = 0;
    loop {
        match w.next_step() {
            Step::Frame(r) => {
                let frame = Frame {
                    data: &file[r.offset..r.offset + r.caplen as usize],
                    wire_len: r.wire_len(),
                    timestamp_ns: r.timestamp_ns,
                };
                account(&shard, &hosts, &mut facts, frame);
                frames += 1;
            }
            Step::End => break,
            other => panic!("{other:?}"),
        }
    }
    let allocs = ALLOCS.load(Relaxed) - before;
    counting(false);
    (allocs, frames)
}

#[test]
fn walking_a_capture_allocates_nothing_per_frame() {
    for (name, make) in [("pcap", pcap as fn(usize) -> Vec<u8>), ("pcapng", pcapng)] {
        let (small, big) = (make(1_000), make(50_000));
        let (a_small, n_small) = walk_and_account(&small);
        let (a_big, n_big) = walk_and_account(&big);
        assert_eq!((n_small, n_big), (1_000, 50_000));
        // pcapng: one allocation for the interface table, whatever the size.
        assert!(
            a_small <= 1,
            "{name}: {a_small} allocations for 1,000 frames"
        );
        assert_eq!(a_big, a_small, "{name}: allocations grow with the frames");
    }
}

/// `xdpacct replay --workers 1` in-process: the reader and one worker over
/// `path`, both counting. Returns (allocations, frames counted).
fn replay_file(path: &Path) -> (u64, u64) {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let stop = Arc::new(AtomicBool::new(false));
    let (reader, mut queues) = replay::replay(vec![path.to_path_buf()], 1);
    let mut queue = queues.pop().unwrap();
    let mut worker = Worker::new(shard.clone(), 64);
    let before = ALLOCS.load(Relaxed);
    let worker_stop = stop.clone();
    let h = std::thread::spawn(move || {
        counting(true);
        let r = worker.run(&mut queue, &worker_stop);
        counting(false);
        r
    });
    counting(true);
    let stats = reader.run(&stop).expect("replay reads the file");
    counting(false);
    h.join().unwrap().unwrap();
    let allocs = ALLOCS.load(Relaxed) - before;
    let counted: u64 = shard.snapshot().traffic.total().packets;
    assert_eq!(counted, stats.frames);
    (allocs, counted)
}

#[test]
fn replaying_a_file_allocates_nothing_per_frame_or_batch() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make) in [("pcap", pcap as fn(usize) -> Vec<u8>), ("pcapng", pcapng)] {
        let small = dir.path().join(format!("small.{name}"));
        let big = dir.path().join(format!("big.{name}"));
        std::fs::File::create(&small)
            .unwrap()
            .write_all(&make(2_000))
            .unwrap();
        std::fs::File::create(&big)
            .unwrap()
            .write_all(&make(200_000))
            .unwrap();
        let (a_small, n_small) = replay_file(&small);
        let (a_big, n_big) = replay_file(&big);
        eprintln!("{name}: {a_small} allocations for 2,000 frames, {a_big} for 200,000");
        assert_eq!((n_small, n_big), (2_000, 200_000));
        // Per file: the mapping's Arc, the interface table, the worker's
        // first wait on a channel. 200,000 frames are 196 batches: one
        // allocation per batch would add 196, one per frame 198,000. A few
        // more may come from the threads parking on the channels (crossbeam
        // registers a waiter the first time a thread blocks on a channel).
        assert!(
            a_big <= a_small + 16,
            "{name}: {a_small} allocations for 2,000 frames, {a_big} for 200,000"
        );
        assert!(
            a_small < 64,
            "{name}: {a_small} allocations for one small file"
        );
    }
}

/// The busiest-connections view (`[connections] top`): frames into the
/// flow cache and expiry sweeps that publish the top list allocate nothing
/// once the cache and the view are built.
#[test]
fn the_connections_view_allocates_nothing_per_frame_or_sweep() {
    use xdpacct::export::cache::SweepVisitor;
    use xdpacct::export::connections::TopView;
    use xdpacct::export::{FlowCache, FlowCacheConfig, FlowStats};
    use xdpacct::wire::L3Addrs;
    let cfg = FlowCacheConfig {
        max_flows: 8192,
        idle_timeout_ms: 30_000,
        active_timeout_ms: 5_000,
    };
    let mut cache = FlowCache::new(&cfg, Arc::new(FlowStats::default()));
    let mut view = TopView::new(1000, 20_000);
    let list = view.published();
    let facts = |i: u32| FrameFacts {
        addrs: L3Addrs::V4 {
            src: i.to_be_bytes(),
            dst: [192, 0, 2, 1],
        },
        protocol: 17,
        src_port: (i % 5000) as u16,
        dst_port: 53,
        has_l4: true,
        ..FrameFacts::default()
    };
    let mut t = 1_000_000u64;
    counting(true);
    let before = MINE.with(|m| m.get());
    let mut x = 1u32;
    // 60 s of fake clock: sweeps every second, active-timeout cuts every 5 s,
    // idle flows leaving, the cache under pressure (more flows than it holds).
    for _ in 0..600 {
        t += 100;
        cache.expire_with(t, &mut view);
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let f = facts(x % 12_000);
            cache.enqueue(0, &f, u64::from(x % 1500), 0, t, &mut |r| {
                SweepVisitor::export(&mut view, r)
            });
        }
        cache.drain(&mut |r| SweepVisitor::export(&mut view, r));
    }
    let allocs = MINE.with(|m| m.get()) - before;
    counting(false);
    let shown = list.lock().map(|l| l.len()).unwrap_or(0);
    assert!(shown > 0 && shown <= 1000, "{shown} connections published");
    assert_eq!(allocs, 0, "the view allocated");
}
