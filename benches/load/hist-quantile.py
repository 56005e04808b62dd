#!/usr/bin/env python3
"""Quantiles of a Prometheus histogram between two scrapes of /metrics.

Usage: hist-quantile.py BEFORE.txt AFTER.txt METRIC
Sums every label set of METRIC's `_bucket` series, takes AFTER − BEFORE per bucket and prints the
observation count, p50/p99/p99.9 by linear interpolation inside the bucket (as Prometheus's
histogram_quantile does), and the share of observations at or under 5 ms. Prints `METRIC_n=0`
when the daemon does not export the metric (yet) or nothing was observed.
"""
import sys


def buckets(path, metric):
    out = {}
    for line in open(path):
        if not line.startswith(metric + "_bucket"):
            continue
        labels, value = line.rsplit(" ", 1)
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + float(value)
    return out


before, after, metric = sys.argv[1], sys.argv[2], sys.argv[3]
b, a = buckets(before, metric), buckets(after, metric)
cum = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
total = cum[-1][1] if cum else 0
short = metric.removeprefix("tongdai_")
if total <= 0:
    print(f"{short}_n=0")
    sys.exit()


def quantile(q):
    rank = q * total
    lower, prev = 0.0, 0.0
    for le, c in cum:
        if c >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * ((rank - prev) / (c - prev) if c > prev else 1)
        lower, prev = le, c
    return lower


under5 = next((c for le, c in cum if le >= 0.005), total) / total
print(f"{short}_n={int(total)} p50_ms={quantile(0.5) * 1000:.3f} "
      f"p99_ms={quantile(0.99) * 1000:.3f} p999_ms={quantile(0.999) * 1000:.3f} "
      f"share_le_5ms={under5:.5f}")
