//! NetFlow v5: a 24-byte header and `count` fixed 48-byte records.
//!
//! ```text
//! header: version(2)=5 count(2) sys_uptime(4) unix_secs(4) unix_nsecs(4)
//!         flow_sequence(4) engine_type(1) engine_id(1) sampling_interval(2)
//! record: srcaddr(4) dstaddr(4) nexthop(4) input(2) output(2) dPkts(4)
//!         dOctets(4) first(4) last(4) srcport(2) dstport(2) pad(1)
//!         tcp_flags(1) prot(1) tos(1) src_as(2) dst_as(2) src_mask(1)
//!         dst_mask(1) pad(2)
//! ```
//!
//! `flow_sequence` counts flows, per (engine type, engine id). The sampling
//! interval is the low 14 bits (the top 2 are the mode); 0 means unknown.
//! No allocation, no panic, no unsafe.

use super::exporters::SeqUnit;
use super::sequence::{StreamKey, StreamKind};
use super::{
    be16, be32, fix_icmp_ports, ByteLayer, Collector, DropReason, ExporterId, FlowProtocol,
    FlowRecord, RateHint,
};
use crate::wire::L3Addrs;

pub(crate) const HEADER_LEN: usize = 24;
pub(crate) const RECORD_LEN: usize = 48;

impl Collector {
    pub(super) fn netflow5(
        &mut self,
        ex: ExporterId,
        data: &[u8],
        out: &mut impl FnMut(&FlowRecord),
    ) {
        if data.len() < HEADER_LEN {
            self.stats.drop(DropReason::Truncated, 1);
            return;
        }
        let h = |at| be32(data, at).unwrap_or(0);
        let count = usize::from(be16(data, 2).unwrap_or(0));
        let uptime = h(4);
        let unix_secs = h(8);
        let unix_nsecs = h(12);
        let seq = h(16);
        let engine = u32::from(be16(data, 20).unwrap_or(0));
        let interval = be16(data, 22).unwrap_or(0) & 0x3fff;
        let body = &data[HEADER_LEN..];
        let fits = body.len() / RECORD_LEN;
        if count > fits {
            self.stats.drop(DropReason::Truncated, 1);
            if fits == 0 {
                return;
            }
        }
        let n = count.min(fits);
        let e = self.exporters.get_mut(ex);
        if let Err(r) = e.sequence(
            StreamKey::simple(StreamKind::V5, engine),
            seq,
            n as u32,
            SeqUnit::Records,
        ) {
            self.stats.drop(r, 1);
        }
        let base_ms = u64::from(unix_secs) * 1000 + u64::from(unix_nsecs / 1_000_000);
        let to_unix = |t: u32| base_ms.saturating_sub(u64::from(uptime.wrapping_sub(t)));
        let own = (interval > 0).then_some(u32::from(interval));
        for r in body.chunks_exact(RECORD_LEN).take(n) {
            let g32 = |at| be32(r, at).unwrap_or(0);
            let g16 = |at| be16(r, at).unwrap_or(0);
            let mut src = [0u8; 4];
            let mut dst = [0u8; 4];
            src.copy_from_slice(&r[0..4]);
            dst.copy_from_slice(&r[4..8]);
            let mut rec = FlowRecord {
                exporter: ex,
                addrs: L3Addrs::V4 { src, dst },
                input_if: u32::from(g16(12)),
                output_if: u32::from(g16(14)),
                packets: u64::from(g32(16)),
                l3_bytes: u64::from(g32(20)),
                l3_exact: true,
                reported_layer: ByteLayer::L3,
                first_ms: to_unix(g32(24)),
                last_ms: to_unix(g32(28)),
                src_port: g16(32),
                dst_port: g16(34),
                tcp_flags: r[37],
                protocol: r[38],
                tos: r[39],
                src_as: u32::from(g16(40)),
                dst_as: u32::from(g16(42)),
                ..FlowRecord::default()
            };
            fix_icmp_ports(&mut rec);
            let rate = self.resolve_rate(ex, engine, RateHint { own, sampler: None });
            self.emit(FlowProtocol::NetflowV5, rate, &mut rec, out);
        }
    }
}
