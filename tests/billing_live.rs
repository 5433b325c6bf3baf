//! The billing ledger in `xdpacct run` on a veth pair (root): SIGTERM in
//! the middle of an interval and a restart inside it leave exactly the
//! frames offered in the interval; SIGKILL loses at most the frames of the
//! last `checkpoint` seconds and the sample says it is incomplete; frames
//! the capture queue drops in an interval (a burst into tiny rings while the
//! daemon is paused, as a stalled worker would be) are counted in its
//! sample, which is then incomplete. The truth is the generator's and
//! tcpreplay's count; the interval is 15 s (`allow_short_interval`,
//! test-only) so that the suite stays fast.

mod common;
use common::http_get;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::testnet::{can_run, sh, TestNet};
use serde_json::Value;

const INTERVAL: u64 = 15;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

struct Daemon(Child, u16);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, iface: &str) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = common::xdpacct()
        .arg("--config")
        .arg(config)
        .args(["run", "-i", iface, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start xdpacct run");
    let mut d = Daemon(child, port);
    let ready = Instant::now() + Duration::from_secs(15);
    while http_get(port, "/metrics").is_none() {
        if let Ok(Some(status)) = d.0.try_wait() {
            panic!("xdpacct run exited early: {status}");
        }
        assert!(Instant::now() < ready, "xdpacct run did not serve /metrics");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn terminate(mut d: Daemon) {
    let status = common::sigterm_and_wait(&mut d.0, 10);
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit on SIGTERM: {status:?}"
    );
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until 0.3 s into the next interval; returns its start.
fn next_interval_start() -> u64 {
    let now = now_secs();
    let start = ((now / INTERVAL as f64).floor() as u64 + 1) * INTERVAL;
    std::thread::sleep(Duration::from_secs_f64(start as f64 + 0.3 - now));
    start
}

fn sleep_until(t: f64) {
    let now = now_secs();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64(t - now));
    }
}

/// (in_packets, in_bytes, out_packets, out_bytes) of every host of a capture.
fn truth_totals(json: &Path) -> [u64; 4] {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let mut t = [0u64; 4];
    for h in v["hosts"].as_object().unwrap().values() {
        t[0] += h["in_packets"].as_u64().unwrap();
        t[1] += h["in_l2_bytes"].as_u64().unwrap();
        t[2] += h["out_packets"].as_u64().unwrap();
        t[3] += h["out_l2_bytes"].as_u64().unwrap();
    }
    t
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    a: (PathBuf, [u64; 4]),
    b: (PathBuf, [u64; 4]),
}

/// The config (with `capture`, TOML of a `[capture]` section or nothing)
/// and two generated captures with their truth.
fn setup(checkpoint: u64, capture: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let config = dir.path().join("live.toml");
    std::fs::write(
        &config,
        format!(
            r#"
{capture}
[accounting]
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
[[accounting.ranges]]
prefix = "198.51.100.0/24"
labels = {{ customer = "live" }}
[[accounting.ranges]]
prefix = "2001:db8:1::/52"
labels = {{ customer = "live" }}
[billing]
interval = {INTERVAL}
allow_short_interval = true
checkpoint = {checkpoint}
db = "{}"
"#,
            db.display()
        ),
    )
    .unwrap();
    let (pa, ta) = common::generate(dir.path(), 3000, 11, 1600);
    let (pb, tb) = common::generate(dir.path(), 2000, 12, 1600);
    let (ta, tb) = (truth_totals(&ta), truth_totals(&tb));
    Setup {
        _dir: dir,
        config,
        a: (pa, ta),
        b: (pb, tb),
    }
}

/// The report's subject "live" over one interval.
fn sample(s: &Setup, start: u64) -> Value {
    let out = common::xdpacct()
        .arg("--config")
        .arg(&s.config)
        .args(["billing", "report", "--format", "json", "--from"])
        .arg(start.to_string())
        .arg("--to")
        .arg((start + INTERVAL).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    r["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["labels"]["customer"] == "live")
        .cloned()
        .unwrap_or_else(|| panic!("no subject in {r:#}"))
}

fn volume(v: &Value) -> [u64; 4] {
    [
        v["in"]["packets"].as_u64().unwrap(),
        v["in"]["bytes"].as_u64().unwrap(),
        v["out"]["packets"].as_u64().unwrap(),
        v["out"]["bytes"].as_u64().unwrap(),
    ]
}

fn add(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

#[test]
fn sigterm_and_restart_inside_an_interval_keep_every_frame_once() {
    if !can_run("billing live test", &["ip", "tcpreplay", "python3"]) {
        return;
    }
    let _serial = serial();
    let s = setup(1, "");
    let net = TestNet::new("xb", "t", 2);
    let d = start(&s.config, &net.root_if);
    let t0 = next_interval_start();
    assert_eq!(net.replay(&s.a.0), s.a.1[0] + s.a.1[2]);
    std::thread::sleep(Duration::from_millis(300));
    terminate(d);
    let d = start(&s.config, &net.root_if);
    assert_eq!(net.replay(&s.b.0), s.b.1[0] + s.b.1[2]);
    assert!(
        now_secs() < (t0 + INTERVAL) as f64 - 0.5,
        "the test machine is too slow for one {INTERVAL} s interval"
    );
    // The interval closes; its report and the live views show it.
    sleep_until((t0 + INTERVAL) as f64 + 1.5);
    let got = sample(&s, t0);
    assert_eq!(volume(&got), add(s.a.1, s.b.1), "{got:#}");
    // Both runs' coverage, not the restart's gap: present, incomplete.
    assert_eq!(got["samples"]["present"], 1);
    assert_eq!(got["samples"]["complete"], 0);
    let page = http_get(d.1, "/metrics").unwrap();
    assert!(
        page.lines()
            .any(|l| l.starts_with("xdpacct_billing_p95_bits{")
                && l.contains("customer=\"live\"")
                && l.contains("direction=\"billable\"")),
        "{page}"
    );
    assert!(page.contains("xdpacct_billing_write_failures_total 0"));
    let api = http_get(
        d.1,
        &format!("/api/v1/billing/report?from={t0}&to={}", t0 + INTERVAL),
    )
    .expect("GET /api/v1/billing/report");
    let r: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(volume(&r["subjects"][0]), add(s.a.1, s.b.1));
    let api = http_get(
        d.1,
        &format!(
            "/api/v1/billing/samples?subject=customer%3Dlive&from={t0}&to={}&format=csv",
            t0 + INTERVAL
        ),
    )
    .expect("GET /api/v1/billing/samples");
    assert_eq!(api.lines().count(), 2, "{api}");
    assert!(api.contains(&add(s.a.1, s.b.1)[1].to_string()), "{api}");
    terminate(d);
}

#[test]
fn sigkill_loses_at_most_the_last_checkpoint_and_marks_the_sample() {
    if !can_run("billing live test", &["ip", "tcpreplay", "python3"]) {
        return;
    }
    let _serial = serial();
    let checkpoint = 1;
    let s = setup(checkpoint, "");
    let net = TestNet::new("xb", "k", 2);
    let mut d = start(&s.config, &net.root_if);
    let t0 = next_interval_start();
    assert_eq!(net.replay(&s.a.0), s.a.1[0] + s.a.1[2]);
    // A is older than a checkpoint when B is sent and the daemon killed.
    std::thread::sleep(Duration::from_millis(checkpoint * 1000 + 1200));
    assert_eq!(net.replay(&s.b.0), s.b.1[0] + s.b.1[2]);
    d.0.kill().unwrap();
    d.0.wait().unwrap();
    let d = start(&s.config, &net.root_if);
    sleep_until((t0 + INTERVAL) as f64 + 1.5);
    terminate(d);
    let got = sample(&s, t0);
    let v = volume(&got);
    let all = add(s.a.1, s.b.1);
    for i in 0..4 {
        assert!(
            v[i] >= s.a.1[i] && v[i] <= all[i],
            "{got:#}: A {:?} B {:?}",
            s.a.1,
            s.b.1
        );
    }
    assert_eq!(got["samples"]["present"], 1);
    assert_eq!(
        got["samples"]["complete"], 0,
        "a killed run's interval is incomplete"
    );
}

/// A metric's sum over all its series on the daemon's page.
fn metric(d: &Daemon, name: &str) -> u64 {
    common::metric_sum(&http_get(d.1, "/metrics").expect("scrape"), name)
}

#[test]
fn capture_drops_in_an_interval_are_counted_in_its_sample_and_mark_it() {
    if !can_run("billing live test", &["ip", "tcpreplay", "python3"]) {
        return;
    }
    let _serial = serial();
    // The smallest rings: at most 64 frames wait for the worker.
    let s = setup(
        1,
        "[capture]\nframes_per_queue = 64\nrx_ring = 64\nfill_ring = 64\n",
    );
    let net = TestNet::new("xb", "d", 1);
    let d = start(&s.config, &net.root_if);
    let pid = d.0.id().to_string();
    let t0 = next_interval_start();
    // The daemon paused (its worker does not drain the ring) while a burst
    // of 3000 frames arrives: the kernel drops what does not fit.
    sh(&["kill", "-STOP", &pid]);
    let sent = net.replay(&s.a.0);
    sh(&["kill", "-CONT", &pid]);
    assert_eq!(sent, s.a.1[0] + s.a.1[2], "tcpreplay sent every frame");
    let (accounted, dropped) = common::wait_for(10, || {
        let a = metric(&d, "xdpacct_queue_frames_accounted_total");
        let x = metric(&d, "xdpacct_queue_dropped_total");
        (a + x >= sent).then_some((a, x))
    })
    .expect("every frame offered is accounted or dropped");
    eprintln!("offered {sent}: accounted {accounted}, dropped {dropped}");
    assert_eq!(accounted + dropped, sent);
    assert!(dropped > 0, "the burst into 64-frame rings dropped nothing");
    assert!(
        now_secs() < (t0 + INTERVAL) as f64 - 2.0,
        "the test machine is too slow: the drops must be seen by a checkpoint inside the interval"
    );
    sleep_until((t0 + INTERVAL) as f64 + 1.5);
    // Nothing more came.
    assert_eq!(metric(&d, "xdpacct_queue_dropped_total"), dropped);
    let api = http_get(
        d.1,
        &format!(
            "/api/v1/billing/samples?subject=customer%3Dlive&from={t0}&to={}",
            t0 + INTERVAL
        ),
    )
    .expect("GET /api/v1/billing/samples");
    let v: Value = serde_json::from_str(&api).unwrap();
    let samples = v["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{api}");
    let x = &samples[0];
    assert_eq!(
        x["dropped"], dropped,
        "the ledger's drops are the queue's: {api}"
    );
    assert_eq!(x["closed"], true, "{api}");
    assert_eq!(
        x["complete"], false,
        "an interval with drops is incomplete: {api}"
    );
    assert_eq!(
        x["in"]["packets"].as_u64().unwrap() + x["out"]["packets"].as_u64().unwrap(),
        accounted,
        "{api}"
    );
    let got = sample(&s, t0);
    assert_eq!(got["samples"]["present"], 1);
    assert_eq!(got["samples"]["complete"], 0);
    terminate(d);
}
