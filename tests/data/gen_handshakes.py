#!/usr/bin/env python3
"""TCP handshakes with chosen round-trip times, and their exact truth.

Writes what a tap on a customer-facing link sees of many TCP connections:
SYN at t, SYN/ACK at t + server_leg, ACK at t + server_leg + client_leg,
then a few data segments and pure ACKs both ways. The generator picks
both legs of every handshake (in whole microseconds, so that sums are
exact), and writes a JSON truth file from its own choices, never by
reading back what it wrote.

Python 3 standard library only; deterministic for a seed.

Hosts: local customers 198.51.100.0/25 (customer=a), 198.51.100.128/25
(customer=b) and 2001:db8:1::/48 (customer=c); local hosts outside any
range: 203.0.113.0/24 (local network, no range). Remote hosts: 11.N.x.y
(N = 1..6) in AS 64500+N (written to --as-file as "prefix asn" lines), and
45.0.x.y with no AS. Each handshake is one of: a local client to a remote
server, a remote client to a local server, local to local (both legs
internal), remote to remote (no local host). Some have a retransmitted SYN
or SYN/ACK (ambiguous, not measured); some never complete (SYN only, or
SYN + SYN/ACK): those are pending or timed out at the end.

Truth (--truth FILE):
  {"ranges": {"customer=a": {"internal": [count, sum_us],
                             "external": [count, sum_us]}, ...},
   "ases": {"64501": [count, sum_us], ..., "none": [count, sum_us]},
   "measured", "ambiguous", "incomplete", "handshakes": total,
   "connections": [{"src","dst","sport","dport","proto","bytes","packets"}]
                  (bytes: wire length without FCS, per direction)}
A leg is "internal" when its host (the client for SYN/ACK->ACK, the server
for SYN->SYN/ACK) is local. Ranges count a handshake under each local host
in a range; the AS table counts the external leg of handshakes with exactly
one local host, by the remote host's AS ("none" without AS).

--split DIR writes DIR/out.pcap (frames from a local host or, when neither
or both are local, from the client) and DIR/in.pcap (the rest): the two
fibres of an optical tap, to be replayed as two interfaces.

Usage:
  python3 tests/data/gen_handshakes.py out.pcap --handshakes 2000 --seed 1 \\
      --truth t.json --as-file as.txt [--split DIR]
"""

import argparse
import ipaddress
import json
import random
import struct

LINKTYPE_ETHERNET = 1
MAC_A = bytes.fromhex("02005e000001")
MAC_B = bytes.fromhex("02005e000002")

# Chosen legs, microseconds: every bucket of 100 us .. 4 s, and beyond.
LEGS_US = [50, 100, 150, 400, 900, 1500, 3000, 7000, 15000, 30000, 80000,
           150000, 350000, 800000, 1500000, 3000000, 4500000]


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=0):
    """An Ethernet frame with IPv4 or IPv6 and a TCP header (20 bytes, or
    24 with an MSS option on SYNs)."""
    opts = struct.pack("!BBH", 2, 4, 1460) if flags & 0x02 else b""
    off = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF,
                      ack & 0xFFFFFFFF, off << 4, flags, 65535, 0, 0)
    tcp += opts + bytes(payload)
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000,
                         64, 6, 0, src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        eth = MAC_A + MAC_B + struct.pack("!H", 0x0800)
    else:
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64,
                         src.packed, dst.packed)
        eth = MAC_A + MAC_B + struct.pack("!H", 0x86DD)
    frame = eth + ip + tcp
    if len(frame) < 60:
        frame += bytes(60 - len(frame))
    return frame


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535,
                                 LINKTYPE_ETHERNET))

    def write(self, t_us, frame):
        self.f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000,
                                 len(frame), len(frame)))
        self.f.write(frame)

    def close(self):
        self.f.close()


RANGES = [("customer=a", ipaddress.ip_network("198.51.100.0/25")),
          ("customer=b", ipaddress.ip_network("198.51.100.128/25")),
          ("customer=c", ipaddress.ip_network("2001:db8:1::/48"))]
LOCAL_NO_RANGE = ipaddress.ip_network("203.0.113.0/24")
AS_BASE = 64500


def range_of(addr):
    for name, net in RANGES:
        if addr in net:
            return name
    return None


def is_local(addr):
    return range_of(addr) is not None or addr in LOCAL_NO_RANGE


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--handshakes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--truth")
    ap.add_argument("--as-file")
    ap.add_argument("--split", metavar="DIR")
    ap.add_argument("--start", type=int, default=1_700_000_000)
    ap.add_argument("--span", type=float, default=4.0,
                    help="seconds over which handshakes start")
    ap.add_argument("--max-leg-us", type=int, default=None,
                    help="largest leg to choose (default: all of LEGS_US)")
    ap.add_argument("--min-leg-us", type=int, default=0,
                    help="smallest leg to choose")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    legs = [x for x in LEGS_US
            if (a.max_leg_us is None or x <= a.max_leg_us) and x >= a.min_leg_us]

    def local_host():
        r = rnd.random()
        if r < 0.4:
            return ipaddress.ip_address("198.51.100.%d" % rnd.randint(1, 126))
        if r < 0.7:
            return ipaddress.ip_address("198.51.100.%d" % rnd.randint(129, 254))
        if r < 0.9:
            return ipaddress.ip_address("2001:db8:1:%x::%x" % (rnd.randint(0, 255), rnd.randint(1, 9)))
        return ipaddress.ip_address("203.0.113.%d" % rnd.randint(1, 254))

    def remote_host(v6):
        if v6:
            n = rnd.randint(1, 6)
            return ipaddress.ip_address("2a00:%x::%x" % (n, rnd.randint(1, 999)))
        if rnd.random() < 0.15:
            return ipaddress.ip_address("45.0.%d.%d" % (rnd.randint(0, 255), rnd.randint(1, 254)))
        n = rnd.randint(1, 6)
        return ipaddress.ip_address("11.%d.%d.%d" % (n, rnd.randint(0, 255), rnd.randint(1, 254)))

    def asn_of(addr):
        if addr.version == 4 and str(addr).startswith("11."):
            return str(AS_BASE + int(str(addr).split(".")[1]))
        if addr.version == 6 and str(addr).startswith("2a00:"):
            return str(AS_BASE + int(str(addr).split(":")[1], 16))
        return "none"

    truth = {"ranges": {}, "ases": {}, "measured": 0, "ambiguous": 0,
             "incomplete": 0, "handshakes": a.handshakes, "connections": []}

    def add(table, key, leg, us):
        e = table.setdefault(key, [0, 0]) if leg is None else \
            table.setdefault(key, {"internal": [0, 0], "external": [0, 0]})[leg]
        e[0] += 1
        e[1] += us

    frames = []  # (t_us, seq, from_client_side_file, frame)
    used = set()
    t0 = a.start * 1_000_000
    for i in range(a.handshakes):
        kind = rnd.choices(["out", "in", "internal", "external"], [45, 40, 8, 7])[0]
        loc = local_host()
        v6 = loc.version == 6
        if kind == "out":
            client, server = loc, remote_host(v6)
        elif kind == "in":
            client, server = remote_host(v6), loc
        elif kind == "internal":
            client = loc
            server = local_host()
            while server.version != client.version or server == client:
                server = local_host()
        else:
            client, server = remote_host(v6), remote_host(v6)
        while True:
            cport = rnd.randint(1024, 65535)
            sport = rnd.choice([80, 443, 22, 25, 8080])
            key = (client, server, cport, sport)
            if key not in used:
                used.add(key)
                break
        cisn = rnd.getrandbits(32)
        sisn = rnd.getrandbits(32)
        server_leg = rnd.choice(legs)
        client_leg = rnd.choice(legs)
        t = t0 + int(rnd.random() * a.span * 1_000_000)
        # Split captures are replayed concurrently, so one file may be read
        # seconds ahead of the other: a retransmitted SYN/ACK (in.pcap)
        # could then be seen after the ACK (out.pcap) that follows it on
        # the wire, which no tap sees. Not generated with --split.
        fate = rnd.choices(["ok", "retx_syn", "retx_synack", "syn_only", "no_ack"],
                           [80, 6, 0 if a.split else 6, 4, 4])[0]
        # Direction of a frame: True when sent by the client.
        out = []

        def emit(t_us, by_client, frame):
            out.append((t_us, by_client, frame))

        syn = tcp_frame(client, server, cport, sport, cisn, 0, 0x02)
        synack = tcp_frame(server, client, sport, cport, sisn, cisn + 1, 0x12)
        ack = tcp_frame(client, server, cport, sport, cisn + 1, sisn + 1, 0x10)
        emit(t, True, syn)
        t_sa = t + server_leg
        if fate == "retx_syn":
            # The first SYN is "lost" beyond the tap; resent after 1 s.
            emit(t + 1_000_000, True, syn)
            t_sa = t + 1_000_000 + server_leg
        if fate != "syn_only":
            emit(t_sa, False, synack)
        t_ack = t_sa + client_leg
        if fate == "retx_synack":
            emit(t_sa + 200_000, False, synack)
            t_ack = t_sa + 200_000 + client_leg
        bytes_c = sum(len(f) for _, c, f in out if c)
        bytes_s = sum(len(f) for _, c, f in out if not c)
        pk_c = sum(1 for _, c, _ in out if c)
        pk_s = len(out) - pk_c
        if fate in ("ok", "retx_syn", "retx_synack"):
            emit(t_ack, True, ack)
            bytes_c += len(ack)
            pk_c += 1
            # Data: request, response, pure ACKs; seq numbers move on.
            cseq, sseq = cisn + 1, sisn + 1
            tt = t_ack + 50
            for _ in range(rnd.randint(0, 4)):
                n = rnd.randint(1, 1400)
                f = tcp_frame(client, server, cport, sport, cseq, sseq, 0x18, n)
                emit(tt, True, f)
                cseq += n
                bytes_c += len(f)
                pk_c += 1
                tt += rnd.randint(10, 5000)
                m = rnd.randint(0, 1400)
                f = tcp_frame(server, client, sport, cport, sseq, cseq, 0x18 if m else 0x10, m)
                emit(tt, False, f)
                sseq += m
                bytes_s += len(f)
                pk_s += 1
                tt += rnd.randint(10, 5000)
            if fate == "ok":
                truth["measured"] += 1
                cl, sl = is_local(client), is_local(server)
                for host, own, other, other_local in (
                        (client, client_leg, server_leg, sl),
                        (server, server_leg, client_leg, cl)):
                    r = range_of(host)
                    if r is None:
                        continue
                    add(truth["ranges"], r, "internal", own)
                    if not other_local:
                        add(truth["ranges"], r, "external", other)
                if cl != sl:
                    remote, leg = (server, server_leg) if cl else (client, client_leg)
                    add(truth["ases"], asn_of(remote), None, leg)
            else:
                truth["ambiguous"] += 1
        else:
            truth["incomplete"] += 1
        for by_client, src, dst, sp, dp, b, p in (
                (True, client, server, cport, sport, bytes_c, pk_c),
                (False, server, client, sport, cport, bytes_s, pk_s)):
            if p:
                truth["connections"].append({
                    "src": str(src), "dst": str(dst), "sport": sp, "dport": dp,
                    "proto": "tcp", "bytes": b, "packets": p,
                    "last_us": max(tt for tt, c, _ in out if c == by_client)})
        for t_us, by_client, f in out:
            src = client if by_client else server
            dst = server if by_client else client
            # Fibre "out": from a local host to a non-local one, or the
            # client's frames when both or neither are local.
            first = is_local(src) and not is_local(dst) if is_local(src) != is_local(dst) else by_client
            frames.append((t_us, len(frames), first, f))

    frames.sort()
    if a.split:
        import os
        os.makedirs(a.split, exist_ok=True)
        po = Pcap(os.path.join(a.split, "out.pcap"))
        pi = Pcap(os.path.join(a.split, "in.pcap"))
        for t_us, _, first, f in frames:
            (po if first else pi).write(t_us, f)
        po.close()
        pi.close()
    if a.out:
        p = Pcap(a.out)
        for t_us, _, _, f in frames:
            p.write(t_us, f)
        p.close()
    if a.as_file:
        with open(a.as_file, "w") as f:
            for n in range(1, 7):
                f.write("11.%d.0.0/16 %d\n" % (n, AS_BASE + n))
                f.write("2a00:%x::/32 %d\n" % (n, AS_BASE + n))
    if a.truth:
        truth["frames"] = len(frames)
        with open(a.truth, "w") as f:
            json.dump(truth, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
