#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

- parse_frame: Ethernet frames from tests/data/tcpdump (pcap and
  pcapng, link type 1 only), deduplicated, at most 12 per file and 1 MiB
  in all; plus raw-IP captures wrapped in a dummy Ethernet header.
- config_toml: config/xdpacct.toml and small variants.
- prefix_tables: one small file per loader (first byte picks the loader).
- flow_roundtrip: a few byte strings in the target's record layout.
- netflow_v5, netflow_v9, ipfix, sflow_v5 (one decoder each): the
  datagrams of that protocol in the `collector` seeds, in
  fuzz/exporters/*.dgrams (the first datagrams of real exporters:
  softflowd -v 5/9/10 and pmacctd nfprobe/sfprobe reading a
  tests/data/gen_flows.py capture; records of u16 length + datagram) and
  in the tcpdump captures (UDP to a flow port), each alone and, per
  source, as one `MULT` input in order (templates before their data).
  Their committed corpora also hold what `cargo +nightly fuzz run` found,
  minimised to edge coverage (`cargo +nightly fuzz cmin --fuzz-dir fuzz
  <target> fuzz/corpus/<target> -- -use_counters=0`, which may drop seeds
  written here that add no edge).

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


FLOW_PORTS = (2055, 4739, 6343, 9995, 9996)
VERSIONS = (("netflow_v5", b"\x00\x05"), ("netflow_v9", b"\x00\x09"),
            ("ipfix", b"\x00\x0a"), ("sflow_v5", b"\x00\x00\x00\x05"))


def flow_target(d):
    for t, v in VERSIONS:
        if d.startswith(v):
            return t
    return None


def udp_payloads(frame):
    """The UDP payload of an Ethernet/IPv4|IPv6 frame to a flow port."""
    at, et = 12, frame[12:14]
    while et in (b"\x81\x00", b"\x88\xa8") and len(frame) >= at + 6:
        at += 4
        et = frame[at:at + 2]
    ip = frame[at + 2:]
    if et == b"\x08\x00" and len(ip) >= 20 and ip[9] == 17:
        udp = ip[(ip[0] & 15) * 4:]
    elif et == b"\x86\xdd" and len(ip) >= 48 and ip[6] == 17:
        udp = ip[40:]
    else:
        return None
    if len(udp) < 8 or struct.unpack(">H", udp[2:4])[0] not in FLOW_PORTS:
        return None
    return udp[8:]


def mult(datagrams):
    return b"MULT" + b"".join(b"\x01" + struct.pack(">H", len(d)) + d for d in datagrams)


def split_mult(blob):
    if not blob.startswith(b"MULT"):
        return [blob]
    out, rest = [], blob[4:]
    while len(rest) >= 3:
        n = struct.unpack(">H", rest[1:3])[0]
        out.append(rest[3:3 + n])
        rest = rest[3 + n:]
    return out


def decoders():
    sources = []  # (name, [datagrams in order])
    col = os.path.join(CORPUS, "collector")
    for fn in sorted(os.listdir(col)):
        sources.append(("seed-" + fn, split_mult(open(os.path.join(col, fn), "rb").read())))
    exp = os.path.join(HERE, "exporters")
    for fn in sorted(os.listdir(exp)):
        b, ds = open(os.path.join(exp, fn), "rb").read(), []
        while len(b) >= 2:
            n = struct.unpack(">H", b[:2])[0]
            ds.append(b[2:2 + n])
            b = b[2 + n:]
        sources.append((fn.rsplit(".", 1)[0], ds))
    for fn in sorted(os.listdir(PCAPS)):
        try:
            data = open(os.path.join(PCAPS, fn), "rb").read()
        except OSError:
            continue
        ds = [p for lt, fr in pcap_frames(data) if lt == 1 for p in [udp_payloads(fr)] if p]
        if ds:
            sources.append(("tcpdump-" + fn.rsplit(".", 1)[0], ds[:PER_FILE]))
    seen = set()
    for name, ds in sources:
        by_target = {}
        for d in ds:
            t = flow_target(d)
            if t:
                by_target.setdefault(t, []).append(d)
        for t, tds in by_target.items():
            for d in tds:
                h = hashlib.sha1(d).hexdigest()[:16]
                if (t, h) not in seen:
                    seen.add((t, h))
                    write(t, h, d)
            if len(tds) > 1:
                write(t, name + "-all", mult(tds))


if __name__ == "__main__":
    frames()
    configs()
    prefixes()
    flows()
    decoders()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        print("%-16s %5d files %8d bytes" % (t, len(files), size), file=sys.stderr)
