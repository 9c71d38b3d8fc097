#!/usr/bin/env python3
"""Wall-clock accuracy of the simulator's link model (figures, not assertions).

The test suite checks the link model on a virtual clock (tests/virtual_clock.py), so it holds
on a loaded machine; this script measures what the model does in real time on this machine:

* ``pace``: 2 MB in 40 chunks at 20 MB/s (ideal 0.100 s);
* overlap: 20 chunks of 2.5 ms wire time with 1 ms of the sender's own work each (ideal
  0.050 s; a model that charged the work as idle wire would take 0.070 s);
* a 3 MB GetObject over PTP/IP at 20 MB/s + 1 ms latency (ideal 0.151 s), median of N.

Usage: ``scripts/link_model_timing.py [--repeat N] [--json]``.  Results far above the ideal
mean the machine is loaded (or the model regressed); below the ideal means a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ptpfs.session import Session
from ptpfs.sim import LinkModel, make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.transport.ptpip import PtpipTransport


def pace_40_chunks() -> float:
    link = LinkModel(bandwidth=20_000_000)
    start = time.monotonic()
    for _ in range(40):
        link.pace(50_000)
    link.drain()
    return time.monotonic() - start


def overlap_20_chunks() -> float:
    link = LinkModel(bandwidth=20_000_000)
    start = time.monotonic()
    for _ in range(20):
        link.pace(50_000)
        time.sleep(0.001)
    link.drain()
    return time.monotonic() - start


def ptpip_get_object(repeat: int) -> list[float]:
    camera = make_camera(None, "android-mtp", folders=1, files_per_folder=1, big_file=3_000_000,
                         bandwidth=20_000_000, latency=0.001)
    server = PtpipServer(camera).start()
    times = []
    try:
        with Session(PtpipTransport("127.0.0.1", server.port)) as session:
            handle = camera.store.find("DCIM/100CANON/MVI_9999.MP4").handle
            for _ in range(repeat):
                start = time.monotonic()
                session.get_object(handle)
                times.append(time.monotonic() - start)
    finally:
        server.stop()
        camera.store.close()
    return times


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    results = {
        "pace_2MB_at_20MBps": {"ideal": 0.100,
                               "median": statistics.median(pace_40_chunks()
                                                           for _ in range(args.repeat))},
        "overlap_20_chunks": {"ideal": 0.050,
                              "median": statistics.median(overlap_20_chunks()
                                                          for _ in range(args.repeat))},
        "ptpip_get_object_3MB": {"ideal": 0.151,
                                 "median": statistics.median(ptpip_get_object(args.repeat))},
    }
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        for name, r in results.items():
            print(f"{name:<24} ideal {r['ideal']:.3f} s  median {r['median']:.3f} s  "
                  f"({r['median'] / r['ideal']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
