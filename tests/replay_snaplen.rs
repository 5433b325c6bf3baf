//! Captures written with a snap length count exactly like the whole capture
//! (each frame its wire length), and a damaged file says where and how much
//! was not read, with exit status 1. The truth is the list of frames the test
//! writes itself; the truncated copies come from our own writer (pcap and
//! pcapng, records above and below the header's snap length) and from
//! `editcap -s` (Debian package tshark).

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// One frame of the test capture: its whole bytes (the wire length).
struct Frame {
    bytes: Vec<u8>,
    local: Ipv4Addr,
    /// Local host is the destination.
    inbound: bool,
}

/// `n` Ethernet/IPv4/TCP frames of 60..=1514 bytes between local hosts in
/// 198.51.100.0/24 and remote ones in 203.0.113.0/24.
fn frames(n: usize) -> Vec<Frame> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 60 + (x % 1455) as usize;
            let local = Ipv4Addr::new(198, 51, 100, 1 + (x >> 16) as u8 % 20);
            let remote = Ipv4Addr::new(203, 0, 113, (x >> 24) as u8);
            let inbound = i % 3 != 0;
            let (src, dst) = if inbound {
                (remote, local)
            } else {
                (local, remote)
            };
            let mut f = vec![0xa5u8; len];
            f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[15] = 0;
            f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
            f[20..22].copy_from_slice(&[0, 0]);
            f[22] = 64;
            f[23] = 6;
            f[26..30].copy_from_slice(&src.octets());
            f[30..34].copy_from_slice(&dst.octets());
            f[34..36].copy_from_slice(&(1024 + i as u16).to_be_bytes());
            f[36..38].copy_from_slice(&443u16.to_be_bytes());
            f[46] = 5 << 4;
            Frame {
                bytes: f,
                local,
                inbound,
            }
        })
        .collect()
}

/// Per (ip, direction): (packets, l2 bytes) of `frames`.
fn truth(frames: &[Frame]) -> HashMap<(String, String), (u64, u64)> {
    let mut t: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for f in frames {
        let dir = if f.inbound { "in" } else { "out" };
        let e = t.entry((f.local.to_string(), dir.into())).or_default();
        e.0 += 1;
        e.1 += f.bytes.len() as u64;
    }
    t
}

fn put32(out: &mut Vec<u8>, big: bool, v: u32) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}

/// A pcap with header snap length `snaplen`, each record captured up to
/// `caplen` bytes (0: whole), in either byte order and time unit.
fn pcap(frames: &[Frame], snaplen: u32, caplen: usize, big: bool, nanos: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put32(&mut out, big, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    out.extend_from_slice(&if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
    out.extend_from_slice(&[0; 8]);
    put32(&mut out, big, snaplen);
    put32(&mut out, big, 1);
    for (i, f) in frames.iter().enumerate() {
        let cap = if caplen == 0 {
            f.bytes.len()
        } else {
            caplen.min(f.bytes.len())
        };
        for v in [
            1_700_000_000 + i as u32,
            7,
            cap as u32,
            f.bytes.len() as u32,
        ] {
            put32(&mut out, big, v);
        }
        out.extend_from_slice(&f.bytes[..cap]);
    }
    out
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let len = 12 + body.len().div_ceil(4) * 4;
    put32(out, false, kind);
    put32(out, false, len as u32);
    out.extend_from_slice(body);
    out.resize(out.len() + (len - 12 - body.len()), 0);
    put32(out, false, len as u32);
}

/// A pcapng whose interface has snap length `snaplen` (0: none); packets as
/// EPBs truncated to it, or as SPBs (whole in the block, cut by the reader).
fn pcapng(frames: &[Frame], snaplen: u32, simple: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    put32(&mut shb, false, 0x1a2b_3c4d);
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&[0xff; 8]);
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = vec![1, 0, 0, 0];
    put32(&mut idb, false, snaplen);
    block(&mut out, 1, &idb);
    for (i, f) in frames.iter().enumerate() {
        let cap = if snaplen == 0 {
            f.bytes.len()
        } else {
            (snaplen as usize).min(f.bytes.len())
        };
        let mut b = Vec::new();
        if simple {
            // An SPB holds the captured bytes, cut to the snap length.
            put32(&mut b, false, f.bytes.len() as u32);
        } else {
            let ts = 1_700_000_000_000_000u64 + i as u64;
            for v in [
                0,
                (ts >> 32) as u32,
                ts as u32,
                cap as u32,
                f.bytes.len() as u32,
            ] {
                put32(&mut b, false, v);
            }
        }
        b.extend_from_slice(&f.bytes[..cap]);
        block(&mut out, if simple { 3 } else { 6 }, &b);
    }
    out
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("snaplen.toml");
    std::fs::write(
        &path,
        r#"
[accounting]
bytes = "l2"
local_networks = ["198.51.100.0/24"]
[[accounting.ranges]]
prefix = "198.51.100.0/24"
labels = { customer = "test" }
"#,
    )
    .unwrap();
    path
}

/// Runs `xdpacct replay`: (exit status, metrics page samples, stderr).
fn replay(config: &Path, files: &[&Path], workers: u32) -> (Option<i32>, Vec<Sample>, String) {
    let out = xdpacct()
        .args(["--config"])
        .arg(config)
        .args(["replay", "--workers", &workers.to_string()])
        .args(files)
        .output()
        .expect("xdpacct runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let samples = parse_exposition(&String::from_utf8(out.stdout).unwrap());
    (out.status.code(), samples, stderr)
}

fn assert_counts(samples: &[Sample], want: &HashMap<(String, String), (u64, u64)>, what: &str) {
    // The page has a series for every host of the range; the truth only
    // for the hosts that had traffic.
    let mut got = host_table(samples);
    got.retain(|_, v| *v != (0, 0));
    assert_eq!(&got, want, "{what}: hosts vs truth");
    let packets: u64 = want.values().map(|v| v.0).sum();
    let bytes: u64 = want.values().map(|v| v.1).sum();
    assert_eq!(
        sum(samples, "xdpacct_interface_packets_total", &[]) as u64,
        packets,
        "{what}: packets"
    );
    assert_eq!(
        sum(samples, "xdpacct_interface_bytes_total", &[]) as u64,
        bytes,
        "{what}: bytes"
    );
}

/// `editcap` when it is installed; with CI set, its absence fails the test.
fn editcap() -> Option<&'static str> {
    match Command::new("editcap").arg("-h").output() {
        Ok(_) => Some("editcap"),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "editcap not found ({e}): install the Debian package tshark (scripts/install-deps.sh)"
            );
            eprintln!("editcap not found: skipping its truncated copies (CI not set)");
            None
        }
    }
}

/// Regression: a capture written with a snap length (`tcpdump -s 96`,
/// `editcap -s 96`) replayed 0 frames and exited 0.
#[test]
fn truncated_captures_count_like_the_whole_capture() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let frames = frames(2_000);
    let want = truth(&frames);
    let mut files: Vec<(String, Vec<u8>)> =
        vec![("whole.pcap".into(), pcap(&frames, 65535, 0, false, false))];
    for snap in [64u32, 96, 128] {
        files.push((
            format!("le-us-s{snap}.pcap"),
            pcap(&frames, snap, snap as usize, false, false),
        ));
        files.push((
            format!("be-ns-s{snap}.pcap"),
            pcap(&frames, snap, snap as usize, true, true),
        ));
        files.push((format!("epb-s{snap}.pcapng"), pcapng(&frames, snap, false)));
        files.push((format!("spb-s{snap}.pcapng"), pcapng(&frames, snap, true)));
    }
    // Records captured beyond the header's snap length count as they say.
    files.push((
        "caplen-above-snaplen.pcap".into(),
        pcap(&frames, 64, 128, false, false),
    ));
    let mut paths = Vec::new();
    for (name, bytes) in &files {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    if let Some(editcap) = editcap() {
        for (format, ext) in [("pcap", "pcap"), ("pcapng", "pcapng")] {
            for snap in [64, 96, 128] {
                let out = dir.path().join(format!("editcap-s{snap}.{ext}"));
                let st = Command::new(editcap)
                    .args(["-F", format, "-s", &snap.to_string()])
                    .arg(&paths[0])
                    .arg(&out)
                    .status()
                    .expect("editcap runs");
                assert!(st.success(), "editcap -F {format} -s {snap}");
                paths.push(out);
            }
        }
    }
    for p in &paths {
        let what = p.file_name().unwrap().to_string_lossy().into_owned();
        let (status, samples, stderr) = replay(&config, &[p], 1);
        assert_eq!(status, Some(0), "{what}: {stderr}");
        assert!(!stderr.contains("damaged"), "{what}: {stderr}");
        assert_counts(&samples, &want, &what);
        let summary = format!(
            "replayed {} frames, {} bytes",
            frames.len(),
            want.values().map(|v| v.1).sum::<u64>()
        );
        assert!(stderr.contains(&summary), "{what}: {stderr}");
    }
    // Several workers: the same totals.
    let (status, samples, stderr) = replay(&config, &[&paths[1]], 3);
    assert_eq!(status, Some(0), "{stderr}");
    assert_counts(&samples, &want, "3 workers");
}

/// The line the CLI prints for a damaged file.
fn damage_line(path: &Path, offset: usize, reason: &str, unread: usize) -> String {
    format!(
        "{}: damaged at byte {offset} ({reason}): {unread} bytes not read",
        path.display()
    )
}

#[test]
fn a_file_cut_mid_record_counts_what_is_there_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let frames = frames(500);
    let whole = pcap(&frames, 96, 96, false, false);
    // Where record 300 starts, and a cut 40 bytes into its data.
    let at = 24
        + frames[..300]
            .iter()
            .map(|f| 16 + f.bytes.len().min(96))
            .sum::<usize>();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &whole[..at + 16 + 40]).unwrap();
    let (status, samples, stderr) = replay(&config, &[&cut], 1);
    assert_eq!(status, Some(1), "{stderr}");
    assert_counts(&samples, &truth(&frames[..300]), "cut pcap");
    let line = damage_line(
        &cut,
        at,
        "record of 96 captured bytes cut short: 40 bytes left",
        56,
    );
    assert!(
        stderr.lines().any(|l| l == line),
        "want {line:?} in: {stderr}"
    );
    assert!(stderr.contains("replayed 300 frames"), "{stderr}");
}

#[test]
fn a_garbage_block_length_stops_the_file_the_next_files_are_read_and_exit_is_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let frames = frames(400);
    let mut ng = pcapng(&frames, 128, false);
    // Block 2 + 150 (after SHB, IDB, 150 EPBs): its length becomes garbage.
    let mut at = 0;
    for _ in 0..152 {
        let len = u32::from_le_bytes(ng[at + 4..at + 8].try_into().unwrap());
        at += len as usize;
    }
    ng[at + 4..at + 8].copy_from_slice(&0x7fff_fff1u32.to_le_bytes());
    let bad = dir.path().join("garbage-length.pcapng");
    std::fs::write(&bad, &ng).unwrap();
    let good = dir.path().join("good.pcap");
    std::fs::write(&good, pcap(&frames, 65535, 0, false, false)).unwrap();

    let (status, samples, stderr) = replay(&config, &[&good, &bad, &good], 2);
    assert_eq!(status, Some(1), "{stderr}");
    let counted: Vec<Frame> = frames
        .iter()
        .chain(&frames[..150])
        .chain(&frames)
        .map(|f| Frame {
            bytes: f.bytes.clone(),
            local: f.local,
            inbound: f.inbound,
        })
        .collect();
    assert_counts(&samples, &truth(&counted), "good + damaged + good");
    let line = damage_line(
        &bad,
        at,
        "block length 2147483633 is below 12 or not a multiple of 4",
        ng.len() - at,
    );
    let damaged: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("damaged at byte"))
        .collect();
    assert_eq!(damaged, [line.as_str()], "{stderr}");
}
