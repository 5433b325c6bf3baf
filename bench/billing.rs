//! The billing ledger's costs (issue 15's goals), printed as plain timings:
//!
//! - the boundary snapshot and its write for 10,000 subjects (10,000
//!   ranges, one customer each, every one with traffic), and with
//!   `billing.hosts = true` for 100,000 hosts (all with traffic);
//! - a worker's rate (frames counted per second, one core) while those
//!   boundaries run back to back on the other core, against the same
//!   worker alone, in the same run;
//! - a month's report over a ledger of 10,000 subjects × 8,640 5-minute
//!   samples (all non-zero), its fill time, size per subject per month and
//!   the report's peak memory (`BILLING_BENCH_INTERVALS` shortens it,
//!   `BILLING_BENCH_KEEP=FILE` keeps the ledger for `sqlite3` or
//!   `/usr/bin/time -v xdpacct billing report`).
//!
//! Run: `cargo bench --profile ci --bench billing` (no criterion: each
//! figure is one or a few runs of seconds, printed with the median).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use xdpacct::billing::store::{IntervalWrite, Store, Volume};
use xdpacct::billing::{cli, report, Ledger};
use xdpacct::metrics::EngineCollector;
use xdpacct::settings::billing::{Method, Missing};
use xdpacct::settings::Settings;
use xdpacct::shard::worker::Worker;
use xdpacct::shard::{Direction, Shard, ShardOrigin, Tables};

#[path = "support.rs"]
mod support;

/// Settings with `ranges` ranges (a /32 or /25 each) from 100.64.0.0, where
/// `support::frames64` puts its local hosts, one customer label value per
/// range.
fn settings(ranges: usize, prefix_len: u8, hosts: bool, db: &std::path::Path) -> Settings {
    let mut toml = String::from("[accounting]\nhost_series = \"all\"\n");
    let step = 1u32 << (32 - prefix_len);
    for i in 0..ranges as u32 {
        let a = std::net::Ipv4Addr::from(0x6440_0000 + i * step);
        toml.push_str(&format!(
            "[[accounting.ranges]]\nprefix = \"{a}/{prefix_len}\"\nlabels = {{ customer = \"c{i}\" }}\n"
        ));
    }
    toml.push_str(&format!(
        "[billing]\nhosts = {hosts}\ndb = \"{}\"\n",
        db.display()
    ));
    Settings::from_toml_str(&toml).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One boundary (snapshot of every shard, delta per host, one transaction)
/// with every host changed since the last one; seconds, median of `runs`.
fn boundary(label: &str, ranges: usize, prefix_len: u8, hosts: bool, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let (shards, mut ledger) = rig(ranges, prefix_len, hosts, &db);
    let iv = 300_000i64;
    let t0 = 1_764_547_200_000i64; // 2025-12-01T00:00Z
    ledger.advance(t0, 0);
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    for k in 1..=runs as i64 {
        for sh in &shards {
            let h = sh.hosts();
            for c in h.slots.iter() {
                c.add(Direction::In, 1500);
                c.add(Direction::Out, 100);
            }
        }
        let t = Instant::now();
        let cpu = thread_cpu_s();
        ledger.advance(t0 + k * iv + 5, iv);
        ledger.write(true).unwrap();
        times.push(t.elapsed().as_secs_f64());
        cpus.push(thread_cpu_s() - cpu);
    }
    println!(
        "boundary snapshot + write, {label}: median {:.3} s over {runs} boundaries (max {:.3} s; CPU median {:.3} s)",
        median(times.clone()),
        times.iter().cloned().fold(0.0, f64::max),
        median(cpus)
    );
}

/// A month of samples (`intervals` × `subjects`, all non-zero, rates of
/// 0.1 to 100 Mbit/s with one subject in 100 ten times that, varying per
/// interval) written through the ledger's store API (`Store::write`, one
/// transaction per 12 intervals, closed: the same SQL and packing as the
/// daemon's boundary, without the shard snapshot), then the report of it.
fn report_bench(subjects: usize, intervals: i64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let iv = 300i64;
    let mut store = Store::open(&db, iv, "bench").unwrap();
    let t0 = 1_764_547_200i64; // 2025-12-01T00:00Z
    let labels: Vec<Arc<str>> = (0..subjects)
        .map(|i| Arc::from(format!("{{\"customer\":\"c{i}\"}}")))
        .collect();
    let t = Instant::now();
    let cpu = thread_cpu_s();
    let mut batch = Vec::new();
    for k in 0..intervals {
        let mut w = IntervalWrite {
            start: t0 + k * iv,
            covered_ms: iv as u64 * 1000,
            closed: true,
            ..Default::default()
        };
        let day = 2 + (k % 288 * 8 / 288) as u64; // 2..9 tenths through the day
        for (i, l) in labels.iter().enumerate() {
            let mbit = 1 + (i as u64 * 7919) % 1000; // tenths of Mbit/s
            let mbit = if i % 100 == 7 { mbit * 10 } else { mbit };
            let noise = (i as u64 * 31 + k as u64 * 17) % 64;
            let in_bytes = mbit * 100_000 / 8 * iv as u64 * day / 10 + noise;
            let out_bytes = in_bytes / 5 + noise;
            w.samples.insert(
                l.clone(),
                Volume {
                    in_packets: in_bytes / 900 + 1,
                    in_bytes,
                    out_packets: out_bytes / 200 + 1,
                    out_bytes,
                },
            );
        }
        batch.push(w);
        if batch.len() == 12 || k == intervals - 1 {
            store.write(&batch).unwrap();
            batch.clear();
        }
    }
    let fill = t.elapsed().as_secs_f64();
    let fill_cpu = thread_cpu_s() - cpu;
    drop(store);
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let rows = subjects as f64 * intervals as f64;
    let per_month = size as f64 / rows * 8640.0;
    println!(
        "ledger: {subjects} subjects x {intervals} intervals written in {fill:.1} s (CPU {fill_cpu:.1} s); {size} bytes = {:.1} bytes per sample = {:.0} KB per subject per month (8640 samples)",
        size as f64 / rows,
        per_month / 1000.0
    );
    let period = report::Period {
        start: t0,
        end: t0 + intervals * iv,
    };
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut peak_kb = Vec::new();
    for _ in 0..3 {
        // Peak RSS of the report alone: reset the high-water mark first.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let t = Instant::now();
        let cpu = thread_cpu_s();
        let r = cli::report_from_dbs(
            std::slice::from_ref(&db),
            period,
            Method::MaxOfP95,
            Missing::Zero,
            i64::MAX / 2,
            vec![],
        )
        .unwrap();
        assert_eq!(r.subjects.len(), subjects);
        assert_eq!(r.subjects[0].samples.expected, intervals as u64);
        times.push(t.elapsed().as_secs_f64());
        cpus.push(thread_cpu_s() - cpu);
        peak_kb.push(vm_hwm_kb());
    }
    let m = median(times.clone());
    println!(
        "report of {subjects} subjects x {intervals} intervals: median {m:.2} s of 3 ({times:.2?}; CPU {:.2} s, {cpus:.2?}; {:.1} M samples/s); process peak RSS during it {peak_kb:?} kB",
        median(cpus.clone()),
        rows / m / 1e6,
    );
    if let Ok(keep) = std::env::var("BILLING_BENCH_KEEP") {
        std::fs::copy(&db, &keep).unwrap();
        println!("ledger kept as {keep}");
    }
}

/// This thread's CPU time so far, seconds (the machine is shared: wall
/// time alone says more about the others' load than about the ledger).
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0) as f64
        / 1e9
}

/// The process's peak resident set (VmHWM), kB.
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The shards (two queues) and the ledger of a boundary bench.
fn rig(
    ranges: usize,
    prefix_len: u8,
    hosts: bool,
    db: &std::path::Path,
) -> (Vec<Arc<Shard>>, Ledger) {
    let s = settings(ranges, prefix_len, hosts, db);
    let tables = Arc::new(Tables::build(&s.accounting, "bench", None).unwrap());
    let shards: Vec<Arc<Shard>> = (0..2)
        .map(|q| {
            Arc::new(Shard::new(
                ShardOrigin {
                    interface: "eth0".into(),
                    queue: q,
                },
                tables.clone(),
            ))
        })
        .collect();
    let source = Arc::new(EngineCollector::new(shards.clone()));
    let cfg = s.billing.clone().unwrap();
    (shards, Ledger::open(&cfg, source).unwrap())
}

/// A worker counting 64-byte frames into `shard` for `secs` on this
/// thread: Mpps of wall time, and Mpps of the thread's CPU time (what the
/// frames cost when it runs, whatever else shares the core).
fn worker_rate(shard: &Arc<Shard>, frames: &[Vec<u8>], secs: f64) -> (f64, f64) {
    let mut worker = Worker::new(shard.clone(), 64);
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let cpu = thread_cpu_s();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        let mut cap = support::MemCapture::new(frames);
        black_box(worker.run(&mut cap, &stop).is_ok());
        n += frames.len() as u64;
    }
    let n = n as f64 / 1e6;
    (n / t.elapsed().as_secs_f64(), n / (thread_cpu_s() - cpu))
}

/// The worker's rate (core 1) with the ledger's boundary snapshot and
/// write running back to back on core 0, against the same worker alone,
/// in one run. The worker counts into queue 0's shard, which the ledger
/// snapshots; before each boundary the ledger thread also adds one frame
/// to every host of queue 1's shard, so every subject has a sample.
fn worker_during_boundaries(secs: f64) {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() < 2 {
        println!("worker rate during boundaries: needs 2 cores, skipped");
        return;
    }
    core_affinity::set_for_current(cores[1]);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "worker rate during boundaries: worker on core {}, ledger on core {}, {secs} s each, load average {}",
        cores[1].id,
        cores[0].id,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let cases: [(&str, usize, u8, bool, u32); 2] = [
        ("10,000 subjects", 10_000, 32, false, 10_000),
        ("hosts = true, 100,000 hosts", 782, 25, true, 100_000),
    ];
    for (label, ranges, prefix_len, hosts, n_hosts) in cases {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let (shards, mut ledger) = rig(ranges, prefix_len, hosts, &db);
        let frames: Vec<Vec<u8>> = support::frames64(8192, n_hosts)
            .iter()
            .map(|f| f.to_vec())
            .collect();
        let alone = worker_rate(&shards[0], &frames, secs);
        let stop = Arc::new(AtomicBool::new(false));
        let ledger_thread = {
            let stop = stop.clone();
            let other = shards[1].clone();
            let core = cores[0];
            std::thread::spawn(move || {
                core_affinity::set_for_current(core);
                let iv = 300_000i64;
                let t0 = 1_764_547_200_000i64;
                ledger.advance(t0, 0);
                let mut k = 0i64;
                while !stop.load(Relaxed) {
                    k += 1;
                    for c in other.hosts().slots.iter() {
                        c.add(Direction::In, 1500);
                    }
                    ledger.advance(t0 + k * iv + 5, iv);
                    ledger.write(true).unwrap();
                }
                k
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let with = worker_rate(&shards[0], &frames, secs);
        stop.store(true, Relaxed);
        let boundaries = ledger_thread.join().unwrap();
        let after = worker_rate(&shards[0], &frames, secs);
        // Control: the other core busy with something that is not the
        // ledger (streaming over 64 MiB, the size of a big snapshot), so
        // what the ledger itself costs the worker shows apart from what a
        // busy neighbour core costs it.
        let stop = Arc::new(AtomicBool::new(false));
        let busy = {
            let stop = stop.clone();
            let core = cores[0];
            std::thread::spawn(move || {
                core_affinity::set_for_current(core);
                let mut buf = vec![0u64; 8 << 20];
                let mut x = 0u64;
                while !stop.load(Relaxed) {
                    for v in buf.iter_mut() {
                        x = x.wrapping_add(*v);
                        *v = x;
                    }
                }
                black_box(x)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let control = worker_rate(&shards[0], &frames, secs);
        stop.store(true, Relaxed);
        busy.join().unwrap();
        println!(
            "  {label}: control, the other core streaming over 64 MiB instead: {:.2} Mpps, per CPU second {:.2} Mpps: ratio {:.3}",
            control.0,
            control.1,
            control.1 / ((alone.1 + after.1) / 2.0)
        );
        println!(
            "  {label}: worker alone {:.2} Mpps (again after: {:.2}), during {boundaries} back-to-back boundaries {:.2} Mpps: ratio {:.3}; per CPU second alone {:.2} / {:.2}, during {:.2} Mpps: ratio {:.3}",
            alone.0, after.0, with.0,
            with.0 / ((alone.0 + after.0) / 2.0),
            alone.1, after.1, with.1,
            with.1 / ((alone.1 + after.1) / 2.0)
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    boundary("10,000 subjects (10,000 /32 ranges)", 10_000, 32, false, 5);
    boundary(
        "hosts = true, 100,000 hosts (782 /25 ranges) + their 782 subjects",
        782,
        25,
        true,
        5,
    );
    worker_during_boundaries(4.0);
    let intervals = std::env::var("BILLING_BENCH_INTERVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8640);
    // BILLING_BENCH_INTERVALS=0: the boundary and worker figures only.
    if intervals > 0 {
        report_bench(10_000, intervals);
    }
}
