#!/usr/bin/env bash
# Issue 12 leak check: the same full call flow as soak.sh, in ROUNDS bursts of CALLS calls at RATE
# calls/s on one daemon, with VmRSS read when each burst is over and every call has ended (idle).
# Memory a finished call frees is reused by the next burst, so idle RSS that climbs round after round
# is a leak per call; a first-round rise that then stays is the allocator's and caches' warm-up.
#
#   benches/load/rss-reuse.sh [ROUNDS (default 3)] [CALLS (default 2000)]
#   env: RATE (default 50), AGENTS (default 150), TALK_MS (default 2000), RECORDS=0 (no records)
#
# Ports as soak.sh: SIP 15060, HTTP 19111, RTP 30000-39999, probe 41000/41002, SIPp 15081/15082.
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}
CALLS=${2:-2000}
RATE=${RATE:-50}
AGENTS=${AGENTS:-150}
TALK_MS=${TALK_MS:-2000}
RECORDS=${RECORDS:-1}
need sipp python3 curl
[[ -x "$RTP_LOAD" ]] || { log "no $RTP_LOAD: cargo build --release --examples"; exit 1; }
ROUND_S=$((CALLS / RATE + TALK_MS / 1000 + 15))
bounded $((ROUNDS * ROUND_S + 60))
W=$(workdir "rss-reuse-records$RECORDS")

extra='[queue]\nwrap_up = "0s"\nmax_queue = 10000\n\n[registrar]\nmax_expires = "24h"\nkeepalive_interval = "0s"'
[[ "$RECORDS" == 0 ]] && extra+='\n\n[records]\npath = ""'
python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents "$AGENTS" --lines "$AGENTS" \
    --sip-port 15060 --http-port 19111 --rtp-min 30000 --rtp-max 39999 --extra "$extra" \
    >/dev/null
sed 's/Expires: 600/Expires: 86400/' "$LOAD/agent-register-load.xml" >"$W/agent-register.xml"
printf 'SEQUENTIAL\n41000\n' >"$W/ports.csv"
start_daemon "$W/tongdai.toml" "$W/tongdai.log" 19111
"$RTP_LOAD" relay --caller-port 41000 --agent-port 41002 --seconds $((ROUNDS * ROUND_S + 30)) \
    >"$W/relay.txt" 2>&1 &
STARTED_PIDS+=("$!")
sipp_bg "$W/agents" -sf "$W/agent-register.xml" -oocsf "$LOAD/agent-answer-load.xml" \
    -inf "$W/users.csv" -key rtp_port 41002 127.0.0.1:15060 -i 127.0.0.1 -p 15081 \
    -r 200 -m "$AGENTS" -l "$AGENTS" -d $(((ROUNDS * ROUND_S + 30) * 1000)) \
    -timeout $((ROUNDS * ROUND_S + 60))s
for _ in $(seq 1 150); do
    [[ $(metric tongdai_registrations 19111) -ge $AGENTS ]] && break
    sleep 0.2
done
sleep 2
printf '%5s %8s %10s %13s\n' round answered idle_rss_kb rss_per_call_b
prev=$(rss_kb "$DAEMON_PID")
printf '%5s %8s %10s %13s\n' 0 0 "$prev" -
for round in $(seq 1 "$ROUNDS"); do
    sipp_bg "$W/trunk-$round" -sf "$LOAD/trunk-call-load.xml" -inf "$W/ports.csv" \
        127.0.0.1:15060 -i 127.0.0.1 -p 15082 -r "$RATE" -m "$CALLS" -d "$TALK_MS" \
        -recv_timeout 10000 -timeout "${ROUND_S}s"
    wait "$SIPP_PID" || true
    for _ in $(seq 1 50); do
        [[ $(metric tongdai_calls_active 19111) -eq 0 ]] && break
        sleep 0.2
    done
    sleep 3
    rss=$(rss_kb "$DAEMON_PID")
    printf '%5s %8s %10s %13s\n' "$round" "$(metric tongdai_calls_answered_total 19111)" "$rss" \
        $(((rss - prev) * 1024 / CALLS))
    prev=$rss
done
log "logs in $W"
