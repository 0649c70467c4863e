#!/usr/bin/env python3
"""How `synup serve` answers a client paging through a large collection's
units, as synup's Synapse target and the SDK do (`data_units/?data_collection=
ID&page_size=1000&page=N`, pages in order).

The units are written straight into the serve's catalog with sqlite3 (one
file shared by all, two specs each), so only the paging is timed. Reports
the whole walk's time, and the time of the first, middle and last page;
with --plan, also the time and peak RSS of `synup plan` of a one-unit folder
against that collection (which lists every unit it holds).

Usage: benches/serve_paging.py [--units 200000] [--binary target/release/synup] [--plan]
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fill(catalog, units):
    db = sqlite3.connect(catalog)
    (collection,) = db.execute("SELECT id FROM data_collections").fetchone()
    db.execute("INSERT OR IGNORE INTO files (checksum, size, store_path, created_at) VALUES (?, 1, 'x', 'now')",
               ("0" * 40,))
    # A second, smaller collection first: its units interleave with none of
    # the big one's, but a query that scans every unit pays for them.
    db.execute("INSERT INTO data_collections (id, name, created_at) VALUES (999, 'other', 'now')")
    db.executemany("INSERT INTO data_units (data_collection_id, key, meta, created_at) VALUES (999, ?, '{}', 'now')",
                   ((f"o{i}",) for i in range(units // 10)))
    db.executemany(
        "INSERT INTO data_units (id, data_collection_id, key, meta, created_at) VALUES (?, ?, ?, ?, 'now')",
        ((1_000_000 + i, collection, f"u{i:08d}", json.dumps({"site": "Seoul", "i": i})) for i in range(units)))
    for spec in ("image_1", "label_1"):
        db.execute(
            "INSERT INTO unit_files (data_unit_id, spec, checksum, path, size, is_primary) "
            "SELECT id, ?, ?, key || '/' || ?, 1, ? FROM data_units WHERE data_collection_id = ?",
            (spec, "0" * 40, spec, spec == "image_1", collection))
    db.commit()
    db.close()
    return collection


def plan(binary, work, url):
    """`synup plan` of one unit against collection 42: its time and peak RSS."""
    os.makedirs(os.path.join(work, "src", "u1"))
    for name in ("img.png", "lab.json"):
        with open(os.path.join(work, "src", "u1", name), "w") as f:
            f.write("x")
    with open(os.path.join(work, "r.yaml"), "w") as f:
        f.write("version: 1\nname: paging\ntarget: {backend: synapse, data_collection: 42}\nsource: {path: src}\n")
    env = dict(os.environ, SYNAPSE_HOST=url, SYNAPSE_ACCESS_TOKEN="t", HOME=work)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "plan", "r.yaml", "--quiet", "-o", "plan.json"], cwd=work, env=env,
                         stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"plan failed: {p.stderr.read()[-2000:]}")
    print(f"plan of one unit against the collection: {dt:.2f}s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=200000)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "synup"))
    ap.add_argument("--plan", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="synup-serve-paging-")
    serve = None
    try:
        seed = os.path.join(work, "seed.json")
        with open(seed, "w") as f:
            json.dump({"data_collections": [{"id": 42, "name": "big", "file_specifications": [
                {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": True,
                 "is_primary": True},
                {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": True}]}]}, f)
        data = os.path.join(work, "data")

        def start():
            p = subprocess.Popen([args.binary, "serve", "--addr", "127.0.0.1:0", "--token", "t", "--data", data,
                                  "--seed", seed], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            return p, p.stdout.readline().strip().removeprefix("listening on ")

        serve, _ = start()
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait()
        t0 = time.perf_counter()
        collection = fill(os.path.join(data, "catalog.sqlite"), args.units)
        print(f"wrote {args.units} units in {time.perf_counter() - t0:.1f}s", flush=True)
        serve, url = start()
        times, n, page = [], 0, 1
        while True:
            req = urllib.request.Request(
                f"{url.rstrip('/')}/data_units/?data_collection={collection}&page_size=1000&page={page}",
                headers={"Authorization": "Token t", "SYNAPSE-Tenant": "t"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req) as r:
                body = json.load(r)
            times.append(time.perf_counter() - t0)
            n += len(body["results"])
            if not body.get("next"):
                break
            page += 1
        if n != args.units:
            sys.exit(f"paged {n} units, expected {args.units}")
        print(f"{args.units} units in {page} pages: {sum(times):.2f}s; first page {times[0] * 1000:.1f} ms, "
              f"middle {times[len(times) // 2] * 1000:.1f} ms, last {times[-1] * 1000:.1f} ms, "
              f"median {statistics.median(times) * 1000:.1f} ms", flush=True)
        if args.plan:
            plan(args.binary, work, url)
    finally:
        if serve and serve.poll() is None:
            os.kill(serve.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
