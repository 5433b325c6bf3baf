//! The engine's own replay path with flow export: the capture reader, two
//! workers with their `FlowObserver`s (one flow cache per shard) and one
//! exporter, as `xdpacct replay` wires them, into a real nfcapd. nfdump's
//! totals and per-host bytes must equal the ground truth of the synthetic
//! 100k-frame capture (tests/data/gen_traffic.py, into a temporary directory).

use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpacct::capture::replay;
use xdpacct::export::FlowExport;
use xdpacct::settings::raw::AccountingConfig;
use xdpacct::settings::{Accounting, Netflow};
use xdpacct::shard::worker::Worker;
use xdpacct::shard::{Shard, ShardOrigin, Tables};

mod common;

/// nfcapd, stopped with SIGTERM (it writes its file then) even on failure.
struct Nfcapd(Option<Child>);

impl Nfcapd {
    fn stop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.octets()[..3] == [198, 51, 100],
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 1],
    }
}

#[test]
fn replay_with_two_workers_exports_the_truth_to_nfcapd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let (capture, truth_path) = common::generate_sample(data.path());
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port();
    let mut nfcapd = Nfcapd(Some(
        Command::new("nfcapd")
            .arg("-w")
            .arg(dir.path())
            .args([
                "-p",
                &port.to_string(),
                "-b",
                "127.0.0.1",
                "-t",
                "3600",
                "-B",
                "4000000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nfcapd (Debian package nfdump) starts"),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "nfcapd did not bind port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The engine, as cmd_replay builds it, plus flow export.
    let accounting = AccountingConfig {
        local_networks: vec!["198.51.100.0/24".into(), "2001:db8:1::/48".into()],
        ..AccountingConfig::default()
    };
    let accounting = Accounting::from_raw(&accounting, "test").expect("accounting");
    let tables = Arc::new(Tables::build(&accounting, "test", None).expect("tables"));
    let netflow = Netflow {
        collectors: vec![format!("127.0.0.1:{port}")],
        version: 9,
        ..Netflow::default()
    };
    let (cache, mut exporter) = xdpacct::export::observer::configs(&netflow);
    // Thousands of packets at once could overflow nfcapd's socket buffer.
    exporter.max_packets_per_sec = 20_000;
    let mut export = FlowExport::with_config(cache, &exporter).expect("exporter");
    let stop = Arc::new(AtomicBool::new(false));
    let (reader, queues) = replay::replay(vec![capture], 2);
    let handles: Vec<_> = queues
        .into_iter()
        .enumerate()
        .map(|(q, mut queue)| {
            let shard = Arc::new(Shard::new(
                ShardOrigin {
                    interface: "replay".into(),
                    queue: q as u32,
                },
                tables.clone(),
            ));
            let observer = export.observer(&format!("replay/{q}"), 1);
            let mut worker = Worker::new(shard, 64).with_observer(Box::new(observer));
            let stop = stop.clone();
            std::thread::spawn(move || worker.run(&mut queue, &stop))
        })
        .collect();
    reader.run(&stop).expect("replay reads the file");
    for h in handles {
        h.join().expect("worker").expect("worker run");
    }
    let metrics = export.metrics();
    let stats = export.exporter().stats().clone();
    export.shutdown().expect("exporter stops");
    std::thread::sleep(Duration::from_millis(500));
    nfcapd.stop();

    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir.path())
        .args(["-q", "-N", "-6", "-o", "fmt:%sa|%da|%pkt|%byt"])
        .output()
        .expect("nfdump runs");
    assert!(
        out.status.success(),
        "nfdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut flows, mut packets, mut bytes) = (0u64, 0u64, 0u64);
    let mut hosts: HashMap<IpAddr, (u64, u64)> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let (src, dst): (IpAddr, IpAddr) = (f[0].parse().expect("src"), f[1].parse().expect("dst"));
        let (p, b): (u64, u64) = (f[2].parse().expect("packets"), f[3].parse().expect("bytes"));
        flows += 1;
        packets += p;
        bytes += b;
        if is_local(dst) {
            hosts.entry(dst).or_default().0 += b;
        }
        if is_local(src) {
            hosts.entry(src).or_default().1 += b;
        }
    }

    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).expect("truth")).expect("json");
    assert_eq!(
        flows,
        stats.records_exported.get(),
        "flows in nfdump vs records exported"
    );
    assert_eq!(
        packets,
        truth["totals"]["packets"].as_u64().expect("packets")
    );
    assert_eq!(bytes, truth["totals"]["l2_bytes"].as_u64().expect("bytes"));
    let th = truth["hosts"].as_object().expect("hosts");
    assert_eq!(hosts.len(), th.len());
    for (host, t) in th {
        let ip: IpAddr = host.parse().expect("host");
        let want = (
            t["in_l2_bytes"].as_u64().unwrap_or(0),
            t["out_l2_bytes"].as_u64().unwrap_or(0),
        );
        assert_eq!(hosts.get(&ip), Some(&want), "host {host}");
    }
    // Both shards exported through the one exporter, nothing was dropped.
    use prometheus::core::Collector;
    let families = metrics.collect();
    let dropped: f64 = families
        .iter()
        .filter(|f| f.name() == "xdpacct_flow_records_dropped_total")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()))
        .sum();
    assert_eq!(dropped, 0.0);
    let shards = families
        .iter()
        .find(|f| f.name() == "xdpacct_flow_cache_flows")
        .map_or(0, |f| f.get_metric().len());
    assert_eq!(shards, 2);
}
