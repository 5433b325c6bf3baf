//! PPPoE session header (RFC 2516) with the PPP protocol field after it.
//!
//! The PPP protocol field is two bytes, or one when the peers negotiated
//! protocol-field compression (PFC, RFC 1661 §6.5): protocol numbers have
//! an even first byte and an odd last byte, so an odd first byte is a
//! compressed one-byte field (`0x21` IPv4, `0x57` IPv6).
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

/// PPP protocol numbers the parser follows.
pub mod ppp_proto {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    /// MPLS unicast over PPP (RFC 3032 §4.3).
    pub const MPLS_UNICAST: u16 = 0x0281;
    pub const MPLS_MULTICAST: u16 = 0x0283;
    pub const LCP: u16 = 0xc021;
}

mod field {
    pub(super) const VER_TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const SESSION_ID: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const PPP_PROTOCOL: usize = 6;
}

/// The PPPoE header proper (without the PPP protocol field).
pub const HEADER_LEN: usize = field::PPP_PROTOCOL;

/// The only version/type byte RFC 2516 defines (version 1, type 1).
pub const VER_TYPE_1_1: u8 = 0x11;

/// PPPoE session-stage header view (EtherType 0x8864), including the PPP
/// protocol field (one or two bytes). After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct PppoeSession<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PppoeSession<T> {
    /// Checks that the 6-byte header is present (else `Truncated`), that the
    /// version/type byte is 0x11 (else `Malformed`), then that the PPP
    /// protocol field is present: one byte if it is odd (compressed), else
    /// two (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_TYPE] != VER_TYPE_1_1 {
            return Err(WireError::Malformed);
        }
        match b.get(field::PPP_PROTOCOL) {
            Some(p) if p & 1 == 1 || b.len() > field::PPP_PROTOCOL + 1 => {
                Ok(PppoeSession { buffer })
            }
            _ => Err(WireError::Truncated),
        }
    }

    #[inline(always)]
    pub fn ver_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE]
    }

    /// 0x00 for session data.
    #[inline(always)]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline(always)]
    pub fn session_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SESSION_ID)
    }

    /// PPPoE payload length (PPP protocol field included).
    #[inline(always)]
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the PPP protocol field is the compressed single byte.
    #[inline(always)]
    pub fn protocol_compressed(&self) -> bool {
        self.buffer.as_ref()[field::PPP_PROTOCOL] & 1 == 1
    }

    /// The PPP protocol number, uncompressed (0x0021 IPv4, 0x0057 IPv6,
    /// ...): a compressed `0x21` reads as 0x0021.
    #[inline(always)]
    pub fn ppp_protocol(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.protocol_compressed() {
            u16::from(b[field::PPP_PROTOCOL])
        } else {
            be16(b, field::PPP_PROTOCOL)
        }
    }

    /// Length of the PPPoE header and PPP protocol field: 7 or 8.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        field::PPP_PROTOCOL + if self.protocol_compressed() { 1 } else { 2 }
    }
}

impl<'a> PppoeSession<&'a [u8]> {
    /// The PPP payload (after the protocol field).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pppoe_fields() {
        let b = [0x11, 0x00, 0x12, 0x34, 0x00, 0x2a, 0x00, 0x57, 0x60];
        let p = PppoeSession::new_checked(&b[..]).unwrap();
        assert_eq!(p.ver_type(), 0x11);
        assert_eq!(p.code(), 0);
        assert_eq!(p.session_id(), 0x1234);
        assert_eq!(p.length(), 42);
        assert!(!p.protocol_compressed());
        assert_eq!(p.ppp_protocol(), ppp_proto::IPV6);
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.payload(), &[0x60]);
        for n in 0..8 {
            assert_eq!(
                PppoeSession::new_checked(&b[..n]).err(),
                Some(WireError::Truncated),
                "{n}"
            );
        }
        let bad = [0x21, 0x00, 0x12, 0x34, 0x00, 0x2a, 0x00, 0x57];
        assert_eq!(
            PppoeSession::new_checked(&bad[..]).err(),
            Some(WireError::Malformed)
        );
    }

    /// Regression: a compressed one-byte PPP protocol field (PFC) was read
    /// as two bytes, so IPv4 `0x21 0x45` became protocol 0x2145 (non-IP).
    #[test]
    fn pppoe_protocol_field_compression() {
        for (proto, want) in [(0x21u8, ppp_proto::IPV4), (0x57, ppp_proto::IPV6)] {
            let b = [0x11, 0x00, 0x12, 0x34, 0x00, 0x29, proto, 0x45];
            let p = PppoeSession::new_checked(&b[..]).unwrap();
            assert!(p.protocol_compressed());
            assert_eq!(p.ppp_protocol(), want);
            assert_eq!(p.header_len(), 7);
            assert_eq!(p.payload(), &[0x45]);
            // Seven bytes are enough for a compressed field.
            let p = PppoeSession::new_checked(&b[..7]).unwrap();
            assert_eq!(p.ppp_protocol(), want);
            assert_eq!(p.payload(), &[] as &[u8]);
            for n in 0..7 {
                assert_eq!(
                    PppoeSession::new_checked(&b[..n]).err(),
                    Some(WireError::Truncated)
                );
            }
        }
        // Uncompressed fields keep two bytes, even when the second is odd.
        let b = [0x11, 0x00, 0x12, 0x34, 0x00, 0x29, 0xc0, 0x21];
        let p = PppoeSession::new_checked(&b[..]).unwrap();
        assert_eq!(p.ppp_protocol(), ppp_proto::LCP);
        assert_eq!(p.header_len(), 8);
    }
}
