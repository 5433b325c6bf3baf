//! `xdpacct replay` against the independent truth of the synthetic data set
//! (tests/data/gen_traffic.py: every encapsulation the frame walk enters,
//! written with a snap length of 128 and real wire lengths).

mod common;

use common::*;

fn replay(pcap: &std::path::Path, config: &std::path::Path, workers: u32) -> Vec<Sample> {
    let out = xdpacct()
        .args(["replay", "--workers", &workers.to_string(), "--config"])
        .arg(config)
        .arg(pcap)
        .output()
        .expect("xdpacct runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("replayed "),
        "summary line missing: {stderr}"
    );
    parse_exposition(&String::from_utf8(out.stdout).unwrap())
}

fn check_interface_totals(samples: &[Sample], truth: &std::path::Path) {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap();
    let packets = sum(samples, "xdpacct_interface_packets_total", &[]);
    let bytes = sum(samples, "xdpacct_interface_bytes_total", &[]);
    assert_eq!(packets as u64, truth["totals"]["packets"].as_u64().unwrap());
    assert_eq!(bytes as u64, truth["totals"]["l2_bytes"].as_u64().unwrap());
    // Every frame of the set has exactly one local side.
    assert_eq!(
        sum(
            samples,
            "xdpacct_interface_packets_total",
            &[("direction", "internal")]
        ),
        0.0
    );
    assert_eq!(
        sum(
            samples,
            "xdpacct_interface_packets_total",
            &[("direction", "external")]
        ),
        0.0
    );
    assert_eq!(sum(samples, "xdpacct_parse_errors_total", &[]), 0.0);
    assert_eq!(sum(samples, "xdpacct_protocol_packets_total", &[]), packets);
}

#[test]
fn sample100k_hosts_equal_truth_in_l2_and_l3_on_1_2_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate_sample(dir.path());
    for bytes in ["l2", "l3"] {
        let config = synthetic_config(dir.path(), bytes);
        for workers in [1, 2, 4] {
            let samples = replay(&pcap, &config, workers);
            assert_hosts_match_truth(&samples, &truth, bytes);
            if bytes == "l2" {
                check_interface_totals(&samples, &truth);
            }
        }
    }
}

#[test]
fn freshly_generated_set_with_another_seed_equals_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(dir.path(), 30_000, 4242, 128);
    for bytes in ["l2", "l3"] {
        let config = synthetic_config(dir.path(), bytes);
        for workers in [1, 3] {
            let samples = replay(&pcap, &config, workers);
            assert_hosts_match_truth(&samples, &truth, bytes);
            if bytes == "l2" {
                check_interface_totals(&samples, &truth);
            }
        }
    }
}

#[test]
fn l2_fcs_adds_four_bytes_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = generate_sample(dir.path());
    let l2 = replay(&pcap, &synthetic_config(dir.path(), "l2"), 1);
    let fcs = replay(&pcap, &synthetic_config(dir.path(), "l2_fcs"), 1);
    let frames = sum(&l2, "xdpacct_interface_packets_total", &[]);
    assert_eq!(
        sum(&fcs, "xdpacct_interface_bytes_total", &[]),
        sum(&l2, "xdpacct_interface_bytes_total", &[]) + 4.0 * frames
    );
}
