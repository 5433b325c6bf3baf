#!/usr/bin/env python3
"""Connections of known sizes for the busiest-connections view, and their truth.

Writes a classic pcap (microsecond timestamps) of Ethernet frames carrying
`--flows` one-way connections (TCP with ACK or PSH/ACK only, never
SYN/FIN/RST, and UDP; IPv4 and IPv6; to and from local hosts in
198.51.100.0/24 and 2001:db8:1::/48), their frames interleaved at random
over `--seconds` seconds. Each connection's packet count and frame sizes
are drawn from the seed; the totals of all connections are distinct.

Truth (`--truth FILE`), computed from the generator's own choices:
  {"connections": [{"src", "dst", "protocol" ("tcp"/"udp"), "src_port",
    "dst_port", "direction" ("in"/"out"), "bytes", "packets"}, ...]}
bytes = frame length on the wire without FCS (accounting.bytes = "l2").

Python 3 standard library only.

Usage:
  python3 tests/data/gen_connections.py out.pcap --truth truth.json \\
      [--flows 60] [--seed 1] [--seconds 5]
"""

import argparse
import ipaddress
import json
import random
import struct

MAC_A = bytes.fromhex("02005e000001")
MAC_B = bytes.fromhex("02005e000002")


def ipv4_header(src, dst, proto, payload_len):
    total = 20 + payload_len
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, proto, 0,
                       src.packed, dst.packed)


def ipv6_header(src, dst, proto, payload_len):
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, proto, 64, src.packed, dst.packed)


def frame(c, size):
    """One Ethernet frame of `size` bytes (at least 60) of connection c."""
    v6 = c["src"].version == 6
    ethertype = 0x86DD if v6 else 0x0800
    ip_len = 40 if v6 else 20
    l4_len = 20 if c["proto"] == 6 else 8
    payload = size - 14 - ip_len - l4_len
    assert payload >= 0
    if c["proto"] == 6:
        flags = 0x18 if payload else 0x10
        l4 = struct.pack("!HHIIBBHHH", c["sport"], c["dport"], 1, 1, 5 << 4, flags,
                         65535, 0, 0)
    else:
        l4 = struct.pack("!HHHH", c["sport"], c["dport"], 8 + payload, 0)
    hdr = ipv6_header if v6 else ipv4_header
    ip = hdr(c["src"], c["dst"], c["proto"], l4_len + payload)
    out = MAC_A + MAC_B + struct.pack("!H", ethertype) + ip + l4 + bytes(payload)
    assert len(out) == size
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--truth", required=True)
    ap.add_argument("--flows", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    conns, totals = [], set()
    while len(conns) < a.flows:
        n = len(conns)
        v6 = n % 4 == 3
        if v6:
            local = ipaddress.ip_address("2001:db8:1::%x" % (n + 1))
            remote = ipaddress.ip_address("2a00:1450::%x" % (n + 1))
        else:
            local = ipaddress.ip_address("198.51.100.%d" % (n % 200 + 1))
            remote = ipaddress.ip_address("203.0.113.%d" % (n % 200 + 1))
        out = rnd.random() < 0.5
        proto = 6 if rnd.random() < 0.6 else 17
        min_size = 14 + (40 if v6 else 20) + (20 if proto == 6 else 8)
        packets = rnd.randint(1, 300)
        sizes = [max(60, min_size, rnd.choice([60, 590, 1514, rnd.randint(60, 1514)]))
                 for _ in range(packets)]
        if sum(sizes) in totals:
            continue
        totals.add(sum(sizes))
        c = {
            "src": local if out else remote,
            "dst": remote if out else local,
            "proto": proto,
            "sport": rnd.randint(1024, 65535),
            "dport": rnd.choice([80, 443, 53, 5060, 8080]),
            "direction": "out" if out else "in",
            "sizes": sizes,
        }
        conns.append(c)
    frames = [(c, s) for c in conns for s in c["sizes"]]
    rnd.shuffle(frames)
    start_us = 1_700_000_000 * 1_000_000
    step = a.seconds * 1_000_000 // max(1, len(frames))
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k, (c, size) in enumerate(frames):
            t = start_us + k * step
            data = frame(c, size)
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(data), len(data)))
            f.write(data)
    truth = {
        "connections": [
            {
                "src": str(c["src"]),
                "dst": str(c["dst"]),
                "protocol": "tcp" if c["proto"] == 6 else "udp",
                "src_port": c["sport"],
                "dst_port": c["dport"],
                "direction": c["direction"],
                "bytes": sum(c["sizes"]),
                "packets": len(c["sizes"]),
            }
            for c in conns
        ],
        "generator": vars(a),
    }
    with open(a.truth, "w") as f:
        json.dump(truth, f, indent=1)


if __name__ == "__main__":
    main()
