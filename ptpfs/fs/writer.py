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

import datetime as _dt
import logging
import os
import threading
from typing import Any

from ptpfs.fs.spool import SpoolDir

log = logging.getLogger("ptpfs.fs")

U32_MAX = 0xFFFFFFFF
ROOT = 0xFFFFFFFF


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
        """Write into the spool; marks the upload dirty."""
        with self.lock:
            n = os.pwrite(self.fd, data, offset)
            self.size = max(self.size, offset + n)
            self.dirty = True
            self.mtime = _dt.datetime.now().timestamp()
            return n

    def read(self, offset: int, size: int) -> bytes:
        """Read back what was written."""
        return os.pread(self.fd, max(0, min(size, self.size - offset)), offset)

    def truncate(self, length: int) -> None:
        """Set the spooled length."""
        with self.lock:
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
        half-created object from the device.
        """
        with self.lock:
            if not self.dirty and self.handle is not None:
                return self.handle, None
            info = self.object_info()
            _, _, handle = session.send_object_info(self.storage_id, self.parent or ROOT, info)
            try:
                with os.fdopen(os.dup(self.fd), "rb", buffering=0) as source:
                    session.send_object(source, self.size)
            except BaseException:
                try:
                    session.delete_object(handle)
                except Exception as exc:  # noqa: BLE001 - best effort cleanup
                    log.info("could not remove partial object 0x%08x: %s", handle, exc)
                raise
            old = self.replaces if self.replaces not in (None, handle) else None
            if old is None and self.handle not in (None, handle):
                old = self.handle
            deleted = None
            if old is not None:
                try:
                    session.delete_object(old)
                    deleted = old
                except Exception as exc:  # noqa: BLE001 - the new object is there
                    log.warning("replaced object 0x%08x could not be deleted: %s", old, exc)
            self.handle = handle
            self.replaces = None
            self.dirty = False
            return handle, deleted

    def close(self) -> None:
        """Drop the spool file."""
        try:
            os.close(self.fd)
        except OSError:
            pass
