"""The mfusepy Operations class: FUSE calls mapped onto the tree and the strategies.

Every operation that may reach the device runs inside :meth:`PtpFs._op`: it
resolves the path (tree, ``/.ptp`` or an open upload), calls a strategy
(:mod:`reader`, :mod:`uploads`, :mod:`virtual`, :mod:`thumbs`) and lets
:func:`~ptpfs.fs.errmap.fuse_errors` turn library exceptions into errno values
(path-level errors such as ENOENT or EISDIR are raised here; xattrs are not
supported).  The upload lifecycle lives in :mod:`uploads`, not here.
:class:`PlusFUSE` adds readdirplus so ``ls -l`` costs no getattr per file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import posixpath
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import mfusepy
from mfusepy import FuseOSError, Operations

from ptpfs.errors import ConnectionLost, ResponseError
from ptpfs.fs import activity
from ptpfs.fs.errmap import fuse_errors
from ptpfs.fs.mtimes import MTimes, device_key
from ptpfs.fs.reader import Reader, SpoolCache, open_reader
from ptpfs.fs.spool import SpoolDir
from ptpfs.fs.tree import VIRTUAL_DIR, Node, Tree
from ptpfs.fs.uploads import HIDDEN_PREFIX, NAME_UNITS_MAX, Upload, Uploads, check_name
from ptpfs.fs.virtual import Virtual, VNode
from ptpfs.protocol.codes import RC, wire_parent
from ptpfs.services.uploads import confirm_upload
from ptpfs.session import Session

log = logging.getLogger("ptpfs.fs")

FILL_DIR_PLUS = 1 << 1
READDIR_PLUS = 1 << 0
BLOCK = 4096
#: st_blksize of camera files: what buffered readers (stdio, Python, Pillow) read at a
#: time.  Kept small so a header peek of a large photo fetches little (docs/ptpfs.md).
IO_BLOCK = 128 << 10
#: st_blksize of files being written: ``cp`` then writes 1 MiB per request.
WRITE_BLOCK = 1 << 20
#: utimensat's special nanosecond values, as libfuse passes them (tv_sec 0).
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class ReadHandle:
    """An open device file being read (valid in one session generation)."""

    def __init__(self, node: Node, reader: Reader, generation: int = 0) -> None:
        self.node = node
        self.reader = reader
        self.generation = generation

    def size(self) -> int:
        return self.node.size


class UploadHandle:
    """An open file being written (new or replacing an object)."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload

    @property
    def path(self) -> str | None:
        """The file's current name (``None`` once unlinked)."""
        return self.upload.path

    def size(self) -> int:
        return self.upload.size


class VirtualHandle:
    """An open ``/.ptp`` file: a content snapshot, or a property being written."""

    def __init__(self, node: VNode, data: bytes, writing: bool) -> None:
        self.node = node
        self.data = data
        self.writing = writing
        self.buffer = b""
        self.applied = True

    def size(self) -> int:
        return len(self.data)


STALE = "the device was reconnected since this file was opened; open it again"


#: What an open file handle (``fi.fh``) stands for.
OpenFile = ReadHandle | UploadHandle | VirtualHandle


class PtpFs(Operations):
    """A PTP session as a filesystem."""

    use_ns = True
    #: ``-o thumbnails=prefill``: a :class:`~ptpfs.fs.thumbcache.Prefill` told about listings.
    prefill: Any = None

    def __init__(self, session: Session, *, cache_ttl: float = 60.0, read_only: bool = False,
                 readahead_max: int = 8 << 20, readahead_min: int = 128 << 10,
                 spool_dir: str | None = None, uid: int | None = None, gid: int | None = None,
                 umask: int | None = None, on_ready: Any = None) -> None:
        self.session = session
        self.read_only = read_only
        self.tree = Tree(session, cache_ttl=cache_ttl, read_only=read_only)
        self.virtual = Virtual(session, self.tree, ttl=cache_ttl)
        self.spool_dir = SpoolDir(spool_dir)
        self.spools = SpoolCache(session, self.spool_dir)
        self.readahead_max = readahead_max
        self.readahead_min = readahead_min
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.umask = umask
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._handles: dict[int, OpenFile] = {}
        self._dirs: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self._next_fh = 1
        self._fuse_ptr: int | None = None
        # held around every kernel notification and by destroy() while it drops the
        # handle: a notification racing an unmount used the freed handle (segfault)
        self._notify_lock = threading.Lock()
        self.tree.listeners.append(self._kernel_invalidate)
        self._tl = threading.local()
        try:
            mtimes: MTimes | None = MTimes(device_key(session.device_info))
        except Exception:  # noqa: BLE001 - a session without DeviceInfo (tests)
            mtimes = None
        self.uploads = Uploads(session, self.tree, self.spool_dir,
                               generation=self._generation, invalidate=self._invalidate_soon,
                               forget_spool=lambda h: self.spools.forget(h), mtimes=mtimes)
        self._remove_link_listener = session.add_link_listener(self._link_changed)

    # ---------------------------------------------------------------- lifecycle
    def init_with_config(self, conn_info: Any, config: Any) -> None:
        """Called by libfuse once mounted: remember the fuse handle, report ready."""
        try:
            self._fuse_ptr = mfusepy._libfuse.fuse_get_context().contents.fuse
            mfusepy._libfuse.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            mfusepy._libfuse.fuse_invalidate_path.restype = ctypes.c_int
        except (AttributeError, ValueError):
            self._fuse_ptr = None
        self.tree.start_events()
        if self.on_ready is not None:
            self.on_ready()

    def loop_ended(self) -> None:
        """The FUSE loop returned: stop notifying the kernel.  libfuse's
        ``fuse_destroy`` frees the node tables that ``fuse_invalidate_path``
        walks *before* it calls :meth:`destroy` (see ptpfs.fs.fusemain)."""
        with self._notify_lock:
            self._fuse_ptr = None

    def destroy(self, path: str) -> None:
        """Unmounted: stop events, flush what is left, close every handle."""
        self.tree.stop_events()
        if self._remove_link_listener is not None:
            self._remove_link_listener()
        with self._notify_lock:
            self._fuse_ptr = None
        with self._lock:
            handles = list(self._handles.values())
            self._handles.clear()
        for handle in handles:
            self._close_handle(handle, commit=True)
        self.uploads.release_all()
        if self.uploads.mtimes is not None:
            self.uploads.mtimes.flush()

    def _notify_kernel(self, path: str) -> None:
        """Drop the kernel's cached entry of *path* (nothing once unmounting)."""
        with self._notify_lock:
            if self._fuse_ptr:
                mfusepy._libfuse.fuse_invalidate_path(
                    self._fuse_ptr, path.encode("utf-8", "surrogateescape"))

    def _kernel_invalidate(self, paths: list[str]) -> None:
        for path in dict.fromkeys(paths):
            node = None
            try:
                node = self.tree.lookup(path) if not path.startswith(f"/{VIRTUAL_DIR}") else None
            except OSError:
                pass
            if isinstance(node, Node) and node.handle:
                self.spools.forget(node.handle)
            self._notify_kernel(path)

    # ---------------------------------------------------------------- link state
    def _generation(self) -> int:
        """The session generation this FUSE request started in."""
        gen = getattr(self._tl, "generation", None)
        return self.session.generation if gen is None else gen

    @contextlib.contextmanager
    def _op(self, what: str, path: str | None) -> Iterator[None]:
        """Map errors to errno, and pin the session generation: a request
        that resolved a path before a reconnect never sends that handle to
        the new session."""
        with fuse_errors(what, path):
            outer = getattr(self._tl, "generation", None)
            with self.session.pinned() as gen:
                self._tl.generation = gen
                try:
                    yield
                finally:
                    self._tl.generation = outer

    def _current(self, generation: int) -> None:
        """Raise EIO unless the session is still in *generation*."""
        if generation != self.session.generation:
            raise ConnectionLost(STALE)

    def _link_changed(self, state: str) -> None:
        """Session link listener: after a reconnect the tree keeps its listings
        for revalidation if the handles still name the same objects (else it
        starts afresh), the download spools and the kernel's caches start afresh,
        and uploads cut off by the loss are cleaned up."""
        if state == "lost":
            log.warning("device link lost; cached listings stay visible, everything else "
                        "answers EIO until it is back")
        elif state == "reattached":
            # before any request may use the new session (see Session._reattach)
            paths = self.tree.reconnected()     # listings kept if the handles still hold
            self.spools = SpoolCache(self.session, self.spool_dir)
            for p in dict.fromkeys(paths):
                self._notify_kernel(p)
        elif state == "reconnected":
            # after ``lost`` cleared: an upload failing meanwhile cleans up itself
            self.cleanup_orphans()

    def cleanup_orphans(self) -> int:
        """Delete what uploads cut off by a lost link left on the device."""
        return self.uploads.cleanup_orphans()

    def _invalidate_soon(self, paths: list[str]) -> None:
        """Kernel cache invalidation from outside the FUSE request in progress
        (notifying from inside a request handler can deadlock the kernel)."""
        if self._fuse_ptr:
            threading.Thread(target=self._kernel_invalidate, args=(paths,),
                             name="ptpfs-invalidate", daemon=True).start()

    # ---------------------------------------------------------------- helpers
    def _new_fh(self, obj: OpenFile) -> int:
        with self._lock:
            fh = self._next_fh
            self._next_fh += 1
            self._handles[fh] = obj
            return fh

    def _handle(self, fi: Any) -> OpenFile:
        fh = fi.fh if not isinstance(fi, int) else fi
        handle = self._handles.get(fh)
        if handle is None:
            raise FuseOSError(errno.EBADF)
        return handle

    def _perm(self, is_dir: bool, writable: bool) -> int:
        if self.umask is not None:
            perm = (0o777 if is_dir else 0o666) & ~self.umask
        else:
            perm = 0o755 if is_dir else 0o644
        if not writable:
            perm &= ~0o222
        return perm

    def _attrs(self, *, ino: int, is_dir: bool, size: int = 0, mtime: float = 0.0,
               writable: bool = True, nlink: int = 1,
               blksize: int = IO_BLOCK) -> dict[str, Any]:
        ns = int(mtime * 1e9)
        mode = (stat.S_IFDIR if is_dir else stat.S_IFREG) | self._perm(is_dir, writable)
        return {"st_mode": mode, "st_ino": ino, "st_nlink": 2 if is_dir else nlink,
                "st_size": size, "st_blocks": (size + 511) // 512, "st_blksize": blksize,
                "st_mtime": ns, "st_ctime": ns, "st_atime": ns,
                "st_uid": self.uid, "st_gid": self.gid}

    def _node_attrs(self, node: Node) -> dict[str, Any]:
        return self._attrs(ino=node.ino, is_dir=node.is_dir, size=node.size,
                           mtime=self.uploads.node_mtime(node),
                           writable=self.tree.effective_writable(node))

    def _vattrs(self, node: VNode) -> dict[str, Any]:
        hint = self.virtual.stat_hint(node)   # thumbs/: sizes without transfers
        if hint is not None:
            return self._attrs(ino=node.ino, is_dir=node.is_dir, size=hint[0], mtime=hint[1],
                               writable=False)
        if node.is_dir:
            return self._attrs(ino=node.ino, is_dir=True, mtime=self.tree.root.mtime,
                               writable=False)
        size = len(self.virtual.content(node))
        return self._attrs(ino=node.ino, is_dir=False, size=size, mtime=time.time(),
                           writable=node.writable and not self.read_only)

    def _upload_attrs(self, upload: Upload) -> dict[str, Any]:
        ino = (1 << 42) | (id(upload) & 0xFFFFFFFF)
        first = upload.handle if upload.handle is not None else upload.replaces
        if first is not None:
            ino = (1 << 41) | first
        return self._attrs(ino=ino, is_dir=False, size=upload.size,
                           mtime=upload.mtime_set if upload.mtime_set is not None else upload.mtime,
                           blksize=WRITE_BLOCK)

    @staticmethod
    def _virtual_parts(path: str) -> list[str] | None:
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == VIRTUAL_DIR:
            return parts[1:]
        return None

    def _resolve(self, path: str) -> Any:
        """Node, VNode or Upload for *path*; FileNotFoundError if none."""
        vparts = self._virtual_parts(path)
        if vparts is not None:
            return self.virtual.lookup(vparts)
        upload = self.uploads.get(path)
        if upload is not None:
            return upload
        hidden = self.uploads.hidden(path)
        if hidden is not None:
            return hidden
        if path is None:
            raise FileNotFoundError("an unlinked file")
        node = self.tree.lookup(path)
        if self.uploads.is_hidden(node):       # unlinked while open, re-listed meanwhile
            raise FileNotFoundError(path)
        return node

    def _parent_dir(self, path: str) -> tuple[Node, str]:
        parent_path, _, name = path.rstrip("/").rpartition("/")
        if self._virtual_parts(path) is not None:
            raise FuseOSError(errno.EACCES)
        parent = self.tree.lookup(parent_path or "/")
        if not parent.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        if parent.kind == "root":
            raise FuseOSError(errno.EACCES)  # storages cannot be created
        check_name(name)
        return parent, name

    def _check_writable(self, node: Node) -> None:
        if self.read_only:
            raise FuseOSError(errno.EROFS)
        storage = self.tree.storage_node(node.storage_id)
        if storage is not None and not storage.writable:
            raise FuseOSError(errno.EROFS)
        if not node.writable:
            raise FuseOSError(errno.EACCES)

    def _check_deletable(self, node: Node) -> None:
        if self.read_only:
            raise FuseOSError(errno.EROFS)
        storage = self.tree.storage_node(node.storage_id)
        if storage is not None and not storage.deletable:
            raise FuseOSError(errno.EROFS)
        if not node.deletable:
            raise FuseOSError(errno.EACCES)
        if not self.session.capabilities.delete:
            raise FuseOSError(errno.EPERM)

    def _refresh(self, handle: int) -> Node | None:
        """Re-read one object's metadata into the tree after a change."""
        node = self.tree.add_object(self.tree.lister.object_meta(handle))
        return node

    # ---------------------------------------------------------------- metadata
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        with self._op("getattr", path):
            if fh is not None and getattr(fh, "fh", 0) in self._handles:
                handle = self._handles[fh.fh]
                if isinstance(handle, UploadHandle):
                    return self._upload_attrs(handle.upload)
                if isinstance(handle, VirtualHandle) and not handle.writing:
                    attrs = self._vattrs(handle.node)
                    attrs["st_size"] = len(handle.data)
                    return attrs
            if path == "/":
                return self._attrs(ino=1, is_dir=True, mtime=self.tree.root.mtime,
                                   writable=not self.read_only)
            target = self._target(path, fh)
            if isinstance(target, VNode):
                return self._vattrs(target)
            if isinstance(target, Upload):
                return self._upload_attrs(target)
            return self._node_attrs(target)

    def dir_entries(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """``(name, attrs)`` for every entry of a directory, ``.`` and ``..`` first."""
        target = self._resolve(path)
        entries: list[tuple[str, dict[str, Any]]] = []
        if isinstance(target, VNode):
            if not target.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            entries.append((".", self._vattrs(target)))
            entries.append(("..", self._attrs(ino=1, is_dir=True)))
            for child in self.virtual.list(target):
                entries.append((child.name, self._vattrs(child)))
            return entries
        if isinstance(target, Upload) or not target.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        entries.append((".", self._node_attrs(target) if target.kind != "root"
                        else self._attrs(ino=1, is_dir=True, writable=not self.read_only)))
        entries.append(("..", self._attrs(ino=1, is_dir=True)))
        if target.kind == "root":
            entries.append((VIRTUAL_DIR, self._vattrs(self.virtual.root)))
        children = self.tree.children(target)
        if self.prefill is not None:
            self.prefill.listed(children.values())
        pending = self.uploads.in_folder(path)
        for name, node in children.items():
            if name not in pending and not self.uploads.is_hidden(node):
                entries.append((name, self._node_attrs(node)))
        for name, upload in pending.items():
            entries.append((name, self._upload_attrs(upload)))
        return entries

    def opendir(self, path: str) -> int:
        with self._op("opendir", path):
            entries = self.dir_entries(path)
            with self._lock:
                fh = self._next_fh
                self._next_fh += 1
                self._dirs[fh] = entries
            return fh

    def readdir(self, path: str, fh: int) -> list[str]:
        with self._op("readdir", path):
            entries = self._dirs.get(fh)
            if entries is None:
                entries = self.dir_entries(path)
            return [name for name, _ in entries]

    def dir_snapshot(self, path: str, fh: int) -> list[tuple[str, dict[str, Any]]]:
        """The entries captured at opendir (used by :class:`PlusFUSE`)."""
        entries = self._dirs.get(fh)
        if entries is None:
            with self._op("readdir", path):
                entries = self.dir_entries(path)
        return entries

    def releasedir(self, path: str, fh: int) -> int:
        with self._lock:
            self._dirs.pop(fh, None)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        with self._op("statfs", path):
            storages = list(self.tree.storages().values())
            try:
                node = self.tree.lookup(path) if self._virtual_parts(path) is None else None
            except OSError:
                node = None
            if node is not None and node.kind != "root":
                storages = [s for s in storages if s.storage_id == node.storage_id]
            capacity = free = 0
            files_free = 0
            for storage in storages:
                info = self.tree.storage_info(storage.storage_id)
                cap = int(info.max_capacity)
                fr = min(int(info.free_space_bytes), cap) if cap else int(info.free_space_bytes)
                capacity += max(cap, fr)
                free += fr
                if info.free_space_objects != 0xFFFFFFFF:
                    files_free += int(info.free_space_objects)
                else:
                    files_free += fr // BLOCK
            readonly = all(not s.writable for s in storages) if storages else True
            avail = 0 if readonly else free // BLOCK
            return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": capacity // BLOCK,
                    "f_bfree": free // BLOCK, "f_bavail": avail,
                    "f_files": files_free + len(self.tree._nodes), "f_ffree": files_free,
                    "f_favail": files_free, "f_namemax": NAME_UNITS_MAX}

    def chmod(self, path: str, mode: int) -> int:
        with self._op("chmod", path):
            self._resolve(path)
            return 0  # PTP has no permissions to set; accepted so cp -p / rsync -a work

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._op("chown", path):
            self._resolve(path)
            return 0

    def utimens(self, path: str | None, times: Any = None, fh: Any = None) -> int:
        with self._op("utimens", path):
            target = self._target(path, fh)
            if isinstance(target, VNode) or (isinstance(target, Node) and target.is_dir):
                return 0    # folders and /.ptp keep the device's dates
            mtime_ns = times[1] if times else UTIME_NOW
            if mtime_ns == UTIME_OMIT:
                return 0
            mtime = time.time() if mtime_ns == UTIME_NOW else mtime_ns / 1e9
            if isinstance(target, Upload):
                if target.path is not None:
                    self.uploads.set_mtime(target.path, None, mtime)
                else:
                    target.mtime_set = target.mtime = mtime
                return 0
            self._check_writable(target)
            self.uploads.set_mtime(target.path, target, mtime)
            return 0

    def _target(self, path: str | None, fh: Any) -> Any:
        """What a path operation that may carry a file handle acts on: the open
        upload of the handle (also after unlink), else whatever *path* names."""
        handle = self._handles.get(getattr(fh, "fh", fh)) if fh is not None else None
        if isinstance(handle, UploadHandle):
            return handle.upload
        if path is None and isinstance(handle, ReadHandle):
            return handle.node
        if path is None:
            raise FuseOSError(errno.ESTALE if handle is None else errno.EBADF)
        return self._resolve(path)

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        raise FuseOSError(errno.ENOSYS)

    def listxattr(self, path: str) -> list[str]:
        return []

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise FuseOSError(errno.ENOSYS)

    def removexattr(self, path: str, name: str) -> int:
        raise FuseOSError(errno.ENOSYS)

    # ---------------------------------------------------------------- files
    def open(self, path: str, fi: Any) -> int:
        with self._op("open", path):
            flags = fi.flags
            accmode = flags & os.O_ACCMODE
            writing = accmode != os.O_RDONLY
            try:
                target = self._resolve(path)
            except FileNotFoundError:
                if writing and flags & os.O_TRUNC and self._virtual_parts(path) is None:
                    # the kernel still had a name that is gone (a failed upload, a
                    # deleted object): it sends open without O_CREAT, so create here
                    return self.create(path, 0o644, fi)
                raise
            if isinstance(target, VNode):
                if target.is_dir:
                    raise FuseOSError(errno.EISDIR)
                if writing and (not target.writable or self.read_only):
                    raise FuseOSError(errno.EACCES)
                data = b"" if writing else self.virtual.content(target)
                # thumbs: page cache and mmap, unless the camera sent more than it announced
                fi.direct_io = 0 if target.target is not None and \
                    not self.virtual.thumbs.size_may_be_stale(target.target) else 1
                fi.fh = self._new_fh(VirtualHandle(target, data, writing))
                return 0
            if isinstance(target, Upload):
                self.uploads.attach(target, truncate=bool(writing and flags & os.O_TRUNC))
                fi.fh = self._new_fh(UploadHandle(target))
                return 0
            if target.is_dir:
                raise FuseOSError(errno.EISDIR)
            if writing:
                self._check_writable(target)
                upload = self.uploads.open_node(path, target, truncate=bool(flags & os.O_TRUNC))
                fi.fh = self._new_fh(UploadHandle(upload))
                return 0
            generation = self._generation()
            reader = open_reader(self.session, target.handle, target.size, self.spools,
                                 readahead_max=self.readahead_max,
                                 readahead_min=self.readahead_min)
            try:
                self._current(generation)
            except ConnectionLost:
                reader.close()
                raise
            fi.keep_cache = 1
            fi.fh = self._new_fh(ReadHandle(target, reader, generation))
            return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        with self._op("create", path):
            if path in self.uploads:
                return self.open(path, fi)
            parent, name = self._parent_dir(path)
            self._check_writable(parent)
            if not self.session.capabilities.upload:
                raise FuseOSError(errno.EROFS)
            existing = self.tree.children(parent).get(name)
            if existing is not None and existing.is_dir:
                raise FuseOSError(errno.EISDIR)
            upload = self.uploads.create(path, parent, name, existing)
            fi.fh = self._new_fh(UploadHandle(upload))
            return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        with self._op("read", path):
            handle = self._handle(fi)
            if isinstance(handle, ReadHandle):
                self._current(handle.generation)
                try:
                    data = handle.reader.read(offset, size)
                except ResponseError as exc:
                    if exc.code != RC.InvalidObjectHandle:
                        raise
                    # replaced or deleted on the device while open: the reader got the
                    # old object's bytes so far, and now an error, never new bytes
                    log.info("%s: the object was replaced or deleted while open", path)
                    raise FuseOSError(errno.EIO) from exc
                self._current(handle.generation)   # nothing fetched across a reconnect
                return data
            if isinstance(handle, UploadHandle):
                return handle.upload.read(offset, size)
            return handle.data[offset: offset + size]

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        with self._op("write", path):
            handle = self._handle(fi)
            if isinstance(handle, UploadHandle):
                return handle.upload.write(data, offset)
            if isinstance(handle, VirtualHandle) and handle.writing:
                handle.buffer = handle.buffer[:offset] + data
                handle.applied = False
                if handle.buffer.endswith(b"\n"):
                    self._apply_property(handle)
                return len(data)
            raise FuseOSError(errno.EBADF)

    def _apply_property(self, handle: VirtualHandle) -> None:
        handle.applied = True
        text = handle.buffer.decode("utf-8", "replace")
        path = f"/{VIRTUAL_DIR}/properties.d/{handle.node.name}"
        try:
            self.virtual.write_property(handle.node, text)
        except Exception as exc:
            activity.property_written(path, text, exc)
            raise
        activity.property_written(path, text)
        self._invalidate_soon([path])

    def truncate(self, path: str | None, length: int, fh: Any = None) -> int:
        with self._op("truncate", path):
            handle = self._handles.get(getattr(fh, "fh", fh)) if fh is not None else None
            if isinstance(handle, VirtualHandle) and handle.writing:
                return 0
            target = self._target(path, fh)
            if isinstance(target, VNode):
                if target.writable and not self.read_only:
                    return 0
                raise FuseOSError(errno.EACCES)
            if isinstance(target, Upload):
                target.truncate(length)
                return 0
            if target.is_dir:
                raise FuseOSError(errno.EISDIR)
            if length == target.size:
                return 0
            self._check_writable(target)
            self.uploads.truncate_node(target.path, target, length)
            return 0

    def flush(self, path: str, fi: Any) -> int:
        with self._op("flush", path):
            handle = self._handles.get(fi.fh)
            if isinstance(handle, UploadHandle):
                try:
                    self.uploads.flush(handle.upload)
                except Exception as exc:
                    activity.upload_failed(handle.path or path or "(unlinked)", exc)
                    raise
            elif isinstance(handle, VirtualHandle) and handle.writing and not handle.applied:
                self._apply_property(handle)
            return 0

    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        with self._op("fsync", path):
            handle = self._handles.get(fi.fh)
            if isinstance(handle, UploadHandle):
                self.uploads.fsync(handle.upload)
            elif isinstance(handle, VirtualHandle) and handle.writing and not handle.applied:
                self._apply_property(handle)
            return 0

    def release(self, path: str, fi: Any) -> int:
        with self._lock:
            handle = self._handles.pop(fi.fh, None)
        if handle is not None:
            with self._op("release", path):
                self._close_handle(handle, commit=True)
        return 0

    def _close_handle(self, handle: Any, *, commit: bool) -> None:
        if isinstance(handle, ReadHandle):
            handle.reader.close()
        elif isinstance(handle, UploadHandle):
            self.uploads.release(handle.upload)

    # ---------------------------------------------------------------- namespace
    def mkdir(self, path: str, mode: int) -> int:
        with self._op("mkdir", path):
            from ptpfs.protocol.datasets import ObjectInfo
            parent, name = self._parent_dir(path)
            self._check_writable(parent)
            if name in self.tree.children(parent) or path in self.uploads:
                raise FuseOSError(errno.EEXIST)
            info = ObjectInfo.folder(parent.storage_id, parent.handle, name)
            _, _, predicted = self.session.send_object_info(parent.storage_id,
                                                            wire_parent(parent.handle), info)
            # Some devices (QEMU's usb-mtp) answer with a predicted handle and register
            # the folder later, possibly under another handle: confirm it by name, as
            # uploads are, before it is looked up or used as a parent.
            handle, _ = confirm_upload(self.session, parent.storage_id, parent.handle,
                                       name, predicted)
            self._refresh(handle)
            return 0

    def rmdir(self, path: str) -> int:
        with self._op("rmdir", path):
            node = self._resolve(path)
            if not isinstance(node, Node) or node.kind in ("root", "storage"):
                raise FuseOSError(errno.EACCES if isinstance(node, Node) else errno.ENOTDIR)
            if not node.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            if self.tree.children(node) or self.uploads.in_folder(path):
                raise FuseOSError(errno.ENOTEMPTY)
            self._check_deletable(node)
            self.session.delete_object(node.handle)
            self.tree.remove_object(node.handle)
            return 0

    def unlink(self, path: str) -> int:
        with self._op("unlink", path):
            if self.uploads.unhide(path):
                return 0
            target = self._resolve(path)
            if isinstance(target, VNode):
                raise FuseOSError(errno.EACCES)
            if isinstance(target, Upload):
                self.uploads.unlink(path)
                return 0
            if target.is_dir:
                raise FuseOSError(errno.EISDIR)
            self._check_deletable(target)
            self.session.delete_object(target.handle)
            self.tree.remove_object(target.handle)
            self.spools.forget(target.handle)
            return 0

    def rename(self, old: str, new: str) -> int:
        with self._op("rename", old):
            if self._virtual_parts(old) is not None or self._virtual_parts(new) is not None:
                raise FuseOSError(errno.EACCES)
            source = self._resolve(old)
            if posixpath.basename(new).startswith(HIDDEN_PREFIX):
                # libfuse hiding a file unlinked while open: an unlink here
                if not isinstance(source, Upload):
                    self._check_deletable(source)
                self.uploads.hide(old, new, None if isinstance(source, Upload) else source)
                return 0
            new_parent, new_name = self._parent_dir(new)
            self._check_writable(new_parent)
            if isinstance(source, Upload):
                self.uploads.rename(old, new, None, new_parent, new_name)
                return 0
            if source.kind in ("root", "storage"):
                raise FuseOSError(errno.EACCES)
            self._check_deletable(source)
            self.uploads.rename(old, new, source, new_parent, new_name)
            return 0


_request = threading.local()


def in_fuse_request() -> bool:
    """Whether this thread is serving a FUSE request: only then does libfuse's
    per-thread context hold a live request (``fuse_interrupted`` reads it; in
    other threads, in ``init`` and in ``destroy`` it is missing, NULL or stale)."""
    return getattr(_request, "depth", 0) > 0


class PlusFUSE(mfusepy.FUSE):
    """mfusepy's FUSE with readdirplus: entries carry full attributes.

    Entries are filled in offset mode (libfuse 3 drops plus entries in list
    mode), with FUSE_FILL_DIR_PLUS when the kernel asked for plus, so
    ``ls -l`` needs no getattr per file.
    """

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(func, "__name__", "").startswith(("init", "destroy")):  # init_fuse_3
            return super()._wrapper(func, *args, **kwargs)
        _request.depth = getattr(_request, "depth", 0) + 1
        try:
            return super()._wrapper(func, *args, **kwargs)
        finally:
            _request.depth -= 1

    # mfusepy 3.x drops the file handle of truncate and utimens on libfuse 3
    # (ftruncate, futimens): pass it on, so an open or unlinked file is found.
    def _decoded(self, path: bytes | None) -> str | None:
        return None if path is None else path.decode(self.encoding, self.errors)

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fh = fip.contents if fip else None
        return int(self.operations.truncate(self._decoded(path), length, fh))

    def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        times = None
        if buf:
            times = (mfusepy.time_of_timespec(buf.contents.actime, use_ns=self.use_ns),
                     mfusepy.time_of_timespec(buf.contents.modtime, use_ns=self.use_ns))
        fh = fip.contents if fip else None
        return int(self.operations.utimens(self._decoded(path), times, fh))

    def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int,
                       fip: Any, flags: int) -> int:
        plus = bool(flags & READDIR_PLUS)
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        entries = self.operations.dir_snapshot(decoded, fip.contents.fh)
        st = mfusepy.c_stat()
        for index in range(offset, len(entries)):
            name, attrs = entries[index]
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            mfusepy.set_st_attrs(st, attrs, use_ns=self.use_ns)
            fill = FILL_DIR_PLUS if plus and name not in (".", "..") else 0
            if filler(buf, name.encode(self.encoding, self.errors), st, index + 1, fill) != 0:
                break
        return 0
