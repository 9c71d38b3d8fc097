"""A generated sample card: DCIM/100CANON with JPEG and CR3 files.

File bytes are computed on demand from a per-file seed and one shared random
block, so a 1 GB file or a 10,000-file card costs neither RAM nor disk, and
the same options always give the same bytes (``store.find(path).read(...)``
and ``.sha256()`` give tests the expected content).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from ptpfs.protocol.codes import OFC
from ptpfs.sim.media import CR3_HEADER, JPEG_HEADER  # Exif/CR3 headers with thumbnails
from ptpfs.sim.store import ROOT, ObjectStore, Storage, StoreError

_BLOCK = 1 << 16
_SHARED = random.Random(0x50545046).randbytes(_BLOCK)
_DOUBLED = _SHARED + _SHARED

MP4_HEADER = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"

#: Storage IDs of the two slots (the R6 has two SD slots).
SD1 = 0x00010001
SD2 = 0x00020001
GiB = 1 << 30


class GeneratedContent:
    """Deterministic pseudo-random bytes: *seed* picks a rotation of the shared
    block for every 64 KiB block of the file; *header*/*trailer* overlay the ends."""

    def __init__(self, seed: int, size: int, header: bytes = b"", trailer: bytes = b"") -> None:
        self.seed = seed
        self.size = size
        self.header = header[:size]
        self.trailer = trailer if len(trailer) + len(self.header) <= size else b""

    def _rotation(self, block: int) -> int:
        x = (self.seed * 0x9E3779B97F4A7C15 + block * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
        return x % _BLOCK

    def read(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + max(0, n))
        if offset >= end:
            return b""
        out = bytearray()
        pos = offset
        while pos < end:
            block, within = divmod(pos, _BLOCK)
            take = min(_BLOCK - within, end - pos)
            start = self._rotation(block) + within
            out += _DOUBLED[start:start + take]
            pos += take
        if offset < len(self.header):
            head = self.header[offset:end]
            out[0:len(head)] = head
        if self.trailer:
            tstart = self.size - len(self.trailer)
            if end > tstart:
                lo = max(offset, tstart)
                out[lo - offset:end - offset] = self.trailer[lo - tstart:end - tstart]
        return bytes(out)


class SparseContent:
    """*size* bytes of zeros with *header* at the start, *trailer* at the end and a
    16-byte mark ``@<offset>`` at every GiB boundary: an object of many GiB that
    costs nothing to serve and, where the reader writes holes for zeros, nothing
    to keep, while its marks still show that every offset arrives where it belongs."""

    MARK = 16

    def __init__(self, size: int, header: bytes = b"", trailer: bytes = b"") -> None:
        self.size = size
        self.header = header[:size]
        self.trailer = trailer if len(trailer) + len(self.header) <= size else b""

    def _pieces(self) -> list[tuple[int, bytes]]:
        marks = [(k * GiB, f"@{k * GiB:015d}".encode()) for k in range(1, self.size // GiB + 1)
                 if k * GiB + self.MARK <= self.size - len(self.trailer)]
        return [(0, self.header)] + marks + [(self.size - len(self.trailer), self.trailer)]

    def read(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + max(0, n))
        if offset >= end:
            return b""
        out = bytearray(end - offset)
        for start, piece in self._pieces():
            lo, hi = max(offset, start), min(end, start + len(piece))
            if lo < hi:
                out[lo - offset:hi - offset] = piece[lo - start:hi - start]
        return bytes(out)


class SampleStore(ObjectStore):
    """The generated card.

    *folders* folders ``100CANON``, ``101CANON``… under ``DCIM`` hold
    *files_per_folder* files each, alternating ``IMG_nnnn.JPG`` (about
    *jpeg_size* bytes) and ``IMG_nnnn.CR3`` (about *raw_size*).  *big_file*
    adds ``DCIM/100CANON/MVI_9999.MP4`` of exactly that size, *sparse_file*
    ``DCIM/100CANON/MVI_9998.MP4`` (:class:`SparseContent`: mostly zeros, for
    objects of many GiB).  *second_slot*
    is ``"empty"`` (SD2 present, no files), ``"absent"`` (an empty slot: ID
    0x00020000) or ``"none"`` (one storage only).  Uploads go to a private
    temporary directory removed by :meth:`close`.
    """

    def __init__(self, *, folders: int = 1, files_per_folder: int = 10,
                 jpeg_size: int = 5_000_000, raw_size: int = 20_000_000,
                 big_file: int | None = None, sparse_file: int | None = None,
                 second_slot: str = "empty",
                 capacity: int | None = None, seed: int = 1) -> None:
        super().__init__()
        if second_slot not in ("empty", "absent", "none"):
            raise ValueError(f"second_slot must be empty, absent or none, not {second_slot!r}")
        rng = random.Random(seed)
        base = datetime(2023, 1, 16, 10, 0, 0)
        plan: list[tuple[int, str, int, int, bytes, bytes, tuple[int, int]]] = []
        k = 0
        for f in range(folders):
            for _ in range(files_per_folder):
                number = k // 2 + 1
                if k % 2 == 0:
                    size = int(jpeg_size * rng.uniform(0.9, 1.1))
                    plan.append((f, f"IMG_{number:04d}.JPG", size, OFC.EXIF_JPEG, JPEG_HEADER,
                                 b"\xff\xd9", (6000, 4000)))
                else:
                    size = int(raw_size * rng.uniform(0.9, 1.1))
                    plan.append((f, f"IMG_{number:04d}.CR3", size, OFC.CANON_CR3, CR3_HEADER, b"",
                                 (6000, 4000)))
                k += 1
        if big_file is not None:
            plan.append((0, "MVI_9999.MP4", int(big_file), OFC.MP4, MP4_HEADER, b"", (0, 0)))
        used = sum(p[2] for p in plan) + (sparse_file or 0)
        card = capacity if capacity is not None else max(64 * GiB, -(-used * 5 // 4 // GiB) * GiB)
        self.add_storage(Storage(SD1, "SD1", card, volume_label="EOS_DIGITAL"))
        if second_slot != "none":
            self.add_storage(Storage(SD2, "SD2", 32 * GiB, present=(second_slot == "empty")))
        with self.mutating():
            dcim = self.add_object(SD1, ROOT, "DCIM", folder=True, mtime=base).handle
            folder_handles = [
                self.add_object(SD1, dcim, f"{100 + f}CANON", folder=True,
                                mtime=base + timedelta(minutes=f)).handle
                for f in range(max(folders, 1 if big_file or sparse_file else 0))]
            for index, (f, name, size, fmt, header, trailer, dims) in enumerate(plan):
                content = GeneratedContent(seed * 1_000_003 + index, size, header, trailer)
                self.add_object(SD1, folder_handles[f], name, content=content, format=fmt,
                                mtime=base + timedelta(seconds=7 * index), image_size=dims)
            if sparse_file is not None:
                self.add_object(SD1, folder_handles[0], "MVI_9998.MP4", format=OFC.MP4,
                                content=SparseContent(int(sparse_file), MP4_HEADER, b"END!"),
                                mtime=base)
            self._pending_events.clear()  # the card was there before anyone connected

    def take_photo(self, storage_id: int = SD1, folder: str = "DCIM/100CANON",
                   size: int = 5_000_000) -> int:
        """Simulator side: the camera shoots a JPEG into *folder*; returns its handle."""
        with self.mutating():
            try:
                parent = self.find(folder, storage_id).handle
            except StoreError:
                parent = self._ensure_folders(storage_id, [p for p in folder.split("/") if p])
            existing = set(self._child_map(storage_id, parent))
            n = 1
            while f"IMG_{n:04d}.JPG" in existing or f"IMG_{n:04d}.CR3" in existing:
                n += 1
            content = GeneratedContent(self._next_seed(), size, JPEG_HEADER, b"\xff\xd9")
            obj = self.add_object(storage_id, parent, f"IMG_{n:04d}.JPG", content=content,
                                  format=OFC.EXIF_JPEG, image_size=(6000, 4000))
            self._emit("StorageInfoChanged", storage_id)
            return obj.handle

    def _next_seed(self) -> int:
        return 0x7A3E0000 + self.new_handle()
