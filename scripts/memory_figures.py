#!/usr/bin/env python3
"""Memory figures of ptpfs's object tree (issue 11.4): bytes per listed object,
RSS for a folder of 1,000,000 handles, and RSS during an event flood.

    python3 scripts/memory_figures.py listing [--count 1000000] [--ptpip]
    python3 scripts/memory_figures.py flood [--seconds 60] [--rate 20000] [--ptpip]

Both drive the real Session (in-process transport), listing strategy and Tree
against :class:`BigFolderCamera`, a responder whose folder ``BIG`` lists *count*
synthetic files (GetObjectInfo answers computed from the handle, so the
responder itself holds no per-object memory).  ``flood`` makes the camera send
ObjectAdded events at *rate* per second (new files in ``BIG`` and re-announced
existing ones) while a reader lists ``BIG`` once a second, and samples RSS.
With ``--ptpip`` the camera runs in a child process behind the PTP/IP server and
ptpfs's side connects over TCP, so the RSS is ptpfs's alone (transport, session,
tree); the camera's transaction counts are then not reported.

Prints one JSON object (``--json``) or readable lines.  Figures are measured,
never asserted here; ``tests/test_memory.py`` runs small versions with bounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ptpfs.protocol.codes import EC, OC, OFC, RC
from ptpfs.protocol.datasets import ObjectInfo, encode_u32_array
from ptpfs.protocol.messages import Event, Request
from ptpfs.sim import make_camera
from ptpfs.sim.camera import BytesSource, Reply

BASE = 0x0100_0000
SD1 = 0x00010001


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class BigFolderCamera:
    """A generic simulated camera whose folder ``BIG`` (in the storage root of SD1)
    lists *count* synthetic files, handles ``BASE + i``.  Everything else is the
    wrapped :class:`~ptpfs.sim.camera.SimCamera`'s (a one-file sample card)."""

    def __init__(self, count: int) -> None:
        self.camera = make_camera(None, "generic", folders=1, files_per_folder=1,
                                  second_slot="absent")
        self.count = count
        self.extra = 0                  # files added by the flood
        self.folder = BASE - 1          # the handle of BIG
        self.info_calls = 0
        self.handle_calls = 0
        self._default = None

    # responder interface ------------------------------------------------------------------
    @property
    def stats(self) -> Any:
        return self.camera.stats

    @property
    def link(self) -> Any:
        return self.camera.link

    @property
    def faults(self) -> Any:
        return self.camera.faults

    @property
    def profile(self) -> Any:
        return self.camera.profile

    def takes_data(self, code: int) -> bool:
        return self.camera.takes_data(code)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.camera.subscribe(callback)

    def begin_data(self, request: Request, length: int | None) -> Any:
        return self.camera.begin_data(request, length)

    def close(self) -> None:
        self.camera.close()

    def command(self, request: Request) -> Reply:
        code, p = request.code, request.params
        if code == OC.GetObjectHandles and len(p) >= 3 and p[2] == self.folder:
            self.camera.stats.record(code)
            self.handle_calls += 1
            total = self.count + self.extra
            return Reply(RC.OK, (), BytesSource(encode_u32_array(range(BASE, BASE + total))))
        if code == OC.GetObjectHandles and len(p) >= 3 and p[2] in (0, 0xFFFFFFFF):
            reply = self.camera.command(request)
            if reply.code == RC.OK and reply.data is not None:
                from ptpfs.protocol.datasets import decode_u32_array
                handles = decode_u32_array(reply.data.read(reply.data.length))
                return Reply(RC.OK, (), BytesSource(encode_u32_array(list(handles) + [self.folder])))
            return reply
        if code == OC.GetObjectInfo and p and (p[0] == self.folder or p[0] >= BASE):
            self.camera.stats.record(code)
            self.info_calls += 1
            handle = p[0]
            if handle == self.folder:
                info = ObjectInfo(SD1, OFC.Association, filename="BIG", parent=0,
                                  association_type=1)
            elif handle < BASE + self.count + self.extra:
                info = ObjectInfo(SD1, OFC.EXIF_JPEG, compressed_size=4_000_000 + handle % 997,
                                  parent=self.folder, filename=f"IMG_{handle - BASE:07d}.JPG",
                                  capture_date="20240102T030405",
                                  modification_date="20240102T030405")
            else:
                return Reply(RC.InvalidObjectHandle)
            return Reply(RC.OK, (), BytesSource(info.encode()))
        return self.camera.command(request)

    # the flood ------------------------------------------------------------------------------
    def announce(self, new: bool) -> None:
        """One ObjectAdded: of a new file in BIG, or of an existing one again."""
        if new:
            self.extra += 1
            handle = BASE + self.count + self.extra - 1
        else:
            handle = BASE + (self.extra * 7919) % max(1, self.count)
        self.camera._publish(Event(EC.ObjectAdded, 0, (handle,)))


class RemoteCamera:
    """The :class:`BigFolderCamera` of a child process, served over PTP/IP; the
    same ``announce``/``close`` and counters (counted here: not the device's)."""

    def __init__(self, count: int) -> None:
        import subprocess
        self.count = count
        self.extra = 0
        self.info_calls = 0           # counted in the child, not reported
        self.handle_calls = 0
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve",
                                      "--count", str(count)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[-1])

    def flood(self, seconds: float, rate: float, new_share: float,
              max_events: int | None) -> int:
        """The child floods; returns how many events it sent and how many were new."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"flood {seconds} {rate} {new_share} {max_events or 0}\n")
        self.proc.stdin.flush()
        sent, new = (int(x) for x in self.proc.stdout.readline().split())
        self.extra += new
        return sent

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def serve(count: int) -> int:
    """Child side of ``--ptpip``: serve the camera; obey ``flood`` lines on stdin."""
    from ptpfs.sim.ptpip_server import PtpipServer
    camera = BigFolderCamera(count)
    server = PtpipServer(camera, port=0).start()
    print(f"listening {server.port}", flush=True)
    try:
        for line in sys.stdin:
            _, seconds, rate, new_share, most = line.split()
            before = camera.extra
            sent = _flood_loop(camera, float(seconds), float(rate), float(new_share),
                               int(most) or None)
            print(sent, camera.extra - before, flush=True)
    finally:
        server.stop()
        camera.close()
    return 0


def _flood_loop(camera: Any, seconds: float, rate: float, new_share: float,
                max_events: int | None) -> int:
    sent = 0
    start = time.monotonic()
    period = 1.0 / rate
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds or (max_events is not None and sent >= max_events):
            return sent
        due = int(elapsed / period) + 1
        while sent < due and (max_events is None or sent < max_events):
            camera.announce(new=((sent + 1) * new_share) % 1 < new_share)
            sent += 1
        time.sleep(0.001)


def _open(count: int, ptpip: bool = False) -> tuple[Any, Any, Any]:
    from ptpfs.fs.tree import Tree
    from ptpfs.session import Session
    from ptpfs.transport.inprocess import InProcessTransport

    if ptpip:
        from ptpfs.connect import open_session
        remote = RemoteCamera(count)
        return remote, open_session(f"ptpip:127.0.0.1:{remote.port}", timeout=60), None
    camera = BigFolderCamera(count)
    session = Session(InProcessTransport(camera), timeout=60).open()
    return camera, session, Tree(session)


def listing(count: int, ptpip: bool = False) -> dict[str, Any]:
    """List a folder of *count* handles; RSS before/after and bytes per object."""
    from ptpfs.fs.tree import Tree
    camera, session, tree = _open(count, ptpip)
    tree = tree or Tree(session)
    try:
        sd1 = tree.lookup("/" + next(iter(tree.storages())))
        tree.children(sd1)
        gc.collect()
        before = rss_bytes()
        start = time.monotonic()
        big = tree.lookup(sd1.path + "/BIG")
        children = tree.children(big)
        seconds = time.monotonic() - start
        assert len(children) == count, len(children)
        gc.collect()
        after = rss_bytes()
        return {"objects": count, "rss_before_mb": round(before / 2**20, 1),
                "rss_after_mb": round(after / 2**20, 1),
                "rss_peak_mb": round(peak_rss_bytes() / 2**20, 1),
                "bytes_per_object": round((after - before) / count),
                "get_object_info": None if ptpip else camera.info_calls,
                "seconds": round(seconds, 1)}
    finally:
        session.close()
        camera.close()


def flood(seconds: float, rate: float, count: int, new_share: float = 0.5,
          max_events: int | None = None, ptpip: bool = False) -> dict[str, Any]:
    """ObjectAdded at *rate*/s for *seconds* (or *max_events*) while a reader lists BIG."""
    from ptpfs.fs.tree import Tree
    camera, session, tree = _open(count, ptpip)
    tree = tree or Tree(session)
    tree.start_events()
    stop = threading.Event()
    samples: list[int] = []
    listed: list[int] = []
    try:
        sd1 = tree.lookup("/" + next(iter(tree.storages())))
        big = tree.lookup(sd1.path + "/BIG")
        tree.children(big)
        gc.collect()
        before = rss_bytes()
        info_before = camera.info_calls

        def reader() -> None:
            while not stop.wait(1.0):
                listed.append(len(tree.children(big)))
                samples.append(rss_bytes())

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        start = time.monotonic()
        if ptpip:
            sent = camera.flood(seconds, rate, new_share, max_events)
        else:
            sent = _flood_loop(camera, seconds, rate, new_share, max_events)
        # let the worker finish what is queued, then list once more
        deadline = time.monotonic() + 30
        while not tree._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0 if ptpip else 0.0)       # events still in the sockets
        stop.set()
        thread.join(timeout=30)
        final = len(tree.children(big))
        samples.append(rss_bytes())
        return {"seconds": round(time.monotonic() - start, 1), "events": sent,
                "rate": rate, "rss_before_mb": round(before / 2**20, 1),
                "rss_max_mb": round(max(samples) / 2**20, 1),
                "rss_end_mb": round(samples[-1] / 2**20, 1),
                "get_object_info": None if ptpip else camera.info_calls - info_before,
                "get_object_handles": None if ptpip else camera.handle_calls,
                "tree_events": dict(tree.event_stats), "listed_at_end": final,
                "expected_at_end": count + camera.extra}
    finally:
        stop.set()
        tree.stop_events()
        session.close()
        camera.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("listing", help="RSS and bytes/object for one big folder")
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--ptpip", action="store_true", help="the camera in a child process")
    p = sub.add_parser("serve", help="(internal) the child of --ptpip")
    p.add_argument("--count", type=int, default=1_000_000)
    p = sub.add_parser("flood", help="RSS during an ObjectAdded flood")
    p.add_argument("--ptpip", action="store_true", help="the camera in a child process")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=20_000.0, help="events per second")
    p.add_argument("--count", type=int, default=10_000, help="files in the folder first")
    p.add_argument("--max-events", type=int)
    p.add_argument("--new-share", type=float, default=0.0,
                   help="share of events announcing new files (the rest re-announce "
                        "existing ones; default 0: the folder does not grow)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.what == "serve":
        return serve(args.count)
    if args.what == "listing":
        result = listing(args.count, args.ptpip)
    else:
        result = flood(args.seconds, args.rate, args.count, args.new_share,
                       max_events=args.max_events, ptpip=args.ptpip)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
