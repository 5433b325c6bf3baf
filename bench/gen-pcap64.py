#!/usr/bin/env python3
"""Writes a pcap of N 64-byte Ethernet/IPv4/TCP frames for the replay
throughput measurement (README "Performance"): local hosts 100.64.0.0 +
0..9999 (the engine bench's 10,000 hosts), remotes in 203.0.0.0/16, half
inbound, half outbound. Python stdlib only.

    bench/gen-pcap64.py 2000000 /tmp/64.pcap
"""
import struct
import sys


def frames(n_distinct=8192, hosts=10_000):
    x = 0x9E3779B97F4A7C15
    out = []
    mask = (1 << 64) - 1
    for i in range(n_distinct):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        local = (100 << 24 | 64 << 16) + (x & 0xFFFFFFFF) % hosts
        remote = (203 << 24) | ((x >> 32) & 0xFFFF)
        src, dst = (remote, local) if i % 2 == 0 else (local, remote)
        eth = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00])
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, 46, 0, 0, 64, 6, 0, src, dst)
        tcp = struct.pack("!HHIIBBHHH", ((x >> 16) & 0xFFFF) | 1024, 443, 0, 0, 5 << 4, 0x10, 0, 0, 0)
        f = eth + ip + tcp
        out.append(f + bytes(64 - len(f)))
    return out


def main():
    n = int(sys.argv[1])
    path = sys.argv[2]
    fs = frames()
    with open(path, "wb") as w:
        w.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        chunk = []
        for i in range(n):
            chunk.append(struct.pack("<IIII", 1_700_000_000 + i // 1_000_000, i % 1_000_000, 64, 64))
            chunk.append(fs[i % len(fs)])
            if len(chunk) >= 200_000:
                w.write(b"".join(chunk))
                chunk = []
        w.write(b"".join(chunk))


if __name__ == "__main__":
    main()
