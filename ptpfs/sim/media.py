"""File headers of the sample card, shaped like a camera's, with embedded thumbnails.

* :data:`JPEG_HEADER`: SOI, an Exif APP1 segment whose IFD1 carries the
  160x120 JPEG thumbnail (Compression 6, JPEGInterchangeFormat/-Length), as a
  camera writes it; a tumbler-style reader finds the thumbnail by walking the
  markers to APP1 and reading only that segment.
* :data:`CR3_HEADER`: an ISO-BMFF ``ftyp`` (``crx ``) and a ``moov`` box holding
  Canon's ``uuid`` box 85c0b687-820f-11e0-8111-f4ce462b6a48 with ``CNCV`` and a
  ``THMB`` thumbnail box (version 0: width, height, JPEG length, then the JPEG),
  the layout CR3 readers walk (container directory first, thumbnail inside it).

The rest of a sample file stays pseudo-random: these are headers for readers
that stop once they have the thumbnail, not decodable photos.
"""

from __future__ import annotations

import struct

from ptpfs.sim.store import THUMB_HEIGHT, THUMB_WIDTH, THUMBNAIL

#: Canon's CR3 metadata box UUID.
CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")


def _ifd(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
    """A little-endian TIFF IFD: (tag, type, count, value) entries."""
    out = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3:   # SHORT: left-justified in the 4-byte field
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    return out + struct.pack("<I", next_ifd)


def exif_jpeg_header(thumb: bytes = THUMBNAIL) -> bytes:
    """SOI + an Exif APP1 with an IFD1 JPEG thumbnail."""
    ifd0_at = 8
    ifd0_len = 2 + 12 * 1 + 4
    ifd1_at = ifd0_at + ifd0_len
    ifd1_len = 2 + 12 * 3 + 4
    thumb_at = ifd1_at + ifd1_len
    tiff = b"II*\x00" + struct.pack("<I", ifd0_at)
    tiff += _ifd([(0x0112, 3, 1, 1)], ifd1_at)                  # Orientation: top-left
    tiff += _ifd([(0x0103, 3, 1, 6),                            # Compression: JPEG
                  (0x0201, 4, 1, thumb_at),                     # JPEGInterchangeFormat
                  (0x0202, 4, 1, len(thumb))], 0)               # ...Length
    tiff += thumb
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def cr3_header(thumb: bytes = THUMBNAIL) -> bytes:
    """``ftyp`` + ``moov``/``uuid``(Canon)/{``CNCV``, ``THMB``}."""
    ftyp = _box(b"ftyp", b"crx " + struct.pack(">I", 1) + b"crx isom")
    cncv = _box(b"CNCV", b"CanonCR3_001/01.09.00/00.00.00")
    thmb = _box(b"THMB", b"\x00\x00\x00\x00" + struct.pack(">HHIHH", THUMB_WIDTH, THUMB_HEIGHT,
                                                           len(thumb), 1, 0) + thumb)
    moov = _box(b"moov", _box(b"uuid", CANON_UUID + cncv + thmb))
    return ftyp + moov


JPEG_HEADER = exif_jpeg_header()
CR3_HEADER = cr3_header()
