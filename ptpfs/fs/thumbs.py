"""``/.ptp/thumbs``: the camera's own thumbnails, as a tree mirroring the storages.

``/.ptp/thumbs/SD1/DCIM/100CANON/IMG_0001.CR3.jpg`` is the small JPEG the camera
keeps for ``/SD1/DCIM/100CANON/IMG_0001.CR3`` (``IMG_0001.JPG`` keeps its name).
Only images and videos appear; folders mirror the real ones.  A thumbnail is
fetched with GetThumb (Canon EOS GetThumbEx(handle) only when GetThumb is not
offered: its parameters are not documented anywhere we could check) when it is
first opened, then kept in a byte-bounded LRU cache.

Sizes are consistent: ``stat`` reports ObjectInfo's ThumbCompressedSize (one
GetObjectInfo, a few hundred bytes, per file; no thumbnail transfer), and
the file reads as exactly that many bytes: a thumbnail the camera sends
shorter is padded with zero bytes after its end-of-image marker (JPEG readers
ignore them); one sent longer than announced, or with no size announced, is
reported with its real size from then on.  A file with no thumbnail
(NoThumbnailPresent) reads as empty.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache

from ptpfs.errors import ResponseError
from ptpfs.fs.tree import Tree
from ptpfs.protocol.codes import OC, OFC, RC
from ptpfs.session import Session

log = logging.getLogger("ptpfs.fs")

#: Inode of ``/.ptp/thumbs``; thumbs of objects are ``INO_THUMB | handle``,
#: storage folders ``INO_THUMB_STORAGE | storage_id``.
INO_THUMBS_DIR = 101
INO_THUMB = 1 << 43
INO_THUMB_STORAGE = 1 << 44
#: Bytes of thumbnails kept in memory.
CACHE_BYTES = 32 << 20

#: Extensions of files that get a thumbnail entry (besides image/video formats).
MEDIA_EXTENSIONS = frozenset({
    "jpg", "jpeg", "jpe", "heic", "heif", "hif", "tif", "tiff", "png", "gif", "bmp", "dng",
    "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "pef", "srw",
    "x3f", "mp4", "mov", "avi", "mts", "m2ts", "3gp", "mpg", "mpeg", "wmv", "mkv"})
#: Object formats that are video (PTP AVI, MPEG, ASF; MTP MP4, 3GP, WMV).
VIDEO_FORMATS = frozenset({OFC.AVI, OFC.MPEG, OFC.QT, OFC.WMV, OFC.MP4, OFC.MP2, OFC._3GP})
JPEG_EXTENSIONS = ("jpg", "jpeg", "jpe")


def is_media(name: str, fmt: int) -> bool:
    """Whether an object gets a thumbnail entry: image formats (0x38xx, Canon
    0xB1xx), video formats, or a media file extension."""
    if fmt & 0xFF00 == 0x3800 or fmt & 0xFF00 == 0xB100 or fmt in VIDEO_FORMATS:
        return True
    return name.rpartition(".")[2].lower() in MEDIA_EXTENSIONS if "." in name else False


def thumb_name(name: str) -> str:
    """The thumbnail's file name: *name*, plus ``.jpg`` unless it is a JPEG already."""
    return name if name.rpartition(".")[2].lower() in JPEG_EXTENSIONS else name + ".jpg"


@dataclass
class ThumbStats:
    """What the thumbnail tree cost on the wire."""

    infos: int = 0          # GetObjectInfo calls for the announced sizes
    fetched: int = 0        # thumbnails transferred
    bytes: int = 0          # thumbnail bytes transferred


class Thumbs:
    """The thumbnail tree of one mount: resolves names against the real tree."""

    def __init__(self, session: Session, tree: Tree, *, cache_bytes: int = CACHE_BYTES,
                 ttl: float = 60.0) -> None:
        self.session = session
        self.tree = tree
        self.stats = ThumbStats()
        self._lock = threading.Lock()
        self._data: LRUCache[int, bytes] = LRUCache(maxsize=cache_bytes, getsizeof=lambda b: len(b) + 1)
        self._sizes: TTLCache[int, int] = TTLCache(maxsize=65536, ttl=ttl)   # handle -> announced size
        self._fetch_locks: dict[int, threading.Lock] = {}
        self._grown: set[int] = set()   # sent longer than announced: the kernel may cache the old size

    # -- structure ------------------------------------------------------------------
    def lookup(self, parts: list[str]) -> Any:
        """The node a thumbnail path (below ``thumbs``) names; FileNotFoundError if none."""
        node = self.tree.root
        for i, part in enumerate(parts):
            if not node.is_dir:
                raise FileNotFoundError("/".join(parts))
            last = i == len(parts) - 1
            children = self.tree.storages() if node.kind == "root" else self.tree.children(node)
            child = children.get(part)
            if child is not None and child.is_dir:
                node = child
                continue
            if last:
                match = self._file_for(children, part)
                if match is not None:
                    return match
            raise FileNotFoundError("/".join(parts))
        return node

    def _file_for(self, children: dict[str, Any], name: str) -> Any:
        candidates = [name] if name.rpartition(".")[2].lower() in JPEG_EXTENSIONS else []
        if name.lower().endswith(".jpg"):
            candidates.append(name[:-4])
        for candidate in candidates:
            node = children.get(candidate)
            if node is not None and not node.is_dir and is_media(node.name, node.format) \
                    and thumb_name(node.name) == name:
                return node
        return None

    def children(self, node: Any) -> list[tuple[str, Any]]:
        """``(name, node)`` for the entries of a thumbnail directory."""
        children = self.tree.storages() if node.kind == "root" else self.tree.children(node)
        out = []
        for name, child in children.items():
            if child.is_dir:
                out.append((name, child))
            elif is_media(child.name, child.format):
                out.append((thumb_name(name), child))
        return out

    @staticmethod
    def ino(node: Any) -> int:
        """Inode number of a node's thumbnail entry."""
        if node.kind == "root":
            return INO_THUMBS_DIR
        if node.kind == "storage":
            return INO_THUMB_STORAGE | int(node.storage_id)
        return INO_THUMB | int(node.handle)

    # -- sizes and bytes ------------------------------------------------------------
    def size(self, node: Any) -> int:
        """The size ``stat`` reports (no thumbnail transfer when the device announces it)."""
        with self._lock:
            data = self._data.get(node.handle)
            announced = self._sizes.get(node.handle)
        if data is not None:
            return max(len(data), announced or 0)
        if announced is None:
            announced = self._announced(node.handle)
        if announced >= 0:
            return announced
        return len(self.content(node))

    def _announced(self, handle: int) -> int:
        """ThumbCompressedSize: 0 when the device says there is no thumbnail
        (no ThumbFormat), -1 when it has one of unannounced size."""
        try:
            info = self.session.get_object_info(handle)
        except ResponseError as exc:
            if exc.code == RC.InvalidObjectHandle:
                raise FileNotFoundError(f"object 0x{handle:08x} is gone") from None
            raise
        size = int(info.thumb_compressed_size)
        if not size and info.thumb_format:
            size = -1
        with self._lock:
            self.stats.infos += 1
            self._sizes[handle] = size
        return size

    def content(self, node: Any) -> bytes:
        """The thumbnail's bytes, padded to the announced size; fetched once."""
        handle = node.handle
        with self._lock:
            if self._sizes.get(handle) == 0:
                return b""        # the device said it has no thumbnail for this object
            data = self._data.get(handle)
            lock = self._fetch_locks.setdefault(handle, threading.Lock())
        if data is None:
            with lock:   # one transfer per thumbnail, however many readers
                with self._lock:
                    data = self._data.get(handle)
                if data is None:
                    data = self._fetch(handle)
                    with self._lock:
                        self._data[handle] = data
                        self.stats.fetched += 1
                        self.stats.bytes += len(data)
            with self._lock:
                self._fetch_locks.pop(handle, None)
        with self._lock:
            announced = self._sizes.get(handle) or 0
        if len(data) > announced > 0:
            log.info("object 0x%08x: thumbnail of %d bytes, %d announced", handle, len(data),
                     announced)
            with self._lock:
                self._sizes[handle] = len(data)
                self._grown.add(handle)
        if len(data) < announced:
            return data + bytes(announced - len(data))
        return data

    def _fetch(self, handle: int) -> bytes:
        caps = self.session.capabilities
        try:
            if caps.supports(OC.GetThumb) or not caps.supports(OC.EOS_GetThumbEx):
                got = self.session.get_thumb(handle)
            else:
                got = self.session.eos_get_thumb_ex(handle)
        except ResponseError as exc:
            if exc.code in (RC.NoThumbnailPresent, RC.OperationNotSupported,
                            RC.InvalidObjectFormatCode):
                return b""
            if exc.code == RC.InvalidObjectHandle:
                raise FileNotFoundError(f"object 0x{handle:08x} is gone") from None
            raise
        return bytes(got) if not isinstance(got, int) else b""

    def size_may_be_stale(self, node: Any) -> bool:
        """Whether the kernel may still hold a smaller announced size for this thumbnail
        (then it is read with direct I/O, which does not stop at the cached size)."""
        with self._lock:
            return node.handle in self._grown

    def forget(self, handle: int) -> None:
        """Drop a cached thumbnail (the object changed or went away)."""
        with self._lock:
            self._data.pop(handle, None)
            self._sizes.pop(handle, None)
            self._grown.discard(handle)
