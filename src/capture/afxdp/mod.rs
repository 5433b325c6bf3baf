//! AF_XDP capture: an XDP program (bpf/xdpacct.bpf.c) redirects each frame to
//! the AF_XDP socket of its rx queue; one [`AfxdpQueue`] per (interface, rx
//! queue), each meant for one pinned worker thread.
//!
//! Holds unsafe code (UMEM and ring memory shared with the kernel, a few
//! syscalls); every block says why it is sound. Allocates at start-up only.
//!
//! Rings: `xdpilone` (licence EUPL-1.2). Program: `libbpf-rs` skeleton,
//! attached through a bpf_link so the kernel detaches it when the process
//! dies.

mod program;
mod queue;
mod skel;

use std::sync::Arc;

pub use program::{ProgramCounters, XdpProgram, MAX_QUEUES};
pub use queue::{AfxdpQueue, FRAME_SIZE};

use super::{netdev, CaptureError};

pub use crate::settings::{XdpMode, ZeroCopy};

/// Options for [`open_afxdp`].
#[derive(Clone, Debug)]
pub struct AfxdpOptions {
    /// Attach mode. Defaults to `Auto`.
    pub xdp_mode: XdpMode,
    /// Zero-copy. Defaults to `Auto`.
    pub zero_copy: ZeroCopy,
    /// UMEM frames (2 KiB each) per queue, rounded up to a power of two.
    /// Defaults to `capture.frames_per_queue`'s default.
    pub frames_per_queue: u32,
    /// Rx ring slots (power of two). Defaults to `capture.rx_ring`'s default.
    pub rx_ring: Option<u32>,
    /// Fill ring slots (power of two). Defaults to twice `frames_per_queue`.
    pub fill_ring: Option<u32>,
    /// Put the interface in promiscuous mode while capturing. Defaults to true.
    pub promiscuous: bool,
    /// Only these rx queues; `None` means all of them. Defaults to `None`.
    pub queues: Option<Vec<u32>>,
    /// Frame times of TCP handshake frames taken in the XDP program (for
    /// `[tcp_rtt]`). Defaults to false.
    pub handshake_times: bool,
}

impl Default for AfxdpOptions {
    fn default() -> Self {
        // One set of defaults: the settings'.
        let d = crate::settings::Afxdp::default();
        AfxdpOptions {
            xdp_mode: d.xdp_mode,
            zero_copy: d.zero_copy,
            frames_per_queue: d.frames_per_queue,
            rx_ring: Some(d.rx_ring),
            fill_ring: Some(d.fill_ring),
            promiscuous: true,
            queues: None,
            handshake_times: false,
        }
    }
}

/// Loads the XDP program on `ifname`, opens one AF_XDP socket per rx queue,
/// registers them, then attaches the program. Dropping every returned queue
/// detaches it (and leaves promiscuous mode).
pub fn open_afxdp(opts: &AfxdpOptions, ifname: &str) -> Result<Vec<AfxdpQueue>, CaptureError> {
    let count = netdev::rx_queue_count(ifname)?;
    let queues: Vec<u32> = match &opts.queues {
        Some(q) => q.clone(),
        None => (0..count).collect(),
    };
    if let Some(&bad) = queues.iter().find(|&&q| q >= count.min(MAX_QUEUES)) {
        return Err(CaptureError::Interface {
            ifname: ifname.to_owned(),
            msg: format!(
                "rx queue {bad} does not exist (the interface has {count}); fix the queue list"
            ),
        });
    }
    let program = Arc::new(XdpProgram::load(
        ifname,
        opts.promiscuous,
        opts.handshake_times,
    )?);
    // Bind and register the sockets before attaching, so no early frame is
    // passed to the stack for lack of a socket.
    let mut out = Vec::with_capacity(queues.len());
    for q in queues {
        out.push(AfxdpQueue::open(&program, q, opts)?);
    }
    program.attach(opts.xdp_mode)?;
    Ok(out)
}
