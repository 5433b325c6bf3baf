#!/usr/bin/env python3
"""A delay line with a tap in the middle, for the live handshake RTT test
(run inside a network namespace; standard library only; Linux, root).

Every frame received on one of two interfaces is sent out of the other one
after two fixed one-way delays: the client side's (client <-> tap) and the
server side's (tap <-> server). Between the two, at the moment the frame
passes the tap, a copy of it is written to a third interface: the tap's
mirror port (SPAN), which xdpacct captures at the other end of its veth.

    client --[client delay]-- tap --[server delay]-- server
                               |
                             span

So a handshake seen at the tap has SYN -> SYN/ACK = 2 x server delay and
SYN/ACK -> ACK = 2 x client delay (plus the hosts' and this script's own
latency; the reference is a capture of the span interface, not these
numbers). `tc netem` would do the delays, but is not in every kernel.

Prints "ready" once its sockets are bound; runs until SIGTERM/SIGINT or
--max-seconds; prints its frame counts on stderr when it stops.
"""

import argparse
import heapq
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def raw_socket(ifname, proto):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((ifname, proto))
    s.setblocking(False)
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client-if", required=True)
    p.add_argument("--server-if", required=True)
    p.add_argument("--span-if", required=True)
    p.add_argument("--client-delay-ms", type=float, required=True,
                   help="one way, client <-> tap")
    p.add_argument("--server-delay-ms", type=float, required=True,
                   help="one way, tap <-> server")
    p.add_argument("--max-seconds", type=float, default=120.0)
    a = p.parse_args()

    client = raw_socket(a.client_if, ETH_P_ALL)
    server = raw_socket(a.server_if, ETH_P_ALL)
    # Protocol 0: sends only, receives nothing.
    span = raw_socket(a.span_if, 0)
    dc, ds = a.client_delay_ms / 1e3, a.server_delay_ms / 1e3

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))

    # (due, order, socket to send on, frame); `order` keeps equal times FIFO.
    due = []
    order = 0
    counts = {"from_client": 0, "from_server": 0, "tapped": 0}
    print("ready", flush=True)
    end = time.monotonic() + a.max_seconds
    while not stopping and time.monotonic() < end:
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, out, frame = heapq.heappop(due)
            try:
                out.send(frame)
            except OSError as e:
                print(f"delay_line: send: {e}", file=sys.stderr)
            if out is span:
                counts["tapped"] += 1
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else 0.2
        try:
            ready, _, _ = select.select([client, server], [], [], timeout)
        except InterruptedError:
            continue
        for s in ready:
            while True:
                try:
                    frame, addr = s.recvfrom(65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    # The interface went away (the test is tearing down).
                    print(f"delay_line: receive: {e}", file=sys.stderr)
                    stopping.append(1)
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # this script's own send on that interface
                t = time.monotonic()
                if s is client:
                    first, then, out = dc, ds, server
                    counts["from_client"] += 1
                else:
                    first, then, out = ds, dc, client
                    counts["from_server"] += 1
                heapq.heappush(due, (t + first, order, span, frame))
                heapq.heappush(due, (t + first + then, order + 1, out, frame))
                order += 2
    print(f"delay_line: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
