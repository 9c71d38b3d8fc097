"""Uploads: data written to a file is spooled, then sent at close.

An :class:`Upload` collects the bytes of a file being written in a private
spool file (see :mod:`ptpfs.fs.spool`); :meth:`Upload.commit` sends it with
SendObjectInfo + SendObject when the program closes the file (FUSE flush),
so an upload error reaches ``close()``.  If SendObject fails after
SendObjectInfo reserved a handle, that handle is deleted so no partial
object is left.  Replacing an existing file sends the new object first and
deletes the old one only after success.
"""

from __future__ import annotations

import collections
import datetime as _dt
import logging
import os
import threading
import time
from typing import Any

from ptpfs.errors import ProtocolError, ResponseError
from ptpfs.protocol.codes import RC
from ptpfs.fs.spool import SpoolDir

log = logging.getLogger("ptpfs.fs")

U32_MAX = 0xFFFFFFFF
ROOT = 0xFFFFFFFF
#: How long an upload's predicted handle may take to appear (devices that register
#: uploaded objects asynchronously, e.g. from a file watch).
CONFIRM_WAIT = 2.0


def confirm_upload(session: Any, storage_id: int, parent: int, name: str, predicted: int,
                   wait: float = CONFIRM_WAIT) -> tuple[int, int | None]:
    """Find the object just uploaded as *name* in *parent*: ``(handle, reported size)``.

    Devices may answer SendObjectInfo with a handle they register only later, or
    with another object's handle (an existing file whose name matches, written in
    place).  The predicted handle is trusted only if the device lists it under
    that name; otherwise the folder is listed and the object found by name.  The
    size is ``None`` when the device reports 0xFFFFFFFF (4 GiB or more).
    """
    deadline = time.monotonic() + wait
    tries = 0
    while True:
        try:
            info = session.get_object_info(predicted)
        except ResponseError as exc:
            if exc.code != RC.InvalidObjectHandle:
                raise
        else:
            if info.filename == name and info.storage_id in (storage_id, 0):
                size = info.compressed_size
                return predicted, (None if size == U32_MAX else size)
        tries += 1
        if tries <= 3:   # registered a moment later (from the device's own file watch)
            time.sleep(0.005 * 2 ** tries)
            continue
        for handle in reversed(session.get_object_handles(storage_id, 0, parent or ROOT)):
            if handle == predicted:
                continue
            try:
                info = session.get_object_info(handle)
            except ResponseError:
                continue
            if info.filename == name:
                size = info.compressed_size
                return handle, (None if size == U32_MAX else size)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise ProtocolError(f"the device does not list {name!r} after the upload "
                        f"(it announced handle 0x{predicted:08x})")


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
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.refs = 1
        self.cancelled = False  # unlinked before it was sent
        self.orphan: int | None = None  # a half-sent object that could not be deleted
        self._spool = _SpoolWriter(self.fd)

    # -- local data -------------------------------------------------------------
    def prefill(self, session: Any, handle: int) -> None:
        """Start from an existing object's contents (open without O_TRUNC)."""
        class _Sink:
            def __init__(self, up: Upload) -> None:
                self.up = up

            def write(self, data: bytes | memoryview) -> int:
                n = os.pwrite(self.up.fd, data, self.up.size)
                self.up.size += n
                return n
        session.get_object(handle, sink=_Sink(self))
        self.dirty = False

    def write(self, data: bytes, offset: int) -> int:
        """Write into the spool (queued for the spool thread); marks the upload dirty."""
        with self.lock:
            self._spool.put(bytes(data), offset)
            self.size = max(self.size, offset + len(data))
            self.dirty = True
            self.mtime = time.time()
            return len(data)

    def read(self, offset: int, size: int) -> bytes:
        """Read back what was written."""
        self._spool.drain()
        return os.pread(self.fd, max(0, min(size, self.size - offset)), offset)

    def truncate(self, length: int) -> None:
        """Set the spooled length."""
        with self.lock:
            self._spool.drain()
            os.ftruncate(self.fd, length)
            self.size = length
            self.dirty = True

    # -- device -------------------------------------------------------------------
    def object_info(self) -> Any:
        """The ObjectInfo announced with SendObjectInfo."""
        from ptpfs.protocol.codes import format_for_filename
        from ptpfs.protocol.datasets import ObjectInfo
        from ptpfs.protocol.wire import format_datetime

        stamp = format_datetime(_dt.datetime.fromtimestamp(self.mtime).replace(microsecond=0))
        return ObjectInfo(storage_id=self.storage_id, object_format=format_for_filename(self.name),
                          compressed_size=min(self.size, U32_MAX), parent=self.parent,
                          filename=self.name, capture_date=stamp, modification_date=stamp)

    def commit(self, session: Any) -> tuple[int, int | None]:
        """Send the object if dirty; returns ``(new_handle, deleted_old_handle)``.

        Raises the library's exception on failure, after removing any
        half-created object from the device.  The new handle is confirmed by
        name (:func:`confirm_upload`); a device that wrote over an existing
        file of the same name without truncating it (the size it reports is
        not ours) gets the object deleted and sent once more.
        """
        with self.lock:
            self._spool.drain()       # a spool write error fails the close
            if not self.dirty and self.handle is not None:
                return self.handle, None
            if not self.dirty and self.replaces is not None:
                return self.replaces, None   # opened for writing, nothing written yet
            deleted = None
            handle, stored = self._send(session)
            if stored is not None and self.size < U32_MAX and stored != self.size:
                log.info("%s: device kept %d bytes of a %d-byte upload (wrote in place "
                         "without truncating); deleting and sending again", self.name, stored,
                         self.size)
                session.delete_object(handle)
                if handle in (self.replaces, self.handle):
                    deleted = handle
                handle, stored = self._send(session)
                if stored is not None and stored != self.size:
                    self._discard(session, handle)
                    raise ProtocolError(f"{self.name}: the device stored {stored} bytes of "
                                        f"{self.size}")
            old = self.replaces if self.replaces not in (None, handle, deleted) else None
            if old is None and self.handle not in (None, handle, deleted):
                old = self.handle
            if old is not None:
                try:
                    session.delete_object(old)
                    deleted = old
                except ResponseError as exc:
                    if exc.code == RC.InvalidObjectHandle:
                        # the device replaced it itself (same name): it is gone all the same,
                        # and the tree must forget it now, not when the event comes
                        deleted = old
                    else:
                        log.warning("replaced object 0x%08x could not be deleted: %s", old, exc)
                except Exception as exc:  # noqa: BLE001 - the new object is there
                    log.warning("replaced object 0x%08x could not be deleted: %s", old, exc)
            self.handle = handle
            self.replaces = None
            self.dirty = False
            return handle, deleted

    def _send(self, session: Any) -> tuple[int, int | None]:
        """SendObjectInfo + SendObject + confirmation: ``(handle, size the device reports)``."""
        info = self.object_info()
        _, _, predicted = session.send_object_info(self.storage_id, self.parent or ROOT, info)
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)   # a dup shares the offset of an earlier send
            with os.fdopen(os.dup(self.fd), "rb", buffering=0) as source:
                session.send_object(source, self.size)
        except BaseException as exc:
            if getattr(exc, "data_delivered", False):
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

    def _discard(self, session: Any, predicted: int) -> None:
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
