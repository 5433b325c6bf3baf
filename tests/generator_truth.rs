//! The traffic generator (tests/data/gen_traffic.py) against tshark: the
//! truth it writes from its own choices must equal what an independent
//! dissector finds in the capture, host by host and feature by feature, in
//! pcap and in pcapng. The snap length must be a real one (file header /
//! IDB, every record's captured length) and timestamps at start + k/pps.
//!
//! Needs python3 and tshark (and capinfos, from the same Debian package);
//! skipped with a loud note without them, a failure when CI is set.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

const WHAT: &str = "the generator truth test";

/// Fields asked of tshark, in this order (all occurrences, comma-separated).
const FIELDS: &[&str] = &[
    "frame.len",
    "frame.cap_len",
    "eth.type",
    "mpls.label",
    "ip.src",
    "ip.dst",
    "ip.len",
    "ip.hdr_len",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.plen",
    "ipv6.fraghdr.offset",
    "frame.protocols",
];

/// Every feature the generator promises, each of which must occur in a few
/// thousand frames.
const FEATURES: &[&str] = &[
    "plain",
    "vlan",
    "vlan_ipv4",
    "vlan_ipv6",
    "qinq_88a8",
    "qinq_88a8_ipv4",
    "qinq_88a8_ipv6",
    "qinq_9100",
    "qinq_9100_ipv4",
    "qinq_9100_ipv6",
    "mpls",
    "mpls_ipv4",
    "mpls_ipv6",
    "mpls_labels_1",
    "mpls_labels_2",
    "mpls_labels_3",
    "pppoe",
    "pppoe_ipv4",
    "pppoe_ipv6",
    "vlan_pppoe",
    "vlan_pppoe_ipv4",
    "vlan_pppoe_ipv6",
    "ipv4_options",
    "ipv4_first_fragment",
    "ipv4_later_fragment",
    "ipv6_hop_by_hop",
    "ipv6_routing",
    "ipv6_dest_options",
    "ipv6_first_fragment",
    "ipv6_later_fragment",
];

fn can_run() -> bool {
    common::require_tools(WHAT, &["python3", "tshark", "capinfos"])
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn is_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.octets()[..3] == [198, 51, 100],
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 1],
    }
}

/// Per host: in/out packets, l2 bytes, l3 bytes (the truth file's keys).
type Hosts = BTreeMap<IpAddr, BTreeMap<String, u64>>;

struct Dissected {
    hosts: Hosts,
    totals: BTreeMap<String, u64>,
    features: BTreeMap<String, u64>,
}

fn tshark(pcap: &Path) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args([
        "-n",
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-E",
        "separator=/t",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What tshark sees, in the truth file's terms.
fn dissect(pcap: &Path) -> Dissected {
    let mut d = Dissected {
        hosts: Hosts::new(),
        totals: BTreeMap::new(),
        features: BTreeMap::new(),
    };
    for (n, line) in tshark(pcap).lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), FIELDS.len(), "frame {n}: {line:?}");
        let col = |name: &str| cols[FIELDS.iter().position(|f| *f == name).unwrap()];
        let first = |name: &str| col(name).split(',').next().unwrap_or("");
        let num = |name: &str| -> u64 {
            first(name)
                .parse()
                .unwrap_or_else(|e| panic!("frame {n}: {name} {:?}: {e}", col(name)))
        };
        let protocols: Vec<&str> = col("frame.protocols").split(':').collect();
        let v4 = !first("ip.src").is_empty();
        let (src, dst, l3) = if v4 {
            (first("ip.src"), first("ip.dst"), num("ip.len"))
        } else {
            (first("ipv6.src"), first("ipv6.dst"), num("ipv6.plen") + 40)
        };
        let src: IpAddr = src
            .parse()
            .unwrap_or_else(|e| panic!("frame {n} src {src:?}: {e}"));
        let dst: IpAddr = dst
            .parse()
            .unwrap_or_else(|e| panic!("frame {n} dst {dst:?}: {e}"));
        assert!(
            is_local(src) != is_local(dst),
            "frame {n}: exactly one local host ({src} -> {dst})"
        );
        let (host, dir) = if is_local(dst) {
            (dst, "in")
        } else {
            (src, "out")
        };
        let l2 = num("frame.len");
        let h = d.hosts.entry(host).or_default();
        *h.entry(format!("{dir}_packets")).or_default() += 1;
        *h.entry(format!("{dir}_l2_bytes")).or_default() += l2;
        *h.entry(format!("{dir}_l3_bytes")).or_default() += l3;
        for (k, v) in [
            ("packets", 1),
            ("l2_bytes", l2),
            ("l3_bytes", l3),
            ("captured_bytes", num("frame.cap_len")),
        ] {
            *d.totals.entry(k.to_string()).or_default() += v;
        }

        // Features, from tshark's fields only.
        let mut feats: Vec<String> = Vec::new();
        let kind = match first("eth.type") {
            "0x0800" | "0x86dd" => "plain",
            "0x8100" if protocols.contains(&"pppoes") => "vlan_pppoe",
            "0x8100" => "vlan",
            "0x88a8" => "qinq_88a8",
            "0x9100" => "qinq_9100",
            "0x8847" => "mpls",
            "0x8864" => "pppoe",
            other => panic!("frame {n}: EtherType {other}"),
        };
        feats.push(kind.into());
        if kind != "plain" {
            feats.push(format!("{kind}_ipv{}", if v4 { 4 } else { 6 }));
        }
        if kind == "mpls" {
            feats.push(format!(
                "mpls_labels_{}",
                col("mpls.label").split(',').count()
            ));
        }
        if v4 {
            if num("ip.hdr_len") > 20 {
                feats.push("ipv4_options".into());
            }
            if num("ip.frag_offset") != 0 {
                feats.push("ipv4_later_fragment".into());
            } else if matches!(first("ip.flags.mf"), "1" | "True") {
                feats.push("ipv4_first_fragment".into());
            }
        } else {
            for (proto, name) in [
                ("ipv6.hopopts", "ipv6_hop_by_hop"),
                ("ipv6.routing", "ipv6_routing"),
                ("ipv6.dstopts", "ipv6_dest_options"),
            ] {
                if protocols.contains(&proto) {
                    feats.push(name.into());
                }
            }
            match first("ipv6.fraghdr.offset") {
                "" => {}
                "0" => feats.push("ipv6_first_fragment".into()),
                _ => feats.push("ipv6_later_fragment".into()),
            }
        }
        for f in feats {
            *d.features.entry(f).or_default() += 1;
        }
    }
    d
}

fn truth_hosts(truth: &serde_json::Value) -> Hosts {
    let mut hosts = Hosts::new();
    for (addr, t) in truth["hosts"].as_object().unwrap() {
        let ip: IpAddr = addr.parse().unwrap();
        let counts: BTreeMap<String, u64> = t
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            // tshark's side only has the keys of directions it saw.
            .filter(|(_, v)| *v != 0)
            .collect();
        assert!(hosts.insert(ip, counts).is_none(), "{addr} twice");
    }
    hosts
}

fn counts(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn truth_equals_tshark_per_host_and_per_feature_in_pcap_and_pcapng() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut truths = Vec::new();
    for format in ["pcap", "pcapng"] {
        let (pcap, truth) = common::generate_with(
            dir.path(),
            &format!("mix-{format}"),
            &["--packets", "6000", "--seed", "11", "--format", format],
        );
        let truth = read_json(&truth);
        let got = dissect(&pcap);
        assert_eq!(got.totals, counts(&truth["totals"]), "{format}: totals");
        assert_eq!(got.hosts, truth_hosts(&truth), "{format}: per-host truth");
        assert_eq!(
            got.features,
            counts(&truth["features"]),
            "{format}: features"
        );
        for f in FEATURES {
            assert!(
                got.features.get(*f).copied().unwrap_or(0) > 0,
                "{format}: no frame with {f}"
            );
        }
        assert_eq!(
            got.features.len(),
            FEATURES.len(),
            "{format}: {:?}",
            got.features
        );
        truths.push(truth);
    }
    // The same frames whatever the container.
    assert_eq!(truths[0]["hosts"], truths[1]["hosts"]);
    assert_eq!(truths[0]["totals"], truths[1]["totals"]);
}

/// One record of a capture: timestamp (µs), captured length, wire length, bytes.
type Record = (u64, usize, u32, Vec<u8>);

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A little-endian classic pcap: (snap length, records).
fn read_pcap(b: &[u8]) -> (u32, Vec<Record>) {
    assert_eq!(u32_le(b, 0), 0xa1b2_c3d4, "microsecond pcap magic");
    assert_eq!(u32_le(b, 20), 1, "link type Ethernet");
    let mut recs = Vec::new();
    let mut at = 24;
    while at < b.len() {
        let cap = u32_le(b, at + 8) as usize;
        let ts = u64::from(u32_le(b, at)) * 1_000_000 + u64::from(u32_le(b, at + 4));
        recs.push((
            ts,
            cap,
            u32_le(b, at + 12),
            b[at + 16..at + 16 + cap].to_vec(),
        ));
        at += 16 + cap;
    }
    (u32_le(b, 16), recs)
}

/// A little-endian pcapng with one SHB and one IDB: (IDB snap length, EPBs).
fn read_pcapng(b: &[u8]) -> (u32, Vec<Record>) {
    assert_eq!(u32_le(b, 0), 0x0a0d_0d0a, "SHB");
    assert_eq!(u32_le(b, 8), 0x1a2b_3c4d, "little-endian byte-order magic");
    let mut at = u32_le(b, 4) as usize;
    assert_eq!(u32_le(b, at), 1, "IDB after the SHB");
    assert_eq!(u16::from_le_bytes([b[at + 8], b[at + 9]]), 1, "Ethernet");
    let snaplen = u32_le(b, at + 12);
    at += u32_le(b, at + 4) as usize;
    let mut recs = Vec::new();
    while at < b.len() {
        let (kind, len) = (u32_le(b, at), u32_le(b, at + 4) as usize);
        assert_eq!(kind, 6, "EPB at {at}");
        assert_eq!(
            u32_le(b, at + len - 4),
            len as u32,
            "trailing length at {at}"
        );
        let ts = (u64::from(u32_le(b, at + 12)) << 32) | u64::from(u32_le(b, at + 16));
        let cap = u32_le(b, at + 20) as usize;
        recs.push((
            ts,
            cap,
            u32_le(b, at + 24),
            b[at + 28..at + 28 + cap].to_vec(),
        ));
        at += len;
    }
    (snaplen, recs)
}

#[test]
fn snaplen_is_real_in_header_and_records_and_timestamps_follow_pps() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (start, pps, frames) = (1_600_000_000u64, 8000u64, 3000usize);
    let timing = [
        "--packets",
        "3000",
        "--seed",
        "5",
        "--start",
        "1600000000",
        "--pps",
        "8000",
    ];
    let gen = |stem: &str, extra: &[&str]| {
        let args: Vec<&str> = timing.iter().chain(extra).copied().collect();
        common::generate_with(dir.path(), stem, &args)
    };
    let (whole, whole_truth) = gen("whole", &[]);
    let (whole_snap, whole_recs) = read_pcap(&std::fs::read(&whole).unwrap());
    assert_eq!(whole_snap, 65535, "default snap length");
    assert_eq!(whole_recs.len(), frames);
    let whole_truth = read_json(&whole_truth);
    let wire_sum: u64 = whole_recs.iter().map(|r| u64::from(r.2)).sum();
    assert_eq!(
        wire_sum,
        whole_truth["totals"]["l2_bytes"].as_u64().unwrap()
    );
    for (k, r) in whole_recs.iter().enumerate() {
        assert_eq!(r.1, r.2 as usize, "frame {k}: whole frame captured");
        assert_eq!(
            r.0,
            start * 1_000_000 + k as u64 * 1_000_000 / pps,
            "frame {k}: time"
        );
    }
    assert!(
        whole_recs.iter().any(|r| r.2 > 96) && whole_recs.iter().any(|r| r.2 <= 96),
        "frames on both sides of the snap length"
    );

    for format in ["pcap", "pcapng"] {
        let (cut, truth) = gen(
            &format!("cut-{format}"),
            &["--snaplen", "96", "--format", format],
        );
        let bytes = std::fs::read(&cut).unwrap();
        let (snap, recs) = if format == "pcap" {
            read_pcap(&bytes)
        } else {
            read_pcapng(&bytes)
        };
        assert_eq!(snap, 96, "{format}: snap length in the header");
        assert_eq!(recs.len(), frames, "{format}");
        for (k, (r, w)) in recs.iter().zip(&whole_recs).enumerate() {
            assert_eq!(r.2, w.2, "{format} frame {k}: wire length kept");
            assert_eq!(r.1, (w.2 as usize).min(96), "{format} frame {k}: caplen");
            assert_eq!(
                r.3[..],
                w.3[..r.1],
                "{format} frame {k}: a prefix of the frame"
            );
            assert_eq!(r.0, w.0, "{format} frame {k}: time");
        }
        // tshark reads the same lengths, and they are the truth's.
        let truth = read_json(&truth);
        let got = dissect_lengths(&cut);
        assert_eq!(
            got,
            (
                truth["totals"]["captured_bytes"].as_u64().unwrap(),
                truth["totals"]["l2_bytes"].as_u64().unwrap()
            ),
            "{format}: tshark's captured and wire bytes"
        );
        assert_eq!(truth["hosts"], whole_truth["hosts"], "{format}");
    }
    // capinfos (another reader) agrees on the pcap header.
    let out = Command::new("capinfos")
        .arg("-l")
        .arg(dir.path().join("cut-pcap.pcap"))
        .output()
        .expect("capinfos runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("file hdr: 96 bytes"), "capinfos -l: {text}");
}

/// (sum of frame.cap_len, sum of frame.len) as tshark reads them.
fn dissect_lengths(pcap: &Path) -> (u64, u64) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "frame.cap_len", "-e", "frame.len"])
        .output()
        .expect("tshark runs");
    assert!(out.status.success());
    let mut sums = (0, 0);
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (c, l) = line.split_once('\t').expect("two fields");
        sums.0 += c.parse::<u64>().unwrap();
        sums.1 += l.parse::<u64>().unwrap();
    }
    sums
}

#[test]
fn same_seed_same_bytes_other_seed_other_frames() {
    if !common::require_tool(WHAT, "python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |stem: &str, seed: &str| {
        let (pcap, truth) =
            common::generate_with(dir.path(), stem, &["--packets", "500", "--seed", seed]);
        (std::fs::read(pcap).unwrap(), std::fs::read(truth).unwrap())
    };
    let a = run("a", "3");
    assert_eq!(a, run("b", "3"), "deterministic from --seed");
    assert_ne!(a.0, run("c", "4").0, "another seed, other frames");
}

#[test]
fn bad_arguments_fail_with_one_clear_line() {
    if !common::require_tool(WHAT, "python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (&["--snaplen", "0"][..], "--snaplen"),
        (&["--pps", "0"][..], "--pps"),
        (&["--format", "erf"][..], "--format"),
    ] {
        let out = Command::new("python3")
            .arg(common::generator())
            .arg(dir.path().join("x.pcap"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.trim_end().lines().last().unwrap_or("");
        assert!(
            last.contains("error:") && last.contains(want),
            "{args:?}: {err}"
        );
    }
}
