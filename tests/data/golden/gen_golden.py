#!/usr/bin/env python3
"""Writes golden.pcap and golden.truth.json, the capture of the golden /metrics page test
(tests/golden_metrics.rs). Deterministic: no randomness but a fixed LCG, fixed
timestamps, standard library only.

Regenerate (then re-bless the expected page, and review its diff):

    cd tests/data/golden && python3 gen_golden.py golden.pcap golden.truth.json
    XDPACCT_BLESS=1 cargo test --profile ci --test golden_metrics

What is in it, against config.toml / as.txt / as-names.txt next to it:
- IPv4 and IPv6 TCP, UDP, ICMP/ICMPv6, GRE, ESP, SCTP and an unlisted protocol
  (253, "other"), to and from the configured host ranges (in / out);
- frames between two local hosts (internal) and two remote ones (external);
- 802.1Q, QinQ (802.1ad + 802.1Q) and MPLS encapsulations, an IPv6 frame
  with a hop-by-hop extension header;
- non-IP frames (ARP, LLDP);
- frames of every size bucket, a 2000-byte one and a 9300-byte one (+Inf);
- remote sides in five ASes (two with no name) and outside the AS table, in
  three configured networks and in none;
- one frame of each parse error: truncated, malformed (IHL 4), too_deep
  (nine VLAN tags).
"""

import ipaddress
import json
import struct
import sys

MAC_LOCAL = bytes.fromhex("020000000001")
MAC_REMOTE = bytes.fromhex("020000000002")


class Lcg:
    """A fixed 32-bit LCG (Numerical Recipes), so the file never changes."""

    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1664525 + 1013904223) & 0xFFFFFFFF
        return (self.x >> 8) % n


def ip4(a):
    return ipaddress.IPv4Address(a).packed


def ip6(a):
    return ipaddress.IPv6Address(a).packed


def l4(proto, sport, dport):
    """A minimal L4 header for the protocol (ports where it has them)."""
    if proto == 6:  # TCP, ACK set
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 0x50, 0x10, 65535, 0, 0)
    if proto == 17:  # UDP (length fixed up by the caller's padding, checksum 0)
        return struct.pack("!HHHH", sport, dport, 8, 0)
    if proto == 132:  # SCTP common header
        return struct.pack("!HHII", sport, dport, 0, 0)
    if proto in (1, 58):  # ICMP echo request
        return struct.pack("!BBHHH", 8 if proto == 1 else 128, 0, 0, 1, 1)
    return b"\x00" * 8  # GRE, ESP, others: 8 opaque bytes


def v4_packet(src, dst, proto, sport, dport, ip_len):
    payload = l4(proto, sport, dport)
    total = max(ip_len, 20 + len(payload))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0, ip4(src), ip4(dst))
    return hdr + payload + b"\x00" * (total - 20 - len(payload))


def v6_packet(src, dst, proto, sport, dport, ip_len, hop_by_hop=False):
    payload = l4(proto, sport, dport)
    nh = proto
    if hop_by_hop:
        payload = struct.pack("!BB6s", proto, 0, b"\x00" * 6) + payload
        nh = 0
    plen = max(ip_len - 40, len(payload))
    hdr = struct.pack("!IHBB16s16s", 0x60000000, plen, nh, 64, ip6(src), ip6(dst))
    return hdr + payload + b"\x00" * (plen - len(payload))


def eth(ethertype, body, tags=()):
    """Ethernet II; `tags` are (tpid, vid) outermost first."""
    out = MAC_LOCAL + MAC_REMOTE
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    out += struct.pack("!H", ethertype) + body
    return out.ljust(60, b"\x00")  # minimum frame without FCS


LOCAL4 = [
    "198.51.100.1",
    "198.51.100.2",
    "198.51.100.7",
    "198.51.100.15",
    "198.51.100.17",
    "198.51.100.33",
    "198.51.100.200",  # local, in no range
]
LOCAL6 = ["2001:db8:1::10", "2001:db8:1:1::20", "2001:db8:1:3::1", "2001:db8:1:ff::1"]
REMOTE4 = [
    "203.0.113.5",  # AS 64500 EXAMPLE-ONE, network cdn
    "203.0.113.200",  # AS 64500, no network (cdn is the lower /25)
    "192.0.2.7",  # AS 64501 EXAMPLE-TWO, network transit
    "100.64.1.1",  # AS 64502 (no name), network cgnat
    "100.100.0.9",  # AS 64502, network cgnat
    "8.8.8.8",  # no AS, no network
]
REMOTE6 = [
    "2a00:1450::1",  # AS 4200000000 EXAMPLE-V6-NET, network transit
    "2001:db8:ff::5",  # AS 64503 (no name)
    "2c0f::1",  # no AS
]
PROTOS = [6, 6, 6, 17, 17, 1, 47, 50, 132, 253]
SIZES = [60, 64, 100, 128, 200, 300, 576, 1000, 1400, 1514]


def frames():
    r = Lcg(20240611)
    out = []
    # Plain IPv4 in and out, the bulk.
    for i in range(160):
        local = LOCAL4[r.next(len(LOCAL4))]
        remote = REMOTE4[r.next(len(REMOTE4))]
        proto = PROTOS[r.next(len(PROTOS))]
        size = SIZES[r.next(len(SIZES))]
        src, dst = (remote, local) if i % 3 else (local, remote)
        pkt = v4_packet(src, dst, proto, 1024 + r.next(8), 80 + r.next(3), size - 14)
        out.append((eth(0x0800, pkt), src, dst))
    # IPv6 in and out.
    for i in range(80):
        local = LOCAL6[r.next(len(LOCAL6))]
        remote = REMOTE6[r.next(len(REMOTE6))]
        proto = [6, 17, 58, 6][r.next(4)]
        size = SIZES[r.next(len(SIZES))] + 20
        src, dst = (remote, local) if i % 2 else (local, remote)
        pkt = v6_packet(src, dst, proto, 2048 + r.next(4), 443, size - 14, hop_by_hop=(i % 10 == 0))
        out.append((eth(0x86DD, pkt), src, dst))
    # VLAN, QinQ and MPLS.
    for i in range(20):
        src, dst = REMOTE4[i % 3], LOCAL4[i % 4]
        pkt = v4_packet(src, dst, 17, 53, 3000 + i % 2, 100)
        out.append((eth(0x0800, pkt, tags=[(0x8100, 100 + i % 2)]), src, dst))
    for i in range(10):
        src, dst = LOCAL6[i % 2], REMOTE6[0]
        pkt = v6_packet(src, dst, 6, 4000, 443, 200)
        out.append((eth(0x86DD, pkt, tags=[(0x88A8, 10), (0x8100, 200)]), src, dst))
    for i in range(6):
        src, dst = REMOTE4[3], LOCAL4[0]
        pkt = v4_packet(src, dst, 6, 5000, 22, 300)
        mpls = struct.pack("!I", (1000 + i) << 12 | 1 << 8 | 64)
        out.append((eth(0x8847, mpls + pkt), src, dst))
    # Internal and external.
    for i in range(8):
        src, dst = LOCAL4[1], LOCAL4[2 + i % 2]
        out.append((eth(0x0800, v4_packet(src, dst, 6, 6000, 7000, 400)), src, dst))
    for i in range(5):
        src, dst = REMOTE4[0], REMOTE4[2]
        out.append((eth(0x0800, v4_packet(src, dst, 17, 123, 123, 90)), src, dst))
    src, dst = LOCAL6[0], LOCAL6[2]
    out.append((eth(0x86DD, v6_packet(src, dst, 58, 0, 0, 104)), src, dst))
    # Non-IP.
    arp = struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_LOCAL, ip4(LOCAL4[0]), b"\x00" * 6, ip4(LOCAL4[1])
    )
    for _ in range(4):
        out.append((eth(0x0806, arp), None, None))
    out.append((eth(0x88CC, b"\x02\x07\x04" + MAC_LOCAL + b"\x00\x00"), None, None))
    # Big frames: the 2048 bucket and +Inf.
    src, dst = REMOTE4[2], LOCAL4[3]
    out.append((eth(0x0800, v4_packet(src, dst, 17, 9, 9, 2000 - 14)), src, dst))
    src, dst = REMOTE6[0], LOCAL6[1]
    out.append((eth(0x86DD, v6_packet(src, dst, 17, 9, 9, 9300 - 14)), src, dst))
    # Parse errors: truncated (IPv4 header cut short), malformed (IHL 4),
    # too_deep (nine VLAN tags). None of them yields addresses.
    cut = v4_packet(REMOTE4[0], LOCAL4[0], 6, 1, 2, 40)[:12]
    out.append((MAC_LOCAL + MAC_REMOTE + b"\x08\x00" + cut, None, None, "truncated"))
    bad = bytearray(v4_packet(REMOTE4[0], LOCAL4[0], 6, 1, 2, 60))
    bad[0] = 0x44
    out.append((eth(0x0800, bytes(bad)), None, None, "malformed"))
    deep = [(0x8100, 1)] * 9
    pkt = v4_packet(REMOTE4[0], LOCAL4[0], 17, 1, 2, 60)
    out.append((eth(0x0800, pkt, tags=deep), None, None, "too_deep"))
    return out


# Independent truth for the test, from the addresses the frames were built
# with (not from parsing them): config.toml's local networks and ranges.
LOCAL_NETS = [ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:1::/48")]
RANGES = [
    ipaddress.ip_network("198.51.100.0/28"),
    ipaddress.ip_network("198.51.100.16/30"),
    ipaddress.ip_network("198.51.100.32/30"),
    ipaddress.ip_network("2001:db8:1::/62"),
]
BUCKETS = [64, 128, 256, 512, 1024, 1518, 2048, 9216]


def host_label(a):
    """The page's `ip` label of a host address, or None outside the ranges."""
    addr = ipaddress.ip_address(a)
    if not any(addr in r for r in RANGES if r.version == addr.version):
        return None
    if addr.version == 4:
        return str(addr)
    return str(ipaddress.ip_network((int(addr) >> 64 << 64, 64)))


def truth(records):
    t = {
        "frames": 0,
        "bytes": 0,
        "direction": {d: [0, 0] for d in ("in", "out", "internal", "external")},
        "size_buckets": [0] * (len(BUCKETS) + 1),
        "parse_errors": {"truncated": 0, "malformed": 0, "too_deep": 0},
        "hosts": {},
    }
    for rec in records:
        frame, src, dst = rec[:3]
        n = len(frame)
        t["frames"] += 1
        t["bytes"] += n
        t["size_buckets"][next((i for i, b in enumerate(BUCKETS) if n <= b), len(BUCKETS))] += 1
        if len(rec) > 3:
            t["parse_errors"][rec[3]] += 1
        if src is None:
            d = "external"
        else:
            sl = any(ipaddress.ip_address(src) in net for net in LOCAL_NETS)
            dl = any(ipaddress.ip_address(dst) in net for net in LOCAL_NETS)
            d = {(False, True): "in", (True, False): "out", (True, True): "internal"}.get((sl, dl), "external")
            for addr, way in ((dst, "in"), (src, "out")):
                h = host_label(addr)
                if h is not None:
                    c = t["hosts"].setdefault(h, {"in": [0, 0], "out": [0, 0]})[way]
                    c[0] += 1
                    c[1] += n
        t["direction"][d][0] += 1
        t["direction"][d][1] += n
    return t


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_golden.py OUT.pcap OUT.truth.json")
    records = frames()
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, (frame, *_) in enumerate(records):
            ts = 1_700_000_000 * 1_000_000 + n * 1000
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
            f.write(frame)
    with open(sys.argv[2], "w") as f:
        json.dump(truth(records), f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
