#!/usr/bin/env bash
# Issue 7 measure (b): one-way latency the daemon adds when relaying bridged audio, p50/p99/p99.9,
# and daemon CPU per 1,000 bridged calls. Each step bridges N calls: N SIPp trunk callers and N SIPp
# agents (one SIPp instance registering N users with MD5 and answering every INVITE; lines = N,
# [queue] wrap_up 0 when the daemon has it), all PCMU so the payload passes unchanged. The RTP probe
# (rtp_load relay) stands at both ends: it streams 50 packet/s of timestamped PCMU into every caller
# leg and every agent leg and times each packet out of the other leg (kernel loopback and the
# probe's own scheduling included, on the same busy cores) and counts frames lost on the way (its
# own frame counter in the payload). CPU: daemon utime+stime over the
# window in which all N calls are bridged, as cores busy, scaled to 1,000 calls.
#
# One machine-readable line per step for benches/load/run:
#   RESULT relay calls=… bridged=… cpu_pct=… cores_per_1k=… rcvbuf_drops=… <the probe's key=value line>
#
#   benches/load/relay-latency.sh [COUNTS (default "100 300 600 1000")] [WINDOW (s, default 10)]
#
# Ports: SIP 15060, HTTP 19111, RTP 30000-39999, probe 41000 (callers) / 41002 (agents), SIPp
# 15081 (agents) / 15082 (trunk).
source "$(dirname "$0")/lib.sh"
COUNTS=${1:-"100 300 600 1000"}
SECS=${2:-10}
SETUP_RATE=${SETUP_RATE:-200}
need sipp python3 curl
[[ -x "$RTP_LOAD" ]] || { log "no $RTP_LOAD: cargo build --release --examples"; exit 1; }
max=0
budget=60
for n in $COUNTS; do
    ((n > max)) && max=$n
    budget=$((budget + n / SETUP_RATE + SECS + 15))
done
bounded "$budget"
W=$(workdir relay)

python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents "$max" --lines "$max" \
    --sip-port 15060 --http-port 19111 --rtp-min 30000 --rtp-max 39999 \
    --extra '[queue]\nwrap_up = "0s"\nmax_queue = 10000\n\n[limits]\nmax_calls = 100000\nmax_transactions = 1000000\nmax_nonces = 1000000' \
    --extra '[queue]\nwrap_up = "0s"\nmax_queue = 10000' >/dev/null
printf 'SEQUENTIAL\n41000\n' >"$W/ports.csv"
start_daemon "$W/tongdai.toml" "$W/tongdai.log" 19111

sipp_bg "$W/agents" -sf "$LOAD/agent-register-load.xml" -oocsf "$LOAD/agent-answer-load.xml" \
    -inf "$W/users.csv" -key rtp_port 41002 127.0.0.1:15060 -i 127.0.0.1 -p 15081 \
    -r 200 -m "$max" -l "$max" -d $((budget * 1000)) -timeout $((budget + 10))s
AGENTS_PID=$SIPP_PID
for _ in $(seq 1 150); do
    [[ $(metric tongdai_registrations 19111) -ge $max ]] && break
    sleep 0.2
done
log "registered agents: $(metric tongdai_registrations 19111) of $max"

printf '%6s %7s %8s %6s %9s %9s %9s %9s %8s %9s\n' calls bridged samples lost lat_p50 lat_p99 \
    lat_p999 lat_max cpu_pct cores_per_1k
for n in $COUNTS; do
    dir="$W/n-$n"
    mkdir -p "$dir"
    ramp=$(( (n + SETUP_RATE - 1) / SETUP_RATE + 3 ))
    "$RTP_LOAD" relay --caller-port 41000 --agent-port 41002 --seconds $((ramp + SECS)) \
        --warmup "$ramp" >"$dir/probe.txt" 2>&1 &
    PROBE_PID=$!
    STARTED_PIDS+=("$PROBE_PID")
    sleep 0.5
    sipp_bg "$dir/sipp" -sf "$LOAD/trunk-call-load.xml" -inf "$W/ports.csv" 127.0.0.1:15060 \
        -i 127.0.0.1 -p 15082 -r "$SETUP_RATE" -m "$n" -l "$n" -d $(( (ramp + SECS + 2) * 1000 )) \
        -recv_timeout 10000 -timeout $((ramp + SECS + 20))s
    sleep "$ramp"
    busy=$(metric tongdai_lines_busy 19111)
    err0=$(udp_rcvbuf_errors)
    probe_cpu0=$(cpu_ticks "$PROBE_PID")
    cpu0=$(cpu_ticks "$DAEMON_PID")
    t0=$(date +%s.%N)
    # The probe's own CPU, read just before it ends (it reports and exits at the window's end).
    sleep $((SECS - 1))
    probe_cpu1=$(cpu_ticks "$PROBE_PID")
    wait "$PROBE_PID" || true
    t1=$(date +%s.%N)
    cpu1=$(cpu_ticks "$DAEMON_PID")
    err1=$(udp_rcvbuf_errors)
    wait "$SIPP_PID" || true
    probe=$(cat "$dir/probe.txt")
    get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $probe"; }
    bridged=$(get bridged_calls)
    read -r cpu_pct per_k < <(python3 -c "
cores = ($cpu1 - $cpu0) / $CLK_TCK / ($t1 - $t0)
b = max(1, ${bridged:-0})
print(round(100 * cores), f'{cores * 1000 / b:.2f}')")
    printf '%6s %7s %8s %6s %9s %9s %9s %9s %8s %9s\n' "$n" "$bridged" "$(get samples)" \
        "$(get lost)" \
        "$(get lat_p50_ms)" "$(get lat_p99_ms)" "$(get lat_p999_ms)" "$(get lat_max_ms)" \
        "$cpu_pct" "$per_k"
    echo "RESULT relay calls=$n cpu_pct=$cpu_pct cores_per_1k=$per_k" \
        "rcvbuf_drops=$((err1 - err0)) $probe"
    log "n=$n: lines busy at window start $busy;" \
        "kernel UDP receive-buffer drops $((err1 - err0));" \
        "probe CPU $(python3 -c "print(round(($probe_cpu1 - $probe_cpu0) / $CLK_TCK, 2))") s" \
        "in $((SECS - 1)) s; $probe"
    sleep 3
done
log "logs in $W"
