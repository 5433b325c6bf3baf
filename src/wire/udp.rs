//! UDP (RFC 768) and UDP-Lite (RFC 3828) header view: the same 8-byte
//! layout, with UDP-Lite's checksum coverage where UDP has its length.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

/// UDP / UDP-Lite header view. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// `Truncated` unless the 8-byte header is present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// UDP length; in UDP-Lite the checksum coverage.
    #[inline(always)]
    pub fn len_or_coverage(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_fields() {
        let b = [0x00, 0x35, 0xd4, 0x31, 0x00, 0x1c, 0xab, 0xcd];
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(u.src_port(), 53);
        assert_eq!(u.dst_port(), 54321);
        assert_eq!(u.len_or_coverage(), 28);
        assert_eq!(u.checksum(), 0xabcd);
        assert_eq!(
            UdpPacket::new_checked(&b[..7]).err(),
            Some(WireError::Truncated)
        );
    }
}
