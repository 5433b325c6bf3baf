//! sFlow v5 (sflow.org/sflow_version_5.txt): flow samples (compact and
//! expanded) and generic interface counter samples.
//!
//! ```text
//! datagram: version(4)=5 agent_type(4) agent(4|16) sub_agent(4) sequence(4)
//!           uptime(4) samples(4) {tag(4)=enterprise<<12|format length(4) body}*
//! flow sample (0:1):  seq source_id rate pool drops input output records
//! flow sample (0:3):  seq src_type src_index rate pool drops
//!                     in_format in_value out_format out_value records
//! counters (0:2):     seq source_id records;  (0:4): seq src_type src_index records
//! record:             tag(4) length(4) body
//!   flow 0:1 raw header: protocol frame_length stripped header_length header (padded to 4)
//!   flow 0:3 IPv4 data, 0:4 IPv6 data, 0:1001 extended switch, 0:1003 extended gateway
//!   counter 0:1 generic interface counters (88 bytes)
//! ```
//!
//! - Each flow sample is one [`FlowRecord`] of one packet, scaled by the
//!   sample's rate. The raw header goes through [`crate::wire::parse_frame`],
//!   so every encapsulation it knows (VLAN, QinQ, MPLS, PPPoE, IPv6
//!   extension headers) works here too. IPv4 / IPv6 headers (header
//!   protocols 11 and 12) get a stand-in Ethernet header in a stack buffer.
//! - Bytes: `frame_length` includes the FCS (spec, sampled_header), so
//!   `l2_bytes = frame_length - 4` and `l3_bytes` is the IP length from the
//!   header, both exact for Ethernet headers.
//! - Sequences: datagrams per (agent, sub-agent), flow and counter samples
//!   per (agent, sub-agent, source id); the agent's `drops` running total
//!   adds to `lost_samples`.
//! - Counter samples update [`InterfaceCounters`] per (exporter, ifIndex).
//!
//! No allocation per sample (a new counter entry allocates), no panic on
//! any input, no unsafe.

use std::collections::HashMap;

use super::exporters::SeqUnit;
use super::sequence::{StreamKey, StreamKind};
use super::{
    be32, be64, ByteLayer, Collector, DropReason, ExporterId, FlowProtocol, FlowRecord, RateHint,
    FCS_LEN,
};
use crate::wire::{parse_frame, FrameFacts, L3Addrs};

/// Raw header bytes looked at (longer headers are cut; agents send 128).
const MAX_HEADER: usize = 256;

/// Generic interface counters (counter record 0:1), the latest sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub if_index: u32,
    pub if_type: u32,
    /// Bits per second.
    pub if_speed: u64,
    /// 0 unknown, 1 full duplex, 2 half, 3 in, 4 out.
    pub if_direction: u32,
    /// Bit 0 admin up, bit 1 oper up.
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast_pkts: u32,
    pub in_multicast_pkts: u32,
    pub in_broadcast_pkts: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast_pkts: u32,
    pub out_multicast_pkts: u32,
    pub out_broadcast_pkts: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous: u32,
    /// Counter samples received for this interface.
    pub samples: u64,
}

const GENERIC_COUNTERS_LEN: usize = 88;

impl InterfaceCounters {
    fn parse(b: &[u8]) -> Option<InterfaceCounters> {
        if b.len() < GENERIC_COUNTERS_LEN {
            return None;
        }
        let g = |at| be32(b, at).unwrap_or(0);
        let g64 = |at| be64(b, at).unwrap_or(0);
        Some(InterfaceCounters {
            if_index: g(0),
            if_type: g(4),
            if_speed: g64(8),
            if_direction: g(16),
            if_status: g(20),
            in_octets: g64(24),
            in_ucast_pkts: g(32),
            in_multicast_pkts: g(36),
            in_broadcast_pkts: g(40),
            in_discards: g(44),
            in_errors: g(48),
            in_unknown_protos: g(52),
            out_octets: g64(56),
            out_ucast_pkts: g(64),
            out_multicast_pkts: g(68),
            out_broadcast_pkts: g(72),
            out_discards: g(76),
            out_errors: g(80),
            promiscuous: g(84),
            samples: 0,
        })
    }
}

/// Latest counters per (exporter, ifIndex), capped.
#[derive(Default)]
pub(crate) struct CounterTable {
    map: HashMap<(ExporterId, u32), InterfaceCounters>,
}

impl CounterTable {
    fn update(&mut self, ex: ExporterId, c: InterfaceCounters, max: usize) -> bool {
        if let Some(old) = self.map.get_mut(&(ex, c.if_index)) {
            let samples = old.samples + 1;
            *old = InterfaceCounters { samples, ..c };
            return true;
        }
        if self.map.len() >= max {
            return false;
        }
        self.map
            .insert((ex, c.if_index), InterfaceCounters { samples: 1, ..c });
        true
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (ExporterId, &InterfaceCounters)> {
        self.map.iter().map(|(k, v)| (k.0, v))
    }

    pub(super) fn forget_exporter(&mut self, id: ExporterId) {
        self.map.retain(|k, _| k.0 != id);
    }
}

/// Interface from a compact sample's input/output word: format 0 is an
/// ifIndex (0x3fffffff unknown); discards and multiple interfaces give 0.
#[inline]
fn compact_if(v: u32) -> u32 {
    if v >> 30 == 0 && v & 0x3fff_ffff != 0x3fff_ffff {
        v & 0x3fff_ffff
    } else {
        0
    }
}

/// Who sent the samples: the agent and sub-agent.
#[derive(Clone, Copy)]
struct Agent {
    addr: [u8; 16],
    sub: u32,
}

impl Agent {
    fn key(&self, kind: StreamKind, source: u32) -> StreamKey {
        StreamKey {
            kind,
            domain: self.sub,
            source,
            agent: self.addr,
        }
    }
}

impl Collector {
    pub(super) fn sflow(&mut self, ex: ExporterId, data: &[u8], out: &mut impl FnMut(&FlowRecord)) {
        let g = |at| be32(data, at);
        let Some(agent_type) = g(4) else {
            self.stats.drop(DropReason::Truncated, 1);
            return;
        };
        let mut addr = [0u8; 16];
        let alen = match agent_type {
            1 => 4,
            2 => 16,
            _ => {
                self.stats.drop(DropReason::BadLength, 1);
                return;
            }
        };
        let Some(a) = data.get(8..8 + alen) else {
            self.stats.drop(DropReason::Truncated, 1);
            return;
        };
        addr[..alen].copy_from_slice(a);
        let at = 8 + alen;
        let (Some(sub), Some(seq), Some(_uptime), Some(nsamples)) =
            (g(at), g(at + 4), g(at + 8), g(at + 12))
        else {
            self.stats.drop(DropReason::Truncated, 1);
            return;
        };
        let agent = Agent { addr, sub };
        self.sflow_seq(
            ex,
            agent.key(StreamKind::SflowDatagrams, 0),
            seq,
            SeqUnit::Datagrams,
        );
        let mut off = at + 16;
        for _ in 0..nsamples {
            let (Some(tag), Some(len)) = (g(off), g(off + 4)) else {
                self.stats.drop(DropReason::Truncated, 1);
                return;
            };
            let len = len as usize;
            let Some(body) = data.get(off + 8..(off + 8).saturating_add(len)) else {
                self.stats.drop(DropReason::BadLength, 1);
                return;
            };
            off += 8 + len;
            match tag {
                1 => self.flow_sample(ex, agent, body, false, out),
                3 => self.flow_sample(ex, agent, body, true, out),
                2 => self.counter_sample(ex, agent, body, false),
                4 => self.counter_sample(ex, agent, body, true),
                _ => self.stats.drop(DropReason::UnsupportedSample, 1),
            }
        }
        if off < data.len() {
            // More bytes than the samples claimed.
            self.stats.drop(DropReason::BadLength, 1);
        }
    }

    fn sflow_seq(&mut self, ex: ExporterId, key: StreamKey, seq: u32, unit: SeqUnit) {
        if let Err(r) = self.exporters.get_mut(ex).sequence(key, seq, 1, unit) {
            self.stats.drop(r, 1);
        }
    }

    fn flow_sample(
        &mut self,
        ex: ExporterId,
        agent: Agent,
        b: &[u8],
        expanded: bool,
        out: &mut impl FnMut(&FlowRecord),
    ) {
        let g = |at| be32(b, at);
        let fixed = if expanded { 44 } else { 32 };
        if b.len() < fixed {
            self.stats.drop(DropReason::BadSample, 1);
            return;
        }
        let v = |at| g(at).unwrap_or(0);
        let (seq, source, rate, drops, input, output, nrec) = if expanded {
            let source = (v(4) << 24) | (v(8) & 0x00ff_ffff);
            let input = if v(24) == 0 { v(28) } else { 0 };
            let output = if v(32) == 0 { v(36) } else { 0 };
            (v(0), source, v(12), v(20), input, output, v(40))
        } else {
            (
                v(0),
                v(4),
                v(8),
                v(16),
                compact_if(v(20)),
                compact_if(v(24)),
                v(28),
            )
        };
        self.sflow_seq(
            ex,
            agent.key(StreamKind::SflowFlowSamples, source),
            seq,
            SeqUnit::Samples,
        );
        if let Err(r) = self
            .exporters
            .get_mut(ex)
            .sflow_drops(agent.key(StreamKind::SflowDrops, source), drops)
        {
            self.stats.drop(r, 1);
        }
        let mut rec = FlowRecord {
            exporter: ex,
            input_if: input,
            output_if: output,
            packets: 1,
            ..FlowRecord::default()
        };
        let mut have_packet = false;
        for record in Records::new(b, fixed, nrec) {
            let Some((tag, r)) = record else {
                self.stats.drop(DropReason::BadSample, 1);
                return;
            };
            match tag {
                1 if !have_packet => match self.raw_header(r, &mut rec) {
                    Some(()) => have_packet = true,
                    None => return,
                },
                3 if !have_packet => {
                    if r.len() < 32 {
                        self.stats.drop(DropReason::BadSample, 1);
                        return;
                    }
                    let mut src = [0; 4];
                    let mut dst = [0; 4];
                    src.copy_from_slice(&r[8..12]);
                    dst.copy_from_slice(&r[12..16]);
                    sampled_ip(&mut rec, r, L3Addrs::V4 { src, dst }, 16);
                    have_packet = true;
                }
                4 if !have_packet => {
                    if r.len() < 56 {
                        self.stats.drop(DropReason::BadSample, 1);
                        return;
                    }
                    let mut src = [0; 16];
                    let mut dst = [0; 16];
                    src.copy_from_slice(&r[8..24]);
                    dst.copy_from_slice(&r[24..40]);
                    sampled_ip(&mut rec, r, L3Addrs::V6 { src, dst }, 40);
                    have_packet = true;
                }
                1..=4 => {} // a second description of the same packet
                1001 => {
                    // Extended switch: src_vlan, src_priority, dst_vlan, dst_priority.
                    if rec.vlan == 0 {
                        rec.vlan = (be32(r, 0).unwrap_or(0) & 0x0fff) as u16;
                    }
                }
                1003 => gateway(&mut rec, r),
                _ => self.stats.sflow_records_skipped += 1,
            }
        }
        if !have_packet {
            // Counted as a packet of unknown size and addresses.
            self.stats.drop(DropReason::UnsupportedSample, 1);
        }
        let rate = self.resolve_rate(
            ex,
            agent.sub,
            RateHint {
                own: Some(rate),
                sampler: None,
            },
        );
        self.emit(FlowProtocol::SflowV5, rate, &mut rec, out);
    }

    /// A raw packet header record into `rec`; None (counted) when its
    /// lengths are impossible.
    fn raw_header(&mut self, r: &[u8], rec: &mut FlowRecord) -> Option<()> {
        let (Some(proto), Some(frame_len), Some(_stripped), Some(hlen)) =
            (be32(r, 0), be32(r, 4), be32(r, 8), be32(r, 12))
        else {
            self.stats.drop(DropReason::BadSample, 1);
            return None;
        };
        let hlen = hlen as usize;
        let Some(header) = r.get(16..16usize.saturating_add(hlen)) else {
            self.stats.drop(DropReason::BadSample, 1);
            return None;
        };
        let mut facts = FrameFacts::default();
        let frame_len = u64::from(frame_len);
        let res = match proto {
            1 => {
                let res = parse_frame(header, &mut facts);
                rec.l2_bytes = frame_len.saturating_sub(FCS_LEN);
                rec.l2_exact = true;
                rec.reported_layer = ByteLayer::L2Fcs;
                rec.l3_bytes = u64::from(facts.ip_len);
                rec.l3_exact = true;
                res
            }
            11 | 12 => {
                let mut buf = [0u8; 14 + MAX_HEADER];
                let n = header.len().min(MAX_HEADER);
                buf[12..14].copy_from_slice(if proto == 11 {
                    &[0x08, 0x00]
                } else {
                    &[0x86, 0xdd]
                });
                buf[14..14 + n].copy_from_slice(&header[..n]);
                let res = parse_frame(&buf[..14 + n], &mut facts);
                rec.l3_bytes = frame_len;
                rec.l3_exact = true;
                rec.reported_layer = ByteLayer::L3;
                res
            }
            _ => {
                self.stats.drop(DropReason::UnsupportedSample, 1);
                // A frame length of some other link layer: taken as an
                // estimate of the IP bytes (l2 is then derived from it).
                rec.reported_layer = ByteLayer::L2;
                rec.l3_bytes = frame_len;
                rec.l3_exact = false;
                return Some(());
            }
        };
        if let Err(e) = res {
            self.stats.sflow_header_errors[e as usize] += 1;
        }
        rec.addrs = facts.addrs;
        rec.protocol = facts.protocol;
        rec.tos = facts.tos;
        rec.src_port = facts.src_port;
        rec.dst_port = facts.dst_port;
        rec.tcp_flags = facts.tcp_flags;
        if facts.vlan != 0 {
            rec.vlan = facts.vlan;
        }
        Some(())
    }

    fn counter_sample(&mut self, ex: ExporterId, agent: Agent, b: &[u8], expanded: bool) {
        let g = |at| be32(b, at);
        let fixed = if expanded { 16 } else { 12 };
        if b.len() < fixed {
            self.stats.drop(DropReason::BadSample, 1);
            return;
        }
        let v = |at| g(at).unwrap_or(0);
        let (seq, source, nrec) = if expanded {
            (v(0), (v(4) << 24) | (v(8) & 0x00ff_ffff), v(12))
        } else {
            (v(0), v(4), v(8))
        };
        self.sflow_seq(
            ex,
            agent.key(StreamKind::SflowCounterSamples, source),
            seq,
            SeqUnit::CounterSamples,
        );
        for record in Records::new(b, fixed, nrec) {
            let Some((tag, r)) = record else {
                self.stats.drop(DropReason::BadSample, 1);
                return;
            };
            if tag != 1 {
                self.stats.sflow_records_skipped += 1;
                continue;
            }
            let Some(c) = InterfaceCounters::parse(r) else {
                self.stats.drop(DropReason::BadSample, 1);
                continue;
            };
            self.stats.sflow_counter_records += 1;
            if !self
                .counters
                .update(ex, c, self.cfg.limits.max_interface_counters)
            {
                self.stats.drop(DropReason::CounterLimit, 1);
            }
        }
    }
}

/// The `n` records (tag, length, body) of a flow or counter sample from
/// `off`: `Some((tag, body))`, or one `None` where a record runs past the
/// sample (then nothing more).
struct Records<'a> {
    b: &'a [u8],
    off: usize,
    left: u32,
}

impl<'a> Records<'a> {
    fn new(b: &'a [u8], off: usize, n: u32) -> Self {
        Records { b, off, left: n }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Option<(u32, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let off = self.off;
        let (Some(tag), Some(len)) = (be32(self.b, off), be32(self.b, off + 4)) else {
            self.left = 0;
            return Some(None);
        };
        let Some(r) = self.b.get(off + 8..(off + 8).saturating_add(len as usize)) else {
            self.left = 0;
            return Some(None);
        };
        self.off = off + 8 + r.len();
        Some(Some((tag, r)))
    }
}

/// Sampled IPv4/IPv6 data (flow records 0:3 / 0:4): `length` is the IP
/// packet length; ports, flags and ToS follow the addresses at `at`.
fn sampled_ip(rec: &mut FlowRecord, r: &[u8], addrs: L3Addrs, at: usize) {
    let v = |o| be32(r, o).unwrap_or(0);
    rec.addrs = addrs;
    rec.l3_bytes = u64::from(v(0));
    rec.l3_exact = true;
    rec.reported_layer = ByteLayer::L3;
    rec.protocol = v(4) as u8;
    rec.src_port = v(at) as u16;
    rec.dst_port = v(at + 4) as u16;
    rec.tcp_flags = v(at + 8) as u8;
    rec.tos = v(at + 12) as u8;
}

/// Extended gateway (0:1003): source AS, and the destination AS as the
/// last AS of the path (the router's own AS when the path is empty).
fn gateway(rec: &mut FlowRecord, r: &[u8]) {
    let v = |o| be32(r, o);
    let alen = match v(0) {
        Some(1) => 4,
        Some(2) => 16,
        _ => return,
    };
    let at = 4 + alen;
    let (Some(own_as), Some(src_as), Some(_peer), Some(nseg)) =
        (v(at), v(at + 4), v(at + 8), v(at + 12))
    else {
        return;
    };
    rec.src_as = src_as;
    let mut dst = own_as;
    let mut off = at + 16;
    for _ in 0..nseg.min(64) {
        let (Some(_ty), Some(n)) = (v(off), v(off + 4)) else {
            return;
        };
        let n = n.min(1024) as usize;
        if n > 0 {
            match v(off + 8 + 4 * (n - 1)) {
                Some(last) => dst = last,
                None => return,
            }
        }
        off += 8 + 4 * n;
    }
    rec.dst_as = dst;
}
