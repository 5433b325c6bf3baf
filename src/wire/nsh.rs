//! Network Service Header view (RFC 8300, EtherType 0x894f).
//!
//! Base header (version, O bit, TTL, length in 4-byte words, MD type, next
//! protocol), service path header (SPI, SI), then context headers; the
//! length field covers all three, so the payload starts at `length * 4`
//! whatever the MD type.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be32, WireError};

/// NSH next-protocol values (RFC 8300 §11.2.5).
pub mod next_proto {
    pub const IPV4: u8 = 0x1;
    pub const IPV6: u8 = 0x2;
    pub const ETHERNET: u8 = 0x3;
    pub const NSH: u8 = 0x4;
    pub const MPLS: u8 = 0x5;
}

mod field {
    pub(super) const VER: usize = 0;
    pub(super) const LENGTH: usize = 1;
    pub(super) const MD_TYPE: usize = 2;
    pub(super) const NEXT_PROTOCOL: usize = 3;
    pub(super) const SERVICE_PATH: usize = 4;
    pub(super) const CONTEXT: usize = 8;
}

/// Base header plus service path header: the least an NSH can be.
pub const MIN_HEADER_LEN: usize = field::CONTEXT;

/// NSH view. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct NshHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NshHeader<T> {
    /// `Truncated` unless base and service path headers are present;
    /// `Malformed` for a version other than 0 (the only one defined) or a
    /// length field below 2 words; then `Truncated` unless the whole header
    /// the length field declares is present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let h = NshHeader { buffer };
        if h.version() != 0 || h.header_len() < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if h.buffer.as_ref().len() < h.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(h)
    }

    /// Version (2 bits); 0 in RFC 8300.
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER] >> 6
    }

    /// The O bit: an OAM packet.
    #[inline(always)]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::VER] & 0x20 != 0
    }

    /// TTL (6 bits).
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[field::VER] & 0x0f) << 2 | b[field::LENGTH] >> 6
    }

    /// Header length in bytes (the 6-bit length field counts 4-byte words).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::LENGTH] & 0x3f) * 4
    }

    /// MD type (4 bits): 1 fixed-length, 2 variable-length context headers.
    #[inline(always)]
    pub fn md_type(&self) -> u8 {
        self.buffer.as_ref()[field::MD_TYPE] & 0x0f
    }

    /// What follows the header ([`next_proto`]).
    #[inline(always)]
    pub fn next_protocol(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_PROTOCOL]
    }

    /// Service path identifier (24 bits).
    #[inline(always)]
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SERVICE_PATH) >> 8
    }

    /// Service index.
    #[inline(always)]
    pub fn si(&self) -> u8 {
        self.buffer.as_ref()[field::SERVICE_PATH + 3]
    }
}

impl<'a> NshHeader<&'a [u8]> {
    /// The context headers (between the service path header and the payload).
    #[inline(always)]
    pub fn context(&self) -> &'a [u8] {
        &self.buffer[field::CONTEXT..self.header_len()]
    }

    /// The bytes after the header.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NSH of tcpdump's `tests/nsh.pcap` (MD type 1, SPI 777, SI 7,
    /// contexts 1..4, next protocol IPv4), then the IPv4 header's first byte.
    const MD1: [u8; 25] = [
        0x00, 0x06, 0x01, 0x01, 0x00, 0x03, 0x09, 0x07, //
        0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, //
        0x45,
    ];

    #[test]
    fn nsh_md1_fields() {
        let h = NshHeader::new_checked(&MD1[..]).unwrap();
        assert_eq!(h.version(), 0);
        assert!(!h.oam());
        assert_eq!(h.ttl(), 0);
        assert_eq!(h.header_len(), 24);
        assert_eq!(h.md_type(), 1);
        assert_eq!(h.next_protocol(), next_proto::IPV4);
        assert_eq!(h.spi(), 777);
        assert_eq!(h.si(), 7);
        assert_eq!(h.context(), &MD1[8..24]);
        assert_eq!(h.payload(), &[0x45]);
    }

    #[test]
    fn nsh_md2_fields() {
        // O bit, TTL 63, length 3 (one 4-byte variable context header), MD
        // type 2, next protocol Ethernet, SPI 0xabcdef, SI 255.
        let b = [
            0x2f, 0xc3, 0x02, 0x03, 0xab, 0xcd, 0xef, 0xff, 0x00, 0x01, 0x02, 0x00, 0x52,
        ];
        let h = NshHeader::new_checked(&b[..]).unwrap();
        assert!(h.oam());
        assert_eq!(h.ttl(), 63);
        assert_eq!(h.header_len(), 12);
        assert_eq!(h.md_type(), 2);
        assert_eq!(h.next_protocol(), next_proto::ETHERNET);
        assert_eq!(h.spi(), 0xab_cdef);
        assert_eq!(h.si(), 255);
        assert_eq!(h.context(), &b[8..12]);
        assert_eq!(h.payload(), &[0x52]);
        // Length 2: no context headers at all.
        let b = [0x0f, 0xc2, 0x02, 0x01, 0, 0, 1, 1];
        let h = NshHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.context(), &[] as &[u8]);
        assert_eq!(h.payload(), &[] as &[u8]);
    }

    #[test]
    fn nsh_short_and_bad() {
        // Cut anywhere inside the declared 24 bytes.
        for n in 0..24 {
            assert_eq!(
                NshHeader::new_checked(&MD1[..n]).err(),
                Some(WireError::Truncated),
                "{n}"
            );
        }
        // Version 1, 2, 3.
        for v in 1..4u8 {
            let mut b = MD1;
            b[0] |= v << 6;
            assert_eq!(
                NshHeader::new_checked(&b[..]).err(),
                Some(WireError::Malformed)
            );
        }
        // Length 0 and 1: shorter than the fixed part.
        for len in [0u8, 1] {
            let mut b = MD1;
            b[1] = len;
            assert_eq!(
                NshHeader::new_checked(&b[..]).err(),
                Some(WireError::Malformed)
            );
        }
        // Length 63 (252 bytes) with 25 captured.
        let mut b = MD1;
        b[1] = 0x3f;
        assert_eq!(
            NshHeader::new_checked(&b[..]).err(),
            Some(WireError::Truncated)
        );
    }
}
