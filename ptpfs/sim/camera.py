"""The simulated camera: a PTP responder over an object store.

Responder interface (used by every server adapter and by ``InProcessTransport``)::

    camera.takes_data(code) -> bool          # does the operation receive a host->device data phase?
    camera.command(request) -> Reply         # operations without host->device data
    camera.begin_data(request, length) -> DataReceiver
                                             # .write(chunk) ..., .finish() -> Reply, .abort()
    camera.subscribe(callback) -> unsubscribe   # callback(Event), called from any thread
    camera.stats, camera.link, camera.faults
    camera.connection() -> SimConnection     # same interface, own session (one per client link)

``Reply(code, params, data)``: *data* is ``None`` or a :class:`DataSource` with ``.length`` and
``.read(n)`` (exactly ``min(n, remaining)`` bytes per call), so large objects stream.
*length* in ``begin_data`` is the announced data-phase length, or ``None`` if unknown; a
``finish()`` after fewer bytes answers ``IncompleteTransfer`` and keeps nothing.  Adapters call
``abort()`` when the link breaks mid-phase.

Session state (open session, transaction IDs, the pending SendObjectInfo) lives in a
:class:`SimConnection`.  ``SimCamera.command``/``begin_data`` use one default connection (like
a USB device); a server that accepts several clients gives each ``camera.connection()`` and
calls ``close()`` on it when the client goes.

Latency (``link.latency``) and DeviceBusy faults apply here; bandwidth pacing and drop/stall
faults are applied by whoever moves the bytes (server adapters, ``InProcessTransport``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ptpfs.errors import PTPError
from ptpfs.protocol.codes import DT, EC, OC, OFC, OPC, RC
from ptpfs.protocol.datasets import (
    DeviceInfo,
    ObjectInfo,
    ObjectPropEntry,
    StorageInfo,
    decode_prop_list,
    encode_prop_list,
    encode_u16_array,
    encode_u32_array,
)
from ptpfs.protocol.eos import EOSEvent, EOSObjectEntry, encode_eos_events, encode_object_info_ex
from ptpfs.protocol.messages import Event, Request
from ptpfs.protocol.wire import Writer, decode_value, encode_value, format_datetime, parse_datetime
from ptpfs.sim.faults import Faults
from ptpfs.sim.link import LinkModel
from ptpfs.sim.profiles import Profile, get_profile
from ptpfs.sim.properties import DeviceProperties, make_properties
from ptpfs.sim.store import (
    FORMAT_ASSOCIATION,
    ROOT,
    THUMB_HEIGHT,
    THUMB_WIDTH,
    THUMBNAIL,
    ObjectStore,
    PendingObject,
    SimObject,
    StoreError,
    Upload,
)

log = logging.getLogger(__name__)

ALL = 0xFFFFFFFF
#: Largest data phase buffered in memory (datasets, property values, firmware chunks).
MAX_BUFFERED = 64 << 20
MAC_ADDRESS = bytes.fromhex("74bfc0123456")
#: Canon EOS properties (0xD1xx) only reported through EOS GetEvent, with the R6's
#: values where the seed shows them (ModelID 0x80000453): code -> value (int = u32).
EOS_PROPERTY_DUMP: tuple[tuple[int, int | str], ...] = (
    (0xD101, 1),            # Aperture (index)
    (0xD102, 0x6D),         # ShutterSpeed
    (0xD103, 0x48),         # ISOSpeed
    (0xD105, 3),            # AutoExposureMode (Manual)
    (0xD106, 0),            # DriveMode
    (0xD108, 0),            # FocusMode
    (0xD109, 0),            # WhiteBalance (Auto)
    (0xD10F, 1),            # ColorSpace (sRGB)
    (0xD111, 2),            # BatteryPower
    (0xD113, 0),            # CameraTime (filled in when sent)
    (0xD115, ""),           # Owner
    (0xD116, 0x80000453),   # ModelID (Canon EOS R6)
    (0xD119, 0x00010000),   # PTPExtensionVersion
    (0xD11B, 999),          # AvailableShots
    (0xD11C, 4),            # CaptureDestination
    (0xD11E, 0x00010001),   # CurrentStorage
    (0xD11F, "100CANON"),   # CurrentFolder
)
FIRMWARE_NAME_FIELD = 32

#: Operations whose data phase goes host -> device.
DATA_OUT_OPERATIONS = frozenset({
    OC.SendObjectInfo, OC.SendObject, OC.SetDevicePropValue, OC.SetObjectPropValue,
    OC.SendObjectPropList, OC.SetObjectPropList, OC.SetObjectReferences, OC.SendPartialObject,
    OC.UpdateDeviceFirmware, OC.EOS_UpdateFirmware, OC.EOS_SetDevicePropValueEx,
    OC.EOS_SetObjectAttributes, OC.Canon_SetWebServiceData, OC.Canon_SetRootCertificateData,
    OC.EOS_SetIptcData, OC.EOS_SetWftData, OC.EOS_SetImageRecoveryData, OC.Canon_SendCertData,
})

#: MTP object properties the simulator supports (same for every format).
OBJECT_PROPS: tuple[tuple[int, int], ...] = (
    (OPC.StorageID, DT.UINT32), (OPC.ObjectFormat, DT.UINT16), (OPC.ProtectionStatus, DT.UINT16),
    (OPC.ObjectSize, DT.UINT64), (OPC.AssociationType, DT.UINT16),
    (OPC.AssociationDesc, DT.UINT32), (OPC.ObjectFileName, DT.STR), (OPC.DateCreated, DT.STR),
    (OPC.DateModified, DT.STR), (OPC.ParentObject, DT.UINT32),
    (OPC.PersistentUniqueObjectIdentifier, DT.UINT128), (OPC.Name, DT.STR),
)
_PROP_TYPES = dict(OBJECT_PROPS)


class DataSource(Protocol):
    """A device -> host data phase."""

    length: int

    def read(self, n: int) -> bytes: ...


class DataReceiver(Protocol):
    """A host -> device data phase being received."""

    def write(self, chunk: bytes | memoryview) -> None: ...

    def finish(self) -> Reply: ...

    def abort(self) -> None: ...


@dataclass
class Reply:
    """The camera's answer: response code, parameters, optional data phase."""

    code: int
    params: tuple[int, ...] = ()
    data: DataSource | None = None


class SimStats:
    """Counters for benchmarks: transactions (total and per operation) and bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transactions = 0
        self.bytes_in = 0     # host -> device data
        self.bytes_out = 0    # device -> host data
        self.per_operation: Counter[int] = Counter()

    def record(self, code: int) -> None:
        with self._lock:
            self.transactions += 1
            self.per_operation[code] += 1

    def add_in(self, n: int) -> None:
        with self._lock:
            self.bytes_in += n

    def add_out(self, n: int) -> None:
        with self._lock:
            self.bytes_out += n

    def count(self, code: int) -> int:
        """Transactions of operation *code* so far."""
        with self._lock:
            return self.per_operation[code]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"transactions": self.transactions, "bytes_in": self.bytes_in,
                    "bytes_out": self.bytes_out, "per_operation": dict(self.per_operation)}

    def reset(self) -> None:
        with self._lock:
            self.transactions = self.bytes_in = self.bytes_out = 0
            self.per_operation.clear()


class BytesSource:
    """A data phase from a buffer."""

    def __init__(self, data: bytes, stats: SimStats | None = None) -> None:
        self._data = memoryview(bytes(data))
        self.length = len(self._data)
        self._pos = 0
        self._stats = stats

    def read(self, n: int) -> bytes:
        chunk = bytes(self._data[self._pos:self._pos + max(0, n)])
        self._pos += len(chunk)
        if self._stats is not None:
            self._stats.add_out(len(chunk))
        return chunk


class ObjectSource:
    """A data phase streaming part of an object's content (zero-padded if the
    object shrank underneath)."""

    def __init__(self, obj: SimObject, offset: int, length: int, stats: SimStats) -> None:
        self._obj = obj
        self._pos = offset
        self.length = length
        self._left = length
        self._stats = stats

    def read(self, n: int) -> bytes:
        n = min(max(0, n), self._left)
        if n == 0:
            return b""
        try:
            chunk = self._obj.read(self._pos, n)
        except (OSError, StoreError):
            chunk = b""
        if len(chunk) < n:
            chunk += b"\x00" * (n - len(chunk))
        self._pos += n
        self._left -= n
        self._stats.add_out(n)
        return chunk


@dataclass
class FirmwareImage:
    """A firmware file received through EOS_UpdateFirmware."""

    name: str
    length: int
    sha256: str


@dataclass
class _FirmwareProgress:
    name: str
    total: int
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


class _Fail(Exception):
    """Internal: answer the transaction with this response code."""

    def __init__(self, code: int, params: tuple[int, ...] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _rc(error: StoreError) -> int:
    return getattr(RC, error.response, RC.GeneralError)


class _BufferedReceiver:
    """Collects a (bounded) data phase, then runs *handler(data)*."""

    def __init__(self, conn: SimConnection, length: int | None,
                 handler: Callable[[bytes], Reply]) -> None:
        self._conn = conn
        self._length = length
        self._handler = handler
        self._buf = bytearray()
        self._overflow = False
        self._aborted = False

    def write(self, chunk: bytes | memoryview) -> None:
        self._conn.camera.stats.add_in(len(chunk))
        if len(self._buf) + len(chunk) > MAX_BUFFERED:
            self._overflow = True
            return
        self._buf += chunk

    def finish(self) -> Reply:
        if self._aborted:
            return Reply(RC.TransactionCancelled)
        if self._length is not None and len(self._buf) < self._length and not self._overflow:
            return Reply(RC.IncompleteTransfer)
        if self._overflow:
            return Reply(RC.InvalidParameter)
        return self._conn._run(lambda: self._handler(bytes(self._buf)))

    def abort(self) -> None:
        self._aborted = True
        self._buf = bytearray()


class _UploadReceiver:
    """Streams SendObject data into the store; nothing is left on failure."""

    def __init__(self, conn: SimConnection, upload: Upload, length: int | None) -> None:
        self._conn = conn
        self._upload = upload
        self._length = length
        self._error: int | None = None
        self._received = 0

    def write(self, chunk: bytes | memoryview) -> None:
        self._conn.camera.stats.add_in(len(chunk))
        self._received += len(chunk)
        if self._error is not None:
            return
        try:
            self._upload.write(chunk)
        except StoreError as exc:
            self._error = _rc(exc)
        except OSError:
            self._error = RC.GeneralError

    def finish(self) -> Reply:
        declared = self._upload.pending.size
        short = self._length is not None and self._received < self._length
        if self._error is None and (short or declared is not None and self._received != declared):
            self._error = RC.IncompleteTransfer
        if self._error is not None:
            self._upload.abort()
            return Reply(self._error)
        try:
            self._upload.commit()
        except StoreError as exc:
            return Reply(_rc(exc))
        return Reply(RC.OK)

    def abort(self) -> None:
        keep = getattr(self._conn.camera.faults, "keep_partial_uploads", False)
        if keep and self._error is None:
            try:    # like many real cameras: what arrived before the link broke stays
                self._upload.commit()
                return
            except StoreError:
                pass
        self._upload.abort()


class _DiscardReceiver:
    """Swallows a data phase and answers a fixed reply."""

    def __init__(self, conn: SimConnection, reply: Reply) -> None:
        self._conn = conn
        self._reply = reply

    def write(self, chunk: bytes | memoryview) -> None:
        self._conn.camera.stats.add_in(len(chunk))

    def finish(self) -> Reply:
        return self._reply

    def abort(self) -> None:
        pass


class SimConnection:
    """One client's view of the camera: its own session and transaction IDs."""

    def __init__(self, camera: SimCamera) -> None:
        self.camera = camera
        self._lock = threading.RLock()
        self.session_id = 0
        self._last_tid: int | None = None
        self._last_busy = False
        self._pending: PendingObject | None = None

    # -- the responder interface -------------------------------------------------------
    @property
    def stats(self) -> SimStats:
        return self.camera.stats

    @property
    def link(self) -> LinkModel:
        return self.camera.link

    @property
    def faults(self) -> Faults:
        return self.camera.faults

    def takes_data(self, code: int) -> bool:
        return self.camera.takes_data(code)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.camera.subscribe(callback)

    def command(self, request: Request) -> Reply:
        """Answer an operation without a host -> device data phase."""
        with self._lock:
            early = self._start(request)
            if early is not None:
                return early
            if self.takes_data(request.code):
                return Reply(RC.IncompleteTransfer)
            return self._run(lambda: self.camera._dispatch(self, request))

    def begin_data(self, request: Request, length: int | None) -> DataReceiver:
        """Start an operation that receives *length* bytes from the host."""
        with self._lock:
            early = self._start(request)
            if early is not None:
                return _DiscardReceiver(self, early)
            try:
                return self.camera._begin_data(self, request, length)
            except _Fail as fail:
                return _DiscardReceiver(self, Reply(fail.code, fail.params))
            except StoreError as exc:
                return _DiscardReceiver(self, Reply(_rc(exc)))
            except Exception:
                log.exception("simulated camera failed")
                return _DiscardReceiver(self, Reply(RC.GeneralError))

    def close(self) -> None:
        """The client went away: close its session and forget pending state."""
        with self._lock:
            self.session_id = 0
            self._last_tid = None
            self._pending = None

    # -- session bookkeeping -----------------------------------------------------------
    def _start(self, request: Request) -> Reply | None:
        camera = self.camera
        camera.stats.record(request.code)
        camera.link.delay_transaction()
        code, tid = request.code, request.transaction_id
        if camera.faults.take_busy():
            self._note_tid(tid, busy=True)
            return Reply(RC.DeviceBusy)
        if code not in camera.profile.operations:
            self._note_tid(tid)
            return Reply(RC.OperationNotSupported)
        if code == OC.OpenSession:
            return None
        if self.session_id:
            expected = ((self._last_tid or 0) + 1) & 0xFFFFFFFF
            retry = self._last_busy and tid == self._last_tid
            if tid != expected and not retry:
                return Reply(RC.InvalidTransactionID)
            self._note_tid(tid)
        elif code != OC.GetDeviceInfo:
            return Reply(RC.SessionNotOpen)
        return None

    def _note_tid(self, tid: int, busy: bool = False) -> None:
        if self.session_id:
            self._last_tid = tid
        self._last_busy = busy

    def _run(self, action: Callable[[], Reply]) -> Reply:
        try:
            return action()
        except _Fail as fail:
            return Reply(fail.code, fail.params)
        except StoreError as exc:
            return Reply(_rc(exc))
        except Exception:  # a simulator bug must not take the link down
            log.exception("simulated camera failed")
            return Reply(RC.GeneralError)

    def open_session(self, request: Request) -> Reply:
        session_id = request.params[0] if request.params else 0
        if self.session_id:
            return Reply(RC.SessionAlreadyOpen, (self.session_id,))
        if session_id == 0:
            return Reply(RC.InvalidParameter)
        if request.transaction_id != 0:
            return Reply(RC.InvalidTransactionID)
        self.session_id = session_id
        self._last_tid = 0
        self._last_busy = False
        self._pending = None
        return Reply(RC.OK)


def _param(request: Request, index: int, default: int = 0) -> int:
    return request.params[index] if len(request.params) > index else default


class SimCamera:
    """A simulated PTP/MTP camera serving *store* with the given *profile*.

    Options: ``uploads`` accepts (``True``) or refuses (``False``: SendObjectInfo answers
    AccessDenied, as the real R6 does) uploads from the host; the default is the
    profile's (``canon-eos`` refuses); ``deny_uploads`` is the older spelling of
    ``uploads=False``; ``battery`` sets the BatteryLevel.
    """

    def __init__(self, store: ObjectStore, profile: str | Profile = "generic", *,
                 link: LinkModel | None = None, faults: Faults | None = None,
                 deny_uploads: bool | None = None, uploads: bool | None = None,
                 battery: int = 80) -> None:
        self.store = store
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.link = link or LinkModel()
        self.faults = faults or Faults()
        self.stats = SimStats()
        if deny_uploads is None:
            deny_uploads = not (self.profile.pc_uploads if uploads is None else uploads)
        self.deny_uploads = deny_uploads
        self.properties: DeviceProperties = make_properties(
            self.profile.properties, self.profile.model, battery)
        self.firmware: FirmwareImage | None = None
        self._firmware_progress: _FirmwareProgress | None = None
        self._subscribers: list[Callable[[Event], None]] = []
        self._sub_lock = threading.Lock()
        self._eos_lock = threading.Lock()
        self._eos_events: deque[EOSEvent] = deque(maxlen=100_000)
        self.eos_event_mode = 0
        self.eos_remote_mode = 0
        self._eos_dump_due = False
        self._default = SimConnection(self)
        self._remove_listener = store.add_listener(self._store_changed)
        self._handlers: dict[int, Callable[[SimConnection, Request], Reply]] = {
            OC.GetDeviceInfo: self._get_device_info,
            OC.OpenSession: lambda conn, req: conn.open_session(req),
            OC.CloseSession: self._close_session,
            OC.GetStorageIDs: self._get_storage_ids,
            OC.EOS_GetStorageIDs: self._get_storage_ids,
            OC.GetStorageInfo: self._get_storage_info,
            OC.GetNumObjects: self._get_num_objects,
            OC.GetObjectHandles: self._get_object_handles,
            OC.GetObjectInfo: self._get_object_info,
            OC.GetObject: self._get_object,
            OC.EOS_GetObject: self._get_object,
            OC.GetThumb: self._get_thumb,
            OC.DeleteObject: self._delete_object,
            OC.EOS_DeleteObject: self._delete_object,
            OC.FormatStore: self._format_store,
            OC.MoveObject: self._move_object,
            OC.GetPartialObject: self._get_partial_object,
            OC.GetPartialObject64: self._get_partial_object64,
            OC.Canon_GetPartialObject64: self._get_partial_object64,
            OC.EOS_GetPartialObject: self._eos_get_partial_object,
            OC.EOS_TransferComplete: self._eos_transfer_complete,
            OC.GetDevicePropDesc: self._get_device_prop_desc,
            OC.GetDevicePropValue: self._get_device_prop_value,
            OC.ResetDevicePropValue: self._reset_device_prop_value,
            OC.GetObjectPropsSupported: self._get_object_props_supported,
            OC.GetObjectPropDesc: self._get_object_prop_desc,
            OC.GetObjectPropValue: self._get_object_prop_value,
            OC.GetObjectPropList: self._get_object_prop_list,
            OC.Canon_GetMacAddress: self._get_mac_address,
            OC.EOS_SetRemoteMode: self._eos_set_remote_mode,
            OC.EOS_SetEventMode: self._eos_set_event_mode,
            OC.EOS_GetEvent: self._eos_get_event,
            OC.EOS_GetObjectInfoEx: self._eos_get_object_info_ex,
            OC.Canon_GetObjectInfoEx64: self._eos_get_object_info_ex,
        }
        self._data_handlers: dict[int, Callable[[SimConnection, Request, bytes], Reply]] = {
            OC.SendObjectInfo: self._send_object_info,
            OC.SendObjectPropList: self._send_object_prop_list,
            OC.SetDevicePropValue: self._set_device_prop_value,
            OC.SetObjectPropValue: self._set_object_prop_value,
            OC.EOS_UpdateFirmware: self._eos_update_firmware,
        }

    # -- responder interface (default connection) -----------------------------------------
    def takes_data(self, code: int) -> bool:
        """Whether operation *code* has a host -> device data phase."""
        return code in DATA_OUT_OPERATIONS

    def command(self, request: Request) -> Reply:
        return self._default.command(request)

    def begin_data(self, request: Request, length: int | None) -> DataReceiver:
        return self._default.begin_data(request, length)

    def connection(self) -> SimConnection:
        """A new client connection with its own session state."""
        return SimConnection(self)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call *callback(Event)* for every event; returns the unsubscribe function.
        Callbacks must not block (queue the event and return)."""
        with self._sub_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._sub_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def close(self) -> None:
        """Stop watchers and remove private temporary files."""
        self._remove_listener()
        self.store.close()

    def __enter__(self) -> SimCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events ------------------------------------------------------------------------------
    def _publish(self, event: Event) -> None:
        with self._sub_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def eos_property_dump(self) -> list[EOSEvent]:
        """PropValueChanged for every property, as an R6 sends in its first GetEvent
        after SetEventMode: the standard properties, then the EOS-only ones."""
        import time as _time
        records = [EOSEvent.prop_changed(code, self.properties.encode_value(code))
                   for code in self.properties.codes()]
        for code, value in EOS_PROPERTY_DUMP:
            if code == 0xD113:
                value = int(_time.time())
            raw = (value.encode("ascii", "replace") + b"\x00" if isinstance(value, str)
                   else int(value).to_bytes(4, "little"))
            records.append(EOSEvent.prop_changed(code, raw))
        return records

    def _eos_record(self, record: EOSEvent) -> None:
        if self.profile.eos_events and self.eos_event_mode:
            with self._eos_lock:
                self._eos_events.append(record)

    def _store_changed(self, kind: str, value: int) -> None:
        code = getattr(EC, kind)
        if kind in ("StoreAdded", "StoreRemoved", "StorageInfoChanged"):
            for s in self.store.storages():
                if s.storage_id == value:
                    value = s.reported_id if kind != "StoreAdded" else s.storage_id
        self._publish(Event(code, 0, (value,)))
        if kind == "ObjectAdded":
            try:
                obj = self.store.get(value)
            except StoreError:
                return
            self._eos_record(EOSEvent.object_added(obj.handle, obj.storage_id, obj.format,
                                                   obj.size, obj.parent, obj.name))
        elif kind == "ObjectRemoved":
            self._eos_record(EOSEvent.object_removed(value))
        elif kind == "StoreAdded":
            self._eos_record(EOSEvent(EC.EOS_StoreAdded, data=value.to_bytes(4, "little")))
        elif kind == "StoreRemoved":
            self._eos_record(EOSEvent(EC.EOS_StoreRemoved, data=value.to_bytes(4, "little")))

    def _prop_changed(self, code: int) -> None:
        self._publish(Event(EC.DevicePropChanged, 0, (code,)))
        self._eos_record(EOSEvent.prop_changed(code, self.properties.encode_value(code)))

    # -- simulator-side controls (act "on the camera") -------------------------------------
    def take_photo(self, storage_id: int | None = None, folder: str = "DCIM/100CANON",
                   size: int = 1_000_000) -> int:
        """The camera shoots a JPEG into *folder*; returns the new handle."""
        sid = storage_id if storage_id is not None else self.store.storages()[0].storage_id
        take = getattr(self.store, "take_photo", None)   # a sample card shoots its own way
        if take is not None:
            return int(take(sid, folder, size))
        from ptpfs.sim.media import JPEG_HEADER
        from ptpfs.sim.sample import GeneratedContent
        existing = set()
        try:
            existing = {o.name for o in self.store.children(sid, self.store.find(folder, sid).handle)}
        except StoreError:
            pass
        n = 1
        while f"IMG_{n:04d}.JPG" in existing:
            n += 1
        data = GeneratedContent(0x51A0 + n, size, JPEG_HEADER, b"\xff\xd9").read(0, size)
        return self.store.add_file(f"{folder}/IMG_{n:04d}.JPG", data, storage_id=sid).handle

    def add_file(self, path: str, data: bytes, storage_id: int | None = None) -> int:
        """Put a file on the card as the camera would; returns its handle."""
        return self.store.add_file(path, data, storage_id=storage_id).handle

    def remove_object(self, handle: int) -> None:
        """The camera deletes an object (ignoring protection)."""
        with self.store.mutating():
            obj = self.store.get(handle)
            obj.protection = 0
            self.store.delete(handle)

    def set_read_only(self, storage_id: int, read_only: bool = True) -> None:
        self.store.set_access(storage_id, 1 if read_only else 0)

    def set_full(self, storage_id: int, full: bool = True) -> None:
        self.store.set_full(storage_id, full)

    def insert_card(self, storage_id: int) -> None:
        self.store.insert_card(storage_id)

    def remove_card(self, storage_id: int) -> None:
        self.store.remove_card(storage_id)

    def set_property(self, code: int, value: Any) -> None:
        """The camera changes a device property (e.g. the battery drains)."""
        if self.properties.update(code, value):
            self._prop_changed(code)

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, conn: SimConnection, request: Request) -> Reply:
        handler = self._handlers.get(request.code)
        if handler is None:
            if request.code in self.profile.noop_operations:
                return Reply(RC.OK)
            return Reply(RC.OperationNotSupported)
        return handler(conn, request)

    def _begin_data(self, conn: SimConnection, request: Request,
                    length: int | None) -> DataReceiver:
        if request.code == OC.SendObject:
            return self._send_object(conn, request, length)
        handler = self._data_handlers.get(request.code)
        if handler is None:
            return _DiscardReceiver(conn, Reply(RC.OperationNotSupported))
        if length is not None and length > MAX_BUFFERED:
            return _DiscardReceiver(conn, Reply(RC.InvalidParameter))
        return _BufferedReceiver(conn, length, lambda data: handler(conn, request, data))

    def _data(self, data: bytes) -> Reply:
        return Reply(RC.OK, (), BytesSource(data, self.stats))

    # -- device and storages -------------------------------------------------------------------
    def device_info(self) -> DeviceInfo:
        p = self.profile
        return DeviceInfo(
            standard_version=100, vendor_extension_id=p.vendor_extension_id,
            vendor_extension_version=p.vendor_extension_version,
            vendor_extension_desc=p.vendor_extension_desc, functional_mode=0,
            operations_supported=p.operations, events_supported=p.events,
            device_properties_supported=self.properties.codes(),
            capture_formats=p.capture_formats, image_formats=p.image_formats,
            manufacturer=p.manufacturer, model=p.model, device_version=p.device_version,
            serial_number=p.serial_number)

    def _get_device_info(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(self.device_info().encode())

    def _close_session(self, conn: SimConnection, request: Request) -> Reply:
        conn.close()
        return Reply(RC.OK)

    def _get_storage_ids(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(encode_u32_array(s.reported_id for s in self.store.storages()))

    def storage_info(self, storage_id: int) -> StorageInfo:
        with self.store.lock:
            s = self.store.storage(storage_id)
            free = self.store.free_space(s.storage_id)
            objects = 0xFFFFFFFF if self.profile.name == "canon-eos" else \
                min(free // 5_000_000, 0xFFFFFFFE)
            return StorageInfo(s.storage_type, s.filesystem_type, s.access,
                               self.store.capacity(s.storage_id), free, objects,
                               s.description, s.volume_label)

    def _get_storage_info(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(self.storage_info(_param(request, 0)).encode())

    # -- listing ------------------------------------------------------------------------------------
    def _storage_ids(self, storage_id: int) -> list[int]:
        if storage_id == ALL:
            return [s.storage_id for s in self.store.storages() if s.present]
        return [self.store.storage(storage_id).storage_id]

    def _select(self, request: Request) -> list[SimObject]:
        storage_id, fmt, parent = (_param(request, 0), _param(request, 1), _param(request, 2))
        with self.store.lock:
            if parent not in (0, ALL):
                folder = self.store.get(parent)
                if not folder.is_folder:
                    raise StoreError("InvalidParentObject")
                if storage_id != ALL and folder.storage_id != self.store.storage(storage_id).storage_id:
                    raise StoreError("InvalidParentObject")
                objects = self.store.children(folder.storage_id, parent)
            else:
                objects = []
                for sid in self._storage_ids(storage_id):
                    objects += (self.store.children(sid, ROOT) if parent == ALL
                                else self.store.all_objects(sid))
            if fmt:
                objects = [o for o in objects if o.format == fmt]
            return objects

    def _get_object_handles(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(encode_u32_array(o.handle for o in self._select(request)))

    def _get_num_objects(self, conn: SimConnection, request: Request) -> Reply:
        return Reply(RC.OK, (len(self._select(request)),))

    def object_info(self, obj: SimObject) -> ObjectInfo:
        thumb = obj.has_thumb
        width, height = obj.image_size
        return ObjectInfo(
            storage_id=obj.storage_id, object_format=obj.format,
            protection_status=self.protection(obj), compressed_size=min(obj.size, ALL),
            thumb_format=OFC.JFIF if thumb else 0,
            thumb_compressed_size=len(THUMBNAIL) if thumb else 0,
            thumb_pix_width=THUMB_WIDTH if thumb else 0,
            thumb_pix_height=THUMB_HEIGHT if thumb else 0,
            image_pix_width=width, image_pix_height=height, image_bit_depth=24 if width else 0,
            parent=obj.parent, association_type=1 if obj.is_folder else 0, association_desc=0,
            sequence_number=0, filename=obj.name, capture_date=format_datetime(obj.ctime),
            modification_date=format_datetime(obj.mtime), keywords=obj.keywords)

    def protection(self, obj: SimObject) -> int:
        """The ProtectionStatus reported for *obj*.  Folders report the profile's (1 on
        the R6, as its listings show) while uploads are refused; it is reported only:
        the folder's files stay deletable.  A camera made to accept uploads reports
        its folders writable, so hosts may create files in them."""
        if obj.is_folder and not obj.protection and self.deny_uploads:
            return self.profile.folder_protection
        return obj.protection

    def _get_object_info(self, conn: SimConnection, request: Request) -> Reply:
        with self.store.lock:
            return self._data(self.object_info(self.store.get(_param(request, 0))).encode())

    # -- reading ------------------------------------------------------------------------------------
    def _file(self, handle: int) -> SimObject:
        obj = self.store.get(handle)
        if obj.is_folder:
            raise StoreError("InvalidObjectHandle")
        return obj

    def _get_object(self, conn: SimConnection, request: Request) -> Reply:
        obj = self._file(_param(request, 0))
        return Reply(RC.OK, (), ObjectSource(obj, 0, obj.size, self.stats))

    def _partial(self, handle: int, offset: int, max_bytes: int,
                 report: bool = True) -> Reply:
        obj = self._file(handle)
        if offset > obj.size:
            raise _Fail(RC.InvalidParameter)
        n = min(max_bytes, obj.size - offset)
        return Reply(RC.OK, (n,) if report else (), ObjectSource(obj, offset, n, self.stats))

    def _get_partial_object(self, conn: SimConnection, request: Request) -> Reply:
        return self._partial(_param(request, 0), _param(request, 1), _param(request, 2))

    def _get_partial_object64(self, conn: SimConnection, request: Request) -> Reply:
        offset = _param(request, 1) | (_param(request, 2) << 32)
        return self._partial(_param(request, 0), offset, _param(request, 3))

    def _eos_get_partial_object(self, conn: SimConnection, request: Request) -> Reply:
        return self._partial(_param(request, 0), _param(request, 1), _param(request, 2),
                             report=False)

    def _eos_transfer_complete(self, conn: SimConnection, request: Request) -> Reply:
        self.store.get(_param(request, 0))
        return Reply(RC.OK)

    def _get_thumb(self, conn: SimConnection, request: Request) -> Reply:
        obj = self.store.get(_param(request, 0))
        if not obj.has_thumb:
            return Reply(RC.NoThumbnailPresent)
        return self._data(THUMBNAIL)

    # -- changing the tree --------------------------------------------------------------------
    def _delete_object(self, conn: SimConnection, request: Request) -> Reply:
        handle = _param(request, 0)
        complete = True
        with self.store.mutating():
            if handle == ALL:
                fmt = _param(request, 1)
                for sid in self._storage_ids(ALL):
                    for obj in self.store.children(sid, ROOT):
                        if fmt and obj.format != fmt:
                            continue
                        try:
                            complete &= self.store.delete(obj.handle)[1]
                        except StoreError as exc:
                            if exc.response == "StoreReadOnly":
                                raise
                            complete = False
            else:
                complete = self.store.delete(handle)[1]
        return Reply(RC.OK if complete else RC.PartialDeletion)

    def _format_store(self, conn: SimConnection, request: Request) -> Reply:
        sid = self.store.storage(_param(request, 0)).storage_id
        if not getattr(self.store, "formattable", True):
            # a host folder (sim:DIR) is never formatted: only generated cards are
            return Reply(RC.AccessDenied)
        with self.store.mutating():
            for obj in self.store.children(sid, ROOT):
                for sub in [obj] + self.store.descendants(sid, obj.handle):
                    sub.protection = 0
                self.store.delete(obj.handle)
        return Reply(RC.OK)

    def _move_object(self, conn: SimConnection, request: Request) -> Reply:
        handle, storage_id, parent = _param(request, 0), _param(request, 1), _param(request, 2)
        with self.store.mutating():
            obj = self.store.get(handle)
            sid = obj.storage_id if storage_id in (0, ALL) else \
                self.store.storage(storage_id).storage_id
            self.store.move(handle, sid, parent)
        return Reply(RC.OK)

    def _send_object_info(self, conn: SimConnection, request: Request, data: bytes) -> Reply:
        conn._pending = None
        if self.deny_uploads:
            return Reply(RC.AccessDenied)
        try:
            info = ObjectInfo.decode(data, strict=False)
        except PTPError:
            return Reply(RC.InvalidDataset)
        storage_id, parent = _param(request, 0), _param(request, 1)
        with self.store.mutating():
            target = self._upload_storage(storage_id)
            if target is None:
                return Reply(RC.StoreNotAvailable)
            storage_id = target
            is_folder = info.object_format == FORMAT_ASSOCIATION
            size = None if info.compressed_size == ALL else info.compressed_size
            pending = self.store.prepare_object(
                storage_id, parent, info.filename, info.object_format,
                0 if is_folder else size, _date(info.modification_date),
                _date(info.capture_date), info.keywords)
        if not is_folder:
            conn._pending = pending
        reported_parent = parent if parent == ALL else pending.parent
        announced = pending.handle
        if is_folder and self.faults.mispredict_folder_handles:
            announced = pending.handle + 0x100000   # a handle no object has
        return Reply(RC.OK, (storage_id, reported_parent, announced))

    def _upload_storage(self, storage_id: int) -> int | None:
        """The storage an upload addressed to *storage_id* goes to (0 or 0xFFFFFFFF: the
        first present one; None when none is present)."""
        if storage_id in (0, ALL):
            present = [s for s in self.store.storages() if s.present]
            return present[0].storage_id if present else None
        return self.store.storage(storage_id).storage_id

    def _send_object_prop_list(self, conn: SimConnection, request: Request,
                               data: bytes) -> Reply:
        """MTP SendObjectPropList: SendObjectInfo with a 64-bit size (params 4, 5)."""
        conn._pending = None
        if self.deny_uploads:
            return Reply(RC.AccessDenied)
        try:
            entries = decode_prop_list(data, strict=False)
        except PTPError:
            return Reply(RC.InvalidDataset)
        props = {e.prop: e.value for e in entries}
        name = props.get(OPC.ObjectFileName)
        if not isinstance(name, str):
            return Reply(RC.InvalidDataset)
        fmt = _param(request, 2)
        size = (_param(request, 3) << 32) | _param(request, 4)
        storage_id, parent = _param(request, 0), _param(request, 1)
        when = props.get(OPC.DateModified)
        mtime = _date(when) if isinstance(when, str) else None
        with self.store.mutating():
            target = self._upload_storage(storage_id)
            if target is None:
                return Reply(RC.StoreNotAvailable)
            storage_id = target
            is_folder = fmt == FORMAT_ASSOCIATION
            pending = self.store.prepare_object(storage_id, parent, name, fmt,
                                                0 if is_folder else size, mtime, mtime)
        if not is_folder:
            conn._pending = pending
        reported_parent = parent if parent == ALL else pending.parent
        announced = pending.handle
        if is_folder and self.faults.mispredict_folder_handles:
            announced = pending.handle + 0x100000   # a handle no object has
        return Reply(RC.OK, (storage_id, reported_parent, announced))

    def _send_object(self, conn: SimConnection, request: Request,
                     length: int | None) -> DataReceiver:
        pending, conn._pending = conn._pending, None
        if pending is None:
            return _DiscardReceiver(conn, Reply(RC.NoValidObjectInfo))
        if length is not None and pending.size is not None and length > pending.size \
                and length > self.store.free_space(pending.storage_id):
            return _DiscardReceiver(conn, Reply(RC.StoreFull))
        upload = self.store.begin_upload(pending)
        return _UploadReceiver(conn, upload, length)

    # -- device properties -----------------------------------------------------------------------
    def _get_device_prop_desc(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(self.properties.describe(_param(request, 0)))

    def _get_device_prop_value(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(self.properties.encode_value(_param(request, 0)))

    def _set_device_prop_value(self, conn: SimConnection, request: Request, data: bytes) -> Reply:
        code = _param(request, 0)
        if self.properties.set_from_host(code, data):
            self._prop_changed(code)
        return Reply(RC.OK)

    def _reset_device_prop_value(self, conn: SimConnection, request: Request) -> Reply:
        code = _param(request, 0)
        codes = [c for c in self.properties.codes()
                 if self.properties.get(c).writable] if code == ALL else [code]
        for c in codes:
            if self.properties.reset(c):
                self._prop_changed(c)
        return Reply(RC.OK)

    # -- MTP object properties -------------------------------------------------------------------
    def _get_object_props_supported(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(encode_u16_array(code for code, _ in OBJECT_PROPS))

    def _get_object_prop_desc(self, conn: SimConnection, request: Request) -> Reply:
        prop = _param(request, 0)
        datatype = _PROP_TYPES.get(prop)
        if datatype is None:
            return Reply(RC.InvalidObjectPropCode)
        w = Writer().u16(prop).u16(datatype).u8(1 if prop in (OPC.ObjectFileName, OPC.DateModified) else 0)
        default: Any = "" if datatype == DT.STR else 0
        w.value(datatype, default).u32(0)
        w.u8(3 if prop in (OPC.DateCreated, OPC.DateModified) else 0)
        return self._data(w.getvalue())

    def object_prop(self, obj: SimObject, prop: int) -> Any:
        """The value of MTP object property *prop* of *obj*."""
        if prop == OPC.StorageID:
            return obj.storage_id
        if prop == OPC.ObjectFormat:
            return obj.format
        if prop == OPC.ProtectionStatus:
            return self.protection(obj)
        if prop == OPC.ObjectSize:
            return obj.size
        if prop == OPC.AssociationType:
            return 1 if obj.is_folder else 0
        if prop == OPC.AssociationDesc:
            return 0
        if prop in (OPC.ObjectFileName, OPC.Name):
            return obj.name
        if prop == OPC.DateCreated:
            return format_datetime(obj.ctime)
        if prop == OPC.DateModified:
            return format_datetime(obj.mtime)
        if prop == OPC.ParentObject:
            return obj.parent
        if prop == OPC.PersistentUniqueObjectIdentifier:
            return (obj.storage_id << 64) | obj.handle
        raise _Fail(RC.InvalidObjectPropCode)

    def _get_object_prop_value(self, conn: SimConnection, request: Request) -> Reply:
        prop = _param(request, 1)
        if prop not in _PROP_TYPES:
            return Reply(RC.InvalidObjectPropCode)
        obj = self.store.get(_param(request, 0))
        return self._data(encode_value(_PROP_TYPES[prop], self.object_prop(obj, prop)))

    def _set_object_prop_value(self, conn: SimConnection, request: Request, data: bytes) -> Reply:
        handle, prop = _param(request, 0), _param(request, 1)
        if prop not in _PROP_TYPES:
            return Reply(RC.InvalidObjectPropCode)
        self.store.get(handle)
        if prop == OPC.DateModified:
            try:
                when = _date(decode_value(DT.STR, data))
            except PTPError:
                when = None
            if when is None:
                return Reply(RC.InvalidObjectPropValue)
            self.store.set_mtime(handle, when)
            return Reply(RC.OK)
        if prop != OPC.ObjectFileName:
            return Reply(RC.AccessDenied)
        try:
            name = decode_value(DT.STR, data)
        except PTPError:
            return Reply(RC.InvalidObjectPropFormat)
        try:
            self.store.rename(handle, name)
        except StoreError as exc:
            if exc.response == "InvalidParameter":
                return Reply(RC.InvalidObjectPropValue)
            raise
        return Reply(RC.OK)

    def _get_object_prop_list(self, conn: SimConnection, request: Request) -> Reply:
        handle, fmt, prop = _param(request, 0), _param(request, 1), _param(request, 2)
        group, depth = _param(request, 3), _param(request, 4)
        if prop == 0 or group != 0:
            return Reply(RC.SpecificationByGroupUnsupported)
        if prop != ALL and prop not in _PROP_TYPES:
            return Reply(RC.InvalidObjectPropCode)
        if depth not in (0, 1, ALL):
            return Reply(RC.SpecificationByDepthUnsupported)
        with self.store.lock:
            if handle == ALL:
                objects = [o for sid in self._storage_ids(ALL) for o in self.store.all_objects(sid)]
            elif handle == 0:
                objects = []
                if depth != 0:
                    for sid in self._storage_ids(ALL):
                        objects += (self.store.children(sid, ROOT) if depth == 1
                                    else self.store.all_objects(sid))
            else:
                obj = self.store.get(handle)
                if depth == 0:
                    objects = [obj]
                elif not obj.is_folder:
                    objects = []
                elif depth == 1:
                    objects = self.store.children(obj.storage_id, handle)
                else:
                    objects = self.store.descendants(obj.storage_id, handle)
            if fmt:
                objects = [o for o in objects if o.format == fmt]
            props = [p for p, _ in OBJECT_PROPS] if prop == ALL else [prop]
            entries = [ObjectPropEntry(o.handle, p, _PROP_TYPES[p], self.object_prop(o, p))
                       for o in objects for p in props]
        return self._data(encode_prop_list(entries))

    # -- Canon / EOS -------------------------------------------------------------------------------
    def _get_mac_address(self, conn: SimConnection, request: Request) -> Reply:
        return self._data(MAC_ADDRESS)

    def _eos_set_remote_mode(self, conn: SimConnection, request: Request) -> Reply:
        self.eos_remote_mode = _param(request, 0)
        return Reply(RC.OK)

    def _eos_set_event_mode(self, conn: SimConnection, request: Request) -> Reply:
        self.eos_event_mode = _param(request, 0)
        if self.eos_event_mode:
            with self._eos_lock:
                self._eos_dump_due = True   # the next GetEvent starts with the full dump
        return Reply(RC.OK)

    def _eos_get_event(self, conn: SimConnection, request: Request) -> Reply:
        with self._eos_lock:
            records = list(self._eos_events)
            self._eos_events.clear()
            dump, self._eos_dump_due = self._eos_dump_due, False
        if dump:
            records = self.eos_property_dump() + records
        return self._data(encode_eos_events(records))

    def _eos_get_object_info_ex(self, conn: SimConnection, request: Request) -> Reply:
        storage_id, parent = _param(request, 0), _param(request, 1)
        wide = request.code == OC.Canon_GetObjectInfoEx64
        with self.store.lock:
            if parent in (0, ALL):
                objects = [o for sid in self._storage_ids(storage_id)
                           for o in self.store.children(sid, ROOT)]
            else:
                folder = self.store.get(parent)
                if not folder.is_folder:
                    raise StoreError("InvalidParentObject")
                objects = self.store.children(folder.storage_id, parent)
            entries = [EOSObjectEntry(o.handle, o.storage_id, o.format, 0,
                                      o.size if wide else min(o.size, ALL),
                                      o.parent if o.parent else ALL, o.name,
                                      int(o.mtime.timestamp()))
                       for o in objects]
        return self._data(encode_object_info_ex(entries, wide))

    def _eos_update_firmware(self, conn: SimConnection, request: Request, data: bytes) -> Reply:
        total, offset = _param(request, 0), _param(request, 1)
        if len(data) < FIRMWARE_NAME_FIELD:
            return Reply(RC.InvalidParameter)
        raw_name = data[:FIRMWARE_NAME_FIELD].split(b"\x00", 1)[0]
        name = raw_name.decode("latin-1")
        chunk = data[FIRMWARE_NAME_FIELD:]
        progress = self._firmware_progress
        if offset == 0:
            progress = self._firmware_progress = _FirmwareProgress(name, total)
        if progress is None or offset != progress.received or name != progress.name \
                or total != progress.total or not name \
                or progress.received + len(chunk) > total:
            self._firmware_progress = None
            return Reply(RC.InvalidParameter)
        progress.digest.update(chunk)
        progress.received += len(chunk)
        if progress.received == total:
            self.firmware = FirmwareImage(name, total, progress.digest.hexdigest())
            self._firmware_progress = None
        return Reply(RC.OK)


def _date(text: str) -> datetime | None:
    try:
        parsed = parse_datetime(text)
    except PTPError:
        return None
    return parsed.replace(tzinfo=None) if parsed is not None else None
