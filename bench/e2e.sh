#!/usr/bin/env bash
# End-to-end accuracy bench: offer an exact number of frames at a fixed rate
# over a veth pair and compare what each contender counted.
#
#   cargo build --release --workspace   # xdpacct and xdpacct-trafficgen
#   sudo bench/e2e.sh                # full ladder, ~10 min on 2 busy cores
#   RATES="0.5 max" PROFILES=64 CONTENDERS=xdpacct-afxdp bench/e2e.sh   # quick
#
# Layout: netns xgbS holds xgb-s (sender), netns xgbR holds xgb-r (receiver);
# nothing is in the root namespace, so no frame can leave the pair. The
# generator (xdpacct-trafficgen) runs on core 0 (GEN_CORE=0,1: one thread on
# each core, feeding rx queues 0 and 1); the receiving veth's NAPI runs in
# the generator's softirq on that core too. xdpacct's workers default to
# "every core but the first" = core 1, one per queue.
# GEN_BACKEND picks how the generator sends: xdp-live (BPF_PROG_RUN live
# frames), afpacket (sendmmsg on an AF_PACKET socket bypassing the qdisc,
# for kernels that refuse live frames) or auto (the default: live frames if
# the kernel allows them; a one-frame probe at start-up resolves it).
#
# Contenders (all on xgb-r inside xgbR):
#   xdpacct-afxdp     xdpacct run, AF_XDP (its own native XDP program)
#   xdpacct-afpacket  xdpacct run with XDPACCT_CAPTURE__MODE=afpacket
#   xdpacct-afxdp-ipfix  AF_XDP with IPFIX export to nfcapd (nfdump) in xgbR;
#                     at the end of each profile xdpacct is stopped (its flow
#                     caches flush) and nfdump's packet/byte sums are compared
#                     with everything offered over the profile (not default)
#   pmacctd           Debian pmacct, memory plugin, read with pmacct -s
#   fastnetmon        Debian fastnetmon 1.2.4, AF_PACKET, Prometheus counter
# FEATURES=all runs every xdpacct contender with every feature on: the
# synthetic full BGP table as AS table, 100 named networks and IPFIX export
# to nfcapd in xgbR (`examples/synth_table.rs` writes table and config;
# build it with `cargo build --release --examples`).
# With live frames the stack-reading ones get `xdpacct-trafficgen pass`
# (native XDP_PASS), without which veth live frames never arrive; AF_PACKET
# frames reach the stack as they are.
#
# Offered = the receiving veth's rx_packets/rx_bytes delta (frames that
# reached it; equals the generator's delivered count). Output:
# $OUT/e2e.csv (one row per step), $OUT/env.txt, and the raw log
# $OUT/e2e.log (kept locally: .gitignore leaves bench logs out of git).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GEN=${GEN:-$ROOT/target/release/xdpacct-trafficgen}
XA=${XA:-$ROOT/target/release/xdpacct}
OUT=${OUT:-$ROOT/bench/results}
RATES=${RATES:-"0.5 1 1.5 2 3 max"}          # Mpps; max = unpaced
PROFILES=${PROFILES:-"64 imix"}
CONTENDERS=${CONTENDERS:-"xdpacct-afxdp xdpacct-afpacket pmacctd fastnetmon"}
STEP_SECONDS=${STEP_SECONDS:-1}              # frames per step = rate x this, at most MAX_COUNT_*
MAX_COUNT_64=${MAX_COUNT_64:-2000000}
MAX_COUNT_IMIX=${MAX_COUNT_IMIX:-1000000}
CATCHUP_MS=${CATCHUP_MS:-2}                  # generator burst allowance after preemption
SETTLE=${SETTLE:-2}                          # seconds for counters to catch up
GEN_CORE=${GEN_CORE:-0}                      # comma list; one sender thread per entry
GEN_THREADS=$(awk -F, '{print NF}' <<<"$GEN_CORE")
GEN_BACKEND=${GEN_BACKEND:-auto}             # auto, xdp-live or afpacket
PORT=9390
FEATURES=${FEATURES:-}                       # "all": AS table, networks, flow export
SYNTH=${SYNTH:-$ROOT/target/release/examples/synth_table}

NS_S=xgbS NS_R=xgbR IF_S=xgb-s IF_R=xgb-r
WORK=$(mktemp -d /tmp/xdpacct-e2e.XXXXXX)
CSV=$OUT/e2e.csv
LOG=$OUT/e2e.log
PIDS=()

[[ $(id -u) == 0 ]] || { echo "e2e: needs root (netns, XDP)" >&2; exit 2; }
[[ -x $GEN && -x $XA ]] || { echo "e2e: build first: cargo build --release --workspace" >&2; exit 2; }

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_R" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }

# Stops one process we started (and its children), by pid.
stop() {
    local pid=$1 kids c
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    kill "$pid" 2>/dev/null || true
    for c in $kids; do kill "$c" 2>/dev/null || true; done
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    for c in $kids; do kill -9 "$c" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

setup_net() {
    ip netns add "$NS_S"
    ip netns add "$NS_R"
    ip link add "$IF_S" numtxqueues 2 numrxqueues 2 netns "$NS_S" type veth \
        peer name "$IF_R" numtxqueues 2 numrxqueues 2 netns "$NS_R"
    local ns
    for ns in "$NS_S" "$NS_R"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        ip netns exec "$ns" ip link set lo up
    done
    ip netns exec "$NS_S" ip link set "$IF_S" up
    ip netns exec "$NS_R" ip link set "$IF_R" up
}

rx_stat() { ip netns exec "$NS_R" cat "/sys/class/net/$IF_R/statistics/$1"; }

# CPU ticks (utime+stime) of a process and its children, live or reaped.
cpu_ticks() {
    local pid=$1 t=0 c
    for c in $pid $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        [[ -r /proc/$c/stat ]] || continue
        t=$((t + $(sed 's/^.*) //' "/proc/$c/stat" | awk '{print $12 + $13 + $14 + $15}')))
    done
    echo "$t"
}

# Peak RSS (VmHWM, kB) summed over a process and its children.
hwm_kb() {
    local pid=$1 t=0 c v
    for c in $pid $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        v=$(awk '/^VmHWM/ {print $2}' "/proc/$c/status" 2>/dev/null || true)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

metrics() { ip netns exec "$NS_R" curl -sf --max-time 5 "http://127.0.0.1:$1/metrics"; }

# Prints "frames bytes" as the contender counts them now.
counted() {
    case $1 in
    xdpacct-*)
        metrics $PORT | awk '
            /^xdpacct_interface_packets_total/ {f += $NF}
            /^xdpacct_interface_bytes_total/ {b += $NF}
            END {printf "%.0f %.0f\n", f, b}'
        ;;
    pmacctd)
        ip netns exec "$NS_R" pmacct -p "$WORK/pmacct.pipe" -s -O csv |
            awk -F, 'NR > 1 && $1 != "" {f += $(NF-1); b += $NF} END {printf "%.0f %.0f\n", f, b}'
        ;;
    fastnetmon)
        metrics 9391 | awk '/^fastnetmon_total_simple_packets_processed/ {f = $NF} END {printf "%.0f -1\n", f}'
        ;;
    esac
}

# xdpacct per-queue "q:seen/accounted/dropped" list and whether every queue balances.
queues() {
    metrics $PORT | awk '
        function q(s) { if (match(s, /queue="[0-9]+"/)) return substr(s, RSTART + 7, RLENGTH - 8); return "?" }
        /^xdpacct_queue_frames_seen_total/ {seen[q($0)] += $NF; k[q($0)] = 1}
        /^xdpacct_queue_frames_accounted_total/ {acc[q($0)] += $NF; k[q($0)] = 1}
        /^xdpacct_queue_dropped_total/ {drop[q($0)] += $NF; k[q($0)] = 1}
        END {
            ok = "yes"; out = ""
            for (i in k) {
                out = out sprintf("q%s:%.0f/%.0f/%.0f ", i, seen[i], acc[i], drop[i])
                if (seen[i] != acc[i] + drop[i]) ok = "NO"
            }
            printf "%s|%s\n", out, ok
        }'
}

PASS_PID=
start_pass() {
    [[ $GEN_BACKEND == xdp-live ]] || return 0
    ip netns exec "$NS_R" "$GEN" pass -i "$IF_R" --seconds 900 2>>"$LOG" &
    PASS_PID=$!
    PIDS+=("$PASS_PID")
    sleep 0.5
}

C_PID=
start_contender() {
    local c=$1
    case $c in
    xdpacct-afxdp | xdpacct-afpacket | xdpacct-afxdp-ipfix)
        local mode=afxdp
        local env=()
        [[ $c == xdpacct-afpacket ]] && { mode=afpacket; start_pass; }
        if [[ $c == xdpacct-afxdp-ipfix ]]; then
            start_nfcapd || return 1
            env=(XDPACCT_NETFLOW__COLLECTORS='["127.0.0.1:9995"]')
        fi
        local cfg=()
        if [[ $FEATURES == all ]]; then
            cfg=(--config "$WORK/features.toml")
            [[ -n $NF_PID ]] || start_nfcapd || return 1
        fi
        env XDPACCT_CAPTURE__MODE=$mode "${env[@]}" \
            ip netns exec "$NS_R" "$XA" run "${cfg[@]}" -i "$IF_R" \
            --listen "127.0.0.1:$PORT" -r 10.2.0.0/16 --log-level warn >>"$LOG" 2>&1 &
        C_PID=$!
        # A full AS table takes a few seconds to load.
        for _ in $(seq 150); do metrics $PORT >/dev/null 2>&1 && break; sleep 0.2; done
        metrics $PORT >/dev/null || { log "xdpacct ($mode) did not come up"; return 1; }
        ;;
    pmacctd)
        start_pass
        cat >"$WORK/pmacctd.conf" <<EOF
daemonize: false
pcap_interface: $IF_R
plugins: memory
aggregate: proto
imt_path: $WORK/pmacct.pipe
! Defaults (plugin_buffer_size 344 B, pipe 4 MB) lost ~87 % at 0.2 Mpps here.
plugin_buffer_size: 65536
plugin_pipe_size: 67108864
pcap_buffer_size: 67108864
EOF
        ip netns exec "$NS_R" pmacctd -f "$WORK/pmacctd.conf" >>"$LOG" 2>&1 &
        C_PID=$!
        for _ in $(seq 50); do
            ip netns exec "$NS_R" pmacct -p "$WORK/pmacct.pipe" -s >/dev/null 2>&1 && break
            sleep 0.2
        done
        ;;
    fastnetmon)
        start_pass
        echo "10.2.0.0/16" >"$WORK/networks"
        sed -e 's/^mirror_afpacket = off/mirror_afpacket = on/' \
            -e "s/^interfaces = .*/interfaces = $IF_R/" \
            -e "s#^networks_list_path = .*#networks_list_path = $WORK/networks#" \
            -e 's/^enable_api = on/enable_api = off/' \
            -e 's/^enable_ban = on/enable_ban = off/' \
            -e 's/^enable_ban_ipv6 = on/enable_ban_ipv6 = off/' \
            -e "s#^cli_stats_file_path = .*#cli_stats_file_path = $WORK/fastnetmon.dat#" \
            -e "s#^cli_stats_ipv6_file_path = .*#cli_stats_ipv6_file_path = $WORK/fastnetmon_ipv6.dat#" \
            -e "s#^pid_path = .*#pid_path = $WORK/fastnetmon.pid#" \
            -e 's/^prometheus_port = .*/prometheus_port = 9391/' \
            /etc/fastnetmon.conf >"$WORK/fastnetmon.conf"
        ip netns exec "$NS_R" fastnetmon --configuration_file "$WORK/fastnetmon.conf" \
            --log_file "$WORK/fastnetmon.log" --disable_pid_logic >>"$LOG" 2>&1 &
        C_PID=$!
        for _ in $(seq 100); do metrics 9391 >/dev/null 2>&1 && break; sleep 0.2; done
        ;;
    esac
    PIDS+=("$C_PID")
    sleep 1
}

NF_PID=
start_nfcapd() {
    command -v nfcapd >/dev/null || { log "nfcapd not installed (apt-get install nfdump)"; return 1; }
    ip netns exec "$NS_R" ip link set lo up
    # A flush of 65k flows is ~2,600 datagrams at once: give nfcapd room.
    (($(cat /proc/sys/net/core/rmem_max) >= 16777216)) || echo 16777216 >/proc/sys/net/core/rmem_max
    rm -rf "$WORK/nf" && mkdir -p "$WORK/nf"
    ip netns exec "$NS_R" nfcapd -w "$WORK/nf" -p 9995 -b 127.0.0.1 -t 3600 -B 16000000 >>"$LOG" 2>&1 &
    NF_PID=$!
    PIDS+=("$NF_PID")
    sleep 1
}

# After xdpacct stopped (SIGTERM flushes its caches): nfdump's sums against
# everything offered since the contender started.
check_flows() {
    local page=$1 pkts byts
    sleep 1
    stop "$NF_PID"
    NF_PID=
    read -r pkts byts < <(nfdump -R "$WORK/nf" -q -N -o "fmt:%pkt %byt" 2>>"$LOG" |
        awk '{p += $1; b += $2} END {printf "%.0f %.0f\n", p, b}')
    local exported dropped
    exported=$(awk '/^xdpacct_flow_records_exported_total/ {s += $NF} END {printf "%.0f", s}' <<<"$page")
    dropped=$(awk '/^xdpacct_flow_records_dropped_total/ {s += $NF} END {printf "%.0f", s}' <<<"$page")
    # What xdpacct counted (capture loss, if any, is in its queue drops).
    local cf cb
    read -r cf cb < <(awk '/^xdpacct_interface_packets_total/ {f += $NF}
        /^xdpacct_interface_bytes_total/ {b += $NF} END {printf "%.0f %.0f\n", f, b}' <<<"$page")
    local v_off=MISMATCH v_cnt=MISMATCH
    [[ $pkts == "$PROFILE_FRAMES" && $byts == "$PROFILE_BYTES" ]] && v_off=exact
    [[ $pkts == "$cf" && $byts == "$cb" ]] && v_cnt=exact
    log "flows: nfdump sums $pkts packets / $byts bytes; xdpacct counted $cf / $cb: $v_cnt; offered $PROFILE_FRAMES / $PROFILE_BYTES: $v_off (records exported before the final flush $exported, dropped $dropped)"
    echo "$C_NAME,$PROFILE,flows-at-nfcapd,,,,$PROFILE_FRAMES,$pkts,$PROFILE_BYTES,$PROFILE_BYTES,$byts,,,,," >>"$CSV"
}

stop_contender() {
    local page=""
    [[ -n $NF_PID ]] && page=$(metrics $PORT 2>/dev/null || true)
    [[ -n $C_PID ]] && stop "$C_PID"
    [[ -n $NF_PID ]] && check_flows "$page"
    [[ -n $PASS_PID ]] && stop "$PASS_PID"
    C_PID= PASS_PID=
}

run_step() {
    local c=$1 prof=$2 rate=$3 count pps args
    if [[ $rate == max ]]; then
        count=$([[ $prof == imix ]] && echo "$MAX_COUNT_IMIX" || echo "$MAX_COUNT_64")
        pps=0
    else
        pps=$(awk -v r="$rate" 'BEGIN {printf "%d", r * 1e6}')
        count=$((pps * STEP_SECONDS))
        local cap=$([[ $prof == imix ]] && echo "$MAX_COUNT_IMIX" || echo "$MAX_COUNT_64")
        ((count > cap)) && count=$cap
    fi
    args=(send -i "$IF_S" -c "$count" --pps "$pps" --cores "$GEN_CORE" -t "$GEN_THREADS" --catchup-ms "$CATCHUP_MS" --json --timeout 90 --backend "$GEN_BACKEND")
    [[ $prof == imix ]] && args+=(--imix) || args+=(--size 60)

    local f0 b0 f1 b1 rxp0 rxb0 rxp1 rxb1 t0 t1 gen
    read -r f0 b0 < <(counted "$c")
    rxp0=$(rx_stat rx_packets) rxb0=$(rx_stat rx_bytes) t0=$(cpu_ticks "$C_PID")
    gen=$(timeout 120 ip netns exec "$NS_S" "$GEN" "${args[@]}" 2>>"$LOG" || true)
    echo "    gen: $gen" >>"$LOG"
    sleep "$SETTLE"
    read -r f1 b1 < <(counted "$c")
    rxp1=$(rx_stat rx_packets) rxb1=$(rx_stat rx_bytes) t1=$(cpu_ticks "$C_PID")

    local offered=$((rxp1 - rxp0)) obytes=$((rxb1 - rxb0)) cf=$((f1 - f0)) cb=-1 expect_b
    # veth counts an skb that its XDP path takes (AF_PACKET generator, XDP
    # program on xgb-r) after the Ethernet header was pulled: 14 bytes short.
    if [[ $GEN_BACKEND == afpacket ]] && ip netns exec "$NS_R" ip link show "$IF_R" | grep -q 'prog/xdp'; then
        obytes=$((obytes + 14 * offered))
    fi
    PROFILE_FRAMES=$((PROFILE_FRAMES + offered)) PROFILE_BYTES=$((PROFILE_BYTES + obytes))
    [[ $b1 -ge 0 ]] && cb=$((b1 - b0))
    # pmacct counts IP total length (l3); xdpacct wire length without FCS (l2).
    expect_b=$obytes
    [[ $c == pmacctd ]] && expect_b=$((obytes - 14 * offered))
    local mpps exact q ok
    mpps=$(sed -n 's/.*"mpps":\([0-9.]*\).*/\1/p' <<<"$gen")
    exact=$(sed -n 's/.*"exact":\([a-z]*\).*/\1/p' <<<"$gen")
    q="" ok=""
    if [[ $c == xdpacct-* ]]; then
        IFS='|' read -r q ok < <(queues)
        metrics $PORT | grep '^xdpacct_queue_dropped_total' | grep -v ' 0$' | sed 's/^/    /' >>"$LOG" || true
    fi
    local cpu_s hwm
    cpu_s=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')
    hwm=$(hwm_kb "$C_PID")
    echo "$c,$prof,$rate,${mpps:-0},$count,${exact:-false},$offered,$cf,$obytes,$expect_b,$cb,$cpu_s,$hwm,$(cut -d' ' -f1 /proc/loadavg),${q% },${ok}" >>"$CSV"
    log "$c $prof rate=$rate achieved=${mpps:-?}Mpps offered=$offered counted=$cf bytes=$cb/$expect_b cpu=${cpu_s}s hwm=${hwm}kB ${q:+queues: $q balanced=$ok}"
}

mkdir -p "$OUT"
: >"$LOG"
{
    echo "date: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -r)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "loadavg at start: $(cat /proc/loadavg)"
    echo "pmacctd: $(pmacctd -V 2>&1 | head -1)"
    echo "fastnetmon: $(dpkg-query -W -f='${Version}' fastnetmon 2>/dev/null || echo not installed)"
    echo "xdpacct: $(git -C "$ROOT" rev-parse --short HEAD)"
    echo "rates: $RATES; profiles: $PROFILES; step: ${STEP_SECONDS}s (max $MAX_COUNT_64 / $MAX_COUNT_IMIX frames); settle: ${SETTLE}s; generator core $GEN_CORE, catch-up ${CATCHUP_MS} ms"
} >"$OUT/env.txt"
echo "contender,profile,target_mpps,achieved_mpps,gen_count,gen_exact,offered_frames,counted_frames,offered_bytes_l2,expected_bytes,counted_bytes,cpu_s,peak_rss_kb,load1,queues_seen_acc_drop,queues_balanced" >"$CSV"

if [[ $FEATURES == all ]]; then
    [[ -x $SYNTH ]] || { echo "e2e: FEATURES=all needs $SYNTH: cargo build --release --examples" >&2; exit 2; }
    "$SYNTH" "$WORK" 127.0.0.1:9995
    echo "features: AS table $(wc -l <"$WORK/routes.txt") lines, 100 networks, IPFIX to nfcapd" >>"$OUT/env.txt"
fi
setup_net
log "netns $NS_S/$NS_R, veth $IF_S <-> $IF_R up"
if [[ $GEN_BACKEND == auto ]]; then
    # One frame into the bare veth: the generator says which backend it took.
    probe=$(ip netns exec "$NS_S" "$GEN" send -i "$IF_S" -c 1 --no-resend --json --timeout 10 2>>"$LOG" || true)
    GEN_BACKEND=$(sed -n 's/.*"backend":"\([a-z-]*\)".*/\1/p' <<<"$probe")
    [[ -n $GEN_BACKEND ]] || { log "the generator could not send: $probe"; exit 1; }
fi
echo "generator backend: $GEN_BACKEND" >>"$OUT/env.txt"
log "generator backend: $GEN_BACKEND"
for prof in $PROFILES; do
    for c in $CONTENDERS; do
        if [[ $c == fastnetmon ]] && ! command -v fastnetmon >/dev/null; then
            log "fastnetmon not installed: skipped"
            continue
        fi
        log "== $c, $prof"
        PROFILE_FRAMES=0 PROFILE_BYTES=0 C_NAME=$c PROFILE=$prof
        if ! start_contender "$c"; then stop_contender; continue; fi
        for rate in $RATES; do run_step "$c" "$prof" "$rate"; done
        stop_contender
    done
done
echo "loadavg at end: $(cat /proc/loadavg)" >>"$OUT/env.txt"
log "done: $CSV"
