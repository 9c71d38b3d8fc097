"""``sim:DIR``: a storage backed by a host directory, like QEMU's usb-mtp.

Reads and writes go to DIR.  Every path operation walks from a descriptor of
DIR one component at a time with ``O_NOFOLLOW``, and names are checked by
:func:`~ptpfs.sim.store.validate_name`, so nothing the host sends can reach
outside DIR.  Symbolic links inside DIR are not shown (nor followed), nor are
sockets, FIFOs or devices.  Changes made to DIR behind the camera's back are
noticed when a folder is listed (a light rescan of that folder) and by an
optional watcher thread that rescans the tree every *watch_interval* seconds;
both emit ObjectAdded / ObjectRemoved / ObjectInfoChanged.

A host file is never overwritten nor erased by anything but DeleteObject of its
own object: an upload whose name exists becomes a new object (as on a camera)
whose bytes get a unique host name, ``NAME~2.EXT``; once the older object is
deleted (what a client replacing a file does next) the new one's host file takes
the plain name back.  FormatStore is refused (AccessDenied).  Hidden
``.ptpfs-upload-*`` files left by a simulator killed mid-upload are removed at
start-up.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable
from datetime import datetime

from ptpfs.sim.store import (
    FORMAT_ASSOCIATION,
    IMAGE_FORMATS,
    ROOT,
    ObjectStore,
    PendingObject,
    SimObject,
    Storage,
    StoreError,
    Upload,
    _format_for,
    validate_name,
)

TEMP_PREFIX = ".ptpfs-upload-"
STORAGE_ID = 0x00010001

log = logging.getLogger(__name__)


def unique_host_name(name: str, taken: Callable[[str], bool]) -> str:
    """*name*, or ``NAME~2.EXT``, ``NAME~3.EXT``, … the first that is not *taken*."""
    if not taken(name):
        return name
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    n = 2
    while True:
        candidate = f"{stem}~{n}{ext}"
        if len(candidate.encode("utf-8", "surrogatepass")) > 255:
            stem = stem[:-1]
            continue
        if not taken(candidate):
            return candidate
        n += 1


def remove_stale_uploads(root: str) -> int:
    """Delete the hidden upload files (``.ptpfs-upload-*``) a simulator killed
    mid-upload left under *root*; symbolic links are neither followed nor removed.
    Returns how many were removed."""
    removed = 0
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(folder, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
                    removed += 1
            except OSError as exc:
                log.warning("stale upload %s not removed: %s", path, exc)
    if removed:
        log.warning("removed %d partial upload file(s) left in %s", removed, root)
    return removed


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

    def __init__(self, store: DirStore, obj_handle: int, size: int, mtime_ns: int) -> None:
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

    formattable = False     # a host folder is never formatted

    def __init__(self, root: str, *, watch_interval: float | None = None,
                 read_only: bool = False, description: str = "sim") -> None:
        super().__init__()
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"sim directory {self.root!r} does not exist")
        self.add_storage(Storage(STORAGE_ID, description, 0, volume_label=os.path.basename(self.root),
                                 filesystem_type=2, access=1 if read_only else 0))
        if not read_only:
            remove_stale_uploads(self.root)
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
            parts.append(obj.key)
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
            name = obj.key
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
            seen = found.get(name)
            if seen is None or stat.S_ISDIR(seen.st_mode) != obj.is_folder:
                self._unlink(obj)
                continue
            st = seen
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
            except Exception:  # noqa: BLE001 - never let the watcher die on a transient error
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

    def _replace_existing(self, pending: PendingObject) -> None:
        """Never: an upload of an existing name is a new object (see the module doc)."""

    def _publish_upload(self, upload: Upload) -> DirContent:
        p = upload.pending
        dfd = upload.dir_fd
        assert dfd is not None
        siblings = self._child_map(p.storage_id, p.parent)
        try:
            while True:
                name = unique_host_name(p.name, lambda n: n in siblings or _exists(n, dfd))
                if _place(upload.temp_name, name, dfd):
                    break       # else: created on the host meanwhile; take the next name
            upload.host_name = name
            ts = p.mtime.timestamp()
            os.utime(name, (ts, ts), dir_fd=dfd, follow_symlinks=False)
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError as exc:
            self._discard_upload(upload)
            raise _store_error(exc) from exc
        if name != p.name:
            log.info("upload %r kept beside the existing file as %r", p.name, name)
        return DirContent(self, p.handle, st.st_size, st.st_mtime_ns)

    def delete(self, handle: int) -> tuple[list[int], bool]:
        """DeleteObject; a file kept under a ``~N`` host name because of the deleted
        one then takes its plain name back."""
        with self.mutating():
            obj = self.get(handle)
            storage_id, parent = obj.storage_id, obj.parent
            result = super().delete(handle)
            if parent == ROOT or parent in self._objects:
                self._settle(storage_id, parent)
            return result

    def _settle(self, storage_id: int, parent: int) -> None:
        siblings = self._child_map(storage_id, parent)
        movers = [self._objects[h] for k, h in siblings.items()
                  if self._objects[h].host_name and self._objects[h].name not in siblings]
        if not movers:
            return
        try:
            dfd = self._open_parent(parent)
        except StoreError:
            return
        try:
            for obj in movers:
                if obj.name in siblings or _exists(obj.name, dfd):
                    continue
                try:
                    if not _place(obj.key, obj.name, dfd):
                        continue
                except OSError as exc:
                    log.info("%r keeps its host name %r: %s", obj.name, obj.key, exc)
                    continue
                del siblings[obj.key]
                obj.host_name = ""
                siblings[obj.name] = obj.handle
        finally:
            os.close(dfd)

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
                os.rmdir(obj.key, dir_fd=dfd)
            else:
                os.unlink(obj.key, dir_fd=dfd)
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
                os.rename(obj.key, name, src_dir_fd=src, dst_dir_fd=dst)
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


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _place(src: str, dst: str, dir_fd: int) -> bool:
    """Rename *src* to *dst* in *dir_fd* unless *dst* exists (then ``False``): a
    hard link then unlink, which never replaces; a plain rename after a check where
    the host filesystem has no hard links."""
    try:
        os.link(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if _exists(dst, dir_fd):
            return False
        os.rename(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    os.unlink(src, dir_fd=dir_fd)
    return True
