#!/usr/bin/env python3
"""How synup's plan and apply grow with the dataset: time and peak RSS per size.

For each size (units; 2.3 files per unit, one sheet row per unit) this
generates a seed-style tree (benches/plan_bench.py's generator), warms the page
cache, and measures in the same run, side by side:
  - `find | xargs sha1sum` of the tree        (the cold-plan baseline)
  - `synup plan`, cold (no `.synup/`)         every file hashed, sheet parsed
  - `synup plan`, warm                        what a second plan finds
  - the seed's method (pathlib + openpyxl)    up to --seed-max units
  - `cp -r` + `sync` of the tree              up to --apply-max units
  - `synup apply` into an empty local target  up to --apply-max units
  - `synup plan` against the populated target up to --apply-max units
and prints a Markdown table (also written to --out). With --readme the table
replaces the one between the `scale-table` markers in README.md. The last two
sizes give a straight-line extrapolation to 10M units.

Trees are kept under --data for the next run unless --delete; a deleted tree
is first moved aside (ext4 slows file creation for minutes after a mass delete,
so the delete happens after every measurement).

usage: benches/scale.py [--sizes 10000,100000,1000000] [--pattern 3] [--runs 3]
       [--seed-max 100000] [--apply-max 1000000] [--delete] [--readme]
Needs a release build (`cargo build --release`).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plan_bench import REPO, generate, timed, venv_python  # noqa: E402

MARK_BEGIN = "<!-- scale-table:begin -->"
MARK_END = "<!-- scale-table:end -->"


def median(runs, fn):
    results = [fn() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def human(units):
    return f"{units // 1_000_000}M" if units % 1_000_000 == 0 else f"{units // 1000}k"


def measure(data, tree, units, runs, args, py, synup):
    row = {"units": units}
    plan = [str(synup), "plan", "recipe.yaml", "-o", "plan.json", "--quiet"]
    subprocess.run(f"find {tree}/data -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    row["files"] = int(subprocess.run(f"find {tree}/data -type f | wc -l", shell=True, capture_output=True, text=True).stdout)
    row["sha1sum"] = median(runs, lambda: timed(f"find {tree}/data -type f -print0 | xargs -0 sha1sum > /dev/null", shell=True))

    def cold():
        aside(data, tree / ".synup")
        return timed(plan, cwd=tree)

    row["cold"] = median(runs, cold)
    row["warm"] = median(runs, lambda: timed(plan, cwd=tree))
    if units <= args.seed_max:
        seed = [py, str(REPO / "benches" / "seed_baseline.py"), str(tree / "data"), args.pattern, str(tree / "meta.xlsx")]
        row["seed"] = median(runs, lambda: timed(seed))
    if units <= args.apply_max:
        copy = data / "scale-cp"
        apply = [str(synup), "apply", "recipe.yaml", "--yes", "--quiet"]

        def cp():
            aside(data, copy)
            subprocess.run(["sync"])
            return timed(f"cp -r {tree}/data {copy} && sync", shell=True)

        def fresh_apply():
            aside(data, tree / ".synup" / "local")
            aside(data, tree / ".synup" / "journal")
            subprocess.run(["sync"])
            return timed(apply, cwd=tree)

        row["cp"] = median(runs, cp)
        aside(data, copy)
        row["apply"] = median(runs, fresh_apply)
        row["populated"] = median(runs, lambda: timed(plan, cwd=tree))
    return row


def aside(data, path):
    """Move `path` into data/trash (deleted by `empty_trash`), if it exists."""
    if path.exists():
        trash = data / "trash"
        trash.mkdir(exist_ok=True)
        path.rename(trash / f"{path.name}-{time.monotonic_ns()}")


def empty_trash(data):
    shutil.rmtree(data / "trash", ignore_errors=True)


def cell(row, key, ratio_to=None, ratio_label=""):
    if key not in row:
        return "–", "–"
    t, rss = row[key]
    text = f"{t:.2f} s"
    if ratio_to and ratio_to in row:
        text += f" ({t / row[ratio_to][0]:.2f}× {ratio_label})"
    return text, f"{rss:.0f} MiB"


def table(rows, pattern, runs):
    lines = [
        f"Pattern {pattern} trees, 2.3 files and one sheet row per unit; release build, "
        f"{os.cpu_count()} cores, page cache warm, median of {runs} run(s) below 1M units and 1 run from 1M "
        "(`python3 benches/scale.py`).",
        "",
        "| units | files | sha1sum | plan cold | plan warm | peak RSS warm | seed method | plan vs populated target | peak RSS | cp -r + sync | apply | peak RSS apply |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cold, _ = cell(r, "cold", "sha1sum", "sha1sum")
        warm, warm_rss = cell(r, "warm")
        seed = "–"
        if "seed" in r:
            seed = f"{r['seed'][0]:.2f} s ({r['seed'][0] / r['warm'][0]:.1f}× warm plan)"
        populated, populated_rss = cell(r, "populated")
        cp, _ = cell(r, "cp")
        apply, apply_rss = cell(r, "apply", "cp", "cp -r")
        lines.append(
            f"| {human(r['units'])} | {r['files']:,} | {r['sha1sum'][0]:.2f} s | {cold} | {warm} | {warm_rss} | {seed} | {populated} | {populated_rss} | {cp} | {apply} | {apply_rss} |"
        )
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        lines.append("")
        lines.append(extrapolate(a, b, "warm", "warm plan"))
        if "apply" in a and "apply" in b:
            lines.append(extrapolate(a, b, "apply", "apply"))
    return "\n".join(lines) + "\n"


def extrapolate(a, b, key, what):
    """A straight line through the two largest sizes, read at 10M units."""
    target = 10_000_000
    du = b["units"] - a["units"]
    t = b[key][0] + (b[key][0] - a[key][0]) / du * (target - b["units"])
    m = b[key][1] + (b[key][1] - a[key][1]) / du * (target - b["units"])
    return (
        f"Extrapolated to 10M units from {human(a['units'])} and {human(b['units'])} (straight line): "
        f"{what} {t:.0f} s, peak RSS {m / 1024:.1f} GiB."
    )


def write_readme(text):
    readme = REPO / "README.md"
    body = readme.read_text()
    if MARK_BEGIN not in body or MARK_END not in body:
        sys.exit(f"README.md has no {MARK_BEGIN} … {MARK_END} markers")
    head, rest = body.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    readme.write_text(f"{head}{MARK_BEGIN}\n{text}{MARK_END}{tail}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--pattern", default="3", help="1: a folder per unit, 3: one flat folder")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement below 1M units")
    ap.add_argument("--seed-max", type=int, default=100_000)
    ap.add_argument("--apply-max", type=int, default=1_000_000)
    ap.add_argument("--data", default=str(REPO / "target" / "bench-data"))
    ap.add_argument("--out", default=str(REPO / "target" / "bench-data" / "scale.md"))
    ap.add_argument("--delete", action="store_true", help="delete each tree once measured")
    ap.add_argument("--readme", action="store_true", help="put the table into README.md")
    args = ap.parse_args()
    synup = REPO / "target" / "release" / "synup"
    if not synup.exists():
        sys.exit("build first: cargo build --release")
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    py = venv_python(data)
    rows = []
    for units in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        tree = generate(data, args.pattern, units, py)
        print(f"{human(units)}: tree ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        runs = args.runs if units < 1_000_000 else 1
        rows.append(measure(data, tree, units, runs, args, py, synup))
        print(table(rows[-1:], args.pattern, args.runs), file=sys.stderr, flush=True)
        aside(data, data / "scale-cp")
        if args.delete:
            aside(data, tree)
        empty_trash(data)
    text = table(rows, args.pattern, args.runs)
    Path(args.out).write_text(text)
    print(text)
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    main()
