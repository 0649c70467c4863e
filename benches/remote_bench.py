#!/usr/bin/env python3
"""Remote-source speed: 10,000 small objects on a local moto S3 server.

Reports, per run (interleaved, medians at the end):
- `synup plan` (listing + streaming SHA-1 of every object, cold cache),
- `synup apply` of that recipe into a fresh `synup serve` (synapse target),
  after that plan, as a user runs them (its own plan reads the cache); with
  `--target local`, into the embedded local target instead (a folder on this
  machine, as rclone's copy writes one),
- `synup apply` alone, cold (it plans and applies in one run: one listing,
  one read of each object),
- `rclone copy --transfers 32` of the same prefix to a local folder (unless
  --no-plain-rclone), and the same with `--fast-list` (one listing for the
  whole prefix),
and, for each, the CPU seconds moto spent answering it: moto answers about
one request at a time, so its CPU time is the work a client asked of it,
steadier than wall time on a shared machine.
Target (issue 18): synup's plan + apply at most 1x rclone's copy with --fast-list.

Outputs of a run are moved aside and deleted at the end: on ext4, files made
right after a mass delete are slow to create for minutes.

Usage: benches/remote_bench.py [--runs 3] [--units 5000] [--target synapse|local]
       [--checksum plan|apply] [--no-plain-rclone] [--synup PATH]
Needs: target/release/synup, target/py/moto (made by .ci/run or the tests), rclone.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNUP = os.path.join(ROOT, "target", "release", "synup")
MOTO = os.path.join(ROOT, "target", "py", "moto", "bin")
KEY, SECRET = "bench-key", "bench-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing on {port}")


def seed(endpoint, units):
    code = f"""
import boto3, concurrent.futures as cf
s3 = boto3.client("s3", endpoint_url="{endpoint}", aws_access_key_id="{KEY}", aws_secret_access_key="{SECRET}", region_name="us-east-1")
s3.create_bucket(Bucket="bench")
def put(i):
    s3.put_object(Bucket="bench", Key=f"data/u{{i:05d}}/img.png", Body=b"\\x89PNG" + i.to_bytes(4, "big") * 64)
    s3.put_object(Bucket="bench", Key=f"data/u{{i:05d}}/lab.json", Body=(f'{{{{"unit": {{i}}, "label": "' + "x" * 100 + '"}}}}').encode())
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(put, range({units})))
"""
    subprocess.run([os.path.join(MOTO, "python"), "-c", code], check=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd, env=None, cwd=None, server=None):
    """Wall seconds of `cmd`, and the CPU seconds `server` (a pid) spent meanwhile."""
    before = cpu_seconds(server) if server else 0.0
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{cmd[:3]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return dt, (cpu_seconds(server) - before if server else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--units", type=int, default=5000)
    ap.add_argument("--checksum", choices=["plan", "apply"], default="plan",
                    help="the source's checksum mode: plan (the default) hashes at plan, apply while uploading")
    ap.add_argument("--target", choices=["synapse", "local"], default="synapse",
                    help="apply into a fresh `synup serve` (the default) or the embedded local target")
    ap.add_argument("--synup", help="another synup build to time (default: target/release/synup)")
    ap.add_argument("--no-plain-rclone", action="store_true",
                    help="skip `rclone copy` without --fast-list (a request per folder: the slowest part)")
    args = ap.parse_args()
    global SYNUP
    SYNUP = args.synup or SYNUP
    work = tempfile.mkdtemp(prefix="synup-remote-bench-")
    port = free_port()
    moto = subprocess.Popen([os.path.join(MOTO, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = []
    try:
        wait(port)
        endpoint = f"http://127.0.0.1:{port}"
        seed(endpoint, args.units)
        files = 2 * args.units
        recipe = os.path.join(work, "r.yaml")
        if args.target == "synapse":
            target = "target: {backend: synapse, data_collection: 42}"
        else:
            target = """target: {backend: local, path: .synup/local}
collection:
  file_specifications:
    - {name: image_1, file_type: image, extensions: [.png], is_required: true, is_primary: true}
    - {name: label_1, file_type: document, extensions: [.json], is_required: true}"""
        with open(recipe, "w") as f:
            f.write(f"""version: 1
name: remote-bench
{target}
source:
  path: s3://bench/data
  connection: {{endpoint: "{endpoint}", region: us-east-1}}
  checksum: {args.checksum}
upload: {{workers: 32}}
""")
        seed_file = os.path.join(work, "seed.json")
        with open(seed_file, "w") as f:
            json.dump({"data_collections": [{"id": 42, "name": "bench", "file_specifications": [
                {"name": "image_1", "file_type": "image", "extensions": [".png"], "is_required": True, "is_primary": True},
                {"name": "label_1", "file_type": "document", "extensions": [".json"], "is_required": True}]}]}, f)
        rclone_conf = os.path.join(work, "rclone.conf")
        with open(rclone_conf, "w") as f:
            f.write(f"[moto]\ntype = s3\nprovider = Other\naccess_key_id = {KEY}\nsecret_access_key = {SECRET}\nendpoint = {endpoint}\nregion = us-east-1\n")
        trash = os.path.join(work, "trash")
        os.makedirs(trash)
        moved = iter(range(1 << 30))

        def aside(path):
            if os.path.exists(path):
                os.rename(path, os.path.join(trash, str(next(moved))))

        def start_target(serve_data):
            """Starts a fresh `synup serve` if the target is one; returns its env and process."""
            env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, HOME=work)
            if args.target != "synapse":
                return env, None
            serve = subprocess.Popen([SYNUP, "serve", "--addr", "127.0.0.1:0", "--token", "t", "--data", serve_data,
                                      "--seed", seed_file], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            started.append(serve)
            url = serve.stdout.readline().strip().removeprefix("listening on ")
            env.update(SYNAPSE_HOST=url, SYNAPSE_ACCESS_TOKEN="t")
            return env, serve

        def stop(serve):
            if serve:
                os.kill(serve.pid, signal.SIGKILL)
                serve.wait()

        # rclone's old S3 SDK refuses AWS_CA_BUNDLE with its transport; the endpoint is plain http.
        rclone_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        cols = {k: [] for k in ("plan", "apply", "two", "one", "rclone", "fast")}
        cpu = {k: [] for k in ("two", "one", "rclone", "fast")}
        for r in range(args.runs):
            aside(os.path.join(work, ".synup"))
            env, serve = start_target(os.path.join(work, f"serve-{r}"))
            p, pc = timed([SYNUP, "plan", recipe, "--quiet"], env=env, server=moto.pid)
            a, ac = timed([SYNUP, "apply", recipe, "--yes", "--quiet"], env=env, server=moto.pid)
            stop(serve)
            aside(os.path.join(work, ".synup"))
            env, serve = start_target(os.path.join(work, f"serve-one-{r}"))
            o, oc = timed([SYNUP, "apply", recipe, "--yes", "--quiet"], env=env, server=moto.pid)
            stop(serve)
            c, cc = (float("nan"), float("nan"))
            if not args.no_plain_rclone:
                c, cc = timed(["rclone", "--config", rclone_conf, "copy", "--transfers", "32", "moto:bench/data",
                               os.path.join(work, f"rclone-{r}")], env=rclone_env, server=moto.pid)
            fl, fc = timed(["rclone", "--config", rclone_conf, "copy", "--fast-list", "--transfers", "32",
                            "moto:bench/data", os.path.join(work, f"rclone-fast-{r}")], env=rclone_env, server=moto.pid)
            for k, v in (("plan", p), ("apply", a), ("two", p + a), ("one", o), ("rclone", c), ("fast", fl)):
                cols[k].append(v)
            for k, v in (("two", pc + ac), ("one", oc), ("rclone", cc), ("fast", fc)):
                cpu[k].append(v)
            print(f"run {r + 1}: synup plan {p:.2f}s ({files / p:.0f} obj/s) + apply {a:.2f}s = {p + a:.2f}s "
                  f"({(p + a) / fl:.2f}x), apply alone {o:.2f}s ({o / fl:.2f}x) | rclone copy {c:.2f}s, "
                  f"with --fast-list {fl:.2f}s | moto CPU: plan+apply {pc + ac:.1f}s, apply alone {oc:.1f}s, "
                  f"rclone {cc:.1f}s, --fast-list {fc:.1f}s", flush=True)
        m = {k: statistics.median(v) for k, v in cols.items()}
        mc = {k: statistics.median(v) for k, v in cpu.items()}
        print(f"median: plan {m['plan']:.2f}s, apply {m['apply']:.2f}s, plan+apply {m['two']:.2f}s, apply alone "
              f"{m['one']:.2f}s; rclone {m['rclone']:.2f}s, --fast-list {m['fast']:.2f}s; / rclone --fast-list: "
              f"plan+apply {m['two'] / m['fast']:.2f}x, apply alone {m['one'] / m['fast']:.2f}x "
              f"(per-run ratios: {', '.join(f'{t / f:.2f}' for t, f in zip(cols['two'], cols['fast']))} and "
              f"{', '.join(f'{t / f:.2f}' for t, f in zip(cols['one'], cols['fast']))})")
        print(f"moto CPU, median: plan+apply {mc['two']:.1f}s, apply alone {mc['one']:.1f}s, rclone {mc['rclone']:.1f}s, "
              f"--fast-list {mc['fast']:.1f}s")
    finally:
        for p in started + [moto]:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
