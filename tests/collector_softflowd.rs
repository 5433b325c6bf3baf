//! A real exporter into the collector: `softflowd` (Debian package) reads a
//! pcap this test writes and exports NetFlow v5, v9 and IPFIX to a
//! `collector::socket::Receiver` on 127.0.0.1; the per-host packets and IP
//! bytes decoded must equal what the test computes from the pcap itself
//! (parsed with `pcap-file` and `wire::parse_frame`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xdpacct::collector::socket::Receiver;
use xdpacct::collector::{ByteLayer, Collector, CollectorConfig, DropReason};
use xdpacct::wire::{parse_frame, FrameFacts, L3Addrs};

/// (source address) → (packets, IP bytes).
type Hosts = BTreeMap<IpAddr, (u64, u64)>;

fn ip(a: &L3Addrs) -> Option<IpAddr> {
    match a {
        L3Addrs::V4 { src, .. } => Some(IpAddr::from(*src)),
        L3Addrs::V6 { src, .. } => Some(IpAddr::from(*src)),
        L3Addrs::None => None,
    }
}

/// A small deterministic capture: TCP and UDP, IPv4 and (optionally)
/// IPv6, 8 local hosts talking to 5 remote ones, sizes 64..1500.
fn write_pcap(path: &Path, with_v6: bool) {
    let file = std::fs::File::create(path).unwrap();
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = pcap_file::pcap::PcapWriter::with_header(file, header).unwrap();
    let start = 1_700_000_000u64;
    let mut x: u32 = 12345;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..600u32 {
        let r = rnd();
        let local = (r % 8) as u8 + 1;
        let remote = ((r >> 3) % 5) as u8 + 1;
        let out = r & 0x100 != 0;
        let tcp = r & 0x200 != 0;
        let v6 = with_v6 && r & 0x400 != 0;
        let payload = (rnd() % 1400) as usize;
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        let l4_len = if tcp { 20 } else { 8 } + payload;
        let (sp, dp) = if out {
            (40000 + u16::from(local), 443)
        } else {
            (443, 40000 + u16::from(local))
        };
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[if tcp { 6 } else { 17 }, 64]);
            let l = [
                0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, local, 0, 0, 0, 0, 0, 0, 0, 1,
            ];
            let m = [
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, remote,
            ];
            let (s, d) = if out { (l, m) } else { (m, l) };
            f.extend_from_slice(&s);
            f.extend_from_slice(&d);
        } else {
            let total = (20 + l4_len) as u16;
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, if tcp { 6 } else { 17 }, 0, 0]);
            let l = [198, 51, 100, local];
            let m = [203, 0, 113, remote];
            let (s, d) = if out { (l, m) } else { (m, l) };
            f.extend_from_slice(&s);
            f.extend_from_slice(&d);
        }
        f.extend_from_slice(&sp.to_be_bytes());
        f.extend_from_slice(&dp.to_be_bytes());
        if tcp {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        f.resize(f.len() + payload, 0xa5);
        let ts = Duration::from_millis(start * 1000 + u64::from(i) * 10);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, &f))
            .unwrap();
    }
}

/// Per-source-host truth, from the pcap file itself.
fn truth(path: &Path) -> Hosts {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut hosts = Hosts::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let mut facts = FrameFacts::default();
        parse_frame(&p.data, &mut facts).unwrap();
        let e = hosts.entry(ip(&facts.addrs).unwrap()).or_default();
        e.0 += 1;
        e.1 += u64::from(facts.ip_len);
    }
    hosts
}

fn softflowd_present() -> bool {
    let found = Command::new("softflowd")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "softflowd not found: install the Debian package softflowd"
        );
        eprintln!("SKIPPED: softflowd not found (apt-get install softflowd)");
    }
    found
}

/// Runs softflowd on `pcap` exporting `version` to a fresh receiver and
/// decodes everything it sends.
fn run(version: &str, with_v6: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    write_pcap(&pcap, with_v6);
    let want = truth(&pcap);
    let mut rx = Receiver::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    rx.set_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut args: Vec<String> = vec![
        "-r".into(),
        pcap.display().to_string(),
        "-n".into(),
        rx.local_addr().to_string(),
        "-v".into(),
        version.into(),
        "-d".into(),
        // No control socket: with one, softflowd keeps running after EOF.
        "-c".into(),
        "none".into(),
        "-p".into(),
        dir.path().join("pid").display().to_string(),
    ];
    if with_v6 {
        args.push("-6".into());
    }
    let mut child = Command::new("softflowd")
        .args(&args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = Collector::new(CollectorConfig::default()).unwrap();
    let mut got = Hosts::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exited_at = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "softflowd -v {version} did not finish in 30 s ({} datagrams received): {}",
                rx.stats().datagrams,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let n = rx
            .recv_batch(|from, data| {
                c.datagram(from, now, data, &mut |r| {
                    let (bytes, exact) = r.bytes(ByteLayer::L3);
                    assert!(exact);
                    let e = got.entry(ip(&r.addrs).unwrap()).or_default();
                    e.0 += r.packets;
                    e.1 += bytes;
                })
            })
            .unwrap();
        if exited_at.is_none() {
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(st.success(), "softflowd -v {version} failed: {st}: {err}");
                exited_at = Some(now);
            }
        }
        // Drained: softflowd is gone and nothing came for a while.
        if n == 0 && exited_at.is_some_and(|t| now.duration_since(t) > Duration::from_millis(500)) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let s = c.stats();
    assert_eq!(s.dropped.iter().sum::<u64>(), 0, "-v {version}: {s:?}");
    assert_eq!(rx.stats().kernel_drops, 0);
    for (_, _, _, e) in c.exporters() {
        assert_eq!(
            (e.lost_datagrams, e.lost_records, e.restarts),
            (0, 0, 0),
            "-v {version}: {e:?}"
        );
    }
    assert_eq!(got, want, "-v {version}: per-host packets and IP bytes");
    let records: u64 = s.records.iter().sum();
    assert!(records >= want.len() as u64);
}

#[test]
fn softflowd_netflow_v5() {
    if softflowd_present() {
        run("5", false);
    }
}

#[test]
fn softflowd_netflow_v9() {
    if softflowd_present() {
        run("9", true);
    }
}

#[test]
fn softflowd_ipfix() {
    if softflowd_present() {
        run("10", true);
    }
}

#[test]
fn the_capture_has_the_mix_the_test_needs() {
    // The truth is not trivial: several hosts, both families.
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    write_pcap(&pcap, true);
    let t = truth(&pcap);
    assert!(t.keys().filter(|a| a.is_ipv4()).count() >= 10);
    assert!(t.keys().filter(|a| a.is_ipv6()).count() >= 10);
    assert_eq!(t.values().map(|v| v.0).sum::<u64>(), 600);
    let _ = DropReason::ALL;
}
