#!/usr/bin/env python3
"""Median and minimum of every benchmark in Google Benchmark JSON files, as markdown.

Usage: bench/tables.py FILE.json [FILE.json ...] [--filter REGEX]

The files must come from a --benchmark_repetitions run whose JSON keeps every
repetition (no --benchmark_report_aggregates_only): the minimum is taken over them.
Each row: the run name, the repetitions, the median and the minimum time (wall clock
for benchmarks that asked for it, else CPU time), and, where the benchmark counts
items, the median and minimum time per item. The header gives when the run started,
the machine's load average then, and the build type.
"""
import json
import re
import statistics
import sys

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(run):
    t = run["real_time"] if run["run_name"].endswith("/real_time") else run["cpu_time"]
    return t * UNIT[run.get("time_unit", "ns")]


def per_item(run):
    """Seconds per item, from the items_per_second counter (CPU or wall, as the time)."""
    ips = run.get("items_per_second")
    return 1.0 / ips if ips else None


def fmt_time(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def table(path, pattern):
    with open(path) as f:
        doc = json.load(f)
    ctx = doc["context"]
    load = ", ".join(f"{x:.2f}" for x in ctx.get("load_avg", []))
    print(f"`{path}`: {ctx.get('date', '?')}, load average {load or '?'}, "
          f"{ctx.get('library_build_type', '?')} benchmark library, {ctx.get('num_cpus', '?')} CPUs\n")
    reps = {}
    for run in doc["benchmarks"]:
        if run.get("run_type", "iteration") != "iteration" or not re.search(pattern, run["run_name"]):
            continue
        reps.setdefault(run["run_name"], []).append(run)
    print("| benchmark | reps | median | min | per item, median | per item, min |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, runs in reps.items():
        times = [seconds(r) for r in runs]
        items = [per_item(r) for r in runs if per_item(r) is not None]
        row = [name, str(len(runs)), fmt_time(statistics.median(times)), fmt_time(min(times))]
        row += [fmt_time(statistics.median(items)), fmt_time(min(items))] if items else ["", ""]
        print("| " + " | ".join(row) + " |")
    print()


def main():
    args = sys.argv[1:]
    pattern = "."
    if "--filter" in args:
        k = args.index("--filter")
        pattern = args[k + 1]
        del args[k:k + 2]
    if not args:
        sys.exit(__doc__)
    for path in args:
        table(path, pattern)


if __name__ == "__main__":
    main()
