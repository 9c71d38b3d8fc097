#!/usr/bin/env python3
"""Benchmark ptpfs against the simulated camera over PTP/IP with a link model.

Starts the simulator (a 10,000-object card in 100 folders plus one big file)
behind the PTP/IP server in this process, mounts ptpfs in a subprocess, and
measures with real tools:

* ``ls -lR`` wall time and PTP transactions, per profile;
* per transfer profile, on a fresh mount each run (cold page cache):
  ``head -c 65536`` of the big file (bytes moved over the link, time), a
  sequential ``cat`` of it (MB/s, ratio to the link, bytes moved) and a ``cp``
  of a file of the same size into the mount (MB/s, ratio, split into spooling
  -- until the simulator sees the first upload byte -- and uploading);
* peak RSS of the ptpfs process.

Ratios are the link's ideal time (size / bandwidth) over the measured wall
time, so per-transaction latency, pipeline gaps and the spooling before an
upload all count against them.  The copy's source file is written and
fsync'ed before the mount, and ``sync`` runs before each timed command, so one
measurement's dirty pages do not throttle the next.

Usage: ``scripts/benchmark.py [--quick] [--size BYTES] [--json] [--repeat N]
[--link limited|unlimited|both] [--no-listing] [--transfer-profiles LIST]``.
Targets (reported, not asserted): listing transactions <= folders + storages + a few on
capable profiles; read and write >= 0.9 of the link; head <= 1 MiB; peak RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
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

    def __enter__(self) -> RssSampler:
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
            out = subprocess.run(["ls", "-lR", mnt], capture_output=True, text=True)
            elapsed = time.monotonic() - start
            errors = [line for line in out.stderr.splitlines() if line.strip()]
            used = camera.stats.transactions - before
            files = sum(1 for line in out.stdout.splitlines() if line.startswith("-"))
    finally:
        server.stop()
    storages = 2
    return {"profile": profile, "objects": files, "folders": folders + 1, "seconds": elapsed,
            "transactions": used, "target": folders + 1 + storages + 5,
            "ls_status": out.returncode, "ls_errors": errors[:5]}


class UploadWatch:
    """Notes when the simulator sees the first host-to-device byte of a copy
    (SendObjectInfo), splitting ``cp`` time into spooling and uploading."""

    def __init__(self, camera: Any) -> None:
        self.camera = camera
        self.first_in: float | None = None
        self._base = camera.stats.bytes_in
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.first_in is None:
            if self.camera.stats.bytes_in != self._base:
                self.first_in = time.monotonic()
            self._stop.wait(0.002)

    def __enter__(self) -> UploadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_source(path: str, size: int) -> None:
    """A file of *size* random bytes, flushed to disk so its dirty pages do
    not throttle the copy being measured (it stays in the page cache)."""
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
        f.flush()
        os.fsync(f.fileno())


def transfer_once(camera: Any, server: PtpipServer, size: int, src: str,
                  run: int) -> dict[str, Any]:
    """One fresh mount (cold page cache): head, cat and cp with their costs."""
    result: dict[str, Any] = {}
    with mounted(f"ptpip:127.0.0.1:{server.port}", []) as (mnt, proc):
        big = os.path.join(mnt, "SD1/DCIM/100CANON/MVI_9999.MP4")
        with RssSampler(proc.pid) as rss:
            before = camera.stats.bytes_out
            t = timed(["head", "-c", "65536", big], stdout=subprocess.DEVNULL)
            result["head_bytes"] = camera.stats.bytes_out - before
            result["head_seconds"] = t
            os.sync()
            before = camera.stats.bytes_out
            result["read_seconds"] = timed(["cat", big], stdout=subprocess.DEVNULL)
            result["read_moved"] = camera.stats.bytes_out - before
            os.sync()
            before = camera.stats.bytes_in
            with UploadWatch(camera) as watch:
                start = time.monotonic()
                subprocess.run(["cp", src, os.path.join(mnt, f"SD2/upload{run}.bin")], check=True)
                end = time.monotonic()
            result["write_seconds"] = end - start
            result["write_moved"] = camera.stats.bytes_in - before
            first = watch.first_in if watch.first_in is not None else end
            result["spool_seconds"] = first - start
            result["upload_seconds"] = end - first
        result["peak_rss_MB"] = rss.peak / MB
    return result


def bench_transfer(profile: str, size: int, bandwidth: float | None,
                   latency: float, workdir: str, repeat: int = 1) -> dict[str, Any]:
    """*repeat* runs of :func:`transfer_once`; per-run figures and their medians."""
    camera = make_camera(None, profile, folders=1, files_per_folder=2, jpeg_size=100_000,
                         raw_size=100_000, big_file=size, bandwidth=bandwidth, latency=latency,
                         uploads=True)   # canon-eos refuses uploads by default, as the R6
    server = PtpipServer(camera, "127.0.0.1", 0)
    server.start()
    src = os.path.join(workdir, "upload.bin")
    runs = []
    try:
        make_source(src, size)
        for run in range(repeat):
            r = transfer_once(camera, server, size, src, run)
            r["read_MBps"] = size / r["read_seconds"] / MB
            r["write_MBps"] = size / r["write_seconds"] / MB
            if bandwidth:
                ideal = size / bandwidth
                r["read_ratio"] = ideal / r["read_seconds"]
                r["write_ratio"] = ideal / r["write_seconds"]
                r["upload_ratio"] = ideal / r["upload_seconds"]
            runs.append(r)
    finally:
        server.stop()
        camera.store.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(src)
    result: dict[str, Any] = {"profile": profile, "size": size, "bandwidth": bandwidth,
                              "latency": latency, "runs": runs}
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        result[key] = statistics.median(values) if key != "peak_rss_MB" else values[-1]
        if key.endswith("_ratio"):
            result[key + "_min"] = values[0]
    result["head_bytes"] = max(r["head_bytes"] for r in runs)
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
    p.add_argument("--transfer-profiles", default="generic,canon-eos,android-mtp")
    p.add_argument("--repeat", type=int, default=1, help="runs per transfer (fresh mount each)")
    p.add_argument("--no-listing", action="store_true", help="transfers only")
    p.add_argument("--workdir", default=tempfile.gettempdir())
    args = p.parse_args(argv)
    folders, per_folder = (20, 100) if args.quick else (100, 100)
    size = 64 * MB if args.quick and args.size == 1_000_000_000 else args.size
    links = []
    if args.link in ("limited", "both"):
        links.append((args.bandwidth, args.latency))
    if args.link in ("unlimited", "both"):
        links.append((None, 0.0))
    report: dict[str, Any] = {"listing": [], "transfer": [], "cpus": os.cpu_count(),
                              "loadavg_start": os.getloadavg()}
    for bandwidth, latency in links:
        link = "unlimited" if bandwidth is None else f"{bandwidth / MB:g} MB/s {latency * 1e3:g} ms"
        for profile in [] if args.no_listing else args.profiles.split(","):
            r = bench_listing(profile, folders, per_folder, bandwidth, latency)
            r["link"] = link
            report["listing"].append(r)
        for profile in args.transfer_profiles.split(","):
            with tempfile.TemporaryDirectory(dir=args.workdir) as work:
                r = bench_transfer(profile, size, bandwidth, latency, work, max(1, args.repeat))
            r["link"] = link
            report["transfer"].append(r)
            if not args.json:
                print(f"[{link} {profile}] read {r['read_MBps']:.1f} MB/s, "
                      f"write {r['write_MBps']:.1f} MB/s", file=sys.stderr)
    report["loadavg_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if report["listing"]:
        print(f"ls -lR of {folders * per_folder} objects in {folders} folders")
        print(f"{'link':<18} {'profile':<12} {'files':>6} {'seconds':>8} {'transactions':>13} "
              f"{'target':>7}")
        for r in report["listing"]:
            print(f"{r['link']:<18} {r['profile']:<12} {r['objects']:>6} {r['seconds']:>8.2f} "
                  f"{r['transactions']:>13} {r['target']:>7}")
            for line in r["ls_errors"]:
                print(f"    ls -lR exit {r['ls_status']}: {line}")
        print()
    print(f"{report['cpus']} CPUs; load average {report['loadavg_start'][0]:.2f} at the start, "
          f"{report['loadavg_end'][0]:.2f} at the end (other work on the machine slows the "
          "CPU-bound parts: spooling, unlimited-link figures)")
    runs = len(report["transfer"][0]["runs"]) if report["transfer"] else 0
    print(f"transfers of {size / MB:g} MB: medians of {runs} run(s), min ratio in brackets; "
          "write = spool + upload")
    print(f"{'link':<18} {'profile':<12} {'read MB/s':>9} {'ratio':>12} {'write MB/s':>10} "
          f"{'ratio':>12} {'spool s':>8} {'upload s':>8} {'head bytes':>10} {'RSS MB':>7}")
    def ratio(r: dict[str, Any], key: str) -> str:
        if key not in r:
            return "n/a"
        return f"{r[key]:.3f} [{r[key + '_min']:.3f}]"

    for r in report["transfer"]:
        read_ratio, write_ratio = ratio(r, "read_ratio"), ratio(r, "write_ratio")
        print(f"{r['link']:<18} {r['profile']:<12} {r['read_MBps']:>9.1f} {read_ratio:>12} "
              f"{r['write_MBps']:>10.1f} {write_ratio:>12} {r['spool_seconds']:>8.2f} "
              f"{r['upload_seconds']:>8.2f} {r['head_bytes']:>10} {r['peak_rss_MB']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
