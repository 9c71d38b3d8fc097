#!/usr/bin/env python3
"""Client CPU per listed object over the USB transport, with the device's time taken out.

    scripts/listing_cpu_bench.py [--count 3000] [--rounds 5] [ROOT]

Runs ptpfs's real listing path for one object — ``Session.get_object_info`` through
``UsbTransport`` (pyusb's backend seam), ObjectInfo decoding and ``meta_from_info`` — against
a backend that replays a GetObjectInfo data phase and its response instantly, so the figure
is ptpfs's own CPU per object (docs/usb-comparison.md, issue 13 §2).  ROOT (default: this
checkout) selects the ptpfs tree to time, to compare two versions side by side.  Prints the
best of ``--rounds`` rounds of ``--count`` objects, in microseconds of process CPU.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from typing import Any


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", nargs="?", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    sys.path.insert(0, args.root)

    from ptpfs.connect import open_session
    from ptpfs.protocol.datasets import ObjectInfo
    from ptpfs.sim import make_camera
    from ptpfs.sim.usb_backend import SimUsbBackend
    try:
        from ptpfs.services.listing import meta_from_info
    except ImportError:                        # older trees
        from ptpfs.fs.listing import meta_from_info  # type: ignore[no-redef]

    info = ObjectInfo(0x10001, 0x3801, compressed_size=123456, parent=0,
                      filename="IMG_0001.JPG", capture_date="20240101T101010",
                      modification_date="20240101T101010").encode()

    class Replay(SimUsbBackend):
        """The simulator until ``fast``; then every command gets the same ObjectInfo."""

        fast = False
        queue: list[bytes] = []

        def bulk_write(self, h: Any, ep: int, intf: int, data: Any, timeout: int) -> int:
            if not self.fast:
                return int(super().bulk_write(h, ep, intf, data, timeout))
            raw = memoryview(data).cast("B")
            tid = struct.unpack_from("<I", raw, 8)[0]
            self.queue = [struct.pack("<IHHI", 12 + len(info), 2, 0x1008, tid) + info,
                          struct.pack("<IHHI", 12, 3, 0x2001, tid)]
            return len(raw)

        def bulk_read(self, h: Any, ep: int, intf: int, buff: Any, timeout: int) -> int:
            if not self.fast:
                return int(super().bulk_read(h, ep, intf, buff, timeout))
            reply = self.queue.pop(0)
            memoryview(buff).cast("B")[:len(reply)] = reply
            return len(reply)

    camera = make_camera(None, "generic", folders=1, files_per_folder=2, jpeg_size=1000,
                         raw_size=1000)
    backend = Replay([camera])
    session = open_session("usb", usb_backend=backend)
    backend.fast = True
    best = float("inf")
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(args.count):
            meta_from_info(session, 5, session.get_object_info(5))
        best = min(best, (time.process_time() - start) / args.count)
    backend.fast = False
    session.close()
    print(f"{args.root}: {best * 1e6:.1f} us CPU per listed object (client only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
