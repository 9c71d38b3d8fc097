#!/usr/bin/env python3
"""Benchmark ptpfs against the simulated camera over PTP/IP with a link model.

Starts the simulator (a 10,000-object card in 100 folders plus one big file)
behind the PTP/IP server in this process, mounts ptpfs in a subprocess, and
measures with real tools:

* ``ls -lR`` wall time and PTP transactions, per profile;
* sequential ``cat`` of the big file: MB/s and ratio to the link bandwidth;
* ``head -c 65536`` of it: bytes moved over the link and time;
* ``cp`` of a file of the same size into the mount: MB/s and ratio;
* peak RSS of the ptpfs process during the copies.

Usage: ``scripts/benchmark.py [--quick] [--size BYTES] [--json] [--link limited|unlimited|both]``.
Targets (reported, not asserted): listing transactions <= folders + storages + a few on
capable profiles; read and write >= 0.9 of the link; head <= 1 MiB; peak RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptpfs.sim import make_camera  # noqa: E402
from ptpfs.sim.ptpip_server import PtpipServer  # noqa: E402

MB = 1_000_000


def is_mounted(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


@contextlib.contextmanager
def mounted(spec: str, options: list[str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """ptpfs -f in a subprocess; always unmounted."""
    mnt = tempfile.mkdtemp(prefix="ptpfs-bench-")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpfs_main", "-f", "--device", spec,
                             *options, mnt], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ptpfs did not mount")
            time.sleep(0.05)
        yield mnt, proc
    finally:
        for _ in range(50):
            if not is_mounted(mnt):
                break
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
            time.sleep(0.1)
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.rmdir(mnt)


class RssSampler:
    """Samples VmRSS of a process; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(cmd: list[str], **kw: Any) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - start


def bench_listing(profile: str, folders: int, per_folder: int, bandwidth: float | None,
                  latency: float) -> dict[str, Any]:
    camera = make_camera(None, profile, folders=folders, files_per_folder=per_folder,
                         jpeg_size=20_000, raw_size=40_000, bandwidth=bandwidth, latency=latency)
    server = PtpipServer(camera, "127.0.0.1", 0)
    server.start()
    try:
        with mounted(f"ptpip:127.0.0.1:{server.port}", []) as (mnt, _proc):
            before = camera.stats.transactions
            start = time.monotonic()
            out = subprocess.run(["ls", "-lR", mnt], check=True, capture_output=True, text=True)
            elapsed = time.monotonic() - start
            used = camera.stats.transactions - before
            files = sum(1 for line in out.stdout.splitlines() if line.startswith("-"))
    finally:
        server.stop()
    storages = 2
    return {"profile": profile, "objects": files, "folders": folders + 1, "seconds": elapsed,
            "transactions": used, "target": folders + 1 + storages + 5}


def bench_transfer(profile: str, size: int, bandwidth: float | None,
                   latency: float, workdir: str) -> dict[str, Any]:
    camera = make_camera(None, profile, folders=1, files_per_folder=2, jpeg_size=100_000,
                         raw_size=100_000, big_file=size, bandwidth=bandwidth, latency=latency)
    server = PtpipServer(camera, "127.0.0.1", 0)
    server.start()
    result: dict[str, Any] = {"profile": profile, "size": size,
                              "bandwidth": bandwidth, "latency": latency}
    try:
        with mounted(f"ptpip:127.0.0.1:{server.port}", []) as (mnt, proc):
            big = os.path.join(mnt, "SD1/DCIM/100CANON/MVI_9999.MP4")
            with RssSampler(proc.pid) as rss:
                before = camera.stats.bytes_out
                t = timed(["head", "-c", "65536", big], stdout=subprocess.DEVNULL)
                result["head_bytes"] = camera.stats.bytes_out - before
                result["head_seconds"] = t
                t = timed(["cat", big], stdout=subprocess.DEVNULL)
                result["read_MBps"] = size / t / MB
                src = os.path.join(workdir, "upload.bin")
                block = os.urandom(1 << 20)
                with open(src, "wb") as f:
                    for _ in range(size // len(block)):
                        f.write(block)
                    f.write(block[: size % len(block)])
                t = timed(["cp", src, os.path.join(mnt, "SD2/upload.bin")])
                os.unlink(src)
                result["write_MBps"] = size / t / MB
            result["peak_rss_MB"] = rss.peak / MB
    finally:
        server.stop()
        camera.store.close()
    if bandwidth:
        result["read_ratio"] = result["read_MBps"] * MB / bandwidth
        result["write_ratio"] = result["write_MBps"] * MB / bandwidth
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1_000_000_000, help="big file size (bytes)")
    p.add_argument("--quick", action="store_true", help="64 MB file, 2,000 objects in 20 folders")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--bandwidth", type=float, default=40e6, help="link bytes/s (default 40 MB/s)")
    p.add_argument("--latency", type=float, default=0.001, help="s per transaction (default 1 ms)")
    p.add_argument("--link", choices=("limited", "unlimited", "both"), default="both")
    p.add_argument("--profiles", default="generic,canon-eos,android-mtp")
    p.add_argument("--transfer-profile", default="android-mtp")
    p.add_argument("--workdir", default=tempfile.gettempdir())
    args = p.parse_args(argv)
    folders, per_folder = (20, 100) if args.quick else (100, 100)
    size = 64 * MB if args.quick and args.size == 1_000_000_000 else args.size
    links = []
    if args.link in ("limited", "both"):
        links.append((args.bandwidth, args.latency))
    if args.link in ("unlimited", "both"):
        links.append((None, 0.0))
    report: dict[str, Any] = {"listing": [], "transfer": []}
    for bandwidth, latency in links:
        for profile in args.profiles.split(","):
            r = bench_listing(profile, folders, per_folder, bandwidth, latency)
            r["link"] = "unlimited" if bandwidth is None else f"{bandwidth / MB:g} MB/s {latency * 1e3:g} ms"
            report["listing"].append(r)
        with tempfile.TemporaryDirectory(dir=args.workdir) as work:
            r = bench_transfer(args.transfer_profile, size, bandwidth, latency, work)
        r["link"] = "unlimited" if bandwidth is None else f"{bandwidth / MB:g} MB/s {latency * 1e3:g} ms"
        report["transfer"].append(r)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"ls -lR of {folders * per_folder} objects in {folders} folders")
    print(f"{'link':<18} {'profile':<12} {'files':>6} {'seconds':>8} {'transactions':>13} {'target':>7}")
    for r in report["listing"]:
        print(f"{r['link']:<18} {r['profile']:<12} {r['objects']:>6} {r['seconds']:>8.2f} "
              f"{r['transactions']:>13} {r['target']:>7}")
    print()
    print(f"transfers of {size / MB:g} MB ({args.transfer_profile})")
    print(f"{'link':<18} {'read MB/s':>9} {'ratio':>6} {'write MB/s':>10} {'ratio':>6} "
          f"{'head bytes':>11} {'head s':>7} {'peak RSS MB':>12}")
    for r in report["transfer"]:
        print(f"{r['link']:<18} {r['read_MBps']:>9.1f} {r.get('read_ratio', float('nan')):>6.2f} "
              f"{r['write_MBps']:>10.1f} {r.get('write_ratio', float('nan')):>6.2f} "
              f"{r['head_bytes']:>11} {r['head_seconds']:>7.3f} {r['peak_rss_MB']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
