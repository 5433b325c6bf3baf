//! Least privilege: once `xdpacct run` has attached its XDP programs and
//! opened its sockets, it drops every capability it no longer needs from the
//! effective, permitted, inheritable, ambient and bounding sets.
//!
//! What is still needed after start-up, measured on Linux 6.18 (veth):
//! started with only `CAP_NET_ADMIN CAP_BPF CAP_NET_RAW CAP_IPC_LOCK` in the
//! bounding set (`setpriv --bounding-set=-all,+net_admin,+bpf,+net_raw,+ipc_lock`)
//! the daemon opens and serves; without any one of them opening fails:
//! no `CAP_NET_ADMIN`: creating the XSKMAP (EPERM); no `CAP_BPF`: loading
//! the program; no `CAP_NET_RAW`: the packet socket for promiscuous mode
//! (and AF_XDP / AF_PACKET sockets); no `CAP_IPC_LOCK`: registering the
//! UMEM. (Root also has `CAP_SYS_ADMIN`, which stands in for `CAP_BPF` and
//! `CAP_NET_ADMIN` in the BPF checks; it is dropped.) Re-attaching when an
//! interface comes back does the same steps, so the same four stay
//! (`fault_capabilities_dropped_after_start` re-attaches after the drop).
//!
//! | need after start-up | capability |
//! |---|---|
//! | scrape: XDP map counters, `XDP_STATISTICS`, AF_PACKET stats | none (fds already open) |
//! | NetFlow export over UDP, reading the config on SIGHUP | none (root-owned files stay readable) |
//! | re-attach: XSKMAP, `BPF_LINK_CREATE`, promiscuous mode | `CAP_NET_ADMIN` |
//! | re-attach: load the XDP program | `CAP_BPF` |
//! | re-attach: new AF_XDP / AF_PACKET / ioctl sockets | `CAP_NET_RAW` |
//! | re-attach: register a new UMEM | `CAP_IPC_LOCK` |
//! | bind `metrics.listen` below port 1024 | `CAP_NET_BIND_SERVICE` for the bind only: bind with `MetricsListener::bind` before the drop, serve after |
//!
//! So the kept set is `CAP_NET_ADMIN`, `CAP_BPF`, `CAP_NET_RAW`,
//! `CAP_IPC_LOCK` (those of them the process had). `CAP_NET_BIND_SERVICE`
//! is kept only when the caller asks (`bind_low_port`), which it needs only
//! if it binds a port below 1024 after the drop; bound before, the
//! listening socket keeps working without it (`tests/http_hardening.rs`
//! `low_port_bound_before_the_drop_serves_without_cap_net_bind_service`).
//! Everything else
//! (`CAP_SYS_ADMIN`, `CAP_DAC_OVERRIDE`, `CAP_SETUID`, ...) is gone, also
//! from the bounding set, so no later `execve` can regain it.
//!
//! Capabilities are per thread: `drop_after_start` must run before any
//! thread is spawned (the daemon calls it right after opening the captures,
//! before the exporter, the workers and the HTTP server start), so every
//! thread inherits the reduced sets. No unsafe code; allocates a little.
//!
//! Capabilities are not the uid. Started as root outside systemd, the
//! process stays uid 0 after the drop: without `CAP_DAC_OVERRIDE` it still
//! owns every root-owned file and may write them. The packaged unit runs
//! it as `User=xdpacct` with the four capabilities as ambient ones; run by
//! hand, start it the same way (`setpriv --reuid=xdpacct --regid=xdpacct
//! --init-groups --inh-caps=+net_admin,+bpf,+net_raw,+ipc_lock
//! --ambient-caps=+net_admin,+bpf,+net_raw,+ipc_lock xdpacct run ...`).
//! [`drop_after_start`] logs a warning when it finds itself uid 0 outside
//! systemd.

use caps::{CapSet, Capability, CapsHashSet};

/// Capabilities kept after start-up: what re-attaching a capture needs.
pub const KEPT: &[Capability] = &[
    Capability::CAP_NET_ADMIN,
    Capability::CAP_BPF,
    Capability::CAP_NET_RAW,
    Capability::CAP_IPC_LOCK,
];

/// Drops every capability but [`KEPT`] (and `CAP_NET_BIND_SERVICE` when
/// `bind_low_port`) from all sets of the calling thread. Returns the kept
/// capabilities (those of the wanted ones the process had). Logs one line.
pub fn drop_after_start(bind_low_port: bool) -> Result<Vec<Capability>, caps::errors::CapsError> {
    let permitted = caps::read(None, CapSet::Permitted)?;
    let mut keep: CapsHashSet = KEPT
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    if bind_low_port && permitted.contains(&Capability::CAP_NET_BIND_SERVICE) {
        keep.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes
    // with the effective set below.
    let bounding_dropped = if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)? {
        for cap in caps::read(None, CapSet::Bounding)? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)?;
            }
        }
        true
    } else {
        false
    };
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    let mut kept: Vec<Capability> = keep.into_iter().collect();
    kept.sort_by_key(|c| c.index());
    let names: Vec<String> = kept.iter().map(|c| c.to_string()).collect();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if effective_uid(&status) == Some(0) && std::env::var_os("INVOCATION_ID").is_none() {
        tracing::warn!(
            "running as uid 0 outside systemd: dropping capabilities does not change the uid, \
             so this process can still write every root-owned file; run it as an unprivileged \
             user with only the kept capabilities (the packaged unit does: User=xdpacct), \
             see src/privileges.rs"
        );
    }
    tracing::info!(
        kept = names.join(","),
        bounding_set_reduced = bounding_dropped,
        "dropped every other capability (the kept ones re-attach a capture when an interface comes back)"
    );
    Ok(kept)
}

/// The effective uid from the text of `/proc/self/status`
/// (`Uid:\treal\teffective\tsaved\tfs`); None when absent or malformed.
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line["Uid:".len()..].split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\txdpacct\nUmask:\t0022\nState:\tS (sleeping)\n\
                      Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t998\t998\t998\n"), Some(998));
        assert_eq!(effective_uid("Gid:\t0\t0\t0\t0\n"), None);
        assert_eq!(effective_uid("Uid:\t0\n"), None);
        assert_eq!(effective_uid("Uid:\t0\tx\n"), None);
        assert_eq!(effective_uid(""), None);
    }
}
