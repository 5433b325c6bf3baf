//! Ethernet II header and VLAN tag (802.1Q / 802.1ad / 0x9100) views.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

/// EtherType values the parser dispatches on (and a few it names).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    pub const LLDP: u16 = 0x88cc;
    /// Pre-standard QinQ outer tag still used by some vendors.
    pub const QINQ_9100: u16 = 0x9100;
    /// Values below this are 802.3 length fields, not EtherTypes.
    pub const MIN_ETHERTYPE: u16 = 0x0600;

    /// True for the tag protocol ids that introduce a 4-byte VLAN tag.
    #[inline(always)]
    pub const fn is_vlan_tpid(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_9100)
    }
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet II header (no tags).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// Ethernet II header view. After `new_checked` succeeds no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the 14-byte header is present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    /// The EtherType (or the TPID of the first VLAN tag).
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// The bytes after the 14-byte header (VLAN tags included).
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

mod tag_field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Length of one VLAN tag as it follows a TPID: TCI and inner EtherType.
pub const VLAN_TAG_LEN: usize = tag_field::PAYLOAD;

/// One VLAN tag, viewed from its TCI (the TPID is the EtherType before it).
#[derive(Clone, Copy, Debug)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Checks that TCI and inner EtherType are present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < VLAN_TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    #[inline(always)]
    fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), tag_field::TCI)
    }

    /// Priority code point (3 bits).
    #[inline(always)]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline(always)]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN id (12 bits); 0 in a priority-only tag.
    #[inline(always)]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The EtherType (or next TPID) after this tag.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), tag_field::ETHERTYPE)
    }
}

impl<'a> VlanTag<&'a [u8]> {
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[tag_field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 22] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // dst
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // src
        0x81, 0x00, // TPID
        0xb0, 0x64, // PCP 5, DEI 1, VID 100
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn ethernet_fields() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(f.src_addr(), [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]);
        assert_eq!(f.ethertype(), ethertype::VLAN);
        assert!(ethertype::is_vlan_tpid(f.ethertype()));
        let t = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), ethertype::IPV4);
        assert_eq!(t.payload(), &FRAME[18..]);
    }

    #[test]
    fn ethernet_short() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        assert!(EthernetFrame::new_checked(&FRAME[..HEADER_LEN]).is_ok());
        for n in 0..VLAN_TAG_LEN {
            assert_eq!(
                VlanTag::new_checked(&FRAME[14..14 + n]).err(),
                Some(WireError::Truncated)
            );
        }
    }

    #[test]
    fn vlan_tpids() {
        for (t, want) in [
            (0x8100, true),
            (0x88a8, true),
            (0x9100, true),
            (0x0800, false),
            (0x86dd, false),
            (0x9200, false),
        ] {
            assert_eq!(ethertype::is_vlan_tpid(t), want, "{t:#06x}");
        }
    }
}
