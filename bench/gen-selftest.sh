#!/usr/bin/env bash
# Generator self-test: rate and exactness of xdpacct-trafficgen on a veth pair.
#
#   cargo build --release -p xdpacct-trafficgen && sudo bench/gen-selftest.sh [COUNT]
#   GEN_BACKEND=afpacket bench/gen-selftest.sh 1000000
#
# For each receiver (XDP_DROP: the generator alone; XDP_PASS: frames go up
# the stack through XDP; none, AF_PACKET backend only: frames go up the
# stack with no XDP program) and each thread count, sends COUNT frames
# (default 10,000,000) unpaced and checks the receiving veth's rx_packets
# (`ip -s link`) grew by exactly COUNT. GEN_BACKEND (auto, xdp-live,
# afpacket) is passed to `send --backend`. Both ends live in their own
# namespaces (xgtS/xgtR), removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GEN=${GEN:-$ROOT/target/release/xdpacct-trafficgen}
COUNT=${1:-10000000}
GEN_BACKEND=${GEN_BACKEND:-auto}
NS_S=xgtS NS_R=xgtR
PASS_PID=
cleanup() {
    [[ -n $PASS_PID ]] && kill "$PASS_PID" 2>/dev/null && wait "$PASS_PID" 2>/dev/null
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_R" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS_S"
ip netns add "$NS_R"
ip link add xgt-s numtxqueues 2 numrxqueues 2 netns "$NS_S" type veth \
    peer name xgt-r numtxqueues 2 numrxqueues 2 netns "$NS_R"
for ns in "$NS_S" "$NS_R"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip netns exec "$NS_S" ip link set xgt-s up
ip netns exec "$NS_R" ip link set xgt-r up
rx() { ip netns exec "$NS_R" cat /sys/class/net/xgt-r/statistics/rx_packets; }
if [[ $GEN_BACKEND == auto ]]; then
    # One frame: the generator says which backend the kernel lets it use.
    probe=$(ip netns exec "$NS_S" "$GEN" send -i xgt-s -c 1 --no-resend --json --timeout 10 2>/dev/null || true)
    GEN_BACKEND=$(sed -n 's/.*"backend":"\([a-z-]*\)".*/\1/p' <<<"$probe")
    [[ -n $GEN_BACKEND ]] || { echo "the generator could not send: $probe" >&2; exit 1; }
fi

echo "backend $GEN_BACKEND, kernel $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
fail=0
receivers="drop pass"
[[ $GEN_BACKEND == afpacket ]] && receivers="drop pass none"
for recv in $receivers; do
    flag=()
    [[ $recv == drop ]] && flag=(--drop)
    if [[ $recv != none ]]; then
        ip netns exec "$NS_R" "$GEN" pass -i xgt-r --seconds 600 "${flag[@]}" 2>/dev/null &
        PASS_PID=$!
        sleep 0.5
    fi
    for t in 1 2; do
        for prof in 64 imix; do
            args=(send -i xgt-s -c "$COUNT" -t "$t" --timeout 120 --backend "$GEN_BACKEND")
            [[ $prof == imix ]] && args+=(--imix)
            before=$(rx)
            out=$(timeout 150 ip netns exec "$NS_S" "$GEN" "${args[@]}" 2>&1) || true
            got=$(($(rx) - before))
            verdict=$([[ $got == "$COUNT" ]] && echo exact || { fail=1; echo MISMATCH; })
            name=XDP_${recv^^}
            [[ $recv == none ]] && name="none (stack)"
            echo "receiver=$name threads=$t profile=$prof: $out | peer rx_packets +$got: $verdict"
        done
    done
    if [[ -n $PASS_PID ]]; then
        kill "$PASS_PID"
        wait "$PASS_PID" 2>/dev/null || true
        PASS_PID=
    fi
done
exit $fail
