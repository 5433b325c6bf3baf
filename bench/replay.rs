//! `xdpacct replay`'s data path: the replay reader and one worker over a
//! capture of 64-byte frames in the page cache (10,000 configured hosts).
//!
//! `replay/cpu_*` reports frames per CPU-second of the whole process (reader
//! and worker threads together: criterion's time is the process CPU time of
//! each run), `replay/wall_*` frames per wall-clock second.
//!
//! Run: `cargo bench --bench replay` (or `--profile ci` for a quick build).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use xdpacct::capture::replay;
use xdpacct::shard::worker::Worker;
use xdpacct::shard::Shard;

#[path = "support.rs"]
mod support;

/// Frames in the bench capture (64 B each: 80 MB as pcap, 96 MB as pcapng).
const FRAMES: usize = 1_000_000;

/// Writes `frames` as a little-endian microsecond pcap.
fn write_pcap(path: &Path, frames: &[[u8; 64]]) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes()).unwrap();
    w.write_all(&[2, 0, 4, 0]).unwrap();
    w.write_all(&[0; 8]).unwrap();
    w.write_all(&65535u32.to_le_bytes()).unwrap();
    w.write_all(&1u32.to_le_bytes()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        for v in [
            1_700_000_000 + i as u32 / 1000,
            i as u32 % 1000 * 1000,
            64,
            64,
        ] {
            w.write_all(&v.to_le_bytes()).unwrap();
        }
        w.write_all(f).unwrap();
    }
    w.flush().unwrap();
}

/// Writes `frames` as a little-endian pcapng: SHB, one Ethernet IDB, EPBs.
fn write_pcapng(path: &Path, frames: &[[u8; 64]]) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let words = |w: &mut std::io::BufWriter<std::fs::File>, v: &[u32]| {
        for x in v {
            w.write_all(&x.to_le_bytes()).unwrap();
        }
    };
    words(
        &mut w,
        &[0x0a0d_0d0a, 28, 0x1a2b_3c4d, 1, u32::MAX, u32::MAX, 28],
    );
    words(&mut w, &[1, 20, 1, 0, 20]);
    for (i, f) in frames.iter().enumerate() {
        let ts = 1_700_000_000_000_000u64 + i as u64;
        words(&mut w, &[6, 96, 0, (ts >> 32) as u32, ts as u32, 64, 64]);
        w.write_all(f).unwrap();
        words(&mut w, &[96]);
    }
    w.flush().unwrap();
}

/// Process CPU time (all threads).
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID
    // is always available on Linux.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Replays `path` through one worker (as `xdpacct replay --workers 1`).
fn replay_once(shard: &Arc<Shard>, path: &Path) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let (reader, mut queues) = replay::replay(vec![path.to_path_buf()], 1);
    let mut queue = queues.pop().unwrap();
    let mut worker = Worker::new(shard.clone(), 64);
    let worker_stop = stop.clone();
    let h = std::thread::spawn(move || worker.run(&mut queue, &worker_stop));
    let stats = reader.run(&stop).expect("replay reads the bench file");
    h.join().unwrap().unwrap();
    assert_eq!(stats.frames, FRAMES as u64);
    stats.frames
}

fn bench_replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let frames = support::frames64(FRAMES, 10_000);
    let pcap = dir.path().join("bench64.pcap");
    let pcapng = dir.path().join("bench64.pcapng");
    write_pcap(&pcap, &frames);
    write_pcapng(&pcapng, &frames);
    drop(frames);
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    // Into the page cache.
    replay_once(&shard, &pcap);
    replay_once(&shard, &pcapng);

    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(FRAMES as u64));
    for (name, path) in [("pcap", &pcap), ("pcapng", &pcapng)] {
        g.bench_function(format!("cpu_{name}_64B_1_worker"), |b| {
            b.iter_custom(|iters| {
                let start = cpu_now();
                for _ in 0..iters {
                    replay_once(&shard, path);
                }
                cpu_now() - start
            })
        });
        g.bench_function(format!("wall_{name}_64B_1_worker"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    replay_once(&shard, path);
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
