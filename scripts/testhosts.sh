#!/usr/bin/env bash
# Veth test hosts for live-capture tests and manual runs.
#
#   scripts/testhosts.sh up   [name]   # namespace NAME, veth NAME-r (root side) <-> NAME-p (in NAME)
#   scripts/testhosts.sh down [name]
#
# The root-side end (NAME-r, 192.0.2.1/24) is what xdpacct captures on; send
# traffic from inside the namespace out of NAME-p (192.0.2.2/24), e.g.
#   ip netns exec NAME tcpreplay -i NAME-p --topspeed file.pcap
# Both ends have 2 rx and 2 tx queues and IPv6 disabled, so only the frames
# you send flow (no DAD or router solicitations). Traffic never leaves the pair.
# Needs root. Name defaults to xdpt0 (at most 13 characters).
set -euo pipefail

cmd=${1:-}
name=${2:-xdpt0}
root_if="${name}-r"
peer_if="${name}-p"

if [[ ${#name} -gt 13 ]]; then
    echo "testhosts: name '$name' too long (max 13 characters)" >&2
    exit 2
fi

case "$cmd" in
up)
    ip netns add "$name"
    ip link add "$root_if" numtxqueues 2 numrxqueues 2 type veth \
        peer name "$peer_if" numtxqueues 2 numrxqueues 2 netns "$name"
    sysctl -qw "net.ipv6.conf.${root_if}.disable_ipv6=1"
    ip netns exec "$name" sysctl -qw "net.ipv6.conf.${peer_if}.disable_ipv6=1"
    ip addr add 192.0.2.1/24 dev "$root_if"
    ip netns exec "$name" ip addr add 192.0.2.2/24 dev "$peer_if"
    ip link set "$root_if" up
    ip netns exec "$name" ip link set "$peer_if" up
    ip netns exec "$name" ip link set lo up
    echo "testhosts: $root_if (root) <-> $peer_if (netns $name) up"
    ;;
down)
    ip link del "$root_if" 2>/dev/null || true
    ip netns del "$name" 2>/dev/null || true
    echo "testhosts: $name removed"
    ;;
*)
    echo "usage: $0 up|down [name]" >&2
    exit 2
    ;;
esac
