//! PPPoE session header (RFC 2516) with the PPP protocol field after it.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

/// PPP protocol numbers the parser follows.
pub mod ppp_proto {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    pub const LCP: u16 = 0xc021;
}

mod field {
    pub const VER_TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const SESSION_ID: usize = 2;
    pub const LENGTH: usize = 4;
    pub const PPP_PROTOCOL: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// PPPoE header (6 bytes) plus the 2-byte PPP protocol field.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// The only version/type byte RFC 2516 defines (version 1, type 1).
pub const VER_TYPE_1_1: u8 = 0x11;

/// PPPoE session-stage header view (EtherType 0x8864), including the PPP
/// protocol field. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct PppoeSession<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PppoeSession<T> {
    /// Checks that the 8 bytes are present (else `Truncated`) and that the
    /// version/type byte is 0x11 (else `Malformed`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_TYPE] != VER_TYPE_1_1 {
            return Err(WireError::Malformed);
        }
        Ok(PppoeSession { buffer })
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

    /// The PPP protocol number (0x0021 IPv4, 0x0057 IPv6, ...).
    #[inline(always)]
    pub fn ppp_protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PPP_PROTOCOL)
    }
}

impl<'a> PppoeSession<&'a [u8]> {
    /// The PPP payload (after the protocol field).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
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
        assert_eq!(p.ppp_protocol(), ppp_proto::IPV6);
        assert_eq!(p.payload(), &[0x60]);
        assert_eq!(
            PppoeSession::new_checked(&b[..7]).err(),
            Some(WireError::Truncated)
        );
        let bad = [0x21, 0x00, 0x12, 0x34, 0x00, 0x2a, 0x00, 0x57];
        assert_eq!(
            PppoeSession::new_checked(&bad[..]).err(),
            Some(WireError::Malformed)
        );
    }
}
