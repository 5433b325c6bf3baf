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

/// Regression: `ipv6_host_prefix = 128` with a /64 range overflowed the host
/// count and billed another range's customer; `::/0` and spans past 2^64
/// hosts passed too.
#[test]
fn host_counts_past_the_limit_are_refused() {
    check(
        "[accounting]\nipv6_host_prefix = 128\n[[accounting.ranges]]\nprefix = \"198.51.100.0/24\"\n[[accounting.ranges]]\nprefix = \"2001:db8::/64\"\n",
        &["accounting.ranges[1]", "more than"],
    );
    check(
        "[[accounting.ranges]]\nprefix = \"::/0\"\n",
        &["accounting.ranges[0]", "more than"],
    );
    check(
        "[accounting]\nipv6_host_prefix = 128\n[[accounting.ranges]]\nfirst = \"2001:db8::\"\nlast = \"2001:db8::1:0:0:4\"\n",
        &["accounting.ranges[0]", "more than"],
    );
}

/// Regression: network label names were not checked, and Prometheus
/// rejected the whole scrape.
#[test]
fn network_label_names_follow_prometheus() {
    for name in ["1abc", "a-b", "__name__", "peer_as", "network", "job", "le"] {
        let toml = format!(
            "[[accounting.networks]]\nname = \"n\"\nprefixes = [\"192.0.2.0/24\"]\nlabels = {{ \"{name}\" = \"x\" }}\n"
        );
        let expect = format!("accounting.networks[0].labels.{name}");
        if name == "peer_as" {
            // Not one of the network family's labels: allowed.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ok.toml");
            std::fs::write(&path, &toml).unwrap();
            let out = xdpacct()
                .args(["check-config", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        check(&toml, &[&expect]);
    }
}

/// Regression: sizes without bounds passed check-config.
#[test]
fn sizes_and_cores_are_bounded() {
    check(
        "[netflow]\nmax_flows = 4294967295\n",
        &["netflow.max_flows"],
    );
    check("[capture]\nrx_ring = 2147483648\n", &["capture.rx_ring"]);
    check(
        "[capture]\ncores = [99999]\n",
        &["capture.cores[0]", "99999"],
    );
    check(
        "[capture]\nmode = \"afpacket\"\nframes_per_queue = 4096\n",
        &["capture.frames_per_queue", "AF_XDP"],
    );
}

/// Regression: `--config /dev/zero` read until allocation failed and a FIFO
/// hung start-up.
#[test]
fn config_must_be_a_small_regular_file() {
    for path in ["/dev/zero", "/dev/null"] {
        let out = xdpacct()
            .args(["check-config", "--config", path])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = xdpacct()
        .args(["check-config", "--config"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let big = dir.path().join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = xdpacct()
        .args(["check-config", "--config"])
        .arg(&big)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("at most"), "{err}");
}
