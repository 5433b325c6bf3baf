//! Opening live capture, whatever the backend: the daemon asks for the
//! queues of an interface and gets [`LiveQueue`]s, each a [`Capture`] with
//! its kernel counters; it never names AF_XDP or AF_PACKET.
//!
//! Allocates at open only; no unsafe here (the backends hold it).

use std::sync::Arc;

use super::afpacket::{open_afpacket, AfpacketOptions, AfpacketQueue};
use super::afxdp::{open_afxdp, AfxdpOptions, AfxdpQueue};
use super::stats::QueueStatsSource;
use super::{netdev, Capture, CaptureError, Frame};
use crate::settings::{self, Backend};

/// One rx queue's capture socket, of either backend.
// Made once per queue and moved once into its worker: the size difference
// of the variants costs nothing, and a Box would add a load per poll.
#[allow(clippy::large_enum_variant)]
pub enum LiveQueue {
    Afxdp(AfxdpQueue),
    Afpacket(AfpacketQueue),
}

impl LiveQueue {
    /// The rx queue (AF_XDP) or fanout member (AF_PACKET) index.
    pub fn queue(&self) -> u32 {
        match self {
            LiveQueue::Afxdp(q) => q.queue(),
            LiveQueue::Afpacket(q) => q.queue(),
        }
    }

    /// The kernel's counters of this socket (frames seen, dropped...).
    pub fn stats_source(&self) -> Arc<dyn QueueStatsSource> {
        match self {
            LiveQueue::Afxdp(q) => q.stats_source(),
            LiveQueue::Afpacket(q) => q.stats_source(),
        }
    }
}

impl Capture for LiveQueue {
    #[inline]
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, f: F) -> Result<usize, CaptureError> {
        match self {
            LiveQueue::Afxdp(q) => q.poll(max, f),
            LiveQueue::Afpacket(q) => q.poll(max, f),
        }
    }
}

/// Opens the configured backend on `ifname`: one queue per rx queue, or
/// only `queues` (a restart reopens the queues the interface had at
/// start-up; those it no longer has are left out).
pub fn open(
    c: &settings::Capture,
    ifname: &str,
    queues: Option<&[u32]>,
) -> Result<Vec<LiveQueue>, CaptureError> {
    match &c.backend {
        Backend::Afxdp(x) => {
            let mut opts = AfxdpOptions {
                xdp_mode: x.xdp_mode,
                zero_copy: x.zero_copy,
                frames_per_queue: x.frames_per_queue,
                rx_ring: Some(x.rx_ring),
                fill_ring: Some(x.fill_ring),
                promiscuous: c.promiscuous,
                queues: None,
                handshake_times: x.handshake_times,
            };
            if let Some(want) = queues {
                let count = netdev::rx_queue_count(ifname)?;
                let have: Vec<u32> = want.iter().copied().filter(|&q| q < count).collect();
                opts.queues = Some(if have.is_empty() { vec![0] } else { have });
            }
            let opened = open_afxdp(&opts, ifname)?;
            tracing::info!(
                interface = ifname,
                queues = opened.len(),
                zero_copy = opened.iter().all(|q| q.is_zero_copy()),
                "AF_XDP capture attached"
            );
            Ok(opened.into_iter().map(LiveQueue::Afxdp).collect())
        }
        Backend::Afpacket => {
            let opts = AfpacketOptions {
                promiscuous: c.promiscuous,
                workers: queues.map_or(0, |q| q.len() as u32),
                ..AfpacketOptions::default()
            };
            let opened = open_afpacket(&opts, ifname)?;
            tracing::info!(
                interface = ifname,
                sockets = opened.len(),
                "AF_PACKET capture started"
            );
            Ok(opened.into_iter().map(LiveQueue::Afpacket).collect())
        }
    }
}

/// The kernel's index of `ifname`, or `None` when it does not exist.
pub fn ifindex(ifname: &str) -> Option<u32> {
    netdev::ifindex(ifname).ok()
}

/// Whether `ifname` is administratively up (`IFF_UP`) with its link up
/// (operstate `up`, or `unknown` for drivers that do not report one), from
/// sysfs; `None` when the interface does not exist.
pub fn link_up(ifname: &str) -> Option<bool> {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{ifname}/flags")).ok()?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    let oper = std::fs::read_to_string(format!("/sys/class/net/{ifname}/operstate")).ok()?;
    Some(flags & 1 == 1 && matches!(oper.trim(), "up" | "unknown"))
}
