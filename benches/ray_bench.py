#!/usr/bin/env python3
"""Sharded apply on a local Ray head: 10,000 units into `synup serve`.

For each run, a fresh `synup serve` (release build) and a fresh copy of the
collection; the same saved plan of N units (2 small files each) is applied
  - unsharded (`synup apply PLAN --yes`), and
  - with `--ray DASHBOARD --shards K` for K in 1, 2, 4,
interleaved run by run. The medians are reported, with the Ray overhead: the
time from starting the driver to the first shard job RUNNING (packaging the
binary and the plan, uploading them, submitting, Ray starting the job), read
from Ray's own job timestamps.

Usage: benches/ray_bench.py [--units 10000] [--runs 3]
Needs: target/release/synup and target/py/ray (the test suite makes it).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNUP = os.path.join(ROOT, "target", "release", "synup")
RAY = os.path.join(ROOT, "target", "py", "ray", "bin", "ray")
TOKEN = "bench-token"
SEED = {"data_collections": [{"id": 42, "name": "bench", "file_specifications": [
    {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": True, "is_primary": True},
    {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": True}]}]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def serve(work, tag):
    port = free_port()
    data = os.path.join(work, f"serve-{tag}")
    with open(os.path.join(work, "seed.json"), "w") as f:
        json.dump(SEED, f)
    p = subprocess.Popen([SYNUP, "serve", "--addr", f"127.0.0.1:{port}", "--token", TOKEN,
                          "--data", data, "--seed", os.path.join(work, "seed.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdout.readline()
    return p, f"http://127.0.0.1:{port}", data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ray-bench-")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    gcs, dash = free_port(), free_port()
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    head = subprocess.Popen([RAY, "start", "--head", "--block", "--num-cpus=2", "--disable-usage-stats",
                             "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1",
                             f"--port={gcs}", f"--dashboard-port={dash}", f"--temp-dir={ray_tmp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    dashboard = f"http://127.0.0.1:{dash}"
    try:
        wait_http(dashboard + "/api/jobs/")
        for i in range(args.units):
            d = os.path.join(work, "data", f"u{i:05d}")
            os.makedirs(d)
            with open(os.path.join(d, "img.png"), "w") as f:
                f.write(f"png {i}")
            with open(os.path.join(d, "lab.json"), "w") as f:
                f.write(f'{{"i": {i}}}')
        with open(os.path.join(work, "r.yaml"), "w") as f:
            f.write("version: 1\nname: b\ntarget: {backend: synapse, data_collection: 42}\n"
                    "source: {path: data}\nupload: {workers: 32, batch_size: 100}\n")
        times = {k: [] for k in ["unsharded", "ray-1", "ray-2", "ray-4"]}
        overhead = {k: [] for k in ["ray-1", "ray-2", "ray-4"]}
        for run in range(args.runs):
            for kind in times:
                p, url, data = serve(work, f"{kind}-{run}")
                e = dict(os.environ, SYNAPSE_HOST=url, SYNAPSE_ACCESS_TOKEN=TOKEN)
                shutil.rmtree(os.path.join(work, ".synup"), ignore_errors=True)
                subprocess.run([SYNUP, "plan", "r.yaml", "-o", "p.json", "--quiet"], cwd=work, env=e,
                               check=True, capture_output=True)
                cmd = [SYNUP, "apply", "p.json", "--yes", "--quiet"]
                if kind != "unsharded":
                    cmd = [SYNUP, "apply", "p.json", "--quiet", "--ray", dashboard,
                           "--shards", kind.split("-")[1]]
                t0 = time.time()
                out = subprocess.run(cmd, cwd=work, env=e, capture_output=True, text=True)
                dt = time.time() - t0
                if out.returncode != 0:
                    raise SystemExit(f"{kind}: {out.stderr}")
                count = json.load(urllib.request.urlopen(urllib.request.Request(
                    f"{url}/data_units/?data_collection=42&page_size=1",
                    headers={"Synapse-Access-Token": f"Token {TOKEN}"})))["count"]
                assert count == args.units, (kind, count)
                times[kind].append(dt)
                if kind != "unsharded":
                    ids = [l.split("submitted as ")[1] for l in out.stderr.splitlines() if "submitted as" in l]
                    starts = []
                    for i in ids:
                        j = json.load(urllib.request.urlopen(f"{dashboard}/api/jobs/{i}"))
                        starts.append(j["start_time"] / 1000.0)
                    overhead[kind].append(min(starts) - t0)
                print(f"run {run + 1} {kind}: {dt:.1f}s", flush=True)
                os.kill(p.pid, signal.SIGTERM)
                p.wait()
                shutil.rmtree(data, ignore_errors=True)
        base = statistics.median(times["unsharded"])
        print(f"\n{args.units} units ({2 * args.units} files), medians of {args.runs}:")
        for kind, ts in times.items():
            m = statistics.median(ts)
            extra = ""
            if kind in overhead:
                extra = f", submission overhead {statistics.median(overhead[kind]):.1f}s (driver start to first job start)"
            print(f"  {kind:<10} {m:6.1f}s  ({m / base:.2f}x unsharded){extra}")
    finally:
        head.terminate()
        head.wait()
        subprocess.run([RAY, "stop", "--force"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
