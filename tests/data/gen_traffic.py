#!/usr/bin/env python3
"""Synthetic ISP-link traffic for xdpacct's tests, and its exact truth.

Writes a capture (classic pcap with microsecond timestamps, or pcapng with
one SHB, one IDB and EPBs) of Ethernet frames as a tap on a customer-facing
link would see them, and optionally a JSON truth file computed from the
generator's own choices (the sizes it picked and the headers it added),
never by reading back what it wrote.

Python 3 standard library only, so that it is obviously independent of the
Rust code it checks. Deterministic: the same arguments give the same bytes.

Traffic:
  - local side: 198.51.100.1-200 and 2001:db8:1:N::1 for N = 1..50 (each IPv6
    host its own /64, all inside 2001:db8:1::/58); remote side: hosts in 64
    IPv4 /16s with first octet 11..99 and in 24 IPv6 /32s under 2a00::/16,
    drawn once from the seed;
  - IPv4 and IPv6; TCP, UDP, ICMP / ICMPv6; about 60 % inbound;
  - IMIX-like wire sizes (60 / 590 / 1514 bytes without FCS plus a uniform
    part), small packets padded to the 60-byte Ethernet minimum;
  - every encapsulation xdpacct's frame walk enters: 802.1Q, QinQ (0x88a8 or
    0x9100 outer tag + 0x8100 inner), MPLS stacks of 1-3 labels, PPPoE
    sessions (bare or behind an 802.1Q tag), IPv4 options, IPv4 first and
    later fragments, IPv6 hop-by-hop / routing / destination options
    headers and first and later fragments.
Every frame has exactly one local host, is at most 1514 bytes on the wire
(so it fits a 1500-byte MTU veth with any of the tags) and has at most 128
bytes of headers (so `--snaplen 128` never cuts a header).

Truth (`--truth FILE`):
  {"hosts": {"198.51.100.7": {"in_packets", "out_packets", "in_l2_bytes",
             "out_l2_bytes", "in_l3_bytes", "out_l3_bytes"}, ...},
   "totals": {"packets", "l2_bytes", "l3_bytes", "captured_bytes"},
   "features": {name: frames}, "generator": {arguments}}
l2 = wire length without FCS; l3 = the IP header's total length (IPv6:
payload length + 40). "in" = towards the local host.

Usage:
  python3 tests/data/gen_traffic.py out.pcap --packets 100000 --seed 7 \\
      --truth out.truth.json [--format pcapng] [--snaplen 128] \\
      [--start 1700000000] [--pps 10000]
"""

import argparse
import ipaddress
import json
import random
import struct
import sys

LINKTYPE_ETHERNET = 1
MAX_WIRE = 1514
MIN_WIRE = 60
MAX_HEADERS = 128

V4_HOSTS = 200
V6_HOSTS = 50

# Frame-level encapsulations: (name, weight).
L2_KINDS = [
    ("plain", 64),
    ("vlan", 12),
    ("qinq_88a8", 4),
    ("qinq_9100", 2),
    ("mpls", 8),
    ("pppoe", 5),
    ("vlan_pppoe", 5),
]
# Wire-size classes: "small" is headers only (an ACK, a DNS query...).
SIZES = [("small", 7), (590, 4), (1514, 1), ("uniform", 2)]

ROUTER_MAC = bytes.fromhex("02005e000001")
CUSTOMER_MAC = bytes.fromhex("02005e000002")

TCP_FLAGS = [(0x10, 60), (0x18, 25), (0x02, 5), (0x12, 4), (0x11, 3), (0x04, 3)]
PORTS = [80, 443, 53, 123, 22, 25, 993, 8080, 3478, 5060]

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD = 0x8100, 0x88A8, 0x9100
ETH_MPLS, ETH_PPPOE = 0x8847, 0x8864
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
HOPOPT, ROUTING, FRAG, DSTOPTS = 0, 43, 44, 60

# IPv4 options, each padded to a multiple of 4 bytes.
V4_OPTIONS = [
    bytes([0x94, 4, 0, 0]),  # router alert
    bytes([7, 11, 4]) + bytes(8) + bytes(1),  # record route, 2 slots, EOL
    bytes([68, 12, 5, 0]) + bytes(8),  # timestamp, 2 slots
    bytes([7, 39, 4]) + bytes(36) + bytes(1),  # record route, 9 slots: 40 bytes
]


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def weighted(rnd, table):
    return rnd.choices([k for k, _ in table], [w for _, w in table])[0]


class ConstantRate:
    """Frame k at start + k / pps. Timestamps go through this one object so a
    per-interval traffic pattern can later replace it (same `usec` method)."""

    def __init__(self, start, pps):
        self.start_us = start * 1_000_000
        self.pps = pps

    def usec(self, k):
        return self.start_us + k * 1_000_000 // self.pps


class PcapWriter:
    def __init__(self, f, snaplen):
        self.f = f
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def record(self, usec, data, wire_len):
        sec, us = divmod(usec, 1_000_000)
        return struct.pack("<IIII", sec, us, len(data), wire_len) + data


class PcapngWriter:
    def __init__(self, f, snaplen):
        self.f = f
        shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
        # No if_tsresol option: microsecond timestamps, the default.
        idb = struct.pack("<IIHHII", 1, 20, LINKTYPE_ETHERNET, 0, snaplen, 20)
        f.write(shb + idb)

    def record(self, usec, data, wire_len):
        pad = -len(data) % 4
        total = 32 + len(data) + pad
        head = struct.pack(
            "<IIIIIII", 6, total, 0, usec >> 32, usec & 0xFFFFFFFF, len(data), wire_len
        )
        return head + data + bytes(pad) + struct.pack("<I", total)


class Generator:
    def __init__(self, seed):
        self.rnd = rnd = random.Random(seed)
        self.local4 = [ipaddress.IPv4Address("198.51.100.0") + i for i in range(1, V4_HOSTS + 1)]
        self.local6 = [
            ipaddress.IPv6Address("2001:db8:1::1") + (n << 64) for n in range(1, V6_HOSTS + 1)
        ]
        self.remote4 = [
            (rnd.randint(11, 99) << 24) | (rnd.randint(0, 255) << 16) for _ in range(64)
        ]
        self.remote6 = [(0x2A00 << 112) | (rnd.randint(1, 0xFFFF) << 96) for _ in range(24)]
        self.payload = bytes(rnd.getrandbits(8) for _ in range(2048))
        self.ident = 0

    # ---- per-frame choices ----

    def frame(self):
        """One frame: (bytes, local address string, inbound, l3 length, features)."""
        rnd = self.rnd
        v6 = rnd.random() < 0.3
        inbound = rnd.random() < 0.6
        if v6:
            local = rnd.choice(self.local6).packed
            remote = (rnd.choice(self.remote6) | rnd.getrandbits(64) | 1).to_bytes(16, "big")
            proto = weighted(rnd, [(TCP, 65), (UDP, 28), (ICMPV6, 7)])
        else:
            local = rnd.choice(self.local4).packed
            remote = (rnd.choice(self.remote4) | rnd.randint(1, 0xFFFE)).to_bytes(4, "big")
            proto = weighted(rnd, [(TCP, 70), (UDP, 25), (ICMP, 5)])
        src, dst = (remote, local) if inbound else (local, remote)
        features = []
        kind = weighted(rnd, L2_KINDS)
        features.append(kind)
        l2_len = {"plain": 14, "vlan": 18, "qinq_88a8": 22, "qinq_9100": 22,
                  "pppoe": 22, "vlan_pppoe": 26}.get(kind)
        labels = 0
        if kind == "mpls":
            labels = rnd.randint(1, 3)
            features.append("mpls_labels_%d" % labels)
            l2_len = 14 + 4 * labels
        size = weighted(rnd, SIZES)
        if size == "uniform":
            size = rnd.randint(MIN_WIRE, MAX_WIRE)
        target_l3 = None if size == "small" else size - l2_len
        if v6:
            ip, l3_len = self.ipv6(src, dst, proto, target_l3, features)
        else:
            ip, l3_len = self.ipv4(src, dst, proto, target_l3, features)
        if kind != "plain":
            features.append("%s_ipv%d" % (kind, 6 if v6 else 4))
        l2 = self.l2(kind, labels, v6, inbound, l3_len)
        frame = l2 + ip
        wire = max(MIN_WIRE, l2_len + l3_len)
        assert len(l2) == l2_len and len(frame) == l2_len + l3_len and wire <= MAX_WIRE
        return frame, wire, local, v6, inbound, l3_len, features

    def l2(self, kind, labels, v6, inbound, l3_len):
        rnd = self.rnd
        macs = CUSTOMER_MAC + ROUTER_MAC if inbound else ROUTER_MAC + CUSTOMER_MAC
        et = ETH_IPV6 if v6 else ETH_IPV4
        if kind == "plain":
            return macs + struct.pack("!H", et)
        if kind == "vlan":
            return macs + struct.pack("!HHH", ETH_VLAN, rnd.randint(1, 4094), et)
        if kind in ("qinq_88a8", "qinq_9100"):
            outer = ETH_QINQ if kind == "qinq_88a8" else ETH_QINQ_OLD
            return macs + struct.pack(
                "!HHHHH", outer, rnd.randint(1, 4094), ETH_VLAN, rnd.randint(1, 4094), et
            )
        if kind == "mpls":
            stack = b"".join(
                struct.pack("!I", (rnd.randint(16, 0xFFFFF) << 12) | ((i == labels - 1) << 8) | 64)
                for i in range(labels)
            )
            return macs + struct.pack("!H", ETH_MPLS) + stack
        # PPPoE session: ver/type 0x11, code 0, session id, length = PPP + IP.
        ppp = struct.pack(
            "!BBHHH", 0x11, 0, rnd.randint(1, 0xFFFE), 2 + l3_len, PPP_IPV6 if v6 else PPP_IPV4
        )
        if kind == "pppoe":
            return macs + struct.pack("!H", ETH_PPPOE) + ppp
        return macs + struct.pack("!HHH", ETH_VLAN, rnd.randint(1, 4094), ETH_PPPOE) + ppp

    def l4(self, proto, length):
        """Transport header for a datagram of `length` bytes (header + data)."""
        rnd = self.rnd
        sport, dport = rnd.randint(1024, 65535), rnd.choice(PORTS)
        if rnd.random() < 0.5:
            sport, dport = dport, sport
        if proto == TCP:
            flags = weighted(rnd, TCP_FLAGS)
            return struct.pack(
                "!HHIIBBHHH", sport, dport, rnd.getrandbits(32), rnd.getrandbits(32),
                5 << 4, flags, 65535, 0, 0,
            )
        if proto == UDP:
            return struct.pack("!HHHH", sport, dport, length & 0xFFFF, 0)
        echo = (8 if rnd.random() < 0.5 else 0) if proto == ICMP else rnd.choice([128, 129])
        return struct.pack("!BBHHH", echo, 0, 0, rnd.getrandbits(16), rnd.getrandbits(16))

    @staticmethod
    def l4_len(proto):
        return 20 if proto == TCP else 8

    def small_data(self, proto):
        # Pure ACKs carry nothing; a DNS query or a ping a few bytes.
        return 0 if proto == TCP else self.rnd.randint(0, 40)

    def fragment_size(self, fragmentable, minimum, more):
        """Bytes after the unfragmentable part: a multiple of 8 unless last."""
        size = max(fragmentable, minimum)
        if more:
            size -= size % 8
            if size < minimum:
                size = minimum + (-minimum % 8)
        return size

    def ipv4(self, src, dst, proto, target_l3, features):
        rnd = self.rnd
        opts = b""
        if rnd.random() < 0.03:
            opts = rnd.choice(V4_OPTIONS)
            features.append("ipv4_options")
        ihl = 20 + len(opts)
        frag_word, first = 0, True
        more = False
        r = rnd.random()
        if r < 0.02:
            features.append("ipv4_first_fragment")
            more = True
            frag_word = 0x2000
        elif r < 0.04:
            features.append("ipv4_later_fragment")
            first = False
            more = rnd.random() < 0.5
            frag_word = (0x2000 if more else 0) | (185 * rnd.randint(1, 40))
        l4min = self.l4_len(proto) if first else 8
        if target_l3 is None:
            want = l4min + (self.small_data(proto) if first else 0)
        else:
            want = target_l3 - ihl
        body = self.fragment_size(want, l4min, more)
        total = ihl + body
        self.ident = (self.ident + 1) & 0xFFFF
        h = struct.pack(
            "!BBHHHBBH4s4s", 0x40 | (ihl // 4), 0, total, self.ident, frag_word, 64, proto, 0,
            src, dst,
        ) + opts
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        if first:
            l4 = self.l4(proto, body)
            data = l4 + self.payload[: body - len(l4)]
        else:
            data = self.payload[:body]
        return h + data, total

    def ipv6(self, src, dst, proto, target_l3, features):
        rnd = self.rnd
        before = []  # unfragmentable extension headers: (type, bytes)
        after = []  # destination options in the fragmentable part
        if rnd.random() < 0.08:
            chain = rnd.choice(
                [["hbh"], ["routing"], ["dst"], ["hbh", "routing"], ["hbh", "dst"], ["routing", "dst"]]
            )
            for name in chain:
                features.append({"hbh": "ipv6_hop_by_hop", "routing": "ipv6_routing",
                                 "dst": "ipv6_dest_options"}[name])
                if name == "hbh":
                    # Router alert (MLD-style) + PadN to 8 bytes.
                    before.append((HOPOPT, bytes([5, 2, 0, 0, 1, 0])))
                elif name == "routing":
                    # Segment routing header, segments left 0, one segment: dst.
                    before.append((ROUTING, bytes([4, 0, 0, 0, 0, 0]) + dst))
                else:
                    after.append((DSTOPTS, bytes([1, 4, 0, 0, 0, 0])))
        frag = None
        r = rnd.random()
        if r < 0.02:
            features.append("ipv6_first_fragment")
            frag = (0, True)
        elif r < 0.04:
            features.append("ipv6_later_fragment")
            frag = (185 * rnd.randint(1, 40), rnd.random() < 0.5)
        first = frag is None or frag[0] == 0
        if not first:
            after = []
        # Next-header chain: before..., [frag], after..., proto.
        chain = before + ([(FRAG, None)] if frag else []) + after
        types = [t for t, _ in chain] + [proto]
        unfrag = sum(2 + len(b) for _, b in before)
        frag_len = 8 if frag else 0
        fragmentable_hdrs = sum(2 + len(b) for _, b in after)
        l4min = fragmentable_hdrs + (self.l4_len(proto) if first else 8)
        if target_l3 is None:
            want = l4min + (self.small_data(proto) if first else 0)
        else:
            want = target_l3 - 40 - unfrag - frag_len
        body = self.fragment_size(want, l4min, frag is not None and frag[1])
        plen = unfrag + frag_len + body
        out = [struct.pack("!IHBB", 6 << 28, plen, types[0], 64), src, dst]
        for i, (t, b) in enumerate(chain):
            nxt = types[i + 1]
            if t == FRAG:
                self.ident = (self.ident + 1) & 0xFFFF
                out.append(struct.pack("!BBHI", nxt, 0, (frag[0] << 3) | frag[1], self.ident))
            else:
                out.append(bytes([nxt, (2 + len(b)) // 8 - 1]) + b)
        if first:
            l4 = self.l4(proto, body - fragmentable_hdrs)
            out.append(l4)
            out.append(self.payload[: body - fragmentable_hdrs - len(l4)])
        else:
            out.append(self.payload[:body])
        return b"".join(out), 40 + plen


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Synthetic ISP-link traffic (pcap/pcapng) and its exact per-host truth."
    )
    ap.add_argument("out", help="capture file to write")
    ap.add_argument("--packets", type=int, default=100_000, help="frames (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--format", choices=["pcap", "pcapng"], default="pcap")
    ap.add_argument(
        "--snaplen", type=int, default=65535,
        help="snap length written into the file header / IDB; records keep "
        "min(wire length, snaplen) bytes (default 65535: whole frames)",
    )
    ap.add_argument("--start", type=int, default=1_700_000_000,
                    help="timestamp of the first frame, Unix seconds (default 1700000000)")
    ap.add_argument("--pps", type=int, default=10_000,
                    help="frames per second: frame k at start + k/pps (default 10000)")
    ap.add_argument("--truth", help="write the truth JSON here")
    a = ap.parse_args(argv)
    if a.packets < 0:
        ap.error("--packets must be 0 or more")
    if not 1 <= a.snaplen <= 262144:
        ap.error("--snaplen must be between 1 and 262144")
    if a.pps < 1:
        ap.error("--pps must be at least 1")
    if not 0 <= a.start < 2**32:
        ap.error("--start must be a Unix time between 0 and 4294967295")
    return a


def main(argv=None):
    a = parse_args(argv)
    gen = Generator(a.seed)
    clock = ConstantRate(a.start, a.pps)
    hosts = {}
    totals = {"packets": 0, "l2_bytes": 0, "l3_bytes": 0, "captured_bytes": 0}
    features = {}
    last_usec = clock.usec(max(a.packets - 1, 0))
    if a.format == "pcap" and last_usec // 1_000_000 >= 2**32:
        sys.exit("gen_traffic: the last frame's time does not fit a pcap timestamp; lower --start")
    try:
        f = open(a.out, "wb")
    except OSError as e:
        sys.exit("gen_traffic: cannot write %s: %s" % (a.out, e.strerror))
    with f:
        w = (PcapWriter if a.format == "pcap" else PcapngWriter)(f, a.snaplen)
        chunk = []
        for k in range(a.packets):
            frame, wire, local, v6, inbound, l3_len, feats = gen.frame()
            # Bytes past the headers the generator did not spell out (the
            # Ethernet padding of small frames) are zeros.
            cap = min(wire, a.snaplen)
            data = frame[:cap] if len(frame) >= cap else frame + bytes(cap - len(frame))
            chunk.append(w.record(clock.usec(k), data, wire))
            if len(chunk) == 4096:
                f.write(b"".join(chunk))
                chunk = []
            key = str(ipaddress.IPv6Address(local) if v6 else ipaddress.IPv4Address(local))
            h = hosts.get(key)
            if h is None:
                h = hosts[key] = dict.fromkeys(
                    ["in_packets", "out_packets", "in_l2_bytes", "out_l2_bytes",
                     "in_l3_bytes", "out_l3_bytes"], 0)
            d = "in" if inbound else "out"
            h[d + "_packets"] += 1
            h[d + "_l2_bytes"] += wire
            h[d + "_l3_bytes"] += l3_len
            totals["packets"] += 1
            totals["l2_bytes"] += wire
            totals["l3_bytes"] += l3_len
            totals["captured_bytes"] += cap
            for name in feats:
                features[name] = features.get(name, 0) + 1
        f.write(b"".join(chunk))
    if a.truth:
        truth = {
            "hosts": hosts,
            "totals": totals,
            "features": dict(sorted(features.items())),
            "generator": {
                "seed": a.seed, "packets": a.packets, "format": a.format,
                "snaplen": a.snaplen, "start": a.start, "pps": a.pps,
                "max_header_bytes": MAX_HEADERS,
            },
        }
        try:
            with open(a.truth, "w") as t:
                json.dump(truth, t, indent=1, sort_keys=False)
                t.write("\n")
        except OSError as e:
            sys.exit("gen_traffic: cannot write %s: %s" % (a.truth, e.strerror))


if __name__ == "__main__":
    main()
