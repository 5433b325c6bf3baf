//! SCTP common header view (RFC 9260).
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, be32, WireError};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const VTAG: usize = 4;
    pub(super) const CHECKSUM: usize = 8;
}

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = 12;

/// SCTP common header view. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// `Truncated` unless the 12-byte common header is present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(SctpPacket { buffer })
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    #[inline(always)]
    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VTAG)
    }

    #[inline(always)]
    pub fn checksum(&self) -> u32 {
        be32(self.buffer.as_ref(), field::CHECKSUM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sctp_fields() {
        let b = [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef];
        let s = SctpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(s.src_port(), 2905);
        assert_eq!(s.dst_port(), 2906);
        assert_eq!(s.verification_tag(), 9);
        assert_eq!(s.checksum(), 0xdeadbeef);
        assert_eq!(
            SctpPacket::new_checked(&b[..11]).err(),
            Some(WireError::Truncated)
        );
    }
}
