#!/usr/bin/env python3
"""A file-system exerciser for ptpfs writes, in the spirit of xfstests' fsx.

Random operations on one file through the mount -- write, read, truncate,
append (O_APPEND), fsync, mmap write + msync, mmap read, fstat/stat, close
and reopen -- are checked against an in-memory model of the file; after every
fsync and close, and at the end, the file on the device side (the simulator's
``sim:DIR`` folder) must equal the model byte for byte.

Two modes:

* ``fsx.py --file MNT/x --device-file DIR/x [--ops N] [--seed S]`` runs the
  operations on an existing mount (what tests/test_fsx.py does);
* ``fsx.py [--profile P ...] [--ptpip] [--ops N] [--seed S]`` (the long mode)
  mounts a simulated camera serving a temporary folder for each profile and
  runs itself in a child process against it (mmap on an in-process FUSE mount
  must not run in the mounting process: a page fault would hold the GIL that
  the FUSE threads need).

Exit status 0 and a summary line per profile (``OK <ops> ops, 0 mismatches``),
or 1 with the first mismatch, the operation log tail and the seed to replay.
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import sys
from collections import deque
from typing import ClassVar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = mmap.PAGESIZE


class Mismatch(Exception):
    """The file (or the device copy) differs from the model."""


class Exerciser:
    """Random operations on *path* against a model; *device* is the device-side copy."""

    def __init__(self, path: str, device: str, seed: int, max_size: int = 256 << 10) -> None:
        self.path = path
        self.device = device
        self.rng = random.Random(seed)
        self.max_size = max_size
        self.model = bytearray()
        self.fd = -1
        self.log: deque[str] = deque(maxlen=30)
        self.counts: dict[str, int] = {}
        self.device_checks = 0

    # -- helpers ------------------------------------------------------------------
    def _open(self, create: bool = False) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self.fd = os.open(self.path, flags, 0o644)

    def _data(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def _check_device(self, when: str) -> None:
        self.device_checks += 1
        with open(self.device, "rb") as f:
            got = f.read()
        if got != bytes(self.model):
            raise Mismatch(f"device copy after {when}: {len(got)} bytes, model "
                           f"{len(self.model)}; first difference at "
                           f"{_first_diff(got, bytes(self.model))}")

    def _check_size(self, when: str) -> None:
        size = os.fstat(self.fd).st_size
        if size != len(self.model):
            raise Mismatch(f"fstat size {size} != model {len(self.model)} ({when})")
        size = os.stat(self.path).st_size
        if size != len(self.model):
            raise Mismatch(f"stat size {size} != model {len(self.model)} ({when})")

    # -- operations ----------------------------------------------------------------
    def op_write(self) -> str:
        size = len(self.model)
        offset = self.rng.randrange(0, min(self.max_size, size + PAGE * 4))
        n = self.rng.randrange(1, min(64 << 10, self.max_size - offset) + 1)
        data = self._data(n)
        if os.pwrite(self.fd, data, offset) != n:
            raise Mismatch("short write")
        if offset > size:
            self.model.extend(bytes(offset - size))
        self.model[offset:offset + n] = data
        return f"write {offset}+{n}"

    def op_append(self) -> str:
        n = self.rng.randrange(1, 16 << 10)
        if len(self.model) + n > self.max_size:
            return self.op_truncate()
        data = self._data(n)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)      # a close of another handle: flush sends the file
        self.model.extend(data)
        self._check_device("append + close of the appending handle")
        return f"append {n}"

    def op_read(self) -> str:
        size = len(self.model)
        offset = self.rng.randrange(0, size + 100) if size else 0
        n = self.rng.randrange(1, 96 << 10)
        got = os.pread(self.fd, n, offset)
        want = bytes(self.model[offset:offset + n])
        if got != want:
            raise Mismatch(f"read {offset}+{n}: got {len(got)} bytes, want {len(want)}; "
                           f"first difference at {_first_diff(got, want)}")
        return f"read {offset}+{n}"

    def op_truncate(self) -> str:
        length = self.rng.randrange(0, self.max_size)
        if self.rng.random() < 0.5:
            length = self.rng.randrange(0, len(self.model) + 1)
        os.ftruncate(self.fd, length)
        if length < len(self.model):
            del self.model[length:]
        else:
            self.model.extend(bytes(length - len(self.model)))
        self._check_size("truncate")
        return f"truncate {length}"

    def op_fsync(self) -> str:
        os.fsync(self.fd)
        self._check_device("fsync")
        return "fsync"

    def op_mapwrite(self) -> str:
        size = len(self.model)
        if size == 0:
            return self.op_write()
        offset = self.rng.randrange(0, size)
        n = self.rng.randrange(1, min(32 << 10, size - offset) + 1)
        data = self._data(n)
        with mmap.mmap(self.fd, size) as mm:
            mm[offset:offset + n] = data
            mm.flush()          # msync
        self.model[offset:offset + n] = data
        return f"mapwrite {offset}+{n}"

    def op_mapread(self) -> str:
        size = len(self.model)
        if size == 0:
            return self.op_read()
        offset = self.rng.randrange(0, size)
        n = self.rng.randrange(1, min(32 << 10, size - offset) + 1)
        with mmap.mmap(self.fd, size, prot=mmap.PROT_READ) as mm:
            got = mm[offset:offset + n]
        if got != bytes(self.model[offset:offset + n]):
            raise Mismatch(f"mapread {offset}+{n} differs")
        return f"mapread {offset}+{n}"

    def op_stat(self) -> str:
        self._check_size("stat")
        return "stat"

    def op_reopen(self) -> str:
        os.close(self.fd)
        self.fd = -1
        self._check_device("close")
        self._open()
        return "close + reopen"

    WEIGHTS: ClassVar[dict[str, int]] = {"write": 30, "read": 20, "truncate": 8, "append": 4, "fsync": 4,
               "mapwrite": 8, "mapread": 6, "stat": 6, "reopen": 4}

    def run(self, ops: int) -> None:
        """*ops* random operations; raises :class:`Mismatch` on the first difference."""
        names = list(self.WEIGHTS)
        weights = [self.WEIGHTS[n] for n in names]
        self._open(create=True)
        try:
            for i in range(ops):
                name = self.rng.choices(names, weights)[0]
                text = getattr(self, f"op_{name}")()
                self.counts[name] = self.counts.get(name, 0) + 1
                self.log.append(f"{i}: {text}")
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        self._check_device("the final close")
        with open(self.path, "rb") as f:
            if f.read() != bytes(self.model):
                raise Mismatch("the file read back through the mount differs at the end")


def _first_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def run_worker(args: argparse.Namespace) -> int:
    ex = Exerciser(args.file, args.device_file, args.seed, args.max_size)
    try:
        ex.run(args.ops)
    except (Mismatch, OSError, ValueError) as exc:
        print(f"MISMATCH (seed {args.seed}): {type(exc).__name__}: {exc}", file=sys.stderr)
        print("last operations:\n  " + "\n  ".join(ex.log), file=sys.stderr)
        return 1
    detail = ", ".join(f"{k} {v}" for k, v in sorted(ex.counts.items()))
    print(f"OK {args.ops} ops, 0 mismatches, {ex.device_checks} device checks ({detail})")
    return 0


def run_long(args: argparse.Namespace) -> int:
    """Mount a simulated camera per profile and run the worker against it."""
    import subprocess
    import tempfile

    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from fuse_helpers import mounted_session  # the tests' mount helper

    from ptpfs.connect import open_session
    from ptpfs.session import Session
    from ptpfs.sim import make_camera
    from ptpfs.sim.ptpip_server import PtpipServer
    from ptpfs.transport.inprocess import InProcessTransport

    status = 0
    for profile in args.profile or ["android-mtp", "canon-eos", "generic"]:
        with tempfile.TemporaryDirectory(prefix="ptpfs-fsx-") as card:
            camera = make_camera(card, profile, watch_interval=None, uploads=True)
            server = None
            if args.ptpip:
                server = PtpipServer(camera, "127.0.0.1", 0)
                server.start()
                session = open_session(f"ptpip:127.0.0.1:{server.port}")
            else:
                session = Session(InProcessTransport(camera)).open()
            try:
                with mounted_session(session) as mnt:
                    storage = next(n for n in sorted(os.listdir(mnt)) if n != ".ptp")
                    cmd = [sys.executable, os.path.abspath(__file__), "--file",
                           os.path.join(mnt, storage, "fsx.bin"), "--device-file",
                           os.path.join(card, "fsx.bin"), "--ops", str(args.ops),
                           "--seed", str(args.seed), "--max-size", str(args.max_size)]
                    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    print(f"{profile}{' over PTP/IP' if args.ptpip else ''}: "
                          f"{(res.stdout + res.stderr).strip()}")
                    status = status or res.returncode
            finally:
                session.close()
                if server is not None:
                    server.stop()
                camera.store.close()
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", help="the file to exercise, inside a mount (worker mode)")
    p.add_argument("--device-file", help="the same file on the device side (worker mode)")
    p.add_argument("--ops", type=int, default=20000, help="operations (default 20000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--max-size", type=int, default=256 << 10,
                   help="largest file size in bytes (default 256 KiB)")
    p.add_argument("--profile", action="append",
                   help="simulator profile (repeatable; default all three)")
    p.add_argument("--ptpip", action="store_true", help="mount over PTP/IP to the simulator")
    args = p.parse_args(argv)
    if args.file:
        if not args.device_file:
            p.error("--file needs --device-file")
        return run_worker(args)
    return run_long(args)


if __name__ == "__main__":
    sys.exit(main())
