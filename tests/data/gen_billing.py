#!/usr/bin/env python3
"""Billing test traffic: sparse captures spanning days with a chosen pattern
per customer per interval, and the truth per interval.

Writes one classic pcap per appliance ("a" and "b": one customer, gamma, is
on links behind both) and a truth JSON:

  {"interval": 300, "from": <unix s>, "to": <unix s>,
   "labels": {"<subject key>": {"customer": "..."}},
   "appliances": {"a": {"first": <first covered interval start>,
                        "last": <last covered interval start>,
                        "samples": {"<start>": {"<key>": [in_packets, in_bytes,
                                                          out_packets, out_bytes]}}},
                  "b": {...}}}

Every interval from "first" to "last" (inclusive) is covered by capture: its
first frame is at "first" exactly and its last frame is one marker frame in
the interval after "last" (between two addresses outside every range: it
counts for no one), so that every interval up to "last" is closed. Directions
are the host's point of view: "in" is to an address of the customer's range.
Frames sit at random offsets in their interval, some exactly at its start
and some in its last microsecond. Bytes are wire lengths (Ethernet header and
payload, no FCS); records are cut to 96 captured bytes.

With --split-a L1 L2, appliance "a"'s frames are also written over two
more captures, its two links (interfaces): acme's frames go to either at
random, everyone else's to L1, the markers to both. The truth of "a" is
then the per-interval sum over the two links, and a.pcap is unchanged.

Patterns: idle intervals (no frames), normal ones (a few frames), and for
each customer a set of burst intervals (hundreds of full-size frames) in the
top 5 %; gamma's bursts on "a" and on "b" never coincide, so the p95 of the
per-interval sum differs from the sum of the two p95s.

Standard library only.
"""

import argparse
import ipaddress
import json
import random
import struct

LINKTYPE_ETHERNET = 1
SNAP = 96

# (subject key, range prefix, labels); the ranges of the test's config.
CUSTOMERS = [
    ("acme", "198.51.100.0/28", {"customer": "acme"}),
    ("beta", "198.51.100.16/28", {"customer": "beta"}),
    ("gamma", "203.0.113.0/28", {"customer": "gamma"}),
    # A range without a customer label: billed under customer "".
    ("", "198.51.100.32/29", {"customer": ""}),
]
ON_B = {"gamma"}
# The customer on both links of appliance "a" with --split-a.
SPLIT = "acme"
REMOTE = ipaddress.ip_network("192.0.2.0/24")
OUTSIDE = (ipaddress.ip_address("100.64.0.1"), ipaddress.ip_address("100.64.0.2"))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src, dst, wire_len, rnd):
    """An Ethernet/IPv4/UDP frame of `wire_len` bytes on the wire, cut to SNAP."""
    ip_len = wire_len - 14
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, ip_len, rnd.randrange(65536), 0, 64, 17, 0,
        src.packed, dst.packed,
    )
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", rnd.randrange(1024, 65535), 443, ip_len - 20, 0)
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    full = eth + ip + udp
    payload = bytes((i * 7) & 0xFF for i in range(max(0, SNAP - len(full))))
    return (full + payload)[: min(SNAP, wire_len)]


def pattern(rnd, key, starts, bursts):
    """Frames of one customer on one appliance: (usec, src, dst, wire_len, dir)."""
    net = ipaddress.ip_network(dict((c[0], c[1]) for c in CUSTOMERS)[key])
    hosts = list(net)
    out = []
    # Lean of each customer, so the methods differ: acme mostly in, beta out.
    lean = {"acme": (6, 2), "beta": (2, 6), "gamma": (4, 4), "": (1, 1)}[key]
    for start in starts:
        if start in bursts:
            n_in, n_out = rnd.randint(150, 300) * lean[0] // 4, rnd.randint(150, 300) * lean[1] // 4
            sizes = lambda: 1514
        elif rnd.random() < 0.2:
            continue  # idle
        else:
            n_in, n_out = rnd.randint(0, lean[0]), rnd.randint(0, lean[1])
            sizes = lambda: rnd.randint(64, 1514)
        for d, n in (("in", n_in), ("out", n_out)):
            for _ in range(n):
                r = rnd.random()
                if r < 0.05:
                    off = 0
                elif r < 0.10:
                    off = args_interval * 1_000_000 - 1
                else:
                    off = rnd.randrange(args_interval * 1_000_000)
                host = rnd.choice(hosts)
                remote = REMOTE[rnd.randrange(1, 255)]
                src, dst = (remote, host) if d == "in" else (host, remote)
                out.append((start * 1_000_000 + off, src, dst, sizes(), d))
    return out


args_interval = 300


def main():
    global args_interval
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-a", required=True)
    ap.add_argument("--out-b", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--interval", type=int, default=300)
    ap.add_argument("--from", dest="frm", type=int, default=1761955200)  # 2025-11-01T00:00Z
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--split-a", nargs=2, metavar=("L1", "L2"))
    a = ap.parse_args()
    args_interval = a.interval
    rnd = random.Random(a.seed)
    # Its own generator, so that the other files are the same with or without.
    split_rnd = random.Random(a.seed + 1000)
    split_net = ipaddress.ip_network(dict((c[0], c[1]) for c in CUSTOMERS)[SPLIT])
    iv = a.interval
    to = a.frm + a.days * 86400
    # "a" starts 6 h into the range (intervals before it are missing), "b"
    # 12 h in; both run to the end.
    cover = {"a": (a.frm + 6 * 3600, to - iv), "b": (a.frm + 12 * 3600, to - iv)}
    truth = {
        "interval": iv,
        "from": a.frm,
        "to": to,
        "labels": {c[0]: c[2] for c in CUSTOMERS},
        "appliances": {},
    }
    # Bursts: for each customer, 3 % of the covered intervals (under the 5 %
    # the p95 drops); gamma's on "a" and "b" are disjoint and together 6 %.
    starts_b = list(range(cover["b"][0], cover["b"][1] + 1, iv))
    n_burst = len(starts_b) * 3 // 100
    shuffled = starts_b[:]
    rnd.shuffle(shuffled)
    gamma_bursts = {"a": set(shuffled[:n_burst]), "b": set(shuffled[n_burst : 2 * n_burst])}
    for app, path in (("a", a.out_a), ("b", a.out_b)):
        first, last = cover[app]
        starts = list(range(first, last + 1, iv))
        frames = []
        for key, _, _ in CUSTOMERS:
            if app == "b" and key not in ON_B:
                continue
            if key == "gamma":
                bursts = gamma_bursts[app]
            else:
                bursts = set(rnd.sample(starts, len(starts) * 3 // 100))
            frames += pattern(rnd, key, starts, bursts)
        frames.sort(key=lambda f: f[0])
        samples = {}
        for usec, src, dst, wl, d in frames:
            start = (usec // 1_000_000) // iv * iv
            host = dst if d == "in" else src
            key = next(k for k, p, _ in CUSTOMERS if host in ipaddress.ip_network(p))
            s = samples.setdefault(str(start), {}).setdefault(key, [0, 0, 0, 0])
            i = 0 if d == "in" else 2
            s[i] += 1
            s[i + 1] += wl
        # Start marker (at "first" exactly) and end marker (after "last").
        frames.insert(0, (first * 1_000_000, OUTSIDE[0], OUTSIDE[1], 100, "-"))
        frames.append(((last + iv) * 1_000_000 + 1, OUTSIDE[0], OUTSIDE[1], 100, "-"))
        links = a.split_a if app == "a" and a.split_a else []
        outs = [open(p, "wb") for p in [path] + links]
        for f in outs:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAP, LINKTYPE_ETHERNET))
        for usec, src, dst, wl, d in frames:
            data = frame(src, dst, wl, rnd)
            sec, us = divmod(usec, 1_000_000)
            rec = struct.pack("<IIII", sec, us, len(data), wl) + data
            outs[0].write(rec)
            if links:
                host = dst if d == "in" else src
                if d == "-":
                    to = outs[1:]
                elif host in split_net and split_rnd.random() < 0.5:
                    to = outs[2:]
                else:
                    to = outs[1:2]
                for f in to:
                    f.write(rec)
        for f in outs:
            f.close()
        truth["appliances"][app] = {"first": first, "last": last, "samples": samples}
    with open(a.truth, "w") as f:
        json.dump(truth, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
