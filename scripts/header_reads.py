#!/usr/bin/env python3
"""Read the embedded thumbnail of photos the way desktop thumbnailers do.

    scripts/header_reads.py FILE...

For a JPEG: what tumbler's JPEG plugin does, ``mmap`` the file, walk the JPEG
markers to the Exif APP1 segment and take the IFD1 thumbnail from it.  For a
CR3: walk the ISO-BMFF boxes (``ftyp``, ``moov``, Canon's ``uuid``) with small
``pread`` calls to the ``THMB`` box.  Prints ``FILE LENGTH SHA256`` of each
thumbnail found.  Run it on files of a ptpfs mount and compare the bytes the
mount fetched (``/.ptp/stats``) with the file sizes: the tests do, in a separate
process, because an ``mmap`` page fault served by FUSE threads of the same
Python process would wait for the interpreter lock the faulting thread holds.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import sys
from collections.abc import Iterator


def tumbler_read_exif_thumbnail(path: str) -> bytes:
    """What tumbler's JPEG thumbnailer does: mmap the file, walk the JPEG markers
    to the Exif APP1 and take the IFD1 thumbnail from it (touching nothing else)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert m[:2] == b"\xff\xd8"
        pos = 2
        while pos + 4 <= len(m):
            marker, length = m[pos + 1], struct.unpack(">H", m[pos + 2:pos + 4])[0]
            if marker == 0xE1 and m[pos + 4:pos + 10] == b"Exif\x00\x00":
                tiff = bytes(m[pos + 10:pos + 2 + length])
                break
            if marker == 0xDA:
                raise AssertionError("no Exif APP1 before the image data")
            pos += 2 + length
        else:
            raise AssertionError("no Exif APP1")
    end = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack(end + "I", tiff[4:8])[0]
    n = struct.unpack(end + "H", tiff[ifd0:ifd0 + 2])[0]
    ifd1 = struct.unpack(end + "I", tiff[ifd0 + 2 + 12 * n:ifd0 + 6 + 12 * n])[0]
    tags = {}
    for i in range(struct.unpack(end + "H", tiff[ifd1:ifd1 + 2])[0]):
        tag, typ, count, value = struct.unpack(end + "HHII", tiff[ifd1 + 2 + 12 * i:ifd1 + 14 + 12 * i])
        tags[tag] = value
    start, length = tags[0x0201], tags[0x0202]
    return tiff[start:start + length]


def cr3_read_thumbnail(path: str) -> bytes:
    """A CR3 header reader: walk the ISO-BMFF boxes (ftyp, moov, Canon's uuid)
    to THMB with small preads, as RAW thumbnailers do."""
    with open(path, "rb") as f:
        def boxes(start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
            pos = start
            while pos + 8 <= end:
                size, kind = struct.unpack(">I4s", os.pread(f.fileno(), 8, pos))
                if size < 8:
                    raise AssertionError(f"bad box at {pos}")
                yield kind, pos + 8, pos + size
                pos += size
        size = os.fstat(f.fileno()).st_size
        for kind, body, end in boxes(0, size):
            if kind != b"moov":
                continue
            for kind2, body2, end2 in boxes(body, end):
                if kind2 == b"uuid":
                    for kind3, body3, _end3 in boxes(body2 + 16, end2):
                        if kind3 == b"THMB":
                            head = os.pread(f.fileno(), 16, body3)
                            length = struct.unpack(">I", head[8:12])[0]
                            return os.pread(f.fileno(), length, body3 + 16)
        raise AssertionError("no THMB box")


def main(argv: list[str]) -> int:
    status = 0
    for path in argv:
        try:
            if path.lower().endswith(".cr3"):
                thumb = cr3_read_thumbnail(path)
            else:
                thumb = tumbler_read_exif_thumbnail(path)
        except (OSError, AssertionError, struct.error, KeyError) as exc:
            print(f"{path}: no thumbnail: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{path} {len(thumb)} {hashlib.sha256(thumb).hexdigest()}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
