//! Flow export: per-shard flow caches, NetFlow v9 / IPFIX encoders and the
//! exporter thread.
//!
//! ```text
//! worker (shard q)                                exporter thread
//!   FlowCache::update   per frame  ──┐
//!   FlowCache::expire   per batch  ──┴► FlowSink ══ bounded channel ══► Encoder ─► UDP collectors
//!                                       (batches of 256,               (v9 or IPFIX,
//!                                        try_send, drop+count)          MTU-sized packets)
//! ```
//!
//! - [`cache`]: `FlowCache`, one per shard, owned by its worker; allocates
//!   only at construction.
//! - [`sink`]: `FlowSink`, the worker's end of the channel; allocates a
//!   batch `Vec` only when the exporter has not handed one back.
//! - [`encode`]: NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) packet builder.
//! - [`decode`]: a small template-driven decoder for both formats, for
//!   tests and debugging (allocates; never panics on any input).
//! - [`exporter`]: the exporter thread and its UDP collectors.
//! - [`metrics`]: a `prometheus` `Collector` over the export counters.
//! - [`connections`]: the busiest connections (`[connections] top`), a
//!   view of the caches built during their expiry sweep.
//! - [`observer`]: `FlowExport` (set-up from `[netflow]`) and
//!   `FlowObserver`, the worker's `FrameObserver` feeding one shard's cache.
//!
//! No unsafe code. Nothing here panics on packet contents.

pub mod cache;
pub mod connections;
#[cfg(any(test, feature = "testkit"))]
pub mod decode;
pub mod encode;
pub mod exporter;
pub mod metrics;
pub mod observer;
pub mod sink;

pub use cache::{FlowCache, FlowCacheConfig, FlowCounts, FlowStats};
pub use encode::{Encoder, EncoderConfig, Version};
pub use exporter::{ExportClock, ExportError, ExporterConfig, ExporterStats, FlowExporter};
pub use metrics::FlowMetrics;
pub use observer::{FlowExport, FlowObserver};
pub use sink::FlowSink;

use crate::wire::{FrameFacts, L3Addrs};

/// IP protocol numbers whose "ports" are ICMP type (src) and code (dst).
pub(crate) const fn is_icmp(protocol: u8) -> bool {
    protocol == 1 || protocol == 58
}

/// TCP FIN and RST: a flow that carries either is exported at once.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_RST: u8 = 0x04;

/// What identifies a flow. Addresses are never `L3Addrs::None` in a record.
///
/// For ICMP / ICMPv6, `src_port` holds the type and `dst_port` the code, as
/// in [`FrameFacts`]; the encoders put them on the wire the Cisco way
/// (source port 0, destination port `type << 8 | code`) and the decoder
/// undoes that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Ingress interface index (exported as INPUT_SNMP / ingressInterface).
    pub iface: u16,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    pub addrs: L3Addrs,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// IPv4 ToS / IPv6 traffic class.
    pub tos: u8,
}

impl FlowKey {
    /// The key of a parsed frame. `facts.addrs` should not be `None`.
    #[inline]
    pub fn from_facts(iface: u16, facts: &FrameFacts) -> Self {
        FlowKey {
            iface,
            vlan: facts.vlan,
            addrs: facts.addrs,
            protocol: facts.protocol,
            src_port: facts.src_port,
            dst_port: facts.dst_port,
            tos: facts.tos,
        }
    }

    pub fn is_v6(&self) -> bool {
        matches!(self.addrs, L3Addrs::V6 { .. })
    }
}

/// One expired flow, as it leaves a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub packets: u64,
    /// Bytes as counted by the caller of `FlowCache::update` (layer-2 wire
    /// length by default, see ARCHITECTURE.md "Byte accounting").
    pub bytes: u64,
    /// Unix time in milliseconds of the first and last frame.
    pub first_ms: u64,
    pub last_ms: u64,
    /// OR of the TCP flags of all frames; 0 for other protocols.
    pub tcp_flags: u8,
    /// Direction of the first frame, exported as DIRECTION / flowDirection
    /// (by convention 0 = ingress, 1 = egress; the caller chooses).
    pub direction: u8,
}
