#!/usr/bin/env bash
# Issue 12 soak: the full call flow for MINUTES — SIPp trunk callers at RATE calls/s (INVITE, 200,
# ACK, TALK_MS of talk, BYE), SIPp agents (one instance registering AGENTS users with MD5 digest and
# answering every INVITE), short prompts, call records and bindings in SQLite, and the RTP probe
# carrying audio both ways through every bridged call — while every 10 s it samples the daemon's
# VmRSS, open file descriptors, threads, SQLite size (records + bindings, WAL included), the
# Prometheus series count (non-comment lines of /metrics), calls and dialogs in progress, and the
# call counters. Tokio's task count is not exported by the daemon (no tokio_unstable), so the thread
# count stands in for it. Writes soak.csv and summary.md (first / last / max after the warm-up, and
# the least-squares slope per hour) into its work folder and prints the summary.
#
#   benches/load/soak.sh [MINUTES (default 30)]
#   env: RATE (calls/s, default 10), AGENTS (default 40), TALK_MS (default 2000),
#        WARMUP_S (left out of the summary, default 60), RECORDS=0 (no call records: tells the
#        records database's page cache apart from the rest of the memory), SKIP_BUILD=1 (use
#        TONGDAI_BIN as is)
#
# Ports (env, to run beside another load script): SIP_PORT 15060, HTTP_PORT 19111, RTP_MIN/RTP_MAX
# 30000-39999, PROBE_PORT 41000 (callers; agents PROBE_PORT+2), SIPP_PORT 15081 (agents; the trunk
# SIPP_PORT+1).
source "$(dirname "$0")/lib.sh"
MINUTES=${1:-30}
RATE=${RATE:-10}
AGENTS=${AGENTS:-40}
TALK_MS=${TALK_MS:-2000}
WARMUP_S=${WARMUP_S:-60}
RECORDS=${RECORDS:-1}
SECS=$((MINUTES * 60))
SIP_PORT=${SIP_PORT:-15060}
HTTP_PORT=${HTTP_PORT:-19111}
RTP_MIN=${RTP_MIN:-30000}
RTP_MAX=${RTP_MAX:-39999}
PROBE_PORT=${PROBE_PORT:-41000}
SIPP_PORT=${SIPP_PORT:-15081}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    (cd "$REPO" && cargo build --release --bin tongdai --examples) >&2
fi
need sipp python3 curl
[[ -x "$RTP_LOAD" ]] || { log "no $RTP_LOAD: cargo build --release --examples"; exit 1; }
bounded $((SECS + 120))
W=$(workdir "soak-records$RECORDS")

# Agents stay registered for the whole run (SIPp does not refresh a registration): a day-long
# Expires, and the registrar's cap raised to match. No OPTIONS keep-alives: SIPp's answer scenario
# takes them for unexpected calls. Records and bindings are kept in SQLite next to the config
# (the defaults).
extra='[queue]\nwrap_up = "0s"\nmax_queue = 10000\n\n[registrar]\nmax_expires = "24h"\nkeepalive_interval = "0s"'
[[ "$RECORDS" == 0 ]] && extra+='\n\n[records]\npath = ""'
python3 "$LOAD/gen-config.py" --dir "$W" --bin "$BIN" --agents "$AGENTS" --lines "$AGENTS" \
    --sip-port "$SIP_PORT" --http-port "$HTTP_PORT" --rtp-min "$RTP_MIN" --rtp-max "$RTP_MAX" \
    --extra "$extra" \
    >/dev/null
grep -q 'max_expires = "24h"' "$W/tongdai.toml" || { log "soak config refused"; exit 1; }
sed 's/Expires: 600/Expires: 86400/' "$LOAD/agent-register-load.xml" >"$W/agent-register-soak.xml"
printf 'SEQUENTIAL\n%s\n' "$PROBE_PORT" >"$W/ports.csv"
start_daemon "$W/tongdai.toml" "$W/tongdai.log" "$HTTP_PORT"

"$RTP_LOAD" relay --caller-port "$PROBE_PORT" --agent-port $((PROBE_PORT + 2)) --seconds $((SECS + 30)) \
    >"$W/relay.txt" 2>&1 &
STARTED_PIDS+=("$!")

sipp_bg "$W/agents" -sf "$W/agent-register-soak.xml" -oocsf "$LOAD/agent-answer-load.xml" \
    -inf "$W/users.csv" -key rtp_port $((PROBE_PORT + 2)) "127.0.0.1:$SIP_PORT" -i 127.0.0.1 \
    -p "$SIPP_PORT" \
    -r 200 -m "$AGENTS" -l "$AGENTS" -d $(((SECS + 30) * 1000)) -timeout $((SECS + 60))s
for _ in $(seq 1 150); do
    [[ $(metric tongdai_registrations "$HTTP_PORT") -ge $AGENTS ]] && break
    sleep 0.2
done
log "registered agents: $(metric tongdai_registrations "$HTTP_PORT") of $AGENTS"

sipp_bg "$W/trunk" -sf "$LOAD/trunk-call-load.xml" -inf "$W/ports.csv" "127.0.0.1:$SIP_PORT" \
    -i 127.0.0.1 -p $((SIPP_PORT + 1)) -r "$RATE" -m $((RATE * SECS)) -d "$TALK_MS" \
    -recv_timeout 10000 -timeout $((SECS + 30))s -trace_stat -stf "$W/trunk/stat.csv" -fd 10
TRUNK_PID=$SIPP_PID

db_bytes() {
    local total=0 f
    for f in "$W"/records.db "$W"/records.db-wal "$W"/tongdai.db "$W"/tongdai.db-wal; do
        [[ -f "$f" ]] && total=$((total + $(stat -c %s "$f")))
    done
    echo "$total"
}

CSV="$W/soak.csv"
echo "elapsed_s,rss_kb,fds,threads,sqlite_bytes,series,calls_active,dialogs,registrations,offered,answered,abandoned,refused,sipp_ok,sipp_failed" >"$CSV"
t0=$(date +%s)
next=$t0
while :; do
    now=$(date +%s)
    elapsed=$((now - t0))
    kill -0 "$DAEMON_PID" 2>/dev/null || { log "daemon died"; tail -20 "$W/tongdai.log" >&2; exit 1; }
    scrape=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null || true)
    m() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { print s + 0 }' <<<"$scrape"; }
    series=$(grep -cv '^#' <<<"$scrape" || true)
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$DAEMON_PID/status")
    fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
    echo "$elapsed,$(rss_kb "$DAEMON_PID"),$fds,$threads,$(db_bytes),$series,$(m tongdai_calls_active),$(m tongdai_sip_dialogs),$(m tongdai_registrations),$(m tongdai_calls_offered_total),$(m tongdai_calls_answered_total),$(m tongdai_calls_abandoned_total),$(m tongdai_calls_refused_total),$(sipp_stat "$W/trunk" 'SuccessfulCall(C)'),$(sipp_stat "$W/trunk" 'FailedCall(C)')" >>"$CSV"
    (( elapsed >= SECS )) && break
    next=$((next + 10))
    sleep $((next - $(date +%s) > 0 ? next - $(date +%s) : 0))
done
wait "$TRUNK_PID" 2>/dev/null || true

python3 - "$CSV" "$WARMUP_S" "$RATE" "$MINUTES" "$RECORDS" >"$W/summary.md" <<'PY'
import csv, sys
path, warmup, rate, minutes = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [r for r in csv.DictReader(open(path))]
after = [r for r in rows if float(r["elapsed_s"]) >= warmup] or rows
def slope(key):
    xs = [float(r["elapsed_s"]) / 3600 for r in after]
    ys = [float(r[key]) for r in after]
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
last = rows[-1]
records = "with call records" if sys.argv[5] != "0" else "without call records"
print(f"Soak: {minutes} min at {rate} calls/s, {records}; {len(rows)} samples every 10 s; "
      f"summary after {int(warmup)} s of warm-up.\n")
print(f"Calls: offered {last['offered']}, answered {last['answered']}, abandoned "
      f"{last['abandoned']}, refused {last['refused']}; SIPp trunk successful "
      f"{last['sipp_ok']}, failed {last['sipp_failed']}.\n")
print("| series | first | last | max | slope per hour |")
print("|---|---:|---:|---:|---:|")
for key, label in [("rss_kb", "RSS (kB)"), ("fds", "open fds"), ("threads", "threads"),
                   ("sqlite_bytes", "SQLite bytes (records + bindings, with WAL)"),
                   ("series", "Prometheus series"), ("calls_active", "calls in progress"),
                   ("dialogs", "SIP dialogs"), ("registrations", "registrations")]:
    vals = [float(r[key]) for r in after]
    print(f"| {label} | {vals[0]:.0f} | {vals[-1]:.0f} | {max(vals):.0f} | {slope(key):+.0f} |")
PY
cat "$W/summary.md"
log "CSV and summary in $W"
