#!/usr/bin/env bash
# Issue 7 measure (c): resident memory per queued caller. The daemon runs with no agent logged in
# and [queue] max_queue raised; after a warm-up batch of callers has come and gone, VmRSS is read
# with 0 callers, then with N callers queued on hold audio (each with its RTP socket and paced stream,
# audio going to the RTP probe), then again after they hang up. Reported: (RSS_N − RSS_0) / N.
#
# One machine-readable line per count for benches/load/run: `RESULT rss callers=… kb_per_caller=… …`.
#
#   benches/load/rss-per-caller.sh [COUNTS (default "200 1000")]
#
# Ports: SIP 15060, HTTP 19111, RTP 30000-39999, probe 42000+2i, SIPp 15082.
source "$(dirname "$0")/lib.sh"
COUNTS=${1:-"200 1000"}
SETUP_RATE=${SETUP_RATE:-200}
HOLD_SECS=5
need sipp python3 curl
[[ -x "$RTP_LOAD" ]] || { log "no $RTP_LOAD: cargo build --release --examples"; exit 1; }
budget=60
for n in 50 $COUNTS; do budget=$((budget + n / SETUP_RATE + HOLD_SECS + 15)); done
bounded "$budget"
W=$(workdir rss)

python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents 1 --sip-port 15060 \
    --http-port 19111 --rtp-min 30000 --rtp-max 39999 \
    --extra '[queue]\nmax_queue = 10000\n\n[limits]\nmax_calls = 100000\nmax_transactions = 1000000\nmax_nonces = 1000000' \
    --extra '[queue]\nmax_queue = 10000' >/dev/null
start_daemon "$W/tongdai.toml" "$W/tongdai.log" 19111

# queue N: N callers on hold for HOLD_SECS after the last is up; sets WAITING and RSS_N (read
# half-way through the hold) and returns once the callers have hung up and the probe has stopped.
queue() {
    local n=$1 dir="$W/n-$1" ramp
    mkdir -p "$dir"
    ramp=$(( (n + SETUP_RATE - 1) / SETUP_RATE + 2 ))
    { echo SEQUENTIAL; for i in $(seq 0 $((n - 1))); do echo $((42000 + 2 * i)); done; } \
        >"$dir/ports.csv"
    "$RTP_LOAD" hold --base-port 42000 --count "$n" --seconds $((ramp + HOLD_SECS)) \
        --settle "$ramp" >"$dir/probe.txt" 2>&1 &
    local probe=$!
    STARTED_PIDS+=("$probe")
    sleep 0.5
    sipp_bg "$dir/sipp" -sf "$LOAD/trunk-call-load.xml" -inf "$dir/ports.csv" 127.0.0.1:15060 \
        -i 127.0.0.1 -p 15082 -r "$SETUP_RATE" -m "$n" -l "$n" \
        -d $(( (ramp + HOLD_SECS) * 1000 )) -recv_timeout 10000 -timeout $((ramp + HOLD_SECS + 20))s
    sleep $((ramp + HOLD_SECS / 2))
    WAITING=$(metric tongdai_queue_waiting_calls 19111)
    RSS_N=$(rss_kb "$DAEMON_PID")
    wait "$probe" || true
    wait "$SIPP_PID" || true
    sleep 2
}

queue 50 # warm-up: allocator arenas, prompt caches, SQLite pages
printf '%6s %7s %9s %9s %9s %12s\n' callers waiting rss0_kb rssN_kb rss_after kb_per_caller
for n in $COUNTS; do
    rss0=$(rss_kb "$DAEMON_PID")
    queue "$n"
    after=$(rss_kb "$DAEMON_PID")
    printf '%6s %7s %9s %9s %9s %12s\n' "$n" "$WAITING" "$rss0" "$RSS_N" "$after" \
        "$(python3 -c "print(f'{($RSS_N - $rss0) / $n:.1f}')")"
    echo "RESULT rss callers=$n waiting=$WAITING rss0_kb=$rss0 rssN_kb=$RSS_N rss_after_kb=$after" \
        "kb_per_caller=$(python3 -c "print(f'{($RSS_N - $rss0) / $n:.1f}')")"
done
log "logs in $W"
