//! Classic pcap, walked in place: both byte orders, microsecond and
//! nanosecond magics, and the "modified" (Kuznetzov) variant with 24-byte
//! record headers. Allocates nothing; never panics on any bytes.
//!
//! The header's snap length is information only: a record's captured length
//! is what the record says (tcpdump and editcap write files whose records say
//! more than the snap length, and a truncated record's original length is
//! normally above it), bounded by `MAX_CAPLEN` and by the bytes left.

use super::{DamageReason, Record, Step, MAX_CAPLEN};

/// Header field positions.
mod field {
    use core::ops::Range;
    pub(super) const MAGIC: Range<usize> = 0..4;
    pub(super) const SNAPLEN: Range<usize> = 16..20;
    pub(super) const LINKTYPE: Range<usize> = 20..24;
    pub(super) const HEADER_LEN: usize = 24;
}

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Kuznetzov's patched libpcap: microseconds, 8 more bytes per record header.
const MAGIC_MODIFIED: u32 = 0xa1b2_cd34;

/// (big endian, nanoseconds, record header length) for a magic.
fn magic(m: [u8; 4]) -> Option<(bool, bool, usize)> {
    for (big, v) in [
        (false, u32::from_le_bytes(m)),
        (true, u32::from_be_bytes(m)),
    ] {
        match v {
            MAGIC_US => return Some((big, false, 16)),
            MAGIC_NS => return Some((big, true, 16)),
            MAGIC_MODIFIED => return Some((big, false, 24)),
            _ => {}
        }
    }
    None
}

/// Why a pcap file is refused before its first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PcapHeaderError {
    #[error("not a pcap or pcapng file (unknown magic number)")]
    Magic,
    #[error("pcap file header cut short ({0} of 24 bytes)")]
    Short(usize),
}

/// Walks the records of one pcap file.
#[derive(Clone, Debug)]
pub struct PcapWalker<'a> {
    data: &'a [u8],
    pos: usize,
    big: bool,
    /// Nanoseconds per unit of the timestamp's fraction (1000 or 1).
    frac_ns: u64,
    record_header: usize,
    /// The link type field (with its FCS bits).
    pub linktype: u32,
    /// The header's snap length (information only).
    pub snaplen: u32,
}

impl<'a> PcapWalker<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, PcapHeaderError> {
        let m = data
            .get(field::MAGIC)
            .and_then(|m| <[u8; 4]>::try_from(m).ok())
            .ok_or(PcapHeaderError::Magic)?;
        let (big, nanos, record_header) = magic(m).ok_or(PcapHeaderError::Magic)?;
        if data.len() < field::HEADER_LEN {
            return Err(PcapHeaderError::Short(data.len()));
        }
        let u32_at = |r: core::ops::Range<usize>| {
            let b: [u8; 4] = data[r].try_into().expect("4 bytes");
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        Ok(PcapWalker {
            data,
            pos: field::HEADER_LEN,
            big,
            frac_ns: if nanos { 1 } else { 1000 },
            record_header,
            linktype: u32_at(field::LINKTYPE),
            snaplen: u32_at(field::SNAPLEN),
        })
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

    /// The next record, the end, or the damage point.
    #[inline]
    pub fn next_step(&mut self) -> Step {
        let left = self.data.len() - self.pos;
        if left == 0 {
            return Step::End;
        }
        let at = self.pos;
        if left < self.record_header {
            return Step::Damaged {
                offset: at as u64,
                reason: DamageReason::RecordHeaderCut { left: left as u32 },
            };
        }
        let secs = self.u32_at(at);
        let frac = self.u32_at(at + 4);
        let caplen = self.u32_at(at + 8);
        let orig_len = self.u32_at(at + 12);
        if caplen > MAX_CAPLEN {
            return Step::Damaged {
                offset: at as u64,
                reason: DamageReason::CaplenTooLarge { caplen },
            };
        }
        let start = at + self.record_header;
        let room = self.data.len() - start;
        if caplen as usize > room {
            return Step::Damaged {
                offset: at as u64,
                reason: DamageReason::RecordDataCut {
                    caplen,
                    left: room as u32,
                },
            };
        }
        self.pos = start + caplen as usize;
        Step::Frame(Record {
            offset: start,
            caplen,
            orig_len,
            timestamp_ns: secs as u64 * 1_000_000_000 + frac as u64 * self.frac_ns,
        })
    }
}
