//! IEEE 802.2 LLC header and SNAP extension views, for 802.3 frames (a
//! length instead of an EtherType at offset 12).
//!
//! IP over such frames (RFC 1042, and 802.1H bridge-tunnel encapsulation)
//! is LLC DSAP 0xaa, SSAP 0xaa, control 0x03 (UI), then SNAP: a 3-byte OUI
//! 00-00-00 (or 00-00-f8) and an EtherType.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, WireError};

mod field {
    pub(super) const DSAP: usize = 0;
    pub(super) const SSAP: usize = 1;
    pub(super) const CONTROL: usize = 2;
    pub(super) const PAYLOAD: usize = 3;
}

/// Length of the LLC header with a one-byte (U-format) control field.
pub const LLC_LEN: usize = field::PAYLOAD;

/// The SAP that announces a SNAP header.
pub const SAP_SNAP: u8 = 0xaa;
/// Unnumbered information, the control field of SNAP frames.
pub const CONTROL_UI: u8 = 0x03;

/// LLC header view (DSAP, SSAP, one control byte). After `new_checked` no
/// accessor panics. I- and S-format frames have a 2-byte control field;
/// only U-format frames (SNAP among them) are entered, so one byte is read.
#[derive(Clone, Copy, Debug)]
pub struct LlcHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> LlcHeader<T> {
    /// Checks that DSAP, SSAP and control are present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < LLC_LEN {
            return Err(WireError::Truncated);
        }
        Ok(LlcHeader { buffer })
    }

    #[inline(always)]
    pub fn dsap(&self) -> u8 {
        self.buffer.as_ref()[field::DSAP]
    }

    /// SSAP including its command/response bit.
    #[inline(always)]
    pub fn ssap(&self) -> u8 {
        self.buffer.as_ref()[field::SSAP]
    }

    #[inline(always)]
    pub fn control(&self) -> u8 {
        self.buffer.as_ref()[field::CONTROL]
    }

    /// DSAP 0xaa, SSAP 0xaa (a command) and control UI: a SNAP header follows.
    #[inline(always)]
    pub fn is_snap(&self) -> bool {
        self.dsap() == SAP_SNAP && self.ssap() == SAP_SNAP && self.control() == CONTROL_UI
    }
}

impl<'a> LlcHeader<&'a [u8]> {
    /// The bytes after the 3-byte header.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

mod snap_field {
    use core::ops::Range;
    pub(super) const OUI: Range<usize> = 0..3;
    pub(super) const PROTOCOL_ID: usize = 3;
    pub(super) const PAYLOAD: usize = 5;
}

/// Length of the SNAP extension (OUI and protocol id).
pub const SNAP_LEN: usize = snap_field::PAYLOAD;

/// OUI 00-00-00: the protocol id is an EtherType (RFC 1042).
pub const OUI_ETHERTYPE: [u8; 3] = [0x00, 0x00, 0x00];
/// OUI 00-00-f8: IEEE 802.1H bridge tunnel; the protocol id is an EtherType too.
pub const OUI_BRIDGE_TUNNEL: [u8; 3] = [0x00, 0x00, 0xf8];

/// SNAP extension view, after an LLC header for which
/// [`LlcHeader::is_snap`] holds. After `new_checked` no accessor panics.
#[derive(Clone, Copy, Debug)]
pub struct SnapHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SnapHeader<T> {
    /// Checks that OUI and protocol id are present (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < SNAP_LEN {
            return Err(WireError::Truncated);
        }
        Ok(SnapHeader { buffer })
    }

    #[inline(always)]
    pub fn oui(&self) -> [u8; 3] {
        let mut o = [0; 3];
        o.copy_from_slice(&self.buffer.as_ref()[snap_field::OUI]);
        o
    }

    /// The protocol id: an EtherType when [`Self::ethertype`] is `Some`.
    #[inline(always)]
    pub fn protocol_id(&self) -> u16 {
        be16(self.buffer.as_ref(), snap_field::PROTOCOL_ID)
    }

    /// The EtherType, when the OUI says the protocol id is one
    /// (00-00-00 or 00-00-f8); `None` for vendor protocols (Cisco CDP...).
    #[inline(always)]
    pub fn ethertype(&self) -> Option<u16> {
        match self.oui() {
            OUI_ETHERTYPE | OUI_BRIDGE_TUNNEL => Some(self.protocol_id()),
            _ => None,
        }
    }
}

impl<'a> SnapHeader<&'a [u8]> {
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[snap_field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llc_snap_fields() {
        let b = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x45];
        let l = LlcHeader::new_checked(&b[..]).unwrap();
        assert_eq!((l.dsap(), l.ssap(), l.control()), (0xaa, 0xaa, 0x03));
        assert!(l.is_snap());
        let s = SnapHeader::new_checked(l.payload()).unwrap();
        assert_eq!(s.oui(), [0, 0, 0]);
        assert_eq!(s.protocol_id(), 0x0800);
        assert_eq!(s.ethertype(), Some(0x0800));
        assert_eq!(s.payload(), &[0x45]);
        // 802.1H bridge tunnel.
        let s = SnapHeader::new_checked(&[0x00, 0x00, 0xf8, 0x86, 0xdd][..]).unwrap();
        assert_eq!(s.ethertype(), Some(0x86dd));
        // Cisco OUI (CDP): the protocol id is not an EtherType.
        let s = SnapHeader::new_checked(&[0x00, 0x00, 0x0c, 0x20, 0x00][..]).unwrap();
        assert_eq!(s.protocol_id(), 0x2000);
        assert_eq!(s.ethertype(), None);
        for n in 0..LLC_LEN {
            assert_eq!(
                LlcHeader::new_checked(&b[..n]).err(),
                Some(WireError::Truncated)
            );
        }
        for n in 0..SNAP_LEN {
            assert_eq!(
                SnapHeader::new_checked(&b[3..3 + n]).err(),
                Some(WireError::Truncated)
            );
        }
    }

    /// Only DSAP = SSAP = 0xaa with control UI is SNAP: a response (SSAP
    /// 0xab), STP (0x42), NetBIOS (0xf0), IPX raw (0xff), XID/TEST control.
    #[test]
    fn is_snap_table() {
        for (b, want) in [
            ([0xaa, 0xaa, 0x03], true),
            ([0xaa, 0xab, 0x03], false),
            ([0xaa, 0xaa, 0xaf], false),
            ([0xaa, 0xaa, 0xe3], false),
            ([0x42, 0x42, 0x03], false),
            ([0xf0, 0xf0, 0x03], false),
            ([0xff, 0xff, 0x00], false),
            ([0x06, 0x06, 0x03], false),
        ] {
            assert_eq!(
                LlcHeader::new_checked(&b[..]).unwrap().is_snap(),
                want,
                "{b:02x?}"
            );
        }
    }
}
