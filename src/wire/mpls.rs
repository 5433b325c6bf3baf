//! MPLS label stack entry view (RFC 3032) and the pseudowire control word
//! (RFC 4385) that may follow the bottom of the stack.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, be32, WireError};

/// G-ACh channel types (RFC 4385 §5, IANA "MPLS Generalized Associated
/// Channel (G-ACh) Types") that carry an IP packet (e.g. VCCV BFD, RFC 5885).
pub mod ach_channel {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// Reserved label values (RFC 3032 §2.1, RFC 5586) that say what follows
/// when they are the bottom of the stack.
pub mod label {
    /// IPv4 explicit null: an IPv4 packet follows.
    pub const IPV4_EXPLICIT_NULL: u32 = 0;
    /// IPv6 explicit null: an IPv6 packet follows.
    pub const IPV6_EXPLICIT_NULL: u32 = 2;
    /// Generic associated channel label: a G-ACh message (OAM) follows.
    pub const GAL: u32 = 13;
}

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

mod cw_field {
    pub(super) const FLAGS: usize = 0;
    pub(super) const FRAG_LEN: usize = 1;
    pub(super) const SEQUENCE: usize = 2;
    pub(super) const PAYLOAD: usize = 4;
}

/// Length of the pseudowire control word.
pub const CONTROL_WORD_LEN: usize = cw_field::PAYLOAD;

/// The preferred pseudowire MPLS control word (RFC 4385 §3; RFC 4448 §3.1
/// for Ethernet): first nibble 0, flags, fragment bits, length, sequence
/// number. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct PwControlWord<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PwControlWord<T> {
    /// `Truncated` unless the 4 bytes are present; `Malformed` unless the
    /// first nibble is 0 (1 is a G-ACh header, 4 and 6 are IP).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < CONTROL_WORD_LEN {
            return Err(WireError::Truncated);
        }
        if b[cw_field::FLAGS] >> 4 != 0 {
            return Err(WireError::Malformed);
        }
        Ok(PwControlWord { buffer })
    }

    /// Flags (4 bits, pseudowire type specific).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[cw_field::FLAGS] & 0x0f
    }

    /// FRG (2 bits): fragmentation of the payload.
    #[inline(always)]
    pub fn frag(&self) -> u8 {
        self.buffer.as_ref()[cw_field::FRAG_LEN] >> 6
    }

    /// Length (6 bits): the payload length when the packet is shorter than
    /// 64 bytes and was padded, else 0.
    #[inline(always)]
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[cw_field::FRAG_LEN] & 0x3f
    }

    /// Sequence number (0 when not used).
    #[inline(always)]
    pub fn sequence(&self) -> u16 {
        be16(self.buffer.as_ref(), cw_field::SEQUENCE)
    }
}

impl<'a> PwControlWord<&'a [u8]> {
    /// The pseudowire payload (for an Ethernet pseudowire, the customer
    /// frame from its destination address on).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[cw_field::PAYLOAD..]
    }
}

mod ach_field {
    pub(super) const VERSION: usize = 0;
    pub(super) const CHANNEL_TYPE: usize = 2;
    pub(super) const PAYLOAD: usize = 4;
}

/// Length of the associated channel header.
pub const ACH_LEN: usize = ach_field::PAYLOAD;

/// Associated channel header (RFC 4385 §5, RFC 5586 §2): first nibble 1,
/// version, reserved byte, channel type. It follows the bottom label of a
/// pseudowire (in place of the control word) or a GAL. After `new_checked`
/// no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct AchHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AchHeader<T> {
    /// `Truncated` unless the 4 bytes are present; `Malformed` unless the
    /// first nibble is 1.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < ACH_LEN {
            return Err(WireError::Truncated);
        }
        if b[ach_field::VERSION] >> 4 != 1 {
            return Err(WireError::Malformed);
        }
        Ok(AchHeader { buffer })
    }

    /// Version (4 bits); 0 is the only one defined.
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[ach_field::VERSION] & 0x0f
    }

    /// Channel type ([`ach_channel`]).
    #[inline(always)]
    pub fn channel_type(&self) -> u16 {
        be16(self.buffer.as_ref(), ach_field::CHANNEL_TYPE)
    }
}

impl<'a> AchHeader<&'a [u8]> {
    /// The channel's message.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[ach_field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ach_fields() {
        let b = [0x10, 0x00, 0x00, 0x21, 0x45];
        let a = AchHeader::new_checked(&b[..]).unwrap();
        assert_eq!(a.version(), 0);
        assert_eq!(a.channel_type(), ach_channel::IPV4);
        assert_eq!(a.payload(), &[0x45]);
        let a = AchHeader::new_checked(&[0x11, 0xff, 0x00, 0x07][..]).unwrap();
        assert_eq!((a.version(), a.channel_type()), (1, 7));
        for n in 0..ACH_LEN {
            assert_eq!(
                AchHeader::new_checked(&b[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        for b0 in [0x00u8, 0x20, 0x45, 0x60] {
            assert_eq!(
                AchHeader::new_checked(&[b0, 0, 0, 0x21][..]).err(),
                Some(WireError::Malformed),
                "{b0:#04x}"
            );
        }
    }

    #[test]
    fn control_word_fields() {
        // Flags 0x5, FRG 2, length 46, sequence 0x1234, then a MAC byte.
        let b = [0x05, 0xae, 0x12, 0x34, 0x00];
        let cw = PwControlWord::new_checked(&b[..]).unwrap();
        assert_eq!(cw.flags(), 5);
        assert_eq!(cw.frag(), 2);
        assert_eq!(cw.length(), 46);
        assert_eq!(cw.sequence(), 0x1234);
        assert_eq!(cw.payload(), &[0x00]);
        for n in 0..CONTROL_WORD_LEN {
            assert_eq!(
                PwControlWord::new_checked(&b[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        // G-ACh (nibble 1) and IP nibbles are not a control word.
        for b0 in [0x10u8, 0x45, 0x60, 0xf0] {
            assert_eq!(
                PwControlWord::new_checked(&[b0, 0, 0, 0][..]).err(),
                Some(WireError::Malformed),
                "{b0:#04x}"
            );
        }
    }

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
