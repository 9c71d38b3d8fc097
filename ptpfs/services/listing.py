"""Listing strategies: how to get the children of one folder from a device.

Chosen once per session from its capabilities, best first:

* :class:`EosLister` - Canon EOS GetObjectInfoEx, one transaction per folder;
* :class:`PropListLister` - MTP GetObjectPropList at depth 1, one transaction
  per folder;
* :class:`GenericLister` - GetObjectHandles + one GetObjectInfo per object.

Each returns :class:`ObjectMeta` records; the tree turns them into names.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ptpfs.errors import ProtocolError, ResponseError
from ptpfs.protocol.codes import DT, OFC, OPC, RC, ROOT_PARENT, norm_parent, wire_parent
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.session import Session

log = logging.getLogger("ptpfs.services")

SIZE_UNKNOWN32 = 0xFFFFFFFF   # ObjectInfo's size of an object of 4 GiB or more

#: Responses meaning "this listing mechanism does not work here; fall back": OperationNotSupported,
#: ParameterNotSupported, InvalidParameter, SpecificationByFormatUnsupported,
#: Invalid/UnsupportedObjectPropCode, SpecificationByGroup/DepthUnsupported, and GeneralError
#: (some devices list an operation in DeviceInfo and fail it whenever it is called).
UNSUPPORTED = frozenset({
    RC.OperationNotSupported, RC.ParameterNotSupported, RC.InvalidParameter,
    RC.SpecificationByFormatUnsupported, RC.InvalidObjectPropCode, RC.GroupNotSupported,
    RC.SpecificationByGroupUnsupported, RC.SpecificationByDepthUnsupported,
    RC.ObjectPropNotSupported, RC.GeneralError})


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the filesystem needs to know about one object."""

    handle: int
    storage_id: int
    parent: int              # 0 for the storage root
    filename: str
    format: int
    size: int
    mtime: float | None
    protection: int = 0

    @property
    def is_folder(self) -> bool:
        """Associations are folders."""
        return self.format == OFC.Association


def to_timestamp(value: Any) -> float | None:
    """A PTP date string, datetime or number -> POSIX seconds (``None`` if unknown)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    dt: _dt.datetime | None
    if isinstance(value, _dt.datetime):
        dt = value
    else:
        try:
            from ptpfs.protocol.wire import parse_datetime
            dt = parse_datetime(str(value))
        except Exception:  # noqa: BLE001 - a bad date from a device is just unknown
            return None
        if dt is None:
            return None
    if dt.tzinfo is None:
        # PTP dates without a zone are the camera's local time; treat as local.
        try:
            return dt.timestamp()
        except (OverflowError, OSError, ValueError):
            return None
    return dt.timestamp()


class Lister:
    """Base of the listing strategies."""

    name = "base"

    def __init__(self, session: Session) -> None:
        self.session = session

    def list_folder(self, storage_id: int, parent: int) -> list[ObjectMeta]:
        """Children of *parent* (0 = storage root) on *storage_id*."""
        raise NotImplementedError

    def iter_folder(self, storage_id: int, parent: int,
                    known: Callable[[int], ObjectMeta | None] | None = None
                    ) -> Iterator[ObjectMeta]:
        """Like :meth:`list_folder`, one child at a time where the strategy fetches them
        one at a time (then a huge folder never holds every record at once).  *known*
        (handle -> metadata or ``None``) lets a per-object strategy skip asking the
        device about objects the caller still trusts (after a reconnect)."""
        return iter(self.list_folder(storage_id, parent))

    def object_meta(self, handle: int) -> ObjectMeta:
        """One object's metadata (used for events and after uploads)."""
        info = self.session.get_object_info(handle)
        return meta_from_info(self.session, handle, info)


def object_size(session: Session, handle: int, info: ObjectInfo) -> int:
    """ObjectInfo's size; when it says 0xFFFFFFFF (4 GiB or more), the 64-bit MTP
    ObjectSize if the device has it (otherwise 0xFFFFFFFF: unknown)."""
    size = info.compressed_size
    if size != SIZE_UNKNOWN32 or info.object_format == OFC.Association \
            or not session.capabilities.object_props:
        return size
    try:
        return int(session.get_object_prop_value(handle, OPC.ObjectSize, DT.UINT64))
    except (ResponseError, ProtocolError) as exc:  # fall back to the 32-bit figure
        session.adapt("objectsize-missing", f"no 64-bit ObjectSize for objects of 4 GiB or "
                                            f"more ({exc}): their size shows as 4 GiB - 1")
        log.debug("ObjectSize of 0x%08x unavailable: %s", handle, exc)
        return size


def meta_from_info(session: Session, handle: int, info: ObjectInfo) -> ObjectMeta:
    """Build :class:`ObjectMeta` from an ObjectInfo dataset."""
    mtime = to_timestamp(info.modification_date) or to_timestamp(info.capture_date)
    return ObjectMeta(handle=handle, storage_id=info.storage_id,
                      parent=norm_parent(info.parent), filename=info.filename,
                      format=info.object_format,
                      size=0 if info.object_format == OFC.Association else object_size(session, handle, info),
                      mtime=mtime, protection=info.protection_status)


class GenericLister(Lister):
    """GetObjectHandles, then GetObjectInfo for each child."""

    name = "generic"

    def list_folder(self, storage_id: int, parent: int) -> list[ObjectMeta]:
        return list(self.iter_folder(storage_id, parent))

    def iter_folder(self, storage_id: int, parent: int,
                    known: Callable[[int], ObjectMeta | None] | None = None
                    ) -> Iterator[ObjectMeta]:
        handles = self.session.get_object_handles(storage_id, 0, wire_parent(parent))
        for handle in handles:
            kept = known(handle) if known is not None else None
            if kept is not None and kept.storage_id == storage_id:
                yield kept
                continue
            try:
                info = self.session.get_object_info(handle)
            except ResponseError as exc:
                if exc.code == RC.InvalidObjectHandle:  # vanished meanwhile
                    continue
                raise
            except ProtocolError as exc:  # one unreadable object must not hide the folder
                log.warning("object 0x%08x skipped: %s", handle, exc)
                continue
            meta = meta_from_info(self.session, handle, info)
            if meta.storage_id == storage_id and meta.parent == parent:
                yield meta


class PropListLister(Lister):
    """MTP GetObjectPropList(parent, all formats, all properties, depth 1)."""

    name = "proplist"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.fallback = GenericLister(session)
        self.broken = False

    def list_folder(self, storage_id: int, parent: int) -> list[ObjectMeta]:
        if self.broken:
            return self.fallback.list_folder(storage_id, parent)
        try:
            entries = self.session.get_object_prop_list(parent or 0, 0, 0xFFFFFFFF, 0, 1)
        except ProtocolError as exc:
            log.warning("GetObjectPropList of 0x%08x unreadable (%s); using ObjectInfo", parent, exc)
            return self.fallback.list_folder(storage_id, parent)
        except ResponseError as exc:
            if exc.code in UNSUPPORTED:
                self.session.adapt("proplist-refused",
                      f"GetObjectPropList is listed but refused ({exc}): listing with "
                      "GetObjectHandles + GetObjectInfo")
                self.broken = True
                return self.fallback.list_folder(storage_id, parent)
            raise
        props: dict[int, dict[int, Any]] = {}
        for entry in entries:
            props.setdefault(entry.handle, {})[entry.prop] = entry.value
        if wire_parent(parent) in props or 0 in props or ROOT_PARENT in props:
            # depth ignored: the answer describes the folder itself, not its children
            # (uMTP-Responder); a folder's listing never contains the folder
            self.broken = True
            self.session.adapt("proplist-depth", "GetObjectPropList ignores depth 1 (answers "
                  "the folder itself): listing with GetObjectHandles + GetObjectInfo")
            return self.fallback.list_folder(storage_id, parent)
        out = []
        for handle, p in props.items():
            if not _well_typed(p):
                meta = self.object_meta(handle)
            else:
                fmt = int(p[OPC.ObjectFormat])
                size = int(p.get(OPC.ObjectSize, 0) or 0)
                mtime = to_timestamp(p.get(OPC.DateModified)) or to_timestamp(p.get(OPC.DateCreated))
                meta = ObjectMeta(
                    handle=handle,
                    storage_id=int(p.get(OPC.StorageID, storage_id)),
                    parent=norm_parent(int(p.get(OPC.ParentObject, parent))),
                    filename=str(p[OPC.ObjectFileName]),
                    format=fmt, size=0 if fmt == OFC.Association else size, mtime=mtime,
                    protection=int(p.get(OPC.ProtectionStatus, 0) or 0))
            if meta.storage_id == storage_id and meta.parent == parent:
                out.append(meta)
        return out


def _well_typed(props: dict[int, Any]) -> bool:
    """Whether a device's property values have the types the MTP spec gives them
    (a hostile or buggy device may send an array or a string where a number belongs)."""
    if not isinstance(props.get(OPC.ObjectFileName), str) or not isinstance(props.get(OPC.ObjectFormat), int):
        return False
    numeric = (OPC.ObjectSize, OPC.StorageID, OPC.ParentObject, OPC.ProtectionStatus)
    return all(isinstance(props.get(c, 0), int) for c in numeric)


class EosLister(Lister):
    """Canon EOS GetObjectInfoEx(storage, parent): a whole folder at once."""

    name = "eos"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.broken = False

    def list_folder(self, storage_id: int, parent: int) -> list[ObjectMeta]:
        if self.broken:
            return GenericLister(self.session).list_folder(storage_id, parent)
        try:
            entries = self.session.eos_get_object_info_ex(storage_id, wire_parent(parent))
        except ResponseError as exc:
            if exc.code not in UNSUPPORTED:
                raise
            self.session.adapt("eos-infoex-refused",
                  f"EOS GetObjectInfoEx is listed but refused ({exc}): listing with "
                  "GetObjectHandles + GetObjectInfo")
            self.broken = True
            return GenericLister(self.session).list_folder(storage_id, parent)
        except ProtocolError as exc:
            log.warning("GetObjectInfoEx of 0x%08x unreadable (%s); using ObjectInfo", parent, exc)
            return GenericLister(self.session).list_folder(storage_id, parent)
        out = []
        for e in entries:
            fmt = int(e.format)
            meta = ObjectMeta(handle=int(e.handle), storage_id=int(e.storage) or storage_id,
                              parent=norm_parent(int(e.parent)), filename=str(e.filename),
                              format=fmt, size=0 if fmt == OFC.Association else int(e.size),
                              mtime=to_timestamp(getattr(e, "time", None)),
                              protection=0)
            if meta.parent == parent:
                out.append(meta)
        return out


def choose_lister(session: Session) -> Lister:
    """The best listing strategy the session's device offers."""
    caps = session.capabilities
    if caps.eos_listing:
        return EosLister(session)
    if caps.prop_list:
        return PropListLister(session)
    return GenericLister(session)
