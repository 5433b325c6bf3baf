//! Handshake RTT (`[tcp_rtt]`) through `xdpacct replay`, against
//! independent truth: the handshake generator's own choices
//! (tests/data/gen_handshakes.py), and tshark's `tcp.analysis.initial_rtt`
//! on vendored and generated captures.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn gen(dir: &Path, args: &[&str]) -> serde_json::Value {
    let truth = dir.join("truth.json");
    let st = Command::new("python3")
        .arg(data_dir().join("gen_handshakes.py"))
        .args(args)
        .arg("--truth")
        .arg(&truth)
        .arg("--as-file")
        .arg(dir.join("as.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap()
}

fn config(dir: &Path, max_as: usize) -> PathBuf {
    let path = dir.join(format!("rtt-{max_as}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[accounting]
local_networks = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48"]
as_file = "{}"
as_file_format = "prefix_asn"
max_as_series = {max_as}
[[accounting.ranges]]
prefix = "198.51.100.0/25"
labels = {{ customer = "a" }}
[[accounting.ranges]]
prefix = "198.51.100.128/25"
labels = {{ customer = "b" }}
[[accounting.ranges]]
prefix = "2001:db8:1::/48"
labels = {{ customer = "c" }}
[tcp_rtt]
enabled = true
max_pending = 65536
timeout = 60
"#,
            dir.join("as.txt").display()
        ),
    )
    .unwrap();
    path
}

fn replay(config: &Path, workers: u32, extra: &[&str], files: &[PathBuf]) -> Vec<Sample> {
    common::replay_samples(config, workers, extra, files)
}

/// (count, sum in seconds) of a histogram's series with these labels.
fn hist(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> (f64, f64) {
    (
        sum(samples, &format!("{name}_count"), want),
        sum(samples, &format!("{name}_sum"), want),
    )
}

/// A truth entry [count, sum_us] as (count, seconds).
fn truth_pair(v: &serde_json::Value) -> (f64, f64) {
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap() / 1e6)
}

#[track_caller]
fn assert_hist_eq(got: (f64, f64), want: (f64, f64), what: &str) {
    assert_eq!(got.0, want.0, "count of {what}");
    assert!(
        (got.1 - want.1).abs() < 1e-6,
        "sum of {what}: {} vs {}",
        got.1,
        want.1
    );
}

fn check_against_truth(samples: &[Sample], truth: &serde_json::Value, what: &str) {
    const H: &str = "xdpacct_tcp_handshake_rtt_seconds";
    const A: &str = "xdpacct_as_tcp_rtt_seconds";
    for (range, legs) in truth["ranges"].as_object().unwrap() {
        let customer = range.strip_prefix("customer=").unwrap();
        for leg in ["internal", "external"] {
            assert_hist_eq(
                hist(samples, H, &[("customer", customer), ("leg", leg)]),
                truth_pair(&legs[leg]),
                &format!("{what}: {range} {leg}"),
            );
        }
    }
    // Every AS with its own series holds exactly its truth; all series
    // together hold the whole external leg.
    let ases = truth["ases"].as_object().unwrap();
    let mut total = (0.0, 0.0);
    for v in ases.values() {
        let (c, s) = truth_pair(v);
        total = (total.0 + c, total.1 + s);
    }
    assert_hist_eq(hist(samples, A, &[]), total, &format!("{what}: all ASes"));
    let mut shown = 0;
    for s in samples.iter().filter(|s| s.name == format!("{A}_count")) {
        let asn = &s.labels["peer_as"];
        if asn != "other" {
            shown += 1;
            assert_hist_eq(
                hist(samples, A, &[("peer_as", asn)]),
                truth_pair(&ases[asn.as_str()]),
                &format!("{what}: AS {asn}"),
            );
        }
    }
    assert!(shown > 0, "{what}: some AS has its own series");
    let outcome = |o: &str| sum(samples, "xdpacct_tcp_handshakes_total", &[("outcome", o)]);
    assert_eq!(
        outcome("measured"),
        truth["measured"].as_f64().unwrap(),
        "{what}"
    );
    assert_eq!(
        outcome("ambiguous"),
        truth["ambiguous"].as_f64().unwrap(),
        "{what}"
    );
    assert_eq!(outcome("out_of_order"), 0.0, "{what}");
    assert_eq!(outcome("overflowed"), 0.0, "{what}");
    // Handshakes that never completed are pending, or timed out when a
    // sweep reached them.
    assert_eq!(
        outcome("timed_out") + sum(samples, "xdpacct_tcp_handshakes_pending", &[]),
        truth["incomplete"].as_f64().unwrap(),
        "{what}"
    );
}

#[test]
fn histograms_equal_the_generators_truth_one_capture_and_many_workers() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hs.pcap");
    let truth = gen(
        dir.path(),
        &[
            pcap.to_str().unwrap(),
            "--handshakes",
            "3000",
            "--seed",
            "5",
        ],
    );
    assert!(truth["ambiguous"].as_u64().unwrap() > 50);
    for (workers, max_as) in [(1, 1000), (4, 3)] {
        let samples = replay(
            &config(dir.path(), max_as),
            workers,
            &[],
            std::slice::from_ref(&pcap),
        );
        check_against_truth(
            &samples,
            &truth,
            &format!("{workers} workers, max_as {max_as}"),
        );
    }
}

/// The two fibres of an optical tap as two interfaces, each spread over two
/// workers: the SYN and ACK reach one worker, the SYN/ACK another.
#[test]
fn histograms_equal_the_truth_with_directions_on_two_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    let truth = gen(
        dir.path(),
        &[
            "--split",
            split.to_str().unwrap(),
            "--handshakes",
            "3000",
            "--seed",
            "9",
        ],
    );
    let files = [split.join("out.pcap"), split.join("in.pcap")];
    let samples = replay(
        &config(dir.path(), 1000),
        2,
        &["--interface-per-file"],
        &files,
    );
    // Both interfaces carried frames.
    for iface in ["out", "in"] {
        assert!(
            sum(
                &samples,
                "xdpacct_interface_packets_total",
                &[("interface", iface)]
            ) > 0.0
        );
    }
    check_against_truth(&samples, &truth, "split");
}

/// Per-handshake initial RTT from tshark: (client address, RTT seconds) of
/// each unambiguous handshake (no retransmitted SYN or SYN/ACK).
fn tshark_initial_rtts(pcap: &Path) -> Vec<(String, String, f64)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.syn",
            "-e",
            "tcp.flags.ack",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.analysis.initial_rtt",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Per stream: SYNs and SYN/ACKs seen, the client and server, the RTT.
    #[derive(Default)]
    struct S {
        syns: u32,
        synacks: u32,
        client: String,
        server: String,
        rtt: Option<f64>,
    }
    let mut streams: HashMap<String, S> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 8 || f[0].is_empty() {
            continue;
        }
        // Tunnels give several values ("a,b"): the innermost is last.
        let last = |s: &str| s.rsplit(',').next().unwrap_or("").to_string();
        let s = streams.entry(f[0].to_string()).or_default();
        let src = if f[3].is_empty() {
            last(f[4])
        } else {
            last(f[3])
        };
        let dst = if f[5].is_empty() {
            last(f[6])
        } else {
            last(f[5])
        };
        let (syn, ack) = (
            last(f[1]) == "1" || last(f[1]) == "True",
            last(f[2]) == "1" || last(f[2]) == "True",
        );
        if syn && !ack {
            s.syns += 1;
            s.client = src;
            s.server = dst;
        } else if syn && ack {
            s.synacks += 1;
        }
        if s.rtt.is_none() && !f[7].is_empty() {
            s.rtt = last(f[7]).parse().ok();
        }
    }
    streams
        .into_values()
        .filter(|s| s.syns == 1 && s.synacks == 1)
        .filter_map(|s| Some((s.client, s.server, s.rtt?)))
        .collect()
}

/// Real captures: per customer (here: every local host is its own range),
/// the handshakes' count and the sum of both legs equal tshark's.
#[test]
fn per_customer_sums_equal_tsharks_initial_rtt() {
    if !require_tool("tcp_rtt tshark comparison", "tshark") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen.pcap");
    gen(
        dir.path(),
        &[
            generated.to_str().unwrap(),
            "--handshakes",
            "400",
            "--seed",
            "11",
        ],
    );
    let mut pcaps: Vec<PathBuf> = [
        "accecn_handshake.pcap",
        "dns_tcp.pcap",
        "dns_tcp_8053.pcap",
        "mptcp-aa-v1.pcap",
        "mptcp-fclose.pcap",
        "mptcp-v0.pcap",
        "print-flags.pcap",
        "tcp_eight_lowest_weight_flags_set.pcap",
    ]
    .iter()
    .map(|f| tcpdump_dir().join(f))
    .collect();
    pcaps.push(generated);
    let mut checked = 0;
    for pcap in &pcaps {
        let rtts = tshark_initial_rtts(pcap);
        if rtts.is_empty() {
            continue;
        }
        // The clients are the customers: one range per client address.
        let mut per_client: HashMap<String, (f64, f64)> = HashMap::new();
        for (c, _, r) in &rtts {
            let e = per_client.entry(c.clone()).or_default();
            e.0 += 1.0;
            e.1 += r;
        }
        // A handshake between two clients splits its legs over two ranges,
        // which tshark's total cannot check: leave both out.
        let mut mixed = std::collections::HashSet::new();
        for (c, s, _) in &rtts {
            if per_client.contains_key(s) {
                mixed.insert(c.clone());
                mixed.insert(s.clone());
            }
        }
        let mut cfg = String::from("[accounting]\nipv6_host_prefix = 128\nlocal_networks = [");
        let clients: Vec<String> = per_client.keys().cloned().collect();
        per_client.retain(|c, _| !mixed.contains(c));
        let prefix = |a: &str| {
            if a.contains(':') {
                format!("{a}/128")
            } else {
                format!("{a}/32")
            }
        };
        cfg += &clients
            .iter()
            .map(|c| format!("\"{}\"", prefix(c)))
            .collect::<Vec<_>>()
            .join(", ");
        cfg += "]\n";
        for c in &clients {
            cfg += &format!(
                "[[accounting.ranges]]\nprefix = \"{}\"\nlabels = {{ customer = \"{c}\" }}\n",
                prefix(c)
            );
        }
        cfg += "[tcp_rtt]\nenabled = true\ntimeout = 300\n";
        let cfg_path = dir.path().join("tshark.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let samples = replay(&cfg_path, 1, &[], std::slice::from_ref(pcap));
        for (client, (n, total)) in &per_client {
            // Both legs of a handshake, under its client's range: a
            // server that is not a client elsewhere is remote.
            let int = hist(
                &samples,
                "xdpacct_tcp_handshake_rtt_seconds",
                &[("customer", client), ("leg", "internal")],
            );
            let ext = hist(
                &samples,
                "xdpacct_tcp_handshake_rtt_seconds",
                &[("customer", client), ("leg", "external")],
            );
            let what = format!("{}: {client}", pcap.display());
            assert_eq!(int.0, *n, "{what}: handshakes");
            assert_eq!(ext.0, *n, "{what}: handshakes (external leg)");
            assert!(
                (int.1 + ext.1 - total).abs() < 1e-6 * n.max(1.0),
                "{what}: {} + {} vs tshark {total}",
                int.1,
                ext.1
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "compared {checked} customers");
}
