#!/usr/bin/env python3
"""Measure the time from losing the camera to the reading program's EIO.

    scripts/unplug_latency.py [--timeout 5] [--trials 3]

For each transport (in-process simulator, USB through the simulated pyusb
backend, PTP/IP over loopback) ptpfs is mounted, a program reads a large file
from it (page cache dropped, the link paced to 30 MB/s so a transfer is in
flight), and after 2 MiB the camera is lost in one of two ways:

* ``unplug``: the cable is pulled (USB: the device vanishes with ENODEV;
  PTP/IP: the camera closes its sockets; in-process: the link drops);
* ``silent``: the camera stops answering but the link stays up (a hung
  camera, a Wi-Fi link that went dead without a FIN).

Prints the worst and median time to EIO per transport and mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptpfs.connect import open_session, reopener  # noqa: E402
from ptpfs.fs.mount import mount, parse_options  # noqa: E402
from ptpfs.session import Session  # noqa: E402
from ptpfs.sim import make_camera  # noqa: E402
from ptpfs.sim.ptpip_server import PtpipServer  # noqa: E402
from ptpfs.sim.usb_backend import SimUsbBackend  # noqa: E402
from ptpfs.transport.inprocess import InProcessTransport  # noqa: E402

BIG = "SD1/DCIM/100CANON/MVI_9999.MP4"


def is_mounted(path: str) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == os.path.realpath(path) for line in mounts)


def trial(kind: str, mode: str, timeout: float) -> float:
    camera = make_camera(None, "generic", folders=1, files_per_folder=2, big_file=64 << 20,
                         bandwidth=30 << 20)
    link: Any = None
    if kind == "sim":
        transport = InProcessTransport(camera, timeout=timeout)
        session = Session(transport, timeout=timeout, reopen=reopener("sim", transport)).open()
    elif kind == "usb":
        link = SimUsbBackend([camera])
        session = open_session("usb", usb_backend=link, timeout=timeout, reconnect=True)
    else:
        link = PtpipServer(camera).start()
        session = open_session(f"ptpip:127.0.0.1:{link.port}", timeout=timeout, reconnect=True)
    mnt = tempfile.mkdtemp(prefix="ptpfs-unplug-")
    thread = threading.Thread(target=mount, args=(session, mnt, parse_options([])), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not is_mounted(mnt):
            if time.monotonic() > deadline:
                raise SystemExit("mount failed")
            time.sleep(0.02)
        t0 = 0.0
        with open(os.path.join(mnt, BIG), "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            got = 0
            try:
                while chunk := f.read(1 << 20):
                    got += len(chunk)
                    if got >= 2 << 20 and not t0:
                        t0 = time.monotonic()
                        if mode == "unplug":
                            if kind == "usb":
                                link.devices[0].unplug()
                            elif kind == "ptpip":
                                camera.faults.unplug()
                                link.stop()        # the camera's sockets close
                            else:
                                camera.faults.unplug()
                        else:
                            camera.faults.stall(None)
            except OSError:
                return time.monotonic() - t0
        raise SystemExit(f"{kind}/{mode}: the read finished without an error")
    finally:
        camera.faults.clear()
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        thread.join(15)
        session.close()
        if isinstance(link, PtpipServer):
            link.stop()
        elif link is not None:
            link.close()
        camera.store.close()
        os.rmdir(mnt)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timeout", type=float, default=5.0, help="ptpfs -o timeout= (default 5)")
    p.add_argument("--trials", type=int, default=3)
    args = p.parse_args()
    print(f"timeout={args.timeout:g} s, {args.trials} trials each; seconds from loss to EIO")
    print(f"{'transport':10} {'mode':7} {'worst':>7} {'median':>7}")
    for kind in ("sim", "usb", "ptpip"):
        for mode in ("unplug", "silent"):
            times = [trial(kind, mode, args.timeout) for _ in range(args.trials)]
            print(f"{kind:10} {mode:7} {max(times):7.3f} {statistics.median(times):7.3f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
