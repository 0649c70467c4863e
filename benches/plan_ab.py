#!/usr/bin/env python3
"""Two synup binaries side by side, for a change that must not change plans.

For every recipe in pipelines/: the JSON and text plans of both, compared
byte for byte. For the 100k-unit pattern-1 and pattern-3 trees that
benches/plan_bench.py generates (under target/bench-data): RUNS interleaved
rounds of one cold plan (no .synup/) and two warm ones per binary, with the
median time and peak RSS of each, their ratios, and whether the last plans
are byte-identical.

usage: benches/plan_ab.py OLD_BINARY NEW_BINARY [RUNS]
Build the old one from a worktree, e.g.
  git worktree add /tmp/base <rev> && (cd /tmp/base && CARGO_TARGET_DIR=$PWD/target/base cargo build --release)
"""
import sys, shutil, statistics, subprocess, filecmp, glob, os
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'benches'))
import plan_bench as pb
data = ROOT / 'target' / 'bench-data'
bins = {'old': sys.argv[1], 'new': sys.argv[2]}
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
# Pipelines: JSON and text plans byte for byte.
os.chdir(ROOT / 'pipelines')
for r in sorted(glob.glob('*.yaml') + glob.glob('*.toml')):
    outs = {}
    for k, b in bins.items():
        shutil.rmtree('.synup', ignore_errors=True)
        j = subprocess.run([b, 'plan', r, '--format', 'json', '--quiet'], capture_output=True)
        t = subprocess.run([b, 'plan', r, '--quiet'], capture_output=True)
        outs[k] = (j.stdout, t.stdout, j.returncode)
    print(f"pipeline {r}: json {'identical' if outs['old'][0] == outs['new'][0] else 'DIFFERENT'}, text {'identical' if outs['old'][1] == outs['new'][1] else 'DIFFERENT'} (exit {outs['old'][2]}/{outs['new'][2]})")
shutil.rmtree('.synup', ignore_errors=True)
for pattern in '13':
    tree = data / f'p{pattern}-100000'
    subprocess.run(f"find {tree}/data -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    res = {k: {'cold': [], 'warm': []} for k in bins}
    for i in range(runs):
        for k, b in bins.items():
            shutil.rmtree(tree / '.synup', ignore_errors=True)
            res[k]['cold'].append(pb.timed([b, 'plan', 'recipe.yaml', '-o', f'plan-{k}.json', '--quiet'], cwd=tree))
            res[k]['warm'].append(pb.timed([b, 'plan', 'recipe.yaml', '-o', f'plan-{k}.json', '--quiet'], cwd=tree))
            res[k]['warm'].append(pb.timed([b, 'plan', 'recipe.yaml', '-o', f'plan-{k}.json', '--quiet'], cwd=tree))
    same = filecmp.cmp(tree / 'plan-old.json', tree / 'plan-new.json', shallow=False)
    med = lambda xs: statistics.median(x[0] for x in xs)
    mrss = lambda xs: statistics.median(x[1] for x in xs)
    peak = lambda xs: max(x[1] for x in xs)
    print(f"pattern {pattern}, 100k units: plans {'byte-identical' if same else 'DIFFERENT'}")
    for k in bins:
        c, w = res[k]['cold'], res[k]['warm']
        print(f"  {k}: cold {med(c):.2f} s (RSS median {mrss(c):.0f}, max {peak(c):.0f} MiB); warm {med(w):.2f} s (RSS median {mrss(w):.0f}, max {peak(w):.0f} MiB)")
    print(f"  new/old medians: cold {med(res['new']['cold'])/med(res['old']['cold']):.3f}, warm {med(res['new']['warm'])/med(res['old']['warm']):.3f}, warm RSS {mrss(res['new']['warm'])/mrss(res['old']['warm']):.3f}")
