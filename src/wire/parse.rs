//! The frame walk: Ethernet, VLAN tags, MPLS or PPPoE, IPv4 or IPv6 (with
//! extension headers), then the transport header.
//!
//! No allocation, no panic on any input, no unsafe. Every loop is bounded.
//!
//! Choices for ambiguous input (the frame is always still counted by the
//! caller; only `Err` values feed the parse-error counters):
//!
//! - A capture that ends inside the payload is normal (caplen < wire
//!   length) and not an error. `Truncated` means the bytes end inside a
//!   header we needed; `out` keeps what was learnt before that header.
//! - Non-IP EtherTypes (ARP, LLDP, PPPoE discovery, 802.3 length fields...)
//!   and PPPoE sessions carrying anything but IPv4/IPv6 are `Ok` with
//!   `addrs == None`.
//! - VLAN tags: TPIDs 0x8100, 0x88a8 and 0x9100, up to [`MAX_VLAN_TAGS`];
//!   one more is `TooDeep`. `vlan` is the outermost VLAN id.
//! - MPLS: up to [`MAX_MPLS_LABELS`] entries before the bottom of stack,
//!   else `TooDeep`. The payload is guessed from its first nibble: 4 IPv4,
//!   6 IPv6, anything else (pseudowires, control word 0) is non-IP and `Ok`,
//!   not an error: it is legitimate traffic we do not look into. A label
//!   stack with no byte after it is `Truncated`. An Ethernet pseudowire
//!   without control word whose MAC starts with nibble 4 or 6 is misread as
//!   IP: the usual limit of this heuristic.
//! - PPPoE session: version/type other than 0x11 is `Malformed`.
//! - IPv4: version != 4 or IHL < 5 is `Malformed`; so is a total length
//!   smaller than the header. A non-first fragment (offset != 0) sets
//!   `later_fragment` and is `Ok` without transport header, even if its
//!   options are cut off. AH inside IPv4 is not skipped (`protocol` = 51).
//! - The transport header is looked for within the IP length (so Ethernet
//!   padding is never read as a header). When it does not fit: `Truncated`
//!   if the capture ended first, `Malformed` if the IP length did (e.g. a
//!   tiny first fragment).
//! - IPv6: version != 6 is `Malformed`. Extension headers hop-by-hop (0),
//!   routing (43), fragment (44), destination options (60) and AH (51,
//!   length (len + 2) * 4) are skipped, at most [`MAX_IPV6_EXT_HEADERS`];
//!   one more is `TooDeep`. ESP (50), no-next-header (59) and anything else
//!   end the walk: `protocol` is that value. While walking, `protocol` holds
//!   the header being read, so a `Truncated` chain reports where it stopped.
//!   A fragment header with offset != 0 sets `later_fragment` and
//!   `protocol` = its next header.
//! - `ip_len` for IPv6 is payload length + 40. Payload length 0 (jumbogram,
//!   RFC 2675): 40 + the Jumbo Payload option's value when the hop-by-hop
//!   header carries one (saturating at `u32::MAX`); else 40 when the next
//!   header is 59; else 40 + the captured bytes after the fixed header (a
//!   lower bound; also what a host-side capture of a GSO packet gives).
//! - The transport header needed: TCP 20 bytes (ports, flags), UDP and
//!   UDP-Lite 8, SCTP 12, ICMP/ICMPv6 4 (type, code, checksum). ICMP (1) is
//!   read only over IPv4 and ICMPv6 (58) only over IPv6. TCP data offset,
//!   checksums and other fields we do not use are not validated.

use super::ethernet::{ethertype, EthernetFrame, VlanTag};
use super::icmp::IcmpPacket;
use super::ip_proto;
use super::ipv4::Ipv4Packet;
use super::ipv6::{AuthHeader, Ipv6ExtHeader, Ipv6FragHeader, Ipv6Packet, HEADER_LEN as IPV6_HEADER_LEN};
use super::mpls::MplsLabel;
use super::pppoe::{ppp_proto, PppoeSession};
use super::sctp::SctpPacket;
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::{FrameFacts, L3Addrs, WireError};

/// Most VLAN tags followed; one more is `TooDeep`.
pub const MAX_VLAN_TAGS: usize = 8;
/// Most MPLS label stack entries followed; one more is `TooDeep`. Segment
/// routing stacks beyond 8 labels exist, hence more than for VLANs.
pub const MAX_MPLS_LABELS: usize = 12;
/// Most IPv6 extension headers skipped; one more is `TooDeep`.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Parses an Ethernet frame (the captured bytes, possibly shorter than the
/// wire length) into `out`. On error `out` keeps what was learnt so far
/// (e.g. addresses when only the transport header is cut off). See the
/// module docs for the handling of ambiguous input.
pub fn parse_frame(frame: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    *out = FrameFacts::default();
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();
    if ethertype::is_vlan_tpid(ethertype) {
        let tag = VlanTag::new_checked(rest)?;
        out.vlan = tag.vid();
        ethertype = tag.ethertype();
        rest = tag.payload();
        let mut depth = 1;
        while ethertype::is_vlan_tpid(ethertype) {
            if depth == MAX_VLAN_TAGS {
                return Err(WireError::TooDeep);
            }
            let tag = VlanTag::new_checked(rest)?;
            depth += 1;
            ethertype = tag.ethertype();
            rest = tag.payload();
        }
    }
    match ethertype {
        ethertype::IPV4 => parse_ipv4(rest, out),
        ethertype::IPV6 => parse_ipv6(rest, out),
        ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST => parse_mpls(rest, out),
        ethertype::PPPOE_SESSION => parse_pppoe(rest, out),
        _ => Ok(()),
    }
}

fn parse_mpls(mut rest: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    for _ in 0..MAX_MPLS_LABELS {
        let label = MplsLabel::new_checked(rest)?;
        rest = label.payload();
        if label.bottom_of_stack() {
            return match rest.first() {
                None => Err(WireError::Truncated),
                Some(b) => match b >> 4 {
                    4 => parse_ipv4(rest, out),
                    6 => parse_ipv6(rest, out),
                    _ => Ok(()),
                },
            };
        }
    }
    Err(WireError::TooDeep)
}

fn parse_pppoe(rest: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    let session = PppoeSession::new_checked(rest)?;
    match session.ppp_protocol() {
        ppp_proto::IPV4 => parse_ipv4(session.payload(), out),
        ppp_proto::IPV6 => parse_ipv6(session.payload(), out),
        _ => Ok(()),
    }
}

#[inline]
fn parse_ipv4(buf: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    let ip = Ipv4Packet::new_checked(buf)?;
    out.addrs = L3Addrs::V4 { src: ip.src_addr(), dst: ip.dst_addr() };
    let total = ip.total_len();
    out.ip_len = u32::from(total);
    out.protocol = ip.protocol();
    out.tos = ip.tos();
    let total = usize::from(total);
    let header_len = ip.header_len();
    if total < header_len {
        return Err(WireError::Malformed);
    }
    if ip.frag_offset() != 0 {
        out.later_fragment = true;
        return Ok(());
    }
    // The transport header must lie within both the captured bytes and the
    // IP total length (beyond which is Ethernet padding).
    let (end, short) = if total <= buf.len() {
        (total, WireError::Malformed)
    } else {
        (buf.len(), WireError::Truncated)
    };
    // `header_len <= total`, so this fails only when the options are cut off.
    let Some(l4) = buf.get(header_len..end) else {
        return Err(WireError::Truncated);
    };
    parse_l4(out.protocol, ip_proto::ICMP, l4, short, out)
}

#[inline]
fn is_ipv6_ext(next_header: u8) -> bool {
    matches!(
        next_header,
        ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_FRAG | ip_proto::AH | ip_proto::IPV6_OPTS
    )
}

#[inline]
fn parse_ipv6(buf: &[u8], out: &mut FrameFacts) -> Result<(), WireError> {
    let ip = Ipv6Packet::new_checked(buf)?;
    out.addrs = L3Addrs::V6 { src: ip.src_addr(), dst: ip.dst_addr() };
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
fn parse_l4(protocol: u8, icmp: u8, l4: &[u8], short: WireError, out: &mut FrameFacts) -> Result<(), WireError> {
    match protocol {
        ip_proto::TCP => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| short)?;
            out.src_port = tcp.src_port();
            out.dst_port = tcp.dst_port();
            out.tcp_flags = tcp.flags().0;
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
