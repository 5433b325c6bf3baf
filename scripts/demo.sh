#!/usr/bin/env bash
# The main job on an embedded default: builds xdpacct and accounts the shared
# synthetic ISP capture with the example config, printing the metrics page.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release
pcap=../shared/testdata/synthetic/sample100k.pcap
[ -f "$pcap" ] || { echo "demo: $pcap not found" >&2; exit 1; }
./target/release/xdpacct replay --config config/xdpacct.toml --workers 2 "$pcap" \
  | grep -v '^xdpacct_host_.*} 0$'
