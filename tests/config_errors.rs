//! A wrong config stops start-up with one line naming what to fix, and exit
//! status 2; nothing is started.

mod common;

use common::{empty_config, xdpacct};

fn check(toml: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, toml).unwrap();
    for cmd in ["check-config", "run"] {
        let out = xdpacct()
            .args([cmd, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd} on {toml:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        for e in expect {
            assert!(err.contains(e), "{toml:?}: {err:?} should mention {e:?}");
        }
    }
}

#[test]
fn unknown_key_names_it_and_the_file() {
    check("[accounting]\nbytez = \"l2\"\n", &["bytez", "bad.toml"]);
    check("[captur]\ninterfaces = []\n", &["captur"]);
}

#[test]
fn bad_values_name_the_key() {
    check("[accounting]\nbytes = \"l4\"\n", &["bytes", "bad.toml"]);
    check(
        "[accounting]\nlocal_networks = [\"10.0.0.1/8\"]\n",
        &["local_networks", "host bits"],
    );
    check(
        "[[accounting.ranges]]\nprefix = \"300.0.0.0/24\"\n",
        &["ranges[0].prefix"],
    );
    check("[metrics]\nlisten = \"nowhere\"\n", &["metrics.listen"]);
    check("[netflow]\nversion = 5\n", &["netflow.version"]);
    check(
        "[netflow]\nactive_timeout = 0\n",
        &["netflow.active_timeout", "86400"],
    );
    check(
        "[netflow]\nidle_timeout = 100000\n",
        &["netflow.idle_timeout"],
    );
    check("[capture]\nrx_ring = 1000\n", &["capture.rx_ring"]);
}

#[test]
fn overlapping_ranges_are_refused() {
    check(
        "[[accounting.ranges]]\nprefix = \"10.0.0.0/24\"\n[[accounting.ranges]]\nfirst = \"10.0.0.5\"\nlast = \"10.0.1.5\"\n",
        &["overlap", "bad.toml"],
    );
}

#[test]
fn broken_toml_and_missing_file() {
    check("[accounting\n", &["bad.toml"]);
    let out = xdpacct()
        .args(["check-config", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn bad_flags_and_env_are_start_up_errors_too() {
    let out = xdpacct()
        .args(["check-config", "-r", "10.0.0.1", "--config"])
        .arg(empty_config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = xdpacct()
        .args(["check-config", "--config"])
        .arg(empty_config())
        .env("XDPACCT_ACCOUNTING__BYTES", "l9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // And a good one passes.
    let ok = xdpacct()
        .args([
            "check-config",
            "-r",
            "10.0.0.1-10.0.0.9:customer=a",
            "--config",
        ])
        .arg(empty_config())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
