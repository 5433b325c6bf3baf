//! A small NetFlow v9 / IPFIX decoder, for tests and debugging.
//!
//! Template driven: it learns data and options templates from the packets
//! (keyed by source id / observation domain and template id) and decodes
//! the fields this crate exports into [`FlowRecord`]s, skipping any other
//! field. It reads the sampling interval from options data. It allocates
//! (templates, records) and never panics on any input: every length is
//! checked and a bad packet gives a [`DecodeError`].

use std::collections::HashMap;

use super::encode::ie;
use super::{is_icmp, FlowRecord};
use crate::wire::L3Addrs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet or a set ends early.
    Truncated,
    /// Not version 9 or 10.
    Version(u16),
    /// A length field is impossible (set longer than the packet, IPFIX
    /// length not matching, zero-length set).
    Length,
    /// A template is malformed (zero or too many fields, bad scope length).
    Template,
}

/// What one packet held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedPacket {
    pub version: u16,
    /// v9: packet count; IPFIX: data records before this packet.
    pub sequence: u32,
    /// v9 source id / IPFIX observation domain.
    pub domain_id: u32,
    pub export_secs: u32,
    /// v9 only.
    pub sys_uptime_ms: Option<u32>,
    /// v9 only: the header's record count.
    pub count: Option<u16>,
    /// Flow records decoded from data sets.
    pub records: Vec<FlowRecord>,
    /// Options data records seen.
    pub options_records: u32,
    /// Template and options template records seen.
    pub template_records: u32,
    /// Data sets whose template is unknown (skipped).
    pub unknown_sets: u32,
}

#[derive(Clone, Debug)]
struct Template {
    fields: Vec<(u16, u16)>,
    /// How many leading fields are scope fields (options templates).
    scope: usize,
    options: bool,
    len: usize,
}

/// Decoder with its template cache. Make one per collector stream.
#[derive(Default)]
pub struct Decoder {
    templates: HashMap<(u32, u16), Template>,
    /// The last sampling interval announced in options data.
    pub sampling_interval: Option<u32>,
}

struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn u16(&self, at: usize) -> Result<u16, DecodeError> {
        let b = self.0.get(at..at + 2).ok_or(DecodeError::Truncated)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&self, at: usize) -> Result<u32, DecodeError> {
        let b = self.0.get(at..at + 4).ok_or(DecodeError::Truncated)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Big-endian unsigned value of 1..=8 bytes (reduced-size encoding).
fn uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0u64, |v, &x| v << 8 | u64::from(x))
}

impl Decoder {
    pub fn decode(&mut self, pkt: &[u8]) -> Result<DecodedPacket, DecodeError> {
        let rd = Rd(pkt);
        let version = rd.u16(0)?;
        let mut d = DecodedPacket {
            version,
            ..DecodedPacket::default()
        };
        let (hdr_len, end) = match version {
            9 => {
                d.count = Some(rd.u16(2)?);
                d.sys_uptime_ms = Some(rd.u32(4)?);
                d.export_secs = rd.u32(8)?;
                d.sequence = rd.u32(12)?;
                d.domain_id = rd.u32(16)?;
                (20, pkt.len())
            }
            10 => {
                let len = usize::from(rd.u16(2)?);
                if len < 16 || len > pkt.len() {
                    return Err(DecodeError::Length);
                }
                d.export_secs = rd.u32(4)?;
                d.sequence = rd.u32(8)?;
                d.domain_id = rd.u32(12)?;
                (16, len)
            }
            v => return Err(DecodeError::Version(v)),
        };
        let ipfix = version == 10;
        let boot_ms = d
            .sys_uptime_ms
            .map(|up| i128::from(d.export_secs) * 1000 - i128::from(up));
        let mut at = hdr_len;
        while at + 4 <= end {
            let set_id = rd.u16(at)?;
            let set_len = usize::from(rd.u16(at + 2)?);
            if set_len < 4 || at + set_len > end {
                return Err(DecodeError::Length);
            }
            let body = &pkt[at + 4..at + set_len];
            match (ipfix, set_id) {
                (false, 0) | (true, 2) => {
                    self.templates_set(d.domain_id, body, false, ipfix, &mut d)?
                }
                (false, 1) | (true, 3) => {
                    self.templates_set(d.domain_id, body, true, ipfix, &mut d)?
                }
                (_, id) if id >= 256 => match self.templates.get(&(d.domain_id, id)).cloned() {
                    None => d.unknown_sets += 1,
                    Some(t) if t.len == 0 => return Err(DecodeError::Template),
                    Some(t) => {
                        for rec in body.chunks_exact(t.len) {
                            if t.options {
                                d.options_records += 1;
                                let mut off = 0;
                                for (i, &(id, len)) in t.fields.iter().enumerate() {
                                    let len = usize::from(len);
                                    if i >= t.scope && id == ie::SAMPLING_INTERVAL {
                                        self.sampling_interval =
                                            Some(uint(&rec[off..off + len]) as u32);
                                    }
                                    off += len;
                                }
                            } else {
                                d.records.push(data_record(&t.fields, rec, boot_ms));
                            }
                        }
                    }
                },
                _ => {} // reserved set ids: skip
            }
            at += set_len;
        }
        Ok(d)
    }

    fn templates_set(
        &mut self,
        domain: u32,
        body: &[u8],
        options: bool,
        ipfix: bool,
        d: &mut DecodedPacket,
    ) -> Result<(), DecodeError> {
        let rd = Rd(body);
        let mut at = 0;
        // Anything shorter than a template header is padding.
        while at + 4 <= body.len() {
            let tid = rd.u16(at)?;
            if tid == 0 {
                break; // padding (no template has id 0)
            }
            let (nfields, scope, mut p) = if !options {
                (usize::from(rd.u16(at + 2)?), 0, at + 4)
            } else if ipfix {
                (
                    usize::from(rd.u16(at + 2)?),
                    usize::from(rd.u16(at + 4)?),
                    at + 6,
                )
            } else {
                let scope_len = usize::from(rd.u16(at + 2)?);
                let opt_len = usize::from(rd.u16(at + 4)?);
                if scope_len % 4 != 0 || opt_len % 4 != 0 {
                    return Err(DecodeError::Template);
                }
                ((scope_len + opt_len) / 4, scope_len / 4, at + 6)
            };
            if nfields == 0 || scope > nfields || nfields > 512 {
                return Err(DecodeError::Template);
            }
            let mut fields = Vec::with_capacity(nfields);
            for _ in 0..nfields {
                let mut id = rd.u16(p)?;
                let len = rd.u16(p + 2)?;
                p += 4;
                if ipfix && id & 0x8000 != 0 {
                    id &= 0x7fff;
                    p += 4; // enterprise number
                }
                if len == 0xffff {
                    return Err(DecodeError::Template); // variable length: not used here
                }
                fields.push((id, len));
            }
            if p > body.len() {
                return Err(DecodeError::Truncated);
            }
            let len = fields.iter().map(|f| usize::from(f.1)).sum();
            self.templates.insert(
                (domain, tid),
                Template {
                    fields,
                    scope,
                    options,
                    len,
                },
            );
            d.template_records += 1;
            at = p;
        }
        Ok(())
    }
}

fn data_record(fields: &[(u16, u16)], rec: &[u8], boot_ms: Option<i128>) -> FlowRecord {
    let mut r = FlowRecord::default();
    let (mut s4, mut d4, mut s6, mut d6) = (None, None, None, None);
    let mut off = 0;
    let rel = |v: u64| boot_ms.map_or(v, |b| (b + i128::from(v)).max(0) as u64);
    for &(id, len) in fields {
        let len = usize::from(len);
        let b = &rec[off..off + len];
        off += len;
        let v = uint(b);
        match id {
            ie::BYTES => r.bytes = v,
            ie::PACKETS => r.packets = v,
            ie::PROTOCOL => r.key.protocol = v as u8,
            ie::TOS => r.key.tos = v as u8,
            ie::TCP_FLAGS => r.tcp_flags = v as u8,
            ie::SRC_PORT => r.key.src_port = v as u16,
            ie::DST_PORT => r.key.dst_port = v as u16,
            ie::INPUT_IF => r.key.iface = v as u16,
            ie::VLAN => r.key.vlan = v as u16,
            ie::DIRECTION => r.direction = v as u8,
            ie::FIRST_SWITCHED => r.first_ms = rel(v),
            ie::LAST_SWITCHED => r.last_ms = rel(v),
            ie::FLOW_START_MS => r.first_ms = v,
            ie::FLOW_END_MS => r.last_ms = v,
            ie::SRC_V4 => s4 = <[u8; 4]>::try_from(b).ok(),
            ie::DST_V4 => d4 = <[u8; 4]>::try_from(b).ok(),
            ie::SRC_V6 => s6 = <[u8; 16]>::try_from(b).ok(),
            ie::DST_V6 => d6 = <[u8; 16]>::try_from(b).ok(),
            _ => {}
        }
    }
    r.key.addrs = match (s4, d4, s6, d6) {
        (Some(src), Some(dst), _, _) => L3Addrs::V4 { src, dst },
        (_, _, Some(src), Some(dst)) => L3Addrs::V6 { src, dst },
        _ => L3Addrs::None,
    };
    if is_icmp(r.key.protocol) {
        r.key.src_port = r.key.dst_port >> 8;
        r.key.dst_port &= 0xff;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(d.decode(&[0, 5, 0, 0]), Err(DecodeError::Version(5)));
        assert_eq!(
            d.decode(&[0, 10, 0, 200, 0, 0, 0, 0]),
            Err(DecodeError::Length)
        );
        // Every prefix and a few corruptions of a real packet.
        let mut x = 0x1234_5678u32;
        let mut pkt = [0xa5u8; 200];
        pkt[..2].copy_from_slice(&[0, 9]);
        for n in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let i = x as usize % pkt.len();
            pkt[i] = (x >> 8) as u8;
            pkt[0..2].copy_from_slice(if n % 2 == 0 { &[0, 9] } else { &[0, 10] });
            let _ = d.decode(&pkt[..(x as usize >> 3) % pkt.len()]);
        }
    }

    /// A v9 packet written by hand from RFC 3954's layout.
    #[test]
    fn decodes_hand_made_v9() {
        #[rustfmt::skip]
        let pkt: &[u8] = &[
            0, 9, 0, 2, 0, 0, 0x03, 0xe8, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 7, 0, 0, 0, 1,
            0, 0, 0, 20, 1, 0, 0, 3, 0, 8, 0, 4, 0, 12, 0, 4, 0, 2, 0, 4, // template 256: src, dst, pkts(4)
            1, 0, 0, 16, 10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 9, // one record
        ];
        let mut d = Decoder::default();
        let p = d.decode(pkt).unwrap_or_default();
        assert_eq!(
            (p.sequence, p.domain_id, p.count, p.sys_uptime_ms),
            (7, 1, Some(2), Some(1000))
        );
        assert_eq!(p.records.len(), 1);
        assert_eq!(
            p.records[0].key.addrs,
            L3Addrs::V4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2]
            }
        );
        assert_eq!(p.records[0].packets, 9);
    }
}
