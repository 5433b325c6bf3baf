//! IPv6 fixed header (RFC 8200) and extension header views: the generic
//! (next header, length in 8-byte units) layout shared by hop-by-hop,
//! routing and destination options; the fragment header; and the
//! authentication header (RFC 4302), whose length is in 4-byte units.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, be32, WireError};

mod field {
    use core::ops::Range;
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const PAYLOAD_LEN: usize = 4;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: Range<usize> = 8..24;
    pub(super) const DST: Range<usize> = 24..40;
    pub(super) const PAYLOAD: usize = 40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// IPv6 fixed header view. `new_checked` guarantees the 40 bytes and
/// version 6; after it no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// `Truncated` when fewer than 40 bytes; `Malformed` when the version
    /// is not 6.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv6Packet { buffer })
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP << 2 | ECN).
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    /// Flow label (20 bits).
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (extension headers included); 0 in a jumbogram.
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// The captured bytes after the fixed header (not cut to `payload_len`).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

/// Option type of the Jumbo Payload hop-by-hop option (RFC 2675).
pub const OPT_JUMBO: u8 = 0xc2;
const OPT_PAD1: u8 = 0;

/// An extension header with the generic layout: next header, length in
/// 8-byte units not counting the first 8, then data. Used for hop-by-hop
/// options (0), routing (43) and destination options (60).
/// `new_checked` guarantees the whole header is present.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// `Truncated` unless the whole header ((len + 1) * 8 bytes) is present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        match b.get(1) {
            Some(&len) if b.len() >= (usize::from(len) + 1) * 8 => Ok(Ipv6ExtHeader { buffer }),
            _ => Err(WireError::Truncated),
        }
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Header length in bytes (8..=2048).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[1]) + 1) * 8
    }

    /// The value of a Jumbo Payload option (RFC 2675) among this header's
    /// options, if there is a well-formed one. Meaningful for hop-by-hop
    /// options only. Walks the option TLVs; bounded by the header length.
    pub fn jumbo_payload_len(&self) -> Option<u32> {
        let opts = self.buffer.as_ref().get(2..self.header_len())?;
        let mut i = 0;
        while let Some(&typ) = opts.get(i) {
            if typ == OPT_PAD1 {
                i += 1;
                continue;
            }
            let len = usize::from(*opts.get(i + 1)?);
            if typ == OPT_JUMBO && len == 4 {
                let v = opts.get(i + 2..i + 6)?;
                return Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
            }
            i += 2 + len;
        }
        None
    }
}

impl<'a> Ipv6ExtHeader<&'a [u8]> {
    /// The bytes after this header.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[self.header_len()..]
    }
}

/// Length of the IPv6 fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

/// IPv6 fragment header view (next header 44).
#[derive(Clone, Copy, Debug)]
pub struct Ipv6FragHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragHeader<T> {
    /// `Truncated` unless the 8 bytes are present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < FRAG_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Ipv6FragHeader { buffer })
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Fragment offset in 8-byte units.
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), 2) >> 3
    }

    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[3] & 0x01 != 0
    }

    #[inline(always)]
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
}

impl<'a> Ipv6FragHeader<&'a [u8]> {
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[FRAG_HEADER_LEN..]
    }
}

/// Authentication header view (next header 51, RFC 4302). Its length
/// field counts 4-byte units minus 2: header length = (len + 2) * 4.
#[derive(Clone, Copy, Debug)]
pub struct AuthHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AuthHeader<T> {
    /// `Truncated` unless the whole header is present; `Malformed` when the
    /// length field is 0 (an AH always holds SPI and sequence number, so it
    /// is at least 12 bytes).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        let Some(&len) = b.get(1) else {
            return Err(WireError::Truncated);
        };
        if len == 0 {
            return Err(WireError::Malformed);
        }
        if b.len() < (usize::from(len) + 2) * 4 {
            return Err(WireError::Truncated);
        }
        Ok(AuthHeader { buffer })
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Header length in bytes ((len + 2) * 4, 12..=1028).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[1]) + 2) * 4
    }

    #[inline(always)]
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    #[inline(always)]
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }
}

impl<'a> AuthHeader<&'a [u8]> {
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TC 0xb8, flow 0x12345, payload 8, next header UDP, hop limit 64,
    // 2001:db8::1 -> 2001:db8::2.
    const HDR: [u8; 40] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 17, 64, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];

    #[test]
    fn ipv6_fields() {
        let p = Ipv6Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[15], 2);
        assert!(p.payload().is_empty());
        assert_eq!(
            Ipv6Packet::new_checked(&HDR[..39]).err(),
            Some(WireError::Truncated)
        );
        let mut h = HDR;
        h[0] = 0x4b;
        assert_eq!(
            Ipv6Packet::new_checked(&h[..]).err(),
            Some(WireError::Malformed)
        );
    }

    #[test]
    fn ext_header_lengths() {
        let b = [6u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa];
        let e = Ipv6ExtHeader::new_checked(&b[..]).unwrap();
        assert_eq!(e.next_header(), 6);
        assert_eq!(e.header_len(), 16);
        assert_eq!(e.payload(), &[0xaa]);
        for n in 0..16 {
            assert_eq!(
                Ipv6ExtHeader::new_checked(&b[..n]).err(),
                Some(WireError::Truncated)
            );
        }
    }

    #[test]
    fn jumbo_option() {
        // HBH: next header TCP, len 0 (8 bytes), jumbo option filling it.
        let hbh = [6u8, 0, OPT_JUMBO, 4, 0x00, 0x01, 0x00, 0x00];
        let e = Ipv6ExtHeader::new_checked(&hbh[..]).unwrap();
        assert_eq!(e.jumbo_payload_len(), Some(0x0001_0000));
        // Pad1 then PadN(2) then jumbo, in a 16-byte header.
        let hbh = [
            6u8, 1, 0, 1, 2, 0, 0, OPT_JUMBO, 4, 0x00, 0x02, 0x00, 0x08, 1, 0, 0,
        ];
        let e = Ipv6ExtHeader::new_checked(&hbh[..]).unwrap();
        assert_eq!(e.jumbo_payload_len(), Some(0x0002_0008));
        // No jumbo option; an option whose length runs past the end.
        let hbh = [6u8, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            Ipv6ExtHeader::new_checked(&hbh[..])
                .unwrap()
                .jumbo_payload_len(),
            None
        );
        let hbh = [6u8, 0, 0x05, 200, 0, 0, 0, 0];
        assert_eq!(
            Ipv6ExtHeader::new_checked(&hbh[..])
                .unwrap()
                .jumbo_payload_len(),
            None
        );
        let hbh = [6u8, 0, 0, 0, 0, 0, 0, OPT_JUMBO];
        assert_eq!(
            Ipv6ExtHeader::new_checked(&hbh[..])
                .unwrap()
                .jumbo_payload_len(),
            None
        );
    }

    #[test]
    fn frag_header() {
        let b = [17u8, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef];
        let f = Ipv6FragHeader::new_checked(&b[..]).unwrap();
        assert_eq!(f.next_header(), 17);
        assert_eq!(f.frag_offset(), 0xb5);
        assert!(f.more_frags());
        assert_eq!(f.ident(), 0xdeadbeef);
        assert_eq!(
            Ipv6FragHeader::new_checked(&b[..7]).err(),
            Some(WireError::Truncated)
        );
    }

    #[test]
    fn auth_header() {
        // len 4 -> (4 + 2) * 4 = 24 bytes.
        let mut b = [0u8; 25];
        b[0] = 6;
        b[1] = 4;
        b[4..8].copy_from_slice(&[0, 0, 0x10, 0x01]);
        b[8..12].copy_from_slice(&[0, 0, 0, 7]);
        b[24] = 0xaa;
        let a = AuthHeader::new_checked(&b[..]).unwrap();
        assert_eq!(a.next_header(), 6);
        assert_eq!(a.header_len(), 24);
        assert_eq!(a.spi(), 0x1001);
        assert_eq!(a.seq(), 7);
        assert_eq!(a.payload(), &[0xaa]);
        assert_eq!(
            AuthHeader::new_checked(&b[..23]).err(),
            Some(WireError::Truncated)
        );
        assert_eq!(
            AuthHeader::new_checked(&b[..1]).err(),
            Some(WireError::Truncated)
        );
        b[1] = 0;
        assert_eq!(
            AuthHeader::new_checked(&b[..]).err(),
            Some(WireError::Malformed)
        );
    }
}
