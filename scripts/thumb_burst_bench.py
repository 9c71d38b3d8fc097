#!/usr/bin/env python3
"""Does a thumbnail burst starve a foreground copy?  ``cp`` speed with and without one.

    scripts/thumb_burst_bench.py [--bandwidth 40e6] [--size 200e6] [--images 200] [--repeat 3]

The simulated camera serves over PTP/IP on loopback with its link paced to
--bandwidth; ptpfs mounts it in a subprocess (a fresh mount per run, so the
page cache is cold).  A run ``cp``\\ s the big file to /dev/null alone; another
``cp``\\ s it while a file manager's thumbnailer pass runs over a folder of
--images photos: ``scripts/header_reads.py`` (mmap + JPEG markers to the Exif
thumbnail, CR3 boxes to THMB), then ``cat`` of every ``/.ptp/thumbs`` entry.
Prints both speeds, the ratio (target >= 0.70) and what the burst itself cost.
MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from benchmark import mounted  # noqa: E402

from ptpfs.sim import make_camera  # noqa: E402
from ptpfs.sim.ptpip_server import PtpipServer  # noqa: E402

FOLDER = "SD1/DCIM/100CANON"
BIG = f"{FOLDER}/MVI_9999.MP4"


def timed_cp(path: str) -> float:
    start = time.monotonic()
    subprocess.run(["cp", path, "/dev/null"], check=True)
    return time.monotonic() - start


def burst(mnt: str, done: threading.Event, stats: dict[str, float]) -> None:
    folder = os.path.join(mnt, FOLDER)
    names = sorted(n for n in os.listdir(folder) if not n.endswith(".MP4"))
    start = time.monotonic()
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "header_reads.py"),
                    *(os.path.join(folder, n) for n in names)], capture_output=True, check=True)
    thumbs = os.path.join(mnt, ".ptp", "thumbs", FOLDER)
    for name in sorted(os.listdir(thumbs)):
        with open(os.path.join(thumbs, name), "rb") as f:
            f.read()
    stats["burst_s"] = time.monotonic() - start
    stats["files"] = len(names)
    done.set()


def stat_bytes(mnt: str) -> int:
    with open(os.path.join(mnt, ".ptp", "stats")) as f:
        for line in f:
            if line.startswith("bytes_in:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bandwidth", type=float, default=40e6)
    ap.add_argument("--size", type=float, default=200e6, help="the big file's size")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    camera = make_camera(None, "generic", files_per_folder=args.images, jpeg_size=5_000_000,
                         raw_size=20_000_000, big_file=int(args.size), bandwidth=args.bandwidth)
    server = PtpipServer(camera, port=0).start()
    spec = f"ptpip:127.0.0.1:{server.port}"
    solo, shared, ratios = [], [], []
    try:
        for _ in range(args.repeat):
            with mounted(spec, []) as (mnt, _proc):
                os.listdir(os.path.join(mnt, FOLDER))
                solo.append(args.size / timed_cp(os.path.join(mnt, BIG)))
            with mounted(spec, []) as (mnt, _proc):
                os.listdir(os.path.join(mnt, FOLDER))
                before = stat_bytes(mnt)
                done = threading.Event()
                stats: dict[str, float] = {}
                worker = threading.Thread(target=burst, args=(mnt, done, stats))
                worker.start()
                seconds = timed_cp(os.path.join(mnt, BIG))
                worker.join()
                shared.append(args.size / seconds)
                burst_bytes = stat_bytes(mnt) - before - args.size
                ratios.append(shared[-1] / solo[-1])
                print(f"solo {solo[-1] / 1e6:.1f} MB/s, during the burst {shared[-1] / 1e6:.1f} "
                      f"MB/s (ratio {ratios[-1]:.2f}); burst: {int(stats['files'])} files "
                      f"header-read + thumbs in {stats['burst_s']:.1f} s, "
                      f"{burst_bytes / 1e6:.1f} MB moved", flush=True)
    finally:
        server.stop()
        camera.close()
    print(f"median: solo {statistics.median(solo) / 1e6:.1f} MB/s, with the burst "
          f"{statistics.median(shared) / 1e6:.1f} MB/s, ratio {statistics.median(ratios):.2f} "
          f"(target >= 0.70) on a {args.bandwidth / 1e6:.0f} MB/s link")
    return 0


if __name__ == "__main__":
    sys.exit(main())
