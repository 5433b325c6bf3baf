//! A network namespace with a veth pair for the live tests (root only):
//! frames replayed into the peer end from inside the namespace arrive on
//! the root-side end, where xdpacct captures. Removed on drop, even when the
//! test panics.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs a command, panics with its stderr unless it succeeds; returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Root (for namespaces and BPF) and the tools: true, else a loud note and
/// false, or under CI a panic naming what is missing (`super::missing`).
pub fn can_run(what: &str, tools: &[&str]) -> bool {
    super::require_root(what) && super::require_tools(what, tools)
}

pub struct TestNet {
    pub ns: String,
    pub root_if: String,
    pub peer_if: String,
    queues: u32,
}

impl TestNet {
    /// Namespace `{prefix}{pid}{tag}`, veth `…r` (root side) and `…p`, with
    /// `queues` rx and tx queues on each end.
    pub fn new(prefix: &str, tag: &str, queues: u32) -> TestNet {
        let id = std::process::id() % 100_000;
        let ns = format!("{prefix}{id}{tag}");
        let net = TestNet {
            root_if: format!("{ns}r"),
            peer_if: format!("{ns}p"),
            ns,
            queues,
        };
        // Leftovers from a killed earlier run with the same pid go first.
        net.remove();
        sh(&["ip", "netns", "add", &net.ns]);
        net.add_link();
        net
    }

    /// Creates the veth pair (again), IPv6 off so only replayed frames flow.
    pub fn add_link(&self) {
        let q = self.queues.to_string();
        sh(&[
            "ip",
            "link",
            "add",
            &self.root_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &self.peer_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &self.ns,
        ]);
        sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", self.root_if),
        ]);
        self.in_ns(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", self.peer_if),
        ]);
        sh(&["ip", "link", "set", &self.root_if, "up"]);
        self.in_ns(&["ip", "link", "set", &self.peer_if, "up"]);
    }

    pub fn in_ns(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.ns];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Replays `pcap` out of the peer end; returns tcpreplay's count of sent frames.
    pub fn replay(&self, pcap: &Path) -> u64 {
        self.replay_with(pcap, &["--topspeed"])
    }

    /// Replays `pcap` out of the peer end with tcpreplay options for the
    /// speed (`--topspeed`, `--pps=N`, `--mbps=N`, ...); returns tcpreplay's
    /// count of sent frames.
    pub fn replay_with(&self, pcap: &Path, speed: &[&str]) -> u64 {
        let mut args = vec!["tcpreplay", "-i", &self.peer_if];
        args.extend_from_slice(speed);
        args.push(pcap.to_str().unwrap());
        let out = self.in_ns(&args);
        eprintln!(
            "{}",
            out.lines()
                .filter(|l| l.contains("Rated") || l.contains("Actual"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        out.lines()
            .find(|l| l.contains("Successful packets:"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|n| n.trim().parse().ok())
            .expect("tcpreplay reports its successful packets")
    }

    /// An XDP program (native or generic) is attached to the root-side end.
    pub fn xdp_attached(&self) -> bool {
        Command::new("ip")
            .args(["link", "show", "dev", &self.root_if])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("prog/xdp"))
            .unwrap_or(false)
    }

    pub fn remove(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_if])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A bare network namespace (for hosts the test makes talk to each other),
/// deleted on drop with the veth ends in it, even when the test panics.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Namespace `name` (a leftover of a killed earlier run goes first).
    pub fn new(name: &str) -> Netns {
        let ns = Netns {
            name: name.to_string(),
        };
        ns.remove();
        sh(&["ip", "netns", "add", name]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A veth pair between two namespaces, `(namespace, interface, MAC)` at
/// each end ("" for a random MAC), both ends up with IPv6 off (no
/// neighbour discovery or router solicitations among the test's frames).
pub fn veth_between(a: (&str, &str, &str), b: (&str, &str, &str)) {
    let mut args = vec!["ip", "link", "add", a.1];
    if !a.2.is_empty() {
        args.extend(["address", a.2]);
    }
    args.extend(["netns", a.0, "type", "veth", "peer", "name", b.1]);
    if !b.2.is_empty() {
        args.extend(["address", b.2]);
    }
    args.extend(["netns", b.0]);
    sh(&args);
    for (ns, ifname, _) in [a, b] {
        let ipv6 = format!("net.ipv6.conf.{ifname}.disable_ipv6=1");
        sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", &ipv6]);
        sh(&["ip", "netns", "exec", ns, "ip", "link", "set", ifname, "up"]);
    }
}
