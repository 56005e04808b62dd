# Shared helpers for benches/load/*.sh (sourced, not run). Every script: loopback only, its own
# ports, a watchdog bounding its run time, and a trap that stops every process it started (by pid).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOAD="$REPO/benches/load"
BIN="${TONGDAI_BIN:-$REPO/target/release/tongdai}"
RTP_LOAD="${RTP_LOAD_BIN:-$REPO/target/release/examples/rtp_load}"
WORK_ROOT="${WORK_ROOT:-/tmp/tongdai-load}"
CLK_TCK=$(getconf CLK_TCK)
STARTED_PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${STARTED_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}

# bounded SECONDS: stops the whole script (through its trap) after SECONDS.
bounded() {
    local me=$$
    trap cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM
    (
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        sleep "$1" &
        nap=$!
        wait "$nap"
        log "watchdog: over $1 s, stopping"
        kill -TERM "$me" 2>/dev/null
    ) &
    STARTED_PIDS+=("$!")
}

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { log "missing tool: $tool"; exit 1; }
    done
    [[ -x "$BIN" ]] || { log "no $BIN: run cargo build --release"; exit 1; }
}

# workdir NAME: a fresh folder for one script's files.
workdir() {
    local dir="$WORK_ROOT/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$dir"
}

# start_daemon CONFIG LOGFILE HTTP_PORT: starts tongdai, waits for /healthz, sets DAEMON_PID.
start_daemon() {
    "$BIN" run --config "$1" >"$2" 2>&1 &
    DAEMON_PID=$!
    STARTED_PIDS+=("$DAEMON_PID")
    local i
    for i in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$3/healthz" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || { log "daemon exited:"; tail -20 "$2" >&2; exit 1; }
        sleep 0.1
    done
    log "daemon not healthy after 10 s"
    exit 1
}

# cpu_ticks PID...: utime + stime of the processes (all their threads), in clock ticks.
cpu_ticks() {
    local total=0 pid stat
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        # Fields after "(comm) ": state is field 3, so utime (14) and stime (15) are 12th and 13th.
        set -- $stat
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# run_delay_ms PID: how long the process's threads have waited on a run queue for a core, in ms
# (/proc/PID/task/*/schedstat, second field): CPU time the daemon wanted and did not get, which on
# a machine shared with the load generators (or other work) bounds a figure more than its own cost.
run_delay_ms() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%d\n", s / 1e6 }'
}

# rss_kb PID: VmRSS in kB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# metric NAME HTTP_PORT: the summed value of a metric (all label sets) from /metrics.
metric() {
    curl -fsS "http://127.0.0.1:$2/metrics" 2>/dev/null \
        | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { print s + 0 }'
}

# udp_rcvbuf_errors: the kernel's count of UDP datagrams dropped on full receive buffers.
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 }
                   else print $c }' /proc/net/snmp
}

# sipp_bg LOGDIR ARGS...: starts SIPp in the background in LOGDIR, sets SIPP_PID.
sipp_bg() {
    local dir=$1
    shift
    mkdir -p "$dir"
    (cd "$dir" && exec sipp "$@" -nostdin >"$dir/stdout.log" 2>"$dir/stderr.log") &
    SIPP_PID=$!
    STARTED_PIDS+=("$SIPP_PID")
}

# sipp_stat DIR FIELD: a cumulative field, e.g. SuccessfulCall(C), from the last -trace_stat row.
sipp_stat() {
    python3 - "$1" "$2" <<'PY'
import glob, sys
rows = []
for f in glob.glob(sys.argv[1] + "/*_.csv") + glob.glob(sys.argv[1] + "/stat.csv"):
    rows = [l.rstrip("\n").split(";") for l in open(f) if l.strip()]
if len(rows) < 2:
    print(0); sys.exit()
head, last = rows[0], rows[-1]
print(last[head.index(sys.argv[2])] if sys.argv[2] in head else 0)
PY
}
