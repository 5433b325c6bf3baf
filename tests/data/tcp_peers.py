#!/usr/bin/env python3
"""Real TCP connections for the live handshake RTT test (standard library
only): a server that accepts and closes N connections, or a client that
makes N of them one after the other from a given address. Each connection
is the kernel's own handshake (SYN, SYN/ACK, ACK), then a close.

    tcp_peers.py server --bind 198.51.100.200 --port 8080 --count 20
    tcp_peers.py client --src 192.0.2.80 --dst 198.51.100.200 --port 8080 --count 20

The server prints "listening" once it listens; both exit with status 1 if
they do not finish within --max-seconds. The client prints how many
connections it made.
"""

import argparse
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--bind", help="server: address to listen on")
    p.add_argument("--src", help="client: source address")
    p.add_argument("--dst", help="client: server address")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=30.0)
    a = p.parse_args()
    end = time.monotonic() + a.max_seconds

    if a.role == "server":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((a.bind, a.port))
        ls.listen(a.count)
        print("listening", flush=True)
        for _ in range(a.count):
            ls.settimeout(max(0.1, end - time.monotonic()))
            try:
                c, _ = ls.accept()
            except socket.timeout:
                sys.exit("tcp_peers server: timed out")
            c.close()
        return

    made = 0
    for _ in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(max(0.1, end - time.monotonic()))
        s.bind((a.src, 0))
        # Returns once the SYN/ACK is in and the ACK is sent.
        s.connect((a.dst, a.port))
        s.close()
        made += 1
    print(made, flush=True)


if __name__ == "__main__":
    main()
