//! Zero-copy header views and the frame parser.
//!
//! Nothing here allocates, and no function panics on any input: every
//! header is reached through a `new_checked` view, which checks the length
//! once; its accessors then index within that length. No unsafe code.
//! Depends on nothing else in the crate.
//!
//! Views (smoltcp style, `XxxPacket<T: AsRef<[u8]>>`):
//! [`ethernet`] (Ethernet II, VLAN tags, VN-Tag, E-Tag), [`llc`] (LLC and
//! SNAP), [`pbb`] (802.1ah I-TAG), [`mpls`] (labels and the pseudowire
//! control word), [`pppoe`], [`nsh`], [`ipv4`], [`ipv6`] (fixed header and
//! extension headers), [`tcp`], [`udp`] (also UDP-Lite), [`sctp`], [`icmp`]
//! (ICMP and ICMPv6). The walk from Ethernet to the transport header is
//! [`parse_frame_with`] ([`parse_frame`] with default [`WireOptions`]); its
//! docs list the choices made for ambiguous input, and
//! `docs/ENCAPSULATIONS.md` what is entered and what is not.

pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod llc;
pub mod mpls;
pub mod nsh;
mod parse;
pub mod pbb;
pub mod pppoe;
#[cfg(test)]
mod robustness;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use parse::{
    parse_frame, parse_frame_with, MplsPayload, WireOptions, MAX_ENCAP_DEPTH, MAX_IPV6_EXT_HEADERS,
    MAX_MPLS_LABELS, MAX_VLAN_TAGS,
};

/// IP protocol numbers (IPv4 protocol field, IPv6 next header).
pub mod ip_proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// Big-endian u16 at `at`. Callers index within a length their view checked.
#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian u32 at `at`. Callers index within a length their view checked.
#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Why a frame could not be parsed fully. Each variant feeds
/// `xdpacct_parse_errors_total{reason}`; the frame itself is still counted
/// in the interface totals with whatever was learnt before the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WireError {
    /// The captured bytes end inside a header we needed.
    Truncated = 0,
    /// A header field holds an impossible value (IHL < 5, bad IP version...).
    Malformed = 1,
    /// More VLAN tags, MPLS labels, nested encapsulation headers or IPv6
    /// extension headers than we follow.
    TooDeep = 2,
}

impl WireError {
    pub const ALL: [WireError; 3] = [
        WireError::Truncated,
        WireError::Malformed,
        WireError::TooDeep,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The `reason` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::Malformed => "malformed",
            WireError::TooDeep => "too_deep",
        }
    }
}

/// Network-layer addresses of a frame, copied out of the header (8 or 32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum L3Addrs {
    /// No IP header (ARP, LLDP, unknown EtherType, an encapsulation not
    /// entered, or parse failed before IP).
    #[default]
    None,
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
    },
}

/// What the counters need to know about one frame. Filled in place by
/// [`parse_frame_with`]; the caller reuses one value for a whole batch.
///
/// For a frame carrying a customer Ethernet frame (PBB, MPLS pseudowire,
/// NSH) or IP inside MPLS, PPPoE or NSH, the IP fields below are those of
/// the innermost IP header reached; only `vlan` is the outer frame's. The
/// frame's l2 length is the caller's (outer wire length), never parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameFacts {
    /// The first VLAN id of the outer Ethernet header (0 when untagged);
    /// tags inside a carried customer frame do not set it.
    pub vlan: u16,
    pub addrs: L3Addrs,
    /// IP total length from the header (IPv4 total length, IPv6 payload
    /// length + 40); 0 without IP. Used for `accounting.bytes = "l3"`.
    /// When the header says 0 (TSO capture, IPv6 jumbogram) see
    /// [`parse_frame_with`]: jumbo option value + 40, else the captured IP
    /// bytes as a lower bound.
    pub ip_len: u32,
    /// IP protocol / final IPv6 next header (6 tcp, 17 udp, 1 icmp, ...).
    /// Meaningless when `addrs` is `None`.
    pub protocol: u8,
    /// IPv4 ToS / IPv6 traffic class.
    pub tos: u8,
    /// Source port, or ICMP/ICMPv6 type. 0 when not known (later fragment).
    pub src_port: u16,
    /// Destination port, or ICMP/ICMPv6 code.
    pub dst_port: u16,
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20,
    /// ECE 0x40, CWR 0x80); 0 for other protocols.
    pub tcp_flags: u8,
    /// TCP sequence number; 0 for other protocols (handshake RTT, src/rtt).
    pub tcp_seq: u32,
    /// TCP acknowledgment number; 0 for other protocols.
    pub tcp_ack: u32,
    /// True for a non-first IP fragment (no transport header in it).
    pub later_fragment: bool,
    /// True when the transport header (ports, flags, ICMP type) was read.
    pub has_l4: bool,
}
