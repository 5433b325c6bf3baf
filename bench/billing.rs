//! The billing ledger's costs (issue 15's goals), printed as plain timings:
//!
//! - the boundary snapshot and its write for 10,000 subjects (10,000
//!   ranges, one customer each, every one with traffic), and with
//!   `billing.hosts = true` for 100,000 hosts (all with traffic);
//! - a report over a ledger of 10,000 subjects (3 days of 5-minute
//!   samples, all non-zero: a month is 10 times as many rows), and the
//!   ledger's size per subject per month.
//!
//! Run: `cargo bench --profile ci --bench billing` (no criterion: each
//! figure is one or a few runs of seconds, printed with the median).

use std::sync::Arc;
use std::time::Instant;

use xdpacct::billing::{cli, report, Ledger};
use xdpacct::metrics::EngineCollector;
use xdpacct::settings::billing::{Method, Missing};
use xdpacct::settings::Settings;
use xdpacct::shard::{Direction, Shard, ShardOrigin, Tables};

/// Settings with `ranges` ranges of `per_range` hosts (a /32 or /25 each),
/// one customer label value per range.
fn settings(ranges: usize, prefix_len: u8, hosts: bool, db: &std::path::Path) -> Settings {
    let mut toml = String::from("[accounting]\nhost_series = \"all\"\n");
    let step = 1u32 << (32 - prefix_len);
    for i in 0..ranges as u32 {
        let a = std::net::Ipv4Addr::from(0x0a00_0000 + i * step);
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
    let s = settings(ranges, prefix_len, hosts, &db);
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
    let mut ledger = Ledger::open(&cfg, source).unwrap();
    let iv = cfg.interval_secs() * 1000;
    let t0 = 1_764_547_200_000i64; // 2025-12-01T00:00Z
    ledger.advance(t0, 0);
    let mut times = Vec::new();
    for k in 1..=runs as i64 {
        for sh in &shards {
            let h = sh.hosts();
            for c in h.slots.iter() {
                c.add(Direction::In, 1500);
                c.add(Direction::Out, 100);
            }
        }
        let t = Instant::now();
        ledger.advance(t0 + k * iv + 5, iv);
        ledger.write(true).unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    println!(
        "boundary snapshot + write, {label}: median {:.3} s over {runs} boundaries (max {:.3} s)",
        median(times.clone()),
        times.iter().cloned().fold(0.0, f64::max)
    );
}

fn report_bench(subjects: usize, intervals: i64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let s = settings(subjects, 32, false, &db);
    let tables = Arc::new(Tables::build(&s.accounting, "bench", None).unwrap());
    let shard = Arc::new(Shard::new(
        ShardOrigin {
            interface: "eth0".into(),
            queue: 0,
        },
        tables,
    ));
    let cfg = s.billing.clone().unwrap();
    let mut ledger =
        Ledger::open(&cfg, Arc::new(EngineCollector::new(vec![shard.clone()]))).unwrap();
    let iv = cfg.interval_secs() * 1000;
    let t0 = 1_764_547_200_000i64;
    ledger.advance(t0, 0);
    let t = Instant::now();
    for k in 1..=intervals {
        let h = shard.hosts();
        for (i, c) in h.slots.iter().enumerate() {
            c.add(Direction::In, 64 + (i as u64 * 7 + k as u64 * 13) % 1400);
            c.add(Direction::Out, 64);
        }
        ledger.advance(t0 + k * iv, iv);
        ledger.write(false).unwrap();
    }
    let fill = t.elapsed().as_secs_f64();
    drop(ledger);
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let rows = subjects as f64 * intervals as f64;
    let per_month = size as f64 / rows * 8640.0;
    println!(
        "ledger: {subjects} subjects x {intervals} intervals written in {fill:.1} s; {size} bytes = {:.1} bytes per sample = {:.0} KB per subject per month (8640 samples)",
        size as f64 / rows,
        per_month / 1000.0
    );
    let period = report::Period {
        start: t0 / 1000,
        end: t0 / 1000 + intervals * iv / 1000,
    };
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
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
        times.push(t.elapsed().as_secs_f64());
    }
    let m = median(times);
    println!(
        "report of {subjects} subjects x {intervals} intervals: median {m:.2} s ({:.1} M samples/s; a month of 8640 intervals: ~{:.1} s by extrapolation)",
        rows / m / 1e6,
        m * 8640.0 / intervals as f64
    );
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
    let intervals = std::env::var("BILLING_BENCH_INTERVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(864);
    report_bench(10_000, intervals);
}
