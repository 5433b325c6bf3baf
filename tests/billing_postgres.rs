//! `billing.postgres` against a real PostgreSQL: Debian's server (15),
//! started by this test in its own data directory on a free loopback
//! port, trust authentication on 127.0.0.1 only, stopped and removed after
//! (a Drop guard, also when the test fails).
//!
//! Two appliances replay tests/data/gen_billing.py's two captures, each
//! into its own SQLite ledger and the shared PostgreSQL; `billing report
//! --postgres` must equal `billing report --db a.db --db b.db` (which
//! tests/billing_replay.rs checks against the generator's truth ranked
//! independently) and the truth's own totals. A repeated push of the same
//! intervals must not count twice. An unreachable PostgreSQL must leave
//! the SQLite ledger complete, with one clear log line. The writer is
//! taken through an outage at start-up and one while running, and so is
//! `xdpacct run` on a veth pair (root): failures counted on /metrics, the
//! SQLite ledger written throughout, the backlog caught up.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::xdpacct;
use serde_json::Value;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The generator's ranges and an empty `[billing]` (tests/data/billing.toml).
fn config_text() -> String {
    std::fs::read_to_string(common::data_dir().join("billing.toml")).unwrap()
}

/// A PostgreSQL server of this test; stopped and its directory removed on
/// drop.
struct Pg {
    child: Option<Child>,
    port: u16,
    root: bool,
    dir: tempfile::TempDir,
}

impl Pg {
    fn url(&self) -> String {
        format!("postgres://xdpacct@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on its data directory and port; waits until it
    /// accepts connections.
    fn start(&mut self) {
        let child = as_pg(&format!("{BIN}/postgres"), self.root)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off", "-c", "log_min_messages=warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        loop {
            let ok = Command::new(format!("{BIN}/pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .unwrap()
                .success();
            if ok {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (the data directory stays).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Fast shutdown (SIGINT), then SIGKILL if it lingers.
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `program` as the `postgres` user when root (the server refuses root).
fn as_pg(program: &str, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
            program,
        ]);
        c
    } else {
        Command::new(program)
    }
}

/// Starts a server, or returns None (skip; a panic under CI) when the
/// binaries are missing.
fn start_pg() -> Option<Pg> {
    let mut pg = init_pg()?;
    pg.start();
    Some(pg)
}

/// A data directory and a port, the server not started.
fn init_pg() -> Option<Pg> {
    if !Path::new(&format!("{BIN}/initdb")).exists() {
        common::missing(
            "billing_postgres",
            &format!("needs {BIN}/initdb (Debian package postgresql; scripts/install-deps.sh)"),
        );
        return None;
    }
    let root = common::is_root();
    let dir = tempfile::tempdir().unwrap();
    if root {
        let out = Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .unwrap();
        assert!(out.status.success(), "no postgres user");
        let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let out = Command::new("id")
            .args(["-g", "postgres"])
            .output()
            .unwrap();
        let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    let data = dir.path().join("data");
    let out = as_pg(&format!("{BIN}/initdb"), root)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "xdpacct", "--no-sync", "-E", "UTF8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Pg {
        child: None,
        port: free_port(),
        root,
        dir,
    })
}

struct Fixture {
    dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    truth: Value,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, t) = common::generate_billing(dir.path());
    let truth = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    Fixture { dir, a, b, truth }
}

/// A config file with `extra` lines in [billing].
fn config(f: &Fixture, name: &str, extra: &str) -> PathBuf {
    let p = f.dir.path().join(format!("{name}.toml"));
    std::fs::write(&p, format!("{}{extra}\n", config_text())).unwrap();
    p
}

fn replay(config: &Path, pcap: &Path, db: &Path, workers: usize) -> Output {
    let out = xdpacct()
        .arg("--config")
        .arg(config)
        .arg("replay")
        .arg(pcap)
        .args(["--workers", &workers.to_string(), "--billing-db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn report(f: &Fixture, config: &Path, source: &[&str], method: &str, missing: &str) -> Value {
    let from = f.truth["from"].as_i64().unwrap().to_string();
    let to = f.truth["to"].as_i64().unwrap().to_string();
    let out = xdpacct()
        .arg("--config")
        .arg(config)
        .args(["billing", "report", "--from", &from, "--to", &to])
        .args(["--format", "json", "--method", method, "--missing", missing])
        .args(source)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report {source:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The truth's in and out bytes of `key` over `apps`, every interval.
fn truth_bytes(truth: &Value, apps: &[&str], key: &str) -> (u64, u64) {
    let (mut i, mut o) = (0, 0);
    for a in apps {
        for (_, s) in truth["appliances"][a]["samples"].as_object().unwrap() {
            if let Some(v) = s[key].as_array() {
                i += v[1].as_u64().unwrap();
                o += v[3].as_u64().unwrap();
            }
        }
    }
    (i, o)
}

fn subject<'a>(r: &'a Value, customer: &str) -> &'a Value {
    r["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"]["customer"] == customer)
        .unwrap_or_else(|| panic!("no {customer} in {r:#}"))
}

#[test]
fn two_appliances_through_postgres_equal_their_ledgers_summed() {
    let Some(pg) = start_pg() else { return };
    let f = fixture();
    let url = pg.url();
    let ca = config(
        &f,
        "a",
        &format!("appliance = \"edge-a\"\npostgres = \"{url}\""),
    );
    let cb = config(
        &f,
        "b",
        &format!("appliance = \"edge-b\"\npostgres = \"{url}\""),
    );
    let (da, db) = (f.dir.path().join("a.db"), f.dir.path().join("b.db"));
    replay(&ca, &f.a, &da, 2);
    replay(&cb, &f.b, &db, 1);
    let (da_s, db_s) = (da.display().to_string(), db.display().to_string());
    for method in ["max_of_p95", "p95_of_max", "p95_of_sum"] {
        for missing in ["zero", "skip"] {
            let from_pg = report(&f, &ca, &["--postgres", &url], method, missing);
            let from_files = report(&f, &ca, &["--db", &da_s, "--db", &db_s], method, missing);
            assert_eq!(from_pg, from_files, "{method} {missing}");
        }
    }
    // Independent truth: every customer's bytes, summed over both links.
    let r = report(&f, &ca, &["--postgres", &url], "max_of_p95", "zero");
    // (customer "" is the range without a customer label.)
    assert_eq!(r["subjects"].as_array().unwrap().len(), 4, "{r:#}");
    for c in ["acme", "beta", "gamma", ""] {
        let (i, o) = truth_bytes(&f.truth, &["a", "b"], c);
        let s = subject(&r, c);
        assert_eq!(s["in"]["bytes"], i, "{c}");
        assert_eq!(s["out"]["bytes"], o, "{c}");
        assert!(i > 0, "{c} has traffic in the truth");
    }
    // One appliance alone equals its own ledger.
    let one = report(
        &f,
        &ca,
        &["--postgres", &url, "--appliance", "edge-b"],
        "max_of_p95",
        "zero",
    );
    assert_eq!(one, report(&f, &ca, &["--db", &db_s], "max_of_p95", "zero"));
    // The same intervals pushed again (a retry, a restart with a fresh
    // file) replace the totals rather than adding to them.
    let da2 = f.dir.path().join("a2.db");
    replay(&ca, &f.a, &da2, 1);
    assert_eq!(
        report(&f, &ca, &["--postgres", &url], "max_of_p95", "zero"),
        r
    );
    drop(pg);
}

#[test]
fn postgres_unreachable_leaves_the_sqlite_ledger_complete() {
    let f = fixture();
    // A port nobody listens on (bound, then released).
    let url = format!("postgres://xdpacct@127.0.0.1:{}/postgres", free_port());
    let c = config(&f, "down", &format!("postgres = \"{url}\""));
    let da = f.dir.path().join("a.db");
    let t = Instant::now();
    let out = replay(&c, &f.a, &da, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One line for the outage, not one per attempt (there were hundreds).
    assert_eq!(
        stderr.matches("cannot write to PostgreSQL").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("PostgreSQL postgres://xdpacct@127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("SQLite ledger is written"), "{stderr}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    // The ledger is complete: the truth's bytes per customer.
    let r = report(
        &f,
        &c,
        &["--db", &da.display().to_string()],
        "max_of_p95",
        "zero",
    );
    for cu in ["acme", "beta", "gamma", ""] {
        let (i, o) = truth_bytes(&f.truth, &["a"], cu);
        let s = subject(&r, cu);
        assert_eq!(
            (s["in"]["bytes"].as_u64(), s["out"]["bytes"].as_u64()),
            (Some(i), Some(o)),
            "{cu}"
        );
    }
    // The report from an unreachable server is a clear one-line error.
    let from = f.truth["from"].as_i64().unwrap().to_string();
    let out = xdpacct()
        .arg("--config")
        .arg(&c)
        .args([
            "billing",
            "report",
            "--from",
            &from,
            "--to",
            "2025-11-04",
            "--postgres",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("PostgreSQL") && e.contains("127.0.0.1"), "{e}");
}

/// The writer itself: PostgreSQL down at start, then up (the queue is
/// caught up), then down while running (counted, SQLite unaffected), then
/// up again; PostgreSQL ends equal to the SQLite ledger.
#[test]
fn an_outage_is_counted_queued_and_caught_up() {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use xdpacct::billing::postgres::{extracts, Sink};
    use xdpacct::billing::store::{Extract, Reader};
    use xdpacct::billing::{IntervalWrite, LedgerStats, Store, Volume};

    let Some(mut pg) = init_pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let mut store = Store::open(&path, 60, "edge").unwrap();
    let stats = LedgerStats::default();
    let mut sink = Sink::new(&pg.url(), "edge", 60);
    let t0 = 1_764_547_200; // 2025-12-01T00:00Z
    let write = |store: &mut Store, sink: &mut Sink, k: i64, bytes: u64| {
        let mut samples = HashMap::new();
        samples.insert(
            Arc::<str>::from(r#"{"customer":"acme"}"#),
            Volume {
                in_packets: 1,
                in_bytes: bytes,
                out_packets: 2,
                out_bytes: 2 * bytes,
            },
        );
        let w = IntervalWrite {
            start: t0 + 60 * k,
            covered_ms: 30_000,
            closed: false,
            samples,
            ..Default::default()
        };
        store.write(&[w]).unwrap();
        sink.mark(t0 + 60 * k);
    };
    let same = |pg: &Pg| {
        let (iv, xs) = extracts(&pg.url(), None, t0, t0 + 3600).unwrap();
        assert_eq!((iv, xs.len()), (Some(60), 1));
        let want = Reader::open(&path).unwrap().extract(t0, t0 + 3600).unwrap();
        let norm = |x: &Extract| {
            let mut s: Vec<_> = x
                .samples
                .iter()
                .map(|(k, v)| {
                    let mut v = v.clone();
                    v.sort_by_key(|e| e.0);
                    (k.clone(), v)
                })
                .collect();
            s.sort_by(|a, b| a.0.cmp(&b.0));
            let mut i: Vec<_> = x.intervals.iter().map(|(k, v)| (*k, *v)).collect();
            i.sort_by_key(|e| e.0);
            (i, s)
        };
        assert_eq!(norm(&xs[0]), norm(&want));
    };
    // Down at start-up: counted, queued.
    write(&mut store, &mut sink, 0, 100);
    write(&mut store, &mut sink, 1, 200);
    sink.push(&store, &stats);
    sink.push(&store, &stats);
    assert_eq!(stats.postgres_write_failures.load(Relaxed), 2);
    assert_eq!(sink.queued(), 2);
    // Up: the queue is written.
    pg.start();
    write(&mut store, &mut sink, 0, 5); // the same interval again
    sink.push(&store, &stats);
    assert_eq!(sink.queued(), 0);
    assert_eq!(stats.postgres_writes.load(Relaxed), 1);
    same(&pg);
    // Down while running.
    pg.stop();
    write(&mut store, &mut sink, 1, 7);
    write(&mut store, &mut sink, 2, 300);
    sink.push(&store, &stats);
    assert_eq!(stats.postgres_write_failures.load(Relaxed), 3);
    assert_eq!(sink.queued(), 2);
    // Up again: caught up, totals equal (no double count).
    pg.start();
    write(&mut store, &mut sink, 3, 1);
    sink.push(&store, &stats);
    assert_eq!(sink.queued(), 0);
    assert_eq!(stats.postgres_writes.load(Relaxed), 2);
    same(&pg);
    let (_, xs) = extracts(&pg.url(), Some("edge"), t0, t0 + 3600).unwrap();
    let acme = &xs[0].samples[r#"{"customer":"acme"}"#];
    let total: u64 = acme.iter().map(|(_, v)| v.in_bytes).sum();
    assert_eq!(total, 100 + 200 + 5 + 7 + 300 + 1);
}

/// GET `path` on 127.0.0.1:`port`; the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains(" 200 ").then(|| {
        body.split_once("\r\n\r\n")
            .map_or(body.clone(), |(_, b)| b.to_string())
    })
}

/// A value of an unlabelled family on the page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls /metrics until `ok` holds for it (at most `secs`).
fn wait_metrics(port: u16, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let page = http_get(port, "/metrics").unwrap_or_default();
        if ok(&page) {
            return page;
        }
        assert!(Instant::now() < until, "{what}: {page}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `xdpacct run` on a veth pair (root) with PostgreSQL going away and
/// coming back while it runs: the SQLite ledger is written throughout,
/// the failures are counted, the backlog is caught up, and PostgreSQL
/// ends with the same samples as the SQLite ledger and the generator's
/// truth.
#[test]
fn the_daemon_rides_out_a_postgres_outage() {
    use common::testnet::{can_run, TestNet};
    if !can_run(
        "billing postgres daemon test",
        &["ip", "tcpreplay", "python3"],
    ) {
        return;
    }
    let Some(mut pg) = start_pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let config = dir.path().join("live.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[accounting]
local_networks = ["198.51.100.0/24", "2001:db8:1::/48"]
[[accounting.ranges]]
prefix = "198.51.100.0/24"
labels = {{ customer = "live" }}
[[accounting.ranges]]
prefix = "2001:db8:1::/52"
labels = {{ customer = "live" }}
[billing]
interval = 15
allow_short_interval = true
checkpoint = 1
db = "{}"
appliance = "live1"
postgres = "{}"
"#,
            db.display(),
            pg.url()
        ),
    )
    .unwrap();
    let truth = |json: &Path| -> [u64; 4] {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        let mut t = [0u64; 4];
        for h in v["hosts"].as_object().unwrap().values() {
            t[0] += h["in_packets"].as_u64().unwrap();
            t[1] += h["in_l2_bytes"].as_u64().unwrap();
            t[2] += h["out_packets"].as_u64().unwrap();
            t[3] += h["out_l2_bytes"].as_u64().unwrap();
        }
        t
    };
    let (pa, ta) = common::generate(dir.path(), 3000, 11, 1600);
    let (pb, tb) = common::generate(dir.path(), 2000, 12, 1600);
    let (ta, tb) = (truth(&ta), truth(&tb));
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 15
        * 15;
    let net = TestNet::new("xg", "p", 2);
    let port = free_port();
    let mut child = xdpacct()
        .arg("--config")
        .arg(&config)
        .args([
            "run",
            "-i",
            &net.root_if,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start xdpacct run");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut child);
    wait_metrics(port, 15, "xdpacct run serves /metrics", |p| !p.is_empty());
    assert_eq!(net.replay(&pa), ta[0] + ta[2]);
    wait_metrics(port, 15, "pushed to PostgreSQL", |p| {
        metric(p, "xdpacct_billing_postgres_writes_total").is_some_and(|v| v >= 1.0)
            && metric(p, "xdpacct_billing_postgres_queued_intervals") == Some(0.0)
    });
    // PostgreSQL goes away while traffic is counted.
    pg.stop();
    assert_eq!(net.replay(&pb), tb[0] + tb[2]);
    let page = wait_metrics(port, 20, "the outage is counted", |p| {
        metric(p, "xdpacct_billing_postgres_write_failures_total").is_some_and(|v| v >= 1.0)
            && metric(p, "xdpacct_billing_postgres_queued_intervals").is_some_and(|v| v >= 1.0)
    });
    let writes = metric(&page, "xdpacct_billing_writes_total").unwrap();
    assert_eq!(
        metric(&page, "xdpacct_billing_write_failures_total"),
        Some(0.0)
    );
    // The SQLite ledger goes on (checkpoint = 1 s).
    wait_metrics(port, 10, "SQLite written during the outage", |p| {
        metric(p, "xdpacct_billing_writes_total").is_some_and(|v| v > writes)
    });
    // Back: the backlog is written (retried every 5 s).
    pg.start();
    wait_metrics(port, 20, "the backlog is caught up", |p| {
        metric(p, "xdpacct_billing_postgres_queued_intervals") == Some(0.0)
    });
    let status = common::sigterm_and_wait(guard.0, 15);
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit on SIGTERM: {status:?}"
    );
    drop(guard);
    let to = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 15
        + 1)
        * 15;
    // A report counts intervals that ended: wait for the last one's end.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64(to as f64 + 0.2 - now));
    let rep = |src: &[&str]| -> Value {
        let out = xdpacct()
            .arg("--config")
            .arg(&config)
            .args(["billing", "report", "--format", "json", "--from"])
            .arg(from.to_string())
            .arg("--to")
            .arg(to.to_string())
            .args(src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = subject(&r, "live").clone();
        serde_json::json!([
            s["in"]["packets"],
            s["in"]["bytes"],
            s["out"]["packets"],
            s["out"]["bytes"],
            s["samples"]["present"],
            s["samples"]["complete"]
        ])
    };
    let from_pg = rep(&["--postgres", &pg.url()]);
    let from_db = rep(&["--db", &db.display().to_string()]);
    assert_eq!(from_pg, from_db);
    let want: Vec<u64> = (0..4).map(|i| ta[i] + tb[i]).collect();
    let got: Vec<u64> = from_pg.as_array().unwrap()[..4]
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(got, want);
    drop(net);
}
