//! pcapng, walked in place: sections (SHB) in either byte order and any
//! number of them, interfaces (IDB: link type, snap length, `if_tsresol` and
//! `if_tsoffset` for timestamps), Enhanced, Simple and obsolete Packet
//! Blocks; every other block is skipped by its length.
//!
//! Every block's length is checked (at least 12, a multiple of 4, inside the
//! file, equal to its trailing copy); the first block that fails is the
//! damage point. Allocates only when an IDB adds an interface (never per
//! packet); never panics on any bytes.

use super::{DamageReason, Record, Step, MAX_CAPLEN};

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
/// Obsolete Packet Block.
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// IDB options used here.
const OPT_END: u16 = 0;
const OPT_TSRESOL: u16 = 9;
const OPT_TSOFFSET: u16 = 14;

/// Is this the start of a pcapng file?
pub(super) fn is_pcapng(data: &[u8]) -> bool {
    data.get(..4) == Some(&SHB.to_le_bytes())
}

/// Why a pcapng file is refused before its first block is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PcapNgHeaderError {
    #[error("not a pcapng file: its first block is not a section header")]
    NotASection,
    #[error("bad pcapng section header: {0}")]
    Section(DamageReason),
}

/// Timestamp units of an interface, as a conversion to nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsScale {
    /// 10^-k s with k <= 9: multiply.
    Mul(u64),
    /// 10^-k s with k > 9: divide.
    Div(u64),
    /// 2^-k s.
    Bin(u32),
}

impl TsScale {
    /// From an `if_tsresol` byte.
    fn from_tsresol(v: u8) -> Self {
        if v & 0x80 != 0 {
            return TsScale::Bin((v & 0x7f) as u32);
        }
        let k = v as u32;
        if k <= 9 {
            TsScale::Mul(10u64.pow(9 - k))
        } else {
            TsScale::Div(10u64.checked_pow(k - 9).unwrap_or(u64::MAX))
        }
    }

    #[inline]
    fn to_ns(self, ts: u64) -> u64 {
        match self {
            TsScale::Mul(m) => ts.saturating_mul(m),
            TsScale::Div(d) => ts / d,
            TsScale::Bin(k) => ((ts as u128 * 1_000_000_000) >> k).min(u64::MAX as u128) as u64,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    ethernet: bool,
    /// 0: no limit.
    snaplen: u32,
    scale: TsScale,
    /// `if_tsoffset`, seconds.
    offset_s: i64,
}

impl Interface {
    #[inline]
    fn timestamp_ns(&self, hi: u32, lo: u32) -> u64 {
        let ns = self.scale.to_ns((hi as u64) << 32 | lo as u64);
        if self.offset_s == 0 {
            return ns;
        }
        (ns as i128 + self.offset_s as i128 * 1_000_000_000).clamp(0, u64::MAX as i128) as u64
    }
}

/// Walks the blocks of one pcapng file.
#[derive(Clone, Debug)]
pub struct PcapNgWalker<'a> {
    data: &'a [u8],
    pos: usize,
    /// Byte order of the current section.
    big: bool,
    /// Interfaces of the current section, by id.
    interfaces: Vec<Interface>,
    /// Sections seen so far.
    pub sections: u32,
}

impl<'a> PcapNgWalker<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, PcapNgHeaderError> {
        if !is_pcapng(data) {
            return Err(PcapNgHeaderError::NotASection);
        }
        let mut w = PcapNgWalker {
            data,
            pos: 0,
            big: false,
            interfaces: Vec::new(),
            sections: 0,
        };
        // The first block must be a whole, valid section header.
        w.block().map_err(PcapNgHeaderError::Section)?;
        Ok(w)
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let b: [u8; 4] = self.data[at..at + 4].try_into().expect("4 bytes");
        if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    #[inline]
    fn u16_at(&self, at: usize) -> u16 {
        let b: [u8; 2] = self.data[at..at + 2].try_into().expect("2 bytes");
        if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    /// The next packet, the end, or the damage point.
    #[inline]
    pub fn next_step(&mut self) -> Step {
        loop {
            if self.pos == self.data.len() {
                return Step::End;
            }
            let at = self.pos;
            match self.block() {
                Ok(Some(step)) => return step,
                Ok(None) => {}
                Err(reason) => {
                    return Step::Damaged {
                        offset: at as u64,
                        reason,
                    }
                }
            }
        }
    }

    /// Checks and consumes the block at `pos`; a packet block gives its step.
    #[inline]
    fn block(&mut self) -> Result<Option<Step>, DamageReason> {
        let at = self.pos;
        let left = self.data.len() - at;
        if left < 12 {
            return Err(DamageReason::BlockHeaderCut { left: left as u32 });
        }
        let kind = self.u32_at(at);
        if kind == SHB {
            // The byte order of the new section is in its own body.
            let m: [u8; 4] = self.data[at + 8..at + 12].try_into().expect("4 bytes");
            self.big = if u32::from_le_bytes(m) == BYTE_ORDER_MAGIC {
                false
            } else if u32::from_be_bytes(m) == BYTE_ORDER_MAGIC {
                true
            } else {
                return Err(DamageReason::ByteOrderMagic);
            };
        }
        let len = self.u32_at(at + 4);
        if len < 12 || len % 4 != 0 {
            return Err(DamageReason::BlockLength { len });
        }
        if len as usize > left {
            return Err(DamageReason::BlockPastEnd {
                len,
                left: left as u32,
            });
        }
        let end = at + len as usize;
        let trailer = self.u32_at(end - 4);
        if trailer != len {
            return Err(DamageReason::TrailerMismatch { len, trailer });
        }
        // Body: between the 8-byte header and the 4-byte trailer.
        let body = at + 8;
        let body_len = len as usize - 12;
        let too_short = |need: usize| {
            if body_len < need {
                Err(DamageReason::BlockTooShort { kind, len })
            } else {
                Ok(())
            }
        };
        let step = match kind {
            SHB => {
                // Byte-order magic, version, section length.
                too_short(16)?;
                self.interfaces.clear();
                self.sections += 1;
                None
            }
            IDB => {
                too_short(8)?;
                let iface = self.interface(body, body_len);
                self.interfaces.push(iface);
                None
            }
            EPB | PB => {
                too_short(20)?;
                let id = if kind == EPB {
                    self.u32_at(body)
                } else {
                    self.u16_at(body) as u32
                };
                let (hi, lo) = (self.u32_at(body + 4), self.u32_at(body + 8));
                let caplen = self.u32_at(body + 12);
                let orig_len = self.u32_at(body + 16);
                if caplen > MAX_CAPLEN {
                    return Err(DamageReason::CaplenTooLarge { caplen });
                }
                let room = (body_len - 20) as u32;
                if caplen > room {
                    return Err(DamageReason::PacketPastBlock { caplen, room });
                }
                Some(match self.interfaces.get(id as usize) {
                    Some(i) if i.ethernet => Step::Frame(Record {
                        offset: body + 20,
                        caplen,
                        orig_len,
                        timestamp_ns: i.timestamp_ns(hi, lo),
                    }),
                    _ => Step::Skipped,
                })
            }
            SPB => {
                too_short(4)?;
                let orig_len = self.u32_at(body);
                let room = (body_len - 4) as u32;
                Some(match self.interfaces.first() {
                    Some(i) if i.ethernet => {
                        let mut caplen = orig_len.min(room);
                        if i.snaplen != 0 {
                            caplen = caplen.min(i.snaplen);
                        }
                        Step::Frame(Record {
                            offset: body + 4,
                            caplen: caplen.min(MAX_CAPLEN),
                            orig_len,
                            timestamp_ns: 0,
                        })
                    }
                    _ => Step::Skipped,
                })
            }
            _ => None,
        };
        self.pos = end;
        Ok(step)
    }

    /// An IDB's interface: link type, snap length and timestamp options. A
    /// malformed option list ends the options (the block itself is whole).
    fn interface(&self, body: usize, body_len: usize) -> Interface {
        let linktype = self.u16_at(body);
        let mut iface = Interface {
            ethernet: linktype == 1,
            snaplen: self.u32_at(body + 4),
            scale: TsScale::Mul(1000),
            offset_s: 0,
        };
        let end = body + body_len;
        let mut at = body + 8;
        while at + 4 <= end {
            let code = self.u16_at(at);
            let len = self.u16_at(at + 2) as usize;
            let value = at + 4;
            if code == OPT_END || value + len > end {
                break;
            }
            match (code, len) {
                (OPT_TSRESOL, 1) => iface.scale = TsScale::from_tsresol(self.data[value]),
                (OPT_TSOFFSET, 8) => {
                    let (a, b) = (self.u32_at(value), self.u32_at(value + 4));
                    // A 64-bit value in the section's byte order.
                    let v = if self.big {
                        (a as u64) << 32 | b as u64
                    } else {
                        (b as u64) << 32 | a as u64
                    };
                    iface.offset_s = v as i64;
                }
                _ => {}
            }
            at = value + len.div_ceil(4) * 4;
        }
        iface
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_scales_to_nanoseconds() {
        // (if_tsresol, timestamp units, nanoseconds)
        for (v, ts, ns) in [
            (6u8, 1_500_000u64, 1_500_000_000u64),
            (9, 7, 7),
            (3, 2, 2_000_000),
            (0, 3, 3_000_000_000),
            (12, 5_000, 5),
            (0x80 | 10, 1024, 1_000_000_000),
            (0x80 | 20, 3 << 19, 1_500_000_000),
            (0x80, 2, 2_000_000_000),
        ] {
            assert_eq!(TsScale::from_tsresol(v).to_ns(ts), ns, "tsresol {v:#x}");
        }
        // Saturates instead of wrapping.
        assert_eq!(TsScale::from_tsresol(0).to_ns(u64::MAX), u64::MAX);
        assert_eq!(TsScale::from_tsresol(127).to_ns(1 << 60), 0);
    }
}
