//! MPLS label stack entry view (RFC 3032).
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be32, WireError};

/// Length of one label stack entry.
pub const ENTRY_LEN: usize = 4;

/// One 4-byte MPLS label stack entry. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct MplsLabel<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MplsLabel<T> {
    /// Checks that the 4-byte entry is present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ENTRY_LEN {
            return Err(WireError::Truncated);
        }
        Ok(MplsLabel { buffer })
    }

    #[inline(always)]
    fn word(&self) -> u32 {
        be32(self.buffer.as_ref(), 0)
    }

    /// The 20-bit label.
    #[inline(always)]
    pub fn label(&self) -> u32 {
        self.word() >> 12
    }

    /// Traffic class (3 bits, formerly EXP).
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        ((self.word() >> 9) & 0x7) as u8
    }

    /// The S bit: this is the last entry of the stack.
    #[inline(always)]
    pub fn bottom_of_stack(&self) -> bool {
        self.buffer.as_ref()[2] & 0x01 != 0
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[3]
    }
}

impl<'a> MplsLabel<&'a [u8]> {
    /// The bytes after this entry (the next entry, or the payload after the
    /// bottom of the stack).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[ENTRY_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpls_fields() {
        // label 16001, TC 5, S=1, TTL 63, then an IPv4 nibble
        let b = [0x03, 0xe8, 0x1b, 0x3f, 0x45];
        let l = MplsLabel::new_checked(&b[..]).unwrap();
        assert_eq!(l.label(), 16001);
        assert_eq!(l.traffic_class(), 5);
        assert!(l.bottom_of_stack());
        assert_eq!(l.ttl(), 63);
        assert_eq!(l.payload(), &[0x45]);
        let b = [0x00, 0x01, 0x0a, 0xff];
        let l = MplsLabel::new_checked(&b[..]).unwrap();
        assert_eq!(l.label(), 16);
        assert!(!l.bottom_of_stack());
        assert_eq!(
            MplsLabel::new_checked(&b[..3]).err(),
            Some(WireError::Truncated)
        );
    }
}
