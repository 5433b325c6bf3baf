//! The billing ledger against independent truth: tests/data/gen_billing.py
//! writes days of sparse traffic with a pattern per customer per interval
//! and the truth per interval; `xdpacct replay --billing-db` samples it at
//! the capture's own timestamps; `xdpacct billing report` must equal the
//! ranking this test does itself of the truth, for every method and both
//! `missing` modes, on 1 and 4 workers, for one ledger and for two summed,
//! and for one appliance's two links replayed as two interfaces into one
//! ledger (a customer on both). Also: hostile ledger files, a damaged
//! capture among several and a full disk.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::xdpacct;
use serde_json::Value;

/// The generator's ranges and an empty `[billing]` (tests/data/billing.toml).
fn config_text() -> String {
    std::fs::read_to_string(common::data_dir().join("billing.toml")).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    a: PathBuf,
    b: PathBuf,
    /// Appliance a's traffic over its two links (acme on both).
    links: [PathBuf; 2],
    truth: Value,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, t) = common::generate_billing(dir.path());
    let config = dir.path().join("billing.toml");
    std::fs::write(&config, config_text()).unwrap();
    let truth = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    Fixture {
        links: common::billing_links(dir.path()),
        dir,
        config,
        a,
        b,
        truth,
    }
}

fn run(f: &Fixture, args: &[&str]) -> Output {
    xdpacct()
        .arg("--config")
        .arg(&f.config)
        .args(args)
        .output()
        .unwrap()
}

fn replay(f: &Fixture, pcap: &Path, db: &Path, workers: usize) {
    replay_files(f, &[pcap], &[], db, workers);
}

/// `xdpacct replay FILES... --workers N --billing-db DB EXTRA...`, which must succeed.
fn replay_files(f: &Fixture, pcaps: &[&Path], extra: &[&str], db: &Path, workers: usize) -> Output {
    let out = replay_output(f, pcaps, extra, db, workers);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn replay_output(
    f: &Fixture,
    pcaps: &[&Path],
    extra: &[&str],
    db: &Path,
    workers: usize,
) -> Output {
    xdpacct()
        .arg("--config")
        .arg(&f.config)
        .arg("replay")
        .args(pcaps)
        .args(extra)
        .args(["--workers", &workers.to_string(), "--billing-db"])
        .arg(db)
        .output()
        .unwrap()
}

fn report(f: &Fixture, dbs: &[&Path], method: &str, missing: &str) -> Value {
    let from = f.truth["from"].as_i64().unwrap().to_string();
    let to = f.truth["to"].as_i64().unwrap().to_string();
    let mut args = vec![
        "billing",
        "report",
        "--from",
        &from,
        "--to",
        &to,
        "--format",
        "json",
        "--method",
        method,
        "--missing",
        missing,
    ];
    let dbs: Vec<String> = dbs.iter().map(|d| d.display().to_string()).collect();
    for d in &dbs {
        args.push("--db");
        args.push(d);
    }
    let out = run(f, &args);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One interval of the truth: [in_packets, in_bytes, out_packets, out_bytes].
type Vol = [u64; 4];

/// The truth's samples of `apps` summed per interval, for `key`, and
/// the intervals each appliance covered.
struct Expect {
    iv: i64,
    starts: Vec<i64>,
    /// Per interval: (present on any, present on all).
    state: Vec<(bool, bool)>,
}

fn expect(truth: &Value, apps: &[&str]) -> Expect {
    let iv = truth["interval"].as_i64().unwrap();
    let (from, to) = (
        truth["from"].as_i64().unwrap(),
        truth["to"].as_i64().unwrap(),
    );
    let starts: Vec<i64> = (from..to).step_by(iv as usize).collect();
    let covered = |app: &str, s: i64| {
        let a = &truth["appliances"][app];
        a["first"].as_i64().unwrap() <= s && s <= a["last"].as_i64().unwrap()
    };
    let state = starts
        .iter()
        .map(|&s| {
            (
                apps.iter().any(|a| covered(a, s)),
                apps.iter().all(|a| covered(a, s)),
            )
        })
        .collect();
    Expect { iv, starts, state }
}

fn volume(truth: &Value, apps: &[&str], key: &str, s: i64) -> Vol {
    let mut v = [0u64; 4];
    for a in apps {
        if let Some(x) = truth["appliances"][a]["samples"][s.to_string()][key].as_array() {
            for (i, n) in x.iter().enumerate() {
                v[i] += n.as_u64().unwrap();
            }
        }
    }
    v
}

/// The 95th percentile by the contract's words: sort ascending, take the
/// value at 1-based rank ceil(0.95 N).
fn p95(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = (0.95 * v.len() as f64 - 1e-9).ceil() as usize;
    v[rank - 1]
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Checks a report against the truth of `apps` summed.
fn check(truth: &Value, apps: &[&str], got: &Value, method: &str, missing: &str) {
    let e = expect(truth, apps);
    let labels = truth["labels"].as_object().unwrap();
    assert_eq!(got["interval_seconds"], e.iv);
    assert_eq!(got["method"], method);
    assert_eq!(got["missing"], missing);
    let subjects = got["subjects"].as_array().unwrap();
    // Every customer with traffic in the range on these appliances.
    let want_keys: BTreeSet<&str> = labels
        .keys()
        .filter(|k| {
            e.starts
                .iter()
                .zip(&e.state)
                .any(|(s, st)| st.0 && volume(truth, apps, k, *s) != [0; 4])
        })
        .map(|k| k.as_str())
        .collect();
    assert_eq!(subjects.len(), want_keys.len(), "{got:#}");
    for key in want_keys {
        let want_labels = &labels[key];
        let sub = subjects
            .iter()
            .find(|s| &s["labels"] == want_labels)
            .unwrap_or_else(|| panic!("no subject {want_labels} in {got:#}"));
        let (mut ins, mut outs, mut maxes, mut sums) = (vec![], vec![], vec![], vec![]);
        let mut tot = [0u64; 4];
        let (mut present, mut complete) = (0, 0);
        for (s, (any, all)) in e.starts.iter().zip(&e.state) {
            present += *any as u64;
            complete += *all as u64;
            if !any && missing == "skip" {
                continue;
            }
            let v = volume(truth, apps, key, *s);
            for i in 0..4 {
                tot[i] += v[i];
            }
            let rate = |b: u64| b as f64 * 8.0 / e.iv as f64;
            ins.push(rate(v[1]));
            outs.push(rate(v[3]));
            maxes.push(rate(v[1]).max(rate(v[3])));
            sums.push(rate(v[1] + v[3]));
        }
        let n = e.starts.len() as u64;
        assert_eq!(sub["samples"]["expected"], n);
        assert_eq!(sub["samples"]["present"], present, "{key}");
        assert_eq!(sub["samples"]["complete"], complete, "{key}");
        assert_eq!(sub["samples"]["missing"], n - present);
        assert_eq!(sub["in"]["packets"], tot[0], "{key} in packets");
        assert_eq!(sub["in"]["bytes"], tot[1], "{key} in bytes");
        assert_eq!(sub["out"]["packets"], tot[2], "{key} out packets");
        assert_eq!(sub["out"]["bytes"], tot[3], "{key} out bytes");
        let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        let f = |v: &Value| v.as_f64().unwrap();
        assert!(close(f(&sub["in"]["max_bps"]), max(&ins)), "{key}");
        assert!(close(f(&sub["out"]["max_bps"]), max(&outs)), "{key}");
        let (pin, pout) = (p95(ins), p95(outs));
        assert!(
            close(f(&sub["in"]["p95_bps"]), pin),
            "{key}: {} vs {pin}",
            sub["in"]["p95_bps"]
        );
        assert!(close(f(&sub["out"]["p95_bps"]), pout), "{key}");
        let billable = match method {
            "max_of_p95" => pin.max(pout),
            "p95_of_max" => p95(maxes),
            "p95_of_sum" => p95(sums),
            m => panic!("{m}"),
        };
        assert!(
            close(f(&sub["billable_bps"]), billable),
            "{key} {method} {missing}: {} vs {billable}",
            sub["billable_bps"]
        );
    }
}

const METHODS: [&str; 3] = ["max_of_p95", "p95_of_max", "p95_of_sum"];

#[test]
fn report_matches_the_truth_ranked_independently_on_1_and_4_workers() {
    let f = fixture();
    for workers in [1, 4] {
        let db = f.dir.path().join(format!("a-{workers}.db"));
        replay(&f, &f.a, &db, workers);
        for method in METHODS {
            for missing in ["zero", "skip"] {
                let got = report(&f, &[&db], method, missing);
                check(&f.truth, &["a"], &got, method, missing);
            }
        }
        // The JSON contract's shape.
        let got = report(&f, &[&db], "max_of_p95", "zero");
        assert_eq!(got["period"]["start"], "2025-11-01T00:00:00Z");
        assert_eq!(got["period"]["end"], "2025-11-04T00:00:00Z");
        let keys: BTreeSet<&str> = got
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "period",
                "interval_seconds",
                "method",
                "missing",
                "subjects"
            ])
        );
        let s = &got["subjects"][0];
        let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["labels", "samples", "in", "out", "billable_bps"])
        );
    }
    // The month: 8640 expected samples, the rest of November missing.
    let db = f.dir.path().join("a-1.db");
    let out = run(
        &f,
        &[
            "billing",
            "report",
            "--period",
            "2025-11",
            "--format",
            "json",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &got["subjects"][0]["samples"];
    assert_eq!(s["expected"], 8640);
    // Covered: 06:00 on the 1st to the end marker's interval (00:00 on the
    // 4th, partial: present, not complete).
    assert_eq!(s["present"], 793);
    assert_eq!(s["complete"], 792);
    assert_eq!(s["missing"], 8640 - 793);
    // CSV and the table name every subject.
    for format in ["csv", "table"] {
        let out = run(
            &f,
            &[
                "billing",
                "report",
                "--period",
                "2025-11",
                "--format",
                format,
                "--db",
                db.to_str().unwrap(),
            ],
        );
        let text = String::from_utf8(out.stdout).unwrap();
        for c in ["acme", "beta", "gamma"] {
            assert!(text.contains(c), "{format}: {text}");
        }
    }
    // --subject filters.
    let out = run(
        &f,
        &[
            "billing",
            "report",
            "--period",
            "2025-11",
            "--format",
            "json",
            "--subject",
            "customer=beta",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["subjects"].as_array().unwrap().len(), 1);
    assert_eq!(got["subjects"][0]["labels"]["customer"], "beta");
}

#[test]
fn two_ledgers_are_summed_per_interval_before_ranking() {
    let f = fixture();
    let (da, db) = (f.dir.path().join("a.db"), f.dir.path().join("b.db"));
    replay(&f, &f.a, &da, 2);
    replay(&f, &f.b, &db, 1);
    for method in METHODS {
        for missing in ["zero", "skip"] {
            let got = report(&f, &[&da, &db], method, missing);
            check(&f.truth, &["a", "b"], &got, method, missing);
        }
    }
    // gamma's bursts on the two links never coincide: the p95 of the sum
    // is not the sum of the two p95s, and the report has the former.
    let e = expect(&f.truth, &["a", "b"]);
    let rates = |apps: &[&str]| -> Vec<f64> {
        e.starts
            .iter()
            .map(|s| volume(&f.truth, apps, "gamma", *s)[1] as f64 * 8.0 / e.iv as f64)
            .collect()
    };
    let (pa, pb, psum) = (
        p95(rates(&["a"])),
        p95(rates(&["b"])),
        p95(rates(&["a", "b"])),
    );
    assert!(
        (psum - (pa + pb)).abs() > 0.01 * psum,
        "the data should tell the two apart: {psum} vs {pa} + {pb}"
    );
    let got = report(&f, &[&da, &db], "max_of_p95", "zero");
    let g = got["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"]["customer"] == "gamma")
        .unwrap();
    assert!(close(g["in"]["p95_bps"].as_f64().unwrap(), psum));
}

#[test]
fn two_links_replayed_as_two_interfaces_into_one_ledger_match_the_truth_on_1_and_4_workers() {
    let f = fixture();
    let links: Vec<&Path> = f.links.iter().map(|p| p.as_path()).collect();
    for workers in [1, 4] {
        let db = f.dir.path().join(format!("links-{workers}.db"));
        let out = replay_files(&f, &links, &["--interface-per-file"], &db, workers);
        // Two interfaces named after the files, more than the two markers
        // on each (link2 carries acme only).
        let page = common::parse_exposition(&String::from_utf8_lossy(&out.stdout));
        for link in ["link1", "link2"] {
            let n = common::sum(
                &page,
                "xdpacct_interface_packets_total",
                &[("interface", link)],
            );
            assert!(n > 2.0, "{n} frames on {link}");
        }
        // The ledger holds the per-interval sum of both links: a's truth.
        for method in METHODS {
            for missing in ["zero", "skip"] {
                let got = report(&f, &[&db], method, missing);
                check(&f.truth, &["a"], &got, method, missing);
            }
        }
    }
}

#[test]
fn a_damaged_capture_among_several_ends_with_the_usual_message() {
    let f = fixture();
    let d = f.dir.path();
    // link2 cut in the middle of a record.
    let cut = d.join("link2.pcap");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).unwrap();
    for workers in [1, 4] {
        let db = d.join(format!("cut-{workers}.db"));
        let links: Vec<&Path> = f.links.iter().map(|p| p.as_path()).collect();
        let out = replay_output(&f, &links, &["--interface-per-file"], &db, workers);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let damage: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("damaged at byte"))
            .collect();
        assert_eq!(damage.len(), 1, "{err}");
        assert!(damage[0].starts_with(cut.to_str().unwrap()), "{err}");
        // The ledger was written up to the end of input, link1 in full.
        let got = report(&f, &[&db], "max_of_p95", "zero");
        assert!(!got["subjects"].as_array().unwrap().is_empty(), "{got:#}");
    }
    // A file that is not a capture among several: one line naming it, status 2.
    let text = d.join("notes.pcap");
    std::fs::write(&text, "not a capture").unwrap();
    let out = replay_output(
        &f,
        &[&f.links[0], &text],
        &["--interface-per-file"],
        &d.join("text.db"),
        2,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(text.to_str().unwrap()), "{err}");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn replay_status(f: &Fixture, db: &Path) -> Output {
    replay_output(f, &[&f.b], &[], db, 1)
}

#[test]
fn hostile_ledger_files_are_refused_and_left_alone() {
    let f = fixture();
    let d = f.dir.path();
    // Not a database; a foreign SQLite database; a directory.
    let text = d.join("notes.db");
    std::fs::write(&text, b"invoice notes, not a ledger\n".repeat(20)).unwrap();
    let foreign = d.join("foreign.db");
    let conn_ok = std::process::Command::new("sqlite3")
        .arg(&foreign)
        .arg("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .status();
    let dir = d.join("adir.db");
    std::fs::create_dir(&dir).unwrap();
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (text.clone(), "not an SQLite database"),
        (dir.clone(), "not a regular file"),
        (d.join("missing-dir/x.db"), "does not exist"),
        (PathBuf::from("/proc/xdpacct-billing.db"), "cannot open"),
    ];
    if conn_ok.is_ok_and(|s| s.success()) {
        cases.push((foreign.clone(), "not a billing ledger"));
    } else {
        assert!(common::require_tool("foreign SQLite file", "sqlite3"));
    }
    for (path, why) in &cases {
        let before = std::fs::read(path).ok();
        let out = replay_status(&f, path);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(why), "{}: {err}", path.display());
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert_eq!(
            std::fs::read(path).ok(),
            before,
            "{} changed",
            path.display()
        );
    }
    // A ledger of another interval; a ledger another process writes.
    let good = d.join("good.db");
    replay(&f, &f.b, &good, 1);
    let before = std::fs::read(&good).unwrap();
    let other = d.join("other.toml");
    std::fs::write(&other, format!("{}interval = 600\n", config_text())).unwrap();
    let out = xdpacct()
        .arg("--config")
        .arg(&other)
        .args(["replay"])
        .arg(&f.b)
        .arg("--billing-db")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("interval"), "{}", stderr(&out));
    let lock = std::fs::File::open(&good).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let out = replay_status(&f, &good);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    drop(lock);
    assert_eq!(std::fs::read(&good).unwrap(), before);
    // The report refuses them too, naming the file.
    let out = run(&f, &["billing", "report", "--db", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(text.to_str().unwrap()));
}

/// A small tmpfs, mounted by the test and unmounted after (also on panic).
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_a_clear_error_and_samples_are_not_half_written() {
    if !common::require_root("full-disk ledger test (mounts a tmpfs)") {
        return;
    }
    let f = fixture();
    let mnt = f.dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    let _guard = Tmpfs(mnt.clone());
    // Fill it but for a few blocks: the ledger is created, its samples
    // do not fit.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 160 * 1024]);
    let db = mnt.join("ledger.db");
    let out = xdpacct()
        .arg("--config")
        .arg(&f.config)
        .arg("replay")
        .arg(&f.a)
        .arg("--billing-db")
        .arg(&db)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "a full disk went unnoticed");
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    assert!(err.to_lowercase().contains("full"), "{err}");
}
