#!/usr/bin/env python3
"""Is loading a recipe linear in its size? (issue 16: a 10 MB recipe took 45 s.)

Generates recipes whose size doubles (a `static` block of N fields in YAML,
the same in TOML, N file rules in YAML) and times `synup validate` on each,
median of --runs. Linear loading keeps microseconds per field flat as N
doubles; a quadratic step doubles it. YAML stops at serde-saphyr's node
budget (250,000 nodes), which synup keeps and reports as
`synup::recipe::too_large`.

usage: benches/recipe_load_bench.py [--binary target/release/synup] [--runs 3]
"""
import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HEAD = """version: 1
name: big
collection:
  file_specifications:
    - {name: image_1, file_type: image, extensions: [.png], is_required: true, is_primary: true}
source: {path: .}
"""

TOML_HEAD = """version = 1
name = "big"
[collection]
file_specifications = [{name = "image_1", file_type = "image", extensions = [".png"], is_required = true, is_primary = true}]
[source]
path = "."
"""


def yaml_static(n):
    return HEAD + "metadata:\n  - static:\n" + "".join(
        f"      field_{i:07d}: value number {i}\n" for i in range(n))


def toml_static(n):
    return TOML_HEAD + "[[metadata]]\n[metadata.static]\n" + "".join(
        f'field_{i:07d} = "value number {i}"\n' for i in range(n))


def yaml_rules(n):
    return HEAD + "file_rules:\n" + "".join(
        f'  - {{pattern: "dir_{i}/**/*.png", spec: image_1}}\n' for i in range(n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/synup")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    binary = str(Path(args.binary).resolve())
    shapes = [
        ("yaml static", "r.yaml", yaml_static, [15_000, 30_000, 60_000, 120_000]),
        ("toml static", "r.toml", toml_static, [30_000, 60_000, 120_000, 240_000]),
        ("yaml rules", "r.yaml", yaml_rules, [5_000, 10_000, 20_000, 40_000]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, make, sizes in shapes:
            for n in sizes:
                path = Path(tmp) / name
                path.write_text(make(n))
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    out = subprocess.run([binary, "validate", str(path)],
                                         capture_output=True, text=True)
                    times.append(time.perf_counter() - t)
                med = statistics.median(times)
                status = "ok" if out.returncode == 0 else out.stderr.split("\n")[0]
                print(f"{label:12} {n:>8} fields {path.stat().st_size / 1e6:6.1f} MB "
                      f"{med:7.3f} s  {med / n * 1e6:6.2f} µs/field  {status}")


if __name__ == "__main__":
    main()
