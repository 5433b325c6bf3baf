//! IPv4 header view (RFC 791).
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

mod field {
    use core::ops::Range;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const TOS: usize = 1;
    pub(super) const TOTAL_LEN: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLAGS_FRAG: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: Range<usize> = 12..16;
    pub(super) const DST: Range<usize> = 16..20;
}

/// Length of the fixed header (IHL 5, no options).
pub const MIN_HEADER_LEN: usize = 20;

/// IPv4 header view. `new_checked` guarantees the 20-byte fixed header,
/// version 4 and IHL >= 5; after it no accessor panics. It does not check
/// that the options (IHL > 5) or the total length fit in the buffer: the
/// parser wants the addresses even when they don't.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// `Truncated` when fewer than 20 bytes; `Malformed` when the version is
    /// not 4 or IHL < 5.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let v = b[field::VER_IHL];
        if v >> 4 != 4 || v & 0x0f < 5 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv4Packet { buffer })
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4, 20..=60).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The ToS byte (DSCP << 2 | ECN).
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total length field (header + payload), as sent.
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    #[inline(always)]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS_FRAG] & 0x40 != 0
    }

    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS_FRAG] & 0x20 != 0
    }

    /// Fragment offset in 8-byte units (0 for an unfragmented packet or a
    /// first fragment).
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x1fff
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [
            b[field::SRC.start],
            b[field::SRC.start + 1],
            b[field::SRC.start + 2],
            b[field::SRC.start + 3],
        ]
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [
            b[field::DST.start],
            b[field::DST.start + 1],
            b[field::DST.start + 2],
            b[field::DST.start + 3],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 192.168.1.2, TOS 0xb8, total 52, id 0x1c46, DF, TTL 64, TCP,
    // with one 4-byte option (IHL 6).
    const HDR: [u8; 24] = [
        0x46, 0xb8, 0x00, 0x34, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0xbe, 0xef, 10, 0, 0, 1, 192,
        168, 1, 2, 0x01, 0x01, 0x01, 0x00,
    ];

    #[test]
    fn ipv4_fields() {
        let p = Ipv4Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.tos(), 0xb8);
        assert_eq!(p.total_len(), 52);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 6);
        assert_eq!(p.checksum(), 0xbeef);
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [192, 168, 1, 2]);
    }

    #[test]
    fn ipv4_fragment_fields() {
        let mut h = HDR;
        h[6] = 0x20 | 0x01; // MF, offset 0x1b9
        h[7] = 0xb9;
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 0x1b9);
    }

    #[test]
    fn ipv4_checked() {
        for n in 0..MIN_HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&HDR[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        // Options need not fit: the parser checks them itself.
        assert!(Ipv4Packet::new_checked(&HDR[..20]).is_ok());
        for (b0, want) in [
            (0x45, None),
            (0x4f, None),
            (0x44, Some(WireError::Malformed)),
            (0x40, Some(WireError::Malformed)),
            (0x65, Some(WireError::Malformed)),
            (0x55, Some(WireError::Malformed)),
            (0x05, Some(WireError::Malformed)),
        ] {
            let mut h = HDR;
            h[0] = b0;
            assert_eq!(Ipv4Packet::new_checked(&h[..]).err(), want, "{b0:#04x}");
        }
    }
}
