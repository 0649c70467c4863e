#!/usr/bin/env python3
"""Apply's memory from 100k to 1M units: time and peak RSS, side by side.

For each size N this makes a flat tree of N small JSON files, one unit each
(unique content, so every file is stored), and measures with the release
build, in order:
  - `synup plan -o plan.json` (warm: run once before, untimed),
  - `synup apply plan.json` into an empty embedded local target,
  - `synup plan` against that populated target,
  - `synup apply` of the recipe again (nothing to do).
The point is that apply's peak RSS does not grow with the plan: its journal,
report and batches stream. One file per unit keeps the store at a few GiB
at 1M (scale.py's trees, 2.3 files of about 4 KiB per unit, need 12 GiB
more for the store alone).

Trees live under --data and are kept for the next run; a target is moved
aside (into --data/trash) before each apply, and the trash is deleted at the
end: on ext4 files made right after a mass delete are slow to create.

usage: benches/apply_memory.py [--sizes 100000,1000000] [--data target/bench-data]
Needs a release build (`cargo build --release`).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYNUP = REPO / "target" / "release" / "synup"
RECIPE = """version: 1
name: bench-apply-memory
collection:
  file_specifications:
    - {name: label_1, file_type: document, extensions: [.json], is_required: true, is_primary: true}
source: {path: data}
"""


def generate(tree, n):
    data = tree / "data"
    if not (data.is_dir() and sum(1 for _ in os.scandir(data)) == n):
        data.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (data / f"s{i:07d}.json").write_text('{"i": %d}\n' % i)
    (tree / "recipe.yaml").write_text(RECIPE)


def measured(cmd, cwd):
    """Wall seconds and peak RSS (MiB) of `cmd`, through GNU time."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{cmd[1]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return dt, int(out.stderr.strip().splitlines()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--data", default=str(REPO / "target" / "bench-data"))
    args = ap.parse_args()
    data = Path(args.data)
    trash = data / "trash"
    trash.mkdir(parents=True, exist_ok=True)
    synup = str(SYNUP)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        tree = data / f"apply-memory-{n}"
        generate(tree, n)
        local = tree / ".synup" / "local"
        if local.exists():
            local.rename(trash / f"{tree.name}-{time.time_ns()}")
        plan = [synup, "plan", "recipe.yaml", "-o", "plan.json", "--quiet"]
        measured(plan, tree)
        row = {"units": n, "plan": measured(plan, tree)}
        row["apply"] = measured([synup, "apply", "plan.json", "--yes", "--quiet"], tree)
        row["populated"] = measured([synup, "plan", "recipe.yaml", "-o", "plan2.json", "--quiet"], tree)
        row["again"] = measured([synup, "apply", "recipe.yaml", "--yes", "--quiet"], tree)
        rows.append(row)
        print(" | ".join(f"{k} {v[0]:.2f} s {v[1]:.0f} MiB" if isinstance(v, tuple) else f"{v:,} units"
                         for k, v in row.items()), flush=True)
    print("\n| units | plan | peak RSS | apply | peak RSS | plan vs populated target | peak RSS | apply, nothing to do | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = " | ".join(f"{r[k][0]:.2f} s | {r[k][1]:.0f} MiB" for k in ("plan", "apply", "populated", "again"))
        print(f"| {r['units']:,} | {cells} |")
    shutil.rmtree(trash, ignore_errors=True)


if __name__ == "__main__":
    main()
