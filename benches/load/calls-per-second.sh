#!/usr/bin/env bash
# Issue 8 measure: calls per second through the full flow — trunk INVITE, 100, 200 (answered at
# once), short welcome prompt, queue, an agent rung and answering, bridged audio, the caller's BYE —
# with SIPp callers at fixed rates, SIPp agents (one instance registering AGENTS users with MD5 and
# answering every INVITE), lines = AGENTS, 0.2 s prompts, and the relay tool sending 50 packet/s
# into every caller leg (so the calls carry audio both ways while they last). INVITE→100 and
# INVITE→200 times come from a tcpdump capture of the trunk's SIP on loopback (sip-timing.py: kernel
# timestamps in µs; SIPp's own response times have a 1 ms resolution).
#
#   benches/load/calls-per-second.sh [RATES (default "5 10 20 40")] [SECONDS (default 20)]
#   env: AGENTS (default 300), TALK_MS (caller talk time after the 200, default 2000),
#        AGENT_RATE (agent registrations per second at start, default 200), RTP_MIN/RTP_MAX
#        (the daemon's RTP range, default 30000-39999: two ports per call leg),
#        STOP_FAIL_PCT (e.g. 0.1: stop after the first rate with more than this % of calls failed:
#        not completed by SIPp or not answered by an agent; the search benches/load/run does),
#        TCPDUMP=0 (no capture, no
#        INVITE→100/200 figures: the search skips it), AUDIO=0 (no talk audio: the callers' and
#        agents' SDP name a socket that nobody reads instead of the relay probe, so the daemon
#        still plays its prompts but relays nothing; measures signalling and queueing, not the
#        relay, which relay-latency.sh measures on its own)
#
# Besides the table, prints one machine-readable line per rate for benches/load/run:
#   RESULT cps rate=… offered=… ok=… failed=… failed_pct=… answered=… answered_per_s=…
#          refused=… refused_pct=… inv100_p50_ms=… … cpu_s=… cpu_cores=… rss_peak_kb=…
# (rss_peak_kb is the daemon's VmHWM: its peak since it started, so a one-rate run gives that
# rate's peak.)
#
# Ports: SIP 15060, HTTP 19111, RTP 30000-39999, probe 41000/41002, SIPp 15081 (agents) and
# 15082 (trunk).
# The agents' wrap-up and the queue length use the daemon's defaults unless it accepts a [queue]
# section (tried, see gen-config.py): with a 30 s wrap-up each agent takes about one call per
# 30 s + talk time, so AGENTS bounds the sustainable rate.
source "$(dirname "$0")/lib.sh"
RATES=${1:-"5 10 20 40"}
SECS=${2:-20}
AGENTS=${AGENTS:-300}
TALK_MS=${TALK_MS:-2000}
AGENT_RATE=${AGENT_RATE:-200}
STOP_FAIL_PCT=${STOP_FAIL_PCT:-}
TCPDUMP=${TCPDUMP:-1}
need sipp python3 curl
[[ $TCPDUMP == 0 ]] || need tcpdump
[[ -x "$RTP_LOAD" ]] || { log "no $RTP_LOAD: cargo build --release --examples"; exit 1; }
n_rates=$(wc -w <<<"$RATES")
TOTAL=$((n_rates * (SECS + 15) + 30 + AGENTS / AGENT_RATE))
bounded $((TOTAL + 60))
W=$(workdir cps)

python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents "$AGENTS" --lines "$AGENTS" \
    --sip-port 15060 --http-port 19111 --rtp-min "${RTP_MIN:-30000}" --rtp-max "${RTP_MAX:-39999}" \
    --extra '[queue]\nwrap_up = "0s"\nmax_queue = 10000\n\n[limits]\nmax_calls = 100000\nmax_transactions = 1000000\nmax_nonces = 1000000' \
    --extra '[queue]\nwrap_up = "0s"\nmax_queue = 10000' \
    --extra '[queue]\nwrap_up = "0s"' --extra '[queue]\nmax_queue = 10000' >/dev/null
printf 'SEQUENTIAL\n41000\n' >"$W/ports.csv"
start_daemon "$W/tongdai.toml" "$W/tongdai.log" 19111

if [[ ${AUDIO:-1} == 0 ]]; then
    # A sink nobody reads: datagrams fill its buffer and are dropped, with no ICMP back.
    python3 -c "import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 41000))
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); t.bind(('127.0.0.1', 41002))
time.sleep($TOTAL)" &
else
    "$RTP_LOAD" relay --caller-port 41000 --agent-port 41002 --seconds "$TOTAL" >"$W/relay.txt" &
fi
STARTED_PIDS+=("$!")

sipp_bg "$W/agents" -sf "$LOAD/agent-register-load.xml" -oocsf "$LOAD/agent-answer-load.xml" \
    -inf "$W/users.csv" -key rtp_port 41002 127.0.0.1:15060 -i 127.0.0.1 -p 15081 \
    -r "$AGENT_RATE" -m "$AGENTS" -l "$AGENTS" -d $((TOTAL * 1000)) -timeout $((TOTAL + 30))s
for _ in $(seq 1 150); do
    [[ $(metric tongdai_registrations 19111) -ge $AGENTS ]] && break
    sleep 0.2
done
log "registered agents: $(metric tongdai_registrations 19111) of $AGENTS"

printf '%5s %6s %7s %8s %7s %7s %8s %8s %8s %8s %7s\n' rate offered answered ans_per_s refused \
    sipp_ok sipp_fail inv100p50 inv100p99 inv200p50 inv200p99
for rate in $RATES; do
    dir="$W/rate-$rate"
    offered0=$(metric tongdai_calls_offered_total 19111)
    answered0=$(metric tongdai_calls_answered_total 19111)
    refused0=$(metric tongdai_calls_refused_total 19111)
    cpu0=$(cpu_ticks "$DAEMON_PID")
    wait0=$(run_delay_ms "$DAEMON_PID")
    mkdir -p "$dir"
    DUMP_PID=
    if [[ $TCPDUMP != 0 ]]; then
        tcpdump -i lo -s 2048 -U -w "$dir/sip.pcap" 'udp and port 15082' 2>"$dir/tcpdump.log" &
        DUMP_PID=$!
        STARTED_PIDS+=("$DUMP_PID")
        sleep 1
    fi
    t0=$(date +%s.%N)
    sipp_bg "$dir" -sf "$LOAD/trunk-call-load.xml" -inf "$W/ports.csv" 127.0.0.1:15060 \
        -i 127.0.0.1 -p 15082 -r "$rate" -m $((rate * SECS)) -d "$TALK_MS" \
        -recv_timeout 10000 -timeout $((SECS + 12))s \
        -trace_stat -stf "$dir/stat.csv" -fd 5
    wait "$SIPP_PID" || true
    t1=$(date +%s.%N)
    cpu1=$(cpu_ticks "$DAEMON_PID")
    wait1=$(run_delay_ms "$DAEMON_PID")
    sleep 0.5
    if [[ -n $DUMP_PID ]]; then
        kill -TERM "$DUMP_PID" 2>/dev/null || true
        wait "$DUMP_PID" 2>/dev/null || true
    fi
    offered=$(( $(metric tongdai_calls_offered_total 19111) - offered0 ))
    answered=$(( $(metric tongdai_calls_answered_total 19111) - answered0 ))
    refused=$(( $(metric tongdai_calls_refused_total 19111) - refused0 ))
    ok=$(sipp_stat "$dir" 'SuccessfulCall(C)')
    failed=$(sipp_stat "$dir" 'FailedCall(C)')
    timing=
    [[ -z $DUMP_PID ]] || timing=$(python3 "$LOAD/sip-timing.py" "$dir/sip.pcap" 15082)
    get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $timing"; }
    # Answered calls per second of call generation: the SIPp run less the last call's talk time.
    aps=$(python3 -c "print(f'{$answered / max(0.1, $t1 - $t0 - $TALK_MS / 1000):.1f}')")
    printf '%5s %6s %7s %8s %7s %7s %8s %8s %8s %8s %7s\n' "$rate" "$offered" "$answered" "$aps" \
        "$refused" "$ok" "$failed" "$(get inv100_p50_ms)" "$(get inv100_p99_ms)" \
        "$(get inv200_p50_ms)" "$(get inv200_p99_ms)"
    log "rate $rate: $(grep -h 'dropped by kernel' "$dir/tcpdump.log" 2>/dev/null || true); $timing"
    log "rate $rate: daemon CPU $(python3 -c "print(($cpu1 - $cpu0) / $CLK_TCK)") s over" \
        "$(python3 -c "print(round($t1 - $t0, 1))") s"
    sent=$((rate * SECS))
    read -r failed_pct line < <(python3 - "$rate" "$sent" "$ok" "$failed" "$answered" "$aps" \
        "$refused" "$cpu0" "$cpu1" "$CLK_TCK" "$t0" "$t1" "$TALK_MS" \
        "$(awk '/^VmHWM:/ { print $2 }' "/proc/$DAEMON_PID/status")" <<'PY'
import sys
(rate, sent, ok, failed, answered, aps, refused, c0, c1, tck, t0, t1, talk, hwm) = sys.argv[1:]
sent, ok = int(sent), int(ok)
# A call counts as completed when SIPp finished it and an agent answered it (SIPp alone also counts
# a caller who heard the prompts and hung up after TALK_MS without reaching anyone).
fail_pct = 100 * (sent - min(ok, int(answered))) / max(1, sent)
cpu = (int(c1) - int(c0)) / int(tck)
gen = max(0.1, float(t1) - float(t0) - int(talk) / 1000)
print(f"{fail_pct:.3f} rate={rate} offered={sent} ok={ok} failed={failed} "
      f"failed_pct={fail_pct:.3f} answered={answered} answered_per_s={aps} refused={refused} "
      f"refused_pct={100 * int(refused) / max(1, sent):.3f} cpu_s={cpu:.2f} "
      f"cpu_cores={cpu / gen:.3f} rss_peak_kb={hwm}")
PY
    )
    echo "RESULT cps $line run_delay_ms=$((wait1 - wait0)) load1=$(cut -d' ' -f1 /proc/loadavg) $timing"
    if [[ -n $STOP_FAIL_PCT ]] && python3 -c "import sys; sys.exit(0 if $failed_pct > $STOP_FAIL_PCT else 1)"; then
        log "rate $rate: $failed_pct % of calls failed (> $STOP_FAIL_PCT %): search stops"
        break
    fi
    sleep 2
done
log "logs in $W"
