//! Accounting a frame never allocates, nor does reading it from a capture
//! file: a counting global allocator proves it. It counts only in threads
//! that asked for it (`counting(true)`), and the tests take turns
//! (`serial`: a test's counting threads add to the one global count), so
//! tests side by side and the test harness do not disturb each other's
//! counts.

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

/// One test at a time: every counting thread adds to `ALLOCS`.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn parse_and_account_allocate_nothing_per_frame() {
    let _serial = serial();
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
    let _serial = serial();
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
    replay_files(&[path], false)
}

/// Replays `paths` (read in order, or `merged` as one interface each) on
/// one worker per interface; returns (allocations, frames counted).
fn replay_files(paths: &[&Path], merged: bool) -> (u64, u64) {
    let acct = support::accounting(10_000);
    let stop = Arc::new(AtomicBool::new(false));
    let files: Vec<_> = paths.iter().map(|p| p.to_path_buf()).collect();
    let (reader, queues) = if merged {
        let (reader, groups) = replay::replay_merged(files, 1);
        (reader, groups.into_iter().flatten().collect())
    } else {
        replay::replay(files, 1)
    };
    let shards: Vec<_> = queues.iter().map(|_| support::shard(&acct)).collect();
    let workers: Vec<_> = shards.iter().map(|s| Worker::new(s.clone(), 64)).collect();
    let before = ALLOCS.load(Relaxed);
    let handles: Vec<_> = queues
        .into_iter()
        .zip(workers)
        .map(|(mut queue, mut worker)| {
            let worker_stop = stop.clone();
            std::thread::spawn(move || {
                counting(true);
                let r = worker.run(&mut queue, &worker_stop);
                counting(false);
                r
            })
        })
        .collect();
    counting(true);
    let stats = reader.run(&stop).expect("replay reads the file");
    counting(false);
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let allocs = ALLOCS.load(Relaxed) - before;
    let counted: u64 = shards
        .iter()
        .map(|s| s.snapshot().traffic.total().packets)
        .sum();
    assert_eq!(counted, stats.frames);
    (allocs, counted)
}

#[test]
fn replaying_a_file_allocates_nothing_per_frame_or_batch() {
    let _serial = serial();
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
    // Two files merged by timestamp (replay --interface-per-file
    // --billing-db): per file, not per frame or batch either.
    let (small, big) = (dir.path().join("small.pcap"), dir.path().join("big.pcap"));
    let (a_small, n_small) = replay_files(&[&small, &small], true);
    let (a_big, n_big) = replay_files(&[&big, &big], true);
    eprintln!("merged: {a_small} allocations for 2 x 2,000 frames, {a_big} for 2 x 200,000");
    assert_eq!((n_small, n_big), (4_000, 400_000));
    assert!(
        a_big <= a_small + 32,
        "merged: {a_small} allocations for 2 x 2,000 frames, {a_big} for 2 x 200,000"
    );
}

/// A NetFlow v9 datagram: header, the template (with `template`), and 20
/// records (IPv4 src, dst, packets, bytes, input and output ifIndex) between
/// 100.64.0.x (local, in the ranges) and 203.0.113.x.
fn v9_datagram(seq: u32, template: bool) -> Vec<u8> {
    v9_datagram_to(seq, template, 113)
}

/// [`v9_datagram`] with remotes in 203.0.`net`.0/24.
fn v9_datagram_to(seq: u32, template: bool, net: u8) -> Vec<u8> {
    let mut v = vec![0, 9, 0, 20];
    v.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x5f, 0, 0]);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1]);
    let fields: [(u16, u16); 6] = [(8, 4), (12, 4), (2, 4), (1, 4), (10, 4), (14, 4)];
    if template {
        let mut t = vec![1, 0, 0, fields.len() as u8];
        for (ty, len) in fields {
            t.extend_from_slice(&ty.to_be_bytes());
            t.extend_from_slice(&len.to_be_bytes());
        }
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&((t.len() + 4) as u16).to_be_bytes());
        v.extend_from_slice(&t);
    }
    let mut d = Vec::new();
    for i in 0..20u8 {
        let (local, remote) = ([100, 64, 0, i], [203, 0, net, i]);
        let (s, dst) = if i % 2 == 0 {
            (remote, local)
        } else {
            (local, remote)
        };
        d.extend_from_slice(&s);
        d.extend_from_slice(&dst);
        d.extend_from_slice(&3u32.to_be_bytes());
        d.extend_from_slice(&1500u32.to_be_bytes());
        d.extend_from_slice(&7u32.to_be_bytes());
        d.extend_from_slice(&8u32.to_be_bytes());
    }
    v.extend_from_slice(&[1, 0]);
    v.extend_from_slice(&((d.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(&d);
    v
}

/// Flow input: decoding a datagram and counting its records through the
/// shard path allocates nothing once the exporter, its template and its
/// interfaces are known.
#[test]
fn flow_records_are_counted_without_allocating() {
    let _serial = serial();
    use xdpacct::collector::input::FlowInput;
    use xdpacct::collector::CollectorConfig;
    use xdpacct::settings::Accounting;
    use xdpacct::shard::{Shard, ShardOrigin, Tables};

    let acct = Accounting::from_raw(&support::accounting(256), "test").unwrap();
    let tables = Arc::new(Tables::build(&acct, "test", None).unwrap());
    let shard = Arc::new(Shard::new_flow(
        ShardOrigin {
            interface: "collector:test".into(),
            queue: 0,
        },
        tables,
        64,
    ));
    let mut input =
        FlowInput::new(CollectorConfig::default(), shard.clone(), String::new()).unwrap();
    let from = "192.0.2.1:2055".parse().unwrap();
    let now = std::time::Instant::now();
    input.datagram(from, now, &v9_datagram(0, true));
    let steady: Vec<Vec<u8>> = (1..=500).map(|s| v9_datagram(s, false)).collect();
    counting(true);
    let before = ALLOCS.load(Relaxed);
    for d in &steady {
        input.datagram(from, now, d);
    }
    let after = ALLOCS.load(Relaxed);
    counting(false);
    assert_eq!(
        after - before,
        0,
        "allocations while counting 10,000 records"
    );
    // Every record counted: 501 datagrams × 20 records × 3 packets.
    let packets = shard.snapshot().traffic.total().packets;
    assert_eq!(packets, 501 * 20 * 3);
}

/// Flow input re-exported through `[netflow]` (`Engine::add_flow_input`):
/// `n` datagrams of 20 records each, to 250 × 20 distinct flows, through a
/// flow cache of 1,024 flows, so most records push an older flow out to
/// the exporter. Returns the allocations while they ran, after a warm-up,
/// and the flow records the exporter took.
fn flow_export_allocations(n: u32) -> (u64, u64) {
    use xdpacct::settings::raw::{Config, NetflowConfig};
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let raw = Config {
        accounting: support::accounting(256),
        netflow: NetflowConfig {
            collectors: vec![sink.local_addr().unwrap().to_string()],
            max_flows: Some(1_024),
            ..Default::default()
        },
        collector: Some(xdpacct::settings::collector::CollectorConfig {
            listen: vec!["127.0.0.1:0".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let settings = xdpacct::settings::Settings::from_raw(&raw, "test").unwrap();
    let mut engine = xdpacct::engine::Engine::build(&settings).unwrap();
    engine.start_export().unwrap();
    let mut input = engine.add_flow_input("127.0.0.1:0", 0).unwrap();
    let from = "192.0.2.1:2055".parse().unwrap();
    let now = std::time::Instant::now();
    let data: Vec<Vec<u8>> = (0..n + 250)
        .map(|s| v9_datagram_to(s, s == 0, (s % 250) as u8))
        .collect();
    input.tick(0);
    for d in &data[..250] {
        input.datagram(from, now, d);
    }
    counting(true);
    let before = ALLOCS.load(Relaxed);
    for (k, d) in data[250..].iter().enumerate() {
        if k % 50 == 0 {
            input.tick(k as u64);
        }
        input.datagram(from, now, d);
    }
    let allocs = ALLOCS.load(Relaxed) - before;
    counting(false);
    input.finish();
    drop(input);
    let exposition = engine.exposition();
    // Shutdown joins the exporter: every record it took is counted.
    engine.shutdown().unwrap();
    let page = String::from_utf8(exposition.render()).unwrap();
    let exported = page
        .lines()
        .filter(|l| l.starts_with("xdpacct_flow_records_exported_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    (allocs, exported as u64)
}

#[test]
fn flow_records_are_re_exported_without_allocating_per_record() {
    let _serial = serial();
    let (a_small, e_small) = flow_export_allocations(100);
    let (a_big, e_big) = flow_export_allocations(5_000);
    eprintln!(
        "flow input re-export: {a_small} allocations for 2,000 records ({e_small} exported), \
         {a_big} for 100,000 ({e_big} exported)"
    );
    assert!(
        e_big > 50_000,
        "the cache pushed flows to the exporter: {e_big}"
    );
    // A batch (256 records) is allocated only while the exporter thread
    // has not yet handed one back (bounded by the channel): at most one
    // per batch, never one per record.
    let batches = e_big / 256;
    assert!(
        a_big <= a_small + batches,
        "{a_small} allocations for 2,000 records, {a_big} for 100,000 ({batches} batches)"
    );
}

/// The full pipeline as `xdpacct run` assembles it (`engine::Engine`): host
/// ranges, an AS table and networks for both families, flow export to a UDP
/// socket, over IPv4 and IPv6 frames of many flows (some ending with FIN,
/// so records leave for the exporter). Returns the allocations of the
/// worker's thread while it ran `n` frames, after a warm-up.
fn pipeline_allocations(n: usize) -> (u64, u64) {
    use xdpacct::settings::raw::{Config, NetflowConfig, NetworkConfig};
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.txt");
    std::fs::write(
        &routes,
        "0.0.0.0/1 100\n128.0.0.0/2 101\n203.0.0.0/16 102\n203.0.7.0/24 103\n\
         2000::/3 200\n2a00::/12 201\n2a00:1::/32 202\n2a00:1:2::/48 203\n",
    )
    .unwrap();
    let mut acct = support::accounting(10_000);
    acct.local_networks.push("2001:db8::/32".into());
    acct.ranges.push(xdpacct::settings::raw::RangeConfig {
        prefix: Some("2001:db8::/52".into()),
        ..Default::default()
    });
    acct.as_file = Some(routes.display().to_string());
    acct.as_file_format = Some(xdpacct::settings::AsFileFormat::PrefixAsn);
    acct.networks = vec![NetworkConfig {
        name: "n1".into(),
        prefixes: vec!["203.0.0.0/20".into(), "2a00:1::/32".into()],
        ..Default::default()
    }];
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let raw = Config {
        accounting: acct,
        netflow: NetflowConfig {
            collectors: vec![collector.local_addr().unwrap().to_string()],
            max_flows: Some(4096),
            ..Default::default()
        },
        ..Default::default()
    };
    let settings = xdpacct::settings::Settings::from_raw(&raw, "test").unwrap();
    let mut engine = xdpacct::engine::Engine::build(&settings).unwrap();
    engine.start_export().unwrap();
    let mut worker = engine.add_queue("t0", 0, 1).unwrap();
    let shard = worker.shard().clone();
    // IPv4 frames (remote 203.0.x.y: AS and network hits) and IPv6 frames
    // (remote in 2a00:1::/32) of 3,000 flows, over and over; every 300th
    // frame a FIN, which exports its flow (a new one starts with the next
    // frame of the same addresses and ports).
    let distinct = support::frames64(3_000, 10_000);
    let frames: Vec<Vec<u8>> = (0..n + 2_000)
        .map(|i| {
            let k = i % 3_000;
            let mut f = if k % 3 == 0 {
                let remote = (0x2a00_0001u128 << 96) | (k as u128) << 16 | 7;
                support::frame_v6(k, remote)
            } else {
                distinct[k].to_vec()
            };
            if i % 300 == 299 {
                let flags = if k % 3 == 0 { 54 + 13 } else { 34 + 13 };
                f[flags] = 0x11;
            }
            f
        })
        .collect();
    let stop = AtomicBool::new(false);
    let warm = support::MemCapture::new(&frames[..2_000]);
    worker.run(&mut { warm }, &stop).unwrap();
    let mut cap = support::MemCapture::new(&frames[2_000..]);
    counting(true);
    let before = ALLOCS.load(Relaxed);
    worker.run(&mut cap, &stop).unwrap();
    let allocs = ALLOCS.load(Relaxed) - before;
    counting(false);
    drop(worker);
    engine.shutdown().unwrap();
    let counted = shard.snapshot().traffic.total().packets - 2_000;
    (allocs, counted)
}

#[test]
fn the_full_pipeline_allocates_nothing_per_frame() {
    let _serial = serial();
    let (a_small, n_small) = pipeline_allocations(2_000);
    let (a_big, n_big) = pipeline_allocations(200_000);
    eprintln!("pipeline: {a_small} allocations for 2,000 frames, {a_big} for 200,000");
    assert_eq!((n_small, n_big), (2_000, 200_000));
    // 200,000 frames export ~670 records (FIN) in several batches: one
    // allocation per frame, record or batch would show. (The sink's batches
    // are made up front: `SPARE_BATCHES_PER_SINK`.)
    assert!(
        a_big <= a_small + 16,
        "{a_small} allocations for 2,000 frames, {a_big} for 200,000"
    );
}

/// The busiest-connections view (`[connections] top`): frames into the
/// flow cache and expiry sweeps that publish the top list allocate nothing
/// once the cache and the view are built.
#[test]
fn the_connections_view_allocates_nothing_per_frame_or_sweep() {
    let _serial = serial();
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
