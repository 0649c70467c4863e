#!/usr/bin/env python3
"""Peak memory of `synup plan` over a growing S3 prefix on a local moto server.

Seeds N units (2 small objects each) for each N given, then runs a warm `synup plan`
(checksums cached, so it measures listing + planning) under /usr/bin/time and prints
peak RSS and bytes per object.

Usage: target/py/moto/bin/python benches/remote_listing_memory.py 5000 25000 50000
       (CHECKSUM=apply ... lists with `checksum: apply`: nothing is read, nothing cached;
        MEMORY=16MiB ... plans with `--memory 16MiB`, where a listing past 512 KiB spills;
        SYNUPS=old/synup,target/release/synup ... measures each binary in turn, same objects)
Needs target/release/synup and target/py/moto (boto3 comes with moto).
"""
import boto3, concurrent.futures as cf, os, socket, subprocess, sys, time, json, signal, tempfile, shutil
ROOT=os.path.dirname(os.path.dirname(os.path.abspath(__file__))); MOTO=ROOT+"/target/py/moto/bin"
SYNUPS=os.environ.get("SYNUPS", ROOT+"/target/release/synup").split(",")
MEMORY=["--memory",os.environ["MEMORY"]] if os.environ.get("MEMORY") else []
def free_port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
port=free_port()
moto=subprocess.Popen([MOTO+"/moto_server","-H","127.0.0.1","-p",str(port)],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(2)
ep=f"http://127.0.0.1:{port}"
s3=boto3.client("s3",endpoint_url=ep,aws_access_key_id="k",aws_secret_access_key="s",region_name="us-east-1")
s3.create_bucket(Bucket="listing-bench")
work=tempfile.mkdtemp()
try:
    done=0
    for n in [int(x) for x in sys.argv[1:]]:
        def put(i):
            s3.put_object(Bucket="listing-bench",Key=f"d/u{i:06d}/img.png",Body=b"p"+str(i).encode())
            s3.put_object(Bucket="listing-bench",Key=f"d/u{i:06d}/lab.json",Body=b"{}")
        t=time.time()
        with cf.ThreadPoolExecutor(16) as ex: list(ex.map(put, range(done, n)))
        done=n
        with open(work+"/r.yaml","w") as f:
            f.write(f"""version: 1
name: m
collection:
  file_specifications:
    - {{name: image_1, file_type: image, extensions: [.png], is_required: true, is_primary: true}}
    - {{name: label_1, file_type: document, extensions: [.json], is_required: true}}
source:
  path: s3://listing-bench/d
  checksum: {os.environ.get("CHECKSUM", "plan")}
  connection: {{endpoint: "{ep}", region: us-east-1, access_key_id: k, secret_access_key: s}}
""")
        for synup in SYNUPS:
            # warm run: checksums cached, so this measures listing + planning
            subprocess.run([synup,"plan",work+"/r.yaml","--quiet",*MEMORY],capture_output=True)
            t=time.time()
            out=subprocess.run(["/usr/bin/time","-f","%M",synup,"plan",work+"/r.yaml","--quiet","--stats",*MEMORY],capture_output=True,text=True)
            dt=time.time()-t
            rss=int(out.stderr.strip().splitlines()[-1])
            print(f"{synup}: {2*n} objects: warm plan {dt:.1f}s, peak RSS {rss/1024:.1f} MiB, {rss*1024/(2*n):.0f} B/object", flush=True)
finally:
    os.kill(moto.pid, signal.SIGKILL); shutil.rmtree(work)
