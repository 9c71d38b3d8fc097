#!/usr/bin/env python3
"""How long programs wait on a camera that trickles (issue 11.1), through a real mount.

Serves the hostile PTP/IP peer (``ptpfs/testing/hostile.py``) in its slow modes, mounts it with
``ptpfs -o timeout=T`` and times, with the wall clock:

* the handshake against an InitCommandAck with a 2,000-character name at 1 byte/s;
* ``ls`` of a folder whose GetObjectHandles announces 4 GiB and sends 1 byte/s;
* ``cat`` of a file whose GetObject/GetPartialObject trickles the same way;
* ``ls`` of a cached folder and ``stat`` of ``/.ptp`` while the trickling ``ls`` waits;
* ``fusermount3 -u`` afterwards.

Usage: ``python3 scripts/trickle_wait.py [--timeout 2] [--interval 1]`` (run from the repository
root, as root or with /dev/fuse usable).  Prints one line per measurement and the longest wait.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ptpfs.errors import PTPError
from ptpfs.protocol.codes import OC
from ptpfs.sim import make_camera
from ptpfs.testing.hostile import HostileCamera, HostilePtpipServer, Mutation, Plan
from ptpfs.transport.ptpip import PtpipTransport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def server(kind: str, ops: tuple[int | None, ...], interval: float,
           nth: int | None = None) -> HostilePtpipServer:
    plan = Plan(mutations=tuple(Mutation(kind, op, 0, nth) for op in ops))
    return HostilePtpipServer(HostileCamera(make_camera(None, "generic"), plan),
                              trickle_interval=interval).start()


def timed(argv: list[str], limit: float = 120.0) -> tuple[float, int, str]:
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    return time.monotonic() - start, done.returncode, done.stderr.strip()


def mount(port: int, timeout: float) -> tuple[str, subprocess.Popen]:
    mnt = tempfile.mkdtemp(prefix="ptpfs-trickle-")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpfs_main", "-f", "--device",
                             f"ptpip:127.0.0.1:{port}", "-o", f"timeout={timeout:g},noreconnect",
                             mnt], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        if os.path.ismount(mnt):
            return mnt, proc
        if proc.poll() is not None:
            raise SystemExit(f"ptpfs exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    raise SystemExit("ptpfs did not mount")


def unmount(mnt: str, proc: subprocess.Popen) -> float:
    took, rc, err = timed(["fusermount3", "-u", mnt])
    proc.wait(timeout=60)
    os.rmdir(mnt)
    if rc:
        print(f"  fusermount3 -u failed: {err}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds per trickled byte")
    args = ap.parse_args()
    waits: dict[str, float] = {}

    srv = server("ip_trickle_init", (None,), args.interval)
    start = time.monotonic()
    try:
        PtpipTransport("127.0.0.1", srv.port, timeout=args.timeout).close()
        outcome = "connected (unexpected)"
    except PTPError as exc:
        outcome = str(exc)
    waits["handshake, 2000-char name at 1 B/interval"] = time.monotonic() - start
    srv.stop()
    print(f"handshake: {waits['handshake, 2000-char name at 1 B/interval']:.2f} s: {outcome}")

    srv = server("ip_trickle", (OC.GetObjectHandles,), args.interval, nth=1)
    mnt, proc = mount(srv.port, args.timeout)
    storage = os.path.join(mnt, next(n for n in os.listdir(mnt) if n != ".ptp"))
    os.listdir(storage)
    start = time.monotonic()
    stuck = subprocess.Popen(["ls", os.path.join(storage, "DCIM")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    waits["ls of a cached folder meanwhile"] = timed(["ls", storage])[0]
    waits["stat /.ptp meanwhile"] = timed(["stat", os.path.join(mnt, ".ptp")])[0]
    _, err = stuck.communicate(timeout=120)
    waits["ls of a trickling folder"] = time.monotonic() - start
    print(f"ls (trickling listing): {waits['ls of a trickling folder']:.2f} s, exit "
          f"{stuck.returncode}: {err.strip()}")
    waits["fusermount3 -u after a trickling ls"] = unmount(mnt, proc)
    srv.stop()

    srv = server("ip_trickle", (OC.GetObject, OC.GetPartialObject, OC.GetPartialObject64),
                 args.interval)
    mnt, proc = mount(srv.port, args.timeout)
    folder = os.path.join(mnt, next(n for n in os.listdir(mnt) if n != ".ptp"), "DCIM", "100CANON")
    name = min(os.listdir(folder))
    took, rc, err = timed(["cat", os.path.join(folder, name)])
    waits["cat of a trickling file"] = took
    print(f"cat (trickling object): {took:.2f} s, exit {rc}: {err}")
    waits["fusermount3 -u after a trickling cat"] = unmount(mnt, proc)
    srv.stop()

    for what, took in waits.items():
        print(f"  {took:7.2f} s  {what}")
    print(f"longest wait: {max(waits.values()):.2f} s with timeout={args.timeout:g} s")


if __name__ == "__main__":
    main()
