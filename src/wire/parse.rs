//! The frame walk: Ethernet, VLAN tags, MPLS or PPPoE, IPv4 or IPv6 (with
//! extension headers), then the transport header.
//!
//! No allocation, no panic on any input, no unsafe. Every loop is bounded.
//!
//! How ambiguous input is handled is listed on [`parse_frame`].

use super::ethernet::{ethertype, EthernetFrame, VlanTag};
use super::icmp::IcmpPacket;
use super::ip_proto;
use super::ipv4::Ipv4Packet;
use super::ipv6::{
    AuthHeader, Ipv6ExtHeader, Ipv6FragHeader, Ipv6Packet, HEADER_LEN as IPV6_HEADER_LEN,
};
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
/// (e.g. addresses when only the transport header is cut off).
///
/// Choices for ambiguous input (the frame is always still counted by the
/// caller; only `Err` values feed the parse-error counters):
///
/// - A capture that ends inside the payload is normal (caplen < wire
///   length) and not an error. `Truncated` means the bytes end inside a
///   header we needed; `out` keeps what was learnt before that header.
/// - Non-IP EtherTypes (ARP, LLDP, PPPoE discovery, 802.3 length fields...)
///   and PPPoE sessions carrying anything but IPv4/IPv6 are `Ok` with
///   `addrs == None`.
/// - VLAN tags: TPIDs 0x8100, 0x88a8 and 0x9100, up to [`MAX_VLAN_TAGS`];
///   one more is `TooDeep`. `vlan` is the outermost VLAN id.
/// - MPLS: up to [`MAX_MPLS_LABELS`] entries before the bottom of stack,
///   else `TooDeep`. The payload is guessed from its first nibble: 4 IPv4,
///   6 IPv6, anything else (pseudowires, control word 0) is non-IP and `Ok`,
///   not an error: it is legitimate traffic we do not look into. A label
///   stack with no byte after it is `Truncated`. An Ethernet pseudowire
///   without control word whose MAC starts with nibble 4 or 6 is misread as
///   IP: the usual limit of this heuristic.
/// - PPPoE session: version/type other than 0x11 is `Malformed`.
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
            &[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0],
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
        ]
    }

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
            l4(v4(6, 40), 40000, 80, flags::SYN),
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
        // Pseudowire control word (nibble 0), and an Ethernet pseudowire
        // whose destination MAC starts with nibble 0.
        let f = cat(&[
            &eth(0x8847),
            &mpls(100, true),
            &[0, 0, 0, 0],
            &MACS,
            &be(0x0800),
        ]);
        check(&f, Ok(()), FrameFacts::default());
        let f = cat(&[&eth(0x8847), &mpls(100, true), &[0x15; 20]]);
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
        for (name, frame) in valid_fixtures() {
            let (r, full) = run(&frame);
            assert_eq!(r, Ok(()), "{name}");
            assert!(full.has_l4, "{name}");
            let mut reached_l4 = false;
            for n in 0..=frame.len() {
                let (r, got) = run(&frame[..n]);
                assert!(
                    matches!(r, Ok(()) | Err(WireError::Truncated)),
                    "{name} cut at {n}: {r:?}"
                );
                if got.addrs != L3Addrs::None {
                    assert_eq!(got.addrs, full.addrs, "{name} cut at {n}");
                    assert_eq!(got.tos, full.tos, "{name} cut at {n}");
                }
                assert_eq!(
                    got.vlan,
                    if n >= 18 { full.vlan } else { got.vlan },
                    "{name} cut at {n}"
                );
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
