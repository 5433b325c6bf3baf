#!/usr/bin/env python3
"""gen_traffic.py's traffic as a flow exporter sees it, for the collector tests.

The same generator (its Generator class, seed for seed), with these changes,
because flow exporters that read a capture (softflowd, pmacctd) differ from
a tap in known ways:
  - every frame is plain Ethernet (no 802.1Q, QinQ, MPLS or PPPoE), which
    not every exporter enters;
  - small frames are not padded to the 60-byte Ethernet minimum (softflowd
    takes a packet's IP bytes from the captured length, padding included);
  - `--no-fragments` leaves out the frames that are IP fragments (pmacctd
    drops a later fragment whose first fragment it did not see, and the
    generator's fragments are such orphans): they are neither written nor
    in the truth;
  - `--tail N` appends N frames between two external addresses
    (192.0.2.1 -> 192.0.2.2, no local host, so in no host's truth): pmacctd
    does not export the last packets it reads before it exits.
The truth file has gen_traffic.py's format and is the generator's own
bookkeeping of the frames it wrote (the tail is not in it).

Usage: python3 tests/data/gen_flows.py out.pcap --packets N --seed S \\
           --truth out.json [--no-fragments] [--tail N]
"""

import argparse
import ipaddress
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_traffic as g  # noqa: E402

g.L2_KINDS = [("plain", 1)]
g.MIN_WIRE = 0

FRAGMENTS = {"ipv4_first_fragment", "ipv4_later_fragment",
             "ipv6_first_fragment", "ipv6_later_fragment"}


def tail_frame(k):
    """An external UDP frame (no local host): 192.0.2.1 -> 192.0.2.2."""
    payload = bytes(18)
    udp = struct.pack("!HHHH", 9, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k & 0xFFFF, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    ip = ip[:10] + struct.pack("!H", g.csum(ip)) + ip[12:]
    return g.ROUTER_MAC + g.CUSTOMER_MAC + struct.pack("!H", g.ETH_IPV4) + ip + udp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--no-fragments", action="store_true")
    ap.add_argument("--tail", type=int, default=0)
    a = ap.parse_args()
    gen = g.Generator(a.seed)
    clock = g.ConstantRate(1_700_000_000, 10_000)
    hosts, features = {}, {}
    totals = {"packets": 0, "l2_bytes": 0, "l3_bytes": 0, "captured_bytes": 0}
    k = 0
    with open(a.out, "wb") as f:
        w = g.PcapWriter(f, 65535)
        while totals["packets"] < a.packets:
            frame, wire, local, v6, inbound, l3_len, feats = gen.frame()
            if a.no_fragments and FRAGMENTS.intersection(feats):
                continue
            f.write(w.record(clock.usec(k), frame, wire))
            k += 1
            key = str(ipaddress.IPv6Address(local) if v6 else ipaddress.IPv4Address(local))
            h = hosts.setdefault(key, dict.fromkeys(
                ["in_packets", "out_packets", "in_l2_bytes", "out_l2_bytes",
                 "in_l3_bytes", "out_l3_bytes"], 0))
            d = "in" if inbound else "out"
            h[d + "_packets"] += 1
            h[d + "_l2_bytes"] += wire
            h[d + "_l3_bytes"] += l3_len
            totals["packets"] += 1
            totals["l2_bytes"] += wire
            totals["l3_bytes"] += l3_len
            totals["captured_bytes"] += wire
            for name in feats:
                features[name] = features.get(name, 0) + 1
        for t in range(a.tail):
            fr = tail_frame(t)
            f.write(w.record(clock.usec(k), fr, len(fr)))
            k += 1
    with open(a.truth, "w") as t:
        json.dump({"hosts": hosts, "totals": totals,
                   "features": dict(sorted(features.items())),
                   "generator": {"seed": a.seed, "packets": a.packets,
                                 "no_fragments": a.no_fragments, "tail": a.tail}},
                  t, indent=1)
        t.write("\n")


if __name__ == "__main__":
    main()
