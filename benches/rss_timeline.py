#!/usr/bin/env python3
"""Runs a command and samples its resident memory every 10 ms (Linux /proc).

Prints `seconds:MiB` every half second, then the peak: where a process
holds its memory over time, which `/usr/bin/time -f %M` (the peak alone)
cannot show. Used for apply's memory at 1M units (README, "Apply's own
memory"): `python3 benches/rss_timeline.py target/release/synup apply plan.json --yes --quiet`.
"""
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: rss_timeline.py COMMAND [ARGS...]")
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    peak, last, rss, line = 0, -1, 0, []
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for l in f:
                    if l.startswith("VmRSS"):
                        rss = int(l.split()[1]) // 1024
        except OSError:
            break
        peak = max(peak, rss)
        half = int((time.time() - t0) * 2)
        if half != last:
            line.append(f"{half / 2:.1f}:{rss}")
            last = half
        time.sleep(0.01)
    print(" ".join(line))
    print(f"peak {peak} MiB, exit {p.wait()}")


if __name__ == "__main__":
    main()
