//! Kernel-side counters of the live backends, one snapshot per capture queue,
//! and their Prometheus rendering.
//!
//! Loss is never silent: every way the kernel can drop a frame before a
//! worker sees it has a `reason` label here. Reading a snapshot costs a few
//! syscalls (a BPF map look-up, a getsockopt), done only at scrape time from
//! the metrics thread; the workers never wait for it.
//!
//! Allocates per scrape (label strings, metric families); no unsafe; no panics.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Metric, MetricFamily};

use crate::metrics::catalogue::{self as cat, counter, label, Family};

/// Why the kernel dropped a frame before a worker could see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// AF_XDP: the XDP program found no socket for the rx queue and passed
    /// the frame to the network stack (counted by the BPF program).
    NoSocket,
    /// AF_XDP: the fill ring was empty (the worker fell behind returning
    /// buffers). `rx_fill_ring_empty_descs` of XDP_STATISTICS.
    FillRingEmpty,
    /// AF_XDP: the rx ring was full. `rx_ring_full` of XDP_STATISTICS.
    RxRingFull,
    /// AF_XDP: other drops counted in `rx_dropped` (e.g. a frame larger than
    /// the UMEM frame): `rx_dropped` minus `rx_fill_ring_empty_descs`.
    Other,
    /// The kernel handed over a frame whose bytes lie outside the shared
    /// memory (AF_XDP: a descriptor outside its UMEM chunk; AF_PACKET: a
    /// frame header pointing past its ring block). A kernel or driver bug,
    /// not traffic; the frame was not read.
    InvalidDesc,
    /// AF_PACKET: the TPACKET_V3 ring had no free block (`tp_drops`).
    RingFull,
}

impl DropReason {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoSocket => "no_socket",
            DropReason::FillRingEmpty => "fill_ring_empty",
            DropReason::RxRingFull => "rx_ring_full",
            DropReason::Other => "other",
            DropReason::InvalidDesc => "invalid_desc",
            DropReason::RingFull => "ring_full",
        }
    }
}

/// Counters of one capture queue (AF_XDP socket or AF_PACKET fanout member),
/// all monotonic since the queue was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Interface name.
    pub interface: String,
    /// Rx queue (AF_XDP) or fanout member index (AF_PACKET).
    pub queue: u32,
    /// Frames the kernel saw for this queue before handing them on: the XDP
    /// program's count for AF_XDP, `tp_packets` (which includes `tp_drops`)
    /// for AF_PACKET.
    pub frames_seen: u64,
    /// Bytes of those frames, when the backend knows them (AF_XDP only).
    pub bytes_seen: Option<u64>,
    /// Frames the worker took off the ring.
    pub frames_received: u64,
    /// Drops, by reason. Reasons that cannot occur for the backend are absent.
    pub dropped: Vec<(DropReason, u64)>,
    /// AF_XDP `rx_invalid_descs`: descriptors the kernel rejected (a bug
    /// here, not traffic); not a frame drop.
    pub invalid_descs: u64,
}

impl QueueStats {
    /// Frames lost on the way to the worker, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|&(_, n)| n).sum()
    }
}

/// Something that can take a `QueueStats` snapshot from any thread.
pub trait QueueStatsSource: Send + Sync {
    /// A fresh snapshot. Errors reading kernel counters leave the last known
    /// values in place rather than failing the scrape.
    fn stats(&self) -> QueueStats;
}

/// Prometheus collector over the live capture queues. Register one per
/// process; it renders
///
/// - `xdpacct_queue_frames_seen_total{interface,queue}`
/// - `xdpacct_queue_bytes_seen_total{interface,queue}` (AF_XDP)
/// - `xdpacct_queue_frames_received_total{interface,queue}`
/// - `xdpacct_queue_dropped_total{interface,queue,reason}`
/// - `xdpacct_queue_invalid_descs_total{interface,queue}` (AF_XDP)
pub struct CaptureCollector {
    sources: Vec<Arc<dyn QueueStatsSource>>,
    descs: Vec<Desc>,
}

/// The families, in the order `collect` fills them.
const FAMILIES: [&Family; 5] = [
    &cat::QUEUE_FRAMES_SEEN,
    &cat::QUEUE_BYTES_SEEN,
    &cat::QUEUE_FRAMES_RECEIVED,
    &cat::QUEUE_DROPPED,
    &cat::QUEUE_INVALID_DESCS,
];

impl CaptureCollector {
    /// A collector over `sources` (one per capture queue).
    pub fn new(sources: Vec<Arc<dyn QueueStatsSource>>) -> Self {
        let descs = FAMILIES.iter().map(|f| f.desc()).collect();
        CaptureCollector { sources, descs }
    }

    /// Snapshots of every queue, in registration order.
    pub fn snapshot(&self) -> Vec<QueueStats> {
        self.sources.iter().map(|s| s.stats()).collect()
    }
}

impl Collector for CaptureCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut metrics: [Vec<Metric>; 5] = Default::default();
        for s in self.snapshot() {
            let base = || {
                vec![
                    label("interface", s.interface.as_str()),
                    label("queue", s.queue.to_string()),
                ]
            };
            metrics[0].push(counter(base(), s.frames_seen));
            if let Some(bytes) = s.bytes_seen {
                metrics[1].push(counter(base(), bytes));
            }
            metrics[2].push(counter(base(), s.frames_received));
            for &(reason, n) in &s.dropped {
                let mut labels = base();
                labels.push(label("reason", reason.as_str()));
                metrics[3].push(counter(labels, n));
            }
            if s.bytes_seen.is_some() {
                metrics[4].push(counter(base(), s.invalid_descs));
            }
        }
        FAMILIES
            .iter()
            .zip(metrics)
            .filter(|(_, m)| !m.is_empty())
            .map(|(f, m)| f.family(m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(QueueStats);
    impl QueueStatsSource for Fixed {
        fn stats(&self) -> QueueStats {
            self.0.clone()
        }
    }

    #[test]
    fn renders_every_reason_with_labels() {
        let s = QueueStats {
            interface: "eth1".into(),
            queue: 3,
            frames_seen: 10,
            bytes_seen: Some(640),
            frames_received: 7,
            dropped: vec![(DropReason::NoSocket, 1), (DropReason::FillRingEmpty, 2)],
            invalid_descs: 0,
        };
        assert_eq!(s.dropped_total(), 3);
        let c = CaptureCollector::new(vec![Arc::new(Fixed(s))]);
        let reg = prometheus::Registry::new();
        reg.register(Box::new(c)).unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&reg.gather())
            .unwrap();
        assert!(
            text.contains(r#"xdpacct_queue_frames_seen_total{interface="eth1",queue="3"} 10"#),
            "{text}"
        );
        assert!(text.contains(r#"xdpacct_queue_dropped_total{interface="eth1",queue="3",reason="fill_ring_empty"} 2"#), "{text}");
        assert!(
            text.contains(r#"xdpacct_queue_bytes_seen_total{interface="eth1",queue="3"} 640"#),
            "{text}"
        );
    }
}
