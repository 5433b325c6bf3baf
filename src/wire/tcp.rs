//! TCP header view (RFC 9293) and flag helpers.
//!
//! No allocation, no panic after `new_checked`, no unsafe.

use super::{be16, be32, WireError};

/// TCP flag bits as found in byte 13 of the header (and in
/// `FrameFacts::tcp_flags`).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
}

/// Length of the fixed TCP header (no options).
pub const MIN_HEADER_LEN: usize = 20;

/// TCP header view. `new_checked` guarantees the 20-byte fixed header; the
/// data offset and options are not checked (nothing here reads past the
/// fixed header).
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// `Truncated` unless the 20-byte fixed header is present.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(TcpPacket { buffer })
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
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline(always)]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes from the data offset (not validated).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flag byte (see [`flags`]); the NS bit of byte 12 is not included.
    #[inline(always)]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline(always)]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
}

/// The TCP flag byte with exact-match helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// True when every bit of `mask` is set.
    #[inline(always)]
    pub const fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// A connection opening: SYN set, ACK clear (RST, FIN clear too).
    #[inline(always)]
    pub const fn is_syn(self) -> bool {
        self.0 & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN
    }

    /// The answer to an opening: both SYN and ACK set (RST, FIN clear).
    #[inline(always)]
    pub const fn is_syn_ack(self) -> bool {
        self.0 & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN | flags::ACK
    }

    #[inline(always)]
    pub const fn is_fin(self) -> bool {
        self.0 & flags::FIN != 0
    }

    #[inline(always)]
    pub const fn is_rst(self) -> bool {
        self.0 & flags::RST != 0
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    const HDR: [u8; 20] = [
        0xc3, 0x50, 0x01, 0xbb, // 50000 -> 443
        0x00, 0x00, 0x10, 0x00, // seq
        0x00, 0x00, 0x20, 0x01, // ack
        0x50, 0x12, 0xfa, 0xf0, // offset 5, SYN+ACK, window
        0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn tcp_fields() {
        let t = TcpPacket::new_checked(&HDR[..]).unwrap();
        assert_eq!(t.src_port(), 50000);
        assert_eq!(t.dst_port(), 443);
        assert_eq!(t.seq_number(), 0x1000);
        assert_eq!(t.ack_number(), 0x2001);
        assert_eq!(t.header_len(), 20);
        assert_eq!(t.flags(), TcpFlags(SYN | ACK));
        assert_eq!(t.window(), 0xfaf0);
        assert_eq!(
            TcpPacket::new_checked(&HDR[..19]).err(),
            Some(WireError::Truncated)
        );
    }

    /// Each helper against each common flag combination: a `synack()` that
    /// was true when either flag was set once shipped elsewhere.
    #[test]
    fn tcp_flag_helpers_table() {
        // flags, is_syn, is_syn_ack, is_fin, is_rst
        let table: &[(u8, bool, bool, bool, bool)] = &[
            (0, false, false, false, false),
            (SYN, true, false, false, false),
            (SYN | ACK, false, true, false, false),
            (ACK, false, false, false, false),
            (FIN, false, false, true, false),
            (FIN | ACK, false, false, true, false),
            (RST, false, false, false, true),
            (RST | ACK, false, false, false, true),
            (PSH | ACK, false, false, false, false),
            (SYN | ECE | CWR, true, false, false, false),
            (SYN | ACK | ECE, false, true, false, false),
            (SYN | RST, false, false, false, true),
            (SYN | FIN, false, false, true, false),
            (SYN | ACK | FIN, false, false, true, false),
            (0xff, false, false, true, true),
        ];
        for &(f, syn, syn_ack, fin, rst) in table {
            let t = TcpFlags(f);
            assert_eq!(t.is_syn(), syn, "is_syn {f:#04x}");
            assert_eq!(t.is_syn_ack(), syn_ack, "is_syn_ack {f:#04x}");
            assert_eq!(t.is_fin(), fin, "is_fin {f:#04x}");
            assert_eq!(t.is_rst(), rst, "is_rst {f:#04x}");
        }
        assert!(TcpFlags(SYN | ACK).contains(SYN | ACK));
        assert!(!TcpFlags(SYN).contains(SYN | ACK));
        assert!(!TcpFlags(ACK).contains(SYN | ACK));
    }
}
