#!/usr/bin/env python3
"""The tables of bench/README.md, from the JSON bench/report writes into docs/bench/.

Usage: bench/readme_tables.py [JSON_DIR]   (default docs/bench)

Every time cell is "median / minimum" of the 5 repetitions (wall clock where the
benchmark asked for it, else CPU time); every ratio is taken at the medians. A table
whose JSON is missing is skipped. Each table is headed by when its run started and the
load average then.
"""
import json
import os
import re
import statistics
import sys

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class Runs:
    def __init__(self, path):
        with open(path) as f:
            doc = json.load(f)
        self.path = path
        self.ctx = doc["context"]
        self.reps, self.agg = {}, {}
        for r in doc["benchmarks"]:
            if r.get("run_type", "iteration") == "iteration":
                self.reps.setdefault(r["run_name"], []).append(r)
            else:
                self.agg[r["name"]] = r

    def header(self):
        load = ", ".join(f"{x:.2f}" for x in self.ctx.get("load_avg", []))
        return f"_{os.path.basename(self.path)}: run of {self.ctx.get('date', '?')}, load average {load}_\n"

    def find(self, pattern):
        names = [n for n in self.reps if re.fullmatch(pattern, n)]
        if len(names) != 1:
            return None
        return self.reps[names[0]]

    def times(self, pattern, per_item=False):
        """Seconds (or seconds per item) of every repetition."""
        runs = self.find(pattern)
        if runs is None:
            return None
        out = []
        for r in runs:
            if per_item:
                out.append(1.0 / r["items_per_second"])
            else:
                t = r["real_time"] if r["run_name"].endswith("/real_time") else r["cpu_time"]
                out.append(t * UNIT[r.get("time_unit", "ns")])
        return out

    def median(self, pattern, per_item=False):
        t = self.times(pattern, per_item)
        return statistics.median(t) if t else None

    def cell(self, pattern, per_item=False, unit="ms", bold=False):
        t = self.times(pattern, per_item)
        if not t:
            return "–"
        scale = UNIT[unit]
        m, lo = statistics.median(t) / scale, min(t) / scale
        text = f"{num(m)} / {num(lo)}"
        return f"**{text}**" if bold else text

    def counter(self, pattern, key):
        runs = self.find(pattern)
        return runs[0].get(key) if runs else None

    def fit(self, family):
        big = self.agg.get(family + "_BigO")
        rms = self.agg.get(family + "_RMS")
        if not big or not rms:
            return "–"
        return f"{big['cpu_coefficient'] if 'real_time' not in family else big['real_coefficient']:.3g} N {big.get('time_unit', 'ns')}, RMS {100 * rms['rms']:.0f} %"


def num(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def load(d, name):
    p = os.path.join(d, name + ".json")
    return Runs(p) if os.path.exists(p) else None


def row(cells):
    print("| " + " | ".join(cells) + " |")


# ---- issue 22: the kernel's xarray side by side -------------------------------------------

KERNEL_ROWS = [
    ("ordered iteration, dense 16M: `xas_for_each` vs `cursor()`", r"BM_Iterate_LinuxXasForEach/pattern:0", r"BM_Iterate_KhoCursor/pattern:0", 1.2),
    ("ordered iteration, 10^6 random PFNs: `xas_for_each` vs `cursor()`", r"BM_Iterate_LinuxXasForEach/pattern:1", r"BM_Iterate_KhoCursor/pattern:1", 1.2),
    ("marked iteration, 1 in 8, dense 16M, per hit: `xas_for_each_marked` vs `marked_cursor()`", r"BM_MarkedIterate_LinuxXasForEachMarked/pattern:0", r"BM_MarkedIterate_KhoMarkedCursor/pattern:0", 1.5),
    ("marked iteration, 1 in 8, random PFNs, per hit", r"BM_MarkedIterate_LinuxXasForEachMarked/pattern:1", r"BM_MarkedIterate_KhoMarkedCursor/pattern:1", 1.5),
    ("first marking of a fresh map, every 8th of 10^5: `xa_set_mark` vs `set_mark`", r"BM_SetMarkFresh_Linux/n:100000", r"BM_SetMarkFresh_Kho/n:100000", 1.5),
    ("first marking of a fresh map, every 8th of 16M", r"BM_SetMarkFresh_Linux/n:16777216", r"BM_SetMarkFresh_Kho/n:16777216", 1.5),
    ("store into an empty map, 10^6 random PFNs in random order: `xa_store` vs `store`", r"BM_StoreFresh_LinuxXaStore/pattern:1", r"BM_StoreFresh_Kho/pattern:1", None),
    ("random load, 10^6 random PFNs below 2^28: `xa_load` vs `load`", r"BM_Load_LinuxXaLoad/pattern:1", r"BM_Load_Kho/pattern:1", 1.3),
]


def kernel_table(now, before):
    print(now.header())
    if before:
        print(before.header())
    print("| work | Linux (model), ns | kho before, ns | **kho now**, ns | Linux / kho before | **Linux / kho now** | target | met at the median? |")
    print("|---|--:|--:|--:|--:|--:|--:|---|")
    for label, lin, kho, target in KERNEL_ROWS:
        l, k = now.median(lin, True), now.median(kho, True)
        b = before.median(kho, True) if before else None
        lb = before.median(lin, True) if before else None
        if target is None:
            met = "(a lead to keep)" if l and k and l / k > 1 else "–"
        else:
            met = "–" if l is None or k is None else ("yes" if l / k >= target else "**no**")
        row([label, now.cell(lin, True, "ns"), before.cell(kho, True, "ns") if before else "–",
             now.cell(kho, True, "ns", bold=True), ratio(lb, b), f"**{ratio(l, k)}**", f">= {target}x" if target else "–", met])
    print()
    bpe = now.counter(r"BM_Load_Kho/pattern:1", "bytes_per_entry")
    lbpe = now.counter(r"BM_Load_LinuxXaLoad/pattern:1", "bytes_per_entry")
    if bpe and lbpe:
        print(f"Bytes per entry for the random PFNs: kho {bpe:.1f}, Linux (model) {lbpe:.0f}.\n")


# ---- restore --------------------------------------------------------------------------------

def restore_tables(r, scale):
    fam = "scattered_1TiB"
    print(r.header())
    print("| N | naive (kernel) | naive one-pass | linear | **at bound** | walk alone | leaf-read bound | at bound / walk | at bound / leaf read | linear / at bound | naive (kernel) / at bound |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for lg in range(10, 25, 2):
        n = 1 << lg
        pat = lambda s: rf"{s}/{fam}/n:{n}/pattern:0/space_log2:40/real_time"
        row([f"2^{lg}", r.cell(pat("RestoreNaive")), r.cell(pat("RestoreNaiveOnePass")), r.cell(pat("RestoreLinear")),
             r.cell(pat("RestoreAtBound"), bold=True), r.cell(pat("Walk")), r.cell(pat("LeafReadBound")),
             ratio(r.median(pat("RestoreAtBound")), r.median(pat("Walk"))),
             ratio(r.median(pat("RestoreAtBound")), r.median(pat("LeafReadBound"))),
             ratio(r.median(pat("RestoreLinear")), r.median(pat("RestoreAtBound"))),
             ratio(r.median(pat("RestoreNaive")), r.median(pat("RestoreAtBound")))])
    print()
    print("Constant density (`scattered_1in16`), ms:\n")
    print("| N | walk alone | **at bound** | linear | at bound / walk |")
    print("|---|--:|--:|--:|--:|")
    for lg in range(10, 25, 2):
        n = 1 << lg
        pat = lambda s: rf"{s}/scattered_1in16/n:{n}/pattern:0/space_log2:{lg + 16}/real_time"
        row([f"2^{lg}", r.cell(pat("Walk")), r.cell(pat("RestoreAtBound"), bold=True), r.cell(pat("RestoreLinear")),
             ratio(r.median(pat("RestoreAtBound")), r.median(pat("Walk")))])
    print()
    print("Complexity(oN) fits at constant density (wall clock, medians): at bound "
          f"{r.fit('RestoreAtBound/scattered_1in16/real_time')}; walk {r.fit('Walk/scattered_1in16/real_time')}; "
          f"linear {r.fit('RestoreLinear/scattered_1in16/real_time')}.\n")
    if scale:
        print(scale.header())
        pat = lambda s: rf"{s}/scattered_16TiB/n:67108864/pattern:0/space_log2:44/real_time"
        print("| | walk alone | leaf-read bound | **at bound** | linear |")
        print("|---|--:|--:|--:|--:|")
        row(["ms", scale.cell(pat("Walk")), scale.cell(pat("LeafReadBound")), scale.cell(pat("RestoreAtBound"), bold=True),
             scale.cell(pat("RestoreLinear"))])
        ab = scale.median(pat("RestoreAtBound"))
        row(["/ at bound", ratio(scale.median(pat("Walk")), ab), ratio(scale.median(pat("LeafReadBound")), ab), "1",
             ratio(scale.median(pat("RestoreLinear")), ab)])
        print()


# ---- boot -------------------------------------------------------------------------------------

def boot_table(b):
    print(b.header())
    print("| N | walk alone | attach alone | **side-step, words** | side-step | at bound + free_all | linear + free_all | naive (kernel) + free_all | words / walk | words / (linear + free_all) | side-step / walk |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for lg in (16, 20, 24):
        pat = lambda s: rf"{s}/n:{1 << lg}/real_time"
        w, lin, words, side = (b.median(pat(s)) for s in ("Walk", "BootLinear", "BootSideStepWords", "BootSideStep"))
        row([f"2^{lg}", b.cell(pat("Walk")), b.cell(pat("Attach")), b.cell(pat("BootSideStepWords"), bold=True),
             b.cell(pat("BootSideStep")), b.cell(pat("BootAtBound")), b.cell(pat("BootLinear")), b.cell(pat("BootNaive")),
             ratio(words, w), ratio(words, lin), ratio(side, w)])
    print()


# ---- xarray -----------------------------------------------------------------------------------

def xarray_writes_table(w, before):
    print(w.header())
    if before:
        print(before.header())
    print("| work | before, ns per entry (per hit for scans) | **now**, median / min | now / before |")
    print("|---|--:|--:|--:|")
    rows = [
        ("store, 10^6 sequential indices from empty", r"BM_StoreSeq_Xarray/n:1000000"),
        ("store, 16M sequential indices from empty", r"BM_StoreSeq_Xarray/n:16777216"),
        ("set_mark on every 8th entry, dense 10^5, **re-marking** (marks cleared between rounds)", r"BM_SetMark_Xarray/n:100000"),
        ("set_mark on every 8th entry, dense 16M, **re-marking**", r"BM_SetMark_Xarray/n:16777216"),
        ("erase all, sequential, 10^6", r"BM_EraseSeq_Xarray/n:1000000"),
        ("exchange, sequential, 10^6", r"BM_Exchange_Xarray/n:1000000"),
        ("marked scan, 1 in 8 marked, dense 16M: marked_cursor", r"BM_MarkedScan_Cursor"),
        ("the same scan, find_marked restart loop", r"BM_MarkedScan_Restart"),
        ("ordered build, 10^6, append_ordered one by one", r"BM_BulkBuild_Xarray/n:1000000"),
        ("ordered build, 10^6, append_ordered(span)", r"BM_BulkBuildBatch_Xarray/n:1000000"),
        ("the same records pushed into a std::vector, 10^6", r"BM_BulkBuildBatch_Vector/n:1000000"),
        ("ordered build, 16M, append_ordered(span)", r"BM_BulkBuildBatch_Xarray/n:16777216"),
        ("the same records pushed into a std::vector, 16M", r"BM_BulkBuildBatch_Vector/n:16777216"),
    ]
    for label, pat in rows:
        b = before.median(pat, True) if before else None
        row([label, before.cell(pat, True, "ns") if before else "–", w.cell(pat, True, "ns", bold=True),
             ratio(w.median(pat, True), b)])
    print()


PATTERNS = ["dense", "sparse", "clustered", "huge"]


def xarray_reads_table(x, before):
    print(x.header())
    if before:
        print(before.header())
    print("| operation | pattern | xarray before, ns per entry | **xarray now** | flat sorted (kernel memfd array) | std::map | unordered_map | now / before | flat / xarray | map / xarray |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for op, xa, flat, smap, umap in (("random load", "BM_Load_Xarray", "BM_Load_FlatSorted", "BM_Load_StdMap", "BM_Load_UnorderedMap"),
                                     ("ordered iteration (random-order build)", "BM_Iterate_Xarray", "BM_Iterate_FlatSorted", "BM_Iterate_StdMap", None)):
        for p, name in enumerate(PATTERNS):
            pat = lambda s: rf"{s}/pattern:{p}"
            xm = x.median(pat(xa), True)
            bm = before.median(pat(xa), True) if before else None
            row([op, name, before.cell(pat(xa), True, "ns") if before else "–", x.cell(pat(xa), True, "ns", bold=True),
                 x.cell(pat(flat), True, "ns"), x.cell(pat(smap), True, "ns"),
                 x.cell(pat(umap), True, "ns") if umap else "–", ratio(xm, bm), ratio(x.median(pat(flat), True), xm),
                 ratio(x.median(pat(smap), True), xm)])
    for p, name in enumerate(PATTERNS):
        pat = rf"BM_AttachValidate_Xarray/pattern:{p}"
        bm = before.median(pat, True) if before else None
        row(["attach + validate, ns per entry", name, before.cell(pat, True, "ns") if before else "–",
             x.cell(pat, True, "ns", bold=True), "", "", "", ratio(x.median(pat, True), bm), "", ""])
    print()
    print("| marked search, dense 16M, 1 in 4096 marked | before, ms per pass | **now**, median / min | now / before |")
    print("|---|--:|--:|--:|")
    for label, pat in (("find_marked restart loop", "BM_FindMarked_Xarray"), ("marked_cursor", "BM_FindMarked_XarrayCursor"),
                       ("flat array: full scan of the flags", "BM_FindMarked_FlatScan")):
        row([label, before.cell(pat) if before else "–", x.cell(pat, bold=True),
             ratio(x.median(pat), before.median(pat) if before else None)])
    print()
    for p, name in enumerate(PATTERNS):
        bpe = x.counter(rf"BM_Load_Xarray/pattern:{p}", "bytes_per_entry")
        old = before.counter(rf"BM_Load_Xarray/pattern:{p}", "bytes_per_entry") if before else None
        if bpe:
            print(f"- bytes per entry, {name}: {bpe:.2f}" + (f" (before: {old:.2f})" if old else ""))
    print()


# ---- holes -------------------------------------------------------------------------------------

def holes_table(h, scale):
    print(h.header())
    print("| n | walk (b) ms | largest_hole ms | largest / walk | first_fit, no fit / walk | grow_scratch / walk | (a) per page, first 4 GiB, ms | first_fit 64 KiB, µs |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for lg in (16, 18, 20, 22):
        n = 1 << lg
        pat = lambda s: rf"BM_{s}/n:{n}"
        w = h.median(pat("Walk"))
        row([f"2^{lg}", h.cell(pat("Walk")), h.cell(pat("LargestHole"), bold=True), ratio(h.median(pat("LargestHole")), w),
             ratio(h.median(pat("FirstFitNone")), w), ratio(h.median(pat("GrowScratch")), w),
             h.cell(rf"BM_NaiveLargestPerPage/n:{n}/iterations:1"), h.cell(pat("FirstFitSmall"), unit="us")])
    print()
    if scale:
        print(scale.header())
        pat = lambda s: rf"BM_{s}_16TiB/n:67108864/iterations:3"
        w = scale.median(pat("Walk"))
        print("| 2^26 blocks over 16 TiB | walk | largest_hole | first_fit, no fit | grow_scratch |")
        print("|---|--:|--:|--:|--:|")
        row(["ms", scale.cell(pat("Walk")), scale.cell(pat("LargestHole")), scale.cell(pat("FirstFitNone")), scale.cell(pat("GrowScratch"))])
        row(["/ walk", "1", ratio(scale.median(pat("LargestHole")), w), ratio(scale.median(pat("FirstFitNone")), w),
             ratio(scale.median(pat("GrowScratch")), w)])
        print()


# ---- block list ----------------------------------------------------------------------------------

def block_list_tables(b):
    print(b.header())
    names = sorted({re.sub(r"/\d+$", "", n) for n in b.reps})
    sizes = sorted({int(m.group(1)) for n in b.reps for m in [re.search(r"entry<(\d+)>", n)] if m})
    ops = sorted({n.split("<")[0] for n in names})
    for size in sizes:
        print(f"{size}-byte entries, ns per entry, median / min:\n")
        print("| n | " + " | ".join(ops) + " |")
        print("|--:|" + "--:|" * len(ops))
        counts = sorted({int(n.rsplit("/", 1)[1]) for n in b.reps if f"entry<{size}>" in n})
        for c in counts:
            cells = []
            for op in ops:
                pat = re.escape(f"{op}<entry<{size}>>/{c}")
                cells.append(b.cell(pat, True, "ns") if b.find(pat) and b.find(pat)[0].get("items_per_second") else b.cell(pat, unit="us"))
            row([str(c)] + cells)
        print()


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "docs/bench"
    sections = [
        ("Issue 22: the kernel's xarray side by side", lambda: kernel_table(load(d, "xarray_kernel"), load(d, "xarray_kernel_before")), "xarray_kernel"),
        ("Restore", lambda: restore_tables(load(d, "restore"), load(d, "restore_scale")), "restore"),
        ("Boot", lambda: boot_table(load(d, "boot")), "boot"),
        ("Xarray write paths", lambda: xarray_writes_table(load(d, "xarray_writes"), load(d, "xarray_before")), "xarray_writes"),
        ("Xarray reads", lambda: xarray_reads_table(load(d, "xarray"), load(d, "xarray_reads_before")), "xarray"),
        ("Hole finder", lambda: holes_table(load(d, "holes"), load(d, "holes_scale")), "holes"),
        ("Block list", lambda: block_list_tables(load(d, "block_list")), "block_list"),
    ]
    for title, make, needs in sections:
        if load(d, needs) is None:
            continue
        print(f"<!-- {title} -->\n")
        make()


if __name__ == "__main__":
    main()
