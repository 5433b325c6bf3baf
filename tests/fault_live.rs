//! Fault tests of the real daemon (issue 9; root only, skipped with a note
//! otherwise, a failure when CI is set). Each test makes its own network namespace and veth pair
//! (removed by a guard, even on failure), starts `xdpacct run` on the
//! root-side end, replays a 2000-frame synthetic pcap into the peer end
//! from inside the namespace with tcpreplay, and scrapes /metrics:
//!
//! - the interface goes down and up while traffic flows: the gap is logged
//!   and counted, counting resumes exactly;
//! - the interface is deleted and created again: the daemon re-attaches,
//!   totals continue;
//! - SIGHUP with a broken config keeps the old one; a fixed one is applied
//!   and earlier counts are kept;
//! - the NetFlow collector (nfcapd) disappears and returns: the daemon lives
//!   on and the next batch arrives;
//! - SIGKILL and restart: no XDP program is left, the restart counts at once;
//! - capabilities: after start only the documented set remains.
//!
//! Run with `cargo test --test fault_live -- --test-threads=1`. Logs of the
//! daemon are printed when a test fails (and with XDPACCT_TEST_LOGS=1).

mod common;
use common::metric_sum;
use common::wait_for;
use common::{free_tcp_port, free_udp_port, http_get};

use common::testnet::{can_run as can_run_with, sh, TestNet};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Frames in the synthetic capture: fewer than the rx ring holds, so a
/// busy (debug-build) worker loses none.
const PACKETS: u64 = 2000;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn can_run(extra: &[&str]) -> bool {
    let tools: Vec<&str> = ["ip", "tcpreplay", "python3"]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    can_run_with("fault test", &tools)
}

impl TestNet {
    /// Replays the synthetic pcap out of the peer end; returns frames sent.
    fn replay_truth(&self) -> u64 {
        self.replay(&truth().pcap)
    }

    /// Starts a slow replay (about `secs` seconds) in the background.
    fn replay_slowly(&self, secs: u64) -> Child {
        let pps = (PACKETS / secs.max(1)).to_string();
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "tcpreplay", "-q", "-i"])
            .arg(&self.peer_if)
            .args(["--pps", &pps])
            .arg(&truth().pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tcpreplay")
    }
}

struct Truth {
    _dir: tempfile::TempDir,
    pcap: PathBuf,
    json: serde_json::Value,
}

fn truth() -> &'static Truth {
    static TRUTH: OnceLock<Truth> = OnceLock::new();
    TRUTH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, json) = common::generate(dir.path(), PACKETS as u32, 3, 1600);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(json["totals"]["packets"].as_u64(), Some(PACKETS));
        Truth {
            _dir: dir,
            pcap,
            json,
        }
    })
}

/// A running `xdpacct run`; killed on drop, its log printed if the test failed.
struct Daemon {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `xdpacct run ARGS --listen 127.0.0.1:PORT` and waits until it serves.
    fn start(args: &[&str], port: u16) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("xdpacct.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = common::xdpacct();
        if !args.contains(&"--config") {
            cmd.arg("--config").arg(common::empty_config());
        }
        let child = cmd
            .arg("run")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start xdpacct run");
        let mut d = Daemon {
            child: Some(child),
            port,
            log,
            _dir: dir,
        };
        let served = wait_for(20, || {
            if let Ok(Some(status)) = d.child.as_mut()?.try_wait() {
                panic!("xdpacct run exited early: {status}\n{}", d.log_text());
            }
            http_get(port, "/metrics")
        });
        assert!(
            served.is_some(),
            "xdpacct run did not serve /metrics\n{}",
            d.log_text()
        );
        d
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn page(&self) -> String {
        http_get(self.port, "/metrics").expect("scrape /metrics")
    }

    fn metric(&self, name: &str) -> u64 {
        metric_sum(&self.page(), name)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    fn wait_log(&self, needle: &str, secs: u64) -> bool {
        wait_for(secs, || self.log_text().contains(needle).then_some(())).is_some()
    }

    /// Packets counted (any direction) plus drops the kernel reported.
    fn counted(&self) -> (u64, u64) {
        let page = self.page();
        (
            metric_sum(&page, "xdpacct_interface_packets_total"),
            metric_sum(&page, "xdpacct_queue_dropped_total"),
        )
    }

    /// Waits until `target` packets are counted (or dropped), then a little
    /// longer so nothing late is missed; returns (packets, dropped).
    fn wait_counted(&self, target: u64) -> (u64, u64) {
        let _ = wait_for(15, || {
            let (p, d) = self.counted();
            (p + d >= target).then_some(())
        });
        std::thread::sleep(Duration::from_millis(300));
        self.counted()
    }

    fn signal(&self, sig: &str) {
        sh(&["kill", sig, &self.pid().to_string()]);
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = common::sigterm_and_wait(&mut child, 15);
        let log = self.log_text();
        assert!(
            status.is_some_and(|s| s.success()),
            "clean exit on SIGTERM: {status:?}\n{log}"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() || std::env::var_os("XDPACCT_TEST_LOGS").is_some() {
            eprintln!("--- xdpacct log\n{}", self.log_text());
        }
    }
}

/// Per (ip, direction) packets of the host series on a page.
fn hosts(page: &str) -> std::collections::HashMap<(String, String), (u64, u64)> {
    common::host_table(&common::parse_exposition(page))
}

/// The truth's packets for `ip` and `dir` ("in"/"out").
fn truth_packets(ip: &str, dir: &str) -> u64 {
    truth().json["hosts"][ip][format!("{dir}_packets")]
        .as_u64()
        .unwrap_or(0)
}

fn in_upper_half(ip: &str) -> bool {
    ip.rsplit('.')
        .next()
        .and_then(|o| o.parse::<u8>().ok())
        .is_some_and(|o| o >= 128)
}

#[test]
fn fault_interface_down_up_resumes_counting_and_reports_the_gap() {
    if !can_run(&[]) {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xf", "a", 1);
    let port = free_tcp_port();
    let mut d = Daemon::start(&["-i", &net.root_if, "-r", "198.51.100.0/24"], port);

    // Down and up in the middle of a slow replay (about 3 s).
    let mut slow = net.replay_slowly(3);
    std::thread::sleep(Duration::from_millis(1000));
    sh(&["ip", "link", "set", &net.root_if, "down"]);
    std::thread::sleep(Duration::from_millis(500));
    sh(&["ip", "link", "set", &net.root_if, "up"]);
    let done = wait_for(20, || slow.try_wait().ok().flatten());
    if done.is_none() {
        let _ = slow.kill();
        let _ = slow.wait();
    }
    assert!(d.wait_log("interface went down", 5), "gap logged");
    assert!(d.wait_log("interface is up again", 5), "return logged");
    assert!(d.alive());
    let page = d.page();
    assert!(
        metric_sum(&page, "xdpacct_interface_down_total") >= 1,
        "{page}"
    );
    assert!(
        wait_for(5, || (d.metric("xdpacct_interface_up") == 1).then_some(())).is_some(),
        "xdpacct_interface_up back to 1"
    );
    // Some of the slow replay was lost while down (tcpreplay's sends fail);
    // what the kernel passed on is counted. After the return: exactly.
    let (before, dropped_before) = d.wait_counted(1);
    assert!(
        before > 0 && before < PACKETS,
        "partial first replay: {before}"
    );
    assert_eq!(net.replay_truth(), PACKETS);
    let (after, dropped_after) = d.wait_counted(before + dropped_before + PACKETS);
    assert_eq!(dropped_after, dropped_before, "no drop after the return");
    assert_eq!(after - before, PACKETS, "counting resumed exactly");
    assert_eq!(
        d.metric("xdpacct_capture_restarts_total"),
        0,
        "down/up needs no capture restart on veth"
    );
    d.stop();
    assert!(!net.xdp_attached());
}

#[test]
fn fault_interface_deleted_and_recreated_is_reattached() {
    if !can_run(&[]) {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xf", "b", 1);
    let port = free_tcp_port();
    let mut d = Daemon::start(&["-i", &net.root_if, "-r", "198.51.100.0/24"], port);
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(PACKETS), (PACKETS, 0));

    sh(&["ip", "link", "del", &net.root_if]);
    assert!(d.wait_log("capture lost", 5), "loss logged");
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.alive(), "daemon survives the interface's removal");
    assert_eq!(d.metric("xdpacct_interface_up"), 0);
    assert_eq!(
        d.counted().0,
        PACKETS,
        "counts kept while the interface is gone"
    );

    net.add_link();
    assert!(
        wait_for(15, || (d.metric("xdpacct_capture_restarts_total") >= 1
            && d.metric("xdpacct_interface_up") == 1)
            .then_some(()))
        .is_some(),
        "capture reopened\n{}",
        d.page()
    );
    assert!(
        net.xdp_attached(),
        "XDP program attached to the new interface"
    );
    assert_eq!(net.replay_truth(), PACKETS);
    let (packets, dropped) = d.wait_counted(2 * PACKETS);
    assert_eq!((packets, dropped), (2 * PACKETS, 0), "totals continue");
    let page = d.page();
    assert_eq!(
        metric_sum(&page, "xdpacct_queue_frames_received_total"),
        2 * PACKETS,
        "queue counters continue across sockets"
    );
    assert_eq!(
        metric_sum(&page, "xdpacct_queue_frames_seen_total"),
        2 * PACKETS
    );
    d.stop();
    assert!(!net.xdp_attached());
}

fn write_config(path: &Path, ifname: &str, ranges: &[&str], extra: &str) {
    let mut s = format!(
        "[capture]\ninterfaces = [\"{ifname}\"]\n\n[accounting]\nlocal_networks = [\"198.51.100.0/24\"]\n"
    );
    for r in ranges {
        s.push_str(&format!("\n[[accounting.ranges]]\nprefix = \"{r}\"\n"));
    }
    s.push_str(extra);
    std::fs::write(path, s).unwrap();
}

#[test]
fn fault_sighup_with_broken_config_keeps_the_old_one() {
    if !can_run(&[]) {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xf", "c", 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xdpacct.toml");
    write_config(&cfg, &net.root_if, &["198.51.100.0/25"], "");
    let port = free_tcp_port();
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()], port);
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(PACKETS), (PACKETS, 0));
    let h1 = hosts(&d.page());
    assert!(!h1.is_empty());
    assert!(h1.keys().all(|(ip, _)| !in_upper_half(ip)), "only the /25");

    // Broken: not TOML at all. The old tables stay and the daemon says why.
    std::fs::write(&cfg, "[capture\ninterfaces = oops").unwrap();
    d.signal("-HUP");
    assert!(
        d.wait_log("SIGHUP: keeping the old configuration", 5),
        "reason logged"
    );
    // Broken differently: valid TOML, invalid prefix.
    write_config(&cfg, &net.root_if, &["198.51.100.300/25"], "");
    d.signal("-HUP");
    assert!(
        wait_for(5, || (d
            .log_text()
            .matches("keeping the old configuration")
            .count()
            >= 2)
            .then_some(()))
        .is_some(),
        "second reason logged"
    );
    assert!(d.alive());
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(2 * PACKETS), (2 * PACKETS, 0));

    // Fixed, with a new range: its hosts appear, the old counts are kept.
    write_config(
        &cfg,
        &net.root_if,
        &["198.51.100.0/25", "198.51.100.128/25"],
        "",
    );
    d.signal("-HUP");
    assert!(d.wait_log("SIGHUP: host tables reloaded", 5));
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(3 * PACKETS), (3 * PACKETS, 0));
    let h3 = hosts(&d.page());
    let mut upper = 0;
    for ((ip, dir), (packets, _)) in &h3 {
        let one = truth_packets(ip, dir);
        if in_upper_half(ip) {
            upper += 1;
            assert_eq!(*packets, one, "{ip} {dir}: new range, one replay");
        } else {
            assert_eq!(
                *packets,
                3 * one,
                "{ip} {dir}: old range, all three replays"
            );
        }
    }
    assert!(upper > 0, "hosts of the new range appear");
    d.stop();
}

/// Packets nfcapd stored in `dir`, per nfdump.
fn nfdump_packets(dir: &Path) -> u64 {
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-q", "-N", "-o", "fmt:%pkt"])
        .output()
        .expect("run nfdump");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum()
}

/// nfcapd on 127.0.0.1:`port` writing into `dir`; TERM (which writes the
/// file) on drop.
struct Nfcapd(Option<Child>);

impl Nfcapd {
    fn start(port: u16, dir: &Path) -> Nfcapd {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("nfcapd")
            .arg("-w")
            .arg(dir)
            .args(["-p", &port.to_string(), "-b", "127.0.0.1", "-t", "3600"])
            .args(["-B", "4000000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nfcapd");
        let bound = wait_for(10, || {
            std::net::UdpSocket::bind(("127.0.0.1", port))
                .is_err()
                .then_some(())
        });
        assert!(bound.is_some(), "nfcapd did not bind {port}");
        Nfcapd(Some(child))
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            if wait_for(10, || c.try_wait().ok().flatten()).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The collector disappears and returns: the daemon lives on, the outage is
/// counted, and every record of the batch after its return arrives (the
/// first packet to a resumed collector starts with the templates, which a
/// restarted nfcapd needs before it can decode anything).
#[test]
fn fault_netflow_collector_gone_and_back() {
    if !can_run(&["nfcapd", "nfdump"]) {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xf", "d", 1);
    let dir = tempfile::tempdir().unwrap();
    let nf_port = free_udp_port();
    let cfg = dir.path().join("xdpacct.toml");
    write_config(
        &cfg,
        &net.root_if,
        &["198.51.100.0/24"],
        &format!(
            "\n[netflow]\ncollectors = [\"127.0.0.1:{nf_port}\"]\nversion = 10\nidle_timeout = 1\nactive_timeout = 2\n"
        ),
    );
    let (dir1, dir2) = (dir.path().join("nf1"), dir.path().join("nf2"));
    let mut nf1 = Nfcapd::start(nf_port, &dir1);
    let port = free_tcp_port();
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()], port);
    // Every flow of a replay has left the cache (idle 1 s, active 2 s).
    let drained = |d: &Daemon, exported_before: u64| {
        wait_for(15, || {
            let page = d.page();
            (metric_sum(&page, "xdpacct_flow_cache_flows") == 0
                && metric_sum(&page, "xdpacct_flow_records_expired_total") > exported_before)
                .then_some(metric_sum(&page, "xdpacct_flow_records_expired_total"))
        })
        .expect("flows expire")
    };

    assert_eq!(net.replay_truth(), PACKETS);
    let e1 = drained(&d, 0);
    std::thread::sleep(Duration::from_millis(1500));
    nf1.stop();
    let first = nfdump_packets(&dir1);
    assert!(first > 0, "the first collector got flows");

    // Collector gone: export fails (counted), the daemon lives on.
    assert_eq!(net.replay_truth(), PACKETS);
    let e2 = drained(&d, e1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.alive(), "daemon survives a missing collector");
    let page = d.page();
    let (errors, dropped) = (
        metric_sum(&page, "xdpacct_flow_send_errors_total"),
        metric_sum(&page, "xdpacct_flow_records_dropped_total"),
    );
    eprintln!("while the collector was gone: send errors {errors}, records dropped {dropped}");
    assert!(errors > 0 && dropped > 0, "the outage is counted\n{page}");

    // Back on the same port: the next batch arrives in full. The exporter
    // skips a failed collector for 5 s (`ExporterConfig::retry_ms`, not
    // configurable from [netflow]); records sent in that window are
    // dropped even if the collector is already back, so wait it out.
    let mut nf2 = Nfcapd::start(nf_port, &dir2);
    std::thread::sleep(Duration::from_millis(6000));
    assert_eq!(net.replay_truth(), PACKETS);
    drained(&d, e2);
    // The exporter retries a failed collector after a back-off; give the
    // last packets time to go out.
    let arrived = wait_for(20, || {
        let exported = d.metric("xdpacct_flow_packets_sent_total");
        std::thread::sleep(Duration::from_millis(1500));
        (d.metric("xdpacct_flow_packets_sent_total") == exported).then_some(())
    });
    assert!(arrived.is_some());
    nf2.stop();
    let second = nfdump_packets(&dir2);
    let page = d.page();
    eprintln!(
        "after the return: send errors {}, records dropped {}, exported {}",
        metric_sum(&page, "xdpacct_flow_send_errors_total"),
        metric_sum(&page, "xdpacct_flow_records_dropped_total"),
        metric_sum(&page, "xdpacct_flow_records_exported_total"),
    );
    assert!(d.alive());
    eprintln!("flow packets at nfcapd: {first} before the outage, {second} after the return");
    assert_eq!(
        second, first,
        "the batch after the collector's return arrived in full"
    );
    assert_eq!(d.counted(), (3 * PACKETS, 0));
    d.stop();
}

#[test]
fn fault_sigkill_and_restart_leave_no_xdp_program() {
    if !can_run(&[]) {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xf", "e", 1);
    let port = free_tcp_port();
    let args = ["-i", &net.root_if, "-r", "198.51.100.0/24"];
    let mut d = Daemon::start(&args, port);
    assert!(net.xdp_attached());
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(PACKETS), (PACKETS, 0));
    d.signal("-KILL");
    let mut child = d.child.take().unwrap();
    let _ = child.wait();
    assert!(
        !net.xdp_attached(),
        "no XDP program left after SIGKILL: {}",
        sh(&["ip", "link", "show", "dev", &net.root_if])
    );
    drop(d);
    let t0 = Instant::now();
    let mut d = Daemon::start(&args, port);
    eprintln!("restarted and serving after {:?}", t0.elapsed());
    assert!(net.xdp_attached());
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(PACKETS), (PACKETS, 0), "fresh counts");
    d.stop();
    assert!(!net.xdp_attached());
}

/// CapEff/CapPrm/CapBnd of every thread after start: exactly NET_ADMIN (12),
/// NET_RAW (13), IPC_LOCK (14) and BPF (39) (see src/privileges.rs); and the
/// re-attach they are kept for still works.
#[test]
fn fault_capabilities_dropped_after_start() {
    if !can_run(&[]) {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xf", "p", 1);
    let port = free_tcp_port();
    let d = Daemon::start(&["-i", &net.root_if, "-r", "198.51.100.0/24"], port);
    let want: u64 = (1 << 12) | (1 << 13) | (1 << 14) | (1 << 39);
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert!(tasks.len() > 2, "worker and server threads exist");
    for t in tasks {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap();
        for key in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"] {
            let v = status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| u64::from_str_radix(l[key.len()..].trim(), 16).ok())
                .unwrap_or_else(|| panic!("{key} in {status}"));
            let expect = if key == "CapInh:" || key == "CapAmb:" {
                0
            } else {
                want
            };
            assert_eq!(v, expect, "{key} of {:?}: {v:#x}", t.path());
        }
    }
    assert!(d.log_text().contains("dropped every other capability"));
    // The kept set is enough to re-attach.
    sh(&["ip", "link", "del", &net.root_if]);
    std::thread::sleep(Duration::from_millis(500));
    net.add_link();
    assert!(
        wait_for(15, || (d.metric("xdpacct_capture_restarts_total") >= 1)
            .then_some(()))
        .is_some(),
        "re-attached with the reduced set\n{}",
        d.log_text()
    );
    assert_eq!(net.replay_truth(), PACKETS);
    assert_eq!(d.wait_counted(PACKETS), (PACKETS, 0));
}
