//! ICMP (RFC 792) and ICMPv6 (RFC 4443) common header view: type, code,
//! checksum. The rest of the message is type-specific and not viewed here.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
}

/// Type, code and checksum: the part common to every ICMP message.
pub const HEADER_LEN: usize = 4;

/// ICMP / ICMPv6 common header view. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// `Truncated` unless type, code and checksum are present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    #[inline(always)]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline(always)]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
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
    fn icmp_fields() {
        let b = [3u8, 13, 0x12, 0x34];
        let i = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(i.msg_type(), 3);
        assert_eq!(i.code(), 13);
        assert_eq!(i.checksum(), 0x1234);
        assert_eq!(
            IcmpPacket::new_checked(&b[..3]).err(),
            Some(WireError::Truncated)
        );
    }
}
