"""The upload lifecycle: files being written, from open to the camera.

A file opened for writing is an :class:`Upload`: its bytes live in a private
spool file (:mod:`ptpfs.fs.spool`) and reach the device with SendObjectInfo +
SendObject (one critical section on the session, see ``Session.exclusive``).
:class:`Uploads` owns every such file by path and by handle, and answers the
path operations that concern them, so that (close-to-open, like NFS):

* while any handle has a file open for writing, ``stat``, ``open``,
  ``truncate``, ``unlink``, ``rename`` and ``utimens`` of its path see the open
  file (its current size and bytes), not the device's copy;
* ``close`` (FUSE flush) and ``fsync`` send the file if it changed since it
  was last sent, so an upload error reaches the program; the file stays open
  and consistent for further writes, truncates and appends;
* the last ``release`` sends what is left and forgets the path;
* a replaced object is deleted only after the new one is on the device;
* ``unlink`` of an open file removes the name at once (the device copy goes
  now); the open handles keep working on the local bytes and nothing more is
  sent;
* ``rename`` onto an existing name replaces it (see :meth:`Uploads.rename`).

See docs/ptpfs.md, "Writing files".
"""

from __future__ import annotations

import collections
import datetime as _dt
import errno
import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mfusepy import FuseOSError

from ptpfs.errors import (
    ConnectionLost,
    ProtocolError,
    PTPError,
    ResponseError,
    TransportError,
)
from ptpfs.fs.mtimes import MTimes
from ptpfs.fs.spool import SpoolDir
from ptpfs.fs.tree import Node, Tree
from ptpfs.protocol.codes import DT, OC, OPC, RC, wire_parent
from ptpfs.protocol.datasets import ObjectInfo, ObjectPropEntry
from ptpfs.services.listing import ObjectMeta
from ptpfs.services.uploads import confirm_upload
from ptpfs.session import Session

log = logging.getLogger("ptpfs.fs")

U32_MAX = 0xFFFFFFFF
class _SpoolWriter:
    """Writes an upload's data into its spool file from a background thread.

    The FUSE write handler only queues the bytes (at most :attr:`LIMIT` of
    them), so the page-cache write of the spool overlaps the kernel handing
    over the next request.  :meth:`drain` waits until everything queued is in
    the file and raises the first write error (``OSError``), which therefore
    reaches the next write, read, truncate or the commit at ``close()``.
    """

    LIMIT = 8 << 20

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._writing = False
        self.error: OSError | None = None

    def put(self, data: bytes, offset: int) -> None:
        """Queue *data* for *offset* (waits while the queue is full)."""
        with self._cond:
            while self.error is None and self._queued and self._queued + len(data) > self.LIMIT:
                self._cond.wait()
            if self.error is not None:
                raise self.error
            self._queue.append((data, offset))
            self._queued += len(data)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="ptpfs-spool",
                                                daemon=True)
                self._worker.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue or self.error is not None:
                    self._worker = None           # a later put starts a new one
                    self._cond.notify_all()
                    return
                data, offset = self._queue.popleft()
                self._writing = True
            try:
                view = memoryview(data)
                while view:
                    n = os.pwrite(self.fd, view, offset)
                    view, offset = view[n:], offset + n
            except OSError as exc:
                with self._cond:
                    self.error = exc
                    self._queue.clear()
                    self._queued = 0
            with self._cond:
                self._writing = False
                self._queued = max(0, self._queued - len(data))
                self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every queued byte is in the file; raise a write error."""
        with self._cond:
            while (self._queue or self._writing) and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def discard(self) -> None:
        """Drop what is queued and wait for a write in progress."""
        with self._cond:
            self._queue.clear()
            self._queued = 0
            while self._writing:
                self._cond.wait()


class Upload:
    """A file being written: spooled locally, sent to the device at commit."""

    def __init__(self, spool_dir: SpoolDir, storage_id: int, parent: int, name: str,
                 replaces: int | None = None) -> None:
        self.storage_id = storage_id
        self.parent = parent          # 0 = storage root
        self.name = name
        self.replaces = replaces      # handle of the object this one replaces
        self.fd = spool_dir.anonymous_file()
        self.size = 0
        self.dirty = True
        self.handle: int | None = None
        self.mtime = _dt.datetime.now().timestamp()
        self.mtime_set: float | None = None   # set by utimens: kept on the device copy
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.refs = 1
        self.path: str | None = None  # its name in the mount (None once unlinked)
        self.cancelled = False  # unlinked: nothing more is sent
        self.stale: list[int] = []    # device copies under an earlier name, deleted at commit
        self.orphan: int | None = None  # a half-sent object that could not be deleted
        self.born = 0                 # session generation of the parent handle
        self._source: tuple[Any, int] | None = None   # original contents not fetched yet
        #: Largest size the device can take (``None``: no limit; 4 GiB - 2 without
        #: SendObjectPropList, where ObjectInfo's 32-bit size is all there is).
        self.max_size: int | None = None
        self._spool = _SpoolWriter(self.fd)

    @property
    def state(self) -> str:
        """``open`` (changed since sent), ``sent``, or ``unlinked``."""
        if self.cancelled:
            return "unlinked"
        return "open" if self.dirty else "sent"

    # -- local data -------------------------------------------------------------
    def prefill(self, session: Session, handle: int) -> None:
        """Start from an existing object's contents (open without O_TRUNC)."""
        class _Sink:
            def __init__(self, up: Upload) -> None:
                self.up = up

            def write(self, data: bytes | memoryview) -> int:
                n = os.pwrite(self.up.fd, data, self.up.size)
                self.up.size += n
                return n
        self.size = 0
        session.get_object(handle, sink=_Sink(self))
        self.dirty = False

    def prefill_later(self, session: Session, handle: int, size: int) -> None:
        """Like :meth:`prefill`, but only once the bytes are needed (a first read,
        write or truncate): ``touch`` or an open without writing costs nothing."""
        self.size = size
        self.dirty = False
        self._source = (session, handle)

    def _load(self) -> None:
        """Fetch the deferred original contents (caller holds :attr:`lock`)."""
        source, self._source = self._source, None
        if source is not None:
            try:
                self.prefill(*source)
            except BaseException:
                self._source = source
                raise

    def write(self, data: bytes, offset: int) -> int:
        """Write into the spool (queued for the spool thread); marks the upload dirty."""
        with self.lock:
            self._check_size(offset + len(data))
            self._load()
            self._spool.put(bytes(data), offset)
            self.size = max(self.size, offset + len(data))
            self.dirty = True
            self.mtime = time.time()
            self.mtime_set = None
            return len(data)

    def read(self, offset: int, size: int) -> bytes:
        """Read back what was written."""
        if self._source is not None:
            with self.lock:
                self._load()
        self._spool.drain()
        return os.pread(self.fd, max(0, min(size, self.size - offset)), offset)

    def truncate(self, length: int) -> None:
        """Set the spooled length."""
        with self.lock:
            self._check_size(length)
            if length:
                self._load()
            else:
                self._source = None
            self._spool.drain()
            os.ftruncate(self.fd, length)
            self.size = length
            self.dirty = True
            self.mtime = time.time()
            self.mtime_set = None

    def _check_size(self, size: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise OSError(errno.EFBIG, f"{self.name}: the device takes files up to "
                          f"{self.max_size} bytes (no 64-bit upload)")

    # -- device -------------------------------------------------------------------
    def object_info(self) -> ObjectInfo:
        """The ObjectInfo announced with SendObjectInfo."""
        from ptpfs.protocol.codes import format_for_filename
        from ptpfs.protocol.datasets import ObjectInfo
        from ptpfs.protocol.wire import format_datetime

        when = self.mtime_set if self.mtime_set is not None else self.mtime
        stamp = format_datetime(_dt.datetime.fromtimestamp(int(when)))
        return ObjectInfo(storage_id=self.storage_id, object_format=format_for_filename(self.name),
                          compressed_size=min(self.size, U32_MAX), parent=self.parent,
                          filename=self.name, capture_date=stamp, modification_date=stamp)

    def commit(self, session: Session) -> tuple[int, list[int]]:
        """Send the object if dirty; returns ``(new_handle, deleted_old_handles)``.

        Raises the library's exception on failure, after removing any
        half-created object from the device.  The new handle is confirmed by
        name (:func:`confirm_upload`); a device that wrote over an existing
        file of the same name without truncating it (the size it reports is
        not ours) gets the object deleted and sent once more.  The replaced
        object and earlier copies (sent before a rename) are deleted after
        the new object is on the device.
        """
        with self.lock, session.exclusive():
            self._spool.drain()       # a spool write error fails the close
            if not self.dirty and self.handle is not None:
                return self.handle, []
            if not self.dirty and self.replaces is not None:
                return self.replaces, []   # opened for writing, nothing written yet
            deleted: list[int] = []
            handle, stored = self._send(session)
            if stored is not None and self.size < U32_MAX and stored != self.size:
                log.info("%s: device kept %d bytes of a %d-byte upload (wrote in place "
                         "without truncating); deleting and sending again", self.name, stored,
                         self.size)
                session.delete_object(handle)
                deleted.append(handle)
                handle, stored = self._send(session)
                if stored is not None and stored != self.size:
                    self._discard(session, handle)
                    raise ProtocolError(f"{self.name}: the device stored {stored} bytes of "
                                        f"{self.size}")
            olds = [h for h in [self.replaces, self.handle, *self.stale] if h is not None]
            for old in dict.fromkeys(olds):
                if old == handle or old in deleted:
                    continue
                try:
                    session.delete_object(old)
                    deleted.append(old)
                except ResponseError as exc:
                    if exc.code == RC.InvalidObjectHandle:
                        # the device replaced it itself (same name): it is gone all the same,
                        # and the tree must forget it now, not when the event comes
                        deleted.append(old)
                    else:
                        log.warning("replaced object 0x%08x could not be deleted: %s", old, exc)
                except Exception as exc:  # noqa: BLE001 - the new object is there
                    log.warning("replaced object 0x%08x could not be deleted: %s", old, exc)
            self.stale = []
            self.handle = handle
            self.replaces = None
            self.dirty = False
            return handle, [h for h in deleted if h != handle]

    def _send(self, session: Session) -> tuple[int, int | None]:
        """SendObjectInfo + SendObject + confirmation: ``(handle, size the device reports)``."""
        info = self.object_info()
        if self.size >= U32_MAX:
            # 4 GiB or more: only MTP SendObjectPropList carries a 64-bit size
            if not session.capabilities.supports(OC_SEND_OBJECT_PROP_LIST):
                raise OSError(errno.EFBIG, f"{self.name}: the device takes no file of "
                              "4 GiB or more")
            entries = [ObjectPropEntry(0, OPC_FILENAME, DT_STR, self.name),
                       ObjectPropEntry(0, OPC_DATE_MODIFIED, DT_STR, info.modification_date)]
            _, _, predicted = session.send_object_prop_list(
                self.storage_id, wire_parent(self.parent), info.object_format, self.size, entries)
        else:
            _, _, predicted = session.send_object_info(self.storage_id, wire_parent(self.parent),
                                                       info)
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)   # a dup shares the offset of an earlier send
            with os.fdopen(os.dup(self.fd), "rb", buffering=0) as source:
                session.send_object(source, self.size)
        except BaseException as exc:
            if isinstance(exc, PTPError) and exc.data_delivered:
                # Every byte went out but the device could not end the data phase
                # (it refused the zero-length packet): keep the object if it is complete.
                try:
                    handle, stored = confirm_upload(session, self.storage_id, self.parent,
                                                    self.name, predicted)
                except Exception:  # noqa: BLE001 - fall through to cleanup
                    handle, stored = predicted, None
                if stored == self.size:
                    log.info("%s: data phase not terminated but the object is complete",
                             self.name)
                    return handle, stored
            self._discard(session, predicted)
            raise
        return confirm_upload(session, self.storage_id, self.parent, self.name, predicted)

    def _discard(self, session: Session, predicted: int) -> None:
        """Remove a half-sent object, found by name (never another object's handle)."""
        try:
            handle, _ = confirm_upload(session, self.storage_id, self.parent, self.name,
                                       predicted, wait=0.2)
            if handle not in (self.replaces, self.handle):   # never an object that existed
                session.delete_object(handle)
        except Exception as exc:  # noqa: BLE001 - best effort cleanup
            log.info("could not remove partial object %r: %s", self.name, exc)
            self.orphan = predicted     # ptpfs.fs.operations cleans it up after a reconnect

    def close(self) -> None:
        """Drop the spool file."""
        self._spool.discard()
        try:
            os.close(self.fd)
        except OSError:
            pass


# ---------------------------------------------------------------------------- names
#: Longest name PTP can carry: a PTP string holds 255 UTF-16 units with its NUL.
NAME_UNITS_MAX = 254
#: Longest name the kernel passes (bytes of UTF-8).
NAME_BYTES_MAX = 255
#: Characters devices are known to refuse in a file name (FAT, PTP path separators).
REFUSED_CHARS = frozenset("\\\0")


def check_name(name: str) -> None:
    """Raise ENAMETOOLONG / EINVAL now for a name the device would refuse at close."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > NAME_BYTES_MAX:
        raise FuseOSError(errno.ENAMETOOLONG)
    try:
        units = len(name.encode("utf-16-le")) // 2
    except UnicodeEncodeError:
        raise FuseOSError(errno.EINVAL) from None   # undecodable bytes: no PTP string
    if units > NAME_UNITS_MAX:
        raise FuseOSError(errno.ENAMETOOLONG)
    if not name or name in (".", "..") or REFUSED_CHARS & set(name):
        raise FuseOSError(errno.EINVAL)


#: The names libfuse gives files unlinked while open (see :meth:`Uploads.hide`).
HIDDEN_PREFIX = ".fuse_hidden"

#: Files up to this size are renamed by copying (download + upload under the new
#: name, then delete) on devices that cannot rename or move objects.
COPY_RENAME_LIMIT = 64 << 20

OPC_FILENAME = OPC.ObjectFileName
OPC_DATE_MODIFIED = OPC.DateModified
DT_STR = DT.STR
OC_SEND_OBJECT_PROP_LIST = OC.SendObjectPropList
OC_SEND_OBJECT_INFO = OC.SendObjectInfo


@dataclass
class Orphan:
    """An upload cut off by a lost link: what may be left on the device."""

    parent_path: str
    name: str
    size: int
    handle: int | None      # the handle SendObjectInfo gave, when known
    replaces: bool          # an object of the same name existed before


class Uploads:
    """Every file open for writing (or pending), by path; see the module text.

    *generation* gives the session generation the current request is pinned
    to, *invalidate* asks for kernel cache invalidation of paths (outside the
    request), *forget_spool* drops a download spool of a changed handle and
    *mtimes* is the persistent time record (or ``None``).
    """

    def __init__(self, session: Session, tree: Tree, spool_dir: SpoolDir, *,
                 generation: Callable[[], int], invalidate: Callable[[list[str]], None],
                 forget_spool: Callable[[int], None], mtimes: MTimes | None = None) -> None:
        self.session = session
        self.tree = tree
        self.spool_dir = spool_dir
        self.generation = generation
        self.invalidate = invalidate
        self.forget_spool = forget_spool
        self.mtimes = mtimes
        self.copy_limit = COPY_RENAME_LIMIT
        self._lock = threading.RLock()
        self._by_path: dict[str, Upload] = {}
        self._hidden: dict[str, Node] = {}     # unlinked device files still open
        #: Folders where the device refused SendObjectInfo (AccessDenied, e.g. a camera
        #: that takes no uploads): later creates there fail at once, not at close.
        self._refused: set[tuple[int, int]] = set()
        self._orphans: list[Orphan] = []

    # ------------------------------------------------------------------ lookup
    def get(self, path: str | None) -> Upload | None:
        """The open upload named *path*, if any."""
        if path is None:
            return None
        with self._lock:
            return self._by_path.get(path)

    def __contains__(self, path: str) -> bool:
        return self.get(path) is not None

    def in_folder(self, folder: str) -> dict[str, Upload]:
        """Name -> upload of the open files directly inside *folder*."""
        prefix = folder.rstrip("/") + "/"
        with self._lock:
            return {p[len(prefix):]: u for p, u in self._by_path.items()
                    if p.startswith(prefix) and "/" not in p[len(prefix):]
                    and not p[len(prefix):].startswith(HIDDEN_PREFIX)}

    def hidden(self, path: str | None) -> Node | None:
        """The device file an unlinked-but-open *path* (``.fuse_hidden*``) stands for."""
        with self._lock:
            return self._hidden.get(path) if path is not None else None

    def _current(self, generation: int) -> None:
        if generation != self.session.generation:
            raise ConnectionLost("the device was reconnected since this file was opened; "
                                 "open it again")

    def _check_link(self) -> None:
        """Refuse a new write at once while the link is down (not later at close)."""
        if self.session.lost:
            raise ConnectionLost("the device is not connected")

    def _limit(self, upload: Upload) -> Upload:
        """Give *upload* the device's size limit."""
        caps = self.session.capabilities
        upload.max_size = None if caps.supports(OC_SEND_OBJECT_PROP_LIST) else U32_MAX - 1
        return upload

    def _check_refused(self, storage_id: int, parent: int) -> None:
        if (storage_id, parent) in self._refused:
            raise FuseOSError(errno.EACCES)

    def _register(self, path: str, upload: Upload) -> Upload:
        self._limit(upload)
        upload.path = path
        upload.born = self.generation()
        with self._lock:
            self._by_path[path] = upload
        return upload

    # ---------------------------------------------------------------- opening
    def create(self, path: str, parent: Node, name: str, existing: Node | None) -> Upload:
        """A new, empty file *path* (replacing *existing* when it is sent)."""
        check_name(name)
        self._check_link()
        self._check_refused(parent.storage_id, parent.handle)
        upload = Upload(self.spool_dir, parent.storage_id, parent.handle,
                        existing.raw_name or existing.name if existing is not None else name,
                        replaces=existing.handle if existing is not None else None)
        return self._register(path, upload)

    def open_node(self, path: str, node: Node, truncate: bool) -> Upload:
        """Open the device file *node* for writing (its bytes copied unless *truncate*)."""
        self._check_link()
        parent = node.parent
        assert parent is not None
        upload = Upload(self.spool_dir, node.storage_id, parent.handle,
                        node.raw_name or node.name, replaces=node.handle)
        if not truncate:
            upload.prefill_later(self.session, node.handle, node.size)
            upload.mtime = self.node_mtime(node)
        else:
            upload.dirty = True
        with self._lock:
            other = self._by_path.get(path)
            if other is not None:        # opened meanwhile by another thread: share it
                other.refs += 1
                upload.close()
                return other
        return self._register(path, upload)

    def attach(self, upload: Upload, truncate: bool) -> None:
        """One more handle on an open upload."""
        with self._lock:
            upload.refs += 1
        if truncate:
            upload.truncate(0)

    # --------------------------------------------------------------- sending
    def commit(self, upload: Upload) -> None:
        """Send *upload* if it changed, delete what it replaces, update the tree."""
        if upload.cancelled or (not upload.dirty and upload.handle is not None):
            return
        if not upload.dirty and upload.replaces is not None:
            return
        self._current(upload.born)   # its folder's handle is from a session that is gone
        path = upload.path or "/"
        try:
            handle, deleted = upload.commit(self.session)
        except ResponseError as exc:
            if exc.code == RC.AccessDenied and exc.operation in (OC_SEND_OBJECT_INFO,
                                                                 OC_SEND_OBJECT_PROP_LIST):
                with self._lock:
                    self._refused.add((upload.storage_id, upload.parent))
            raise
        except TransportError:
            # the link broke during the upload: what reached the device is
            # deleted after the reconnect (or at once if the link is fine)
            orphan = Orphan(posixpath.dirname(path) or "/", upload.name, upload.size,
                            upload.orphan, upload.replaces is not None)
            with self._lock:
                self._orphans.append(orphan)
            if not self.session.lost:
                self.cleanup_orphans()
            raise
        for old in deleted:
            self.tree.remove_object(old)
            self.forget_spool(old)
        node = self.tree.add_object(self.tree.lister.object_meta(handle))
        self.forget_spool(handle)
        with self.tree._lock:
            self.tree._storage_info.pop(upload.storage_id, None)
        if upload.mtime_set is not None and node is not None:
            self._record_mtime(node, upload.mtime_set)

    def flush(self, upload: Upload) -> None:
        """``close()`` of one handle: send what changed, so errors reach the program.
        On failure the name is forgotten (the upload never arrived)."""
        try:
            self.commit(upload)
        except Exception:
            self._drop(upload)
            raise

    def fsync(self, upload: Upload) -> None:
        """Make the device copy equal to the open file; it stays open."""
        self.commit(upload)

    def release(self, upload: Upload) -> None:
        """The last of a handle: when no handle is left, send and forget the file."""
        with self._lock:
            upload.refs -= 1
            if upload.refs > 0:
                return
        try:
            if upload.dirty and not upload.cancelled and self.get(upload.path) is upload:
                self.commit(upload)
        finally:
            never_sent = upload.dirty
            self._drop(upload)
            if never_sent and upload.path:
                self.invalidate([upload.path])   # the kernel must forget the name
            upload.close()

    def _drop(self, upload: Upload) -> None:
        with self._lock:
            if upload.path is not None and self._by_path.get(upload.path) is upload:
                del self._by_path[upload.path]

    def release_all(self) -> None:
        """Unmount: send and close whatever is still open."""
        with self._lock:
            uploads = list(dict.fromkeys(self._by_path.values()))
        for upload in uploads:
            upload.refs = 1
            try:
                self.release(upload)
            except Exception as exc:  # noqa: BLE001 - unmounting: log and go on
                log.warning("%s not sent at unmount: %s", upload.path, exc)

    # ------------------------------------------------------------ path operations
    def truncate(self, path: str, length: int) -> bool:
        """``truncate(path)`` of an open file; ``False`` if *path* is not open."""
        upload = self.get(path)
        if upload is None:
            return False
        upload.truncate(length)
        return True

    def truncate_node(self, path: str, node: Node, length: int) -> None:
        """``truncate(path)`` of a file nobody has open: rewrite the device copy."""
        if length == node.size:
            return
        upload = self.open_node(path, node, truncate=length == 0)
        try:
            upload.truncate(length)
            self.commit(upload)
        finally:
            self.release(upload)

    def unlink(self, path: str) -> bool:
        """``unlink`` of an open file (POSIX): the name goes now, the device copy
        too; open handles keep the bytes.  ``False`` if *path* is not open."""
        upload = self.get(path)
        if upload is None:
            return False
        with upload.lock:
            olds = [h for h in [upload.handle, upload.replaces, *upload.stale] if h is not None]
            for old in dict.fromkeys(olds):
                try:
                    self.session.delete_object(old)
                except ResponseError as exc:
                    if exc.code != RC.InvalidObjectHandle:
                        raise
                self.tree.remove_object(old)
                self.forget_spool(old)
            upload.cancelled = True
            upload.handle = upload.replaces = None
            upload.stale = []
        self._drop(upload)
        upload.path = None
        return True

    def hide(self, old: str, hidden: str, node: Node | None) -> None:
        """libfuse's ``unlink`` of an open file: it renames *old* to *hidden*
        (``.fuse_hidden*``) and unlinks that at the last release.  Here that is
        an unlink whose open handles still find the file under *hidden*: the
        name and the device copy go now, nothing is renamed on the device."""
        upload = self.get(old)
        if upload is not None:
            self.unlink(old)
            upload.path = hidden
            with self._lock:
                self._by_path[hidden] = upload
            return
        if node is None or node.is_dir:
            raise FuseOSError(errno.EINVAL)
        # a device file open for reading: its name goes now, the object when the
        # last handle closes (libfuse's final unlink), so readers keep reading
        self.tree.remove_object(node.handle)
        with self._lock:
            self._hidden[hidden] = node

    def is_hidden(self, node: Node) -> bool:
        """Whether *node* was unlinked while open (still on the device until closed)."""
        with self._lock:
            return any(n.handle == node.handle for n in self._hidden.values()) \
                if self._hidden else False

    def _shadow(self, parent: Node, name: str) -> Node | None:
        """A hidden device file that still holds *name* in *parent* on the device."""
        with self._lock:
            for node in self._hidden.values():
                if node.parent is parent and (node.raw_name or node.name) == name:
                    return node
        return None

    def unhide(self, path: str) -> bool:
        """libfuse's final unlink of a hidden name; ``False`` if *path* is not one."""
        if not posixpath.basename(path).startswith(HIDDEN_PREFIX):
            return False
        with self._lock:
            upload = self._by_path.get(path)
            if upload is not None and upload.cancelled:
                del self._by_path[path]
            node = self._hidden.pop(path, None)
        if node is not None:
            try:
                self.session.delete_object(node.handle)
            except ResponseError as exc:
                if exc.code != RC.InvalidObjectHandle:
                    raise
            self.forget_spool(node.handle)
        return node is not None or upload is not None

    def set_mtime(self, path: str, node: Node | None, mtime: float) -> None:
        """``utimens``: the time goes with the upload, to the device where it can
        be set, and into the persistent record."""
        upload = self.get(path)
        if upload is not None:
            upload.mtime_set = upload.mtime = mtime
            current = upload.handle if upload.handle is not None else upload.replaces
            if upload.dirty or current is None:
                return          # carried in ObjectInfo when it is sent
            node = self.tree.node_for_handle(current)   # the device copy is current
        if node is None or node.is_dir:
            return
        if self.session.capabilities.supports(OC.SetObjectPropValue):
            from ptpfs.protocol.wire import format_datetime
            stamp = format_datetime(_dt.datetime.fromtimestamp(int(mtime)))
            try:
                self.session.set_object_prop_value(node.handle, OPC_DATE_MODIFIED, stamp, DT_STR)
                refreshed = self.tree.add_object(self.tree.lister.object_meta(node.handle))
                node = refreshed or node
            except ResponseError as exc:
                log.debug("DateModified of %s not set on the device: %s", node.path, exc)
        self._record_mtime(node, mtime)

    def _record_mtime(self, node: Node, mtime: float) -> None:
        if self.mtimes is not None:
            self.mtimes.set(node.storage_id, node.handle, node.raw_name or node.name, node.size,
                            node.mtime, mtime)

    def node_mtime(self, node: Node) -> float:
        """A device file's mtime: the recorded one if still valid, else the device's."""
        if self.mtimes is not None and not node.is_dir:
            recorded = self.mtimes.get(node.storage_id, node.handle, node.raw_name or node.name,
                                       node.size, node.mtime)
            if recorded is not None:
                return recorded
        return node.mtime

    # ------------------------------------------------------------------ rename
    def rename(self, old: str, new: str, source: Node | None, parent: Node, name: str) -> None:
        """``rename(old, new)``, replacing what *new* names.

        An open file is renamed locally (sent under its final name; a copy
        already on the device is sent again under the new name and the old
        one deleted).  A device object is renamed with SetObjectPropValue /
        MoveObject; an existing destination is first renamed aside and
        deleted only once the source holds the name (put back on failure).
        Devices that cannot rename get a copy (download + upload) for files up
        to :data:`COPY_RENAME_LIMIT`, else EXDEV.
        """
        check_name(name)
        upload = self.get(old)
        dest_upload = self.get(new)
        dest = self.tree.children(parent).get(name)
        if dest is not None and dest.is_dir and (upload is not None or
                                                 (source is not None and not source.is_dir)):
            raise FuseOSError(errno.EISDIR)
        if upload is not None:
            self._rename_open(upload, new, parent, name, dest, dest_upload)
            return
        assert source is not None
        if dest_upload is not None:
            # the destination is open: it loses its name now, as after unlink
            self.unlink(new)
            dest = self.tree.children(parent).get(name)
        if dest is None:
            dest = self._shadow(parent, name)
            if dest is not None:
                with self._lock:        # replaced now: its final unlink has nothing to do
                    for key, node in list(self._hidden.items()):
                        if node is dest:
                            del self._hidden[key]
        self._rename_node(old, new, source, parent, name, dest)

    def _rename_open(self, upload: Upload, new: str, parent: Node, name: str,
                     dest: Node | None, dest_upload: Upload | None) -> None:
        if parent.storage_id != upload.storage_id:
            raise FuseOSError(errno.EXDEV)
        if dest_upload is upload:
            return
        if dest_upload is not None:
            self.unlink(new)
            dest = self.tree.children(parent).get(name)
        if dest is None:
            dest = self._shadow(parent, name)
            if dest is not None:
                with self._lock:
                    for key, node in list(self._hidden.items()):
                        if node is dest:
                            del self._hidden[key]
        with upload.lock:
            had_copy = [h for h in (upload.handle, upload.replaces) if h is not None]
            saved = (upload.parent, upload.name, upload.replaces, upload.handle, upload.dirty,
                     list(upload.stale))
            upload.parent = parent.handle
            upload.name = name
            upload.replaces = dest.handle if dest is not None and not dest.is_dir else None
            upload.stale = upload.stale + had_copy
            upload.handle = None
            if had_copy:
                upload.dirty = True
        old_path = upload.path
        with self._lock:
            if old_path is not None and self._by_path.get(old_path) is upload:
                del self._by_path[old_path]
            self._by_path[new] = upload
            upload.path = new
        if had_copy:
            # the old name must not stay on the device: send under the new one now
            try:
                self.commit(upload)
            except Exception:
                with upload.lock:
                    (upload.parent, upload.name, upload.replaces, upload.handle, upload.dirty,
                     upload.stale) = saved
                with self._lock:
                    self._by_path.pop(new, None)
                    if old_path is not None:
                        self._by_path[old_path] = upload
                    upload.path = old_path
                raise

    def _rename_node(self, old: str, new: str, source: Node, parent: Node, name: str,
                     dest: Node | None) -> None:
        if dest is source:
            return
        if source.storage_id != parent.storage_id:
            raise FuseOSError(errno.EXDEV)
        if dest is not None:
            if dest.is_dir and not source.is_dir:
                raise FuseOSError(errno.EISDIR)
            if source.is_dir and not dest.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            if dest.is_dir and self.tree.children(dest):
                raise FuseOSError(errno.ENOTEMPTY)
        assert source.parent is not None
        if source.is_dir and source.handle in parent.ancestors():
            raise FuseOSError(errno.EINVAL)    # never move a folder into itself
        caps = self.session.capabilities
        moving = parent is not source.parent
        renaming = name != source.name
        if (moving and not caps.move) or (renaming and not caps.rename):
            if source.is_dir or source.size > self.copy_limit or not caps.delete:
                raise FuseOSError(errno.EXDEV)
            self._rename_by_copy(new, source, parent, name, dest)
            return
        aside: str | None = None
        if dest is not None and dest.is_dir:
            # an empty folder: it goes first (folders cannot be replaced atomically)
            self.session.delete_object(dest.handle)
            self.tree.remove_object(dest.handle)
        elif dest is not None:
            if not caps.rename:
                raise FuseOSError(errno.EXDEV)
            aside = f".{name[:200]}.ptpfs-old-{os.getpid():x}{threading.get_ident() & 0xFFFF:x}"
            self.session.set_object_prop_value(dest.handle, OPC_FILENAME, aside, DT_STR)
        old_parent = source.parent
        try:
            if moving:
                self.session.move_object(source.handle, parent.storage_id, wire_parent(parent.handle))
            if renaming:
                self.session.set_object_prop_value(source.handle, OPC_FILENAME, name, DT_STR)
        except BaseException:
            if aside is not None and dest is not None:
                try:
                    self.session.set_object_prop_value(dest.handle, OPC_FILENAME,
                                                       dest.raw_name or dest.name, DT_STR)
                except Exception as exc:  # noqa: BLE001 - report the first error
                    log.warning("could not restore %s: %s", new, exc)
            if moving:
                self.tree.invalidate_folder(old_parent)
            raise
        if dest is not None and aside is not None:
            try:
                self._delete_renamed(dest.handle, parent, aside)
            except Exception as exc:  # noqa: BLE001 - the rename itself succeeded
                log.warning("replaced %s (now %s) could not be deleted: %s", new, aside, exc)
            self.tree.remove_object(dest.handle)
            self.forget_spool(dest.handle)
        mtime = self.node_mtime(source) if not source.is_dir else None
        if moving:
            self.tree.invalidate_folder(old_parent)
        try:
            meta = self.tree.lister.object_meta(source.handle)
        except ResponseError as exc:
            if exc.code != RC.InvalidObjectHandle:
                raise
            meta = self._renamed_meta(source.handle, parent, name)
        node = self.tree.add_object(meta)
        if node is not None and mtime is not None and mtime != node.mtime:
            self._record_mtime(node, mtime)

    def _renamed_meta(self, handle: int, parent: Node, name: str) -> ObjectMeta:
        """The metadata of an object renamed under a new handle, found by its new name.

        Some devices number a renamed object afresh (uMTP-Responder re-registers the file
        from its file watch): the old handle is then invalid and the folder is listed again.
        """
        self.session.adapt("rename-new-handle", "a renamed object gets a new handle: "
                                                  "found again by name")
        self.tree.remove_object(handle)
        for meta in self.tree.lister.list_folder(parent.storage_id, parent.handle):
            if meta.filename == name:
                self.tree.invalidate_folder(parent)
                return meta
        raise FuseOSError(errno.EIO)

    def _delete_renamed(self, handle: int, parent: Node, name: str) -> None:
        """DeleteObject of an object just renamed to *name*; by name if its handle changed."""
        try:
            self.session.delete_object(handle)
        except ResponseError as exc:
            if exc.code != RC.InvalidObjectHandle:
                raise
            self.session.adapt("rename-new-handle", "a renamed object gets a new handle: "
                                                      "found again by name")
            for meta in self.tree.lister.list_folder(parent.storage_id, parent.handle):
                if meta.filename == name:
                    self.session.delete_object(meta.handle)
                    return
            raise

    def _rename_by_copy(self, new: str, source: Node, parent: Node, name: str,
                        dest: Node | None) -> None:
        """Download *source*, send it as *name* (replacing *dest*), delete *source*."""
        mtime = self.node_mtime(source)
        upload = Upload(self.spool_dir, parent.storage_id, parent.handle, name,
                        replaces=dest.handle if dest is not None else None)
        upload.born = self.generation()
        upload.path = new
        self._limit(upload)
        try:
            upload.prefill(self.session, source.handle)
            upload.dirty = True
            upload.mtime_set = upload.mtime = mtime
            self.commit(upload)
        finally:
            upload.close()
        self.session.delete_object(source.handle)
        self.tree.remove_object(source.handle)
        self.forget_spool(source.handle)

    # ------------------------------------------------------------------ orphans
    def cleanup_orphans(self) -> int:
        """Delete what uploads cut off by a lost link left on the device
        (objects of that name whose size is not the intended one); returns
        how many were deleted.  Kept for the next reconnect if it fails."""
        with self._lock:
            orphans, self._orphans = self._orphans, []
            self._refused.clear()     # a reconnected device may take uploads again
        removed = 0
        keep: list[Orphan] = []
        for orphan in orphans:
            try:
                with self.session.pinned():
                    removed += self._remove_orphan(orphan)
            except (FileNotFoundError, NotADirectoryError):
                pass          # the folder itself is gone
            except Exception as exc:  # noqa: BLE001 - retried after the next reconnect
                log.info("partial upload %s/%s not cleaned up yet: %s", orphan.parent_path,
                         orphan.name, exc)
                keep.append(orphan)
        with self._lock:
            self._orphans.extend(keep)
        return removed

    @property
    def orphans(self) -> list[Orphan]:
        """Uploads cut off by a lost link, not cleaned up yet."""
        with self._lock:
            return list(self._orphans)

    def _remove_orphan(self, orphan: Orphan) -> int:
        parent = self.tree.lookup(orphan.parent_path)
        removed = 0
        for child in list(self.tree.children(parent).values()):
            if child.is_dir or child.raw_name != orphan.name or child.size == orphan.size:
                continue   # complete objects stay: the data did arrive
            if orphan.replaces and child.handle != orphan.handle:
                continue   # may be the file the upload was to replace
            log.warning("deleting partial upload %s (%d of %d bytes)", child.path, child.size,
                        orphan.size)
            path = child.path
            self.session.delete_object(child.handle)
            self.tree.remove_object(child.handle)
            self.invalidate([path, orphan.parent_path])
            removed += 1
        return removed
