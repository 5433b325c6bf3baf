#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

- parse_frame: Ethernet frames from tests/data/tcpdump (pcap and
  pcapng, link type 1 only), deduplicated, at most 12 per file and 1 MiB
  in all; plus raw-IP captures wrapped in a dummy Ethernet header.
- config_toml: config/xdpacct.toml and small variants.
- prefix_tables: one small file per loader (first byte picks the loader).
- flow_roundtrip: a few byte strings in the target's record layout.

Deterministic; run from anywhere: python3 fuzz/seed.py
"""
import hashlib, os, random, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PCAPS = os.path.join(ROOT, "tests", "data", "tcpdump")
CORPUS = os.path.join(HERE, "corpus")
PER_FILE, TOTAL = 12, 1 << 20


def pcap_frames(data):
    """Yields (linktype, frame) from a pcap or pcapng file."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            off += 16
            if incl > 262144 or off + incl > len(data):
                return
            yield linktype, data[off:off + incl]
            off += incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        off, e, links = 0, "<", []
        while off + 12 <= len(data):
            btype = struct.unpack(e + "I", data[off:off + 4])[0]
            if btype == 0x0A0D0D0A:
                e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            if blen < 12 or off + blen > len(data):
                return
            body = data[off + 8:off + blen - 4]
            if btype == 1 and len(body) >= 2:
                links.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6 and len(body) >= 20:
                iface, _, _, cap, _ = struct.unpack(e + "IIIII", body[:20])
                if iface < len(links):
                    yield links[iface], body[20:20 + cap]
            off += blen


def write(target, name, blob):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def frames():
    seen, total = set(), 0
    for fn in sorted(os.listdir(PCAPS)):
        try:
            data = open(os.path.join(PCAPS, fn), "rb").read()
        except OSError:
            continue
        n = 0
        for lt, fr in pcap_frames(data):
            if lt == 1:
                blob = fr
            elif lt in (12, 101, 228, 229):  # raw IP: add an Ethernet header
                v6 = fr[:1] and fr[0] >> 4 == 6
                blob = b"\x02" * 6 + b"\x04" * 6 + (b"\x86\xdd" if v6 else b"\x08\x00") + fr
            else:
                continue
            blob = blob[:512]
            h = hashlib.sha1(blob).hexdigest()[:16]
            if h in seen:
                continue
            if total + len(blob) > TOTAL:
                return
            seen.add(h)
            total += len(blob)
            write("parse_frame", h, blob)
            n += 1
            if n >= PER_FILE:
                break


def configs():
    base = open(os.path.join(ROOT, "config", "xdpacct.toml"), "rb").read()
    write("config_toml", "example", base)
    write("config_toml", "minimal", b'[capture]\ninterfaces = ["eth0"]\n')
    write("config_toml", "ranges", b'[accounting]\nbytes = "l3"\nipv6_host_prefix = 56\n'
          b'[[accounting.ranges]]\nprefix = "10.0.0.0/22"\nlabels = { a = "b" }\n'
          b'[[accounting.ranges]]\nprefix = "2001:db8::/40"\n')
    write("config_toml", "netflow", b'[netflow]\ncollectors = ["127.0.0.1:2055"]\nversion = 9\n'
          b'idle_timeout = 1\nactive_timeout = 2\nmtu = 512\n')
    write("config_toml", "bad-key", b'[capture]\ninterfacez = ["eth0"]\n')
    write("config_toml", "bad-prefix", b'[[accounting.ranges]]\nprefix = "10.0.0.0/33"\n')


def prefixes():
    write("prefix_tables", "prefix-asn", b"\x00192.0.2.0/24 64496\n2001:db8::/32 AS64497 # c\n0.0.0.0/0 1\n")
    write("prefix_tables", "ip2asn", b"\x011.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"
          b"1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n2001:db8::\t2001:db8::ffff\t64496\tZZ\tX\n")
    write("prefix_tables", "names", b"\x02# names\n64496 EXAMPLE-NET, ZZ\n13335 CLOUDFLARENET\n")
    write("prefix_tables", "networks-file", b"\x03! pmacct\n65000,192.0.2.0/24\n198.51.100.0/24\n"
          b"192.0.2.1,65001,203.0.113.0/25\n")
    write("prefix_tables", "prefix-asn-built", b"\x80192.0.2.0/25 64496\n192.0.2.128/26 1\n::/0 2\n")
    write("prefix_tables", "networks-built", b"\x84office 192.0.2.0/31 2001:db8::/127\n")
    write("prefix_tables", "networks", b"\x04office 192.0.2.0/25 2001:db8:1::/48 # x\nlab 10.0.0.0/8\n")


def flows():
    rnd = random.Random(9)
    for i in range(6):
        n = 1 + i * 3
        write("flow_roundtrip", "records-%d" % i,
              bytes([i & 1]) + struct.pack("<H", rnd.randrange(65536))
              + bytes(rnd.randrange(256) for _ in range(73 * n)))


if __name__ == "__main__":
    frames()
    configs()
    prefixes()
    flows()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        print("%-16s %5d files %8d bytes" % (t, len(files), size), file=sys.stderr)
