#!/usr/bin/env bash
# Issue 7 measure (a): the most concurrent callers on hold audio with send lateness p99 < 5 ms and
# no loss. Each step queues N SIPp trunk callers (no agent logged in, [queue] max_queue raised)
# whose SDP names a socket of their own in the RTP probe (rtp_load hold: one UDP socket per
# caller), then measures over a window in which all N hear the welcome prompt and hold music:
#   - at the receiver: packets, sequence loss, sockets that got nothing, arrival lateness against
#     each stream's RTP-timestamp schedule (p50/p99/p99.9/max; includes the probe's own scheduling
#     on the same busy cores, so it is an upper bound of the daemon's send lateness);
#   - at the daemon: tongdai_media_send_lateness_seconds (histogram, when exported) over the window;
#   - kernel UDP receive-buffer drops (RcvbufErrors), daemon CPU.
# A step passes with p99 < 5 ms (daemon histogram when present, else the receiver's), no loss and no
# silent socket; the run stops after two failing steps in a row (one may be a burst of contention).
# Machine-readable lines for benches/load/run: `RESULT hold callers=… pass=… …` per step and
# `RESULT hold_max callers=…` at the end.
# `waiting` is the daemon's tongdai_queue_waiting_calls gauge at the window start, for information.
#
#   benches/load/hold-capacity.sh [COUNTS (default "25 50 100 200 400 800")] [WINDOW (s, 10)]
#
# Ports: SIP 15060, HTTP 19111, RTP 30000-39999, probe 42000+2i, SIPp 15082.
source "$(dirname "$0")/lib.sh"
COUNTS=${1:-"25 50 100 200 400 800"}
SECS=${2:-10}
SETUP_RATE=${SETUP_RATE:-200}
need sipp python3 curl
[[ -x "$RTP_LOAD" ]] || { log "no $RTP_LOAD: cargo build --release --examples"; exit 1; }
budget=60
for n in $COUNTS; do budget=$((budget + n / SETUP_RATE + SECS + 15)); done
bounded "$budget"
W=$(workdir hold)

python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents 1 --sip-port 15060 \
    --http-port 19111 --rtp-min 30000 --rtp-max 39999 \
    --extra '[queue]\nmax_queue = 10000\n\n[limits]\nmax_calls = 100000\nmax_transactions = 1000000\nmax_nonces = 1000000' \
    --extra '[queue]\nmax_queue = 10000' >/dev/null
start_daemon "$W/tongdai.toml" "$W/tongdai.log" 19111

printf '%6s %7s %7s %6s %6s %8s %8s %8s %8s %9s %9s %7s %5s\n' callers waiting packets lost \
    silent rx_p50 rx_p99 rx_p999 rx_max dmn_p99 dmn_le5ms cpu_pct pass
best=0
fails=0
for n in $COUNTS; do
    dir="$W/n-$n"
    mkdir -p "$dir"
    ramp=$(( (n + SETUP_RATE - 1) / SETUP_RATE + 2 ))
    { echo SEQUENTIAL; for i in $(seq 0 $((n - 1))); do echo $((42000 + 2 * i)); done; } \
        >"$dir/ports.csv"
    "$RTP_LOAD" hold --base-port 42000 --count "$n" --seconds $((ramp + SECS)) --settle "$ramp" \
        >"$dir/probe.txt" 2>&1 &
    PROBE_PID=$!
    STARTED_PIDS+=("$PROBE_PID")
    sleep 0.5
    sipp_bg "$dir/sipp" -sf "$LOAD/trunk-call-load.xml" -inf "$dir/ports.csv" 127.0.0.1:15060 \
        -i 127.0.0.1 -p 15082 -r "$SETUP_RATE" -m "$n" -l "$n" -d $(( (ramp + SECS + 2) * 1000 )) \
        -recv_timeout 10000 -timeout $((ramp + SECS + 20))s
    sleep "$ramp"
    curl -fsS http://127.0.0.1:19111/metrics >"$dir/metrics-before.txt"
    waiting=$(metric tongdai_queue_waiting_calls 19111)
    err0=$(udp_rcvbuf_errors)
    cpu0=$(cpu_ticks "$DAEMON_PID")
    t0=$(date +%s.%N)
    wait "$PROBE_PID" || true
    t1=$(date +%s.%N)
    cpu1=$(cpu_ticks "$DAEMON_PID")
    err1=$(udp_rcvbuf_errors)
    curl -fsS http://127.0.0.1:19111/metrics >"$dir/metrics-after.txt"
    wait "$SIPP_PID" || true
    probe=$(cat "$dir/probe.txt")
    hist=$(python3 "$LOAD/hist-quantile.py" "$dir/metrics-before.txt" "$dir/metrics-after.txt" \
        tongdai_media_send_lateness_seconds)
    get() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<" $1"; }
    cpu_pct=$(python3 -c "print(round(100 * ($cpu1 - $cpu0) / $CLK_TCK / ($t1 - $t0)))")
    rx_p99=$(get "$probe" late_p99_ms)
    dmn_p99=$(get "$hist" p99_ms)
    p99=${dmn_p99:-$rx_p99}
    lost=$(get "$probe" lost)
    silent=$(get "$probe" silent_sockets)
    pass=$(python3 -c "print('yes' if ${p99:-99} < 5 and ${lost:-1} == 0 and ${silent:-1} == 0 \
        else 'no')")
    printf '%6s %7s %7s %6s %6s %8s %8s %8s %8s %9s %9s %7s %5s\n' "$n" "$waiting" \
        "$(get "$probe" packets)" "$lost" "$silent" "$(get "$probe" late_p50_ms)" "$rx_p99" \
        "$(get "$probe" late_p999_ms)" "$(get "$probe" late_max_ms)" "${dmn_p99:--}" \
        "$(get "$hist" share_le_5ms)" "$cpu_pct" "$pass"
    echo "RESULT hold callers=$n pass=$pass waiting=$waiting lost=${lost:-} silent=${silent:-}" \
        "dmn_p99_ms=${dmn_p99:-} cpu_pct=$cpu_pct $probe"
    log "n=$n: kernel UDP receive-buffer drops in window: $((err1 - err0)); $hist"
    if [[ $pass != yes ]]; then
        fails=$((fails + 1))
        ((fails < 2)) || break
    else
        fails=0
        best=$n
    fi
    sleep 2
done
echo "most concurrent callers on hold passing (p99 < 5 ms, no loss): $best"
echo "RESULT hold_max callers=$best"
log "logs in $W"
