#!/usr/bin/env python3
"""Figures for ``ptpctl import``: files/s and MB/s on a modelled link, and resume.

    scripts/import_bench.py [--bandwidth 40e6] [--transport ptpip|sim] [--scale 1.0]

The simulated camera (generic profile unless --profile) serves over PTP/IP on
loopback (or in-process) with its link paced to --bandwidth bytes/s.  Three runs:

* ``photos``: a card of JPEG (~2.5 MB) and CR3 (~6 MB) files, imported in full;
* ``small``: many 60 KB files, where per-file round trips dominate;
* ``resume``: the photo card again, interrupted at half its bytes (Ctrl-C in
  the middle of a file), then the same import run again: bytes fetched by the
  second run against the bytes that were still missing, and its time.

MB = 10^6 bytes.  The link figure is what the importer gets out of the link
(100 % = the modelled bandwidth).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptpfs.connect import open_session  # noqa: E402
from ptpfs.services.importer import Importer, ImportOptions  # noqa: E402
from ptpfs.session import Session  # noqa: E402
from ptpfs.sim import make_camera  # noqa: E402
from ptpfs.sim.ptpip_server import PtpipServer  # noqa: E402
from ptpfs.transport.inprocess import InProcessTransport  # noqa: E402


class Bench:
    def __init__(self, args: argparse.Namespace, **card: Any) -> None:
        self.camera = make_camera(None, args.profile, bandwidth=args.bandwidth, **card)
        self.server: PtpipServer | None = None
        if args.transport == "ptpip":
            self.server = PtpipServer(self.camera, port=0).start()

    def session(self) -> Session:
        if self.server is not None:
            return open_session(f"ptpip:127.0.0.1:{self.server.port}")
        return Session(InProcessTransport(self.camera)).open()

    def run(self, dest: str, state: str, progress: Any = None) -> Any:
        session = self.session()
        importer = Importer(session, dest, ImportOptions(journal_dir=state), progress=progress)
        try:
            importer.run()
        finally:
            session.close()
        return importer.report

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.camera.close()


def line(name: str, report: Any, bandwidth: float) -> str:
    n, b, s = len(report.copied), report.bytes_copied, report.seconds
    return (f"{name:<8} {n:5d} files {b / 1e6:8.1f} MB in {s:6.2f} s: {n / s:7.1f} files/s "
            f"{b / s / 1e6:6.1f} MB/s ({100 * b / s / bandwidth:3.0f} % of the link)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bandwidth", type=float, default=40e6, help="link model, bytes/s")
    ap.add_argument("--transport", choices=("ptpip", "sim"), default="ptpip")
    ap.add_argument("--profile", default="generic")
    ap.add_argument("--scale", type=float, default=1.0, help="card size factor")
    args = ap.parse_args()
    bw = args.bandwidth
    print(f"link model {bw / 1e6:.0f} MB/s, transport {args.transport}, profile {args.profile}")
    photos = {"files_per_folder": max(2, int(40 * args.scale)), "jpeg_size": 2_500_000,
              "raw_size": 6_000_000}
    small = {"folders": 4, "files_per_folder": max(2, int(150 * args.scale)),
             "jpeg_size": 60_000, "raw_size": 60_000}
    with tempfile.TemporaryDirectory(prefix="ptpfs-import-bench.") as tmp:
        for name, card in (("photos", photos), ("small", small)):
            bench = Bench(args, **card)
            try:
                report = bench.run(os.path.join(tmp, name), os.path.join(tmp, name + ".state"))
            finally:
                bench.close()
            print(line(name, report, bw))
        bench = Bench(args, **photos)
        try:
            dest, state = os.path.join(tmp, "resume"), os.path.join(tmp, "resume.state")
            half: list[int] = []

            def stop(files: int, nfiles: int, done: int, total: int, name: str) -> None:
                if done >= total // 2:
                    half.append(done)
                    raise KeyboardInterrupt
            session = bench.session()
            first = Importer(session, dest, ImportOptions(journal_dir=state), progress=stop)
            t0 = time.monotonic()
            try:
                first.run()
            except KeyboardInterrupt:
                pass
            finally:
                session.close()
            t_first = time.monotonic() - t0
            total = first.report.planned_bytes
            report = bench.run(dest, state)
            missing = total - first.report.bytes_copied - report.resumed_bytes
            print(f"resume   interrupted after {first.report.bytes_copied / 1e6:.1f} MB "
                  f"({len(first.report.copied)} files, {t_first:.2f} s); the rerun skipped "
                  f"{report.skipped_imported} files, kept {report.resumed_bytes / 1e6:.1f} MB "
                  f"of the part file, fetched {report.bytes_copied / 1e6:.1f} MB "
                  f"(missing: {missing / 1e6:.1f} MB) for {len(report.copied)} files in "
                  f"{report.seconds:.2f} s ({report.bytes_copied / report.seconds / 1e6:.1f} MB/s)")
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
