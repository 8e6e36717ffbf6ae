#!/usr/bin/env python3
"""Draws docs/bench/*.svg from Google Benchmark JSON files with gnuplot.

Usage: bench/report.py JSON_DIR OUT_DIR. Each chart names the benchmarks it plots by
regular expression; the x value comes from the name (a trailing /N or n:N), the y
value is CPU time (or a per-item figure derived from it).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load(path):
    """Iterations, or the medians of a --benchmark_repetitions run (named as runs)."""
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    medians = [dict(r, name=r["run_name"]) for r in runs
               if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median"]
    return medians or [r for r in runs if r.get("run_type", "iteration") == "iteration"]


def seconds(run):
    """Wall-clock time for benchmarks that asked for it (UseRealTime), else CPU time."""
    t = run["real_time"] if run["name"].endswith("/real_time") else run["cpu_time"]
    return t * UNIT[run.get("time_unit", "ns")]


def x_of(name):
    m = re.search(r"n:(\d+)", name) or re.search(r"/(\d+)$", name)
    return int(m.group(1)) if m else None


def series(runs, pattern):
    pts = [(x_of(r["name"]), r) for r in runs if re.fullmatch(pattern, r["name"])]
    return sorted((x, r) for x, r in pts if x is not None)


def plot_lines(out, title, ylabel, lines, per_item=False, logy=True):
    """lines: [(label, [(x, run)])]; y = seconds (or seconds per x when per_item)."""
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for i, (label, pts) in enumerate(lines):
            if not pts:
                continue
            data = os.path.join(tmp, f"{i}.dat")
            with open(data, "w") as f:
                for x, r in pts:
                    y = seconds(r) / x * 1e9 if per_item else seconds(r) * 1e3
                    f.write(f"{x} {y}\n")
            plots.append(f"'{data}' using 1:2 with linespoints title '{label}' noenhanced")
        if not plots:
            return False
        script = "\n".join([
            "set terminal svg size 820,500 dynamic font 'sans,12'",
            f"set output '{out}'",
            f"set title '{title}' noenhanced",
            "set logscale x 2", "set format x '2^{%L}'",
            "set logscale y" if logy else "",
            "set xlabel 'N'", f"set ylabel '{ylabel}'",
            "set key top left", "set grid",
            "plot " + ", ".join(plots),
        ])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


def plot_bars(out, title, ylabel, groups, labels):
    """groups: [(group_label, {label: run})]: clustered bars of seconds, log scale."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "bars.dat")
        with open(data, "w") as f:
            f.write("group " + " ".join(f'"{l}"' for l in labels) + "\n")
            for g, runs in groups:
                vals = [str(seconds(runs[l]) * 1e3) if l in runs else "NaN" for l in labels]
                f.write(f'"{g}" ' + " ".join(vals) + "\n")
        cols = ", ".join(f"'' using {i + 2} title columnhead" if i else f"'{data}' using 2:xtic(1) title columnhead"
                         for i in range(len(labels)))
        script = "\n".join([
            "set terminal svg size 820,500 dynamic font 'sans,12'",
            f"set output '{out}'", f"set title '{title}'",
            "set style data histograms", "set style histogram clustered gap 1",
            "set style fill solid 0.8 border -1", "set logscale y", "set grid y",
            f"set ylabel '{ylabel}'", "set key top left",
            "plot " + cols,
        ])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    made = []

    def path(name):
        return os.path.join(src, name)

    if os.path.exists(path("restore.json")):
        runs = load(path("restore.json"))
        fam = "scattered_1TiB"
        if plot_lines(os.path.join(out, "restore.svg"),
                      "Restore of N scattered 4 KiB pages over 1 TiB (median of 5, wall clock)", "time (ms)",
                      [("naive: kernel memblock_add_range per block", series(runs, rf"RestoreNaive/{fam}/.*")),
                       ("naive, one-pass reserve (cheaper than the kernel)",
                        series(runs, rf"RestoreNaiveOnePass/{fam}/.*")),
                       ("linear (merged walk, appended, doublings)", series(runs, rf"RestoreLinear/{fam}/.*")),
                       ("at the bound (array sized once, leaf scan)", series(runs, rf"RestoreAtBound/{fam}/.*")),
                       ("merged walk alone", series(runs, rf"Walk/{fam}/.*")),
                       ("bound: read every leaf word once", series(runs, rf"LeafReadBound/{fam}/.*"))]):
            made.append("restore.svg")
    if os.path.exists(path("boot.json")):
        runs = load(path("boot.json"))
        if plot_lines(os.path.join(out, "boot.svg"),
                      "Attach to every free page handed to the buddy allocator, 1 TiB (median of 5)",
                      "time (ms)",
                      [("side-step: hole scan + free_all, memblock.reserved never filled",
                        series(runs, r"BootSideStep/n:\d+/real_time")),
                       ("side-step, word by word into bitmap_buddy",
                        series(runs, r"BootSideStepWords/n:\d+/real_time")),
                       ("restore at the bound + free_all", series(runs, r"BootAtBound/n:\d+/real_time")),
                       ("restore_linear + free_all", series(runs, r"BootLinear/n:\d+/real_time")),
                       ("naive (kernel) + free_all", series(runs, r"BootNaive/n:\d+/real_time")),
                       ("merged walk alone", series(runs, r"Walk/n:\d+/real_time")),
                       ("attach alone", series(runs, r"Attach/n:\d+/real_time"))]):
            made.append("boot.svg")
    if os.path.exists(path("block_list.json")):
        runs = load(path("block_list.json"))
        lines = []
        for b in (16, 64, 256):
            lines.append((f"block list attach+validate+iterate, {b} B",
                          series(runs, rf"attach_iterate_block_list<entry<{b}>>/\d+")))
            lines.append((f"std::vector iterate, {b} B", series(runs, rf"iterate_vector<entry<{b}>>/\d+")))
        if plot_lines(os.path.join(out, "block_list.svg"), "Block list vs std::vector",
                      "ns per entry", lines, per_item=True, logy=False):
            made.append("block_list.svg")
    if os.path.exists(path("xarray.json")):
        runs = load(path("xarray.json"))
        names = {0: "dense 16M", 1: "sparse", 2: "clustered", 3: "hugepage"}
        labels = ["Xarray", "FlatSorted", "StdMap", "UnorderedMap"]
        groups = []
        for p, g in names.items():
            row = {l: r for l in labels for r in runs if r["name"] == f"BM_Load_{l}/pattern:{p}"}
            if row:
                groups.append((g, row))
        if groups and plot_bars(os.path.join(out, "xarray_load.svg"),
                                "Random load: xarray vs baselines (per batch)", "CPU time (ms)",
                                groups, labels):
            made.append("xarray_load.svg")
    if os.path.exists(path("xarray_writes.json")) and os.path.exists(path("xarray_before.json")):
        before, after = load(path("xarray_before.json")), load(path("xarray_writes.json"))
        if plot_write_bars(os.path.join(out, "xarray_writes.svg"), before, after):
            made.append("xarray_writes.svg")
    if os.path.exists(path("holes.json")):
        runs = load(path("holes.json"))
        lines = []
        for pattern, label in HOLE_SERIES:
            lines.append((label, series(runs, pattern)))
        if plot_lines(os.path.join(out, "holes.svg"), "Hole finder over 1 TiB of RAM",
                      "CPU time (ms)", lines):
            made.append("holes.svg")
    print("charts:", ", ".join(made) if made else "none")


# The xarray's write paths (bench/xarray_bench.cpp): before = main before this change
# (xarray_before.json), after = leaf hint, one descent, cursor and bulk append
# (xarray_writes.json); ns per item (median CPU time).
XARRAY_WRITES = [
    ("store seq 1M", "BM_StoreSeq_Xarray/n:1000000", "BM_StoreSeq_Xarray/n:1000000"),
    ("store seq 16M", "BM_StoreSeq_Xarray/n:16777216", "BM_StoreSeq_Xarray/n:16777216"),
    ("set_mark 1e5", "BM_SetMark_Xarray/n:100000", "BM_SetMark_Xarray/n:100000"),
    ("set_mark 16M", "BM_SetMark_Xarray/n:16777216", "BM_SetMark_Xarray/n:16777216"),
    ("erase seq 1M", "BM_EraseSeq_Xarray/n:1000000", "BM_EraseSeq_Xarray/n:1000000"),
    ("exchange 1M", "BM_Exchange_Xarray/n:1000000", "BM_Exchange_Xarray/n:1000000"),
    ("marked scan 16M", "BM_MarkedScan_Restart", "BM_MarkedScan_Cursor"),
    ("ordered build 1M", "BM_StoreSeq_Xarray/n:1000000", "BM_BulkBuild_Xarray/n:1000000"),
    ("ordered build 1M, batch", "BM_StoreSeq_Xarray/n:1000000", "BM_BulkBuildBatch_Xarray/n:1000000"),
]


def plot_write_bars(out, before, after):
    """Clustered bars, ns per item: main before the change vs after, per write path."""
    def per_item(runs, name):
        for r in runs:
            if r["name"] == name and r.get("items_per_second"):
                return 1e9 / r["items_per_second"]
        return None
    rows = [(label, per_item(before, b), per_item(after, a)) for label, b, a in XARRAY_WRITES]
    rows = [r for r in rows if r[1] is not None or r[2] is not None]
    if not rows:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "bars.dat")
        with open(data, "w") as f:
            f.write('group "main (before)" "leaf hint / cursor / bulk (after)"\n')
            for label, b, a in rows:
                f.write(f'"{label}" {b if b is not None else "NaN"} {a if a is not None else "NaN"}\n')
        script = "\n".join([
            "set terminal svg size 900,500 dynamic font 'sans,12'",
            f"set output '{out}'", "set title 'Xarray write paths, dense u64 (median CPU ns per item)' noenhanced",
            "set style data histograms", "set style histogram clustered gap 1",
            "set style fill solid 0.8 border -1", "set grid y", "set yrange [0:*]",
            "set ylabel 'ns per item'", "set key top right noenhanced", "set xtics noenhanced rotate by -20",
            f"plot '{data}' using 2:xtic(1) title columnhead, '' using 3 title columnhead",
        ])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


# The hole finder's benchmarks (bench/holes_bench.cpp), 1 TiB of RAM; the per-page
# baseline runs on the first 4 GiB (BM_NaiveLargestPerPage), plotted as measured.
HOLE_SERIES = [
    (r"BM_LargestHole/n:\d+", "largest_hole"),
    (r"BM_Walk/n:\d+", "merged walk alone"),
    (r"BM_GrowScratch/n:\d+", "grow_scratch (64 pieces)"),
    (r"BM_FirstFitSmall/n:\d+", "first_fit 64 KiB (stops early)"),
    (r"BM_LargestHoleFirst4GiB/n:\d+", "largest_hole, first 4 GiB"),
    (r"BM_NaiveLargestPerPage/n:\d+(/iterations:1)?", "per-page bit test, first 4 GiB"),
]

if __name__ == "__main__":
    main()
