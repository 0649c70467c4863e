#!/usr/bin/env python3
"""Benchmark `synup plan` and `synup apply` against their baselines.

Generates seed-style trees (pattern 1 nested folders, pattern 3 flat folder)
with a metadata sheet of one row per unit, then times, in the same run:
  - the seed's method (benches/seed_baseline.py: pathlib + openpyxl),
  - `synup plan` with no `.synup/` (every file hashed, the sheet parsed,
    every folder read),
  - `find DIR -type f -print0 | xargs -0 sha1sum` on the same tree,
  - `synup plan` with warm caches (checksums, the parsed sheet, folder
    listings: what a second plan of an unchanged tree finds),
and, with --apply, in the same run:
  - `cp -r` of the tree onto the same disk,
  - `synup apply --yes` into an empty local target,
  - `synup apply` again (nothing to do) against a warm `synup plan`,
and reports medians, ratios and peak RSS. Page cache is warm for all of them.

usage: benches/plan_bench.py [--units 100000] [--runs 3] [--data bench-data]
       [--patterns 1,3] [--skip-seed] [--apply]
Needs a release build (`cargo build --release`) and openpyxl (installed into
DATA/venv on first use).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def venv_python(data: Path) -> str:
    venv = data / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "openpyxl"], check=True)
    return str(py)


def generate(data: Path, pattern: str, units: int, py: str) -> Path:
    tree = data / f"p{pattern}-{units}"
    done = tree / ".generated"
    if done.exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    src = tree / "data"
    src.mkdir(parents=True)
    label = '{"boxes": [[12, 40, 128, 96]], "labels": ["nodule"], "reviewer": "r%d"}\n'
    for i in range(units):
        key = f"patient_{i:07d}"
        img = (b"\x89PNG\r\n\x1a\n" + key.encode() * 12)[:300]
        if pattern == "1":
            d = src / key
            d.mkdir()
            (d / "image.png").write_bytes(img + bytes([i % 251]))
            (d / "label.json").write_text(label % i)
            if i % 10 < 3:
                (d / "scan.dcm").write_bytes(bytes(128) + b"DICM" + key.encode() * 20)
        else:
            (src / f"{key}.png").write_bytes(img + bytes([i % 251]))
            (src / f"{key}.json").write_text(label % i)
            if i % 10 < 3:
                (src / f"{key}.dcm").write_bytes(bytes(128) + b"DICM" + key.encode() * 20)
    script = (
        "import openpyxl,sys,datetime\n"
        "wb=openpyxl.Workbook(write_only=True);ws=wb.create_sheet('Sheet1')\n"
        "ws.append(['patient_id','age','sex','site','scan_date'])\n"
        f"for i in range({units}):\n"
        "    ws.append([f'patient_{i:07d}', 20+i%60, 'male' if i%2 else 'female', 'Seoul', datetime.date(2024,1,1)+datetime.timedelta(days=i%300)])\n"
        f"wb.save('{tree}/meta.xlsx')\n"
    )
    subprocess.run([py, "-c", script], check=True)
    (tree / "recipe.yaml").write_text(
        f"""version: 1
name: bench-p{pattern}
collection:
  file_specifications:
    - {{name: image_1, file_type: image, extensions: [.png, .jpg], is_required: true, is_primary: true}}
    - {{name: label_1, file_type: document, extensions: [.json], is_required: true}}
    - {{name: dicom_1, file_type: medical, extensions: [.dcm], is_required: false}}
  data_unit_meta_schema:
    type: object
    required: [patient_id, age]
    properties: {{age: {{type: integer, minimum: 0}}, scan_date: {{type: string, format: date}}}}
source: {{path: data}}
metadata:
  - excel: meta.xlsx
    key_column: patient_id
    columns: {{age: integer, scan_date: date}}
"""
    )
    done.write_text("ok\n")
    return tree


def timed(cmd, cwd=None, shell=False):
    """(seconds, peak RSS in MiB, stdout) of one run, via GNU time."""
    if shell:
        full = ["/usr/bin/time", "-f", "%M", "bash", "-c", cmd]
    else:
        full = ["/usr/bin/time", "-f", "%M"] + cmd
    t0 = time.perf_counter()
    p = subprocess.run(full, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 2, 3):
        sys.exit(f"command failed ({p.returncode}): {cmd}\n{p.stderr[-2000:]}")
    rss_kb = int(p.stderr.strip().splitlines()[-1])
    return dt, rss_kb / 1024, p.stdout


def median_of(runs, fn):
    results = [fn() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results), results[-1][2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", default=str(REPO / "bench-data"))
    ap.add_argument("--patterns", default="1,3")
    ap.add_argument("--skip-seed", action="store_true")
    ap.add_argument("--apply", action="store_true", help="also benchmark apply against cp -r")
    args = ap.parse_args()
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    synup = REPO / "target" / "release" / "synup"
    if not synup.exists():
        sys.exit("build first: cargo build --release")
    py = venv_python(data)
    rows = []
    for pattern in args.patterns.split(","):
        tree = generate(data, pattern, args.units, py)
        files = sum(1 for _ in (tree / "data").rglob("*") if _.is_file()) if args.units <= 200_000 else None
        # What a user runs: the JSON plan to a file, the text summary to stdout.
        plan = [str(synup), "plan", "recipe.yaml", "-o", "plan.json", "--quiet"]
        # Warm the page cache once so every contender reads from memory.
        subprocess.run(f"find {tree}/data -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)

        def cold():
            shutil.rmtree(tree / ".synup", ignore_errors=True)
            return timed(plan, cwd=tree)

        shutil.rmtree(tree / ".synup", ignore_errors=True)

        seed = None
        if not args.skip_seed:
            seed = median_of(args.runs, lambda: timed([py, str(REPO / "benches" / "seed_baseline.py"), str(tree / "data"), pattern, str(tree / "meta.xlsx")]))
        sha1sum = median_of(args.runs, lambda: timed(f"find {tree}/data -type f -print0 | xargs -0 sha1sum > /dev/null", shell=True))
        c = median_of(args.runs, cold)
        timed(plan, cwd=tree)  # make sure the cache is warm
        w = median_of(args.runs, lambda: timed(plan, cwd=tree))
        applied = None
        if args.apply:
            apply = [str(synup), "apply", "recipe.yaml", "--yes", "--quiet"]
            copy = data / "cp-copy"

            def cp():
                shutil.rmtree(copy, ignore_errors=True)
                subprocess.run(["sync"])
                r = timed(f"cp -r {tree}/data {copy} && sync", shell=True)
                shutil.rmtree(copy, ignore_errors=True)
                return r

            def fresh_apply():
                shutil.rmtree(tree / ".synup" / "local", ignore_errors=True)
                shutil.rmtree(tree / ".synup" / "journal", ignore_errors=True)
                subprocess.run(["sync"])
                return timed(apply, cwd=tree)

            cp_r = median_of(args.runs, cp)
            full = median_of(args.runs, fresh_apply)
            plan_full = median_of(args.runs, lambda: timed(plan, cwd=tree))
            noop = median_of(args.runs, lambda: timed(apply, cwd=tree))
            applied = (cp_r, full, plan_full, noop)
        rows.append((pattern, files, seed, sha1sum, c, w, applied))

    print(f"\nsynup plan benchmark: {args.units} units, medians of {args.runs} runs, warm page cache, {os.cpu_count()} cores")
    for pattern, files, seed, sha1sum, c, w, applied in rows:
        print(f"\npattern {pattern} ({files if files else '?'} files, {args.units}-row xlsx)")
        if seed:
            print(f"  seed method (pathlib+openpyxl)   {seed[0]:7.2f} s   peak {seed[1]:7.0f} MiB")
        print(f"  find | xargs sha1sum             {sha1sum[0]:7.2f} s")
        print(f"  synup plan, cold caches          {c[0]:7.2f} s   peak {c[1]:7.0f} MiB   = {c[0] / sha1sum[0]:.2f}x sha1sum")
        line = f"  synup plan, warm caches          {w[0]:7.2f} s   peak {w[1]:7.0f} MiB"
        if seed:
            line += f"   seed/synup = {seed[0] / w[0]:.1f}x"
        print(line)
        if applied:
            cp_r, full, plan_full, noop = applied
            print(f"  cp -r (+ sync)                   {cp_r[0]:7.2f} s")
            print(f"  synup apply, empty target        {full[0]:7.2f} s   peak {full[1]:7.0f} MiB   = {full[0] / cp_r[0]:.2f}x cp -r")
            print(f"  synup plan, target populated     {plan_full[0]:7.2f} s   peak {plan_full[1]:7.0f} MiB")
            print(f"  synup apply, nothing to do       {noop[0]:7.2f} s   peak {noop[1]:7.0f} MiB   = {noop[0] / plan_full[0]:.2f}x plan")


if __name__ == "__main__":
    main()
