"""``sim:DIR``: a storage backed by a host directory, like QEMU's usb-mtp.

Reads and writes go to DIR.  Every path operation walks from a descriptor of
DIR one component at a time with ``O_NOFOLLOW``, and names are checked by
:func:`~ptpfs.sim.store.validate_name`, so nothing the host sends can reach
outside DIR.  Symbolic links inside DIR are not shown (nor followed), nor are
sockets, FIFOs or devices.  Changes made to DIR behind the camera's back are
noticed when a folder is listed (a light rescan of that folder) and by an
optional watcher thread that rescans the tree every *watch_interval* seconds;
both emit ObjectAdded / ObjectRemoved / ObjectInfoChanged.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading
from datetime import datetime

from ptpfs.sim.store import (FORMAT_ASSOCIATION, IMAGE_FORMATS, ROOT, ObjectStore, PendingObject,
                             SimObject, Storage, StoreError, Upload, _format_for, validate_name)

TEMP_PREFIX = ".ptpfs-upload-"
STORAGE_ID = 0x00010001


def _store_error(exc: OSError) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError("StoreFull", str(exc))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError("AccessDenied", str(exc))
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
        return StoreError("InvalidObjectHandle", str(exc))
    return StoreError("GeneralError", str(exc))


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(int(st.st_mtime))


def _acceptable(name: str) -> bool:
    if name.startswith(TEMP_PREFIX):
        return False
    try:
        validate_name(name)
        units = len(name.encode("utf-16-le")) // 2
    except (StoreError, UnicodeEncodeError):
        return False
    return units <= 254


class DirContent:
    """Bytes of a regular file in DIR, opened afresh (without following links)."""

    def __init__(self, store: "DirStore", obj_handle: int, size: int, mtime_ns: int) -> None:
        self.store = store
        self.handle = obj_handle
        self.size = size
        self.mtime_ns = mtime_ns

    def read(self, offset: int, n: int) -> bytes:
        fd = self.store.open_file(self.handle)
        try:
            return os.pread(fd, max(0, n), offset)
        finally:
            os.close(fd)


class DirStore(ObjectStore):
    """One read-write storage (0x00010001) showing the tree under *root*."""

    def __init__(self, root: str, *, watch_interval: float | None = None,
                 read_only: bool = False, description: str = "sim") -> None:
        super().__init__()
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"sim directory {self.root!r} does not exist")
        self.add_storage(Storage(STORAGE_ID, description, 0, volume_label=os.path.basename(self.root),
                                 filesystem_type=2, access=1 if read_only else 0))
        with self.mutating():
            self._scan_tree()
            self._pending_events.clear()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if watch_interval:
            self._watcher = threading.Thread(target=self._watch, args=(watch_interval,),
                                             name="ptpfs-sim-dirwatch", daemon=True)
            self._watcher.start()

    # -- safe path handling ------------------------------------------------------
    def _relparts(self, handle: int) -> list[str]:
        parts: list[str] = []
        while handle != ROOT:
            obj = self._objects[handle]
            parts.append(obj.name)
            handle = obj.parent
        return parts[::-1]

    def _open_dir(self, parts: list[str]) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts:
                validate_name(part)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_parent(self, obj_parent: int) -> int:
        try:
            return self._open_dir(self._relparts(obj_parent))
        except OSError as exc:
            raise _store_error(exc) from exc

    def open_file(self, handle: int) -> int:
        """A read-only descriptor of a file object (``O_NOFOLLOW``)."""
        with self.lock:
            obj = self._objects.get(handle)
            if obj is None or obj.is_folder:
                raise StoreError("InvalidObjectHandle")
            dfd = self._open_parent(obj.parent)
            name = obj.name
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        except OSError as exc:
            raise _store_error(exc) from exc
        finally:
            os.close(dfd)

    # -- scanning --------------------------------------------------------------------
    def _scan_tree(self) -> None:
        stack = [ROOT]
        while stack:
            folder = stack.pop()
            self._scan_folder(folder)
            stack.extend(h for h in self._child_map(STORAGE_ID, folder).values()
                         if self._objects[h].is_folder)

    def _scan_folder(self, folder: int) -> None:
        """Bring one folder's children in line with DIR (not recursive)."""
        try:
            dfd = self._open_dir(self._relparts(folder))
        except (OSError, StoreError):
            return  # gone: the parent's rescan removes it
        found: dict[str, os.stat_result] = {}
        try:
            with os.scandir(dfd) as it:
                for entry in it:
                    if not _acceptable(entry.name):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                        found[entry.name] = st
        except OSError:
            return
        finally:
            os.close(dfd)
        current = self._child_map(STORAGE_ID, folder)
        for name, handle in list(current.items()):
            obj = self._objects[handle]
            st = found.get(name)
            if st is None or stat.S_ISDIR(st.st_mode) != obj.is_folder:
                self._unlink(obj)
                continue
            protection = 0 if st.st_mode & stat.S_IWUSR else 1
            if not obj.is_folder:
                content = obj.content
                assert isinstance(content, DirContent)
                if (content.size, content.mtime_ns) != (st.st_size, st.st_mtime_ns) \
                        or obj.protection != protection:
                    content.size, content.mtime_ns = st.st_size, st.st_mtime_ns
                    obj.mtime = _mtime(st)
                    obj.protection = protection
                    self._emit("ObjectInfoChanged", handle)
        for name, st in found.items():
            if name in current:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            fmt = FORMAT_ASSOCIATION if is_dir else _format_for(name)
            handle = self.new_handle()
            obj = SimObject(handle, STORAGE_ID, folder, name, fmt, _mtime(st),
                            datetime.fromtimestamp(int(st.st_ctime)),
                            None if is_dir else DirContent(self, handle, st.st_size,
                                                           st.st_mtime_ns),
                            protection=0 if st.st_mode & stat.S_IWUSR else 1,
                            image_size=(6000, 4000) if fmt in IMAGE_FORMATS else (0, 0))
            self._insert(obj)
            if is_dir:
                stack = [handle]
                while stack:
                    sub = stack.pop()
                    self._scan_folder(sub)
                    stack.extend(h for h in self._child_map(STORAGE_ID, sub).values()
                                 if self._objects[h].is_folder)

    def refresh(self, storage_id: int, parent: int) -> None:
        """Light rescan of the folder about to be listed."""
        if storage_id == STORAGE_ID and (parent == ROOT or parent in self._objects):
            self._scan_folder(parent)

    def rescan(self) -> None:
        """Rescan all of DIR now (what the watcher does periodically)."""
        with self.mutating():
            self._scan_tree()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.rescan()
            except Exception:  # never let the watcher die on a transient error
                pass

    # -- space ------------------------------------------------------------------------
    def capacity(self, storage_id: int) -> int:
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize

    def free_space(self, storage_id: int) -> int:
        if self._storages[storage_id].full:
            return 0
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    # -- writes --------------------------------------------------------------------------
    def _make_folder(self, pending: PendingObject) -> SimObject:
        dfd = self._open_parent(pending.parent)
        try:
            os.mkdir(pending.name, 0o755, dir_fd=dfd)
        except OSError as exc:
            raise _store_error(exc) from exc
        finally:
            os.close(dfd)
        return super()._make_folder(pending)

    def begin_upload(self, pending: PendingObject) -> Upload:
        with self.lock:
            self._check_writable(pending.storage_id)
            dfd = self._open_parent(pending.parent)
            temp = f"{TEMP_PREFIX}{pending.handle}-{secrets.token_hex(4)}"
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                             dir_fd=dfd)
            except OSError as exc:
                os.close(dfd)
                raise _store_error(exc) from exc
            return Upload(self, pending, fd, temp, dir_fd=dfd)

    def _publish_upload(self, upload: Upload) -> DirContent:
        p = upload.pending
        dfd = upload.dir_fd
        assert dfd is not None
        try:
            os.rename(upload.temp_name, p.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            ts = p.mtime.timestamp()
            os.utime(p.name, (ts, ts), dir_fd=dfd, follow_symlinks=False)
            st = os.stat(p.name, dir_fd=dfd, follow_symlinks=False)
        except OSError as exc:
            self._discard_upload(upload)
            raise _store_error(exc) from exc
        return DirContent(self, p.handle, st.st_size, st.st_mtime_ns)

    def _discard_upload(self, upload: Upload) -> None:
        if upload.dir_fd is None:
            return
        try:
            os.unlink(upload.temp_name, dir_fd=upload.dir_fd)
        except FileNotFoundError:
            pass

    def _remove_backing(self, obj: SimObject) -> bool:
        dfd = self._open_parent(obj.parent)
        try:
            if obj.is_folder:
                os.rmdir(obj.name, dir_fd=dfd)
            else:
                os.unlink(obj.name, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        finally:
            os.close(dfd)
        return True

    def _set_backing_mtime(self, obj: SimObject, when: datetime) -> None:
        if obj.is_folder:
            return
        dfd = self._open_parent(obj.parent)
        try:
            ts = when.timestamp()
            os.utime(obj.name, (ts, ts), dir_fd=dfd, follow_symlinks=False)
            st = os.stat(obj.name, dir_fd=dfd, follow_symlinks=False)
        except OSError as exc:
            raise _store_error(exc) from exc
        finally:
            os.close(dfd)
        if isinstance(obj.content, DirContent):
            obj.content.mtime_ns = st.st_mtime_ns

    def _move_backing(self, obj: SimObject, storage_id: int, parent: int, name: str) -> None:
        src = self._open_parent(obj.parent)
        try:
            dst = self._open_parent(parent)
            try:
                try:
                    os.lstat(name, dir_fd=dst)
                except FileNotFoundError:
                    pass
                else:
                    raise StoreError("InvalidParameter", f"{name!r} exists on the host")
                os.rename(obj.name, name, src_dir_fd=src, dst_dir_fd=dst)
            except OSError as exc:
                raise _store_error(exc) from exc
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def add_file(self, path: str, data: bytes | object, *, storage_id: int | None = None,
                 mtime: datetime | None = None) -> SimObject:
        """Simulator side: write *path* into DIR (folders too) and publish it."""
        parts = [p for p in path.split("/") if p]
        if not parts or not isinstance(data, (bytes, bytearray)):
            raise StoreError("InvalidParameter", "add_file on sim:DIR takes a path and bytes")
        for part in parts:
            validate_name(part)
        with self.mutating():
            dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for part in parts[:-1]:
                    try:
                        os.mkdir(part, 0o755, dir_fd=dfd)
                    except FileExistsError:
                        pass
                    nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
                    os.close(dfd)
                    dfd = nfd
                fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                             0o644, dir_fd=dfd)
                try:
                    view = memoryview(bytes(data))
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            finally:
                os.close(dfd)
            self._scan_tree()
            return self.find(path)

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        super().close()
