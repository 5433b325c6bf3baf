//! Busiest connections (`[connections] top`) through `xdpacct replay`,
//! against the generator's own truth (tests/data/gen_connections.py): the
//! page has exactly `top` connection series, they are the `top` biggest
//! connections, and each one's bytes and packets equal its truth. With a
//! cache of its own and with the cache flow export uses.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn gen(dir: &Path, flows: u32, seed: u32) -> (PathBuf, serde_json::Value) {
    let pcap = dir.join(format!("conn-{seed}.pcap"));
    let truth = dir.join(format!("conn-{seed}.json"));
    let st = Command::new("python3")
        .arg(data_dir().join("gen_connections.py"))
        .arg(&pcap)
        .args(["--flows", &flows.to_string(), "--seed", &seed.to_string()])
        .arg("--truth")
        .arg(&truth)
        .status()
        .unwrap();
    assert!(st.success());
    let truth = serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap();
    (pcap, truth)
}

fn config(dir: &Path, top: u32, netflow: Option<u16>) -> PathBuf {
    let path = dir.join(format!("conn-{top}-{}.toml", netflow.is_some()));
    let netflow = netflow.map_or_else(String::new, |port| {
        format!("[netflow]\ncollectors = [\"127.0.0.1:{port}\"]\n")
    });
    std::fs::write(
        &path,
        format!(
            r#"
[accounting]
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
[connections]
top = {top}
idle_timeout = 300
{netflow}"#
        ),
    )
    .unwrap();
    path
}

fn replay(config: &Path, workers: u32, pcap: &Path) -> Vec<Sample> {
    common::replay_samples(config, workers, &[], &[pcap])
}

const LABELS: [&str; 6] = [
    "src",
    "dst",
    "protocol",
    "src_port",
    "dst_port",
    "direction",
];

fn key_of_truth(c: &serde_json::Value) -> Vec<String> {
    LABELS
        .iter()
        .map(|l| match &c[l] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect()
}

/// The connection series of a page: labels → value.
fn series(samples: &[Sample], name: &str) -> Vec<(Vec<String>, u64)> {
    let mut v: Vec<_> = samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let key = LABELS.iter().map(|l| s.labels[*l].clone()).collect();
            (key, s.value as u64)
        })
        .collect();
    v.sort();
    v
}

fn check(samples: &[Sample], truth: &serde_json::Value, top: usize, what: &str) {
    let mut conns: Vec<&serde_json::Value> =
        truth["connections"].as_array().unwrap().iter().collect();
    assert!(conns.len() > top, "{what}: more connections than shown");
    conns.sort_by_key(|c| std::cmp::Reverse(c["bytes"].as_u64().unwrap()));
    let mut want_bytes: Vec<(Vec<String>, u64)> = conns[..top]
        .iter()
        .map(|c| (key_of_truth(c), c["bytes"].as_u64().unwrap()))
        .collect();
    let mut want_packets: Vec<(Vec<String>, u64)> = conns[..top]
        .iter()
        .map(|c| (key_of_truth(c), c["packets"].as_u64().unwrap()))
        .collect();
    want_bytes.sort();
    want_packets.sort();
    let bytes = series(samples, "xdpacct_connection_bytes_total");
    let packets = series(samples, "xdpacct_connection_packets_total");
    assert_eq!(bytes.len(), top, "{what}: exactly top series");
    assert_eq!(bytes, want_bytes, "{what}: bytes of the biggest");
    assert_eq!(packets, want_packets, "{what}: packets of the biggest");
}

#[test]
fn replay_shows_the_biggest_connections_with_their_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = gen(dir.path(), 80, 3);
    for (top, workers) in [(10, 1), (10, 3), (1, 2), (25, 2)] {
        let cfg = config(dir.path(), top, None);
        let page = replay(&cfg, workers, &pcap);
        check(
            &page,
            &truth,
            top as usize,
            &format!("top {top}, {workers} workers"),
        );
    }
}

#[test]
fn the_view_shares_flow_exports_cache() {
    // A collector that never reads: the export path runs, the view with it.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = gen(dir.path(), 60, 5);
    let cfg = config(dir.path(), 12, Some(port));
    let page = replay(&cfg, 2, &pcap);
    check(&page, &truth, 12, "with [netflow]");
    assert!(sum(&page, "xdpacct_flow_records_exported_total", &[]) >= 60.0);
}

#[test]
fn off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = gen(dir.path(), 20, 7);
    let cfg = config(dir.path(), 0, None);
    let page = replay(&cfg, 1, &pcap);
    assert!(page
        .iter()
        .all(|s| !s.name.starts_with("xdpacct_connection_")));
}
