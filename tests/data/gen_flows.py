#!/usr/bin/env python3
"""gen_traffic.py's traffic as a flow exporter sees it, for the collector tests.

The same generator, seed for seed, with one change: every frame is plain
Ethernet (no 802.1Q, QinQ, MPLS or PPPoE), because flow exporters that read
a capture (softflowd, pmacctd) do not all enter those encapsulations. IPv4
and IPv6, TCP/UDP/ICMP, options, extension headers and fragments stay. The
truth file has gen_traffic.py's format and is the generator's own
bookkeeping. Small frames are not padded to the 60-byte Ethernet minimum
(softflowd counts a packet's IP bytes from the captured length, padding
included).

Usage: python3 tests/data/gen_flows.py out.pcap --packets N --seed S --truth out.json
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_traffic  # noqa: E402

gen_traffic.L2_KINDS = [("plain", 1)]
# No Ethernet padding: softflowd takes a packet's IP bytes from the captured
# length, so the padding of a 60-byte minimum frame would count as IP bytes.
gen_traffic.MIN_WIRE = 0

if __name__ == "__main__":
    gen_traffic.main()
