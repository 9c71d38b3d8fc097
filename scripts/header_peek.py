#!/usr/bin/env python3
"""How many bytes a header peek of a large JPEG fetches from the camera.

Makes an ~11 MB JPEG (Pillow, random pixels), serves it from a simulated
camera (``sim:DIR``, android-mtp by default) mounted in this process, and
reports the bytes the session received for: Pillow's ``Image.open`` + size +
EXIF, ``file``, and ``head -c 64K``; each on a fresh mount so no cache helps.
Needs Pillow (``pip install pillow``).  Readers that peek run in child
processes, as thumbnailers do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

PILLOW = ("import sys; from PIL import Image; im = Image.open(sys.argv[1]); "
          "print(im.size, len(im.getexif()))")


def make_jpeg(path: str, target: int) -> None:
    """A JPEG of about *target* bytes (noise compresses badly)."""
    from PIL import Image

    side = 1000
    while True:
        img = Image.frombytes("RGB", (side, side * 3 // 4), os.urandom(side * (side * 3 // 4) * 3))
        exif = Image.Exif()
        exif[0x010F] = "ptpfs"
        img.save(path, "JPEG", quality=95, exif=exif)
        if os.path.getsize(path) >= target:
            return
        side = int(side * (target / os.path.getsize(path)) ** 0.5) + 16


def measure(profile: str, card: str, name: str, cmd: list[str]) -> int:
    from fuse_helpers import mounted_session

    from ptpfs.session import Session
    from ptpfs.sim import make_camera
    from ptpfs.transport.inprocess import InProcessTransport

    camera = make_camera(card, profile, watch_interval=None)
    session = Session(InProcessTransport(camera)).open()
    try:
        with mounted_session(session) as mnt:
            storage = next(n for n in sorted(os.listdir(mnt)) if n != ".ptp")
            path = os.path.join(mnt, storage, name)
            os.stat(path)
            before = session.stats.bytes_in
            subprocess.run([*cmd, path], check=True, capture_output=True)
            return session.stats.bytes_in - before
    finally:
        session.close()
        camera.store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="android-mtp")
    p.add_argument("--size", type=int, default=11_000_000, help="JPEG size (default 11 MB)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptpfs-peek-") as card:
        make_jpeg(os.path.join(card, "big.jpg"), args.size)
        size = os.path.getsize(os.path.join(card, "big.jpg"))
        print(f"{args.profile}: {size} byte JPEG")
        for label, cmd in (("Pillow open+size+EXIF", [sys.executable, "-c", PILLOW]),
                           ("file", ["file"]), ("head -c 64K", ["head", "-c", "65536"])):
            got = measure(args.profile, card, "big.jpg", cmd)
            print(f"  {label}: {got} bytes fetched ({got / 1048576:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
