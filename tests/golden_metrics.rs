//! The golden `/metrics` page: `xdpacct replay` of a committed capture and
//! config renders, byte for byte, the committed page
//! `tests/data/golden/expected.prom`, and `promtool check metrics` accepts it.
//!
//! Inputs (all under `tests/data/golden/`, see `gen_golden.py` there):
//! `golden.pcap` and `golden.truth.json` (made by `gen_golden.py`),
//! `config.toml` (ranges with labels, an AS file with names, networks, flow
//! export to a UDP socket this test owns), `as.txt`, `as-names.txt`.
//!
//! Nothing is removed from the page before comparing: every line is
//! deterministic (one worker, so the flow exporter gets a single batch;
//! timeouts far longer than the run). `xdpacct_build_info` carries the crate
//! version, so a version bump needs a re-bless.
//!
//! After an intended change of the page: `XDPACCT_BLESS=1 cargo test
//! --profile ci --test golden_metrics` rewrites `expected.prom`; review its
//! diff. The page is also checked against the generator's truth (totals,
//! directions, sizes, parse errors, hosts), so a bless cannot hide a
//! miscount there.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{parse_exposition, sum, Sample};
use xdpacct::metrics::catalogue::{self, ConfigLabels, Kind};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// Runs the replay with the collector at `collector`; returns stdout.
fn replay(collector: &str, tmp: &Path) -> Vec<u8> {
    let dir = golden_dir();
    let template = std::fs::read_to_string(dir.join("config.toml")).expect("config.toml");
    assert!(
        template.contains("@COLLECTOR@"),
        "config.toml lost its @COLLECTOR@"
    );
    let config = tmp.join("golden.toml");
    std::fs::write(&config, template.replace("@COLLECTOR@", collector)).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xdpacct"));
    // The config's paths are relative to its directory.
    cmd.current_dir(&dir)
        .args(["replay", "--workers", "1", "--config"])
        .arg(&config)
        .arg("golden.pcap");
    // Only the committed config counts: no XDPACCT_* setting of the caller.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("XDPACCT_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("xdpacct runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Datagrams waiting on `sock`.
fn drain(sock: &UdpSocket) -> u64 {
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    while sock.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// The first lines where `got` and `want` differ, for the failure message.
fn first_differences(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..g.len().max(w.len()) {
        let (a, b) = (g.get(i).copied(), w.get(i).copied());
        if a != b && shown < 10 {
            out += &format!(
                "line {}:\n  expected: {}\n  got:      {}\n",
                i + 1,
                b.unwrap_or("<end>"),
                a.unwrap_or("<end>")
            );
            shown += 1;
        }
    }
    out + &format!("({} lines got, {} expected)", g.len(), w.len())
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> u64 {
    let matching = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .count();
    assert_eq!(matching, 1, "one sample {name}{labels:?}");
    sum(samples, name, labels) as u64
}

/// The page against the generator's truth (independent of the code).
fn check_truth(samples: &[Sample]) {
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join("golden.truth.json")).expect("truth file"),
    )
    .expect("truth is JSON");
    let u = |v: &serde_json::Value| v.as_u64().expect("a number");
    let frames = u(&truth["frames"]);
    for (d, t) in truth["direction"].as_object().expect("directions") {
        let l = [("interface", "replay"), ("direction", d.as_str())];
        assert_eq!(
            value(samples, "xdpacct_interface_packets_total", &l),
            u(&t[0]),
            "{d}"
        );
        assert_eq!(
            value(samples, "xdpacct_interface_bytes_total", &l),
            u(&t[1]),
            "{d}"
        );
    }
    assert_eq!(
        sum(samples, "xdpacct_protocol_packets_total", &[]) as u64,
        frames
    );
    assert_eq!(
        sum(samples, "xdpacct_protocol_bytes_total", &[]) as u64,
        u(&truth["bytes"])
    );
    assert_eq!(sum(samples, "xdpacct_as_packets_total", &[]) as u64, frames);
    assert_eq!(
        sum(samples, "xdpacct_as_bytes_total", &[]) as u64,
        u(&truth["bytes"])
    );
    let q = [("interface", "replay"), ("queue", "0")];
    assert_eq!(
        value(samples, "xdpacct_queue_frames_accounted_total", &q),
        frames
    );
    let mut cumulative = 0;
    let bounds = [
        "64", "128", "256", "512", "1024", "1518", "2048", "9216", "+Inf",
    ];
    for (le, n) in bounds
        .iter()
        .zip(truth["size_buckets"].as_array().expect("buckets"))
    {
        cumulative += u(n);
        let l = [("interface", "replay"), ("le", *le)];
        assert_eq!(
            value(samples, "xdpacct_packet_size_bytes_bucket", &l),
            cumulative,
            "le={le}"
        );
    }
    let l = [("interface", "replay")];
    assert_eq!(
        value(samples, "xdpacct_packet_size_bytes_count", &l),
        frames
    );
    assert_eq!(
        value(samples, "xdpacct_packet_size_bytes_sum", &l),
        u(&truth["bytes"])
    );
    for (reason, n) in truth["parse_errors"].as_object().expect("errors") {
        let l = [("reason", reason.as_str())];
        assert_eq!(
            value(samples, "xdpacct_parse_errors_total", &l),
            u(n),
            "{reason}"
        );
    }
    let hosts = truth["hosts"].as_object().expect("hosts");
    let mut seen = 0;
    for s in samples
        .iter()
        .filter(|s| s.name == "xdpacct_host_packets_total")
    {
        let (ip, dir) = (&s.labels["ip"], &s.labels["direction"]);
        let want = hosts
            .get(ip)
            .map_or([0, 0], |h| [u(&h[dir][0]), u(&h[dir][1])]);
        let l = [("ip", ip.as_str()), ("direction", dir.as_str())];
        assert_eq!(s.value as u64, want[0], "packets of {ip} {dir}");
        assert_eq!(
            value(samples, "xdpacct_host_bytes_total", &l),
            want[1],
            "bytes of {ip} {dir}"
        );
        seen += usize::from(hosts.contains_key(ip));
    }
    assert_eq!(
        seen,
        hosts.len() * 2,
        "every truth host has an in and an out series"
    );
}

/// Label names of a sample line, in order (values may hold `\"`).
fn label_names(line: &str) -> (String, Vec<String>) {
    let Some((name, rest)) = line.split_once('{') else {
        return (line.split(' ').next().unwrap_or("").to_owned(), vec![]);
    };
    let mut names = Vec::new();
    let mut rest = rest;
    while let Some((n, v)) = rest.split_once("=\"") {
        names.push(n.trim_start_matches(',').to_owned());
        let mut chars = v.char_indices();
        let mut end = v.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        rest = &v[end + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    (name.to_owned(), names)
}

/// Every family on the page is the catalogue's declaration: help, type,
/// labels in order (plus config.toml's range and network label names);
/// and every family replay can show is there.
fn check_catalogue(text: &str) {
    let config_labels = |c: ConfigLabels| -> &[&str] {
        match c {
            ConfigLabels::None => &[],
            ConfigLabels::Ranges => &["customer", "site"],
            ConfigLabels::Networks => &["kind", "region"],
        }
    };
    let mut seen = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            let f = catalogue::by_name(name).unwrap_or_else(|| panic!("{name} is not declared"));
            assert_eq!(help, f.help, "help of {name}");
            seen.push(f.name);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            let f = catalogue::by_name(name).unwrap_or_else(|| panic!("{name} is not declared"));
            assert_eq!(kind, f.kind.as_str(), "type of {name}");
        } else {
            let (series, labels) = label_names(line);
            let f = catalogue::by_name(&series)
                .or_else(|| {
                    let base = series
                        .strip_suffix("_bucket")
                        .or_else(|| series.strip_suffix("_sum"))
                        .or_else(|| series.strip_suffix("_count"))?;
                    catalogue::by_name(base).filter(|f| f.kind == Kind::Histogram)
                })
                .unwrap_or_else(|| panic!("{series} is not declared"));
            let mut want: Vec<&str> = f.labels.to_vec();
            want.extend(config_labels(f.config_labels));
            if series.ends_with("_bucket") {
                want.push("le");
            }
            assert_eq!(labels, want, "labels of {line}");
        }
    }
    let live_only = [
        &catalogue::QUEUE_FRAMES_SEEN,
        &catalogue::QUEUE_BYTES_SEEN,
        &catalogue::QUEUE_FRAMES_RECEIVED,
        &catalogue::QUEUE_DROPPED,
        &catalogue::QUEUE_INVALID_DESCS,
        &catalogue::INTERFACE_DOWN,
        &catalogue::CAPTURE_RESTARTS,
        &catalogue::INTERFACE_UP,
        // The billing ledger's families: `run` with a [billing] section.
        &catalogue::BILLING_CLOCK_STEPS,
        &catalogue::BILLING_INTERVALS_LOST,
        &catalogue::BILLING_P95,
        &catalogue::BILLING_SAMPLES,
        &catalogue::BILLING_WRITE_FAILURES,
        &catalogue::BILLING_WRITES,
        // With billing.postgres only: tests/billing_postgres.rs.
        &catalogue::BILLING_POSTGRES_QUEUED,
        &catalogue::BILLING_POSTGRES_WRITE_FAILURES,
        &catalogue::BILLING_POSTGRES_WRITES,
    ];
    // Only with [tcp_rtt] (off in the golden config): tests/tcp_rtt.rs.
    let rtt_only = [
        &catalogue::TCP_HANDSHAKE_RTT,
        &catalogue::AS_TCP_RTT,
        &catalogue::TCP_HANDSHAKES,
        &catalogue::TCP_HANDSHAKES_PENDING,
    ];
    // Only with [connections] top (off in the golden config): tests/connections.rs.
    let connections_only = [&catalogue::CONNECTION_BYTES, &catalogue::CONNECTION_PACKETS];
    // Flow input families are on the page only with `[collector]` (the
    // golden config has none; tests/collector_run.rs checks them).
    let want: Vec<&str> = catalogue::ALL
        .iter()
        .filter(|f| {
            !live_only.contains(*f)
                && !rtt_only.contains(*f)
                && !connections_only.contains(*f)
                && !f.name.starts_with("xdpacct_collector_")
        })
        .map(|f| f.name)
        .collect();
    assert_eq!(
        seen, want,
        "the page shows every family replay can, in order"
    );
}

/// `promtool check metrics` on the page; panics under CI when promtool is missing.
fn promtool_check(page: &[u8]) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool not found (CI is set): install Debian's `prometheus` package"
            );
            eprintln!("WARNING: promtool not found; the page was NOT checked by promtool");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page)
        .expect("page to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn replay_renders_the_golden_page() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind the collector socket");
    let addr = collector
        .local_addr()
        .expect("collector address")
        .to_string();
    let page = replay(&addr, tmp.path());
    let text = String::from_utf8(page.clone()).expect("the page is UTF-8");
    let samples = parse_exposition(&text);

    // The flow export reached the test's socket, one datagram per packet sent.
    let sent = value(&samples, "xdpacct_flow_packets_sent_total", &[]);
    assert!(sent > 0, "flow export sent packets");
    assert_eq!(drain(&collector), sent, "datagrams received vs sent");
    check_truth(&samples);
    check_catalogue(&text);
    promtool_check(&page);

    let expected_path = golden_dir().join("expected.prom");
    if std::env::var_os("XDPACCT_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&expected_path, &page).expect("write expected.prom");
        eprintln!("blessed {}", expected_path.display());
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).expect("expected.prom");
    assert!(
        text == expected,
        "the /metrics page differs from {} (XDPACCT_BLESS=1 rewrites it after an intended change):\n{}",
        expected_path.display(),
        first_differences(&text, &expected)
    );
}
