#!/usr/bin/env python3
"""What a killed remote listing costs the next plan: a flat prefix of many
objects on a local moto S3 server, listed by `synup plan` (checksum: apply,
so listing is all a plan asks of the store).

Per run (interleaved, medians at the end):
- a whole plan, cold (no journal): its wall time and moto's CPU seconds;
- with --before BINARY, the same plan by that build (journaling's cost);
- a plan killed (SYNUP_CRASH_AT=listed:K, half the objects by default) and
  the plan after it, which goes on from the journal: its time and moto's CPU
  against the whole plan's.
moto answers one request at a time, so its CPU is the work a client asked of
it, steadier than wall time on a shared machine.

Usage: benches/listing_resume.py [--objects 40000] [--runs 3] [--kill-at N]
       [--before PATH]
Needs: target/release/synup, target/py/moto (made by .ci/run or the tests).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_bench import KEY, MOTO, SECRET, SYNUP, cpu_seconds, free_port, wait  # noqa: E402


def seed(endpoint, objects):
    code = f"""
import boto3, concurrent.futures as cf
s3 = boto3.client("s3", endpoint_url="{endpoint}", aws_access_key_id="{KEY}", aws_secret_access_key="{SECRET}", region_name="us-east-1")
s3.create_bucket(Bucket="bench")
def put(i):
    s3.put_object(Bucket="bench", Key=f"flat/u{{i // 2:06d}}/" + ("img.png" if i % 2 == 0 else "lab.json"), Body=b"x")
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(put, range({objects})))
"""
    subprocess.run([os.path.join(MOTO, "python"), "-c", code], check=True)


def timed(cmd, env, cwd, server, ok=(0,)):
    import time
    before = cpu_seconds(server)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode not in ok:
        sys.exit(f"{cmd[:3]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return dt, cpu_seconds(server) - before, out.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=40000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kill-at", type=int, default=0, help="objects journaled before the kill (default: half)")
    ap.add_argument("--before", help="another synup build, timed on the whole plan beside this one")
    args = ap.parse_args()
    kill_at = args.kill_at or args.objects // 2
    work = tempfile.mkdtemp(prefix="synup-resume-bench-")
    port = free_port()
    moto = subprocess.Popen([os.path.join(MOTO, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(port)
        endpoint = f"http://127.0.0.1:{port}"
        seed(endpoint, args.objects)
        with open(os.path.join(work, "r.yaml"), "w") as f:
            f.write(f"""version: 1
name: resume-bench
target: {{backend: local}}
collection:
  file_specifications:
    - {{name: image_1, file_type: image, extensions: [.png], is_required: true, is_primary: true}}
    - {{name: label_1, file_type: document, extensions: [.json], is_required: true}}
source:
  path: s3://bench/flat
  connection: {{endpoint: "{endpoint}", region: us-east-1}}
  checksum: apply
""")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, HOME=work)
        trash = os.path.join(work, "trash")
        os.makedirs(trash)
        moved = iter(range(1 << 30))

        def aside():
            state = os.path.join(work, ".synup")
            if os.path.exists(state):
                os.rename(state, os.path.join(trash, str(next(moved))))

        plan = ["plan", "r.yaml", "--quiet", "-o", "plan.json"]
        cols = {k: [] for k in ("whole", "before", "killed", "resumed")}
        cpu = {k: [] for k in cols}
        for r in range(args.runs):
            runs = [("whole", SYNUP, None)]
            if args.before:
                runs.append(("before", args.before, None))
            runs.append(("killed", SYNUP, f"listed:{kill_at}"))
            for name, binary, crash in runs:
                aside()
                e = dict(env, SYNUP_CRASH_AT=crash) if crash else env
                t, c, _ = timed([binary] + plan, e, work, moto.pid, ok=(-9,) if crash else (0,))
                cols[name].append(t)
                cpu[name].append(c)
            t, c, err = timed([SYNUP] + plan, env, work, moto.pid)
            if "went on with a listing" not in err:
                sys.exit(f"the plan after the kill did not go on from the journal: {err}")
            cols["resumed"].append(t)
            cpu["resumed"].append(c)
            line = ", ".join(f"{k} {cols[k][-1]:.2f}s (moto {cpu[k][-1]:.1f}s)" for k in cols if cols[k])
            print(f"run {r + 1}: {line}", flush=True)
        m = {k: statistics.median(v) for k, v in cols.items() if v}
        mc = {k: statistics.median(v) for k, v in cpu.items() if v}
        print(f"median ({args.objects} objects, killed after {kill_at}): whole plan {m['whole']:.2f}s "
              f"(moto {mc['whole']:.1f}s); plan after the kill {m['resumed']:.2f}s "
              f"= {m['resumed'] / m['whole']:.2f}x the whole (moto {mc['resumed'] / mc['whole']:.2f}x); "
              f"killed + after {m['killed'] + m['resumed']:.2f}s = {(m['killed'] + m['resumed']) / m['whole']:.2f}x")
        if "before" in m:
            print(f"whole plan, this build / --before: {m['whole'] / m['before']:.2f}x "
                  f"({m['whole']:.2f}s / {m['before']:.2f}s; moto {mc['whole']:.1f}s / {mc['before']:.1f}s)")
    finally:
        if moto.poll() is None:
            os.kill(moto.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
