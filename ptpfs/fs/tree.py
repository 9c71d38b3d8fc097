"""The object tree: storages, folders and files, their names and inode numbers.

Listings are fetched lazily, one folder at a time, with the session's best
:mod:`~ptpfs.services.listing` strategy and kept in a :class:`cachetools.TTLCache`
keyed by ``(storage_id, folder_handle)``; device events update or invalidate
exactly the folder they concern.  Node objects are reused across re-listings
(same handle, same node), so inode numbers and parent links stay stable.

Memory: a listed object costs one slotted :class:`Node` (its metadata, no
separate ObjectMeta kept) plus its entries in two dicts, about 300-400 bytes
with its name (``scripts/memory_listing.py`` measures it).

Events are applied by one worker from a bounded queue (:data:`EVENT_QUEUE_MAX`).
It takes what has queued up as one batch: a small batch is applied event by
event (one GetObjectInfo per new object); a burst (more than
:data:`BURST_EVENTS` object events) costs no transaction at all: the folders
of the objects it names are invalidated once each and, if it names objects not
seen yet, every cached listing is dropped, to be re-listed on next use.  When
the queue overflows, the events that did not fit are dropped and the same
"re-list everything" applies.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from cachetools import TTLCache

from ptpfs.errors import PTPError, ResponseError
from ptpfs.protocol.codes import EC, RC, norm_parent
from ptpfs.protocol.datasets import StorageInfo
from ptpfs.services.listing import Lister, ObjectMeta, choose_lister
from ptpfs.services.naming import sanitize, unique_names
from ptpfs.session import Session

log = logging.getLogger("ptpfs.fs")

VIRTUAL_DIR = ".ptp"

INO_ROOT = 1
INO_STORAGE = 1 << 40
INO_OBJECT = 1 << 41

OBJECT_EVENTS = (EC.ObjectAdded, EC.ObjectRemoved, EC.ObjectInfoChanged,
                 EC.ObjectPropChanged)
#: Most events waiting for the worker; more are dropped and everything is re-listed.
EVENT_QUEUE_MAX = 4096
#: A batch with more object events than this invalidates folders instead of
#: fetching each object's metadata.
BURST_EVENTS = 32

_WRITABLE = 1
_DELETABLE = 2
_CARRIED = 4        # known from before the last reconnect, not confirmed since
#: Known files asked for after a reconnect, to check that handles still name them.
PROBE_OBJECTS = 3
_KINDS = {k: k for k in ("root", "storage", "dir", "file")}


class Node:
    """One directory or file of the mounted tree (slotted: a mount may list
    millions; the inode number is derived from the kind and handle)."""

    __slots__ = ("kind", "name", "storage_id", "handle", "parent", "size", "mtime", "format",
                 "_flags", "_raw", "info")

    def __init__(self, kind: str, name: str, *, storage_id: int = 0, handle: int = 0,
                 parent: Node | None = None, size: int = 0, mtime: float = 0.0,
                 format: int = 0, writable: bool = True, deletable: bool = True,
                 raw_name: str | None = None, info: Any = None) -> None:
        self.kind = _KINDS[kind]       # "root", "storage", "dir", "file" (shared strings)
        self.name = name
        self.storage_id = storage_id
        self.handle = handle           # 0 for the root and storage roots
        self.parent = parent
        self.size = size
        self.mtime = mtime
        self.format = format
        self._flags = (_WRITABLE if writable else 0) | (_DELETABLE if deletable else 0)
        self._raw: str | None = None
        self.raw_name = raw_name if raw_name is not None else ""
        self.info = info               # StorageInfo for storages

    def __repr__(self) -> str:
        return f"Node({self.kind!r}, {self.name!r}, handle=0x{self.handle:08x})"

    @property
    def ino(self) -> int:
        """Inode number: fixed per root, storage ID or object handle."""
        if self.kind == "root":
            return INO_ROOT
        if self.kind == "storage":
            return INO_STORAGE | self.storage_id
        return INO_OBJECT | self.handle

    @property
    def raw_name(self) -> str:
        """The device's own file name ("" for the root and storages)."""
        return self.name if self._raw is None else self._raw

    @raw_name.setter
    def raw_name(self, value: str) -> None:
        # kept only when it differs from the display name (rarely)
        self._raw = None if value == self.name else value

    @property
    def writable(self) -> bool:
        """Whether the object may be written (its own protection status)."""
        return bool(self._flags & _WRITABLE)

    @writable.setter
    def writable(self, value: bool) -> None:
        self._flags = (self._flags | _WRITABLE) if value else (self._flags & ~_WRITABLE)

    @property
    def deletable(self) -> bool:
        """Whether the object may be deleted."""
        return bool(self._flags & _DELETABLE)

    @deletable.setter
    def deletable(self, value: bool) -> None:
        self._flags = (self._flags | _DELETABLE) if value else (self._flags & ~_DELETABLE)

    @property
    def is_dir(self) -> bool:
        """Root, storages and associations are directories."""
        return self.kind != "file"

    @property
    def folder_key(self) -> tuple[int, int]:
        """The listing-cache key of a directory node."""
        return (self.storage_id, self.handle)

    @property
    def path(self) -> str:
        """Absolute path inside the mount."""
        parts = []
        node: Node | None = self
        seen: set[int] = set()
        while node is not None and node.kind != "root" and id(node) not in seen:
            seen.add(id(node))   # a device may claim cyclic parents: never loop
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    def ancestors(self) -> set[int]:
        """Handles of this node and every folder above it (cycle-safe)."""
        out: set[int] = set()
        node: Node | None = self
        while node is not None and node.kind in ("dir", "file") and node.handle not in out:
            out.add(node.handle)
            node = node.parent
        return out


class Folder:
    """A cached listing: display name -> child node (the nodes carry the metadata)."""

    __slots__ = ("by_name",)

    def __init__(self) -> None:
        self.by_name: dict[str, Node] = {}

    def nodes(self) -> list[Node]:
        """The children."""
        return list(self.by_name.values())

    def handles(self) -> set[int]:
        """The children's handles."""
        return {n.handle for n in self.by_name.values()}


def storage_label(info: StorageInfo, storage_id: int) -> str:
    """A storage's display name from its description or volume label."""
    for text in (info.storage_description, info.volume_label):
        if text and text.strip():
            return text.strip()
    return f"storage-{storage_id:08x}"


class Tree:
    """Paths -> nodes over one PTP session, with caches kept fresh by events."""

    def __init__(self, session: Session, *, cache_ttl: float = 60.0,
                 storage_ttl: float = 2.0, lister: Lister | None = None,
                 read_only: bool = False) -> None:
        self.session = session
        self.lister = lister or choose_lister(session)
        self.read_only = read_only
        self.cache_ttl = cache_ttl
        self._lock = threading.RLock()
        self.root = Node("root", "", writable=not read_only, mtime=time.time())
        self._storages: dict[str, Node] | None = None
        self._storages_at = 0.0
        self._storage_nodes: dict[int, Node] = {}
        self._folders: TTLCache[tuple[int, int], Folder] = TTLCache(maxsize=65536, ttl=cache_ttl)
        self._nodes: dict[int, Node] = {}          # handle -> node (reused)
        # one int object per distinct storage ID / format, not one per node
        interned: dict[int, int] = {}
        self._interned: Callable[[int, int], int] = interned.setdefault
        self._storage_info: TTLCache[int, StorageInfo] = TTLCache(maxsize=64, ttl=storage_ttl)
        self.events: collections.deque[str] = collections.deque(maxlen=500)
        self.listeners: list[Callable[[list[str]], None]] = []
        self.prop_listeners: list[Callable[[int], None]] = []
        self._queue: queue.Queue[tuple[int, Any] | None] = queue.Queue(maxsize=EVENT_QUEUE_MAX)
        self._overflow = False         # events were dropped: re-list everything
        #: Events received / dropped on overflow / bursts coalesced (for /.ptp and tests).
        self.event_stats = {"received": 0, "dropped": 0, "bursts": 0, "relists": 0}
        self._worker: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False
        self._notify_lock = threading.Lock()

    # ------------------------------------------------------------------ storages
    def storages(self) -> dict[str, Node]:
        """Present storages by display name (cached until a store event).  The tree lock is
        not held while the device answers: cached folders stay answerable meanwhile."""
        with self._lock:
            if self._storages is not None and time.monotonic() - self._storages_at < self.cache_ttl:
                return self._storages
        ids = [sid for sid in self.session.get_storage_ids() if sid & 0xFFFF]
        infos = {}
        for sid in ids:
            try:
                infos[sid] = self.session.get_storage_info(sid)
            except ResponseError as exc:
                log.info("storage 0x%08x unavailable: %s", sid, exc)
        with self._lock:
            names = unique_names(((sid, storage_label(info, sid)) for sid, info in infos.items()),
                                 reserved=(VIRTUAL_DIR,))
            result: dict[str, Node] = {}
            for sid in sorted(infos):
                info = infos[sid]
                node = self._storage_nodes.get(sid)
                if node is None:
                    node = Node("storage", names[sid], storage_id=sid,
                                parent=self.root, mtime=self.root.mtime)
                    self._storage_nodes[sid] = node
                node.name = names[sid]
                node.info = info
                access = getattr(info, "access_capability", 0)
                node.writable = access == 0 and not self.read_only
                node.deletable = access in (0, 2) and not self.read_only
                self._storage_info[sid] = info
                result[node.name] = node
            for sid in list(self._storage_nodes):
                if sid not in infos:
                    del self._storage_nodes[sid]
            self._storages = result
            self._storages_at = time.monotonic()
            return result

    def storage_info(self, storage_id: int) -> StorageInfo:
        """Fresh-ish StorageInfo (short TTL) for statfs."""
        with self._lock:
            info = self._storage_info.get(storage_id)
        if info is None:
            info = self.session.get_storage_info(storage_id)
            with self._lock:
                self._storage_info[storage_id] = info
        return info

    def effective_writable(self, node: Node) -> bool:
        """Writable considering the object's protection and its storage's access."""
        if self.read_only:
            return False
        if node.kind in ("root", "storage"):
            return node.writable
        storage = self._storage_nodes.get(node.storage_id)
        return node.writable and (storage.writable if storage is not None else True)

    def storage_node(self, storage_id: int) -> Node | None:
        """The storage node of *storage_id*, if present."""
        self.storages()
        return self._storage_nodes.get(storage_id)

    # ------------------------------------------------------------------- folders
    def _folder(self, node: Node) -> Folder:
        """The cached listing of *node*, listed from the device if absent (without the tree
        lock held while the device answers; the caller must not hold it either)."""
        key = node.folder_key
        with self._lock:
            folder = self._folders.get(key)
            if folder is not None:
                return folder
        # objects carried over a reconnect and still listed are not fetched again
        metas = self.lister.iter_folder(node.storage_id, node.handle,
                                        known=lambda handle: self._carried(handle, node))
        nodes = self._nodes_for(node, metas)
        with self._lock:
            folder = self._folders.get(key)
            if folder is None:          # nobody listed it meanwhile
                folder = Folder()
                self._name_children(node, folder, nodes)
                self._folders[key] = folder
            return folder

    def _nodes_for(self, parent: Node, metas: Iterable[ObjectMeta]) -> list[Node]:
        """Nodes (reused by handle) carrying *metas*; an object listed inside itself or
        inside its own descendant would make a cycle: a confused or hostile device's
        such listings are dropped."""
        above = parent.ancestors()
        out: dict[int, Node] = {}
        intern = self._interned
        for meta in metas:      # the device answers here, without the tree lock held
            handle = meta.handle
            if handle in above:
                continue
            with self._lock:
                node = self._nodes.get(handle)
                kind = "dir" if meta.is_folder else "file"
                if node is None or node.kind != kind:
                    node = Node(kind, meta.filename, handle=handle)
                    self._nodes[handle] = node
                node.raw_name = meta.filename      # the display name stays until renamed
                node.storage_id = intern(meta.storage_id, meta.storage_id)
                node.parent = parent
                node.size = meta.size
                node.mtime = meta.mtime if meta.mtime is not None else (parent.mtime or 0.0)
                node.format = intern(meta.format, meta.format)
                node.writable = node.deletable = meta.protection == 0  # storage access: live
                node._flags &= ~_CARRIED
            out[handle] = node
        return list(out.values())

    def _name_children(self, parent: Node, folder: Folder, nodes: list[Node]) -> None:
        """(Re)assign the unique display names of *folder*'s children."""
        by_name: dict[str, Node] = {}
        for node in nodes:      # the common case, without a temporary per child
            safe = sanitize(node.raw_name)
            if safe in by_name:
                break
            by_name[safe] = node
        else:
            for safe, node in by_name.items():
                raw = node.raw_name
                node.name = safe
                node.raw_name = raw
            folder.by_name = by_name
            return
        names = unique_names((n.handle, n.raw_name) for n in nodes)   # twins: ~2, ~3...
        by_name = {}
        for node in nodes:
            raw = node.raw_name
            node.name = names[node.handle]
            node.raw_name = raw
            by_name[node.name] = node
        folder.by_name = by_name

    def children(self, node: Node) -> dict[str, Node]:
        """Name -> node of a directory's children (storages for the root)."""
        if node.kind == "root":
            return self.storages()
        return self._folder(node).by_name

    def lookup(self, path: str) -> Node:
        """Resolve an absolute path; raises FileNotFoundError."""
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if not node.is_dir:
                raise NotADirectoryError(path)
            child = self.children(node).get(part)
            if child is None:
                raise FileNotFoundError(path)
            node = child
        return node

    def node_for_handle(self, handle: int) -> Node | None:
        """The node of an object handle if it is in a cached listing."""
        return self._nodes.get(handle)

    # ------------------------------------------------------- updates from writes
    def add_object(self, meta: ObjectMeta) -> Node | None:
        """Put a (new or changed) object into its cached folder listing."""
        with self._lock:
            old = self._nodes.get(meta.handle)
            if old is not None and old.parent is not None and old.parent.folder_key != (
                    meta.storage_id, meta.parent):
                self._drop_from_parent(old)
            parent = self._parent_node(meta.storage_id, meta.parent)
            if parent is None:
                return None
            folder = self._folders.get(parent.folder_key)
            if folder is None:
                return None  # not listed yet: the next listing sees it
            others = [n for n in folder.by_name.values() if n.handle != meta.handle]
            self._name_children(parent, folder, others + self._nodes_for(parent, [meta]))
            self._storage_info.pop(meta.storage_id, None)
            return self._nodes.get(meta.handle)

    def remove_object(self, handle: int) -> Node | None:
        """Forget an object (deleted on the device)."""
        with self._lock:
            node = self._nodes.get(handle)
            if node is None:
                return None
            self._drop_from_parent(node)
            self._forget_subtree(node)
            self._storage_info.pop(node.storage_id, None)
            return node

    def _drop_from_parent(self, node: Node) -> None:
        parent = node.parent
        if parent is None:
            return
        folder = self._folders.get(parent.folder_key)
        if folder is not None and folder.by_name.get(node.name) is node:
            self._name_children(parent, folder,
                                [n for n in folder.by_name.values() if n is not node])

    def _forget_subtree(self, node: Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if self._nodes.pop(current.handle, None) is None and current is not node:
                continue  # already forgotten (shared or cyclic listings)
            if current.is_dir:
                folder = self._folders.pop(current.folder_key, None)
                if folder is not None:
                    stack.extend(folder.by_name.values())

    def _parent_node(self, storage_id: int, parent: int) -> Node | None:
        if parent == 0:
            return self._storage_nodes.get(storage_id)
        return self._nodes.get(parent)

    def invalidate_folder(self, node: Node) -> None:
        """Drop a folder's cached listing."""
        with self._lock:
            self._folders.pop(node.folder_key, None)

    def invalidate_storages(self) -> None:
        """Re-read the storage list and storage infos on next use."""
        with self._lock:
            self._storages = None
            self._storage_info.clear()

    def invalidate_all(self) -> None:
        """Forget every cached listing."""
        with self._lock:
            self._storages = None
            self._storage_info.clear()
            self._folders.clear()

    def _carried(self, handle: int, parent: Node) -> ObjectMeta | None:
        """What is known of *handle* in *parent* from before the last reconnect, if it
        has not been confirmed since (see :meth:`reconnected`)."""
        with self._lock:
            node = self._nodes.get(handle)
            if node is None or not node._flags & _CARRIED or node.parent is not parent:
                return None
            return ObjectMeta(handle, node.storage_id, parent.handle, node.raw_name,
                              node.format, node.size, node.mtime,
                              0 if node.writable else 1)

    def reconnected(self) -> list[str]:
        """The session was reopened on the same device (the session checks its
        identity).  If a few known files still have the same handle, name and
        folder, every listing is kept for revalidation: a folder is listed again
        on next use, but objects it still lists are not fetched again (with
        GetObjectHandles + GetObjectInfo: one transaction per folder plus one per
        new object), so a listing interrupted by link drops makes progress
        across reconnects.  Otherwise (a device whose handles changed), the same
        as :meth:`reset`.  Returns the paths for the kernel's caches."""
        with self._lock:
            files = (n for n in reversed(self._nodes.values()) if n.kind == "file")
            sample = list(itertools.islice(files, PROBE_OBJECTS))
        if not self._same_objects(sample):
            log.info("reconnected: object handles changed; listing everything again")
            return self.reset()
        with self._lock:
            paths = ["/"] + [n.path for n in self._storage_nodes.values()]
            for key in list(self._folders.keys()):
                folder_node = self._nodes.get(key[1]) if key[1] else None
                if folder_node is not None:
                    paths.append(folder_node.path)
            for node in self._nodes.values():
                node._flags |= _CARRIED
            self._storages = None
            self._storage_info.clear()
            self._folders.clear()
            self.root.mtime = time.time()
        log.info("reconnected to the same device: %d known objects kept for revalidation",
                 len(self._nodes))
        self.events.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} session reopened; "
                           "listings kept for revalidation")
        return paths

    def _same_objects(self, sample: list[Node]) -> bool:
        """Whether the device still gives *sample*'s handles the same name and folder
        (one that vanished meanwhile proves nothing; at least one must match)."""
        matched = 0
        for node in sample:
            try:
                info = self.session.get_object_info(node.handle)
            except ResponseError as exc:
                if exc.code == RC.InvalidObjectHandle:
                    continue
                return False
            except PTPError:
                return False
            parent = node.parent.handle if node.parent is not None else 0
            if info.filename != node.raw_name or norm_parent(info.parent) != parent:
                return False
            matched += 1
        return matched > 0

    def reset(self) -> list[str]:
        """Forget everything, nodes included: the session was reopened and
        object handles may now name other objects.  Returns the paths that
        were known, for the kernel's caches."""
        with self._lock:
            paths = ["/"] + [n.path for n in self._storage_nodes.values()]
            paths += [n.path for n in self._nodes.values()]
            self._storages = None
            self._storage_info.clear()
            self._folders.clear()
            self._nodes.clear()
            self._storage_nodes.clear()
            self.root.mtime = time.time()
        self.events.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} session reopened")
        return paths

    # -------------------------------------------------------------------- events
    def start_events(self) -> None:
        """Subscribe to the session's events and apply them in a worker thread."""
        if self._worker is not None:
            return
        self._unsubscribe = self.session.subscribe(self._enqueue)
        self._worker = threading.Thread(target=self._run_events, name="ptpfs-events", daemon=True)
        self._worker.start()

    def stop_events(self) -> None:
        """Stop the worker (idempotent); no listener is called once this returns."""
        with self._notify_lock:
            self._stopping = True
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:  # noqa: BLE001
                pass
            self._unsubscribe = None
        if self._worker is not None:
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                pass        # the worker sees _stopping after its batch
            self._worker.join(timeout=5)
            self._worker = None

    def _generation(self) -> int:
        return self.session.generation

    def _enqueue(self, event: Any) -> None:
        # stamped, so events of a link that was since replaced are dropped
        self.event_stats["received"] += 1
        try:
            self._queue.put_nowait((self._generation(), event))
        except queue.Full:
            # never block the session's event thread, never grow without bound:
            # what was dropped is made up for by re-listing
            self._overflow = True
            self.event_stats["dropped"] += 1

    def _take_batch(self) -> list[tuple[int, Any]] | None:
        """Wait for an event, then take whatever else has queued up (``None``: stop)."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < EVENT_QUEUE_MAX:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)      # stop after this batch
                break
            batch.append(item)
        return batch

    def _run_events(self) -> None:
        while not self._stopping:
            batch = self._take_batch()
            if batch is None:
                return
            generation = self._generation()
            events = [event for gen, event in batch if gen == generation]
            try:
                paths = self.apply_events(events)
            except Exception:
                log.exception("events not applied")
                continue
            if paths:
                self._notify(list(dict.fromkeys(paths)))

    def _notify(self, paths: list[str]) -> None:
        # under the lock, and never once stop_events() has begun: a listener may use
        # the FUSE handle, which is gone after unmount
        with self._notify_lock:
            if self._stopping:
                return
            for listener in list(self.listeners):
                try:
                    listener(paths)
                except Exception:
                    log.exception("invalidation listener failed")

    def apply_events(self, events: list[Any]) -> list[str]:
        """Apply a batch of events (see the module doc: bursts and overflow are
        coalesced into folder invalidations); return the paths that changed."""
        overflow, self._overflow = self._overflow, False
        objects = [e for e in events if e.code in OBJECT_EVENTS]
        if not overflow and len(objects) <= BURST_EVENTS:
            changed: list[str] = []
            for event in events:
                try:
                    changed += self.apply_event(event)
                except PTPError as exc:
                    log.info("event %s not applied: %s", event, exc)
            return changed
        # a burst (or lost events): no transaction per event, invalidate instead
        self.event_stats["bursts"] += 1
        changed = []
        for event in events:
            if event.code not in OBJECT_EVENTS:
                try:
                    changed += self.apply_event(event)
                except PTPError as exc:
                    log.info("event %s not applied: %s", event, exc)
        with self._lock:
            unknown = overflow
            folders: dict[tuple[int, int], Node] = {}
            for event in objects:
                node = self._nodes.get(event.params[0]) if event.params else None
                if node is None or node.parent is None:
                    unknown = True          # a new object: its folder is not known
                    continue
                folders[node.parent.folder_key] = node.parent
                if node.is_dir and event.code == EC.ObjectRemoved:
                    self._forget_subtree(node)
            if unknown:
                changed += self._relist_all()
            else:
                for key, parent in folders.items():
                    self._folders.pop(key, None)
                    self._storage_info.pop(key[0], None)
                    changed.append(parent.path)
        self.events.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {len(events)} events "
                           f"coalesced{' (some dropped: queue full)' if overflow else ''}")
        return changed

    def _relist_all(self) -> list[str]:
        """Drop every cached listing (nodes stay, so inode numbers do): each folder
        is listed again on next use.  Returns the folders' paths."""
        self.event_stats["relists"] += 1
        paths = ["/"] + [n.path for n in self._storage_nodes.values()]
        for key in list(self._folders.keys()):
            if key[1]:
                node = self._nodes.get(key[1])
                if node is not None:
                    paths.append(node.path)
        self._folders.clear()
        self._storages = None
        self._storage_info.clear()
        return paths

    def apply_event(self, event: Any) -> list[str]:
        """Update caches for one device event; return the paths that changed."""
        code = event.code
        params = tuple(event.params)
        p0 = params[0] if params else 0
        self.events.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {_event_text(code, params)}")
        changed: list[str] = []
        if code in (EC.ObjectAdded, EC.ObjectInfoChanged, EC.ObjectPropChanged):
            old = self.node_for_handle(p0)
            if old is not None:
                changed.append(old.path)
            try:
                meta = self.lister.object_meta(p0)
            except ResponseError as exc:
                if exc.code == RC.InvalidObjectHandle:
                    node = self.remove_object(p0)
                    return changed + ([node.parent.path] if node and node.parent else [])
                raise
            node = self.add_object(meta)
            if node is not None:
                changed.append(node.path)
                if node.parent is not None:
                    changed.append(node.parent.path)
        elif code == EC.ObjectRemoved:
            node = self.remove_object(p0)
            if node is not None:
                changed.append(node.path)
                if node.parent is not None:
                    changed.append(node.parent.path)
        elif code in (EC.StoreAdded, EC.StoreRemoved):
            with self._lock:
                if code == EC.StoreRemoved:
                    node = self._storage_nodes.get(p0)
                    if node is not None:
                        self._forget_storage(p0)
                self.invalidate_storages()
            changed.append("/")
        elif code in (EC.StorageInfoChanged, EC.StoreFull):
            changed += self._storage_changed(p0)
        elif code == EC.DevicePropChanged:
            for listener in list(self.prop_listeners):
                listener(p0)
            changed.append(f"/{VIRTUAL_DIR}/properties")
        elif code == EC.DeviceInfoChanged:
            self.invalidate_all()
            changed.append("/")
        return changed

    def _storage_changed(self, storage_id: int) -> list[str]:
        """Re-read a storage's info; if its access changed, every cached path
        of the storage must show the new permissions."""
        with self._lock:
            node = self._storage_nodes.get(storage_id)
            old = getattr(node.info, "access_capability", None) if node else None
            self._storage_info.pop(storage_id, None)
        if node is None:
            return []
        info = self.storage_info(storage_id)
        if info.access_capability == old:
            with self._lock:
                node.info = info
            return []
        self.invalidate_storages()
        self.storages()
        with self._lock:
            return [node.path] + [n.path for n in self._nodes.values()
                                  if n.storage_id == storage_id]

    def _forget_storage(self, storage_id: int) -> None:
        for key in [k for k in self._folders if k[0] == storage_id]:
            self._folders.pop(key, None)
        for handle in [h for h, n in self._nodes.items() if n.storage_id == storage_id]:
            self._nodes.pop(handle, None)


def _event_text(code: int, params: tuple[int, ...]) -> str:
    try:
        from ptpfs.protocol.codes import render
        name = render("event", code)
    except Exception:  # noqa: BLE001
        name = f"0x{code:04x}"
    return " ".join([name] + [f"0x{p:08x}" for p in params])


def display_name(raw: str) -> str:
    """The sanitised form of a single name (no de-duplication)."""
    return sanitize(raw)


__all__ = ["Node", "Tree", "VIRTUAL_DIR", "norm_parent", "display_name"]
