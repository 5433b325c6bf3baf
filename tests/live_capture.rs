//! Live capture on a veth pair (root only; skipped with a note otherwise).
//!
//! Each test makes its own network namespace and veth pair (2 rx queues each
//! end, IPv6 off so only replayed frames flow), attaches a live backend on
//! the root-side end, replays a synthetic pcap into the peer end from inside
//! the namespace with tcpreplay, and checks the frames and bytes counted in
//! the poll closure against the generator's ground truth, with every drop
//! the kernel reports accounted for. Run with
//!
//!   cargo test --test live_capture -- --test-threads=1

mod common;
use common::metric_sum;

use common::testnet::{can_run as can_run_with, sh, TestNet};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use xdpacct::capture::afpacket::{open_afpacket, AfpacketOptions};
use xdpacct::capture::afxdp::{open_afxdp, AfxdpOptions, XdpMode};
use xdpacct::capture::stats::{QueueStats, QueueStatsSource};
use xdpacct::capture::{Capture, CaptureError};

const PACKETS: u64 = 20_000;

/// The live tests share two cores with the kernel and tcpreplay; running
/// them one at a time (whatever --test-threads says) keeps the zero-drop
/// check meaningful.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn can_run() -> bool {
    can_run_with("live capture test", &["ip", "tcpreplay", "python3"])
}

impl TestNet {
    fn link_stats(&self) -> String {
        format!(
            "{}{}",
            sh(&["ip", "-s", "link", "show", "dev", &self.root_if]),
            self.in_ns(&["ip", "-s", "link", "show", "dev", &self.peer_if])
        )
    }
}

struct Truth {
    pcap: PathBuf,
    json: PathBuf,
    packets: u64,
    l2_bytes: u64,
}

/// The 20k-frame synthetic capture and its ground truth, generated once.
fn truth() -> &'static Truth {
    static TRUTH: OnceLock<(tempfile::TempDir, Truth)> = OnceLock::new();
    &TRUTH
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let (pcap, json) = common::generate(dir.path(), PACKETS as u32, 3, 1600);
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
            let packets = v["totals"]["packets"].as_u64().unwrap();
            let l2_bytes = v["totals"]["l2_bytes"].as_u64().unwrap();
            assert_eq!(packets, PACKETS);
            (
                dir,
                Truth {
                    pcap,
                    json,
                    packets,
                    l2_bytes,
                },
            )
        })
        .1
}

/// Runs one pinned worker thread per queue, counting in the poll closure,
/// until `done(frames_so_far)` or 10 s after `replay` returned.
fn count_with<C: Capture + 'static>(
    queues: Vec<C>,
    stats: Vec<Arc<dyn QueueStatsSource>>,
    replay: impl FnOnce() -> u64,
) -> (u64, u64, u64, Vec<QueueStats>) {
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let workers: Vec<_> = queues
        .into_iter()
        .enumerate()
        .map(|(i, mut q)| {
            let (stop, frames, bytes) = (stop.clone(), frames.clone(), bytes.clone());
            let core = if cores.is_empty() {
                None
            } else {
                Some(cores[i % cores.len()])
            };
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                while !stop.load(Ordering::Relaxed) {
                    let (mut n, mut b) = (0u64, 0u64);
                    q.poll(256, |f| {
                        assert!(f.data.len() as u32 <= f.wire_len);
                        n += 1;
                        b += u64::from(f.wire_len);
                    })
                    .expect("poll");
                    frames.fetch_add(n, Ordering::Relaxed);
                    bytes.fetch_add(b, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let sent = replay();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dropped: u64 = stats.iter().map(|s| s.stats().dropped_total()).sum();
        if frames.load(Ordering::Relaxed) + dropped >= sent || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let anything still in flight land (and show up as an excess).
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker panicked");
    }
    let snap = stats.iter().map(|s| s.stats()).collect();
    (
        sent,
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        snap,
    )
}

fn check(backend: &str, net: &TestNet, sent: u64, frames: u64, bytes: u64, stats: &[QueueStats]) {
    let t = truth();
    let dropped: u64 = stats.iter().map(QueueStats::dropped_total).sum();
    let received: u64 = stats.iter().map(|s| s.frames_received).sum();
    eprintln!("{backend}: sent {sent}, counted {frames} frames / {bytes} bytes, dropped {dropped}");
    for s in stats {
        eprintln!("  {s:?}");
    }
    let ctx = || format!("{backend}: stats {stats:#?}\n{}", net.link_stats());
    assert_eq!(sent, t.packets, "tcpreplay sent every frame");
    assert_eq!(
        received,
        frames,
        "the stats' received count matches the closure's; {}",
        ctx()
    );
    assert_eq!(
        frames + dropped,
        t.packets,
        "received + dropped == sent; {}",
        ctx()
    );
    assert_eq!(dropped, 0, "no drops at tcpreplay's pace; {}", ctx());
    assert_eq!(
        bytes,
        t.l2_bytes,
        "layer-2 bytes match the truth; {}",
        ctx()
    );
}

fn afxdp_replay(tag: &str, mode: XdpMode) {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xq", tag, 2);
    let opts = AfxdpOptions {
        xdp_mode: mode,
        ..AfxdpOptions::default()
    };
    let queues = open_afxdp(&opts, &net.root_if).expect("open AF_XDP");
    assert_eq!(queues.len(), 2, "one socket per rx queue");
    assert!(net.xdp_attached());
    let stats: Vec<_> = queues.iter().map(|q| q.stats_source()).collect();
    // The metrics side keeps its handles after the queues are gone.
    let kept = stats.clone();
    let (sent, frames, bytes, snap) = count_with(queues, stats, || net.replay(&truth().pcap));
    check("afxdp", &net, sent, frames, bytes, &snap);
    let seen: u64 = snap.iter().map(|s| s.frames_seen).sum();
    let seen_bytes: u64 = snap.iter().filter_map(|s| s.bytes_seen).sum();
    assert_eq!(seen, truth().packets, "the XDP program saw every frame");
    assert_eq!(
        seen_bytes,
        truth().l2_bytes,
        "the XDP program saw every byte"
    );
    // All queues dropped: the bpf_link is gone with them, even though stats
    // handles are still held, and those still report the final counts.
    assert!(
        !net.xdp_attached(),
        "XDP program detached when the queues were dropped"
    );
    let after: u64 = kept.iter().map(|s| s.stats().frames_received).sum();
    assert_eq!(after, frames, "closed queues keep their final counts");
    assert!(
        sh(&["ip", "-d", "link", "show", "dev", &net.root_if]).contains("promiscuity 0"),
        "promiscuous mode left with the queues"
    );
}

#[test]
fn afxdp_native_counts_replay_exactly() {
    afxdp_replay("n", XdpMode::Native);
}

#[test]
fn afxdp_generic_counts_replay_exactly() {
    afxdp_replay("g", XdpMode::Generic);
}

#[test]
fn afpacket_counts_replay_exactly() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xq", "p", 2);
    let queues = open_afpacket(&AfpacketOptions::default(), &net.root_if).expect("open AF_PACKET");
    assert_eq!(queues.len(), 2, "one fanout member per rx queue");
    let stats: Vec<_> = queues.iter().map(|q| q.stats_source()).collect();
    let (sent, frames, bytes, snap) = count_with(queues, stats, || net.replay(&truth().pcap));
    check("afpacket", &net, sent, frames, bytes, &snap);
    let seen: u64 = snap.iter().map(|s| s.frames_seen).sum();
    assert_eq!(
        seen,
        truth().packets,
        "tp_packets over the group equals sent"
    );
}

#[test]
fn startup_errors_name_interface_and_fix() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let err = open_afxdp(&AfxdpOptions::default(), "xq-missing0")
        .err()
        .expect("missing interface fails");
    assert!(
        matches!(err, CaptureError::NoSuchInterface { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("xq-missing0"), "{err}");
    let err = open_afpacket(&AfpacketOptions::default(), "xq-missing0")
        .err()
        .expect("missing interface fails");
    assert!(
        matches!(err, CaptureError::NoSuchInterface { .. }),
        "{err:?}"
    );

    // A second xdpacct on the same interface: its sockets find the queues taken.
    let net = TestNet::new("xq", "e", 2);
    let held = open_afxdp(&AfxdpOptions::default(), &net.root_if).expect("first attach");
    let err = open_afxdp(&AfxdpOptions::default(), &net.root_if)
        .err()
        .expect("second attach fails");
    assert!(matches!(err, CaptureError::QueueBusy { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&net.root_if) && msg.contains("already"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
    drop(held);

    // Another tool's XDP program, attached through netlink.
    if !common::require_tool("the foreign-program case of the attach-error test", "clang") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("pass.c");
    let obj = dir.path().join("pass.o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int pass(void *ctx) { return 2; }\n\
                          char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    sh(&[
        "clang",
        "-O2",
        "-target",
        "bpf",
        "-c",
        src.to_str().unwrap(),
        "-o",
        obj.to_str().unwrap(),
    ]);
    sh(&[
        "ip",
        "link",
        "set",
        "dev",
        &net.root_if,
        "xdp",
        "obj",
        obj.to_str().unwrap(),
        "sec",
        "xdp",
    ]);
    let err = open_afxdp(&AfxdpOptions::default(), &net.root_if)
        .err()
        .expect("attach over a foreign program fails");
    assert!(matches!(err, CaptureError::XdpBusy { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&net.root_if) && msg.contains("already attached") && msg.contains("xdp off"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
    sh(&["ip", "link", "set", "dev", &net.root_if, "xdp", "off"]);
}

/// Not a test on its own: the process the SIGKILL test starts (re-executing
/// this binary) to hold an XDP attachment until killed.
#[test]
#[ignore]
fn hold_xdp_helper() {
    let Ok(ifname) = std::env::var("XDPACCT_HOLD_IF") else {
        return;
    };
    match open_afxdp(&AfxdpOptions::default(), &ifname) {
        Ok(_queues) => {
            println!("HOLDING");
            std::thread::sleep(Duration::from_secs(30));
        }
        Err(e) => println!("ERROR {e}"),
    }
}

fn spawn_helper(ifname: &str, wrap: &[&str]) -> (std::process::Child, String) {
    let exe = std::env::current_exe().unwrap();
    let mut args: Vec<String> = wrap.iter().map(|s| s.to_string()).collect();
    args.push(exe.to_str().unwrap().to_owned());
    args.extend(
        [
            "hold_xdp_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(String::from),
    );
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .env("XDPACCT_HOLD_IF", ifname)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn helper");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness prefixes the first line with "test NAME ... ".
            for marker in ["HOLDING", "ERROR "] {
                if let Some(at) = line.find(marker) {
                    let _ = tx.send(line[at..].to_owned());
                    return;
                }
            }
        }
        let _ = tx.send(String::from("EOF"));
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| String::from("TIMEOUT"));
    (child, line)
}

/// Regression guard for the netlink-attach failure mode: a SIGKILLed holder
/// must leave no XDP program behind, so the next start attaches at once.
#[test]
fn sigkill_leaves_no_xdp_program() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xq", "k", 2);
    let (mut child, line) = spawn_helper(&net.root_if, &[]);
    if line != "HOLDING" {
        let _ = child.kill();
        let _ = child.wait();
        panic!("helper did not attach: {line}");
    }
    assert!(net.xdp_attached(), "helper holds the program");
    child.kill().expect("SIGKILL helper");
    child.wait().expect("reap helper");
    assert!(
        !net.xdp_attached(),
        "no XDP program left after SIGKILL: {}",
        sh(&["ip", "link", "show", "dev", &net.root_if])
    );
    // The kernel frees the dead process's sockets in deferred work; open
    // waits for that (bounded), so a restart right after a crash succeeds.
    let t0 = Instant::now();
    let again = open_afxdp(&AfxdpOptions::default(), &net.root_if).expect("re-attach at once");
    eprintln!("re-attached {:?} after SIGKILL", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(net.xdp_attached());
    drop(again);
    assert!(!net.xdp_attached());
}

/// Without privileges the start-up error says which capabilities are needed.
#[test]
fn unprivileged_start_names_capabilities() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    if !common::require_tool("unprivileged_start_names_capabilities", "setpriv") {
        return;
    }
    let net = TestNet::new("xq", "u", 2);
    let (mut child, line) = spawn_helper(
        &net.root_if,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    if (line == "EOF" || line == "TIMEOUT")
        && !common::missing(
            "unprivileged_start_names_capabilities",
            &format!("the helper could not run unprivileged ({line}); is the test binary readable by nobody?"),
        )
    {
        return;
    }
    assert!(
        line.starts_with("ERROR"),
        "unprivileged attach should fail: {line}"
    );
    assert!(
        line.contains("permission denied")
            && line.contains("CAP_BPF")
            && line.contains(&net.root_if),
        "{line}"
    );
    assert!(!net.xdp_attached());
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains(" 200 ").then_some(body)
}

/// The real binary end to end: `xdpacct run` on the veth, replay, scrape.
fn daemon_replay(tag: &str, mode: &str) {
    daemon_replay_with(tag, mode, false)
}

/// Lifts the soft descriptor limit to the hard one (the flood holds 1,000).
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed,
    // which lives on this stack frame for the whole call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// With `flood`, 1,000 slow clients hold connections to /metrics while the
/// traffic is replayed: counts must stay exact and a scrape must answer.
fn daemon_replay_with(tag: &str, mode: &str, flood: bool) {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xq", tag, 2);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut child = common::xdpacct()
        .arg("--config")
        .arg(common::empty_config())
        .args([
            "run",
            "-i",
            &net.root_if,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-r",
            "198.51.100.0/24:customer=v4",
            "-r",
            "[2001:db8:1::/52]:customer=v6",
        ])
        .args(["--log-level", "warn"])
        .env("XDPACCT_CAPTURE__MODE", mode)
        .stdout(Stdio::null())
        .spawn()
        .expect("start xdpacct run");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let ready = Instant::now() + Duration::from_secs(15);
    while http_get(port, "/metrics").is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("xdpacct run exited early: {status}");
        }
        assert!(Instant::now() < ready, "xdpacct run did not serve /metrics");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut child = Kill(child);
    // The environment layer picked the backend.
    assert_eq!(net.xdp_attached(), mode == "afxdp", "backend {mode} in use");
    let mut slow = Vec::new();
    if flood {
        use std::io::Write;
        raise_fd_limit();
        for i in 0..1000 {
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                if i % 2 == 0 {
                    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
                }
                slow.push(c);
            }
        }
        assert!(slow.len() > 900, "only {} flood connections", slow.len());
    }
    let sent = net.replay(&truth().pcap);
    assert_eq!(sent, truth().packets);
    if flood {
        let t = Instant::now();
        assert!(
            http_get(port, "/metrics").is_some(),
            "scrape during the flood"
        );
        let took = t.elapsed();
        eprintln!("scrape during a 1,000-connection flood took {took:?}");
        assert!(
            took < Duration::from_secs(1),
            "scrape under flood took {took:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = http_get(port, "/metrics").expect("scrape");
        let done = metric_sum(&page, "xdpacct_interface_packets_total")
            + metric_sum(&page, "xdpacct_queue_dropped_total");
        if done >= sent || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(300));
    let page = http_get(port, "/metrics").unwrap_or(page);
    let packets = metric_sum(&page, "xdpacct_interface_packets_total");
    let bytes = metric_sum(&page, "xdpacct_interface_bytes_total");
    let dropped = metric_sum(&page, "xdpacct_queue_dropped_total");
    let seen = metric_sum(&page, "xdpacct_queue_frames_seen_total");
    let relevant: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("xdpacct_interface_") || l.starts_with("xdpacct_queue_"))
        .collect();
    eprintln!("{mode} daemon: packets {packets}, bytes {bytes}, dropped {dropped}, seen {seen}");
    let ctx = || relevant.join("\n");
    assert_eq!(packets + dropped, truth().packets, "{}", ctx());
    assert_eq!(dropped, 0, "{}", ctx());
    assert_eq!(packets, truth().packets, "{}", ctx());
    assert_eq!(bytes, truth().l2_bytes, "{}", ctx());
    assert_eq!(seen, truth().packets, "{}", ctx());
    assert_eq!(
        metric_sum(&page, "xdpacct_queue_frames_accounted_total"),
        packets
    );
    // Per host, in and out, packets and bytes: exactly the generator's truth.
    let body = page
        .split_once("\r\n\r\n")
        .map_or(page.as_str(), |(_, b)| b);
    common::assert_hosts_match_truth(&common::parse_exposition(body), &truth().json, "l2");

    let status = common::sigterm_and_wait(&mut child.0, 10);
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit on SIGTERM: {status:?}"
    );
    assert!(!net.xdp_attached(), "no XDP program left after exit");
}

#[test]
fn daemon_afxdp_metrics_match_replay() {
    daemon_replay("d", "afxdp");
}

#[test]
fn daemon_counts_exactly_while_metrics_is_flooded() {
    daemon_replay_with("f", "afxdp", true);
}

#[test]
fn daemon_afpacket_metrics_match_replay() {
    daemon_replay("a", "afpacket");
}

/// A pcap of `count` IPv4/UDP frames cycling through `sizes` (wire lengths);
/// returns the total bytes.
fn write_jumbo_pcap(path: &Path, sizes: &[usize], count: usize) -> u64 {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut total = 0u64;
    for i in 0..count {
        let size = sizes[i % sizes.len()];
        let mut f = vec![0u8; size];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (size - 14) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[203, 0, 113, (i % 250) as u8 + 1]);
        f[30..34].copy_from_slice(&[198, 51, 100, 7]);
        f[34..36].copy_from_slice(&4000u16.to_be_bytes());
        f[36..38].copy_from_slice(&5000u16.to_be_bytes());
        f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(size as u32).to_le_bytes());
        out.extend_from_slice(&(size as u32).to_le_bytes());
        out.extend_from_slice(&f);
        total += size as u64;
    }
    std::fs::write(path, out).unwrap();
    total
}

/// Jumbo frames (MTU 9000) arrive whole on both backends: AF_XDP lends the
/// first fragment with the full wire length (multi-buffer), AF_PACKET the
/// whole frame.
#[test]
fn jumbo_frames_count_exactly() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let net = TestNet::new("xq", "j", 2);
    sh(&["ip", "link", "set", &net.root_if, "mtu", "9000"]);
    net.in_ns(&["ip", "link", "set", &net.peer_if, "mtu", "9000"]);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("jumbo.pcap");
    let count = 2000;
    let bytes_sent = write_jumbo_pcap(&pcap, &[60, 1514, 2000, 4000, 9014], count);

    let queues = open_afxdp(&AfxdpOptions::default(), &net.root_if).expect("AF_XDP on MTU 9000");
    assert!(
        queues.iter().all(|q| q.is_multi_buffer()),
        "multi-buffer sockets"
    );
    let stats: Vec<_> = queues.iter().map(|q| q.stats_source()).collect();
    let (sent, frames, bytes, snap) = count_with(queues, stats, || net.replay(&pcap));
    let dropped: u64 = snap.iter().map(QueueStats::dropped_total).sum();
    eprintln!("afxdp jumbo: sent {sent}, counted {frames} / {bytes} bytes, dropped {dropped}");
    assert_eq!(sent, count as u64);
    assert_eq!((frames, bytes, dropped), (sent, bytes_sent, 0), "{snap:#?}");

    let queues = open_afpacket(&AfpacketOptions::default(), &net.root_if).expect("AF_PACKET");
    let stats: Vec<_> = queues.iter().map(|q| q.stats_source()).collect();
    let (sent, frames, bytes, snap) = count_with(queues, stats, || net.replay(&pcap));
    let dropped: u64 = snap.iter().map(QueueStats::dropped_total).sum();
    eprintln!("afpacket jumbo: sent {sent}, counted {frames} / {bytes} bytes, dropped {dropped}");
    assert_eq!((frames, bytes, dropped), (sent, bytes_sent, 0), "{snap:#?}");
}
