//! Handshake RTT live (root only), with each live backend: the handshake
//! generator's capture (legs it chose, 1 ms .. 80 ms) is replayed in real
//! time by tcpreplay into a veth pair from a namespace the test creates;
//! `xdpacct run` captures the root-side end. Reference: dumpcap on the
//! sending end (inside the namespace) records when each frame really left
//! (tcpreplay's pacing on a loaded machine is off by tens of ms, so the
//! generator's times are not the wire's); the legs computed from its
//! timestamps, per customer, must equal xdpacct's within the accuracy the
//! README states.
//!
//! `tc netem`, which would make real handshakes with chosen delays, is not
//! in this machine's kernel (CONFIG_NET_SCH_NETEM is not set), hence the
//! replay.

mod common;
use common::http_get;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::testnet::{can_run, TestNet};

/// The README's accuracy statement: mean error of a leg against the
/// sender's own capture, milliseconds. AF_PACKET: the kernel's receive
/// timestamp. AF_XDP: the worker's clock when it takes the frame off the
/// ring, late by however long the frame waited (the worker may be asleep
/// in poll() on an idle link, on a loaded machine).
const ERROR_AFPACKET_MS: f64 = 0.1;
const ERROR_AFXDP_MS: f64 = 50.0;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(mode: &str, tag: &str) {
    let net = TestNet::new("xt", tag, 1);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hs.pcap");
    let truth_path = dir.path().join("truth.json");
    let st = Command::new("python3")
        .arg(common::data_dir().join("gen_handshakes.py"))
        .arg(&pcap)
        .args(["--handshakes", "60", "--seed", "21", "--span", "2"])
        .args(["--min-leg-us", "1000", "--max-leg-us", "80000"])
        .arg("--truth")
        .arg(&truth_path)
        .status()
        .unwrap();
    assert!(st.success());
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let cfg = dir.path().join("live.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[capture]
mode = "{mode}"
[accounting]
local_networks = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48"]
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
"#
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let log = dir.path().join("xdpacct.log");
    let out = std::fs::File::create(&log).unwrap();
    let _daemon = Kill(
        common::xdpacct()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "-i", &net.root_if])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/metrics").is_none() {
        assert!(
            Instant::now() < deadline,
            "xdpacct run did not serve\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reference = dir.path().join("ref.pcapng");
    let mut dumpcap = Kill(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.ns,
                "dumpcap",
                "-q",
                "-i",
                &net.peer_if,
                "-w",
            ])
            .arg(&reference)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(2));
    // Real time: tcpreplay keeps the capture's gaps (no --topspeed).
    let sent = net.replay_with(&pcap, &["--multiplier=1"]);
    assert_eq!(sent, truth["frames"].as_u64().unwrap());
    std::thread::sleep(Duration::from_millis(1000));
    // SIGINT lets dumpcap finish its file.
    let _ = Command::new("kill")
        .args(["-INT", &dumpcap.0.id().to_string()])
        .status();
    let _ = dumpcap.0.wait();
    let want = reference_legs(&reference);
    let samples = common::parse_exposition(&http_get(port, "/metrics").unwrap());
    let measured = common::sum(
        &samples,
        "xdpacct_tcp_handshakes_total",
        &[("outcome", "measured")],
    );
    assert_eq!(measured, truth["measured"].as_f64().unwrap(), "{mode}");
    let mut worst: f64 = 0.0;
    for (range, legs) in truth["ranges"].as_object().unwrap() {
        let customer = range.strip_prefix("customer=").unwrap();
        for leg in ["internal", "external"] {
            let (n, want_us) = want
                .get(&(customer.to_string(), leg))
                .copied()
                .unwrap_or((0.0, 0.0));
            // The generator agrees on how many.
            assert_eq!(
                n,
                legs[leg][0].as_f64().unwrap(),
                "{range} {leg}: reference count"
            );
            let want_labels = [("customer", customer), ("leg", leg)];
            let got_n = common::sum(
                &samples,
                "xdpacct_tcp_handshake_rtt_seconds_count",
                &want_labels,
            );
            assert_eq!(got_n, n, "{mode} {range} {leg}: count");
            if n == 0.0 {
                continue;
            }
            let got = common::sum(
                &samples,
                "xdpacct_tcp_handshake_rtt_seconds_sum",
                &want_labels,
            );
            let err_ms = (got * 1e6 - want_us) / n / 1e3;
            eprintln!("{mode} {range} {leg}: {n} legs, mean error {err_ms:+.3} ms");
            worst = worst.max(err_ms.abs());
        }
    }
    let bound = if mode == "afpacket" {
        ERROR_AFPACKET_MS
    } else {
        ERROR_AFXDP_MS
    };
    assert!(
        worst <= bound,
        "{mode}: mean error of a leg {worst:.3} ms > {bound} ms"
    );
}

/// The customer of an address, as the test config's ranges say.
fn customer(a: &str) -> Option<&'static str> {
    let ip: std::net::IpAddr = a.parse().ok()?;
    match ip {
        std::net::IpAddr::V4(v) => {
            let o = v.octets();
            (o[..3] == [198, 51, 100]).then(|| if o[3] < 128 { "a" } else { "b" })
        }
        std::net::IpAddr::V6(v) => (v.segments()[..3] == [0x2001, 0xdb8, 1]).then_some("c"),
    }
}

fn local(a: &str) -> bool {
    customer(a).is_some() || a.starts_with("203.0.113.")
}

/// Per (customer, leg): legs and their sum in microseconds, from the
/// frame times of a reference capture (unambiguous handshakes only).
fn reference_legs(
    pcap: &std::path::Path,
) -> std::collections::HashMap<(String, &'static str), (f64, f64)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.time_epoch",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.syn",
        ])
        .args([
            "-e",
            "tcp.flags.ack",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
        ])
        .args(["-e", "ipv6.dst", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw"])
        .output()
        .unwrap();
    assert!(out.status.success());
    #[derive(Default)]
    struct S {
        syn: Vec<f64>,
        synack: Vec<(f64, u64)>,
        ack: Option<f64>,
        client: String,
        server: String,
    }
    let mut streams: std::collections::BTreeMap<String, S> = Default::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 10 || f[1].is_empty() {
            continue;
        }
        let t: f64 = f[0].parse().unwrap();
        let flag = |s: &str| s == "1" || s == "True";
        let (syn, ack) = (flag(f[2]), flag(f[3]));
        let src = if f[4].is_empty() { f[5] } else { f[4] };
        let dst = if f[6].is_empty() { f[7] } else { f[6] };
        let (seq, ackn): (u64, u64) = (f[8].parse().unwrap_or(0), f[9].parse().unwrap_or(0));
        let s = streams.entry(f[1].to_string()).or_default();
        if syn && !ack {
            s.syn.push(t);
            s.client = src.to_string();
            s.server = dst.to_string();
        } else if syn && ack {
            s.synack.push((t, seq));
        } else if ack && s.ack.is_none() && src == s.client {
            if let Some(&(_, sseq)) = s.synack.first() {
                if ackn == (sseq + 1) % (1 << 32) {
                    s.ack = Some(t);
                }
            }
        }
    }
    let mut out = std::collections::HashMap::new();
    for s in streams.values() {
        let (Some(ack), [syn], [(synack, _)]) = (s.ack, &s.syn[..], &s.synack[..]) else {
            continue;
        };
        let server_leg = (synack - syn) * 1e6;
        let client_leg = (ack - synack) * 1e6;
        let (cl, sl) = (local(&s.client), local(&s.server));
        for (host, own, other, other_local) in [
            (&s.client, client_leg, server_leg, sl),
            (&s.server, server_leg, client_leg, cl),
        ] {
            let Some(c) = customer(host) else { continue };
            let mut add = |leg: &'static str, us: f64| {
                let e: &mut (f64, f64) = out.entry((c.to_string(), leg)).or_default();
                e.0 += 1.0;
                e.1 += us;
            };
            add("internal", own);
            if !other_local {
                add("external", other);
            }
        }
    }
    out
}

/// Replays share two cores with the daemon: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn afpacket_kernel_timestamps_measure_the_generated_legs() {
    if !can_run(
        "tcp_rtt live test",
        &["ip", "tcpreplay", "python3", "dumpcap", "tshark"],
    ) {
        return;
    }
    let _g = serial();
    run("afpacket", "p");
}

#[test]
fn afxdp_worker_clock_measures_the_generated_legs() {
    if !can_run(
        "tcp_rtt live test",
        &["ip", "tcpreplay", "python3", "dumpcap", "tshark"],
    ) {
        return;
    }
    let _g = serial();
    run("afxdp", "x");
}
