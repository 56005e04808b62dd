#!/usr/bin/env bash
# Issue 6 measure: REGISTER-with-digest throughput and CPU-seconds per registration, tongdai and
# Kamailio 5.6, the same SIPp MD5 scenario (register-md5.xml: REGISTER, 401, REGISTER + MD5
# credentials, 200) at the same fixed rates, one after the other in one run. CPU is utime+stime
# from /proc/<pid>/stat (all threads; for Kamailio all its processes) over each step.
#
#   benches/load/register-vs-kamailio.sh [RATES (default "100 500 1000 2000")] [SECONDS (20)]
#
# Prints one row per (server, rate): offered rate, registrations completed and failed, achieved
# registrations/s, CPU seconds and CPU microseconds per registration, and the same as one
# machine-readable line for benches/load/run:
#   RESULT register server=… rate=… ok=… failed=… failed_pct=… reg_per_s=… cpu_s=… cpu_us_per_reg=…
# Ports: tongdai SIP 15060,
# HTTP 19111; Kamailio 15070; SIPp 15080/15081. Bounded by a watchdog; stops all it started.
source "$(dirname "$0")/lib.sh"
RATES=${1:-"100 500 1000 2000"}
SECS=${2:-20}
USERS=${USERS:-500}
need sipp kamailio python3 curl
n_rates=$(wc -w <<<"$RATES")
bounded $((n_rates * 2 * (SECS + 25) + 60))
W=$(workdir register)

python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents "$USERS" --md5-only \
    --sip-port 15060 --http-port 19111 \
    --extra '[limits]\nmax_transactions = 1000000\nmax_nonces = 1000000' >/dev/null
start_daemon "$W/tongdai.toml" "$W/tongdai.log" 19111

kamailio -f "$LOAD/kamailio-register.cfg" -l udp:127.0.0.1:15070 -DD -E -m 256 -M 32 \
    >"$W/kamailio.log" 2>&1 &
KAM_PID=$!
STARTED_PIDS+=("$KAM_PID")
sleep 2
kill -0 "$KAM_PID" 2>/dev/null || { log "kamailio exited"; tail "$W/kamailio.log" >&2; exit 1; }
# -DD keeps the main process in the foreground; its workers are its children.
kam_pids() { echo "$KAM_PID" $(pgrep -P "$KAM_PID" || true); }

printf '%-8s %6s %8s %7s %9s %8s %11s\n' server rate ok failed reg_per_s cpu_s cpu_us_per_reg
run_step() { # SERVER PORT RATE PIDS...
    local server=$1 port=$2 rate=$3
    shift 3
    local dir="$W/$server-$rate" before after t0 t1 ok failed
    before=$(cpu_ticks "$@")
    t0=$(date +%s.%N)
    sipp_bg "$dir" -sf "$LOAD/register-md5.xml" -inf "$W/users.csv" "127.0.0.1:$port" \
        -i 127.0.0.1 -p 15080 -r "$rate" -m $((rate * SECS)) -l $((rate * 5 + 100)) \
        -recv_timeout 5000 -timeout $((SECS + 20))s -trace_stat -stf "$dir/stat.csv" -fd 5
    wait "$SIPP_PID" || true
    t1=$(date +%s.%N)
    after=$(cpu_ticks "$@")
    ok=$(sipp_stat "$dir" 'SuccessfulCall(C)')
    failed=$(sipp_stat "$dir" 'FailedCall(C)')
    python3 - "$server" "$rate" "$ok" "$failed" "$t0" "$t1" "$before" "$after" "$CLK_TCK" "$SECS" <<'PY'
import sys
server, rate, ok, failed, t0, t1, b, a, tck, planned = sys.argv[1:]
ok, failed = int(ok), int(failed)
secs = float(t1) - float(t0)
cpu = (int(a) - int(b)) / int(tck)
per = cpu / ok * 1e6 if ok else float("nan")
print(f"{server:<8} {rate:>6} {ok:>8} {failed:>7} {ok / secs:>9.1f} {cpu:>8.2f} {per:>11.1f}")
sent = int(rate) * int(planned)  # SIPp's -m: registrations it should have completed
print(f"RESULT register server={server} rate={rate} ok={ok} failed={failed} "
      f"failed_pct={100 * max(0, sent - ok) / max(1, sent):.3f} reg_per_s={ok / secs:.1f} "
      f"cpu_s={cpu:.2f} cpu_us_per_reg={per:.1f}")
PY
    sleep 1
}
for rate in $RATES; do
    run_step tongdai 15060 "$rate" "$DAEMON_PID"
    run_step kamailio 15070 "$rate" $(kam_pids)
done
log "logs and SIPp stats in $W"
