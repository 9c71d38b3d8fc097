#!/usr/bin/env python3
"""Soak test: ptpfs over PTP/IP against the simulated camera, with faults.

    scripts/soak.py --minutes 10
    scripts/soak.py --seconds 25 --fault-interval 3 --json     # the CI version

The simulated camera is served over PTP/IP in this process; ``ptpfs`` runs as
a separate process (``-f``, default reconnect, ``-o timeout=``) mounting it.
Workers hammer the mount meanwhile:

* 8 readers hash whole files and compare with the camera's own sha256;
* a writer uploads random files, reads each back through the mount and from
  the camera's store, and deletes it;
* an ``ls -lR`` loop and a property reader (``/.ptp``);
* a fault injector: link drops mid-transfer, DeviceBusy spells, short and long
  stalls, corrupted replies, and "unplug for a second" (whose unplug -> EIO
  time is measured from the readers).

At the end every fault is cleared, the mount must work again, and the upload
folder on the camera must hold no partial object.  Prints operation counts,
errors by kind and any data mismatch; exits 1 on a mismatch, a leftover
partial upload, a dead mount at the end, or a ptpfs crash.
"""

from __future__ import annotations

import argparse
import collections
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptpfs.sim import SD1, make_camera  # noqa: E402
from ptpfs.sim.ptpip_server import PtpipServer  # noqa: E402

UPLOAD_DIR = "SOAK"


def is_mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == path for line in mounts)


def errname(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


class Stats:
    """Thread-safe counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.mismatches: list[str] = []
        self.last_error_at = 0.0
        self.unplug_to_eio: list[float] = []
        self.bytes_read = 0
        self.bytes_written = 0

    def op(self, kind: str, n: int = 0) -> None:
        with self.lock:
            self.ops[kind] += 1
            if kind.startswith("read"):
                self.bytes_read += n
            elif kind.startswith("upload"):
                self.bytes_written += n

    def error(self, kind: str, exc: BaseException) -> None:
        with self.lock:
            self.errors[f"{kind}:{errname(exc)}"] += 1
            self.last_error_at = time.monotonic()

    def mismatch(self, what: str) -> None:
        with self.lock:
            self.mismatches.append(what)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.stats = Stats()
        self.stop = threading.Event()
        self.camera = make_camera(None, "generic", folders=3, files_per_folder=10,
                                  jpeg_size=600_000, raw_size=2_500_000,
                                  big_file=args.big_file, seed=args.seed)
        self.server = PtpipServer(self.camera).start()
        self.work = tempfile.mkdtemp(prefix="ptpfs-soak-")
        self.mnt = os.path.join(self.work, "mnt")
        os.mkdir(self.mnt)
        os.mkdir(os.path.join(self.work, "spool"), 0o700)
        self.proc: subprocess.Popen | None = None
        self.expected: dict[str, str] = {}
        self.uploads_alive: dict[str, str] = {}     # name -> sha256 (uploaded, not deleted)
        self.attempted: dict[str, str] = {}         # name -> sha256 of every upload tried
        self.reader_error_events: list[float] = []
        self.ev_lock = threading.Lock()

    # ------------------------------------------------------------------ set-up
    def mount(self) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "ptpfs.cli.ptpfs_main", "-f", "--device",
               f"ptpip:127.0.0.1:{self.server.port}", "-o",
               f"timeout={self.args.timeout},spool_dir={os.path.join(self.work, 'spool')}",
               self.mnt]
        self.log = open(os.path.join(self.work, "ptpfs.log"), "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                with open(self.log.name, encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"soak: ptpfs did not mount:\n{tail}")
            time.sleep(0.05)
        os.makedirs(os.path.join(self.mnt, "SD1", UPLOAD_DIR), exist_ok=True)
        base = os.path.join(self.mnt, "SD1")
        for dirpath, _, files in os.walk(base):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), base)
                if rel.startswith(UPLOAD_DIR):
                    continue
                self.expected[rel] = self.camera.store.find(rel).sha256()

    # ------------------------------------------------------------------ workers
    def reader(self, index: int) -> None:
        rng = random.Random(self.args.seed * 100 + index)
        names = sorted(self.expected)
        while not self.stop.is_set():
            rel = rng.choice(names)
            h = hashlib.sha256()
            n = 0
            try:
                with open(os.path.join(self.mnt, "SD1", rel), "rb") as f:
                    # drop the kernel's cached pages so the bytes come from the camera
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                        n += len(chunk)
            except OSError as exc:
                self.stats.error("read", exc)
                with self.ev_lock:
                    self.reader_error_events.append(time.monotonic())
                time.sleep(0.05)
                continue
            if h.hexdigest() != self.expected[rel]:
                self.stats.mismatch(f"read {rel}: {n} bytes, sha256 differs")
            self.stats.op("read", n)

    def writer(self) -> None:
        rng = random.Random(self.args.seed * 7)
        i = 0
        folder = os.path.join(self.mnt, "SD1", UPLOAD_DIR)
        while not self.stop.is_set():
            i += 1
            name = f"soak-{i:05d}.bin"
            data = rng.randbytes(rng.choice([0, 1, 4096, 100_000, 1_000_000, 3_000_000]))
            digest = hashlib.sha256(data).hexdigest()
            self.attempted[name] = digest
            path = os.path.join(folder, name)
            try:
                with open(path, "wb") as f:
                    f.write(data)
            except OSError as exc:
                self.stats.error("upload", exc)
                time.sleep(0.1)
                continue
            self.stats.op("upload", len(data))
            self.uploads_alive[name] = digest
            try:
                with open(path, "rb") as f:
                    back = f.read()
                if hashlib.sha256(back).hexdigest() != digest:
                    self.stats.mismatch(f"read back {name}: {len(back)} of {len(data)} bytes")
                self.stats.op("readback", len(back))
            except OSError as exc:
                self.stats.error("readback", exc)
            try:
                obj = self.camera.store.find(f"{UPLOAD_DIR}/{name}")
                if obj.sha256() != digest:
                    self.stats.mismatch(f"camera copy of {name} differs")
            except Exception as exc:  # noqa: BLE001
                self.stats.mismatch(f"{name} uploaded but not on the camera ({exc})")
            try:
                os.unlink(path)
                del self.uploads_alive[name]
                self.stats.op("delete")
            except OSError as exc:
                self.stats.error("delete", exc)

    def lister(self) -> None:
        while not self.stop.is_set():
            r = subprocess.run(["ls", "-lR", self.mnt], capture_output=True, timeout=120)
            if r.returncode == 0:
                self.stats.op("ls -lR")
            else:
                self.stats.error("ls -lR", OSError(errno.EIO, "ls failed"))
            self.stop.wait(0.5)

    def properties(self) -> None:
        paths = [os.path.join(self.mnt, ".ptp", "properties"),
                 os.path.join(self.mnt, ".ptp", "properties.d", "BatteryLevel")]
        while not self.stop.is_set():
            for path in paths:
                try:
                    with open(path, "rb") as f:
                        f.read()
                    self.stats.op("property read")
                except OSError as exc:
                    self.stats.error("property read", exc)
            self.stop.wait(0.2)

    # ------------------------------------------------------------------ faults
    def next_reader_error_after(self, t0: float, limit: float) -> float | None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.ev_lock:
                after = [t for t in self.reader_error_events if t >= t0]
            if after:
                return min(after) - t0
            time.sleep(0.01)
        return None

    def injector(self) -> None:
        faults = self.camera.faults
        rng = random.Random(self.args.seed * 13)
        kinds = ["drop", "busy", "stall-short", "stall-long", "corrupt", "unplug"]
        timeout = self.args.timeout
        while not self.stop.wait(self.args.fault_interval * rng.uniform(0.6, 1.4)):
            kind = rng.choice(kinds)
            self.stats.faults[kind] += 1
            if kind == "drop":
                faults.drop_after(rng.randrange(0, 4 << 20))
            elif kind == "busy":
                faults.busy(rng.randrange(1, 12))
            elif kind == "stall-short":
                faults.stall(timeout * 0.3)
            elif kind == "stall-long":
                faults.stall(timeout * 2.5)
            elif kind == "corrupt":
                faults.corrupt_next(rng.choice(["tid", "garbage", "type", "nodata"]))
            elif kind == "unplug":
                t0 = time.monotonic()
                faults.unplug()
                took = self.next_reader_error_after(t0, 3 * timeout + 5)
                if took is not None:
                    self.stats.unplug_to_eio.append(took)
                self.stop.wait(1.0)
                faults.replug()

    # ------------------------------------------------------------------ run
    def healthy(self, limit: float = 30.0) -> bool:
        """After the faults: the mount reads correctly again."""
        rel = sorted(self.expected)[0]
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                with open(os.path.join(self.mnt, "SD1", rel), "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() == self.expected[rel]:
                        return True
            except OSError:
                pass
            time.sleep(0.5)
        return False

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Objects in the upload folder that are partial (an error), and complete
        objects whose close() had failed (the data did arrive; kept by design)."""
        partial: list[str] = []
        complete: list[str] = []
        try:
            folder = self.camera.store.find(UPLOAD_DIR)
        except Exception:  # noqa: BLE001
            return partial, complete
        for obj in self.camera.store.children(SD1, folder.handle):
            digest = obj.sha256()
            if self.uploads_alive.get(obj.name) == digest:
                continue                       # uploaded fine, delete failed: fine
            if self.attempted.get(obj.name) == digest:
                complete.append(obj.name)
            else:
                partial.append(f"{obj.name} ({obj.size} bytes)")
        return partial, complete

    def run(self) -> dict[str, Any]:
        self.mount()
        threads = [threading.Thread(target=self.reader, args=(i,), daemon=True)
                   for i in range(self.args.readers)]
        threads += [threading.Thread(target=t, daemon=True)
                    for t in (self.writer, self.lister, self.properties)]
        injector = threading.Thread(target=self.injector, daemon=True)
        started = time.monotonic()
        for t in threads:
            t.start()
        injector.start()
        self.stop.wait(self.args.duration)
        self.stop.set()
        injector.join(30)
        self.camera.faults.clear()
        for t in threads:
            t.join(60)
        healthy = self.healthy()
        leftovers: list[str] = []
        complete: list[str] = []
        deadline = time.monotonic() + 10      # orphan clean-up runs after reconnects
        while time.monotonic() < deadline:
            leftovers, complete = self.leftovers()
            if not leftovers:
                break
            time.sleep(0.5)
        alive = self.proc is not None and self.proc.poll() is None
        s = self.stats
        return {
            "seconds": round(time.monotonic() - started, 1),
            "operations": dict(s.ops),
            "bytes_read": s.bytes_read, "bytes_written": s.bytes_written,
            "errors": dict(sorted(s.errors.items())),
            "faults_injected": dict(s.faults),
            "reconnects": max(0, self.server.connections - 1),
            "mismatches": s.mismatches,
            "leftover_partial_uploads": leftovers,
            "complete_despite_failed_close": len(complete),
            "unplug_to_eio_max_s": round(max(s.unplug_to_eio), 3) if s.unplug_to_eio else None,
            "unplug_to_eio_samples": len(s.unplug_to_eio),
            "healthy_at_end": healthy,
            "ptpfs_alive_at_end": alive,
        }

    def close(self) -> int | None:
        code = None
        if self.proc is not None:
            subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if is_mounted(self.mnt):
                subprocess.run(["fusermount3", "-u", "-z", self.mnt], capture_output=True)
            try:
                code = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
            self.log.close()
        self.server.stop()
        self.camera.store.close()
        if self.args.keep_log:
            shutil.copy(os.path.join(self.work, "ptpfs.log"), self.args.keep_log)
        shutil.rmtree(self.work, ignore_errors=True)
        return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=None, help="how long (default 1)")
    p.add_argument("--seconds", type=float, default=None, help="how long, in seconds")
    p.add_argument("--readers", type=int, default=8)
    p.add_argument("--fault-interval", type=float, default=8.0,
                   help="mean seconds between injected faults")
    p.add_argument("--timeout", type=float, default=2.0, help="ptpfs -o timeout=")
    p.add_argument("--big-file", type=int, default=24 << 20, help="size of the big movie file")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--keep-log", metavar="FILE", help="copy ptpfs's log (-f output) to FILE")
    args = p.parse_args(argv)
    args.duration = args.seconds if args.seconds is not None else 60 * (args.minutes or 1)
    soak = Soak(args)
    try:
        report = soak.run()
    finally:
        exit_code = soak.close()
    report["ptpfs_exit_status"] = exit_code
    bad = bool(report["mismatches"] or report["leftover_partial_uploads"]
               or not report["healthy_at_end"] or not report["ptpfs_alive_at_end"]
               or exit_code != 0)
    report["ok"] = not bad
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"soak: {report['seconds']} s, ptpfs over PTP/IP, {args.readers} readers, "
              f"timeout {args.timeout} s")
        print("operations:", ", ".join(f"{k} {v}" for k, v in sorted(report["operations"].items())))
        print(f"data: {report['bytes_read'] / 1e6:.0f} MB read, "
              f"{report['bytes_written'] / 1e6:.0f} MB uploaded")
        print("faults injected:", ", ".join(f"{k} {v}" for k, v in
                                            sorted(report["faults_injected"].items())))
        print("reconnects:", report["reconnects"])
        print("errors:", ", ".join(f"{k} {v}" for k, v in report["errors"].items()) or "none")
        print(f"unplug -> EIO (worst of {report['unplug_to_eio_samples']}):",
              report["unplug_to_eio_max_s"], "s")
        print("data mismatches:", len(report["mismatches"]), *report["mismatches"][:10])
        print("leftover partial uploads:", len(report["leftover_partial_uploads"]),
              *report["leftover_partial_uploads"][:10])
        print("complete uploads whose close() failed (kept, the data arrived):",
              report["complete_despite_failed_close"])
        print("healthy at end:", report["healthy_at_end"], "| ptpfs exit status:", exit_code)
        print("RESULT:", "OK" if not bad else "FAILED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
