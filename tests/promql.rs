//! Every PromQL expression of the dashboards and rules, evaluated by a real
//! Prometheus (Debian's `prometheus`) that scrapes a real metrics page.
//!
//! The page is `xdpacct replay` of a synthetic capture (shared/testdata), its
//! counters scaled up on every scrape so that rates are non-zero, plus
//! synthetic series for the contract metrics the replay does not produce
//! (live capture, AS accounting, flow export). A std TcpListener serves it on
//! 127.0.0.1; Prometheus (random port on 127.0.0.1, 1 s scrape and rule
//! interval) loads the rules; each expression must evaluate without error via
//! /api/v1/query, and the main recorded series must carry data.

#[path = "../packaging/testsupport.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn shared_testdata() -> PathBuf {
    root().join("../shared/testdata")
}

/// The real exposition of `xdpacct replay` over a small synthetic capture, or
/// None when the generator is not there.
fn replay_page(dir: &Path) -> Option<String> {
    let gen = shared_testdata().join("synthetic/gen_pcap.py");
    if !gen.is_file() || !have("python3") {
        eprintln!("no {} (or python3): synthetic page only", gen.display());
        return None;
    }
    let pcap = dir.join("t.pcap");
    let st = Command::new("python3")
        .arg(&gen)
        .arg(&pcap)
        .args(["--packets", "3000", "--seed", "11", "--hosts", "24"])
        .status()
        .unwrap();
    assert!(st.success(), "gen_pcap.py failed");
    let conf = dir.join("c.toml");
    std::fs::write(
        &conf,
        r#"
[accounting]
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
[[accounting.ranges]]
prefix = "198.51.100.0/28"
labels = { customer = "acme", site = "ams1" }
[[accounting.ranges]]
prefix = "198.51.100.16/28"
labels = { customer = "globex", site = "fra1" }
[[accounting.ranges]]
prefix = "2001:db8:1::/48"
labels = { customer = "acme", site = "ams1" }
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xdpacct"))
        .arg("--config")
        .arg(&conf)
        .args(["replay", "--interface-name", "eth1"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xdpacct replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Families of the contract the replay page lacks, as synthetic exposition.
fn synthetic_families(present: &BTreeSet<String>) -> String {
    let mut s = String::new();
    let mut fam = |name: &str, kind: &str, lines: &[&str]| {
        if present.contains(name) {
            return;
        }
        s.push_str(&format!(
            "# HELP {name} synthetic (promql test)\n# TYPE {name} {kind}\n"
        ));
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
    };
    fam(
        "xdpacct_queue_frames_seen_total",
        "counter",
        &[
            r#"xdpacct_queue_frames_seen_total{interface="eth1",queue="0"} 1000"#,
            r#"xdpacct_queue_frames_seen_total{interface="eth1",queue="1"} 1000"#,
        ],
    );
    fam(
        "xdpacct_queue_frames_accounted_total",
        "counter",
        &[
            r#"xdpacct_queue_frames_accounted_total{interface="eth1",queue="0"} 990"#,
            r#"xdpacct_queue_frames_accounted_total{interface="eth1",queue="1"} 1000"#,
        ],
    );
    fam(
        "xdpacct_queue_dropped_total",
        "counter",
        &[r#"xdpacct_queue_dropped_total{interface="eth1",queue="0",reason="rx_ring_full"} 10"#],
    );
    fam(
        "xdpacct_as_bytes_total",
        "counter",
        &[
            r#"xdpacct_as_bytes_total{peer_as="64500",peer_as_name="EXAMPLE-NET",direction="in"} 500000"#,
            r#"xdpacct_as_bytes_total{peer_as="64500",peer_as_name="EXAMPLE-NET",direction="out"} 200000"#,
            r#"xdpacct_as_bytes_total{peer_as="64501",peer_as_name="OTHER-NET",direction="in"} 300000"#,
        ],
    );
    fam(
        "xdpacct_as_packets_total",
        "counter",
        &[
            r#"xdpacct_as_packets_total{peer_as="64500",peer_as_name="EXAMPLE-NET",direction="in"} 500"#,
            r#"xdpacct_as_packets_total{peer_as="64501",peer_as_name="OTHER-NET",direction="in"} 300"#,
        ],
    );
    fam(
        "xdpacct_flow_records_exported_total",
        "counter",
        &["xdpacct_flow_records_exported_total 100"],
    );
    fam(
        "xdpacct_flow_records_dropped_total",
        "counter",
        &[r#"xdpacct_flow_records_dropped_total{reason="channel_full"} 1"#],
    );
    fam(
        "xdpacct_parse_errors_total",
        "counter",
        &[r#"xdpacct_parse_errors_total{reason="truncated"} 3"#],
    );
    fam(
        "xdpacct_build_info",
        "gauge",
        &[r#"xdpacct_build_info{version="0.0.0-test"} 1"#],
    );
    s
}

/// Family names present in an exposition.
fn families(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The page for scrape number n: counter values times n (gauges as they are).
fn scaled(page: &str, n: u64) -> String {
    let mut out = String::with_capacity(page.len());
    for line in page.lines() {
        if line.starts_with('#') || line.starts_with("xdpacct_build_info") || line.trim().is_empty()
        {
            out.push_str(line);
        } else if let Some((series, value)) = line.rsplit_once(' ') {
            match value.parse::<f64>() {
                Ok(v) => out.push_str(&format!("{series} {}", v * n as f64)),
                Err(_) => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Serves the page on 127.0.0.1 until `stop`; returns the port.
fn serve(page: String, stop: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let scrapes = AtomicU64::new(0);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
                    let body = scaled(&page, n);
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        body
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    port
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
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

/// /api/v1/query: Ok(number of result series) or Err(error text).
fn query(port: u16, expr: &str) -> Result<usize, String> {
    let (status, body) = get(port, &format!("/api/v1/query?query={}", urlencode(expr)))
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{status}: not JSON ({e}): {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{status}: {} {}", v["errorType"], v["error"]));
    }
    Ok(match &v["data"]["result"] {
        serde_json::Value::Array(a) => a.len(),
        _ => 1, // scalar or string
    })
}

#[test]
fn every_dashboard_and_rule_expression_evaluates_in_prometheus() {
    if !ensure_tool("prometheus", "prometheus") {
        eprintln!("\n!!!!!!!! SKIPPED: the `prometheus` server is not installed and could not be (Debian package `prometheus`) !!!!!!!!\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // The page.
    let real = replay_page(dir.path()).unwrap_or_default();
    let mut page = real.clone();
    page.push_str(&synthetic_families(&families(&real)));
    let present = families(&page);
    let stop = Arc::new(AtomicBool::new(false));
    let target = serve(page, stop.clone());

    // Prometheus with the rate rules at a 1 s interval; the 31-day percentile
    // groups at 1 h (they are queried directly below; evaluating them every
    // second would only load the machine).
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
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: xdpacct\n    static_configs:\n      - targets: [\"127.0.0.1:{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
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
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    let _guard = Kill(child);

    // Wait for scrapes and for the recorded rates to carry data.
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = |e: &str| matches!(query(port, e), Ok(n) if n > 0);
    while !(ready(r#"up{job="xdpacct"} == 1"#)
        && ready("interface:xdpacct_interface_bits:rate5m > 0")
        && ready("customer:xdpacct_host_bits:rate5m > 0"))
    {
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not scrape and record within 120 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    eprintln!(
        "Prometheus scraped and recorded after {:?}",
        started.elapsed()
    );
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
    // Scrape health over the run (a loaded machine may miss some scrapes,
    // which only makes bare selectors empty for a while; not an error here).
    if let Ok((_, body)) = get(
        port,
        &format!(
            "/api/v1/query?query={}",
            urlencode(
                r#"sum_over_time(up{job="xdpacct"}[10m]) / count_over_time(up{job="xdpacct"}[10m])"#
            )
        ),
    ) {
        eprintln!("share of successful scrapes: {body}");
    }
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "{n} expressions evaluated by Prometheus in {:?}, {with_data} with data; page families: {present:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "expressions Prometheus rejects:\n{}",
        failures.join("\n")
    );

    // The recorded series the dashboards rely on exist with the expected labels.
    for e in [
        r#"interface:xdpacct_interface_bits:rate5m{interface="eth1",direction=~"in|out|internal|external"}"#,
        r#"host:xdpacct_host_bits:rate5m{customer="acme",direction=~"in|out"}"#,
        r#"customer:xdpacct_host_bits:rate5m{customer="globex"}"#,
        "customer:xdpacct_host_bits_billable:rate5m",
        "peer_as:xdpacct_as_bits:rate5m",
    ] {
        if real.is_empty() && e.contains("customer=") {
            continue;
        }
        assert!(matches!(query(port, e), Ok(k) if k > 0), "no data for {e}");
    }
}
