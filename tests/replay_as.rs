//! AS and network accounting through `xdpacct replay`: bounded cardinality,
//! and no frame lost between the AS series and the interface totals.

mod common;

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use common::*;

/// A `prefix asn` file giving every /12 of 11.0.0.0–99.255.255.255 its own
/// AS (the synthetic set's remote side), and 2a00::/16 one more.
fn as_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut s = String::from("# generated for the test\n");
    let mut asn = 64_512u32;
    for a in 11..=99u32 {
        for b in (0..256u32).step_by(16) {
            writeln!(s, "{a}.{b}.0.0/12 {asn}").unwrap();
            asn += 1;
        }
    }
    writeln!(s, "2a00::/16 4200000000").unwrap();
    let path = dir.join("prefix-asn.txt");
    std::fs::write(&path, s).unwrap();
    let names = dir.join("names.txt");
    std::fs::write(&names, "4200000000 EXAMPLE-V6-NET\n64512 FIRST-AS\n").unwrap();
    path
}

fn config(dir: &std::path::Path, max_as: usize) -> std::path::PathBuf {
    let path = dir.join(format!("as-{max_as}.toml"));
    let asf = as_file(dir);
    std::fs::write(
        &path,
        format!(
            r#"
[accounting]
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
as_file = "{}"
as_file_format = "prefix_asn"
as_names_file = "{}"
max_as_series = {max_as}
max_network_series = 2
[[accounting.networks]]
name = "low"
prefixes = ["11.0.0.0/8", "12.0.0.0/7", "14.0.0.0/7", "16.0.0.0/4"]
labels = {{ kind = "test" }}
[[accounting.networks]]
name = "v6"
prefixes = ["2a00::/16"]
[[accounting.networks]]
name = "high"
prefixes = ["64.0.0.0/3"]
"#,
            asf.display(),
            dir.join("names.txt").display()
        ),
    )
    .unwrap();
    path
}

fn replay(pcap: &std::path::Path, config: &std::path::Path, workers: u32) -> Vec<Sample> {
    common::replay_samples(config, workers, &[], &[pcap])
}

#[test]
fn as_series_are_bounded_and_sum_to_the_interface_total() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = generate_sample(dir.path());
    for (max, workers) in [(10usize, 1u32), (10, 3), (1000, 2)] {
        let samples = replay(&pcap, &config(dir.path(), max), workers);
        let ases: HashSet<&str> = samples
            .iter()
            .filter(|s| s.name == "xdpacct_as_bytes_total")
            .map(|s| s.labels["peer_as"].as_str())
            .collect();
        assert!(ases.contains("other"));
        let named = ases.len() - 1;
        let folded = sum(&samples, "xdpacct_as_series_folded", &[]) as usize;
        // The sample's remote side spans 64 IPv4 /16s and one IPv6 AS.
        assert!(named + folded > 10, "the capture reaches more than 10 ASes");
        if max == 10 {
            assert_eq!(
                named, 10,
                "exactly max_as_series AS series plus other: {ases:?}"
            );
        } else {
            assert_eq!(folded, 0);
        }
        for (m, i) in [
            ("xdpacct_as_bytes_total", "xdpacct_interface_bytes_total"),
            (
                "xdpacct_as_packets_total",
                "xdpacct_interface_packets_total",
            ),
        ] {
            assert_eq!(
                sum(&samples, m, &[]),
                sum(&samples, i, &[]),
                "{m} vs {i} (max {max}, {workers} workers)"
            );
        }
        // Names come from the names file.
        let v6 = samples
            .iter()
            .find(|s| s.name == "xdpacct_as_bytes_total" && s.labels["peer_as"] == "4200000000");
        if let Some(v6) = v6 {
            assert_eq!(v6.labels["peer_as_name"], "EXAMPLE-V6-NET");
        }
        // Networks: at most two named series plus other, each with its label set.
        let nets: HashSet<&str> = samples
            .iter()
            .filter(|s| s.name == "xdpacct_network_bytes_total")
            .map(|s| s.labels["network"].as_str())
            .collect();
        assert!(nets.len() <= 3 && nets.contains("other"), "{nets:?}");
    }
}

#[test]
fn as_counts_do_not_depend_on_the_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let per_as = |samples: &[Sample]| -> HashMap<(String, String), u64> {
        samples
            .iter()
            .filter(|s| s.name == "xdpacct_as_bytes_total")
            .map(|s| {
                (
                    (s.labels["peer_as"].clone(), s.labels["direction"].clone()),
                    s.value as u64,
                )
            })
            .collect()
    };
    let (pcap, _) = generate_sample(dir.path());
    let cfg = config(dir.path(), 1000);
    assert_eq!(
        per_as(&replay(&pcap, &cfg, 1)),
        per_as(&replay(&pcap, &cfg, 4))
    );
}

#[test]
fn a_bad_line_in_the_as_file_names_file_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "10.0.0.0/8 65000\n# fine\n10.0.0.0/33 65001\n").unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[accounting]\nas_file = \"{}\"\nas_file_format = \"prefix_asn\"\n",
            bad.display()
        ),
    )
    .unwrap();
    let out = xdpacct()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.txt:3"), "file and line named: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
