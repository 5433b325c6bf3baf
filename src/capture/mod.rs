//! Capture backends. A backend lends frames to a worker one batch at a time;
//! nothing above this module knows which backend delivered them.
//!
//! - `replay`: pcap / pcapng files, spread over workers by a symmetric flow hash.
//! - `afxdp`: per-queue AF_XDP sockets (the default for live capture).
//! - `afpacket`: TPACKET_V3 with fanout, for NICs or kernels without XDP.
//! - `live`: opens either live backend for the daemon, which never names them.
//! - `stats`: per-queue kernel drop counters of the live backends, as a
//!   Prometheus collector.
//!
//! `afxdp`, `afpacket` and `netdev` hold unsafe code (syscalls and rings
//! shared with the kernel): the crate's exceptions, listed in `lib.rs`.

#[allow(unsafe_code)] // listed in lib.rs
pub mod afpacket;
#[allow(unsafe_code)] // listed in lib.rs
pub mod afxdp;
pub mod live;
#[allow(unsafe_code)] // listed in lib.rs
pub(crate) mod netdev;
pub mod replay;
pub mod stats;

use std::io;

/// One captured frame, lent for the duration of a callback.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The captured bytes (may be shorter than the wire length).
    pub data: &'a [u8],
    /// Length on the wire, without FCS.
    pub wire_len: u32,
    /// Capture time, nanoseconds since the Unix epoch; 0 when the backend
    /// has none (the live backends).
    pub timestamp_ns: u64,
}

/// A source of frames for one worker.
pub trait Capture: Send {
    /// Hands up to `max` frames to `f`, then recycles their slots. Waits a
    /// short while (well under a second) when nothing is there, returning
    /// `Ok(0)`, so the worker can check for shutdown. `Err(Closed)` means
    /// the source is finished (end of file).
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, f: F) -> Result<usize, CaptureError>;
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture source finished")]
    Closed,
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{ifname}: {msg}")]
    Interface { ifname: String, msg: String },
    #[error("{ifname}: no such network interface; check the name with `ip -br link`")]
    NoSuchInterface { ifname: String },
    #[error(
        "{ifname}: permission denied while {what}; run as root or grant \
         CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW and CAP_IPC_LOCK"
    )]
    PermissionDenied {
        ifname: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{ifname}: an XDP program is already attached by another process or tool; \
         see `ip link show dev {ifname}`, then stop its owner or run \
         `ip link set dev {ifname} xdp off`"
    )]
    XdpBusy {
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{ifname} queue {queue}: already used by another AF_XDP socket \
         (another xdpacct or XDP tool); stop it first"
    )]
    QueueBusy { ifname: String, queue: u32 },
    #[error("{ifname} queue {queue}: {what}")]
    Queue {
        ifname: String,
        queue: u32,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}
