//! IEEE 802.1ah provider backbone bridging (PBB, "MAC-in-MAC") I-TAG view.
//!
//! A backbone frame is B-DA, B-SA, usually a B-TAG (802.1ad, TPID 0x88a8),
//! then the I-TAG: TPID 0x88e7 and a 4-byte I-TCI, followed by the
//! customer's whole Ethernet header (C-DA, C-SA, tags, EtherType).
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be32, WireError};

mod field {
    pub(super) const TCI: usize = 0;
    pub(super) const PAYLOAD: usize = 4;
}

/// Length of the I-TCI, as it follows the 0x88e7 TPID.
pub const ITAG_LEN: usize = field::PAYLOAD;

/// PBB I-TAG, viewed from after its TPID. After `new_checked` no accessor
/// panics. The payload is the customer Ethernet frame, starting at C-DA.
#[derive(Clone, Copy, Debug)]
pub struct ITag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ITag<T> {
    /// Checks that the 4-byte I-TCI is present (else `Truncated`). The
    /// customer header after it is checked by its own view.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ITAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(ITag { buffer })
    }

    #[inline(always)]
    fn tci(&self) -> u32 {
        be32(self.buffer.as_ref(), field::TCI)
    }

    /// I-PCP (3 bits).
    #[inline(always)]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 29) as u8
    }

    /// I-DEI.
    #[inline(always)]
    pub fn dei(&self) -> bool {
        self.tci() & (1 << 28) != 0
    }

    /// UCA: use the customer addresses (set by some PBB-TE bridges).
    #[inline(always)]
    pub fn uca(&self) -> bool {
        self.tci() & (1 << 27) != 0
    }

    /// Backbone service instance id (24 bits).
    #[inline(always)]
    pub fn isid(&self) -> u32 {
        self.tci() & 0x00ff_ffff
    }
}

impl<'a> ITag<&'a [u8]> {
    /// The customer Ethernet frame (C-DA onwards).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itag_fields() {
        // I-PCP 5, I-DEI 1, UCA 1, I-SID 0x0186a1 (100001), then C-DA.
        let b = [0xb8, 0x01, 0x86, 0xa1, 0x00, 0x1b];
        let t = ITag::new_checked(&b[..]).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert!(t.uca());
        assert_eq!(t.isid(), 100_001);
        assert_eq!(t.payload(), &[0x00, 0x1b]);
        // Reserved bits do not leak into the I-SID.
        let b = [0x07, 0x00, 0x00, 0x01];
        let t = ITag::new_checked(&b[..]).unwrap();
        assert_eq!((t.pcp(), t.dei(), t.uca(), t.isid()), (0, false, false, 1));
        for n in 0..ITAG_LEN {
            assert_eq!(ITag::new_checked(&b[..n]).err(), Some(WireError::Truncated));
        }
    }
}
