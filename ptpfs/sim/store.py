"""The simulated camera's object tree: storages, objects, handles, uploads.

:class:`ObjectStore` keeps the tree in memory and is the one place that
allocates handles (stable for an object's lifetime).  Subclasses supply the
bytes: :class:`~ptpfs.sim.sample.SampleStore` generates them,
:class:`~ptpfs.sim.dirstore.DirStore` reads and writes a host directory.
Uploads to stores without a backing directory go to a private temporary
directory (mode 0700) that :meth:`ObjectStore.close` removes.

Every change is reported to listeners as ``(kind, value)`` where *kind* is an
event name (``ObjectAdded``, ``ObjectRemoved``, ``ObjectInfoChanged``,
``StoreAdded``, ``StoreRemoved``, ``StorageInfoChanged``) and *value* a handle
or storage ID.  Listeners run after the store lock is released.

Folder deletion is recursive; protected objects inside are kept and the
deletion reports ``PartialDeletion``.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ptpfs.protocol.codes import OFC, norm_parent

#: Parent handle of objects at a storage's root.
ROOT = 0
#: Object format codes the store needs.
FORMAT_UNDEFINED = OFC.Undefined
FORMAT_ASSOCIATION = OFC.Association
#: Formats that get a thumbnail.
IMAGE_FORMATS = frozenset({0x3801, 0x3804, 0x3807, 0x3808, 0x380B, 0x380D, 0xB103, 0xB108})

Listener = Callable[[str, int], None]


class StoreError(Exception):
    """A refused store operation; *response* names the PTP response code
    (an attribute of ``ptpfs.protocol.codes.RC``)."""

    def __init__(self, response: str, message: str = "") -> None:
        super().__init__(message or response)
        self.response = response


class Content(Protocol):
    """Bytes of a file object."""

    size: int

    def read(self, offset: int, n: int) -> bytes: ...


class BytesContent:
    """Content held in memory (small files added by tests)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.size = len(self.data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + max(0, n)]


class FileContent:
    """Content of a private host file (uploads to a generated card)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = os.stat(path).st_size

    def read(self, offset: int, n: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(max(0, n))


def _thumbnail() -> bytes:
    """A valid 160x120 grey baseline JPEG (one Huffman code per table)."""
    w, h = 160, 120
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    out += b"\xff\xdb\x00\x43\x00" + b"\x01" * 64                      # DQT
    out += b"\xff\xc0\x00\x0b\x08" + h.to_bytes(2, "big") + w.to_bytes(2, "big") + b"\x01\x01\x11\x00"
    out += b"\xff\xc4\x00\x14\x00" + b"\x01" + b"\x00" * 15 + b"\x00"   # DC: one 1-bit code, category 0
    out += b"\xff\xc4\x00\x14\x10" + b"\x01" + b"\x00" * 15 + b"\x00"   # AC: one 1-bit code, EOB
    out += b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"                  # SOS
    blocks = (w // 8) * (h // 8)
    bits = 2 * blocks                                                    # "0" DC + "0" EOB per block
    out += b"\x00" * (bits // 8) + (b"\x3f" if bits % 8 else b"")
    out += b"\xff\xd9"
    return bytes(out)


THUMBNAIL = _thumbnail()
THUMB_WIDTH, THUMB_HEIGHT = 160, 120


@dataclass
class Storage:
    """One storage (card slot).  A slot with ``present=False`` reports an ID
    whose low 16 bits are 0 and refuses every access."""

    storage_id: int
    description: str
    capacity: int
    volume_label: str = ""
    storage_type: int = 4        # removable RAM
    filesystem_type: int = 3     # DCF
    access: int = 0              # 0 rw, 1 ro without delete, 2 ro with delete
    present: bool = True
    full: bool = False           # report (and enforce) no free space

    @property
    def reported_id(self) -> int:
        """The ID GetStorageIDs reports (low 16 bits 0 while the slot is empty)."""
        return self.storage_id if self.present else self.storage_id & 0xFFFF0000


@dataclass
class SimObject:
    """A file or folder on the simulated card."""

    handle: int
    storage_id: int
    parent: int
    name: str
    format: int
    mtime: datetime
    ctime: datetime
    content: Content | None = None          # None for folders
    protection: int = 0                     # 0 none, 1 read-only
    children: dict[str, int] = field(default_factory=dict)
    image_size: tuple[int, int] = (0, 0)
    keywords: str = ""
    host_name: str = ""                     # sim:DIR: the host file's name if not *name*

    @property
    def is_folder(self) -> bool:
        return self.format == FORMAT_ASSOCIATION

    @property
    def key(self) -> str:
        """The object's key in its folder: the host name where it differs."""
        return self.host_name or self.name

    @property
    def size(self) -> int:
        return 0 if self.content is None else self.content.size

    @property
    def has_thumb(self) -> bool:
        return self.format in IMAGE_FORMATS

    def read(self, offset: int, n: int) -> bytes:
        """Up to *n* bytes at *offset* (fewer at the end of the object)."""
        if self.content is None or offset >= self.size or n <= 0:
            return b""
        return self.content.read(offset, min(n, self.size - offset))

    def sha256(self) -> str:
        """Hex SHA-256 of the whole object (streamed; for tests)."""
        digest = hashlib.sha256()
        offset = 0
        while offset < self.size:
            chunk = self.read(offset, 1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()


def validate_name(name: str) -> str:
    """Return *name* if it is a safe single path component, else raise
    ``StoreError('InvalidParameter')``."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
            or len(name.encode("utf-8", "surrogatepass")) > 255):
        raise StoreError("InvalidParameter", f"unacceptable file name {name!r}")
    return name


class Upload:
    """An object being received by SendObject.  Bytes go to a temporary file;
    :meth:`commit` makes the object appear, :meth:`abort` leaves nothing behind.

    Disk writes run in a background thread behind a bounded queue
    (:attr:`QUEUE_LIMIT` bytes), so the link keeps receiving while the disk
    catches up, as a camera's buffer does; a disk error surfaces at the next
    :meth:`write` or at :meth:`commit`.  Free space is checked against a budget
    refreshed whenever the upload would exceed it (and ``Storage.full`` on every
    chunk), not recomputed per chunk.
    """

    #: Most bytes waiting for the disk at any time.
    QUEUE_LIMIT = 8 << 20
    #: Most bytes handed to one ``writev``.
    WRITE_BATCH = 4 << 20

    def __init__(self, store: ObjectStore, pending: PendingObject, fd: int,
                 temp_name: str, dir_fd: int | None = None) -> None:
        self.store = store
        self.pending = pending
        self.fd = fd
        self.temp_name = temp_name
        self.dir_fd = dir_fd  # directory holding temp_name (DirStore), else None
        self.host_name = pending.name   # the name the bytes got on the host (DirStore)
        self.received = 0
        self.done = False
        self._budget: int | None = None          # free space at the last check
        self._cond = threading.Condition()
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._closing = False
        self._error: OSError | None = None
        self._writer: threading.Thread | None = None

    def write(self, data: bytes | memoryview) -> None:
        """Append *data* (copied; the caller may reuse its buffer); raises
        ``StoreError('StoreFull')`` if it does not fit, ``OSError`` if an
        earlier disk write failed."""
        n = len(data)
        if n == 0:
            return
        sid = self.pending.storage_id
        storage = self.store._storages.get(sid)
        if storage is not None and storage.full:
            raise StoreError("StoreFull")
        if self._budget is None or self.received + n > self._budget:
            self._budget = self.store.free_space(sid)
            if self.received + n > self._budget:
                raise StoreError("StoreFull")
        chunk = bytes(data)
        with self._cond:
            while self._error is None and self._queued and self._queued + n > self.QUEUE_LIMIT:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._queue.append(chunk)
            self._queued += n
            self._cond.notify_all()
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name="sim-upload-writer")
                self._writer.start()
        self.received += n

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch: list[bytes] = []
                size = 0
                while self._queue and size < self.WRITE_BATCH:
                    batch.append(self._queue.popleft())
                    size += len(batch[-1])
            try:
                _write_sparse(self.fd, batch)
            except OSError as exc:
                with self._cond:
                    self._error = exc
                    self._queue.clear()
                    self._queued = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._queued -= size
                self._cond.notify_all()

    def _flush(self) -> OSError | None:
        """Stop the writer after the queue is written; its error, if any."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()
        return self._error

    def commit(self) -> SimObject:
        """Close the file and publish the object under the reserved handle."""
        error = self._flush()
        if error is None:
            try:
                os.ftruncate(self.fd, self.received)   # a hole at the end (sparse writes)
            except OSError as exc:
                error = exc
        os.close(self.fd)
        self.done = True
        try:
            if error is not None:
                self.store._discard_upload(self)
                raise StoreError("StoreFull" if error.errno in _NO_SPACE else "GeneralError",
                                 f"writing the upload failed: {error}")
            return self.store._commit_upload(self)
        finally:
            self._close_dir()

    def abort(self) -> None:
        """Discard everything received.  Idempotent."""
        if self.done:
            return
        self.done = True
        with self._cond:
            self._queue.clear()
            self._queued = 0
        self._flush()
        os.close(self.fd)
        try:
            self.store._discard_upload(self)
        finally:
            self._close_dir()

    def _close_dir(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _write_sparse(fd: int, parts: list[bytes]) -> None:
    """Write *parts* at the file position; all-zero parts become holes (a 5 GiB
    upload of mostly zeros costs little disk, as the issue-13 test needs)."""
    run: list[bytes] = []
    for part in parts:
        if len(part) >= 4096 and part.count(0) == len(part):
            if run:
                _writev_all(fd, run)
                run = []
            os.lseek(fd, len(part), os.SEEK_CUR)
        else:
            run.append(part)
    if run:
        _writev_all(fd, run)


def _writev_all(fd: int, parts: list[bytes]) -> None:
    """Write every byte of *parts* (scatter/gather, handling short writes)."""
    views = [memoryview(p) for p in parts]
    while views:
        n = os.writev(fd, views[:1024])
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


@dataclass
class PendingObject:
    """What SendObjectInfo announced; the handle is reserved until SendObject."""

    handle: int
    storage_id: int
    parent: int
    name: str
    format: int
    size: int | None          # None when unknown (>= 4 GiB announced as 0xFFFFFFFF)
    mtime: datetime
    ctime: datetime
    keywords: str = ""


class ObjectStore:
    """In-memory tree of storages and objects with a lock and change listeners."""

    #: Whether FormatStore may erase it (a generated card yes, a host folder never).
    formattable = True

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._storages: dict[int, Storage] = {}
        self._objects: dict[int, SimObject] = {}
        self._roots: dict[int, dict[str, int]] = {}
        self._next_handle = itertools.count(1)
        self._listeners: list[Listener] = []
        self._pending_events: list[tuple[str, int]] = []
        self._depth = 0
        self._tempdir: str | None = None
        self._closed = False

    # -- listeners and change bookkeeping ----------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call *listener(kind, value)* on every change; returns a remover."""
        with self.lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return remove

    @contextmanager
    def mutating(self) -> Iterator[None]:
        """Hold the lock; emit collected events once the outermost block ends."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                events: list[tuple[str, int]] = []
                if self._depth == 0:
                    events, self._pending_events = self._pending_events, []
                listeners = list(self._listeners)
        for kind, value in events:
            for listener in listeners:
                listener(kind, value)

    def _emit(self, kind: str, value: int) -> None:
        self._pending_events.append((kind, value))

    def new_handle(self) -> int:
        """Allocate a fresh, never reused object handle."""
        return next(self._next_handle)

    # -- storages ------------------------------------------------------------------
    def add_storage(self, storage: Storage) -> Storage:
        with self.mutating():
            self._storages[storage.storage_id] = storage
            self._roots.setdefault(storage.storage_id, {})
        return storage

    def storages(self) -> list[Storage]:
        """Every slot, present or not, in ID order."""
        with self.lock:
            return sorted(self._storages.values(), key=lambda s: s.storage_id)

    def storage(self, storage_id: int) -> Storage:
        """The present storage with this ID; ``StoreError`` otherwise."""
        with self.lock:
            for s in self._storages.values():
                if s.storage_id == storage_id and s.present:
                    return s
                if s.reported_id == storage_id and not s.present:
                    raise StoreError("StoreNotAvailable")
            raise StoreError("InvalidStorageID")

    def used_space(self, storage_id: int) -> int:
        with self.lock:
            return sum(o.size for o in self._objects.values() if o.storage_id == storage_id)

    def free_space(self, storage_id: int) -> int:
        with self.lock:
            s = self._storages[storage_id]
            if s.full:
                return 0
            return max(0, s.capacity - self.used_space(storage_id))

    # -- lookups -------------------------------------------------------------------
    def get(self, handle: int) -> SimObject:
        """The object with this handle (``InvalidObjectHandle`` if none or its
        card is out)."""
        with self.lock:
            obj = self._objects.get(handle)
            if obj is None or not self._storages[obj.storage_id].present:
                raise StoreError("InvalidObjectHandle")
            return obj

    def _child_map(self, storage_id: int, parent: int) -> dict[str, int]:
        if parent == ROOT:
            return self._roots[storage_id]
        return self._objects[parent].children

    def refresh(self, storage_id: int, parent: int) -> None:
        """Hook: bring a folder up to date before it is listed (see DirStore)."""

    def children(self, storage_id: int, parent: int) -> list[SimObject]:
        """Objects directly in *parent* (``ROOT`` = storage root)."""
        with self.lock:
            self.storage(storage_id)
            if parent != ROOT:
                folder = self.get(parent)
                if not folder.is_folder or folder.storage_id != storage_id:
                    raise StoreError("InvalidParentObject")
        with self.mutating():
            self.refresh(storage_id, parent)
            return [self._objects[h] for h in self._child_map(storage_id, parent).values()]

    def descendants(self, storage_id: int, parent: int) -> list[SimObject]:
        """Every object below *parent*, depth first."""
        out: list[SimObject] = []
        stack = [parent]
        while stack:
            kids = self.children(storage_id, stack.pop())
            out.extend(kids)
            stack.extend(o.handle for o in reversed(kids) if o.is_folder)
        return out

    def all_objects(self, storage_id: int) -> list[SimObject]:
        """Every object of a present storage."""
        return self.descendants(storage_id, ROOT)

    def find(self, path: str, storage_id: int | None = None) -> SimObject:
        """Look up ``"DCIM/100CANON/IMG_0001.JPG"`` (first storage by default)."""
        with self.lock:
            sid = storage_id if storage_id is not None else self.storages()[0].storage_id
            parent = ROOT
            obj: SimObject | None = None
            for part in [p for p in path.split("/") if p]:
                self.refresh(sid, parent)
                handle = self._child_map(sid, parent).get(part)
                if handle is None:
                    raise StoreError("InvalidObjectHandle", f"no such object {path!r}")
                obj = self._objects[handle]
                parent = handle
            if obj is None:
                raise StoreError("InvalidObjectHandle", "empty path")
            return obj

    # -- building the tree (subclasses and simulator-side helpers) ------------------
    def _insert(self, obj: SimObject) -> SimObject:
        siblings = self._child_map(obj.storage_id, obj.parent)
        siblings[obj.key] = obj.handle
        self._objects[obj.handle] = obj
        self._emit("ObjectAdded", obj.handle)
        return obj

    def _unlink(self, obj: SimObject) -> list[int]:
        """Remove *obj* and its subtree from the model; returns removed handles."""
        removed: list[int] = []
        for child in list(obj.children.values()):
            removed += self._unlink(self._objects[child])
        siblings = self._child_map(obj.storage_id, obj.parent)
        if siblings.get(obj.key) == obj.handle:
            del siblings[obj.key]
        self._objects.pop(obj.handle, None)
        self._emit("ObjectRemoved", obj.handle)
        removed.append(obj.handle)
        return removed

    def add_object(self, storage_id: int, parent: int, name: str, *, content: Content | None = None,
                   folder: bool = False, format: int | None = None,
                   mtime: datetime | None = None, protection: int = 0,
                   image_size: tuple[int, int] = (0, 0)) -> SimObject:
        """Create an object in the model only (no backing I/O)."""
        validate_name(name)
        now = mtime or datetime.now().replace(microsecond=0)
        if format is None:
            format = FORMAT_ASSOCIATION if folder else _format_for(name)
        with self.mutating():
            if name in self._child_map(storage_id, parent):
                raise StoreError("InvalidParameter", f"{name!r} exists")
            obj = SimObject(self.new_handle(), storage_id, parent, name, format, now, now,
                            None if folder else (content or BytesContent(b"")),
                            protection=protection,
                            image_size=image_size if format in IMAGE_FORMATS else (0, 0))
            return self._insert(obj)

    def add_file(self, path: str, data: bytes | Content, *, storage_id: int | None = None,
                 mtime: datetime | None = None) -> SimObject:
        """Simulator side: create *path* (missing folders too) as the camera would."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise StoreError("InvalidParameter", "empty path")
        content = BytesContent(data) if isinstance(data, (bytes, bytearray)) else data
        with self.mutating():
            sid = storage_id if storage_id is not None else self.storages()[0].storage_id
            parent = self._ensure_folders(sid, parts[:-1])
            return self.add_object(sid, parent, parts[-1], content=content, mtime=mtime)

    def _ensure_folders(self, storage_id: int, parts: list[str]) -> int:
        parent = ROOT
        for part in parts:
            handle = self._child_map(storage_id, parent).get(part)
            if handle is None:
                handle = self.add_object(storage_id, parent, part, folder=True).handle
            parent = handle
        return parent

    # -- mutations requested by the host ----------------------------------------------
    def _check_writable(self, storage_id: int) -> Storage:
        s = self.storage(storage_id)
        if s.access != 0:
            raise StoreError("StoreReadOnly")
        return s

    def _resolve_parent(self, storage_id: int, parent: int) -> int:
        """Map the host's parent (0 or 0xFFFFFFFF = root) to a folder handle."""
        if norm_parent(parent) == ROOT:
            return ROOT
        obj = self.get(parent)
        if not obj.is_folder or obj.storage_id != storage_id:
            raise StoreError("InvalidParentObject")
        return parent

    def prepare_object(self, storage_id: int, parent: int, name: str, format: int,
                       size: int | None, mtime: datetime | None = None,
                       ctime: datetime | None = None, keywords: str = "") -> PendingObject:
        """Check an announced object (SendObjectInfo) and reserve its handle.
        Folders are created at once (and the returned pending has no data)."""
        with self.mutating():
            self._check_writable(storage_id)
            parent = self._resolve_parent(storage_id, parent)
            validate_name(name)
            self.refresh(storage_id, parent)
            existing = self._child_map(storage_id, parent).get(name)
            if existing is not None and (format == FORMAT_ASSOCIATION
                                         or self._objects[existing].is_folder):
                raise StoreError("InvalidParameter", f"{name!r} exists")
            if existing is not None and self._objects[existing].protection:
                raise StoreError("ObjectWriteProtected")
            if size is not None and size > self.free_space(storage_id):
                raise StoreError("StoreFull")
            now = datetime.now().replace(microsecond=0)
            pending = PendingObject(self.new_handle(), storage_id, parent, name, format,
                                    size, mtime or now, ctime or mtime or now, keywords)
            if format == FORMAT_ASSOCIATION:
                self._make_folder(pending)
            return pending

    def _make_folder(self, pending: PendingObject) -> SimObject:
        obj = SimObject(pending.handle, pending.storage_id, pending.parent, pending.name,
                        FORMAT_ASSOCIATION, pending.mtime, pending.ctime)
        return self._insert(obj)

    def begin_upload(self, pending: PendingObject) -> Upload:
        """Start receiving the bytes of a pending file object."""
        with self.lock:
            self._check_writable(pending.storage_id)
            if self._tempdir is None:
                self._tempdir = tempfile.mkdtemp(prefix="ptpfs-sim-")  # mode 0700
            fd, path = tempfile.mkstemp(dir=self._tempdir, prefix="upload-")
            return Upload(self, pending, fd, path)

    def _replace_existing(self, pending: PendingObject) -> None:
        siblings = self._child_map(pending.storage_id, pending.parent)
        old = siblings.get(pending.name)
        if old is not None:
            self._remove_backing(self._objects[old])
            self._unlink(self._objects[old])

    def _commit_upload(self, upload: Upload) -> SimObject:
        p = upload.pending
        with self.mutating():
            try:
                self._check_writable(p.storage_id)
                if p.parent != ROOT and p.parent not in self._objects:
                    raise StoreError("InvalidParentObject", "parent vanished")
                self._replace_existing(p)
            except Exception:
                self._discard_upload(upload)
                raise
            content = self._publish_upload(upload)
            host_name = upload.host_name if upload.host_name != p.name else ""
            obj = SimObject(p.handle, p.storage_id, p.parent, p.name, p.format, p.mtime, p.ctime,
                            content, keywords=p.keywords, host_name=host_name,
                            image_size=(6000, 4000) if p.format in IMAGE_FORMATS else (0, 0))
            self._insert(obj)
            self._emit("StorageInfoChanged", p.storage_id)
            return obj

    def _publish_upload(self, upload: Upload) -> Content:
        """Turn a finished upload's temp file into the object's content."""
        return FileContent(upload.temp_name)

    def _discard_upload(self, upload: Upload) -> None:
        try:
            os.unlink(upload.temp_name)
        except FileNotFoundError:
            pass

    def _remove_backing(self, obj: SimObject) -> bool:
        """Hook: delete the bytes behind *obj* (a file or an empty folder);
        ``False`` if they could not be removed (the object then stays)."""
        if isinstance(obj.content, FileContent) and self._tempdir and \
                obj.content.path.startswith(self._tempdir):
            try:
                os.unlink(obj.content.path)
            except FileNotFoundError:
                pass
        return True

    def capacity(self, storage_id: int) -> int:
        """MaxCapacity of a storage in bytes."""
        with self.lock:
            return self._storages[storage_id].capacity

    def delete(self, handle: int) -> tuple[list[int], bool]:
        """DeleteObject: remove *handle* (folders recursively).  Returns the
        removed handles and whether everything went (``False`` = partial)."""
        with self.mutating():
            obj = self.get(handle)
            storage = self.storage(obj.storage_id)
            if storage.access == 1:
                raise StoreError("StoreReadOnly")
            if obj.protection:
                raise StoreError("ObjectWriteProtected")
            removed: list[int] = []
            complete = self._delete_tree(obj, removed)
            if removed:
                self._emit("StorageInfoChanged", obj.storage_id)
            return removed, complete

    def _delete_tree(self, obj: SimObject, removed: list[int]) -> bool:
        complete = True
        if obj.is_folder:
            self.refresh(obj.storage_id, obj.handle)
            for child in list(obj.children.values()):
                complete &= self._delete_tree(self._objects[child], removed)
        if obj.protection or (obj.is_folder and obj.children):
            return False
        if not self._remove_backing(obj):
            return False
        removed += self._unlink(obj)
        return complete

    def move(self, handle: int, storage_id: int, parent: int) -> SimObject:
        """MoveObject: re-parent *handle* (same handle afterwards)."""
        with self.mutating():
            obj = self.get(handle)
            self._check_writable(obj.storage_id)
            self._check_writable(storage_id)
            if obj.protection:
                raise StoreError("ObjectWriteProtected")
            new_parent = self._resolve_parent(storage_id, parent)
            p = new_parent
            while p != ROOT:
                if p == handle:
                    raise StoreError("InvalidParentObject", "cannot move a folder into itself")
                p = self._objects[p].parent
            if obj.name in self._child_map(storage_id, new_parent):
                if self._child_map(storage_id, new_parent)[obj.name] == handle:
                    return obj
                raise StoreError("InvalidParameter", f"{obj.name!r} exists there")
            self._move_backing(obj, storage_id, new_parent, obj.name)
            self._relink(obj, storage_id, new_parent, obj.name)
            return obj

    def rename(self, handle: int, name: str) -> SimObject:
        """Give *handle* a new file name in the same folder."""
        with self.mutating():
            obj = self.get(handle)
            self._check_writable(obj.storage_id)
            validate_name(name)
            if obj.protection:
                raise StoreError("ObjectWriteProtected")
            if name == obj.name:
                return obj
            if name in self._child_map(obj.storage_id, obj.parent):
                raise StoreError("InvalidParameter", f"{name!r} exists")
            self._move_backing(obj, obj.storage_id, obj.parent, name)
            self._relink(obj, obj.storage_id, obj.parent, name)
            return obj

    def set_mtime(self, handle: int, when: datetime) -> SimObject:
        """MTP DateModified: set an object's modification date."""
        with self.mutating():
            obj = self.get(handle)
            self._check_writable(obj.storage_id)
            if obj.protection:
                raise StoreError("ObjectWriteProtected")
            obj.mtime = when
            self._set_backing_mtime(obj, when)
            self._emit("ObjectInfoChanged", obj.handle)
            return obj

    def _set_backing_mtime(self, obj: SimObject, when: datetime) -> None:
        """Hook: give the bytes behind *obj* the date *when*."""

    def _move_backing(self, obj: SimObject, storage_id: int, parent: int, name: str) -> None:
        """Hook: move the bytes behind *obj*; the model is updated afterwards."""

    def _relink(self, obj: SimObject, storage_id: int, parent: int, name: str) -> None:
        del self._child_map(obj.storage_id, obj.parent)[obj.key]
        old_storage = obj.storage_id
        obj.storage_id, obj.parent, obj.name = storage_id, parent, name
        obj.host_name = ""
        self._child_map(storage_id, parent)[name] = obj.handle
        if old_storage != storage_id:
            stack = list(obj.children.values())
            while stack:
                child = self._objects[stack.pop()]
                child.storage_id = storage_id
                stack.extend(child.children.values())
        self._emit("ObjectInfoChanged", obj.handle)

    # -- simulator-side controls ---------------------------------------------------------
    def set_access(self, storage_id: int, access: int) -> None:
        """Make a storage read-write (0) or read-only (1, or 2 = delete allowed)."""
        with self.mutating():
            self._storages[storage_id].access = access
            self._emit("StorageInfoChanged", storage_id)

    def set_full(self, storage_id: int, full: bool) -> None:
        """Pretend the storage has no free space left (or undo that)."""
        with self.mutating():
            self._storages[storage_id].full = full
            self._emit("StorageInfoChanged", storage_id)

    def remove_card(self, storage_id: int) -> None:
        """Take the card out of a slot: ``StoreRemoved``; its objects vanish."""
        with self.mutating():
            s = self._storages[storage_id]
            if s.present:
                s.present = False
                self._emit("StoreRemoved", storage_id)

    def insert_card(self, storage_id: int) -> None:
        """Put the card back: ``StoreAdded``; its objects return with their handles."""
        with self.mutating():
            s = self._storages[storage_id]
            if not s.present:
                s.present = True
                self._emit("StoreAdded", storage_id)

    def close(self) -> None:
        """Release resources (the private upload directory).  Idempotent."""
        with self.lock:
            self._closed = True
            if self._tempdir is not None:
                shutil.rmtree(self._tempdir, ignore_errors=True)
                self._tempdir = None


def _format_for(name: str) -> int:
    try:
        from ptpfs.protocol.codes import format_for_filename
    except ImportError:  # pragma: no cover - protocol package not there yet
        return FORMAT_UNDEFINED
    return format_for_filename(name)

