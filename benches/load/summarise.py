#!/usr/bin/env python3
"""Turns one benches/load/run working folder into the results files.

Usage: summarise.py RUN_DIR OUT_BASE
Reads RUN_DIR/machine.json, RUN_DIR/commands.tsv and the `RESULT <kind> key=value …` lines of
RUN_DIR/run-N/*.txt, and writes OUT_BASE.json (every figure with its command lines, unit, the value
of each run and min/median/max) and OUT_BASE.md (the same as a table). Standard library only.
"""
import json
import math
import os
import re
import statistics
import sys

run_dir, out_base = sys.argv[1], sys.argv[2]
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
machine = json.load(open(os.path.join(run_dir, "machine.json")))

commands = {}  # step name -> [command line, …] (one per run, deduplicated)
for line in open(os.path.join(run_dir, "commands.tsv")):
    run, name, cmd = line.rstrip("\n").split("\t", 2)
    cmd = cmd.replace(repo + "/", "").replace(run_dir + "/bin/", "")
    cmd = re.sub(r"'([^' ]*)'", r"\1", cmd)  # bash's ${*@Q}: keep quotes only where needed
    commands.setdefault(name, [])
    if cmd not in commands[name]:
        commands[name].append(cmd)


def results(run, step):
    """The RESULT lines of one step of one run, as (kind, {key: value})."""
    path = os.path.join(run_dir, f"run-{run}", f"{step}.txt")
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        if line.startswith("RESULT "):
            words = line.split()
            out.append((words[1], dict(w.split("=", 1) for w in words[2:] if "=" in w)))
    return out


def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


runs = sorted(int(d[4:]) for d in os.listdir(run_dir) if re.fullmatch(r"run-\d+", d))
figures = {}  # key -> {"figure", "unit", "step", "values": [per run]}


def put(key, figure, unit, step, run, value):
    f = figures.setdefault(key, {"figure": figure, "unit": unit, "step": step, "values": {}})
    if value is not None:
        f["values"][run] = value


for r in runs:
    steps = {kv["rate"]: kv for step in ("cps-search", "cps-refine")
             for kind, kv in results(r, step) if kind == "cps"}
    for kind, kv in results(r, "cps-search"):
        if kind == "cps_max":
            put("calls_max", "calls/s offered with <= 0.1 % failed calls (full flow)", "calls/s",
                "cps-search", r, num(kv["rate"]))
            # What SIPp managed to offer and the daemon answered: answered calls over the step's
            # duration less one call's talk time (below the offered rate when SIPp, on the same
            # cores, could not keep its pace).
            put("calls_max_achieved", "calls answered per second at that step (achieved)",
                "calls/s", "cps-search", r,
                num(steps.get(kv["rate"], {}).get("answered_per_s")))
    for kind, kv in results(r, "cps-half"):
        if kind != "cps":
            continue
        put("half_rate", "half-load rate (half the maximum)", "calls/s", "cps-half", r,
            num(kv["rate"]))
        for k, name in [("inv100_p50_ms", "INVITE→100 p50 at half load"),
                        ("inv100_p99_ms", "INVITE→100 p99 at half load"),
                        ("inv200_p50_ms", "INVITE→200 p50 at half load"),
                        ("inv200_p99_ms", "INVITE→200 p99 at half load")]:
            put(k, name, "ms", "cps-half", r, num(kv.get(k)))
        put("half_failed_pct", "failed calls at half load", "%", "cps-half", r,
            num(kv.get("failed_pct")))
    for kind, kv in results(r, "overload"):
        if kind != "cps":
            continue
        put("overload_rate", "overload: offered (2× the maximum)", "calls/s", "overload", r,
            num(kv["rate"]))
        put("overload_goodput", "overload: goodput (calls answered by an agent per second)",
            "calls/s", "overload", r, num(kv.get("answered_per_s")))
        put("overload_refused_pct", "overload: share refused by the daemon", "%", "overload", r,
            num(kv.get("refused_pct")))
        put("overload_failed_pct", "overload: share of calls not completed (SIPp)", "%",
            "overload", r, num(kv.get("failed_pct")))
        put("overload_rss_peak", "overload: peak RSS (VmHWM)", "kB", "overload", r,
            num(kv.get("rss_peak_kb")))
        put("overload_cpu", "overload: daemon CPU", "cores", "overload", r,
            num(kv.get("cpu_cores")))
    reg = {}
    for kind, kv in results(r, "register"):
        if kind == "register":
            reg[(kv["server"], int(kv["rate"]))] = kv
    for (server, rate), kv in sorted(reg.items()):
        put(f"reg_cpu_{server}_{rate}", f"REGISTER digest CPU per registration, {server}, "
            f"offered {rate}/s", "µs", "register", r, num(kv["cpu_us_per_reg"]))
        put(f"reg_failed_{server}_{rate}", f"REGISTER failed, {server}, offered {rate}/s", "%",
            "register", r, num(kv["failed_pct"]))
    for (server, rate), kv in sorted(reg.items()):
        other = reg.get(("kamailio", rate))
        if server == "tongdai" and other and num(other["cpu_us_per_reg"]):
            put(f"reg_ratio_{rate}", f"REGISTER CPU ratio tongdai / Kamailio, offered {rate}/s",
                "×", "register", r,
                num(kv["cpu_us_per_reg"]) / num(other["cpu_us_per_reg"]))
    for server in ("tongdai", "kamailio"):
        steps = [kv for (s, _), kv in reg.items() if s == server]
        if steps:
            top = max(steps, key=lambda kv: num(kv["reg_per_s"]) or 0)
            put(f"reg_max_{server}", f"REGISTER most registrations/s reached, {server}", "reg/s",
                "register", r, num(top["reg_per_s"]))
            put(f"reg_max_cpu_{server}", f"REGISTER CPU per registration at that step, {server}",
                "µs", "register", r, num(top["cpu_us_per_reg"]))
    for kind, kv in results(r, "hold"):
        if kind == "hold_max":
            put("hold_max", "callers on hold audio at send lateness p99 < 5 ms, no loss",
                "callers", "hold", r, num(kv["callers"]))
    for kind, kv in results(r, "rss"):
        if kind == "rss":
            n = kv["callers"]
            put(f"rss_{n}", f"RSS per queued caller ({n} queued)", "kB", "rss", r,
                num(kv["kb_per_caller"]))
    best = 0
    for kind, kv in results(r, "relay"):
        if kind != "relay":
            continue
        n = kv["calls"]
        for k, q in [("lat_p50_ms", "p50"), ("lat_p99_ms", "p99"), ("lat_p999_ms", "p99.9")]:
            put(f"relay_{q}_{n}", f"bridged calls: added one-way latency {q}, {n} calls", "ms",
                "relay", r, num(kv.get(k)))
        put(f"relay_lost_{n}", f"bridged calls: frames lost, {n} calls", "frames", "relay", r,
            num(kv.get("lost")))
        put(f"relay_cpu_{n}", f"bridged calls: cores per 1,000 calls, {n} calls", "cores", "relay",
            r, num(kv.get("cores_per_1k")))
        if (num(kv.get("lat_p99_ms")) or 99) < 1 and num(kv.get("lost")) == 0:
            best = max(best, int(n))
    if results(r, "relay"):
        put("relay_max", "bridged calls with added p99 < 1 ms and no loss (largest step)",
            "calls", "relay", r, best)

for f in figures.values():
    vals = [f["values"][r] for r in runs if r in f["values"]]
    f["runs"] = vals
    del f["values"]
    if vals:
        f["min"], f["median"], f["max"] = min(vals), statistics.median(vals), max(vals)
    f["command"] = commands.get(f["step"], [])

summary = {"machine": machine, "runs": len(runs), "run_dir": run_dir, "figures": figures}
with open(out_base + ".json", "w") as fh:
    json.dump(summary, fh, indent=1, ensure_ascii=False)


def fmt(x):
    if x is None:
        return "–"
    if abs(x) >= 100 or x == int(x):
        return f"{x:,.0f}"
    return f"{x:.3g}"


m = machine
lines = [
    f"# tongdai load run {os.path.basename(out_base)}",
    "",
    f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
    f"{m['os']}; SIPp {m['sipp']}, {m['kamailio']}. Commit {m['commit']}"
    f"{' (src modified)' if m['src_modified'] else ''}. {len(runs)} run(s); "
    "load generators (SIPp, the RTP probe, tcpdump) share the cores with the daemon.",
    "",
    "| figure | unit | min | median | max | runs |",
    "|---|---|---:|---:|---:|---|",
]
for f in figures.values():
    if not f["runs"]:
        continue
    lines.append(f"| {f['figure']} | {f['unit']} | {fmt(f['min'])} | {fmt(f['median'])} | "
                 f"{fmt(f['max'])} | {' · '.join(fmt(v) for v in f['runs'])} |")
lines += ["", "Commands (from the repository root; `benches/load/run` ran them):", ""]
for step, cmds in commands.items():
    for c in cmds:
        lines.append(f"- {step}: `{c}`")
with open(out_base + ".md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print(out_base + ".md")
