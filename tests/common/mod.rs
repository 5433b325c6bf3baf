//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod testnet;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata")
}

pub fn xdpacct() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xdpacct"))
}

/// One sample of the text exposition: metric name and labels.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (enough of it for our own output).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = HashMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, v) = rest.split_once("=\"").expect("label=\"value\"");
            let end = v.find('"').expect("closing quote");
            map.insert(k.trim_start_matches(',').to_string(), v[..end].to_string());
            rest = &v[end + 1..];
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    out
}

/// Sum of samples named `name` whose labels include all of `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The `ip` label a truth-file host gets: IPv4 as is, IPv6 as its /64.
pub fn host_label(addr: &str) -> String {
    match addr
        .parse::<std::net::IpAddr>()
        .expect("truth host is an address")
    {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => {
            let v = u128::from(a) >> 64 << 64;
            format!("{}/64", std::net::Ipv6Addr::from(v))
        }
    }
}

/// Per-host values of `xdpacct_host_{packets,bytes}_total`, keyed by (ip, direction).
pub fn host_table(samples: &[Sample]) -> HashMap<(String, String), (u64, u64)> {
    let mut t: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for s in samples {
        let key = || (s.labels["ip"].clone(), s.labels["direction"].clone());
        match s.name.as_str() {
            "xdpacct_host_packets_total" => t.entry(key()).or_default().0 += s.value as u64,
            "xdpacct_host_bytes_total" => t.entry(key()).or_default().1 += s.value as u64,
            _ => {}
        }
    }
    t
}

/// The config of the synthetic data set: its local networks as ranges.
pub fn synthetic_config(dir: &Path, bytes: &str) -> PathBuf {
    let path = dir.join(format!("synthetic-{bytes}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[accounting]
bytes = "{bytes}"
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
[[accounting.ranges]]
prefix = "198.51.100.0/24"
labels = {{ customer = "v4" }}
[[accounting.ranges]]
prefix = "2001:db8:1::/52"
labels = {{ customer = "v6" }}
"#
        ),
    )
    .unwrap();
    path
}

/// Writes a fresh synthetic capture and its truth with gen_pcap.py.
pub fn generate(dir: &Path, packets: u32, seed: u32, snaplen: u32) -> (PathBuf, PathBuf) {
    let pcap = dir.join(format!("gen-{seed}.pcap"));
    let truth = dir.join(format!("gen-{seed}.truth.json"));
    let status = Command::new("python3")
        .arg(shared().join("synthetic/gen_pcap.py"))
        .arg(&pcap)
        .args([
            "--packets",
            &packets.to_string(),
            "--seed",
            &seed.to_string(),
            "--snaplen",
            &snaplen.to_string(),
        ])
        .arg("--truth")
        .arg(&truth)
        .status()
        .expect("python3 runs gen_pcap.py");
    assert!(status.success(), "gen_pcap.py failed");
    (pcap, truth)
}

/// Asserts that every truth host's in/out packets and bytes equal the metrics,
/// and that hosts absent from the truth saw nothing.
pub fn assert_hosts_match_truth(samples: &[Sample], truth_path: &Path, bytes: &str) {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(truth_path).unwrap()).unwrap();
    let hosts = truth["hosts"].as_object().unwrap();
    let got = host_table(samples);
    let mut want: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for (addr, t) in hosts {
        let ip = host_label(addr);
        for dir in ["in", "out"] {
            let e = want.entry((ip.clone(), dir.to_string())).or_default();
            e.0 += t[format!("{dir}_packets")].as_u64().unwrap();
            e.1 += t[format!("{dir}_{bytes}_bytes")].as_u64().unwrap();
        }
    }
    assert!(!want.is_empty());
    for (key, w) in &want {
        assert_eq!(got.get(key), Some(w), "host {key:?}: metrics vs truth");
    }
    for (key, g) in &got {
        if !want.contains_key(key) {
            assert_eq!(*g, (0, 0), "host {key:?} is not in the truth but counted");
        }
    }
    let total_packets: u64 = truth["totals"]["packets"].as_u64().unwrap();
    let sum_packets: u64 = want.values().map(|v| v.0).sum();
    assert_eq!(
        sum_packets, total_packets,
        "truth file: every frame has one local host"
    );
}
