#!/usr/bin/env bash
# Every load measurement of benches/load/ in one run (about 9 minutes on 2 cores), one after the
# other, into one results file: issue 6 (REGISTER vs Kamailio), issue 8 (calls per second), issue 7
# (hold capacity, relay latency, RSS per caller). Builds the release daemon and examples first
# unless SKIP_BUILD=1 (then TONGDAI_BIN / RTP_LOAD_BIN may name prebuilt binaries).
#
#   benches/load/run-all.sh            results in /tmp/tongdai-load/results-<UTC time>.txt
source "$(dirname "$0")/lib.sh"
bounded 900
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$REPO" && cargo build --release --bin tongdai --examples)
fi
mkdir -p "$WORK_ROOT"
OUT="$WORK_ROOT/results-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "# tongdai load run $(date -u '+%Y-%m-%d %H:%M UTC')"
    dirty=$(cd "$REPO" && git diff --quiet HEAD -- src || echo ' (src modified)')
    echo "# git $(cd "$REPO" && git rev-parse --short HEAD)$dirty, daemon $BIN"
    echo "# $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)," \
        "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1), $(kamailio -v 2>/dev/null | head -1)"
} | tee "$OUT"
step() {
    local name=$1
    shift
    echo | tee -a "$OUT"
    echo "## $name: $*" | tee -a "$OUT"
    "$LOAD/$name" "$@" 2>&1 | tee -a "$OUT" || echo "($name failed)" | tee -a "$OUT"
    echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
}
step register-vs-kamailio.sh "100 500 1000 2000" 20
export AGENTS=400
step calls-per-second.sh "10 25 50 100" 15
step hold-capacity.sh "25 50 100 200 400 800 1600" 10
step relay-latency.sh "100 300 600 1000" 10
step rss-per-caller.sh "200 1000"
log "results in $OUT"
