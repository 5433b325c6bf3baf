//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod testnet;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's own test data (tests/data): the traffic generator, the
/// vendored tcpdump captures, the empty config.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The synthetic ISP-traffic generator (Python 3, standard library only).
pub fn generator() -> PathBuf {
    data_dir().join("gen_traffic.py")
}

/// tcpdump's regression captures, vendored unchanged.
pub fn tcpdump_dir() -> PathBuf {
    data_dir().join("tcpdump")
}

/// A committed empty config: built-in defaults, whatever /etc holds.
pub fn empty_config() -> PathBuf {
    data_dir().join("empty.toml")
}

/// The binary under test. It never reads /etc/xdpacct/xdpacct.toml (a
/// leftover conffile of an installed package would change what it counts):
/// XDPACCT_CONFIG names the empty config, and an explicit `--config` given
/// by the test takes precedence over it.
pub fn xdpacct() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xdpacct"));
    c.env("XDPACCT_CONFIG", empty_config());
    c
}

/// True when the tests run under CI (the `CI` variable set, as CI runners do).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// What a test lacks (root, a tool): under CI a panic naming it, else a
/// loud note on stderr and `false`, so the caller returns early.
pub fn missing(what: &str, lacks: &str) -> bool {
    assert!(
        !in_ci(),
        "{what} cannot run: {lacks} (CI is set, so this is a failure, not a skip)"
    );
    eprintln!("\n!!!!!!!! SKIPPED {what}: {lacks} !!!!!!!!\n");
    false
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `tool` is on PATH.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let p = dir.join(tool);
            std::fs::metadata(&p).is_ok_and(|m| m.is_file())
        })
    })
}

/// Root for `what`: true, or see [`missing`].
pub fn require_root(what: &str) -> bool {
    is_root() || missing(what, "needs root (network namespaces, BPF)")
}

/// Every one of `tools` for `what`: true, or see [`missing`].
pub fn require_tools(what: &str, tools: &[&str]) -> bool {
    let absent: Vec<&str> = tools.iter().copied().filter(|t| !have_tool(t)).collect();
    absent.is_empty()
        || missing(
            what,
            &format!("needs {absent:?} on PATH (scripts/install-deps.sh installs them)"),
        )
}

/// `tool` for `what`: true, or see [`missing`].
pub fn require_tool(what: &str, tool: &str) -> bool {
    require_tools(what, &[tool])
}

/// One sample of the text exposition: metric name and labels.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (enough of it for our own output).
/// Every page a test reads this way must also pass `promtool check metrics`
/// ([`assert_promtool_ok`]: once per page shape).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    assert_promtool_ok(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = HashMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, v) = rest.split_once("=\"").expect("label=\"value\"");
            let end = v.find('"').expect("closing quote");
            map.insert(k.trim_start_matches(',').to_string(), v[..end].to_string());
            rest = &v[end + 1..];
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    out
}

/// Sum of every series of the metric `name` on a page, read line by line
/// (no promtool check: for pages read many times while waiting).
pub fn metric_sum(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Sum of samples named `name` whose labels include all of `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The `ip` label a truth-file host gets: IPv4 as is, IPv6 as its /64.
pub fn host_label(addr: &str) -> String {
    match addr
        .parse::<std::net::IpAddr>()
        .expect("truth host is an address")
    {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => {
            let v = u128::from(a) >> 64 << 64;
            format!("{}/64", std::net::Ipv6Addr::from(v))
        }
    }
}

/// Per-host values of `xdpacct_host_{packets,bytes}_total`, keyed by (ip, direction).
pub fn host_table(samples: &[Sample]) -> HashMap<(String, String), (u64, u64)> {
    let mut t: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for s in samples {
        let key = || (s.labels["ip"].clone(), s.labels["direction"].clone());
        match s.name.as_str() {
            "xdpacct_host_packets_total" => t.entry(key()).or_default().0 += s.value as u64,
            "xdpacct_host_bytes_total" => t.entry(key()).or_default().1 += s.value as u64,
            _ => {}
        }
    }
    t
}

/// The config of the synthetic data set: its local networks as ranges.
pub fn synthetic_config(dir: &Path, bytes: &str) -> PathBuf {
    let path = dir.join(format!("synthetic-{bytes}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[accounting]
bytes = "{bytes}"
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
[[accounting.ranges]]
prefix = "198.51.100.0/24"
labels = {{ customer = "v4" }}
[[accounting.ranges]]
prefix = "2001:db8:1::/52"
labels = {{ customer = "v6" }}
"#
        ),
    )
    .unwrap();
    path
}

/// Writes a fresh synthetic capture (classic pcap, snap length `snaplen`)
/// and its truth with tests/data/gen_traffic.py.
pub fn generate(dir: &Path, packets: u32, seed: u32, snaplen: u32) -> (PathBuf, PathBuf) {
    generate_with(
        dir,
        &format!("gen-{seed}-{snaplen}"),
        &[
            "--packets",
            &packets.to_string(),
            "--seed",
            &seed.to_string(),
            "--snaplen",
            &snaplen.to_string(),
        ],
    )
}

/// The 100,000-frame capture the replay and export tests share (seed 7, snap
/// length 128 as a tap would write it; every header fits in 128 bytes).
pub fn generate_sample(dir: &Path) -> (PathBuf, PathBuf) {
    generate(dir, 100_000, 7, 128)
}

/// Runs the generator with `args`, writing `{stem}.pcap` (or `.pcapng` with
/// `--format pcapng`) and `{stem}.truth.json` into `dir`.
pub fn generate_with(dir: &Path, stem: &str, args: &[&str]) -> (PathBuf, PathBuf) {
    let ext = if args.windows(2).any(|w| w == ["--format", "pcapng"]) {
        "pcapng"
    } else {
        "pcap"
    };
    let pcap = dir.join(format!("{stem}.{ext}"));
    let truth = dir.join(format!("{stem}.truth.json"));
    let out = Command::new("python3")
        .arg(generator())
        .arg(&pcap)
        .args(args)
        .arg("--truth")
        .arg(&truth)
        .output()
        .expect("python3 runs tests/data/gen_traffic.py");
    assert!(
        out.status.success(),
        "gen_traffic.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pcap, truth)
}

/// Asserts that every truth host's in/out packets and bytes equal the metrics,
/// and that hosts absent from the truth saw nothing.
pub fn assert_hosts_match_truth(samples: &[Sample], truth_path: &Path, bytes: &str) {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(truth_path).unwrap()).unwrap();
    let hosts = truth["hosts"].as_object().unwrap();
    let got = host_table(samples);
    let mut want: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for (addr, t) in hosts {
        let ip = host_label(addr);
        for dir in ["in", "out"] {
            let e = want.entry((ip.clone(), dir.to_string())).or_default();
            e.0 += t[format!("{dir}_packets")].as_u64().unwrap();
            e.1 += t[format!("{dir}_{bytes}_bytes")].as_u64().unwrap();
        }
    }
    assert!(!want.is_empty());
    for (key, w) in &want {
        assert_eq!(got.get(key), Some(w), "host {key:?}: metrics vs truth");
    }
    for (key, g) in &got {
        if !want.contains_key(key) {
            assert_eq!(*g, (0, 0), "host {key:?} is not in the truth but counted");
        }
    }
    let total_packets: u64 = truth["totals"]["packets"].as_u64().unwrap();
    let sum_packets: u64 = want.values().map(|v| v.0).sum();
    assert_eq!(
        sum_packets, total_packets,
        "truth file: every frame has one local host"
    );
}

/// The shape of a page: its comment lines, and the set of (sample name,
/// label names) it has; values, label values and how many series a family
/// has are left out, so traffic does not change a page's shape.
fn page_shape(page: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut shapes = std::collections::BTreeSet::new();
    for line in page.lines() {
        if line.starts_with('#') {
            shapes.insert(line.to_string());
            continue;
        }
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let mut shape = name.to_string();
        // Label names: what precedes each `="`.
        for part in labels.split("\",") {
            if let Some((k, _)) = part.split_once("=\"") {
                shape.push(' ');
                shape.push_str(k);
            }
        }
        shapes.insert(shape);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shapes.hash(&mut h);
    h.finish()
}

/// `promtool check metrics` accepts `page` (no error, no lint warning).
/// Cheap: a page whose shape (families, series names and label names) this
/// test binary has already had checked is not checked again. Without
/// promtool: a failure under CI, else a loud skip.
/// The one promtool lint a page may carry: see `assert_promtool_ok`.
const BILLING_BITS_LINT: &str =
    "xdpacct_billing_p95_bits use base unit \"bytes\" instead of \"bits\"";

pub fn assert_promtool_ok(page: &str) {
    use std::io::Write;
    use std::process::Stdio;
    use std::sync::Mutex;
    static CHECKED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    let shape = page_shape(page);
    if CHECKED.lock().unwrap().contains(&shape) {
        return;
    }
    if !require_tool("promtool check metrics", "promtool") {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let body = page.to_owned();
    // Written from a thread: promtool may answer before reading it all.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool ends");
    let _ = writer.join();
    // promtool's naming lint (exit 3) asks for bytes instead of bits; the
    // billing percentile is in bits/s by contract (invoices are), so that
    // one lint line is accepted and every other finding fails.
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let only_billing_unit_lint = out.status.code() == Some(3)
        && findings
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with(BILLING_BITS_LINT));
    assert!(
        (out.status.success() && findings.is_empty()) || only_billing_unit_lint,
        "promtool check metrics rejects the page: {}{}\n(first lines: {})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        page.lines().take(5).collect::<Vec<_>>().join(" | ")
    );
    CHECKED.lock().unwrap().push(shape);
}

/// Lets a collector under test (nfcapd -B, nfacctd's pipe size) get the
/// receive buffer it asks for: raises `net.core.rmem_max` to `bytes` when
/// it is lower (root only; CI is root). The sysctl is global, not per
/// network namespace, so it cannot be scoped to the test; raising it only
/// allows larger buffers and changes nothing for sockets that do not ask.
pub fn allow_receive_buffer(bytes: u64) {
    let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if max < bytes {
        let _ = std::fs::write("/proc/sys/net/core/rmem_max", bytes.to_string());
    }
}

/// SIGTERM to a child the test started, then its exit status within
/// `secs` (`None`: it was still running, and has been killed and reaped).
pub fn sigterm_and_wait(
    child: &mut std::process::Child,
    secs: u64,
) -> Option<std::process::ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_for(secs, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// A free TCP port on 127.0.0.1 (for a daemon's /metrics).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A free UDP port on 127.0.0.1 (for a collector).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The body of `GET path` from 127.0.0.1:`port`, or `None` unless the
/// answer is 200 within 10 s.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    if !page.contains(" 200 ") {
        return None;
    }
    Some(page.split_once("\r\n\r\n")?.1.to_string())
}

/// `xdpacct replay --workers N --config CONFIG EXTRA... FILES...`: the
/// samples of the page it prints; panics with its stderr when it fails.
pub fn replay_samples<F: AsRef<std::ffi::OsStr>>(
    config: &Path,
    workers: u32,
    extra: &[&str],
    files: &[F],
) -> Vec<Sample> {
    let out = xdpacct()
        .args(["replay", "--workers", &workers.to_string(), "--config"])
        .arg(config)
        .args(extra)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_exposition(&String::from_utf8(out.stdout).unwrap())
}

/// Runs one of tests/data's generators (`python3 tests/data/SCRIPT ARGS...`)
/// and panics with its stderr when it fails.
pub fn run_generator<A: AsRef<std::ffi::OsStr>>(script: &str, args: &[A]) {
    let out = Command::new("python3")
        .arg(data_dir().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 runs {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tests/data/gen_billing.py into `dir`: the captures of appliances a and b
/// and the truth file, as (a.pcap, b.pcap, truth.json); also a's traffic
/// over its two links, at [`billing_links`].
pub fn generate_billing(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (a, b, t) = (
        dir.join("a.pcap"),
        dir.join("b.pcap"),
        dir.join("truth.json"),
    );
    let [l1, l2] = billing_links(dir);
    let args = [
        "--out-a".as_ref(),
        a.as_os_str(),
        "--out-b".as_ref(),
        b.as_os_str(),
        "--truth".as_ref(),
        t.as_os_str(),
        "--split-a".as_ref(),
        l1.as_os_str(),
        l2.as_os_str(),
    ];
    run_generator::<&std::ffi::OsStr>("gen_billing.py", &args);
    (a, b, t)
}

/// Where [`generate_billing`] writes appliance a's traffic split over two
/// links (one customer on both): `link1.pcap` and `link2.pcap`.
pub fn billing_links(dir: &Path) -> [PathBuf; 2] {
    [dir.join("link1.pcap"), dir.join("link2.pcap")]
}

/// Polls `f` every 50 ms until it returns `Some`, at most `secs` seconds.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
