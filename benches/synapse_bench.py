#!/usr/bin/env python3
"""Upload throughput: the official SDK vs `synup apply`, same `synup serve`, same files.

For each run a fresh `synup serve` (release build) gets 5,000 units of 2 small files
(10,000 files). The SDK side is what a data team's script does:
`upload_files_bulk(max_workers=32)` then `create_data_units` in batches of 200.
The synup side is `synup apply` with `upload.workers: 32`. Runs are interleaved
(SDK, synup, SDK, ...) and the medians and their ratio are reported, plus synup's
peak RSS at several file counts (memory should stay flat).

Usage: benches/synapse_bench.py [--runs 3] [--units 5000] [--python PATH]
Needs: target/release/synup (cargo build --release) and a venv with
synapse-sdk==2026.2.17 (default target/py/sdk, made by the test suite).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNUP = os.path.join(ROOT, "target", "release", "synup")
TOKEN = "bench-token"

SDK_SCRIPT = r"""
import json, sys, time, resource
from pathlib import Path
from synapse_sdk.clients.backend import BackendClient
base, token, root, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
client = BackendClient(base, access_token=token)
t0 = time.perf_counter()
paths = []
for i in range(n):
    d = root / f"u{i:05d}"
    paths += [d / "img.png", d / "lab.json"]
res = client.upload_files_bulk(paths, max_workers=32, strategy="presigned")
by = {r.file_key: r.checksum for r in res.results if r.success}
assert len(by) == len(paths), (len(by), len(paths))
units = [{"data_collection": 42, "files": {
            "image_1": {"checksum": by[str(root / f"u{i:05d}" / "img.png")], "path": str(root / f"u{i:05d}" / "img.png")},
            "label_1": {"checksum": by[str(root / f"u{i:05d}" / "lab.json")], "path": str(root / f"u{i:05d}" / "lab.json")}},
          "meta": {"name": f"u{i:05d}"}} for i in range(n)]
created = 0
for b in range(0, n, 200):
    created += len(client.create_data_units(units[b:b + 200]))
assert created == n, created
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

SEED = {"data_collections": [{"id": 42, "name": "bench", "file_specifications": [
    {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": True, "is_primary": True},
    {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": True}]}]}


def make_tree(root, n):
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        d = os.path.join(root, f"u{i:05d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "img.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + i.to_bytes(4, "big") * 64)
        with open(os.path.join(d, "lab.json"), "w") as f:
            json.dump({"unit": i, "label": "x" * 100}, f)


class Serve:
    def __init__(self, work):
        self.data = os.path.join(work, "serve")
        shutil.rmtree(self.data, ignore_errors=True)
        seed = os.path.join(work, "seed.json")
        with open(seed, "w") as f:
            json.dump(SEED, f)
        self.proc = subprocess.Popen([SYNUP, "serve", "--addr", "127.0.0.1:0", "--token", TOKEN,
                                      "--data", self.data, "--seed", seed],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.proc.stdout.readline().strip().removeprefix("listening on ")

    def stop(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def run_sdk(python, work, tree, n):
    s = Serve(work)
    try:
        out = subprocess.run([python, "-c", SDK_SCRIPT, s.url, TOKEN, tree, str(n)],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        s.stop()


def run_synup(work, tree, n):
    s = Serve(work)
    try:
        recipe = os.path.join(work, "bench.yaml")
        with open(recipe, "w") as f:
            f.write(f"""version: 1
name: bench
target: {{backend: synapse, data_collection: 42}}
source: {{path: {tree}}}
upload: {{workers: 32}}
""")
        shutil.rmtree(os.path.join(work, ".synup"), ignore_errors=True)
        env = dict(os.environ, SYNAPSE_HOST=s.url, SYNAPSE_ACCESS_TOKEN=TOKEN, HOME=work)
        t0 = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", SYNUP, "apply", recipe, "--yes", "--quiet",
                              "--report", os.path.join(work, "report.json")],
                             capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            sys.exit(f"synup apply failed: {out.stderr}")
        report = json.load(open(os.path.join(work, "report.json")))
        assert report["units"]["created"] == n, report["units"]
        return {"seconds": dt, "max_rss_kib": int(out.stderr.strip().splitlines()[-1])}
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--units", type=int, default=5000)
    ap.add_argument("--python", default=os.path.join(ROOT, "target", "py", "sdk", "bin", "python"))
    ap.add_argument("--memory-scale", default="2500,5000,10000,20000",
                    help="unit counts at which synup's peak RSS is measured")
    args = ap.parse_args()
    if not os.path.exists(SYNUP):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="synup-bench-")
    try:
        tree = os.path.join(work, "data")
        make_tree(tree, args.units)
        files = 2 * args.units
        sdk, syn = [], []
        for r in range(args.runs):
            a = run_sdk(args.python, work, tree, args.units)
            b = run_synup(work, tree, args.units)
            sdk.append(a)
            syn.append(b)
            print(f"run {r + 1}: sdk {a['seconds']:.2f}s ({files / a['seconds']:.0f} files/s, {a['max_rss_kib'] // 1024} MiB)"
                  f" | synup {b['seconds']:.2f}s ({files / b['seconds']:.0f} files/s, {b['max_rss_kib'] // 1024} MiB)", flush=True)
        if sdk:
            ms = statistics.median(x["seconds"] for x in sdk)
            mu = statistics.median(x["seconds"] for x in syn)
            print(f"median: sdk {files / ms:.0f} files/s, synup {files / mu:.0f} files/s, ratio {ms / mu:.2f}x")
        print("synup peak RSS by size:")
        for n in [int(x) for x in args.memory_scale.split(",") if x]:
            t = os.path.join(work, f"data-{n}")
            make_tree(t, n)
            m = run_synup(work, t, n)
            print(f"  {n} units / {2 * n} files: {m['max_rss_kib'] / 1024:.1f} MiB, {2 * n / m['seconds']:.0f} files/s", flush=True)
            shutil.rmtree(t, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
