//! The frame walk: Ethernet and its tags (VLAN, VN-Tag, E-Tag), the
//! encapsulations carrying IP or a customer Ethernet frame (MPLS with
//! pseudowires, PPPoE, PBB, NSH, LLC/SNAP), IPv4 or IPv6 (with extension
//! headers), then the transport header.
//!
//! No allocation, no panic on any input, no unsafe. Every loop is bounded.
//!
//! How ambiguous input is handled is listed on [`parse_frame_with`];
//! `docs/ENCAPSULATIONS.md` has the table of what is entered.

use super::ethernet::{ethertype, ETag, EthernetFrame, VlanTag, VnTag};
use super::icmp::IcmpPacket;
use super::ip_proto;
use super::ipv4::Ipv4Packet;
use super::ipv6::{
    AuthHeader, Ipv6ExtHeader, Ipv6FragHeader, Ipv6Packet, HEADER_LEN as IPV6_HEADER_LEN,
};
use super::llc::{LlcHeader, SnapHeader};
use super::mpls::{ach_channel, label, AchHeader, MplsLabel, PwControlWord};
use super::nsh::{next_proto, NshHeader};
use super::pbb::ITag;
use super::pppoe::{ppp_proto, PppoeSession};
use super::sctp::SctpPacket;
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::{FrameFacts, L3Addrs, WireError};

/// Most VLAN tags followed in one Ethernet header; one more is `TooDeep`.
pub const MAX_VLAN_TAGS: usize = 8;
/// Most MPLS label stack entries followed; one more is `TooDeep`. Segment
/// routing stacks beyond 8 labels exist, hence more than for VLANs.
pub const MAX_MPLS_LABELS: usize = 12;
/// Most IPv6 extension headers skipped; one more is `TooDeep`.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;
/// Most headers followed between the outer Ethernet header and the IP
/// header, whatever their kind: each VLAN tag, VN-Tag, E-Tag, MPLS label,
/// pseudowire control word, associated channel header, PBB I-TAG, NSH,
/// LLC/SNAP header, PPPoE header and carried (inner) Ethernet header
/// counts one. One more is `TooDeep`.
/// This bounds nesting such as a pseudowire inside MPLS inside a PBB frame.
pub const MAX_ENCAP_DEPTH: usize = 32;

/// What follows the bottom of an MPLS label stack. MPLS does not say: only
/// the label does, and only the operator knows the label plan. Labels that
/// do say (IPv4 and IPv6 explicit null, GAL) are honoured in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MplsPayload {
    /// From the first nibble: 4 IPv4, 6 IPv6, 0 a pseudowire control word
    /// then a customer Ethernet frame (RFC 4448 with control word), 1 an
    /// associated channel header (its IPv4 / IPv6 channel types are
    /// entered), anything else not entered (non-IP). An Ethernet
    /// pseudowire *without* control word is misread (as IP when the
    /// destination MAC starts with nibble 4 or 6, as a control word when 0).
    #[default]
    Guess,
    /// Every payload is a customer Ethernet frame without control word
    /// (RFC 4448 §4.4 without the optional control word). For links that
    /// carry only such pseudowires: IP after the bottom label (L3VPN) is
    /// then misread as Ethernet.
    EthernetNoControlWord,
    /// From the first nibble, 4 IPv4, 6 IPv6 and 1 associated channel as
    /// for `Guess`; a control word (0) is not entered, so neither are
    /// pseudowires. For links whose control-word pseudowires carry
    /// something other than Ethernet (ATM, TDM, frame relay...).
    IpOnly,
}

impl MplsPayload {
    pub const ALL: [MplsPayload; 3] = [
        MplsPayload::Guess,
        MplsPayload::EthernetNoControlWord,
        MplsPayload::IpOnly,
    ];

    /// The setting's value: `guess`, `ethernet_no_control_word`, `ip_only`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MplsPayload::Guess => "guess",
            MplsPayload::EthernetNoControlWord => "ethernet_no_control_word",
            MplsPayload::IpOnly => "ip_only",
        }
    }

    /// The inverse of [`Self::as_str`]; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Operator choices the frame walk cannot guess. `Copy`, passed by
/// reference to [`parse_frame_with`]; [`parse_frame`] uses the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct WireOptions {
    /// How the payload after the bottom MPLS label is read.
    pub mpls_payload: MplsPayload,
}

impl WireOptions {
    /// The defaults (what [`parse_frame`] uses).
    pub const DEFAULT: WireOptions = WireOptions {
        mpls_payload: MplsPayload::Guess,
    };
}

/// [`parse_frame_with`] with [`WireOptions::DEFAULT`].
pub fn parse_frame(frame: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    walk(frame, out, &WireOptions::DEFAULT)
}

/// Parses an Ethernet frame (the captured bytes, possibly shorter than the
/// wire length) into `out`. On error `out` keeps what was learnt so far
/// (e.g. addresses when only the transport header is cut off).
///
/// Choices for ambiguous input (the frame is always still counted by the
/// caller, once; only `Err` values feed the parse-error counters):
///
/// - A capture that ends inside the payload is normal (caplen < wire
///   length) and not an error. `Truncated` means the bytes end inside a
///   header we needed; `out` keeps what was learnt before that header.
/// - Non-IP EtherTypes (ARP, LLDP, PPPoE discovery, MACsec...), 802.3
///   frames other than LLC/SNAP with an EtherType, and PPPoE sessions
///   carrying anything but IPv4, IPv6 or MPLS are `Ok` with
///   `addrs == None`.
/// - Encapsulations carrying a customer Ethernet frame (PBB, MPLS
///   pseudowires, NSH with next protocol Ethernet) are entered: the
///   addresses, lengths, protocol and ports are those of the innermost IP
///   header reached; the caller's l2 length stays the outer wire length.
///   Tunnels inside IP (GRE, VXLAN, Geneve, IP-in-IP, L2TP) are not
///   entered: the outer IP header is the frame's.
/// - VLAN tags: TPIDs 0x8100, 0x88a8 and 0x9100, up to [`MAX_VLAN_TAGS`]
///   in one Ethernet header; one more is `TooDeep`. `vlan` is the id of the
///   first VLAN tag of the outer Ethernet header (behind a VN-Tag or E-Tag
///   if there is one); tags inside a carried customer frame do not set it.
/// - VN-Tag (0x8926) and E-Tag (0x893f) are skipped like VLAN tags.
/// - 802.3 frames (a length < 0x0600 instead of an EtherType): LLC DSAP
///   0xaa, SSAP 0xaa, control 0x03, then SNAP with OUI 00-00-00 or
///   00-00-f8 give the EtherType, which is followed. The length field is
///   not checked against the frame. Fewer than the 3 LLC bytes, or than
///   the 5 SNAP bytes after an LLC SNAP header, is `Truncated`.
/// - At most [`MAX_ENCAP_DEPTH`] headers between the outer Ethernet header
///   and IP (tags, labels, and the headers above); one more is `TooDeep`.
/// - MPLS: up to [`MAX_MPLS_LABELS`] entries before the bottom of stack,
///   else `TooDeep`. A label stack with no byte after it is `Truncated`.
///   A bottom label 0 (IPv4 explicit null) is followed by IPv4, 2 (IPv6
///   explicit null) by IPv6, 13 (GAL) by an associated channel header.
///   Otherwise [`WireOptions::mpls_payload`] decides ([`MplsPayload`]);
///   by default 4 IPv4, 6 IPv6, 0 control word + Ethernet, 1 associated
///   channel header, others non-IP. An associated channel (version 0)
///   with channel type 0x0021 / 0x0057 carries IPv4 / IPv6 (VCCV, BFD),
///   which is entered; other channels are non-IP `Ok`.
///   A misread payload is not an error of its own: it gives whatever its
///   bytes give (usually non-IP `Ok`, sometimes `Malformed`).
/// - PPPoE session: version/type other than 0x11 is `Malformed`. The PPP
///   protocol field is one byte when odd (protocol-field compression,
///   RFC 1661 §6.5), else two. PPP protocols 0x0021 IPv4, 0x0057 IPv6,
///   0x0281 / 0x0283 MPLS are entered.
/// - PBB (0x88e7): the 4-byte I-TAG, then the customer Ethernet header.
/// - NSH (0x894f): version other than 0, or a length below 2 words, is
///   `Malformed`; the payload starts after the declared length. Next
///   protocols IPv4, IPv6, Ethernet, NSH and MPLS are entered; others are
///   non-IP `Ok`.
/// - IPv4: version != 4 or IHL < 5 is `Malformed`; so is a total length
///   smaller than the header. A total length of 0 is not an error: it is
///   what a host-side capture of a TSO or Linux BIG TCP packet shows (as
///   tcpdump assumes); `ip_len` is then the captured IP bytes, a lower
///   bound, like the IPv6 payload-length-0 fallback below. A non-first
///   fragment (offset != 0) sets `later_fragment` and is `Ok` without
///   transport header, even if its options are cut off. AH inside IPv4 is
///   not skipped (`protocol` = 51).
/// - The transport header is looked for within the IP length (so Ethernet
///   padding is never read as a header). When it does not fit: `Truncated`
///   if the capture ended first, `Malformed` if the IP length did (e.g. a
///   tiny first fragment).
/// - IPv6: version != 6 is `Malformed`. Extension headers hop-by-hop (0),
///   routing (43), fragment (44), destination options (60) and AH (51,
///   length (len + 2) * 4) are skipped, at most [`MAX_IPV6_EXT_HEADERS`];
///   one more is `TooDeep`. ESP (50), no-next-header (59) and anything else
///   end the walk: `protocol` is that value. While walking, `protocol` holds
///   the header being read, so a `Truncated` chain reports where it stopped.
///   A fragment header with offset != 0 sets `later_fragment` and
///   `protocol` = its next header.
/// - `ip_len` for IPv6 is payload length + 40. Payload length 0 (jumbogram,
///   RFC 2675): 40 + the Jumbo Payload option's value when the hop-by-hop
///   header carries one (saturating at `u32::MAX`); else 40 when the next
///   header is 59; else 40 + the captured bytes after the fixed header (a
///   lower bound; also what a host-side capture of a GSO packet gives).
/// - The transport header needed: TCP 20 bytes (ports, flags), UDP and
///   UDP-Lite 8, SCTP 12, ICMP/ICMPv6 4 (type, code, checksum). ICMP (1) is
///   read only over IPv4 and ICMPv6 (58) only over IPv6. TCP data offset,
///   checksums and other fields we do not use are not validated.
pub fn parse_frame_with(
    frame: &[u8],
    out: &mut FrameFacts,
    opts: &WireOptions,
) -> Result<(), WireError> {
    walk(frame, out, opts)
}

/// The walk behind both entry points; inlined into each so that the
/// default options are constants in [`parse_frame`].
#[inline(always)]
fn walk(frame: &[u8], out: &mut FrameFacts, opts: &WireOptions) -> Result<(), WireError> {
    *out = FrameFacts::default();
    let eth = EthernetFrame::new_checked(frame)?;
    let rest = eth.payload();
    // Untagged IP first: the common case takes no detour.
    match eth.ethertype() {
        ethertype::IPV4 => parse_ipv4(rest, out),
        ethertype::IPV6 => parse_ipv6(rest, out),
        t => parse_encapsulated(t, rest, out, opts),
    }
}

/// Where the walk is: what `rest` starts with.
#[derive(Clone, Copy)]
enum Next {
    /// The bytes after an EtherType (or TPID) field holding this value.
    EtherType(u16),
    /// A carried customer Ethernet frame, from its destination address.
    Ethernet,
    Mpls,
    Nsh,
    /// A G-ACh message, from its associated channel header.
    Ach,
    Ipv4,
    Ipv6,
}

/// Counts one more header against [`MAX_ENCAP_DEPTH`].
#[inline(always)]
fn enter(depth: &mut usize) -> Result<(), WireError> {
    if *depth == MAX_ENCAP_DEPTH {
        return Err(WireError::TooDeep);
    }
    *depth += 1;
    Ok(())
}

/// Everything after the outer EtherType when it is not plain IP. One loop,
/// each turn consuming one header, so nesting costs no stack and is bounded
/// by [`MAX_ENCAP_DEPTH`].
fn parse_encapsulated(
    first: u16,
    mut rest: &[u8],
    out: &mut FrameFacts,
    opts: &WireOptions,
) -> Result<(), WireError> {
    let mut next = Next::EtherType(first);
    let mut depth = 0;
    // VLAN tags in the current Ethernet header.
    let mut vlan_tags = 0;
    // In the outer Ethernet header, before its first VLAN tag: the next
    // VLAN tag sets `out.vlan`.
    let mut vlan_unset = true;
    loop {
        next = match next {
            Next::Ipv4 => return parse_ipv4(rest, out),
            Next::Ipv6 => return parse_ipv6(rest, out),
            Next::EtherType(t) => match t {
                ethertype::IPV4 => Next::Ipv4,
                ethertype::IPV6 => Next::Ipv6,
                ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_9100 => {
                    if vlan_tags == MAX_VLAN_TAGS {
                        return Err(WireError::TooDeep);
                    }
                    enter(&mut depth)?;
                    let tag = VlanTag::new_checked(rest)?;
                    vlan_tags += 1;
                    if vlan_unset {
                        out.vlan = tag.vid();
                        vlan_unset = false;
                    }
                    rest = tag.payload();
                    Next::EtherType(tag.ethertype())
                }
                ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST => Next::Mpls,
                ethertype::PPPOE_SESSION => {
                    enter(&mut depth)?;
                    let session = PppoeSession::new_checked(rest)?;
                    rest = session.payload();
                    match session.ppp_protocol() {
                        ppp_proto::IPV4 => Next::Ipv4,
                        ppp_proto::IPV6 => Next::Ipv6,
                        ppp_proto::MPLS_UNICAST | ppp_proto::MPLS_MULTICAST => Next::Mpls,
                        _ => return Ok(()),
                    }
                }
                ethertype::VNTAG => {
                    enter(&mut depth)?;
                    let tag = VnTag::new_checked(rest)?;
                    rest = tag.payload();
                    Next::EtherType(tag.ethertype())
                }
                ethertype::ETAG => {
                    enter(&mut depth)?;
                    let tag = ETag::new_checked(rest)?;
                    rest = tag.payload();
                    Next::EtherType(tag.ethertype())
                }
                ethertype::PBB_ITAG => {
                    enter(&mut depth)?;
                    let itag = ITag::new_checked(rest)?;
                    rest = itag.payload();
                    Next::Ethernet
                }
                ethertype::NSH => Next::Nsh,
                t if t < ethertype::MIN_ETHERTYPE => {
                    // 802.3 length field: LLC, maybe SNAP with an EtherType.
                    enter(&mut depth)?;
                    let llc = LlcHeader::new_checked(rest)?;
                    if !llc.is_snap() {
                        return Ok(());
                    }
                    let snap = SnapHeader::new_checked(llc.payload())?;
                    rest = snap.payload();
                    match snap.ethertype() {
                        // A length is not an EtherType: no LLC inside SNAP.
                        Some(t) if t >= ethertype::MIN_ETHERTYPE => Next::EtherType(t),
                        _ => return Ok(()),
                    }
                }
                _ => return Ok(()),
            },
            Next::Ethernet => {
                enter(&mut depth)?;
                let eth = EthernetFrame::new_checked(rest)?;
                rest = eth.payload();
                vlan_tags = 0;
                vlan_unset = false;
                Next::EtherType(eth.ethertype())
            }
            Next::Nsh => {
                enter(&mut depth)?;
                let nsh = NshHeader::new_checked(rest)?;
                rest = nsh.payload();
                match nsh.next_protocol() {
                    next_proto::IPV4 => Next::Ipv4,
                    next_proto::IPV6 => Next::Ipv6,
                    next_proto::ETHERNET => Next::Ethernet,
                    next_proto::NSH => Next::Nsh,
                    next_proto::MPLS => Next::Mpls,
                    _ => return Ok(()),
                }
            }
            Next::Ach => {
                enter(&mut depth)?;
                let ach = AchHeader::new_checked(rest)?;
                rest = ach.payload();
                match (ach.version(), ach.channel_type()) {
                    (0, ach_channel::IPV4) => Next::Ipv4,
                    (0, ach_channel::IPV6) => Next::Ipv6,
                    _ => return Ok(()),
                }
            }
            Next::Mpls => {
                let (payload, after) = mpls_stack(rest, &mut depth, opts)?;
                rest = payload;
                match after {
                    Some(n) => n,
                    None => return Ok(()),
                }
            }
        };
    }
}

/// Walks a label stack; returns the bytes after it (after the control word
/// when there is one) and what they are, `None` for a payload not entered.
fn mpls_stack<'a>(
    mut rest: &'a [u8],
    depth: &mut usize,
    opts: &WireOptions,
) -> Result<(&'a [u8], Option<Next>), WireError> {
    for _ in 0..MAX_MPLS_LABELS {
        enter(depth)?;
        let entry = MplsLabel::new_checked(rest)?;
        rest = entry.payload();
        if !entry.bottom_of_stack() {
            continue;
        }
        let Some(&first) = rest.first() else {
            return Err(WireError::Truncated);
        };
        let next = match entry.label() {
            label::IPV4_EXPLICIT_NULL => Some(Next::Ipv4),
            label::IPV6_EXPLICIT_NULL => Some(Next::Ipv6),
            label::GAL => Some(Next::Ach),
            _ => match (opts.mpls_payload, first >> 4) {
                (MplsPayload::EthernetNoControlWord, _) => Some(Next::Ethernet),
                (_, 4) => Some(Next::Ipv4),
                (_, 6) => Some(Next::Ipv6),
                (_, 1) => Some(Next::Ach),
                (MplsPayload::Guess, 0) => {
                    enter(depth)?;
                    let cw = PwControlWord::new_checked(rest)?;
                    rest = cw.payload();
                    Some(Next::Ethernet)
                }
                _ => None,
            },
        };
        return Ok((rest, next));
    }
    Err(WireError::TooDeep)
}

#[inline]
fn parse_ipv4(buf: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    let ip = Ipv4Packet::new_checked(buf)?;
    out.addrs = L3Addrs::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    out.protocol = ip.protocol();
    out.tos = ip.tos();
    let header_len = ip.header_len();
    let declared = ip.total_len();
    // The transport header must lie within both the captured bytes and the
    // IP total length (beyond which is Ethernet padding); which of the two
    // ends first names the error when it does not fit.
    let (ip_len, end, short) = if declared == 0 {
        // TSO / Linux BIG TCP: the length is not in the header. Use what was
        // captured (a lower bound), as for an IPv6 payload length of 0.
        (
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf.len(),
            WireError::Truncated,
        )
    } else if usize::from(declared) <= buf.len() {
        (
            u32::from(declared),
            usize::from(declared),
            WireError::Malformed,
        )
    } else {
        (u32::from(declared), buf.len(), WireError::Truncated)
    };
    out.ip_len = ip_len;
    if declared != 0 && usize::from(declared) < header_len {
        return Err(WireError::Malformed);
    }
    if ip.frag_offset() != 0 {
        out.later_fragment = true;
        return Ok(());
    }
    // `header_len <= end` unless the options are cut off.
    let Some(l4) = buf.get(header_len..end) else {
        return Err(WireError::Truncated);
    };
    parse_l4(out.protocol, ip_proto::ICMP, l4, short, out)
}

#[inline]
fn is_ipv6_ext(next_header: u8) -> bool {
    matches!(
        next_header,
        ip_proto::HOPOPT
            | ip_proto::IPV6_ROUTE
            | ip_proto::IPV6_FRAG
            | ip_proto::AH
            | ip_proto::IPV6_OPTS
    )
}

#[inline]
fn parse_ipv6(buf: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    let ip = Ipv6Packet::new_checked(buf)?;
    out.addrs = L3Addrs::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    out.tos = ip.traffic_class();
    let mut next_header = ip.next_header();
    out.protocol = next_header;
    let captured = ip.payload();
    let payload_len = ip.payload_len();
    // As for IPv4: headers are looked for within the captured bytes and the
    // declared length; which of the two ends first names the error.
    let (mut rest, short) = if payload_len == 0 && next_header != ip_proto::IPV6_NONXT {
        out.ip_len = jumbo_ip_len(next_header, captured);
        (captured, WireError::Truncated)
    } else {
        out.ip_len = u32::from(payload_len) + IPV6_HEADER_LEN as u32;
        match captured.get(..usize::from(payload_len)) {
            Some(declared) => (declared, WireError::Malformed),
            None => (captured, WireError::Truncated),
        }
    };
    let mut depth = 0;
    while is_ipv6_ext(next_header) {
        if depth == MAX_IPV6_EXT_HEADERS {
            return Err(WireError::TooDeep);
        }
        depth += 1;
        match next_header {
            ip_proto::IPV6_FRAG => {
                let frag = Ipv6FragHeader::new_checked(rest).map_err(|_| short)?;
                next_header = frag.next_header();
                if frag.frag_offset() != 0 {
                    out.protocol = next_header;
                    out.later_fragment = true;
                    return Ok(());
                }
                rest = frag.payload();
            }
            ip_proto::AH => {
                let ah = AuthHeader::new_checked(rest).map_err(|e| match e {
                    WireError::Truncated => short,
                    other => other,
                })?;
                next_header = ah.next_header();
                rest = ah.payload();
            }
            _ => {
                let ext = Ipv6ExtHeader::new_checked(rest).map_err(|_| short)?;
                next_header = ext.next_header();
                rest = ext.payload();
            }
        }
        out.protocol = next_header;
    }
    parse_l4(next_header, ip_proto::ICMPV6, rest, short, out)
}

/// `ip_len` of an IPv6 packet whose payload length field is 0 (see the
/// module docs).
#[cold]
fn jumbo_ip_len(next_header: u8, captured: &[u8]) -> u32 {
    let base = IPV6_HEADER_LEN as u32;
    if next_header == ip_proto::HOPOPT {
        if let Some(jumbo) = Ipv6ExtHeader::new_checked(captured)
            .ok()
            .and_then(|hbh| hbh.jumbo_payload_len())
        {
            return base.saturating_add(jumbo);
        }
    }
    base.saturating_add(u32::try_from(captured.len()).unwrap_or(u32::MAX))
}

/// Reads ports / flags / ICMP type and code. `l4` is bounded by both the
/// capture and the IP length; `short` is the error when the header does not
/// fit in it. `icmp` is the ICMP protocol number valid for this IP version.
#[inline(always)]
fn parse_l4(
    protocol: u8,
    icmp: u8,
    l4: &[u8],
    short: WireError,
    out: &mut FrameFacts,
) -> Result<(), WireError> {
    match protocol {
        ip_proto::TCP => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| short)?;
            out.src_port = tcp.src_port();
            out.dst_port = tcp.dst_port();
            out.tcp_flags = tcp.flags().0;
            out.tcp_seq = tcp.seq_number();
            out.tcp_ack = tcp.ack_number();
        }
        ip_proto::UDP | ip_proto::UDPLITE => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| short)?;
            out.src_port = udp.src_port();
            out.dst_port = udp.dst_port();
        }
        ip_proto::SCTP => {
            let sctp = SctpPacket::new_checked(l4).map_err(|_| short)?;
            out.src_port = sctp.src_port();
            out.dst_port = sctp.dst_port();
        }
        p if p == icmp => {
            let icmp = IcmpPacket::new_checked(l4).map_err(|_| short)?;
            out.src_port = u16::from(icmp.msg_type());
            out.dst_port = u16::from(icmp.code());
        }
        _ => return Ok(()),
    }
    out.has_l4 = true;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::tcp::{flags, TcpFlags};

    // ---- fixture builders (test only; allocation is fine here) ----

    pub(crate) const MACS: [u8; 12] = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    pub(crate) const SRC4: [u8; 4] = [192, 0, 2, 1];
    pub(crate) const DST4: [u8; 4] = [198, 51, 100, 2];
    pub(crate) const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pub(crate) const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const V4: L3Addrs = L3Addrs::V4 {
        src: SRC4,
        dst: DST4,
    };
    const V6: L3Addrs = L3Addrs::V6 {
        src: SRC6,
        dst: DST6,
    };

    pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    pub(crate) fn be(x: u16) -> [u8; 2] {
        x.to_be_bytes()
    }

    /// Ethernet header with the given EtherType / first TPID.
    pub(crate) fn eth(ethertype: u16) -> Vec<u8> {
        cat(&[&MACS, &be(ethertype)])
    }

    /// IPv4 header, TOS 0x28, TTL 64, `frag` = raw flags + offset word,
    /// total length = header + `payload_len`.
    pub(crate) fn ipv4(protocol: u8, payload_len: usize, frag: u16, opts: &[u8]) -> Vec<u8> {
        assert!(opts.len() % 4 == 0);
        let hl = 20 + opts.len();
        let total = (hl + payload_len) as u16;
        let mut h = vec![0x40 | (hl / 4) as u8, 0x28];
        h.extend_from_slice(&be(total));
        h.extend_from_slice(&[0x12, 0x34]);
        h.extend_from_slice(&be(frag));
        h.extend_from_slice(&[64, protocol, 0, 0]);
        h.extend_from_slice(&SRC4);
        h.extend_from_slice(&DST4);
        h.extend_from_slice(opts);
        h
    }

    /// IPv6 header, traffic class 0x2a, hop limit 64.
    pub(crate) fn ipv6(next_header: u8, payload_len: u16) -> Vec<u8> {
        let mut h = vec![0x62, 0xa0, 0x00, 0x00];
        h.extend_from_slice(&be(payload_len));
        h.extend_from_slice(&[next_header, 64]);
        h.extend_from_slice(&SRC6);
        h.extend_from_slice(&DST6);
        h
    }

    pub(crate) fn tcp(src: u16, dst: u16, flags: u8) -> Vec<u8> {
        let mut h = cat(&[
            &be(src),
            &be(dst),
            &[0, 0, 0, 0, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0],
        ]);
        h.truncate(20);
        h
    }

    pub(crate) fn udp(src: u16, dst: u16) -> Vec<u8> {
        cat(&[&be(src), &be(dst), &[0, 8, 0, 0]])
    }

    pub(crate) fn icmp(typ: u8, code: u8) -> Vec<u8> {
        vec![typ, code, 0, 0, 0, 1, 0, 1]
    }

    /// Generic IPv6 extension header of (len + 1) * 8 bytes (PadN filled).
    pub(crate) fn ext6(next_header: u8, len: u8) -> Vec<u8> {
        let n = (usize::from(len) + 1) * 8;
        let mut h = vec![next_header, len, 1, (n - 4) as u8];
        h.resize(n, 0);
        h
    }

    pub(crate) fn frag6(next_header: u8, offset: u16, more: bool) -> Vec<u8> {
        cat(&[
            &[next_header, 0],
            &be(offset << 3 | u16::from(more)),
            &[0, 0, 0, 7],
        ])
    }

    /// AH with length field `len`: (len + 2) * 4 bytes.
    pub(crate) fn ah(next_header: u8, len: u8) -> Vec<u8> {
        let mut h = vec![next_header, len, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 1];
        h.resize((usize::from(len) + 2) * 4, 0xa5);
        h
    }

    pub(crate) fn mpls(label: u32, bos: bool) -> [u8; 4] {
        (label << 12 | u32::from(bos) << 8 | 64).to_be_bytes()
    }

    pub(crate) fn vlan(vid: u16, next: u16) -> Vec<u8> {
        cat(&[&be(0x2000 | vid), &be(next)])
    }

    pub(crate) fn pppoe(ppp_protocol: u16, len: u16) -> Vec<u8> {
        cat(&[&[0x11, 0x00, 0x00, 0x2a], &be(len), &be(ppp_protocol)])
    }

    /// PPPoE session header with a compressed one-byte PPP protocol field.
    pub(crate) fn pppoe_pfc(ppp_protocol: u8, len: u16) -> Vec<u8> {
        cat(&[&[0x11, 0x00, 0x00, 0x2a], &be(len), &[ppp_protocol]])
    }

    /// Pseudowire control word (RFC 4385): flags 0, sequence 0x0102.
    pub(crate) const CW: [u8; 4] = [0x00, 0x00, 0x01, 0x02];

    /// PBB I-TAG (after TPID 0x88e7): I-PCP 3, I-SID `isid`.
    pub(crate) fn itag(isid: u32) -> Vec<u8> {
        (0x6000_0000 | isid).to_be_bytes().to_vec()
    }

    /// VN-Tag (after TPID 0x8926): D=1, dst VIF 5, src VIF 7.
    pub(crate) fn vntag(next: u16) -> Vec<u8> {
        cat(&[&[0x80, 0x05, 0x00, 0x07], &be(next)])
    }

    /// E-Tag (after TPID 0x893f): E-PCP 2, E-CID base 0x123.
    pub(crate) fn etag(next: u16) -> Vec<u8> {
        cat(&[&[0x40, 0x00, 0x01, 0x23, 0x00, 0x00], &be(next)])
    }

    /// LLC UI + SNAP with the given OUI and protocol id.
    pub(crate) fn snap(oui: [u8; 3], protocol_id: u16) -> Vec<u8> {
        cat(&[&[0xaa, 0xaa, 0x03], &oui, &be(protocol_id)])
    }

    /// NSH, MD type 2 with `ctx_words` empty context TLVs (class 0,
    /// type 1, length 0), SPI 42, SI 255.
    pub(crate) fn nsh(next_protocol: u8, ctx_words: u8) -> Vec<u8> {
        let mut h = vec![0x0f, 0xc0 | (2 + ctx_words), 0x02, next_protocol];
        h.extend_from_slice(&[0, 0, 42, 255]);
        for _ in 0..ctx_words {
            h.extend_from_slice(&[0, 0, 1, 0]);
        }
        h
    }

    /// Customer MAC addresses inside a carried frame: destination first
    /// nibble 0, as in most OUIs (00-1b-21...).
    pub(crate) const CMACS: [u8; 12] = [
        0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c, 0x00, 0x1b, 0x21, 0x0d, 0x0e, 0x0f,
    ];

    /// Customer Ethernet header with the given EtherType / first TPID.
    pub(crate) fn ceth(ethertype: u16) -> Vec<u8> {
        cat(&[&CMACS, &be(ethertype)])
    }

    /// Output value with every field set to junk, so unwritten fields show.
    pub(crate) fn junk() -> FrameFacts {
        FrameFacts {
            vlan: 0xa5a5,
            addrs: L3Addrs::V4 {
                src: [0xa5; 4],
                dst: [0xa5; 4],
            },
            ip_len: 0xa5a5_a5a5,
            protocol: 0xa5,
            tos: 0xa5,
            src_port: 0xa5a5,
            dst_port: 0xa5a5,
            tcp_flags: 0xa5,
            tcp_seq: 0xa5a5_a5a5,
            tcp_ack: 0xa5a5_a5a5,
            later_fragment: true,
            has_l4: true,
        }
    }

    pub(crate) fn run(frame: &[u8]) -> (Result<(), WireError>, FrameFacts) {
        let mut out = junk();
        let r = parse_frame(frame, &mut out);
        (r, out)
    }

    /// Facts of a v4 packet with the builder's addresses and TOS.
    fn v4(protocol: u8, ip_len: u32) -> FrameFacts {
        FrameFacts {
            addrs: V4,
            ip_len,
            protocol,
            tos: 0x28,
            ..FrameFacts::default()
        }
    }

    fn v6(protocol: u8, ip_len: u32) -> FrameFacts {
        FrameFacts {
            addrs: V6,
            ip_len,
            protocol,
            tos: 0x2a,
            ..FrameFacts::default()
        }
    }

    fn l4(mut f: FrameFacts, src_port: u16, dst_port: u16, tcp_flags: u8) -> FrameFacts {
        f.src_port = src_port;
        f.dst_port = dst_port;
        f.tcp_flags = tcp_flags;
        f.has_l4 = true;
        f
    }

    #[track_caller]
    fn check(frame: &[u8], want_r: Result<(), WireError>, want: FrameFacts) {
        let (r, got) = run(frame);
        assert_eq!(r, want_r, "result for {frame:02x?}");
        assert_eq!(got, want, "facts for {frame:02x?}");
    }

    const NO_CW: WireOptions = WireOptions {
        mpls_payload: MplsPayload::EthernetNoControlWord,
    };
    const IP_ONLY: WireOptions = WireOptions {
        mpls_payload: MplsPayload::IpOnly,
    };

    pub(crate) fn run_with(
        frame: &[u8],
        opts: &WireOptions,
    ) -> (Result<(), WireError>, FrameFacts) {
        let mut out = junk();
        let r = parse_frame_with(frame, &mut out, opts);
        (r, out)
    }

    #[track_caller]
    fn check_with(
        frame: &[u8],
        opts: &WireOptions,
        want_r: Result<(), WireError>,
        want: FrameFacts,
    ) {
        let (r, got) = run_with(frame, opts);
        assert_eq!(r, want_r, "result for {frame:02x?} with {opts:?}");
        assert_eq!(got, want, "facts for {frame:02x?} with {opts:?}");
    }

    fn vlan_id(vlan: u16, f: FrameFacts) -> FrameFacts {
        FrameFacts { vlan, ..f }
    }

    /// Every valid fixture (name, frame) with its expected facts; reused by
    /// the truncation sweep and the mutation fuzzing.
    pub(crate) fn valid_fixtures() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("v4_tcp", V4_TCP_SYN_PADDED.to_vec()),
            ("v6_icmpv6", V6_ICMPV6_ECHO.to_vec()),
            (
                "v4_udp",
                cat(&[&eth(0x0800), &ipv4(17, 8, 0, &[]), &udp(53, 40000)]),
            ),
            (
                "v4_opts",
                cat(&[
                    &eth(0x0800),
                    &ipv4(6, 20, 0, &[1, 1, 1, 0, 0x44, 4, 5, 0]),
                    &tcp(1, 2, 0x10),
                ]),
            ),
            (
                "v4_first_frag",
                cat(&[
                    &eth(0x0800),
                    &ipv4(17, 16, 0x2000, &[]),
                    &udp(1, 2),
                    &[0; 8],
                ]),
            ),
            ("v6_ext", v6_ext_chain()),
            (
                "v6_ah",
                cat(&[&eth(0x86dd), &ipv6(51, 24 + 8), &ah(17, 4), &udp(500, 4500)]),
            ),
            (
                "qinq",
                cat(&[
                    &eth(0x88a8),
                    &vlan(200, 0x8100),
                    &vlan(100, 0x0800),
                    &ipv4(6, 20, 0, &[]),
                    &tcp(1, 2, 2),
                ]),
            ),
            (
                "mpls3_v6",
                cat(&[
                    &eth(0x8847),
                    &mpls(16, false),
                    &mpls(17, false),
                    &mpls(18, true),
                    &ipv6(6, 20),
                    &tcp(1, 2, 2),
                ]),
            ),
            (
                "pppoe_v4",
                cat(&[
                    &eth(0x8864),
                    &pppoe(0x0021, 30),
                    &ipv4(1, 8, 0, &[]),
                    &icmp(8, 0),
                ]),
            ),
            (
                "pppoe_v6",
                cat(&[&eth(0x8864), &pppoe(0x0057, 50), &ipv6(17, 8), &udp(1, 2)]),
            ),
            ("v6_jumbo", v6_jumbo(0x0001_86a0)),
            (
                "pppoe_pfc_v4",
                cat(&[
                    &eth(0x8864),
                    &pppoe_pfc(0x21, 29),
                    &ipv4(6, 20, 0, &[]),
                    &tcp(1, 2, 2),
                ]),
            ),
            (
                "pppoe_pfc_v6",
                cat(&[&eth(0x8864), &pppoe_pfc(0x57, 49), &ipv6(17, 8), &udp(1, 2)]),
            ),
            (
                "pppoe_mpls_v4",
                cat(&[
                    &eth(0x8864),
                    &pppoe(0x0281, 34),
                    &mpls(16, true),
                    &ipv4(17, 8, 0, &[]),
                    &udp(1, 2),
                ]),
            ),
            ("mpls_pw_cw_v4", mpls_pw_cw_v4()),
            (
                "mpls_pw_cw_v6",
                cat(&[
                    &eth(0x8847),
                    &mpls(100, true),
                    &CW,
                    &ceth(0x86dd),
                    &ipv6(17, 8),
                    &udp(1, 2),
                ]),
            ),
            (
                "mpls_explicit_null_v6",
                cat(&[&eth(0x8847), &mpls(2, true), &ipv6(6, 20), &tcp(1, 2, 2)]),
            ),
            ("pbb_v4", pbb_v4()),
            (
                "pbb_v6",
                cat(&[
                    &eth(0x88e7),
                    &itag(7),
                    &ceth(0x86dd),
                    &ipv6(6, 20),
                    &tcp(1, 2, 2),
                ]),
            ),
            (
                "vntag_vlan_v4",
                cat(&[
                    &eth(0x8926),
                    &vntag(0x8100),
                    &vlan(100, 0x0800),
                    &ipv4(17, 8, 0, &[]),
                    &udp(1, 2),
                ]),
            ),
            (
                "etag_vlan_v6",
                cat(&[
                    &eth(0x893f),
                    &etag(0x8100),
                    &vlan(100, 0x86dd),
                    &ipv6(6, 20),
                    &tcp(1, 2, 2),
                ]),
            ),
            (
                "snap_v4",
                cat(&[
                    &eth(8 + 28),
                    &snap([0, 0, 0], 0x0800),
                    &ipv4(17, 8, 0, &[]),
                    &udp(1, 2),
                ]),
            ),
            (
                "snap_v6",
                cat(&[
                    &eth(8 + 48),
                    &snap([0, 0, 0], 0x86dd),
                    &ipv6(17, 8),
                    &udp(1, 2),
                ]),
            ),
            ("nsh_tcpdump", NSH_TCPDUMP.to_vec()),
            (
                "nsh_eth_v6",
                cat(&[
                    &eth(0x894f),
                    &nsh(3, 2),
                    &ceth(0x86dd),
                    &ipv6(17, 8),
                    &udp(1, 2),
                ]),
            ),
            ("pw_in_mpls_in_pbb", pw_in_mpls_in_pbb()),
        ]
    }

    /// Valid fixtures that need [`MplsPayload::EthernetNoControlWord`].
    fn valid_no_cw_fixtures() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("mpls_pw_nocw_v4", mpls_pw_nocw(0x00, 0x0800)),
            ("mpls_pw_nocw_v6_mac4", mpls_pw_nocw(0x44, 0x86dd)),
            (
                "mpls_pw_nocw_vlan_v4",
                cat(&[
                    &eth(0x8847),
                    &mpls(16, false),
                    &mpls(100, true),
                    &ceth(0x8100),
                    &vlan(10, 0x0800),
                    &ipv4(6, 20, 0, &[]),
                    &tcp(1, 2, 2),
                ]),
            ),
        ]
    }

    /// Ethernet pseudowire with control word: 192.0.2.1 -> 198.51.100.2 TCP
    /// SYN 40000 -> 80 inside a customer frame with VLAN 10, two labels.
    fn mpls_pw_cw_v4() -> Vec<u8> {
        cat(&[
            &eth(0x8847),
            &mpls(16, false),
            &mpls(100, true),
            &CW,
            &ceth(0x8100),
            &vlan(10, 0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(40000, 80, 2),
        ])
    }

    /// Ethernet pseudowire without control word; the customer destination
    /// MAC starts with `mac0`.
    fn mpls_pw_nocw(mac0: u8, ethertype: u16) -> Vec<u8> {
        let mut inner = ceth(ethertype);
        inner[0] = mac0;
        let ip = if ethertype == 0x0800 {
            cat(&[&ipv4(17, 8, 0, &[]), &udp(1, 2)])
        } else {
            cat(&[&ipv6(17, 8), &udp(1, 2)])
        };
        cat(&[&eth(0x8847), &mpls(100, true), &inner, &ip])
    }

    /// PBB: B-TAG 300, I-SID 100001, customer C-TAG 10, IPv4 UDP.
    fn pbb_v4() -> Vec<u8> {
        cat(&[
            &eth(0x88a8),
            &vlan(300, 0x88e7),
            &itag(100_001),
            &ceth(0x8100),
            &vlan(10, 0x0800),
            &ipv4(17, 8, 0, &[]),
            &udp(53, 40000),
        ])
    }

    /// An Ethernet pseudowire (control word) inside MPLS inside a PBB frame.
    fn pw_in_mpls_in_pbb() -> Vec<u8> {
        cat(&[
            &eth(0x88a8),
            &vlan(300, 0x88e7),
            &itag(5),
            &ceth(0x8847),
            &mpls(16, false),
            &mpls(17, true),
            &CW,
            &ceth(0x8100),
            &vlan(10, 0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 0x12),
        ])
    }

    /// Frame 1 of tcpdump's `tests/nsh.pcap` (BSD licence): NSH MD type 1,
    /// SPI 777, SI 7, then IPv4 UDP 10.0.8.3:52229 -> 10.13.13.13:8000,
    /// total length 34.
    const NSH_TCPDUMP: [u8; 72] = [
        0x52, 0x54, 0x00, 0x4b, 0x73, 0x5f, 0x02, 0x42, 0x0a, 0x00, 0x08, 0x03, 0x89, 0x4f, //
        0x00, 0x06, 0x01, 0x01, 0x00, 0x03, 0x09, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, //
        0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, // NSH
        0x45, 0x00, 0x00, 0x22, 0x28, 0x44, 0x40, 0x00, 0x40, 0x11, 0xe9, 0x6a, //
        0x0a, 0x00, 0x08, 0x03, 0x0a, 0x0d, 0x0d, 0x0d, // IPv4
        0xcc, 0x05, 0x1f, 0x40, 0x00, 0x0e, 0x00, 0x00, // UDP
        0x62, 0x65, 0x67, 0x69, 0x6e, 0x0a, // "begin\n"
    ];

    fn v6_ext_chain() -> Vec<u8> {
        // hop-by-hop (8) -> destination options (16) -> fragment (8, first) -> TCP (20)
        cat(&[
            &eth(0x86dd),
            &ipv6(0, 52),
            &ext6(60, 0),
            &ext6(44, 1),
            &frag6(6, 0, true),
            &tcp(443, 50000, 0x12),
        ])
    }

    fn v6_jumbo(jumbo: u32) -> Vec<u8> {
        let hbh = cat(&[&[6, 0, 0xc2, 4], &jumbo.to_be_bytes()]);
        cat(&[&eth(0x86dd), &ipv6(0, 0), &hbh, &tcp(1, 2, 0x10)])
    }

    /// A 60-byte minimum frame: IPv4 TCP SYN 192.0.2.1:40000 -> 198.51.100.2:80
    /// (TOS 0x28, total length 40), then 6 bytes of Ethernet padding.
    const V4_TCP_SYN_PADDED: [u8; 60] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, // Ethernet
        0x45, 0x28, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // IPv4
        192, 0, 2, 1, 198, 51, 100, 2, //
        0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
        0, // TCP
        0xee, 0xee, 0xee, 0xee, 0xee, 0xee, // padding
    ];

    /// IPv6 ICMPv6 echo request (type 128) 2001:db8::1 -> 2001:db8::2.
    const V6_ICMPV6_ECHO: [u8; 62] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd, // Ethernet
        0x62, 0xa0, 0x00, 0x00, 0x00, 0x08, 58, 64, // IPv6
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, //
        128, 0, 0x12, 0x34, 0, 1, 0, 1, // ICMPv6
    ];

    // ---- plain IPv4 / IPv6 ----

    #[test]
    fn v4_tcp_padded() {
        check(
            &V4_TCP_SYN_PADDED,
            Ok(()),
            FrameFacts {
                tcp_seq: 1,
                ..l4(v4(6, 40), 40000, 80, flags::SYN)
            },
        );
    }

    #[test]
    fn v4_udp_udplite_sctp_icmp() {
        check(
            &cat(&[&eth(0x0800), &ipv4(17, 8, 0, &[]), &udp(53, 40000)]),
            Ok(()),
            l4(v4(17, 28), 53, 40000, 0),
        );
        check(
            &cat(&[&eth(0x0800), &ipv4(136, 8, 0, &[]), &udp(5004, 5005)]),
            Ok(()),
            l4(v4(136, 28), 5004, 5005, 0),
        );
        let sctp = [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 9, 0, 0, 0, 0];
        check(
            &cat(&[&eth(0x0800), &ipv4(132, 12, 0, &[]), &sctp]),
            Ok(()),
            l4(v4(132, 32), 2905, 2906, 0),
        );
        // ICMP destination unreachable / port unreachable: type -> src_port, code -> dst_port.
        check(
            &cat(&[&eth(0x0800), &ipv4(1, 8, 0, &[]), &icmp(3, 3)]),
            Ok(()),
            l4(v4(1, 28), 3, 3, 0),
        );
        check(
            &cat(&[&eth(0x0800), &ipv4(1, 8, 0, &[]), &icmp(8, 0)]),
            Ok(()),
            l4(v4(1, 28), 8, 0, 0),
        );
    }

    #[test]
    fn v4_unknown_protocol_is_ok_without_l4() {
        // GRE, ESP, and ICMPv6's number inside IPv4.
        for p in [47u8, 50, 58, 255] {
            check(
                &cat(&[&eth(0x0800), &ipv4(p, 8, 0, &[]), &[0; 8]]),
                Ok(()),
                v4(p, 28),
            );
        }
    }

    #[test]
    fn v4_with_options() {
        // IHL 8: 12 bytes of options (NOP, NOP, NOP, EOL, timestamp...).
        let opts = [1, 1, 1, 0, 0x44, 8, 5, 0, 0, 0, 0, 0];
        let f = cat(&[
            &eth(0x0800),
            &ipv4(6, 20, 0, &opts),
            &tcp(1234, 22, flags::PSH | flags::ACK),
        ]);
        check(&f, Ok(()), l4(v4(6, 52), 1234, 22, 0x18));
        // Largest IHL (15): 40 bytes of options.
        let f = cat(&[&eth(0x0800), &ipv4(17, 8, 0, &[1; 40]), &udp(7, 9)]);
        check(&f, Ok(()), l4(v4(17, 68), 7, 9, 0));
    }

    #[test]
    fn v4_fragments() {
        // First fragment: MF set, offset 0 -> ports read.
        let f = cat(&[
            &eth(0x0800),
            &ipv4(17, 16, 0x2000, &[]),
            &udp(1, 2),
            &[0; 8],
        ]);
        check(&f, Ok(()), l4(v4(17, 36), 1, 2, 0));
        // Later fragments (offset 185 * 8), with and without MF: no ports,
        // even though the payload looks like a UDP header.
        for frag in [0x20b9u16, 0x00b9, 0x0001, 0x1fff] {
            let f = cat(&[&eth(0x0800), &ipv4(17, 16, frag, &[]), &udp(1, 2), &[0; 8]]);
            check(
                &f,
                Ok(()),
                FrameFacts {
                    later_fragment: true,
                    ..v4(17, 36)
                },
            );
        }
        // A later fragment needs nothing past the addresses, not even its options.
        let f = cat(&[&eth(0x0800), &ipv4(6, 100, 0x00b9, &[1; 8])]);
        check(
            &f[..14 + 22],
            Ok(()),
            FrameFacts {
                later_fragment: true,
                ..v4(6, 128)
            },
        );
        // Tiny first fragment: TCP header cut by the IP length -> Malformed.
        let f = cat(&[&eth(0x0800), &ipv4(6, 8, 0x2000, &[]), &tcp(1, 2, 2)]);
        check(&f, Err(WireError::Malformed), v4(6, 28));
    }

    #[test]
    fn v4_bad_headers() {
        // IHL < 5 and a wrong version are Malformed before any fact is learnt.
        for b0 in [0x44u8, 0x40, 0x41, 0x65, 0x55, 0x05] {
            let mut f = cat(&[&eth(0x0800), &ipv4(6, 20, 0, &[]), &tcp(1, 2, 2)]);
            f[14] = b0;
            check(&f, Err(WireError::Malformed), FrameFacts::default());
        }
        // Total length shorter than the header: addresses kept.
        let mut f = cat(&[&eth(0x0800), &ipv4(6, 20, 0, &[]), &tcp(1, 2, 2)]);
        f[16..18].copy_from_slice(&be(19));
        check(&f, Err(WireError::Malformed), v4(6, 19));
        // IP length ends before the TCP header: Ethernet padding is not read
        // as a header.
        let mut f = V4_TCP_SYN_PADDED;
        f[16..18].copy_from_slice(&be(20));
        check(&f, Err(WireError::Malformed), v4(6, 20));
    }

    /// Regression: host-side captures of TSO / BIG TCP packets (IPv4 total
    /// length 0, e.g. tcpdump's bigtcp-ipv4.pcap) were counted as Malformed.
    #[test]
    fn ipv4_total_length_zero_is_tso_not_malformed() {
        let mut f = cat(&[
            &eth(0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 0x18),
            &[0x61; 100],
        ]);
        f[16..18].copy_from_slice(&be(0));
        check(&f, Ok(()), l4(v4(6, 140), 1, 2, 0x18));
        // Cut inside TCP: Truncated, not Malformed.
        check(&f[..14 + 30], Err(WireError::Truncated), v4(6, 30));
        // Cut inside the options.
        let mut f = cat(&[&eth(0x0800), &ipv4(6, 20, 0, &[1; 8]), &tcp(1, 2, 0x18)]);
        f[16..18].copy_from_slice(&be(0));
        check(&f[..14 + 24], Err(WireError::Truncated), v4(6, 24));
    }

    #[test]
    fn v6_tcp_and_icmpv6() {
        check(&V6_ICMPV6_ECHO, Ok(()), l4(v6(58, 48), 128, 0, 0));
        let f = cat(&[&eth(0x86dd), &ipv6(6, 20), &tcp(50000, 443, flags::ACK)]);
        check(&f, Ok(()), l4(v6(6, 60), 50000, 443, flags::ACK));
        let f = cat(&[&eth(0x86dd), &ipv6(17, 8), &udp(546, 547)]);
        check(&f, Ok(()), l4(v6(17, 48), 546, 547, 0));
        // ICMP (1) inside IPv6 is not ICMPv6: no type/code read.
        let f = cat(&[&eth(0x86dd), &ipv6(1, 8), &icmp(8, 0)]);
        check(&f, Ok(()), v6(1, 48));
        // ESP ends the walk.
        let f = cat(&[&eth(0x86dd), &ipv6(50, 8), &[0; 8]]);
        check(&f, Ok(()), v6(50, 48));
    }

    #[test]
    fn v6_traffic_class() {
        let mut f = cat(&[&eth(0x86dd), &ipv6(17, 8), &udp(1, 2)]);
        f[14] = 0x6f; // TC high nibble f
        f[15] = 0xc3; // TC low nibble c, flow label bits
        let (r, got) = run(&f);
        assert_eq!(r, Ok(()));
        assert_eq!(got.tos, 0xfc);
    }

    #[test]
    fn v6_extension_headers() {
        check(&v6_ext_chain(), Ok(()), l4(v6(6, 92), 443, 50000, 0x12));
        // Routing + AH (len 4 -> 24 bytes) + UDP.
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(43, 24 + 24 + 8),
            &ext6(51, 2),
            &ah(17, 4),
            &udp(500, 4500),
        ]);
        check(&f, Ok(()), l4(v6(17, 96), 500, 4500, 0));
        // Later fragment: protocol is the fragment header's next header.
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(0, 8 + 8 + 8),
            &ext6(44, 0),
            &frag6(17, 181, false),
            &udp(1, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                later_fragment: true,
                ..v6(17, 64)
            },
        );
        // No next header after destination options.
        let f = cat(&[&eth(0x86dd), &ipv6(60, 8), &ext6(59, 0)]);
        check(&f, Ok(()), v6(59, 48));
        // AH with length field 0 is impossible.
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(51, 16),
            &[17, 0, 0, 0, 0, 0, 0, 0],
            &udp(1, 2),
        ]);
        check(&f, Err(WireError::Malformed), v6(51, 56));
    }

    #[test]
    fn v6_extension_chain_bound() {
        let build = |n: usize| {
            let mut f = cat(&[&eth(0x86dd), &ipv6(60, (n * 8 + 8) as u16)]);
            for i in 0..n {
                f.extend_from_slice(&ext6(if i + 1 == n { 17 } else { 60 }, 0));
            }
            f.extend_from_slice(&udp(1, 2));
            f
        };
        let ok = build(MAX_IPV6_EXT_HEADERS);
        check(&ok, Ok(()), l4(v6(17, 40 + 8 * 9), 1, 2, 0));
        let deep = build(MAX_IPV6_EXT_HEADERS + 1);
        check(&deep, Err(WireError::TooDeep), v6(60, 40 + 8 * 10));
    }

    #[test]
    fn v6_payload_length_bounds_headers() {
        // Payload length 8 but a 16-byte destination options header follows.
        let f = cat(&[&eth(0x86dd), &ipv6(60, 8), &ext6(6, 1), &tcp(1, 2, 2)]);
        check(&f, Err(WireError::Malformed), v6(60, 48));
        // Payload length covers only 4 bytes of UDP.
        let f = cat(&[&eth(0x86dd), &ipv6(17, 4), &udp(1, 2)]);
        check(&f, Err(WireError::Malformed), v6(17, 44));
    }

    #[test]
    fn v6_jumbogram_ip_len() {
        check(
            &v6_jumbo(0x0001_86a0),
            Ok(()),
            l4(v6(6, 40 + 0x0001_86a0), 1, 2, 0x10),
        );
        // Saturates rather than wrapping.
        check(&v6_jumbo(u32::MAX), Ok(()), l4(v6(6, u32::MAX), 1, 2, 0x10));
        // Payload length 0 and no next header: a bare 40-byte packet, even
        // when Ethernet padding follows.
        let f = cat(&[&eth(0x86dd), &ipv6(59, 0), &[0; 6]]);
        check(&f, Ok(()), v6(59, 40));
        // Payload length 0 without a jumbo option: 40 + captured bytes.
        let f = cat(&[&eth(0x86dd), &ipv6(6, 0), &tcp(1, 2, 0x10), &[0; 30]]);
        check(&f, Ok(()), l4(v6(6, 90), 1, 2, 0x10));
    }

    #[test]
    fn v6_bad_version() {
        let mut f = cat(&[&eth(0x86dd), &ipv6(17, 8), &udp(1, 2)]);
        f[14] = 0x42;
        check(&f, Err(WireError::Malformed), FrameFacts::default());
    }

    // ---- VLAN ----

    #[test]
    fn vlan_8021q() {
        let f = cat(&[
            &eth(0x8100),
            &vlan(100, 0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 100,
                ..l4(v4(6, 40), 1, 2, 2)
            },
        );
        // PCP and DEI bits do not leak into the id.
        let f = cat(&[
            &eth(0x8100),
            &[0xff, 0xfe],
            &be(0x86dd),
            &ipv6(17, 8),
            &udp(1, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 0xffe,
                ..l4(v6(17, 48), 1, 2, 0)
            },
        );
    }

    #[test]
    fn vlan_qinq_outermost_id() {
        let f = cat(&[
            &eth(0x88a8),
            &vlan(200, 0x8100),
            &vlan(100, 0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 200,
                ..l4(v4(6, 40), 1, 2, 2)
            },
        );
        let f = cat(&[
            &eth(0x9100),
            &vlan(300, 0x8100),
            &vlan(100, 0x86dd),
            &ipv6(17, 8),
            &udp(1, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 300,
                ..l4(v6(17, 48), 1, 2, 0)
            },
        );
    }

    #[test]
    fn vlan_tag_bound() {
        let build = |n: usize| {
            let mut f = eth(0x88a8);
            for i in 0..n {
                f.extend_from_slice(&vlan(
                    10 + i as u16,
                    if i + 1 == n { 0x0800 } else { 0x8100 },
                ));
            }
            cat(&[&f, &ipv4(17, 8, 0, &[]), &udp(1, 2)])
        };
        check(
            &build(MAX_VLAN_TAGS),
            Ok(()),
            FrameFacts {
                vlan: 10,
                ..l4(v4(17, 28), 1, 2, 0)
            },
        );
        check(
            &build(MAX_VLAN_TAGS + 1),
            Err(WireError::TooDeep),
            FrameFacts {
                vlan: 10,
                ..FrameFacts::default()
            },
        );
    }

    #[test]
    fn vlan_then_non_ip() {
        let f = cat(&[&eth(0x8100), &vlan(7, 0x0806), &[0; 28]]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 7,
                ..FrameFacts::default()
            },
        );
    }

    // ---- MPLS ----

    #[test]
    fn mpls_one_and_three_labels() {
        let f = cat(&[
            &eth(0x8847),
            &mpls(16, true),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(&f, Ok(()), l4(v4(6, 40), 1, 2, 2));
        let f = cat(&[&eth(0x8847), &mpls(16, true), &ipv6(17, 8), &udp(1, 2)]);
        check(&f, Ok(()), l4(v6(17, 48), 1, 2, 0));
        let stack = cat(&[&mpls(16, false), &mpls(17, false), &mpls(18, true)]);
        let f = cat(&[&eth(0x8847), &stack, &ipv4(17, 8, 0, &[]), &udp(1, 2)]);
        check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
        let f = cat(&[&eth(0x8848), &stack, &ipv6(6, 20), &tcp(1, 2, 2)]);
        check(&f, Ok(()), l4(v6(6, 60), 1, 2, 2));
        // Behind a VLAN tag.
        let f = cat(&[
            &eth(0x8100),
            &vlan(42, 0x8847),
            &stack,
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 42,
                ..l4(v4(17, 28), 1, 2, 0)
            },
        );
    }

    #[test]
    fn mpls_non_ip_payload_is_ok() {
        // A G-ACh message that is not IP (BFD control, channel type 7), and
        // payloads starting with any nibble but 0, 1, 4 and 6.
        let f = cat(&[
            &eth(0x8847),
            &mpls(100, true),
            &[0x10, 0, 0, 0x07],
            &[0; 24],
        ]);
        check(&f, Ok(()), FrameFacts::default());
        for b in [0x20u8, 0x5f, 0x80, 0xff] {
            let f = cat(&[&eth(0x8847), &mpls(100, true), &[b; 20]]);
            check(&f, Ok(()), FrameFacts::default());
        }
        // A control word followed by a customer frame without IP (ARP).
        let f = cat(&[&eth(0x8847), &mpls(100, true), &CW, &eth(0x0806), &[0; 28]]);
        check(&f, Ok(()), FrameFacts::default());
    }

    #[test]
    fn mpls_label_bound() {
        let build = |n: usize| {
            let mut f = eth(0x8847);
            for i in 0..n {
                f.extend_from_slice(&mpls(16 + i as u32, i + 1 == n));
            }
            cat(&[&f, &ipv4(17, 8, 0, &[]), &udp(1, 2)])
        };
        check(&build(MAX_MPLS_LABELS), Ok(()), l4(v4(17, 28), 1, 2, 0));
        check(
            &build(MAX_MPLS_LABELS + 1),
            Err(WireError::TooDeep),
            FrameFacts::default(),
        );
    }

    #[test]
    fn mpls_nothing_after_stack() {
        let f = cat(&[&eth(0x8847), &mpls(16, false), &mpls(17, true)]);
        check(&f, Err(WireError::Truncated), FrameFacts::default());
    }

    // ---- PPPoE ----

    #[test]
    fn pppoe_sessions() {
        let f = cat(&[
            &eth(0x8864),
            &pppoe(0x0021, 30),
            &ipv4(1, 8, 0, &[]),
            &icmp(8, 0),
        ]);
        check(&f, Ok(()), l4(v4(1, 28), 8, 0, 0));
        let f = cat(&[&eth(0x8864), &pppoe(0x0057, 50), &ipv6(17, 8), &udp(1, 2)]);
        check(&f, Ok(()), l4(v6(17, 48), 1, 2, 0));
        // LCP and IPCP are not IP.
        for proto in [0xc021u16, 0x8021, 0x0031] {
            let f = cat(&[&eth(0x8864), &pppoe(proto, 10), &[1, 1, 0, 8, 0, 0, 0, 0]]);
            check(&f, Ok(()), FrameFacts::default());
        }
        // Behind a VLAN tag, as on most BNG links.
        let f = cat(&[
            &eth(0x8100),
            &vlan(10, 0x8864),
            &pppoe(0x0021, 30),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(
            &f,
            Ok(()),
            FrameFacts {
                vlan: 10,
                ..l4(v4(17, 28), 1, 2, 0)
            },
        );
        // Version/type other than 1/1.
        let mut f = cat(&[
            &eth(0x8864),
            &pppoe(0x0021, 30),
            &ipv4(1, 8, 0, &[]),
            &icmp(8, 0),
        ]);
        f[14] = 0x12;
        check(&f, Err(WireError::Malformed), FrameFacts::default());
    }

    #[test]
    fn pppoe_discovery_is_non_ip() {
        // PADI
        let f = cat(&[&eth(0x8863), &[0x11, 0x09, 0, 0, 0, 4, 0x01, 0x01, 0, 0]]);
        check(&f, Ok(()), FrameFacts::default());
    }

    /// Regression (issue item 2): PPPoE with a one-byte PPP protocol field
    /// (protocol-field compression, RFC 1661 §6.5) was counted as non-IP.
    #[test]
    fn pppoe_protocol_field_compression_is_ip() {
        use WireError::Truncated as T;
        let f = cat(&[
            &eth(0x8864),
            &pppoe_pfc(0x21, 41),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(&f, Ok(()), l4(v4(6, 40), 1, 2, 2));
        // Cut in the PPPoE header, after the one-byte field, inside IPv4.
        check(&f[..14 + 6], Err(T), FrameFacts::default());
        check(&f[..14 + 7], Err(T), FrameFacts::default());
        check(&f[..14 + 7 + 19], Err(T), FrameFacts::default());
        let f = cat(&[&eth(0x8864), &pppoe_pfc(0x57, 49), &ipv6(17, 8), &udp(1, 2)]);
        check(&f, Ok(()), l4(v6(17, 48), 1, 2, 0));
        let f = cat(&[
            &eth(0x8100),
            &vlan(10, 0x8864),
            &pppoe_pfc(0x21, 29),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), vlan_id(10, l4(v4(17, 28), 1, 2, 0)));
        // Other compressed protocols are not IP: OSI, bridging, multilink.
        for proto in [0x23u8, 0x31, 0x3d] {
            let f = cat(&[&eth(0x8864), &pppoe_pfc(proto, 21), &ipv4(17, 8, 0, &[])]);
            check(&f, Ok(()), FrameFacts::default());
        }
    }

    /// MPLS over PPP (0x0281 unicast, 0x0283 multicast) inside PPPoE.
    #[test]
    fn pppoe_mpls() {
        for proto in [0x0281u16, 0x0283] {
            let f = cat(&[
                &eth(0x8864),
                &pppoe(proto, 34),
                &mpls(16, true),
                &ipv4(17, 8, 0, &[]),
                &udp(1, 2),
            ]);
            check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
        }
    }

    // ---- MPLS pseudowires ----

    /// Regression (issue item 3): Ethernet pseudowires with control word
    /// (RFC 4448) were counted as non-IP.
    #[test]
    fn mpls_pseudowire_with_control_word_is_entered() {
        use WireError::Truncated as T;
        let none = FrameFacts::default();
        // The customer's VLAN tag does not set `vlan`.
        check(&mpls_pw_cw_v4(), Ok(()), l4(v4(6, 40), 40000, 80, 2));
        let f = cat(&[
            &eth(0x8100),
            &vlan(42, 0x8847),
            &mpls(100, true),
            &CW,
            &ceth(0x86dd),
            &ipv6(17, 8),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), vlan_id(42, l4(v6(17, 48), 1, 2, 0)));
        // Not entered when the operator says pseudowires are not Ethernet.
        check_with(&mpls_pw_cw_v4(), &IP_ONLY, Ok(()), none);
        // Cut: after the stack, inside the control word, inside the customer
        // Ethernet header and its tag, inside IPv4.
        let f = mpls_pw_cw_v4();
        for n in [22, 25, 26, 39, 43, 44 + 19] {
            check(&f[..n], Err(T), none);
        }
        check(&f[..44 + 20 + 19], Err(T), v4(6, 40));
    }

    /// Regression (issue item 3): Ethernet pseudowires without control
    /// word need the operator's setting; with it they are entered.
    #[test]
    fn mpls_pseudowire_without_control_word_needs_the_setting() {
        // Destination MAC 00-...: read as a control word by default, and
        // what follows it is no IP.
        let f = mpls_pw_nocw(0x00, 0x0800);
        check(&f, Ok(()), FrameFacts::default());
        check_with(&f, &NO_CW, Ok(()), l4(v4(17, 28), 1, 2, 0));
        check_with(&f, &IP_ONLY, Ok(()), FrameFacts::default());
        // Destination MAC 44-...: read as IPv4 with IHL 4 by default.
        let f = mpls_pw_nocw(0x44, 0x86dd);
        check(&f, Err(WireError::Malformed), FrameFacts::default());
        check_with(&f, &NO_CW, Ok(()), l4(v6(17, 48), 1, 2, 0));
        // Behind two labels, with a customer tag.
        let (_, nocw) = &valid_no_cw_fixtures()[2];
        check_with(nocw, &NO_CW, Ok(()), l4(v4(6, 40), 1, 2, 2));
    }

    /// Bottom labels that say what follows (IPv4 / IPv6 explicit null, GAL)
    /// win over the payload setting.
    #[test]
    fn mpls_reserved_bottom_labels() {
        for opts in [WireOptions::DEFAULT, NO_CW, IP_ONLY] {
            let f = cat(&[
                &eth(0x8847),
                &mpls(0, true),
                &ipv4(17, 8, 0, &[]),
                &udp(1, 2),
            ]);
            check_with(&f, &opts, Ok(()), l4(v4(17, 28), 1, 2, 0));
            let f = cat(&[&eth(0x8847), &mpls(2, true), &ipv6(6, 20), &tcp(1, 2, 2)]);
            check_with(&f, &opts, Ok(()), l4(v6(6, 60), 1, 2, 2));
            // GAL: a G-ACh message; BFD control is not IP, an IPv4 channel is.
            let f = cat(&[
                &eth(0x8847),
                &mpls(13, true),
                &[0x10, 0, 0, 0x07],
                &[0x45; 24],
            ]);
            check_with(&f, &opts, Ok(()), FrameFacts::default());
            let f = cat(&[
                &eth(0x8847),
                &mpls(13, true),
                &[0x10, 0, 0, 0x21],
                &ipv4(17, 8, 0, &[]),
                &udp(49152, 3784),
            ]);
            check_with(&f, &opts, Ok(()), l4(v4(17, 28), 49152, 3784, 0));
            // IPv4 explicit null with an IPv6 packet after it.
            let f = cat(&[&eth(0x8847), &mpls(0, true), &ipv6(6, 20), &tcp(1, 2, 2)]);
            check_with(&f, &opts, Err(WireError::Malformed), FrameFacts::default());
        }
        // Explicit null above the bottom is an ordinary label.
        let f = cat(&[
            &eth(0x8847),
            &mpls(0, false),
            &mpls(100, true),
            &CW,
            &ceth(0x0800),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
    }

    /// Pseudowire OAM (VCCV with a control-word-position associated channel
    /// header, RFC 5085 / 5885): IPv4 and IPv6 channels are IP, others not;
    /// a version other than 0 is not entered.
    #[test]
    fn mpls_associated_channel() {
        use WireError::Truncated as T;
        let ach = |ver: u8, channel: u16| cat(&[&[0x10 | ver, 0], &be(channel)]);
        for opts in [WireOptions::DEFAULT, IP_ONLY] {
            let f = cat(&[
                &eth(0x8847),
                &mpls(100, true),
                &ach(0, 0x0057),
                &ipv6(17, 8),
                &udp(49152, 3784),
            ]);
            check_with(&f, &opts, Ok(()), l4(v6(17, 48), 49152, 3784, 0));
            check_with(&f[..14 + 4 + 3], &opts, Err(T), FrameFacts::default());
            for (ver, ch) in [(1, 0x0057), (0, 0x0007), (0, 0x8902)] {
                let f = cat(&[&eth(0x8847), &mpls(100, true), &ach(ver, ch), &ipv6(17, 8)]);
                check_with(&f, &opts, Ok(()), FrameFacts::default());
            }
        }
    }

    #[test]
    fn mpls_payload_names() {
        for m in MplsPayload::ALL {
            assert_eq!(MplsPayload::from_name(m.as_str()), Some(m));
        }
        assert_eq!(MplsPayload::default(), MplsPayload::Guess);
        assert_eq!(WireOptions::default(), WireOptions::DEFAULT);
        assert_eq!(MplsPayload::from_name("Guess"), None);
        assert_eq!(MplsPayload::from_name(""), None);
    }

    // ---- PBB, VN-Tag, E-Tag ----

    /// Regression (issue item 3): 802.1ah provider backbone bridging frames
    /// were counted as non-IP.
    #[test]
    fn pbb_customer_frame_is_entered() {
        use WireError::Truncated as T;
        // The B-VID is the frame's VLAN; the customer's C-TAG does not count.
        check(
            &pbb_v4(),
            Ok(()),
            vlan_id(300, l4(v4(17, 28), 53, 40000, 0)),
        );
        let f = cat(&[
            &eth(0x88e7),
            &itag(7),
            &ceth(0x86dd),
            &ipv6(6, 20),
            &tcp(1, 2, 2),
        ]);
        check(&f, Ok(()), l4(v6(6, 60), 1, 2, 2));
        let f = cat(&[&eth(0x88e7), &itag(7), &ceth(0x0806), &[0; 28]]);
        check(&f, Ok(()), FrameFacts::default());
        // Cut in the I-TAG, the customer header, the C-TAG, IPv4.
        let f = pbb_v4();
        let b = vlan_id(300, FrameFacts::default());
        for n in [20, 22, 35, 38, 50] {
            check(&f[..n], Err(T), b);
        }
    }

    /// Regression (issue item 3): VN-Tag (0x8926) and 802.1BR E-Tag
    /// (0x893f) frames were counted as non-IP.
    #[test]
    fn vntag_and_etag_are_skipped() {
        use WireError::Truncated as T;
        let f = cat(&[
            &eth(0x8926),
            &vntag(0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(&f, Ok(()), l4(v4(6, 40), 1, 2, 2));
        let f = cat(&[
            &eth(0x8926),
            &vntag(0x8100),
            &vlan(100, 0x86dd),
            &ipv6(17, 8),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), vlan_id(100, l4(v6(17, 48), 1, 2, 0)));
        let f = cat(&[&eth(0x893f), &etag(0x86dd), &ipv6(17, 8), &udp(1, 2)]);
        check(&f, Ok(()), l4(v6(17, 48), 1, 2, 0));
        let f = cat(&[
            &eth(0x893f),
            &etag(0x8100),
            &vlan(100, 0x0800),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), vlan_id(100, l4(v4(17, 28), 1, 2, 0)));
        // A VLAN tag before the E-Tag.
        let f = cat(&[
            &eth(0x8100),
            &vlan(5, 0x893f),
            &etag(0x0800),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), vlan_id(5, l4(v4(17, 28), 1, 2, 0)));
        let f = cat(&[&eth(0x893f), &etag(0x0806), &[0; 28]]);
        check(&f, Ok(()), FrameFacts::default());
        let f = cat(&[&eth(0x8926), &vntag(0x0800), &ipv4(6, 20, 0, &[])]);
        check(&f[..14 + 5], Err(T), FrameFacts::default());
        let f = cat(&[&eth(0x893f), &etag(0x0800), &ipv4(6, 20, 0, &[])]);
        check(&f[..14 + 7], Err(T), FrameFacts::default());
    }

    // ---- LLC / SNAP ----

    /// Regression (issue item 3): LLC/SNAP-encapsulated IP (802.3 length,
    /// AA-AA-03, OUI 00-00-00, EtherType; RFC 1042) was counted as non-IP.
    #[test]
    fn llc_snap_ip_is_entered() {
        use WireError::Truncated as T;
        let none = FrameFacts::default();
        let f = cat(&[
            &eth(36),
            &snap([0, 0, 0], 0x0800),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
        let f = cat(&[&eth(56), &snap([0, 0, 0], 0x86dd), &ipv6(17, 8), &udp(1, 2)]);
        check(&f, Ok(()), l4(v6(17, 48), 1, 2, 0));
        // 802.1H bridge tunnel OUI, and behind a VLAN tag.
        let f = cat(&[
            &eth(0x8100),
            &vlan(7, 48),
            &snap([0, 0, 0xf8], 0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(&f, Ok(()), vlan_id(7, l4(v4(6, 40), 1, 2, 2)));
        // A vendor OUI (Cisco CDP), an LLC response, a protocol id that is a
        // length: not IP.
        for llc in [
            snap([0, 0, 0x0c], 0x2000),
            snap([0, 0, 0], 0x0026),
            cat(&[&[0xaa, 0xab, 0x03, 0, 0, 0], &be(0x0800)]),
        ] {
            let f = cat(&[&eth(36), &llc, &ipv4(17, 8, 0, &[]), &udp(1, 2)]);
            check(&f, Ok(()), none);
        }
        // Cut before the LLC control byte or inside SNAP.
        for n in [14, 15, 16, 17, 21] {
            let f = cat(&[&eth(36), &snap([0, 0, 0], 0x0800)]);
            check(&f[..n], Err(T), none);
        }
        let f = cat(&[&eth(0x0026), &[0x42, 0x42]]);
        check(&f, Err(T), none);
    }

    // ---- NSH ----

    /// Regression (issue item 3): NSH (RFC 8300, EtherType 0x894f) frames
    /// were counted as non-IP. The fixture's facts are tshark's.
    #[test]
    fn nsh_is_entered() {
        use WireError::{Malformed as M, Truncated as T};
        let none = FrameFacts::default();
        let want = FrameFacts {
            addrs: L3Addrs::V4 {
                src: [10, 0, 8, 3],
                dst: [10, 13, 13, 13],
            },
            ip_len: 34,
            protocol: 17,
            src_port: 52229,
            dst_port: 8000,
            has_l4: true,
            ..none
        };
        check(&NSH_TCPDUMP, Ok(()), want);
        let f = cat(&[&eth(0x894f), &nsh(2, 0), &ipv6(6, 20), &tcp(1, 2, 2)]);
        check(&f, Ok(()), l4(v6(6, 60), 1, 2, 2));
        // Ethernet: the customer's tag does not set `vlan`.
        let f = cat(&[
            &eth(0x894f),
            &nsh(3, 2),
            &ceth(0x8100),
            &vlan(10, 0x0800),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
        // MPLS, and NSH inside NSH.
        let f = cat(&[
            &eth(0x894f),
            &nsh(5, 1),
            &mpls(16, true),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
        let f = cat(&[
            &eth(0x894f),
            &nsh(4, 0),
            &nsh(1, 3),
            &ipv4(17, 8, 0, &[]),
            &udp(1, 2),
        ]);
        check(&f, Ok(()), l4(v4(17, 28), 1, 2, 0));
        // Unassigned and experimental next protocols are not entered.
        for next in [0u8, 6, 0x41, 0xff] {
            let f = cat(&[
                &eth(0x894f),
                &nsh(next, 0),
                &ipv4(17, 8, 0, &[]),
                &udp(1, 2),
            ]);
            check(&f, Ok(()), none);
        }
        // Version 1, length 1, and cuts inside the context headers.
        let mut f = NSH_TCPDUMP;
        f[14] |= 0x40;
        check(&f, Err(M), none);
        let mut f = NSH_TCPDUMP;
        f[15] = 0x01;
        check(&f, Err(M), none);
        for n in [14, 21, 22, 37] {
            check(&NSH_TCPDUMP[..n], Err(T), none);
        }
    }

    // ---- nesting ----

    /// A pseudowire inside MPLS inside a PBB frame: the innermost IP counts,
    /// the B-VID is the VLAN.
    #[test]
    fn pseudowire_in_mpls_in_pbb() {
        check(
            &pw_in_mpls_in_pbb(),
            Ok(()),
            vlan_id(300, l4(v4(6, 40), 1, 2, 0x12)),
        );
    }

    /// Nesting ends after MAX_ENCAP_DEPTH headers, whatever repeats.
    #[test]
    fn encapsulation_depth_bound() {
        let deep = Err(WireError::TooDeep);
        let ip = || cat(&[&ipv4(17, 8, 0, &[]), &udp(1, 2)]);
        let want = l4(v4(17, 28), 1, 2, 0);
        // PBB in PBB: an I-TAG and a customer Ethernet header per level.
        let pbb = |n: usize| {
            let mut f = eth(0x88e7);
            for i in 0..n {
                f.extend_from_slice(&itag(i as u32));
                f.extend_from_slice(&ceth(if i + 1 == n { 0x0800 } else { 0x88e7 }));
            }
            cat(&[&f, &ip()])
        };
        assert_eq!(MAX_ENCAP_DEPTH % 2, 0);
        check(&pbb(MAX_ENCAP_DEPTH / 2), Ok(()), want);
        check(&pbb(MAX_ENCAP_DEPTH / 2 + 1), deep, FrameFacts::default());
        // NSH in NSH: one header per level.
        let nsh_chain = |n: usize| {
            let mut f = eth(0x894f);
            for i in 0..n {
                f.extend_from_slice(&nsh(if i + 1 == n { 1 } else { 4 }, 0));
            }
            cat(&[&f, &ip()])
        };
        check(&nsh_chain(MAX_ENCAP_DEPTH), Ok(()), want);
        check(&nsh_chain(MAX_ENCAP_DEPTH + 1), deep, FrameFacts::default());
        // Pseudowire in pseudowire: label, control word, customer header per
        // level, then one label before IP.
        let pw = |n: usize| {
            let mut f = eth(0x8847);
            for _ in 0..n {
                f.extend_from_slice(&cat(&[&mpls(100, true), &CW, &ceth(0x8847)]));
            }
            cat(&[&f, &mpls(16, true), &ip()])
        };
        let levels = (MAX_ENCAP_DEPTH - 1) / 3;
        check(&pw(levels), Ok(()), want);
        check(&pw(levels + 1), deep, FrameFacts::default());
        // The VLAN bound is per Ethernet header: 8 outer and 8 customer tags.
        let tags = |n: usize, next: u16| {
            let mut f = Vec::new();
            for i in 0..n {
                f.extend_from_slice(&vlan(10 + i as u16, if i + 1 == n { next } else { 0x8100 }));
            }
            f
        };
        let f = cat(&[
            &eth(0x8100),
            &tags(MAX_VLAN_TAGS, 0x88e7),
            &itag(1),
            &ceth(0x8100),
            &tags(MAX_VLAN_TAGS, 0x0800),
            &ip(),
        ]);
        check(&f, Ok(()), vlan_id(10, want));
        let f = cat(&[
            &eth(0x8100),
            &tags(MAX_VLAN_TAGS, 0x88e7),
            &itag(1),
            &ceth(0x8100),
            &tags(MAX_VLAN_TAGS + 1, 0x0800),
            &ip(),
        ]);
        check(&f, deep, vlan_id(10, FrameFacts::default()));
    }

    // ---- non-IP ----

    #[test]
    fn non_ip_ethertypes_are_ok() {
        let arp = cat(&[&eth(0x0806), &[0, 1, 8, 0, 6, 4, 0, 1], &[0; 20]]);
        check(&arp, Ok(()), FrameFacts::default());
        // LLDP, 802.3 length + LLC (STP), and a bare 14-byte header.
        check(
            &cat(&[&eth(0x88cc), &[2, 7, 4]]),
            Ok(()),
            FrameFacts::default(),
        );
        check(
            &cat(&[&eth(0x0026), &[0x42, 0x42, 0x03]]),
            Ok(()),
            FrameFacts::default(),
        );
        check(&eth(0x0806), Ok(()), FrameFacts::default());
    }

    // ---- truncation ----

    #[test]
    fn short_frames_truncated() {
        for n in 0..14 {
            check(
                &V4_TCP_SYN_PADDED[..n],
                Err(WireError::Truncated),
                FrameFacts::default(),
            );
        }
    }

    #[test]
    fn truncated_in_each_header() {
        use WireError::Truncated as T;
        let none = FrameFacts::default();
        // Inside the VLAN tag: nothing learnt.
        let f = cat(&[
            &eth(0x8100),
            &vlan(100, 0x0800),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(&f[..16], Err(T), none);
        // Inside the inner tag: the outer id is known.
        let f = cat(&[&eth(0x88a8), &vlan(200, 0x8100), &vlan(100, 0x0800)]);
        check(&f[..20], Err(T), FrameFacts { vlan: 200, ..none });
        // Inside the IPv4 fixed header.
        check(&V4_TCP_SYN_PADDED[..14 + 19], Err(T), none);
        // Inside the IPv4 options.
        let f = cat(&[&eth(0x0800), &ipv4(6, 20, 0, &[1; 8]), &tcp(1, 2, 2)]);
        check(&f[..14 + 24], Err(T), v4(6, 48));
        // Inside TCP: addresses and lengths kept, no ports.
        for n in [34, 35, 40, 47, 53] {
            check(&V4_TCP_SYN_PADDED[..n], Err(T), v4(6, 40));
        }
        // Inside UDP, SCTP, ICMP.
        let f = cat(&[&eth(0x0800), &ipv4(17, 8, 0, &[]), &udp(1, 2)]);
        check(&f[..14 + 20 + 7], Err(T), v4(17, 28));
        let f = cat(&[&eth(0x0800), &ipv4(132, 12, 0, &[]), &[0; 12]]);
        check(&f[..14 + 20 + 11], Err(T), v4(132, 32));
        let f = cat(&[&eth(0x0800), &ipv4(1, 8, 0, &[]), &icmp(8, 0)]);
        check(&f[..14 + 20 + 3], Err(T), v4(1, 28));
        // ICMP needs only type, code, checksum.
        check(&f[..14 + 20 + 4], Ok(()), l4(v4(1, 28), 8, 0, 0));
        // Inside the IPv6 fixed header, an extension header, the fragment
        // header, ICMPv6.
        check(&V6_ICMPV6_ECHO[..14 + 39], Err(T), none);
        let chain = v6_ext_chain();
        check(&chain[..54 + 7], Err(T), v6(0, 92));
        check(&chain[..54 + 8 + 15], Err(T), v6(60, 92));
        check(&chain[..54 + 24 + 7], Err(T), v6(44, 92));
        check(&chain[..54 + 32 + 19], Err(T), v6(6, 92));
        check(&V6_ICMPV6_ECHO[..14 + 40 + 3], Err(T), v6(58, 48));
        // Inside an MPLS label, and the IP header after it.
        let f = cat(&[
            &eth(0x8847),
            &mpls(16, false),
            &mpls(17, true),
            &ipv4(6, 20, 0, &[]),
            &tcp(1, 2, 2),
        ]);
        check(&f[..14 + 6], Err(T), none);
        check(&f[..14 + 8 + 10], Err(T), none);
        check(&f[..14 + 8 + 20 + 10], Err(T), v4(6, 40));
        // Inside the PPPoE header / PPP protocol field.
        let f = cat(&[
            &eth(0x8864),
            &pppoe(0x0021, 30),
            &ipv4(1, 8, 0, &[]),
            &icmp(8, 0),
        ]);
        check(&f[..14 + 7], Err(T), none);
        check(&f[..14 + 8 + 20 + 3], Err(T), v4(1, 28));
    }

    /// Cutting a valid frame anywhere gives `Ok` or `Truncated`, never
    /// another error; facts learnt at a cut stay the same with more bytes;
    /// once the whole transport header is there the result is final.
    #[test]
    fn every_prefix_of_valid_fixtures() {
        let default = valid_fixtures()
            .into_iter()
            .map(|f| (f, WireOptions::DEFAULT));
        let no_cw = valid_no_cw_fixtures().into_iter().map(|f| (f, NO_CW));
        for ((name, frame), opts) in default.chain(no_cw) {
            let (r, full) = run_with(&frame, &opts);
            assert_eq!(r, Ok(()), "{name}");
            assert!(full.has_l4, "{name}");
            let mut reached_l4 = false;
            let mut vlan_known = false;
            for n in 0..=frame.len() {
                let (r, got) = run_with(&frame[..n], &opts);
                assert!(
                    matches!(r, Ok(()) | Err(WireError::Truncated)),
                    "{name} cut at {n}: {r:?}"
                );
                if got.addrs != L3Addrs::None {
                    assert_eq!(got.addrs, full.addrs, "{name} cut at {n}");
                    assert_eq!(got.tos, full.tos, "{name} cut at {n}");
                }
                // The VLAN id is 0 until its tag is read, then final.
                if vlan_known {
                    assert_eq!(got.vlan, full.vlan, "{name} cut at {n}");
                } else if got.vlan != 0 {
                    assert_eq!(got.vlan, full.vlan, "{name} cut at {n}");
                    vlan_known = true;
                }
                if got.has_l4 {
                    assert_eq!(r, Ok(()));
                    reached_l4 = true;
                }
                if reached_l4 {
                    assert_eq!(got, full, "{name} cut at {n}");
                }
                if r.is_ok() && n < frame.len() {
                    assert!(got.has_l4, "{name} cut at {n} is Ok without L4");
                }
            }
            assert_eq!(vlan_known, full.vlan != 0, "{name}");
        }
    }

    /// Mutations of every fixture under every MPLS payload setting: no
    /// panic, and the facts stay consistent (the default setting is also
    /// covered by the robustness tests).
    #[test]
    fn mutated_fixtures_every_setting() {
        let mut x: u64 = 0x5eed_1234_abcd_ef01;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let fixtures: Vec<_> = valid_fixtures()
            .into_iter()
            .chain(valid_no_cw_fixtures())
            .collect();
        for (name, frame) in &fixtures {
            for i in 0..3000 {
                let mut f = frame.clone();
                let at = next() as usize % f.len();
                match i % 3 {
                    0 => f[at] = next() as u8,
                    1 => f.truncate(at),
                    _ => f.insert(at, next() as u8),
                }
                for mode in MplsPayload::ALL {
                    let opts = WireOptions { mpls_payload: mode };
                    let (r, got) = run_with(&f, &opts);
                    if got.has_l4 {
                        assert_eq!(r, Ok(()), "{name} {mode:?} {f:02x?}");
                    }
                    if got.addrs == L3Addrs::None {
                        assert_eq!(
                            (got.ip_len, got.protocol, got.has_l4, got.later_fragment),
                            (0, 0, false, false),
                            "{name} {mode:?} {f:02x?}"
                        );
                    }
                }
            }
        }
    }

    /// TCP flags byte copied exactly; each flag combination distinguished.
    #[test]
    fn tcp_flags_table() {
        use flags::*;
        // flags, is_syn, is_syn_ack, is_fin, is_rst
        let table: &[(u8, bool, bool, bool, bool)] = &[
            (SYN, true, false, false, false),
            (SYN | ACK, false, true, false, false),
            (ACK, false, false, false, false),
            (FIN, false, false, true, false),
            (FIN | ACK, false, false, true, false),
            (RST, false, false, false, true),
            (RST | ACK, false, false, false, true),
            (PSH | ACK, false, false, false, false),
            (SYN | ECE | CWR, true, false, false, false),
            (URG | ACK | PSH, false, false, false, false),
        ];
        for &(f, syn, syn_ack, fin, rst) in table {
            for frame in [
                cat(&[&eth(0x0800), &ipv4(6, 20, 0, &[]), &tcp(1, 2, f)]),
                cat(&[&eth(0x86dd), &ipv6(6, 20), &tcp(1, 2, f)]),
            ] {
                let (r, got) = run(&frame);
                assert_eq!(r, Ok(()));
                assert_eq!(got.tcp_flags, f, "{f:#04x}");
                let t = TcpFlags(got.tcp_flags);
                assert_eq!(
                    (t.is_syn(), t.is_syn_ack(), t.is_fin(), t.is_rst()),
                    (syn, syn_ack, fin, rst),
                    "{f:#04x}"
                );
            }
        }
        // Non-TCP protocols leave the flags at 0.
        let (_, got) = run(&cat(&[&eth(0x0800), &ipv4(17, 8, 0, &[]), &udp(1, 2)]));
        assert_eq!(got.tcp_flags, 0);
    }

    #[test]
    fn reused_output_is_reset() {
        let mut out = FrameFacts::default();
        parse_frame(&V4_TCP_SYN_PADDED, &mut out).unwrap();
        assert!(out.has_l4);
        parse_frame(&cat(&[&eth(0x0806), &[0; 28]]), &mut out).unwrap();
        assert_eq!(out, FrameFacts::default());
    }
}
