#!/usr/bin/env python3
"""Two synup binaries listing the same S3 prefix on a local moto server.

Seeds FOLDERS folders of PER objects each under one prefix, then times
`synup plan` with `checksum: apply` (objects are listed, never read) for
each binary, interleaved, RUNS rounds, and prints the medians and their
ratio. Each round lists into a fresh folder (no listing or checksum cache).
moto answers a page of 1,000 objects in tens of milliseconds, so what a
change in the number of requests, or in their concurrency, does shows here
much as it would against a real store, only smaller.

usage: target/py/moto/bin/python benches/remote_listing_ab.py OLD NEW [FOLDERS] [PER] [RUNS]
       (defaults: 40 folders of 500 objects, 5 rounds)
Needs target/py/moto (made by .ci/run or the tests; boto3 comes with moto).
"""
import concurrent.futures as cf
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_bench import MOTO, free_port  # noqa: E402


def main():
    old, new = sys.argv[1], sys.argv[2]
    folders = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    per = int(sys.argv[4]) if len(sys.argv) > 4 else 500
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    port = free_port()
    moto = subprocess.Popen([os.path.join(MOTO, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="synup-listing-ab-")
    try:
        time.sleep(2)
        ep = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="listing-ab")

        def put(i):
            f, n = divmod(i, per)
            s3.put_object(Bucket="listing-ab", Key=f"d/f{f:04d}/u{n:06d}.png", Body=b"p")

        with cf.ThreadPoolExecutor(16) as ex:
            list(ex.map(put, range(folders * per)))
        recipe = f"""version: 1
name: ab
collection:
  file_specifications:
    - {{name: image_1, file_type: image, extensions: [.png], is_required: true, is_primary: true}}
source:
  path: s3://listing-ab/d
  checksum: apply
  connection: {{endpoint: "{ep}", region: us-east-1, access_key_id: k, secret_access_key: s}}
"""
        times = {"old": [], "new": []}
        plans = {}
        for r in range(runs):
            for name, binary in (("old", old), ("new", new)):
                here = os.path.join(work, f"{name}-{r}")
                os.makedirs(here)
                with open(os.path.join(here, "r.yaml"), "w") as f:
                    f.write(recipe)
                t0 = time.perf_counter()
                out = subprocess.run([binary, "plan", "r.yaml", "-o", "plan.json", "--quiet"], cwd=here,
                                     capture_output=True, text=True)
                times[name].append(time.perf_counter() - t0)
                if out.returncode != 0:
                    sys.exit(f"{name} failed: {out.stderr[-2000:]}")
                with open(os.path.join(here, "plan.json"), "rb") as f:
                    plans[name] = f.read()
        o, n = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"{folders} folders x {per} objects: old {o:.2f} s, new {n:.2f} s (medians of {runs}); "
              f"new/old {n / o:.3f}; last plans {'identical' if plans['old'] == plans['new'] else 'DIFFERENT'}")
    finally:
        os.kill(moto.pid, signal.SIGKILL)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
