//! Ethernet II header and the tags that sit between its addresses and its
//! EtherType: VLAN tags (802.1Q / 802.1ad / 0x9100), Cisco VN-Tag (0x8926)
//! and IEEE 802.1BR E-Tag (0x893f).
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
    /// 802.1ah provider backbone bridging I-TAG; a customer Ethernet frame
    /// follows it (see [`crate::wire::pbb`]).
    pub const PBB_ITAG: u16 = 0x88e7;
    /// Cisco VN-Tag (6-byte tag, then the EtherType).
    pub const VNTAG: u16 = 0x8926;
    /// IEEE 802.1BR E-Tag (8-byte tag, then the EtherType).
    pub const ETAG: u16 = 0x893f;
    /// Network Service Header (RFC 8300).
    pub const NSH: u16 = 0x894f;
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
    pub(super) const DST: Range<usize> = 0..6;
    pub(super) const SRC: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: usize = 12;
    pub(super) const PAYLOAD: usize = 14;
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
    pub(super) const TCI: usize = 0;
    pub(super) const ETHERTYPE: usize = 2;
    pub(super) const PAYLOAD: usize = 4;
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

mod vntag_field {
    pub(super) const WORD0: usize = 0;
    pub(super) const WORD1: usize = 2;
    pub(super) const ETHERTYPE: usize = 4;
    pub(super) const PAYLOAD: usize = 6;
}

/// Length of a VN-Tag as it follows its TPID: 4-byte tag and EtherType.
pub const VNTAG_LEN: usize = vntag_field::PAYLOAD;

/// Cisco VN-Tag (EtherType 0x8926), viewed from after its TPID: direction,
/// pointer and destination VIF (16 bits), looped, reserved, version and
/// source VIF (16 bits), then the EtherType.
#[derive(Clone, Copy, Debug)]
pub struct VnTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VnTag<T> {
    /// Checks that the tag and inner EtherType are present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < VNTAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VnTag { buffer })
    }

    /// The D bit: set on frames from the bridge to the interface virtualizer.
    #[inline(always)]
    pub fn direction(&self) -> bool {
        self.buffer.as_ref()[vntag_field::WORD0] & 0x80 != 0
    }

    /// The P bit: the destination VIF is a list pointer.
    #[inline(always)]
    pub fn pointer(&self) -> bool {
        self.buffer.as_ref()[vntag_field::WORD0] & 0x40 != 0
    }

    /// Destination VIF id (14 bits).
    #[inline(always)]
    pub fn dst_vif(&self) -> u16 {
        be16(self.buffer.as_ref(), vntag_field::WORD0) & 0x3fff
    }

    /// The L bit: the frame is looped back to its source.
    #[inline(always)]
    pub fn looped(&self) -> bool {
        self.buffer.as_ref()[vntag_field::WORD1] & 0x80 != 0
    }

    /// Version (2 bits).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        (self.buffer.as_ref()[vntag_field::WORD1] >> 4) & 0x3
    }

    /// Source VIF id (12 bits).
    #[inline(always)]
    pub fn src_vif(&self) -> u16 {
        be16(self.buffer.as_ref(), vntag_field::WORD1) & 0x0fff
    }

    /// The EtherType (or next TPID) after this tag.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), vntag_field::ETHERTYPE)
    }
}

impl<'a> VnTag<&'a [u8]> {
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[vntag_field::PAYLOAD..]
    }
}

mod etag_field {
    pub(super) const TCI0: usize = 0;
    pub(super) const TCI2: usize = 2;
    pub(super) const INGRESS_EXT: usize = 4;
    pub(super) const ECID_EXT: usize = 5;
    pub(super) const ETHERTYPE: usize = 6;
    pub(super) const PAYLOAD: usize = 8;
}

/// Length of an E-Tag as it follows its TPID: 6-byte E-TCI and EtherType.
pub const ETAG_LEN: usize = etag_field::PAYLOAD;

/// IEEE 802.1BR E-Tag (EtherType 0x893f), viewed from after its TPID:
/// E-PCP, E-DEI, ingress E-CID base, GRP, E-CID base and the two 8-bit
/// extensions, then the EtherType.
#[derive(Clone, Copy, Debug)]
pub struct ETag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ETag<T> {
    /// Checks that the E-TCI and inner EtherType are present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ETAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(ETag { buffer })
    }

    /// E-PCP (3 bits).
    #[inline(always)]
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[etag_field::TCI0] >> 5
    }

    /// E-DEI.
    #[inline(always)]
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[etag_field::TCI0] & 0x10 != 0
    }

    /// Ingress E-CID base (12 bits).
    #[inline(always)]
    pub fn ingress_ecid_base(&self) -> u16 {
        be16(self.buffer.as_ref(), etag_field::TCI0) & 0x0fff
    }

    /// GRP (2 bits): 0 for a single destination, else a multicast group.
    #[inline(always)]
    pub fn grp(&self) -> u8 {
        (self.buffer.as_ref()[etag_field::TCI2] >> 4) & 0x3
    }

    /// E-CID base (12 bits).
    #[inline(always)]
    pub fn ecid_base(&self) -> u16 {
        be16(self.buffer.as_ref(), etag_field::TCI2) & 0x0fff
    }

    #[inline(always)]
    pub fn ingress_ecid_ext(&self) -> u8 {
        self.buffer.as_ref()[etag_field::INGRESS_EXT]
    }

    #[inline(always)]
    pub fn ecid_ext(&self) -> u8 {
        self.buffer.as_ref()[etag_field::ECID_EXT]
    }

    /// The EtherType (or next TPID) after this tag.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), etag_field::ETHERTYPE)
    }
}

impl<'a> ETag<&'a [u8]> {
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[etag_field::PAYLOAD..]
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
    fn vntag_fields() {
        // D=1 P=0 dst VIF 0x1234; L=1 version 1 src VIF 0xabc; then 802.1Q.
        let b = [0x92, 0x34, 0x9a, 0xbc, 0x81, 0x00, 0x00, 0x64];
        let t = VnTag::new_checked(&b[..]).unwrap();
        assert!(t.direction());
        assert!(!t.pointer());
        assert_eq!(t.dst_vif(), 0x1234);
        assert!(t.looped());
        assert_eq!(t.version(), 1);
        assert_eq!(t.src_vif(), 0xabc);
        assert_eq!(t.ethertype(), ethertype::VLAN);
        assert_eq!(t.payload(), &b[6..]);
        let b = [0x7f, 0xff, 0x00, 0x01, 0x08, 0x00];
        let t = VnTag::new_checked(&b[..]).unwrap();
        assert!(!t.direction());
        assert!(t.pointer());
        assert_eq!(t.dst_vif(), 0x3fff);
        assert!(!t.looped());
        assert_eq!(t.version(), 0);
        assert_eq!(t.src_vif(), 1);
        for n in 0..VNTAG_LEN {
            assert_eq!(
                VnTag::new_checked(&b[..n]).err(),
                Some(WireError::Truncated)
            );
        }
    }

    #[test]
    fn etag_fields() {
        // PCP 3, DEI 1, ingress E-CID base 0x123; GRP 2, E-CID base 0x456;
        // extensions 0x78 and 0x9a; then IPv6.
        let b = [0x71, 0x23, 0x24, 0x56, 0x78, 0x9a, 0x86, 0xdd, 0x60];
        let t = ETag::new_checked(&b[..]).unwrap();
        assert_eq!(t.pcp(), 3);
        assert!(t.dei());
        assert_eq!(t.ingress_ecid_base(), 0x123);
        assert_eq!(t.grp(), 2);
        assert_eq!(t.ecid_base(), 0x456);
        assert_eq!(t.ingress_ecid_ext(), 0x78);
        assert_eq!(t.ecid_ext(), 0x9a);
        assert_eq!(t.ethertype(), ethertype::IPV6);
        assert_eq!(t.payload(), &[0x60]);
        for n in 0..ETAG_LEN {
            assert_eq!(ETag::new_checked(&b[..n]).err(), Some(WireError::Truncated));
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
