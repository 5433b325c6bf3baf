//! Hostile inputs under a memory bound (issue 14): every hostile config or
//! AS file ends `check-config` and `replay` with one clear line and exit
//! status 2 under a 256 MiB address-space limit (`prlimit --as`), and a
//! running daemon given each of them on SIGHUP (with its own address space
//! limited) keeps serving its old configuration, including when the new
//! tables do not fit in memory. Also: the example config's page, before
//! any traffic, is under 1 MB and passes promtool.

mod common;
use common::wait_for;
use common::{free_tcp_port, http_get};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::testnet::{sh, TestNet};

/// The address-space limit of the bounded runs. `check-config` and `replay`
/// of a small config need well under 64 MiB; the hostile inputs took from
/// 393 MB to all there was before they were bounded.
const LIMIT: u64 = 256 << 20;

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/xdpacct.toml")
}

/// A pcap with no frame (a global header only).
fn empty_pcap(dir: &Path) -> PathBuf {
    let p = dir.join("empty.pcap");
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&p, h).unwrap();
    p
}

/// Waits for `child` at most `secs` seconds (killing it after), with its output.
fn wait_bounded(mut child: Child, secs: u64, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {secs} s (a hang): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// `xdpacct ARGS` under `prlimit --as=LIMIT`, at most 60 s.
fn bounded(args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new("prlimit");
    c.arg(format!("--as={LIMIT}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_xdpacct"))
        .args(args)
        .env("XDPACCT_CONFIG", common::empty_config())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    wait_bounded(c.spawn().expect("prlimit runs"), 60, &format!("{args:?}"))
}

/// `check-config` and `replay` of `config` under the limit: status 2 and
/// one line, `xdpacct: ...`, naming each of `expect`.
fn refused(config: &Path, pcap: &Path, expect: &[&str]) {
    let runs: [Vec<&std::ffi::OsStr>; 2] = [
        vec![
            "check-config".as_ref(),
            "--config".as_ref(),
            config.as_ref(),
        ],
        vec![
            "replay".as_ref(),
            "--config".as_ref(),
            config.as_ref(),
            pcap.as_ref(),
        ],
    ];
    for args in runs {
        let out = bounded(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} under a {} MiB limit: {err}",
            LIMIT >> 20
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line: {err}");
        assert!(lines[0].starts_with("xdpacct: "), "{args:?}: {err}");
        assert!(lines[0].len() < 600, "{args:?}: a short line: {err}");
        assert!(
            !lines[0].chars().any(|c| c.is_control() && c != '\t'),
            "{args:?}: a printable line: {err:?}"
        );
        for e in expect {
            assert!(err.contains(e), "{args:?}: {err:?} should name {e:?}");
        }
    }
}

/// The hostile AS files, written into `dir`: (file name, why it is hostile,
/// what the error names).
fn hostile_as_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    // 2 GiB without a newline (sparse: no disk used).
    let line = dir.join("one-line.tsv");
    std::fs::File::create(&line)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    // A gzip bomb: 512 MiB of NUL bytes, about 500 KB compressed.
    let nul = dir.join("nul.tsv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&nul).unwrap(),
        flate2::Compression::fast(),
    );
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    // Valid lines that need more memory than there is: each ip2asn range
    // 0.0.0.1-255.255.255.254 is 62 prefixes, so 1M lines (40 MB, 100 KB
    // gzipped) are 62M table entries.
    let wide = dir.join("wide.tsv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&wide).unwrap(),
        flate2::Compression::fast(),
    );
    let lines = "0.0.0.1\t255.255.255.254\t64500\tZZ\tX\n".repeat(1000);
    for _ in 0..1000 {
        gz.write_all(lines.as_bytes()).unwrap();
    }
    gz.finish().unwrap();
    vec![
        (line, "longer than 4096 bytes"),
        (nul, "longer than 4096 bytes"),
        (wide, "out of memory"),
    ]
}

/// The hostile configs of issue 14: (file name, TOML, what the error names).
fn hostile_configs(dir: &Path) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, toml: String, expect: &[&str]| {
        v.push((
            name.to_string(),
            toml,
            expect.iter().map(|s| s.to_string()).collect(),
        ))
    };
    for (file, why) in hostile_as_files(dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        add(
            &format!("as-{name}.toml"),
            format!("[accounting]\nas_file = \"{}\"\n", file.display()),
            &["accounting.as_file", &name, why],
        );
    }
    // 4,000 ranges with a label name each (287 KB).
    let mut many = String::new();
    for i in 0..4000u32 {
        many.push_str(&format!(
            "[[accounting.ranges]]\nprefix = \"10.{}.{}.0/24\"\nlabels = {{ l{i} = \"x\" }}\n",
            i >> 8,
            i & 255
        ));
    }
    add(
        "labels.toml",
        many,
        &["accounting.ranges", "distinct label names"],
    );
    // A `cores` array just under the file limit: ~2M elements.
    let cores = format!("[capture]\ncores = [{}0]\n", "0,".repeat(2_000_000));
    add("cores.toml", cores, &["cores.toml", "MiB to parse"]);
    add(
        "max-flows.toml",
        "[netflow]\nmax_flows = 4294967295\n".into(),
        &["netflow.max_flows"],
    );
    add(
        "rx-ring.toml",
        "[capture]\nrx_ring = 2147483648\n".into(),
        &["capture.rx_ring"],
    );
    add(
        "core.toml",
        "[capture]\ncores = [99999]\n".into(),
        &["capture.cores[0]", "99999"],
    );
    add(
        "v6-overflow.toml",
        "[accounting]\nipv6_host_prefix = 128\n[[accounting.ranges]]\nprefix = \"198.51.100.0/24\"\n[[accounting.ranges]]\nprefix = \"2001:db8::/64\"\n".into(),
        &["accounting.ranges[1]", "more than"],
    );
    add(
        "v6-all.toml",
        "[[accounting.ranges]]\nprefix = \"::/0\"\n".into(),
        &["accounting.ranges[0]", "more than"],
    );
    add(
        "v6-shared.toml",
        "[[accounting.ranges]]\nfirst = \"2001:db8::5\"\nlast = \"2001:db8::6\"\n[[accounting.ranges]]\nfirst = \"2001:db8::7\"\nlast = \"2001:db8::8\"\n".into(),
        &["accounting.ranges", "overlap"],
    );
    for bad in ["1abc", "a-b", "__name__", "ip"] {
        add(
            &format!("label-{bad}.toml"),
            format!(
                "[[accounting.ranges]]\nprefix = \"10.0.0.0/24\"\nlabels = {{ \"{bad}\" = \"x\" }}\n"
            ),
            &[&format!("accounting.ranges[0].labels.{bad}")],
        );
    }
    add(
        "net-label.toml",
        "[[accounting.networks]]\nname = \"n\"\nprefixes = [\"192.0.2.0/24\"]\nlabels = { network = \"x\" }\n".into(),
        &["accounting.networks[0].labels.network"],
    );
    v
}

#[test]
fn hostile_inputs_end_with_one_line_and_status_2_in_bounded_memory() {
    if !common::require_tool("bounded hostile inputs", "prlimit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = empty_pcap(dir.path());
    // The limit leaves a good config working.
    let ok = bounded(&[
        "check-config".as_ref(),
        "--config".as_ref(),
        example_config().as_ref(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for (name, toml, expect) in hostile_configs(dir.path()) {
        let path = dir.path().join(&name);
        std::fs::write(&path, toml).unwrap();
        let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
        refused(&path, &pcap, &expect);
    }
    // A valid config whose host slots (4M: 128 MiB per shard, as much again
    // for a scrape) do not fit: replay says so and exits 2. Before, it
    // aborted ("memory allocation of 134217728 bytes failed").
    let big = dir.path().join("big.toml");
    std::fs::write(
        &big,
        "[[accounting.ranges]]\nprefix = \"10.0.0.0/10\"\nlabels = { customer = \"big\" }\n",
    )
    .unwrap();
    let out = bounded(&[
        "replay".as_ref(),
        "--config".as_ref(),
        big.as_ref(),
        pcap.as_ref(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("big.toml") && err.contains("host tables do not fit"),
        "{err}"
    );
    // Not regular files: /dev/zero and a FIFO (which must not hang).
    let fifo = dir.path().join("fifo.toml");
    sh(&["mkfifo", fifo.to_str().unwrap()]);
    for path in [Path::new("/dev/zero"), &fifo] {
        refused(path, &pcap, &["not a regular file"]);
    }
}

/// Regression: the example config's page was 28.8 MB before any traffic
/// (every address of its /24 and /48-at-/64 had series).
#[test]
fn example_config_page_is_under_1_mb_until_traffic_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = empty_pcap(dir.path());
    let out = common::xdpacct()
        .arg("replay")
        .arg("--config")
        .arg(example_config())
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.len() < 1_000_000, "{} bytes", page.len());
    assert!(
        page.contains("customer=\"example-hosting\""),
        "the customer family is there from the start"
    );
    common::assert_promtool_ok(&page);
}

/// The promtool check the tests use catches what Prometheus rejects (a test
/// that cannot fail is no test).
#[test]
fn promtool_check_rejects_a_bad_page() {
    if !common::require_tool("promtool check", "promtool") {
        return;
    }
    common::assert_promtool_ok(
        "# HELP x_total A counter.\n# TYPE x_total counter\nx_total{a=\"1\"} 1\n",
    );
    // The billing percentile keeps its contract name in bits/s.
    common::assert_promtool_ok(
        "# HELP xdpacct_billing_p95_bits p95.\n# TYPE xdpacct_billing_p95_bits gauge\nxdpacct_billing_p95_bits 1\n",
    );
    for bad in [
        "# HELP x_total A counter.\n# TYPE x_total counter\nx_total{1abc=\"1\"} 1\n",
        // A lint warning is a failure too.
        "# HELP x A counter.\n# TYPE x counter\nx 1\n",
        // The billing unit lint is accepted alone, not beside another finding.
        "# HELP xdpacct_billing_p95_bits p95.\n# TYPE xdpacct_billing_p95_bits gauge\nxdpacct_billing_p95_bits 1\n# HELP x A counter.\n# TYPE x counter\nx 1\n",
    ] {
        let caught = std::panic::catch_unwind(|| common::assert_promtool_ok(bad));
        assert!(caught.is_err(), "promtool accepted {bad:?}");
    }
}

// ---- the daemon ----------------------------------------------------------

/// A running `xdpacct run`, killed on drop (its log printed if the test failed).
struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn page(&self) -> String {
        http_get(self.port, "/metrics").expect("scrape /metrics")
    }

    /// The address-space limit's soft value (the hard one stays, so the
    /// test can lift it again without CAP_SYS_RESOURCE).
    fn limit_memory(&self, soft: &str) {
        sh(&[
            "prlimit",
            "--pid",
            &self.child.id().to_string(),
            &format!("--as={soft}:"),
        ]);
    }

    /// Bytes of address space the daemon has mapped now.
    fn vm_size(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmSize");
        kb << 10
    }

    /// SIGHUP, and waits for the `n`th reload log line holding `needle`.
    fn reload(&mut self, needle: &str, n: usize) -> String {
        sh(&["kill", "-HUP", &self.child.id().to_string()]);
        let line = wait_for(30, || {
            self.log_text()
                .lines()
                .filter(|l| l.contains("SIGHUP"))
                .nth(n - 1)
                .map(str::to_string)
        });
        let line = line.unwrap_or_else(|| panic!("no reload line #{n}:\n{}", self.log_text()));
        assert!(line.contains(needle), "reload #{n}: {line}");
        line
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- xdpacct log\n{}", self.log_text());
        }
    }
}

/// Series of the example config's ranges (host_series = "active": the
/// customer family only, until traffic arrives).
const OLD_SERIES: &str =
    "xdpacct_customer_packets_total{direction=\"in\",customer=\"example-hosting\",site=\"ams1\"}";

/// A daemon started with (a copy of) the example config, its address space
/// then limited, is sent SIGHUP with each hostile config in turn (and with
/// the config path replaced by /dev/zero and a FIFO, and with tables that
/// need more memory than the limit leaves): each time it says why, stays
/// up, and serves the old configuration. A good config still reloads after.
#[test]
fn daemon_keeps_its_old_config_on_hostile_reloads_in_bounded_memory() {
    if !common::testnet::can_run("hostile reloads", &["ip", "prlimit"]) {
        return;
    }
    let net = TestNet::new("xhb", "a", 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xdpacct.toml");
    std::fs::copy(example_config(), &cfg).unwrap();
    let log = dir.path().join("xdpacct.log");
    let out = std::fs::File::create(&log).unwrap();
    let port = free_tcp_port();
    let child = common::xdpacct()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["-i", &net.root_if])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start xdpacct run");
    let mut d = Daemon { child, port, log };
    let first = wait_for(20, || {
        assert!(d.alive(), "xdpacct run exited:\n{}", d.log_text());
        http_get(port, "/metrics")
    })
    .expect("xdpacct run serves /metrics");

    // The example config's live page before traffic: small and valid.
    assert!(first.len() < 1_000_000, "{} bytes", first.len());
    assert!(first.contains(OLD_SERIES), "{first}");
    common::assert_promtool_ok(&first);

    // What the daemon may map from now on: what it has, plus 192 MiB.
    let limit = d.vm_size() + (192 << 20);
    d.limit_memory(&limit.to_string());

    let mut reloads = 0;
    let mut check_old = |d: &mut Daemon, what: &str| {
        reloads += 1;
        let line = d.reload("keeping the old configuration", reloads);
        assert!(d.alive(), "{what}: the daemon died:\n{}", d.log_text());
        let page = d.page();
        assert!(page.contains(OLD_SERIES), "{what}: old series gone");
        common::assert_promtool_ok(&page);
        line
    };
    for (name, toml, expect) in hostile_configs(dir.path()) {
        std::fs::write(&cfg, toml).unwrap();
        let line = check_old(&mut d, &name);
        for e in &expect {
            // The daemon's config file has its own name.
            let e = if *e == name {
                "xdpacct.toml"
            } else {
                e.as_str()
            };
            assert!(line.contains(e), "{name}: {line:?} should name {e:?}");
        }
    }
    // The config path replaced by /dev/zero, then by a FIFO.
    std::fs::remove_file(&cfg).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &cfg).unwrap();
    check_old(&mut d, "/dev/zero");
    std::fs::remove_file(&cfg).unwrap();
    sh(&["mkfifo", cfg.to_str().unwrap()]);
    check_old(&mut d, "FIFO");
    std::fs::remove_file(&cfg).unwrap();

    // Tables that need more than the limit leaves: a /10 counted per host
    // is 4M host slots (128 MiB of counters per shard, and as much again
    // for their keys and the scrapes after). Before, the reload aborted.
    std::fs::write(
        &cfg,
        "[accounting]\nhost_series = \"all\"\n[[accounting.ranges]]\nprefix = \"10.0.0.0/10\"\nlabels = { customer = \"big\" }\n",
    )
    .unwrap();
    let line = check_old(&mut d, "tables larger than the memory left");
    assert!(line.contains("out of memory"), "{line}");

    // A good config still reloads, under the same limit.
    std::fs::write(
        &cfg,
        "[[accounting.ranges]]\nprefix = \"192.0.2.0/24\"\nlabels = { customer = \"new\" }\n",
    )
    .unwrap();
    reloads += 1;
    d.reload("host tables reloaded", reloads);
    let page = d.page();
    assert!(page.contains("customer=\"new\""), "{page}");
    assert!(!page.contains(OLD_SERIES));
    common::assert_promtool_ok(&page);
    d.limit_memory("unlimited");
    assert!(d.alive());
}
