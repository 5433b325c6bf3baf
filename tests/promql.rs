//! End to end against a real Prometheus (Debian's `prometheus`): the real
//! daemon captures live traffic, Prometheus scrapes it and evaluates every
//! dashboard and rule expression, and the host rates it returns equal the
//! independent truth of the replayed capture.
//!
//! - A network namespace and veth pair (tests/common/testnet.rs, prefix "xp");
//!   `xdpacct run` in AF_XDP mode on the root-side end, with host ranges for
//!   three customers, an AS file and names, remote networks, and NetFlow
//!   export to a UDP socket the test owns, so that every family of the
//!   metric contract is produced live (nothing synthetic).
//! - Prometheus on 127.0.0.1 (random port), 1 s scrape and rule interval,
//!   loading packaging/prometheus/xdpacct.rules.yml (intervals rewritten).
//! - the synthetic 100k-frame capture (tests/data/gen_traffic.py, snap
//!   length 128), its frames padded back to their wire length (the truth
//!   counts wire bytes), replayed with tcpreplay at a bounded rate (~12 s)
//!   so that Prometheus scrapes many times during the traffic.
//! - Exact host rates: the per-host counters are exposed at 0 before any
//!   traffic, so `rate(c[R])` evaluated at the timestamp of a scrape after the
//!   traffic, with R reaching back to a scrape before it, is not extrapolated
//!   by Prometheus (first sample 0, last sample at the end of the range):
//!   rate × R equals the truth's bytes and packets per host and direction.
//! - The recording rules (evaluated at their own times) must equal the truth
//!   times one common end-extrapolation factor, bounded from the scrape
//!   timestamps.
//! - Capture health: no frame dropped anywhere.
//!
//! Expressions that evaluate fine but return nothing here: the alerts (none
//! fires) and the 31-day 95th percentiles (their `[31d:5m]` subquery steps
//! fall on multiples of 5 minutes of Unix time, before the recorded rates
//! existed, unless such a boundary passes during the test).
//!
//! Root only (namespaces, BPF), with tcpreplay and prometheus; skipped with a
//! loud note otherwise, and a failure when CI is set. Run with
//!
//!   cargo test --profile ci --test promql -- --nocapture

mod common;
#[path = "../packaging/testsupport.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::testnet::{self, TestNet};
use support::{
    dashboard_paths, ensure_tool, load_dashboard, panel_exprs, rules_path, substitute_grafana_vars,
    variable_metric_names, variable_queries, CONTRACT,
};

/// Replay rate: 100,000 frames in about 12.5 s.
const PPS: u32 = 8000;

/// Host ranges of the daemon's config: (prefix, customer, site, hosts in it).
/// The truth's IPv4 hosts are 198.51.100.1–200, its IPv6 hosts
/// 2001:db8:1:N::1 for N = 1..=50, so the /58 holds them all.
const RANGES: &[(&str, &str, &str, usize)] = &[
    ("198.51.100.0/25", "acme", "ams1", 128),
    ("198.51.100.128/25", "globex", "fra1", 128),
    ("2001:db8:1::/58", "initech", "ams1", 64),
];

/// The customer of a host label (`ip` value), per RANGES.
fn customer_of(ip: &str) -> Option<&'static str> {
    if let Some(last) = ip.strip_prefix("198.51.100.") {
        let n: u8 = last.parse().ok()?;
        return Some(if n < 128 { "acme" } else { "globex" });
    }
    let net: std::net::Ipv6Addr = ip.strip_suffix("/64")?.parse().ok()?;
    let s = net.segments();
    (s[..3] == [0x2001, 0xdb8, 1] && s[3] < 0x40).then_some("initech")
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the collector thread when dropped (also on panic).
struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A Prometheus `time=` value (seconds, millisecond precision) for `ms`.
fn prom_time(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// GET on 127.0.0.1:port, returning (status line, body).
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

/// /api/v1/query (at `time` in Unix ms, else now): Ok(data.result) or Err(error text).
fn query_at(port: u16, expr: &str, time: Option<i64>) -> Result<serde_json::Value, String> {
    let mut path = format!("/api/v1/query?query={}", urlencode(expr));
    if let Some(t) = time {
        path.push_str(&format!("&time={}", prom_time(t)));
    }
    let (status, body) = get(port, &path).map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{status}: not JSON ({e}): {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{status}: {} {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].clone())
}

/// Number of result series (1 for a scalar or string), or the error.
fn query(port: u16, expr: &str) -> Result<usize, String> {
    Ok(match query_at(port, expr, None)? {
        serde_json::Value::Array(a) => a.len(),
        _ => 1,
    })
}

fn sample_value(v: &serde_json::Value) -> f64 {
    v[1].as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("sample value in {v}"))
}

fn sample_ms(v: &serde_json::Value) -> i64 {
    (v[0].as_f64().unwrap_or_else(|| panic!("timestamp in {v}")) * 1000.0).round() as i64
}

/// The label set of one result series.
fn labels_of(s: &serde_json::Value) -> BTreeMap<String, String> {
    s["metric"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// An instant vector as (labels, value); panics on an error.
fn vector(port: u16, expr: &str, time: Option<i64>) -> Vec<(BTreeMap<String, String>, f64)> {
    let r = query_at(port, expr, time).unwrap_or_else(|e| panic!("{expr}: {e}"));
    r.as_array()
        .unwrap_or_else(|| panic!("{expr}: not a vector: {r}"))
        .iter()
        .map(|s| {
            let labels = labels_of(s);
            (labels, sample_value(&s["value"]))
        })
        .collect()
}

/// One value (a one-element vector); panics otherwise.
fn scalar(port: u16, expr: &str, time: Option<i64>) -> f64 {
    let v = vector(port, expr, time);
    assert_eq!(v.len(), 1, "{expr} at {time:?}: {v:?}");
    v[0].1
}

/// A range vector as (labels, [(Unix ms, value)]).
type Series = (BTreeMap<String, String>, Vec<(i64, f64)>);
fn matrix(port: u16, expr: &str, time: Option<i64>) -> Vec<Series> {
    let r = query_at(port, expr, time).unwrap_or_else(|e| panic!("{expr}: {e}"));
    r.as_array()
        .unwrap_or_else(|| panic!("{expr}: not a matrix: {r}"))
        .iter()
        .map(|s| {
            let labels = labels_of(s);
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (sample_ms(p), sample_value(p)))
                .collect();
            (labels, values)
        })
        .collect()
}

/// Copies a classic little-endian microsecond pcap, padding every frame
/// with zeros from its captured length back to its wire length (orig_len)
/// and raising the header's snap length to 65535,
/// so that tcpreplay sends frames as long as the truth counts them.
/// Returns (frames, wire bytes).
fn pad_pcap(src: &Path, dst: &Path) -> (u64, u64) {
    let data = std::fs::read(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    assert_eq!(
        u32::from_le_bytes(data[0..4].try_into().unwrap()),
        0xa1b2_c3d4,
        "{}: a little-endian microsecond pcap",
        src.display()
    );
    let mut out = Vec::with_capacity(data.len() * 5);
    // The header's snap length too: libpcap (tcpreplay) cuts every record to
    // it, so a padded copy that kept 128 sent 128-byte frames.
    out.extend_from_slice(&data[..16]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&data[20..24]);
    let (mut frames, mut bytes, mut at) = (0u64, 0u64, 24usize);
    while at < data.len() {
        let h = &data[at..at + 16];
        let caplen = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
        let wire = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
        assert!(
            caplen <= wire && wire <= 1514,
            "frame {frames}: {caplen}/{wire}"
        );
        out.extend_from_slice(&h[..8]);
        out.extend_from_slice(&(wire as u32).to_le_bytes());
        out.extend_from_slice(&(wire as u32).to_le_bytes());
        out.extend_from_slice(&data[at + 16..at + 16 + caplen]);
        out.resize(out.len() + wire - caplen, 0);
        at += 16 + caplen;
        frames += 1;
        bytes += wire as u64;
    }
    std::fs::write(dst, out).unwrap();
    (frames, bytes)
}

/// Truth per (ip label, direction): (packets, l2 bytes); and the totals.
struct Truth {
    hosts: HashMap<(String, String), (u64, u64)>,
    packets: u64,
    bytes: u64,
}

fn read_truth(path: &Path) -> Truth {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut hosts: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for (addr, t) in v["hosts"].as_object().unwrap() {
        let ip = common::host_label(addr);
        assert!(
            customer_of(&ip).is_some(),
            "truth host {addr} is in a configured range"
        );
        for dir in ["in", "out"] {
            let e = hosts.entry((ip.clone(), dir.to_string())).or_default();
            e.0 += t[format!("{dir}_packets")].as_u64().unwrap();
            e.1 += t[format!("{dir}_l2_bytes")].as_u64().unwrap();
        }
    }
    Truth {
        hosts,
        packets: v["totals"]["packets"].as_u64().unwrap(),
        bytes: v["totals"]["l2_bytes"].as_u64().unwrap(),
    }
}

/// The daemon's config: customers, AS file and names, remote networks, and
/// NetFlow export to 127.0.0.1:`collector`.
fn write_config(dir: &Path, collector: u16) -> PathBuf {
    // Every /12 of 11.0.0.0–99.255.255.255 (the synthetic remote side) its
    // own AS, and 2a00::/16 one more; two of them named.
    let mut asf = String::from("# generated by tests/promql.rs\n");
    let mut asn = 64_512u32;
    for a in 11..=99u32 {
        for b in (0..256u32).step_by(16) {
            writeln!(asf, "{a}.{b}.0.0/12 {asn}").unwrap();
            asn += 1;
        }
    }
    writeln!(asf, "2a00::/16 4200000000").unwrap();
    std::fs::write(dir.join("prefix-asn.txt"), asf).unwrap();
    std::fs::write(
        dir.join("as-names.txt"),
        "4200000000 EXAMPLE-V6-NET\n64512 FIRST-AS\n",
    )
    .unwrap();
    let mut c = format!(
        r#"
[accounting]
bytes = "l2"
# Every host series from the start: the per-host rate() checks below need
# a zero sample before the traffic (the default, "active", starts a host's
# series with its first frame; the customer family covers that case).
host_series = "all"
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
as_file = "{}"
as_file_format = "prefix_asn"
as_names_file = "{}"
[[accounting.networks]]
name = "low"
prefixes = ["11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4"]
labels = {{ kind = "test" }}
[[accounting.networks]]
name = "v6"
prefixes = ["2a00::/16"]
labels = {{ kind = "test" }}
"#,
        dir.join("prefix-asn.txt").display(),
        dir.join("as-names.txt").display(),
    );
    for (prefix, customer, site, _) in RANGES {
        write!(
            c,
            "[[accounting.ranges]]\nprefix = \"{prefix}\"\nlabels = {{ customer = \"{customer}\", site = \"{site}\" }}\n"
        )
        .unwrap();
    }
    write!(
        c,
        "[netflow]\ncollectors = [\"127.0.0.1:{collector}\"]\nversion = 10\nidle_timeout = 2\nactive_timeout = 5\n"
    )
    .unwrap();
    let path = dir.join("xdpacct.toml");
    std::fs::write(&path, c).unwrap();
    path
}

/// The rules file with the rate groups at a 1 s interval and the 31-day
/// percentile groups at 1 h (they are queried directly; evaluating them every
/// second would only load the machine).
fn write_rules(dir: &Path) {
    let mut group = String::new();
    let rules = std::fs::read_to_string(rules_path())
        .unwrap()
        .lines()
        .map(|l| {
            if let Some(g) = l.trim_start().strip_prefix("- name:") {
                group = g.trim().to_string();
            }
            if l.trim_start().starts_with("interval:") {
                let every = if group.contains("billing") {
                    "1h"
                } else {
                    "1s"
                };
                format!("{}interval: {every}", l.split("interval:").next().unwrap())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
}

fn metrics_page(port: u16) -> Option<String> {
    match get(port, "/metrics") {
        Ok((status, body)) if status.contains(" 200") => Some(body),
        _ => None,
    }
}

fn page_sum(page: &str, name: &str) -> f64 {
    common::sum(&common::parse_exposition(page), name, &[])
}

/// Prometheus's extrapolation factor for `rate(c[5m])` evaluated at `t_e`
/// over samples at `stamps` (Unix ms) of a counter whose first sample is 0:
/// no extension to the range start (the counter would reach 0 at once), the
/// end extended to `t_e` when that is less than 1.1 average sample
/// intervals away, else by half an interval (promql/functions.go,
/// extrapolatedRate).
fn prometheus_end_factor(stamps: &[i64], t_e: i64) -> f64 {
    let sampled = (stamps[stamps.len() - 1] - stamps[0]) as f64 / 1000.0;
    let avg = sampled / (stamps.len() - 1) as f64;
    let to_end = (t_e - stamps[stamps.len() - 1]) as f64 / 1000.0;
    let end = if to_end < 1.1 * avg {
        to_end
    } else {
        avg / 2.0
    };
    (sampled + end) / sampled
}

#[test]
fn live_daemon_dashboards_rules_and_host_rates_agree_in_prometheus() {
    let what = "the live PromQL test";
    if !testnet::can_run(what, &["ip", "tcpreplay", "python3"])
        || !(ensure_tool("prometheus", "prometheus")
            || common::missing(
                what,
                "needs the `prometheus` server (Debian package; scripts/install-deps.sh)",
            ))
    {
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (capture, truth_path) = common::generate_sample(dir.path());
    let truth = read_truth(&truth_path);
    let pcap = dir.path().join("sample100k-wire.pcap");
    let (frames, wire_bytes) = pad_pcap(&capture, &pcap);
    assert_eq!(
        (frames, wire_bytes),
        (truth.packets, truth.bytes),
        "padded capture vs truth totals"
    );

    // The flow collector: a UDP socket on 127.0.0.1 that counts datagrams.
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let collector_port = collector.local_addr().unwrap().port();
    let datagrams = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_collector = StopOnDrop(stop.clone());
    {
        let (datagrams, stop) = (datagrams.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if collector.recv(&mut buf).is_ok() {
                    datagrams.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    // The daemon on the root-side end of a fresh veth pair.
    let net = TestNet::new("xp", "", 2);
    let config = write_config(dir.path(), collector_port);
    let xport = free_port();
    let daemon = common::xdpacct()
        .arg("--config")
        .arg(&config)
        .args(["run", "-i", &net.root_if])
        .args(["--listen", &format!("127.0.0.1:{xport}")])
        .args(["--log-level", "warn"])
        .env("XDPACCT_CAPTURE__MODE", "afxdp")
        .stdout(Stdio::null())
        .spawn()
        .expect("start xdpacct run");
    let mut daemon = Kill(daemon);
    let ready = Instant::now() + Duration::from_secs(15);
    let page = loop {
        if let Some(p) = metrics_page(xport) {
            break p;
        }
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!("xdpacct run exited early: {status}");
        }
        assert!(Instant::now() < ready, "xdpacct run did not serve /metrics");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(net.xdp_attached(), "AF_XDP backend in use");
    // Before any traffic every host of every range is on the page, at 0: the
    // first sample of each host series in Prometheus is then 0 too.
    let host_series: usize = RANGES.iter().map(|r| r.3).sum::<usize>() * 2;
    let before = common::host_table(&common::parse_exposition(&page));
    assert_eq!(before.len(), host_series, "host series before traffic");
    assert!(before.values().all(|v| *v == (0, 0)), "hosts start at 0");
    assert_eq!(page_sum(&page, "xdpacct_interface_packets_total"), 0.0);

    // Prometheus scraping the daemon every second.
    write_rules(dir.path());
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: xdpacct\n    static_configs:\n      - targets: [\"127.0.0.1:{xport}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log_path = dir.path().join("prometheus.log");
    let prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("starting prometheus");
    let _prom = Kill(prom);
    let prom_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let prom_started = now_ms();

    // A few scrapes of the idle daemon, every host series among them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = |e: &str| {
        query_at(port, e, None)
            .ok()
            .and_then(|r| r.get(0).map(|s| sample_value(&s["value"])))
            .unwrap_or(0.0)
    };
    while !(count(r#"count_over_time(up{job="xdpacct"}[1m]) >= 3"#) >= 3.0
        && count("count(xdpacct_host_bytes_total)") == host_series as f64)
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the idle daemon within 60 s; its log:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "Prometheus is scraping the idle daemon ({:?} into the test)",
        t0.elapsed()
    );

    // The traffic, at a bounded rate.
    let replay_start = now_ms();
    let t = Instant::now();
    let sent = net.replay_with(&pcap, &[&format!("--pps={PPS}")]);
    let replay_took = t.elapsed();
    assert_eq!(sent, truth.packets, "tcpreplay sent every frame");

    // The daemon has accounted every frame (or reports the drops).
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = metrics_page(xport).expect("scrape the daemon");
        let done = page_sum(&page, "xdpacct_interface_packets_total")
            + page_sum(&page, "xdpacct_queue_dropped_total");
        if done >= sent as f64 || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let final_ms = now_ms();
    // Capture health, on the daemon's own page: nothing lost.
    let health: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("xdpacct_interface_packets") || l.starts_with("xdpacct_queue_"))
        .collect();
    let dropped = page_sum(&page, "xdpacct_queue_dropped_total");
    assert_eq!(
        dropped,
        0.0,
        "frames dropped at {PPS} pps:\n{}",
        health.join("\n")
    );
    assert_eq!(
        page_sum(&page, "xdpacct_queue_frames_seen_total"),
        truth.packets as f64,
        "{}",
        health.join("\n")
    );
    assert_eq!(
        page_sum(&page, "xdpacct_interface_packets_total"),
        truth.packets as f64,
        "{}",
        health.join("\n")
    );
    // Every family of the contract is on the live page.
    let names: BTreeSet<String> = common::parse_exposition(&page)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let missing: Vec<&&str> = CONTRACT
        .iter()
        .filter(|n| **n != "up" && !names.contains(**n))
        .collect();
    assert!(missing.is_empty(), "not on the live page: {missing:?}");

    // Prometheus has scraped the final values.
    let deadline = Instant::now() + Duration::from_secs(15);
    let scrapes = loop {
        // Frames per scrape timestamp, all directions.
        let mut total: BTreeMap<i64, f64> = BTreeMap::new();
        for (_, values) in matrix(port, "xdpacct_interface_packets_total[10m]", None) {
            for (ts, v) in values {
                *total.entry(ts).or_default() += v;
            }
        }
        if total.keys().next_back().is_some_and(|&ts| ts >= final_ms) {
            break total;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the final values within 15 s; its log:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let (&t_first, _) = scrapes
        .range(..=replay_start)
        .rev()
        .find(|(_, v)| **v == 0.0)
        .expect("a scrape before the traffic");
    let (&t_last, &v_last) = scrapes.range(final_ms..).next().unwrap();
    assert_eq!(v_last, truth.packets as f64, "final scrape");
    let during = scrapes
        .range(t_first + 1..t_last)
        .filter(|(_, v)| **v > 0.0 && **v < truth.packets as f64)
        .count();
    eprintln!(
        "replay of {sent} frames at {PPS} pps took {replay_took:?}; {during} scrapes during the traffic; \
         exact window {t_first}..{t_last} ms ({} ms)",
        t_last - t_first
    );
    assert!(during >= 3, "only {during} scrapes during the traffic");

    // At the scrape before the traffic, every host series is there at 0.
    for m in ["xdpacct_host_bytes_total", "xdpacct_host_packets_total"] {
        let zero = scalar(port, &format!("count({m} == 0)"), Some(t_first));
        assert_eq!(zero, host_series as f64, "{m} at 0 before the traffic");
    }

    // Exact rates: rate(c[R]) at the final scrape, R reaching back to the
    // scrape before the traffic (plus 1 ms so that that sample is inside
    // whether the range is closed or left-open). Counter starts at 0 → no
    // extrapolation to the start; range ends at a sample → none to the end;
    // so rate × R is the counter's increase.
    let r_ms = t_last - t_first + 1;
    let secs = r_ms as f64 / 1000.0;
    let close = |got: f64, want: u64| (got - want as f64).abs() <= 1e-9 * want as f64 + 1e-6;
    let mut mismatches = Vec::new();
    let mut rates: HashMap<(String, String), (f64, f64)> = HashMap::new();
    for (metric, bytes) in [
        ("xdpacct_host_packets_total", false),
        ("xdpacct_host_bytes_total", true),
    ] {
        let v = vector(port, &format!("rate({metric}[{r_ms}ms])"), Some(t_last));
        assert_eq!(v.len(), host_series, "{metric}: one rate per host series");
        for (labels, rate) in v {
            let key = (labels["ip"].clone(), labels["direction"].clone());
            assert_eq!(
                labels.get("customer").map(String::as_str),
                customer_of(&key.0),
                "{key:?}: customer label"
            );
            let e = rates.entry(key.clone()).or_default();
            if bytes {
                e.1 = rate;
            } else {
                e.0 = rate;
            }
            let want = truth
                .hosts
                .get(&key)
                .map_or(0, |t| if bytes { t.1 } else { t.0 });
            if !close(rate * secs, want) {
                mismatches.push(format!(
                    "{metric} {key:?}: rate {rate} × {secs} s = {} vs truth {want}",
                    rate * secs
                ));
            }
        }
    }
    let hosts_with_traffic = truth.hosts.values().filter(|v| v.0 > 0).count();
    assert!(
        mismatches.is_empty(),
        "host rates vs truth ({} of {}):\n{}",
        mismatches.len(),
        2 * host_series,
        mismatches.join("\n")
    );
    eprintln!(
        "exact host rates: {} host series × packets and bytes equal the truth \
         ({hosts_with_traffic} host/direction pairs with traffic, the rest 0)",
        host_series
    );
    // Per customer and direction, and the interface totals, the same way.
    let mut by_customer: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for ((ip, dir), (p, b)) in &truth.hosts {
        let e = by_customer
            .entry((customer_of(ip).unwrap().to_string(), dir.clone()))
            .or_default();
        e.0 += p;
        e.1 += b;
    }
    for (labels, rate) in vector(
        port,
        &format!("sum by (customer, direction) (rate(xdpacct_host_bytes_total[{r_ms}ms]))"),
        Some(t_last),
    ) {
        let key = (labels["customer"].clone(), labels["direction"].clone());
        let want = by_customer[&key].1;
        assert!(
            close(rate * secs, want),
            "customer {key:?}: {} vs truth {want}",
            rate * secs
        );
    }
    for (metric, want) in [
        ("xdpacct_interface_packets_total", truth.packets),
        ("xdpacct_interface_bytes_total", truth.bytes),
    ] {
        let got = scalar(
            port,
            &format!("sum(rate({metric}[{r_ms}ms]))"),
            Some(t_last),
        ) * secs;
        assert!(close(got, want), "{metric}: {got} vs truth {want}");
    }
    assert_eq!(
        scalar(port, "sum(xdpacct_queue_dropped_total)", Some(t_last)),
        0.0,
        "drops in Prometheus"
    );

    // The recording rules, evaluated at their own time t_e ≥ 2 s after the
    // final scrape: rate(c[5m]) sees every scrape since Prometheus started
    // (less than 5 min ago), starting at 0 (no start extrapolation), and
    // extrapolates the end from the last scrape ≤ t_e to t_e by less than
    // 1.1 × the average scrape interval. So each recorded rate × 300 s is the
    // truth times one common factor f, 1 ≤ f ≤ 1 + 1.1 × gap / (sampled −
    // gap), gap the longest scrape interval, sampled the first-to-last
    // scrape span (less one gap, in case the rule ran before the last scrape
    // was stored). Every series of an evaluation shares f exactly (same
    // scrape timestamps), so each must match truth × f to float rounding.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (t_e, recorded) = loop {
        let m = matrix(port, "host:xdpacct_host_bits:rate5m[30s]", None);
        let t_e = m
            .iter()
            .filter_map(|(_, v)| v.last().map(|s| s.0))
            .max()
            .unwrap_or(0);
        if t_e >= t_last + 2000 {
            break (t_e, m);
        }
        assert!(
            Instant::now() < deadline,
            "no rule evaluation 2 s after the final scrape within 20 s; its log:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        t_e - prom_started < 290_000,
        "the 5m rule window must reach back before the first scrape"
    );
    // The scrapes the rule saw: those in its 5m window at t_e.
    let stamps: Vec<i64> = matrix(
        port,
        r#"xdpacct_interface_packets_total{direction="in"}[5m]"#,
        Some(t_e),
    )[0]
    .1
    .iter()
    .map(|s| s.0)
    .collect();
    assert_eq!(
        stamps[0],
        *scrapes.keys().next().unwrap(),
        "the rule window starts at the first scrape"
    );
    let sampled = (stamps[stamps.len() - 1] - stamps[0]) as f64;
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap() as f64;
    let f_max = 1.0 + 1.1 * gap / (sampled - gap);
    // The factor from the interface total.
    let f = scalar(
        port,
        "sum(interface:xdpacct_interface_bits:rate5m)",
        Some(t_e),
    ) * 300.0
        / 8.0
        / truth.bytes as f64;
    eprintln!(
        "rules at t_e = final scrape + {} ms: end-extrapolation factor {f:.6} (bound [1, {f_max:.6}]; \
         {} scrapes over {:.1} s, longest interval {gap} ms)",
        t_e - t_last,
        stamps.len(),
        sampled / 1000.0
    );
    assert!(
        (1.0 - 1e-9..=f_max).contains(&f),
        "rule factor {f} outside [1, {f_max}]"
    );
    // Sharper: f is Prometheus's own end extrapolation for these scrape
    // timestamps (with the last one, or without it if the rule ran before it
    // was stored).
    let exact: Vec<f64> = [stamps.len(), stamps.len() - 1]
        .iter()
        .map(|&k| prometheus_end_factor(&stamps[..k], t_e))
        .collect();
    assert!(
        exact.iter().any(|x| (f - x).abs() <= 1e-9),
        "rule factor {f} is not Prometheus's extrapolation {exact:?}"
    );
    let near = |got: f64, want: f64| (got - want).abs() <= 1e-9 * want + 1e-9;
    let mut rule_bad = Vec::new();
    let mut n_rule = 0;
    for (labels, values) in &recorded {
        let &(ts, v) = values.last().unwrap();
        if ts != t_e {
            rule_bad.push(format!("{labels:?}: last evaluation {ts} ≠ {t_e}"));
            continue;
        }
        let key = (labels["ip"].clone(), labels["direction"].clone());
        let want = truth.hosts.get(&key).map_or(0, |t| t.1) as f64 * 8.0 / 300.0 * f;
        n_rule += 1;
        if !near(v, want) {
            rule_bad.push(format!(
                "host:xdpacct_host_bits:rate5m {key:?}: {v} vs {want}"
            ));
        }
    }
    assert_eq!(n_rule, host_series, "recorded host series");
    for (labels, v) in vector(port, "host:xdpacct_host_packets:rate5m", Some(t_e)) {
        let key = (labels["ip"].clone(), labels["direction"].clone());
        let want = truth.hosts.get(&key).map_or(0, |t| t.0) as f64 / 300.0 * f;
        if !near(v, want) {
            rule_bad.push(format!(
                "host:xdpacct_host_packets:rate5m {key:?}: {v} vs {want}"
            ));
        }
    }
    let customers = vector(port, "customer:xdpacct_host_bits:rate5m", Some(t_e));
    assert_eq!(customers.len(), by_customer.len(), "{customers:?}");
    for (labels, v) in customers {
        let key = (labels["customer"].clone(), labels["direction"].clone());
        let want = by_customer[&key].1 as f64 * 8.0 / 300.0 * f;
        if !near(v, want) {
            rule_bad.push(format!(
                "customer:xdpacct_host_bits:rate5m {key:?}: {v} vs {want}"
            ));
        }
    }
    for (labels, v) in vector(
        port,
        "customer:xdpacct_host_bits_billable:rate5m",
        Some(t_e),
    ) {
        let c = &labels["customer"];
        let want = ["in", "out"]
            .iter()
            .map(|d| by_customer[&(c.clone(), d.to_string())].1)
            .max()
            .unwrap() as f64
            * 8.0
            / 300.0
            * f;
        if !near(v, want) {
            rule_bad.push(format!("billable {c}: {v} vs {want}"));
        }
    }
    assert!(
        rule_bad.is_empty(),
        "recorded rates vs truth × {f}:\n{}",
        rule_bad.join("\n")
    );
    eprintln!("recording rules: {n_rule} host series, packets, customers and billable equal truth × {f:.6}");

    // Every dashboard and rule expression evaluates without error.
    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut n, mut with_data) = (0, 0);
    let mut check = |what: String, expr: &str| {
        n += 1;
        match query(port, expr) {
            Ok(k) => {
                if k > 0 {
                    with_data += 1;
                } else {
                    eprintln!("no data (evaluates fine): {what}: {expr}");
                }
            }
            Err(e) => failures.push(format!("{what}:\n  {expr}\n  {e}")),
        }
    };
    for path in dashboard_paths() {
        for pe in panel_exprs(&path) {
            let e = substitute_grafana_vars(&pe.expr);
            check(format!("{} / {}", pe.dashboard, pe.panel), &e);
        }
        for (var, q) in variable_queries(&load_dashboard(&path)) {
            for m in variable_metric_names(&substitute_grafana_vars(&q)) {
                check(format!("{} variable ${var}", path.display()), &m);
            }
        }
    }
    for r in support::rules(&rules_path()) {
        check(format!("rule {}", r.name), &r.expr);
    }
    let share = query_at(
        port,
        r#"sum_over_time(up{job="xdpacct"}[10m]) / count_over_time(up{job="xdpacct"}[10m])"#,
        None,
    );
    eprintln!(
        "{n} expressions evaluated by Prometheus in {:?}, {with_data} with data; share of successful scrapes: {share:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "expressions Prometheus rejects:\n{}",
        failures.join("\n")
    );

    // The recorded series the dashboards rely on exist with the expected labels.
    for e in [
        format!(
            r#"interface:xdpacct_interface_bits:rate5m{{interface="{}",direction=~"in|out|internal|external"}}"#,
            net.root_if
        ),
        r#"host:xdpacct_host_bits:rate5m{customer="acme",site="ams1",direction=~"in|out"} > 0"#
            .into(),
        r#"customer:xdpacct_host_bits:rate5m{customer="globex"} > 0"#.into(),
        r#"customer:xdpacct_host_bits:rate5m{customer="initech"} > 0"#.into(),
        "customer:xdpacct_host_bits_billable:rate5m > 0".into(),
        r#"peer_as:xdpacct_as_bits:rate5m{peer_as="4200000000",peer_as_name="EXAMPLE-V6-NET"} > 0"#
            .into(),
        "sum(xdpacct_flow_records_exported_total) > 0".into(),
        r#"xdpacct_build_info{job="xdpacct"}"#.into(),
    ] {
        assert!(matches!(query(port, &e), Ok(k) if k > 0), "no data for {e}");
    }
    let received = datagrams.load(Ordering::Relaxed);
    assert!(received > 0, "the flow collector received no export packet");
    eprintln!("flow collector received {received} export datagrams");

    // The daemon stops cleanly and leaves no XDP program behind.
    let status = common::sigterm_and_wait(&mut daemon.0, 10);
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit on SIGTERM: {status:?}"
    );
    assert!(!net.xdp_attached(), "no XDP program left after exit");
    eprintln!("live PromQL test done in {:?}", t0.elapsed());
}
