#!/usr/bin/env python3
"""Percentiles of SIPp response times from -trace_rtt files (`*_rtt.csv`: date;ms;rtd).

Usage: rtt-stats.py DIR  ->  one line per rtd: count, p50, p99, max (milliseconds).
"""
import glob
import sys

by_rtd = {}
for path in glob.glob(sys.argv[1] + "/*_rtt.csv"):
    for line in open(path):
        parts = line.strip().split(";")
        if len(parts) < 3:
            continue
        try:
            ms = float(parts[1])
        except ValueError:
            continue  # the header line
        by_rtd.setdefault(parts[2], []).append(ms)


def pct(v, p):
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))] if v else float("nan")


for rtd, v in sorted(by_rtd.items()):
    v.sort()
    print(f"rtd{rtd} n={len(v)} p50_ms={pct(v, 50):.2f} p99_ms={pct(v, 99):.2f} max_ms={v[-1]:.2f}")
