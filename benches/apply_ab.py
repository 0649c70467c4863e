#!/usr/bin/env python3
"""Two synup binaries' `apply` side by side, for a change to the executor.

On the pattern-1 tree that benches/plan_bench.py generates (under
target/bench-data, UNITS units), RUNS interleaved rounds per binary of: a
fresh apply into an empty local target (after `sync`), then an apply with
nothing to do; and the baseline, `cp -r` of the same tree followed by
`sync` (as apply makes its copies durable). Prints medians of time and peak
RSS, their ratios, and checks that both binaries' catalogs end up with the
same units and files.

Targets are moved aside (under target/bench-data/trash-*) between runs, not
deleted: a mass delete slows file creation on ext4 for minutes after. The
trash (about 10 KB per unit per run) is deleted once the numbers are in.

usage: benches/apply_ab.py OLD_BINARY NEW_BINARY [RUNS] [UNITS]
"""
import sqlite3, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
import plan_bench as pb

bins = {"old": sys.argv[1], "new": sys.argv[2]}
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
units = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
data = ROOT / "target" / "bench-data"
tree = pb.generate(data, "1", units, pb.venv_python(data))
trash = data / f"trash-{time.time_ns()}"
trash.mkdir(exist_ok=True)
subprocess.run(f"find {tree}/data -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)


def move_aside():
    for d in ("local", "journal"):
        p = tree / ".synup" / d
        if p.exists():
            p.rename(trash / f"{d}-{time.time_ns()}")


def catalog_summary():
    db = sqlite3.connect(tree / ".synup" / "local" / "catalog.sqlite")
    q = lambda s: db.execute(s).fetchone()[0]
    return q("SELECT count(*) FROM data_units"), q("SELECT count(*) FROM files"), q("SELECT count(*) FROM unit_files")


apply_cmd = lambda b: [b, "apply", "recipe.yaml", "--yes", "--quiet"]
fresh = {k: [] for k in bins}
copies = []
noop = {k: [] for k in bins}
summaries = {}
# A warm plan first so both binaries find the checksum cache warm.
pb.timed([bins["new"], "plan", "recipe.yaml", "--quiet"], cwd=tree)
for i in range(runs):
    for k, b in (list(bins.items()) if i % 2 == 0 else list(bins.items())[::-1]):
        move_aside()
        subprocess.run(["sync"])
        fresh[k].append(pb.timed(apply_cmd(b), cwd=tree)[:2])
        noop[k].append(pb.timed(apply_cmd(b), cwd=tree)[:2])
        summaries[k] = catalog_summary()
    subprocess.run(["sync"])
    copies.append(pb.timed(f"cp -r {tree}/data {trash}/cp-{i} && sync", shell=True)[:2])
move_aside()
# Measurements are done: now the slow delete may run.
subprocess.Popen(["rm", "-rf", str(trash)])

med = lambda xs, j: statistics.median(x[j] for x in xs)
print(f"apply A/B: {units} units (pattern 1), medians of {runs} interleaved rounds")
for name, table in (("fresh apply", fresh), ("nothing to do", noop)):
    o_t, n_t = med(table["old"], 0), med(table["new"], 0)
    o_m, n_m = med(table["old"], 1), med(table["new"], 1)
    print(f"  {name:14} old {o_t:6.2f} s {o_m:6.0f} MiB   new {n_t:6.2f} s {n_m:6.0f} MiB   time new/old {n_t / o_t:.2f}   rss new/old {n_m / o_m:.2f}")
    for k in bins:
        print(f"    {k} runs: " + ", ".join(f"{t:.2f} s" for t, _ in table[k]))
cp_t = med(copies, 0)
print(f"  cp -r + sync   {cp_t:6.2f} s   runs: " + ", ".join(f"{t:.2f} s" for t, _ in copies))
print(f"  fresh apply / cp -r: old {med(fresh['old'], 0) / cp_t:.2f}   new {med(fresh['new'], 0) / cp_t:.2f}")
print(f"  catalogs (units, files, unit files): old {summaries['old']}  new {summaries['new']}  {'same' if summaries['old'] == summaries['new'] else 'DIFFERENT'}")
