#!/usr/bin/env bash
# The main job on an embedded default: a live demo. Builds xdpacct, creates a
# network namespace and veth pair (scripts/testhosts.sh), runs `xdpacct run`
# in AF_XDP mode on the root-side end, replays generated ISP-like traffic into
# the peer from inside the namespace, and prints what /metrics counted next
# to the generator's truth. Cleans up on exit. Needs root.
# Without root (or with DEMO=replay) it accounts a freshly generated capture
# offline. The traffic comes from tests/data/gen_traffic.py (Python 3 only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release
bin=./target/release/xdpacct
gen=tests/data/gen_traffic.py
work=$(mktemp -d)

if [[ $(id -u) -ne 0 || ${DEMO:-live} == replay ]]; then
  trap 'rm -rf "$work"' EXIT
  python3 "$gen" "$work/demo.pcap" --packets 100000 --seed 7 \
    --truth "$work/truth.json"
  echo "demo: offline replay of a generated 100,000-frame capture" >&2
  "$bin" replay --config config/xdpacct.toml --workers 2 "$work/demo.pcap"
  exit
fi

name=xdpdemo$$
name=${name:0:13}
port=${PORT:-9112}
pid=
cleanup() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  scripts/testhosts.sh down "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

scripts/testhosts.sh up "$name" >&2
# Whole frames (the default snap length), so tcpreplay sends them at wire length.
python3 "$gen" "$work/demo.pcap" --packets 50000 --seed 9 --truth "$work/truth.json"
"$bin" run -i "$name-r" --listen "127.0.0.1:$port" --config config/xdpacct.toml --log-level info &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "$name" tcpreplay -q -i "$name-p" --topspeed "$work/demo.pcap" >&2
sleep 1
curl -s "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
grep -E '^xdpacct_(interface|queue|protocol)_' "$work/metrics.txt"
python3 - "$work/metrics.txt" "$work/truth.json" <<'PY'
import json, sys, ipaddress
page, truth = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
got = {}
for line in page.splitlines():
    if line.startswith("xdpacct_host_bytes_total{"):
        labels, value = line.rsplit(" ", 1)
        ip = labels.split('ip="')[1].split('"')[0]; d = labels.split('direction="')[1].split('"')[0]
        got[(ip, d)] = got.get((ip, d), 0) + int(float(value))
ok = bad = 0
for host, t in truth["hosts"].items():
    a = ipaddress.ip_address(host)
    ip = str(a) if a.version == 4 else f"{ipaddress.ip_network(f'{a}/64', strict=False).network_address}/64"
    for d in ("in", "out"):
        if got.get((ip, d), 0) == t[f"{d}_l2_bytes"]: ok += 1
        else: bad += 1
print(f"demo: {truth['totals']['packets']} frames offered; per-host bytes equal to the truth for {ok} of {ok + bad} host/direction pairs")
PY
