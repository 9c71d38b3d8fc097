"""Every object of a storage, walked once, in tree order with camera-side paths.

Used by ``ptpctl -L`` and by the importer.  Devices that answer
GetObjectHandles(storage, 0, 0) with every object are listed in one request
plus one GetObjectInfo each; devices that refuse it, or answer with the root
only (QEMU's usb-mtp), are walked one folder at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptpfs.errors import ResponseError
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.services.listing import object_size
from ptpfs.session import Session


@dataclass
class ListedObject:
    """One object: its handle, ObjectInfo, true size and ``/``-separated path."""

    handle: int
    info: ObjectInfo
    size: int
    path: str


def walk_storage(session: Session, storage_id: int) -> list[ListedObject]:
    """Every object of a storage in tree order (folders before their contents)."""
    infos: dict[int, ObjectInfo] = {}

    def walk(frontier: list[int]) -> None:
        """List folder by folder, from *frontier* down."""
        while frontier:
            for h in session.get_object_handles(storage_id, 0, frontier.pop()):
                if h not in infos:
                    infos[h] = session.get_object_info(h)
                    if infos[h].is_folder:
                        frontier.append(h)

    try:
        handles = session.get_object_handles(storage_id, 0, 0)
    except ResponseError:  # no "all objects" listing: walk one folder at a time
        walk([0xFFFFFFFF])
    else:
        for h in handles:
            if h not in infos:
                infos[h] = session.get_object_info(h)
        folders = [h for h, i in infos.items() if i.is_folder]
        if folders and not any(i.parent in folders for i in infos.values()):
            # The device answered "all objects" with the root only (QEMU's usb-mtp does):
            # walk the folders one at a time.
            walk(folders)
    children_of: dict[int, list[int]] = {}
    roots: list[int] = []
    for h, info in infos.items():
        if info.parent in infos and info.parent != h:
            children_of.setdefault(info.parent, []).append(h)
        else:
            roots.append(h)
    listed: list[ListedObject] = []
    seen: set[int] = set()

    def visit(h: int, prefix: str) -> None:
        stack = [(h, prefix)]
        while stack:
            handle, base = stack.pop()
            if handle in seen:
                continue
            seen.add(handle)
            info = infos[handle]
            path = f"{base}/{info.filename}"
            listed.append(ListedObject(handle, info, object_size(session, handle, info), path))
            stack.extend((c, path) for c in reversed(children_of.get(handle, [])))

    for h in roots:
        visit(h, "")
    for h in infos:  # objects only reachable through a parent cycle
        visit(h, "")
    return listed
