"""A PTP session: one transaction at a time on one device, typed operations, events.

``Session.transaction()`` keeps the one-liner style of the tool ptpfs grew
from::

    mac = session.transaction(0x9033).data      # raises ResponseError unless OK
    r = session.transaction(0x1002, [1], data_phase=False, check=False)
    r['ResponseCode']                              # 0x2001, or the error code

The typed methods below it decode datasets with :mod:`ptpfs.protocol`.
Any number of threads may share a session; a lock serialises transactions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, overload

from ptpfs.capabilities import Capabilities, PartialRead
from ptpfs.errors import (
    ConnectionLost,
    Interrupted,
    InvalidValue,
    ProtocolError,
    ResponseError,
    TransportTimeout,
)
from ptpfs.protocol import eos
from ptpfs.protocol.codes import OC, RC, operation_name, response_name
from ptpfs.protocol.datasets import (
    DeviceInfo,
    DevicePropDesc,
    ObjectInfo,
    ObjectPropEntry,
    StorageInfo,
    decode_prop_list,
    decode_u16_array,
    decode_u32_array,
)
from ptpfs.protocol.messages import Event, Request
from ptpfs.protocol.wire import decode_value, encode_value
from ptpfs.session_link import LinkSupervision
from ptpfs.transport.base import DataSink, Transport

log = logging.getLogger("ptpfs.session")

#: Largest data phase collected into memory for a dataset (bigger ones must use a sink).
MAX_DATASET = 64 * 1024 * 1024
ALL = 0xFFFFFFFF


@dataclass(frozen=True)
class Result:
    """The outcome of one transaction."""

    code: int
    params: tuple[int, ...] = ()
    data: bytes = b""
    operation: int | None = None
    data_length: int = 0

    @property
    def name(self) -> str:
        """Name of the response code, e.g. ``OK`` or ``InvalidObjectHandle``."""
        return response_name(self.code)

    @property
    def ok(self) -> bool:
        return self.code == RC.OK

    def raise_for_status(self) -> Result:
        """Raise :class:`ResponseError` unless the response is OK; return self."""
        if self.code != RC.OK:
            raise ResponseError(self.code, self.operation, self.params)
        return self

    def __getitem__(self, key: str) -> Any:
        """Dictionary access in the seed tool's spelling (``r['ResponseCode']``)."""
        return {"ResponseCode": self.code, "Data": self.data, "Parameter": list(self.params)}[key]


@dataclass
class SessionStats:
    """Counters for benchmarks and diagnostics."""

    transactions: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    per_operation: Counter[int] = field(default_factory=Counter)


class _Collector:
    """A bounded in-memory sink for datasets."""

    def __init__(self, limit: int) -> None:
        self.buf = bytearray()
        self.limit = limit

    def write(self, data: bytes | memoryview) -> int:
        if len(self.buf) + len(data) > self.limit:
            raise ProtocolError(f"data phase exceeds {self.limit} bytes; use a sink")
        self.buf += data
        return len(data)


class _CountingSink:
    """Wraps a sink to count bytes and report progress."""

    def __init__(self, sink: DataSink | None, progress: Callable[[int], None] | None) -> None:
        self.sink = sink
        self.progress = progress
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        if self.sink is not None:
            self.sink.write(data)
        self.count += len(data)
        if self.progress is not None:
            self.progress(self.count)
        return len(data)


class _CountingSource:
    """Wraps a file object to count bytes read and report progress."""

    def __init__(self, source: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.source = source
        self.progress = progress
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.count += len(data)
        if self.progress is not None:
            self.progress(self.count)
        return data

    def readinto(self, buf: Any) -> int:
        if hasattr(self.source, "readinto"):
            n = self.source.readinto(buf)
        else:
            data = self.source.read(len(buf))
            n = len(data)
            buf[:n] = data
        n = n or 0
        self.count += n
        if self.progress is not None:
            self.progress(self.count)
        return n


def _source_length(source: BinaryIO) -> int:
    """Bytes remaining in a seekable file object."""
    try:
        return os.fstat(source.fileno()).st_size - source.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pos = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(pos)
        return end - pos


class Session(LinkSupervision):
    """One open PTP session on one transport.

    *busy_retries* and *busy_delay* bound how long a ``DeviceBusy`` answer
    is retried (with doubling back-off) before it is raised.

    Link failures (see ``docs/reliability.md``): a transaction that times out
    or breaks the framing is followed by the transport's recovery (USB class
    requests, PTP/IP cancel).  If that fails the link counts as lost and
    every call fails at once with :class:`ConnectionLost`; otherwise the next
    transaction is preceded by a quick probe (GetDeviceInfo, at most
    *probe_timeout* seconds) and the link counts as lost if that goes
    unanswered too (this supervision lives in :mod:`ptpfs.session_link`).
    Callers that were waiting for the session while a
    transaction timed out fail at once.  With a
    *reopen* factory (``() -> Transport``, optionally with ``close()``), a
    background thread opens a new link every *reconnect_interval* seconds
    (backing off to 5 s) until the device answers, opens a new session on it
    and increments :attr:`generation`: object handles from an older
    generation must not be used again (see :meth:`pinned`).  Link-state
    listeners (:meth:`add_link_listener`) hear ``"lost"``, ``"reattached"``
    (on the reconnecting thread, before any other thread may use the new
    session) and ``"reconnected"``.
    """

    def __init__(self, transport: Transport, *, session_id: int = 1,
                 timeout: float | None = None, busy_retries: int = 5,
                 busy_delay: float = 0.05, event_poll_interval: float = 0.5,
                 reopen: Callable[[], Transport] | None = None,
                 reconnect_interval: float = 1.0, probe_timeout: float = 2.0) -> None:
        self.transport = transport
        self.session_id = session_id
        self.timeout = timeout
        self.busy_retries = busy_retries
        self.busy_delay = busy_delay
        self.event_poll_interval = event_poll_interval
        self.reopen = reopen
        self.reconnect_interval = reconnect_interval
        self.probe_timeout = probe_timeout
        self.stats = SessionStats()
        self.is_open = False
        self.lost = False
        #: Incremented each time the session is reopened on a new link.
        self.generation = 0
        #: How many times the link was lost / reopened.
        self.losses = 0
        self.reconnects = 0
        self._lock = threading.RLock()
        self._next_tid = 0
        self._device_info: DeviceInfo | None = None
        self._capabilities: Capabilities | None = None
        self._subscribers: list[Callable[[Event], None]] = []
        self._sub_lock = threading.Lock()
        self._link_listeners: list[Callable[[str], None]] = []
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._event_thread: threading.Thread | None = None
        self._reconnect_thread: threading.Thread | None = None
        self._failures = 0            # transactions that timed out or lost the link
        self._suspect = False         # a transaction timed out: probe before the next
        self._pins = threading.local()
        self._prop_types: dict[int, int] = {}
        #: ``() -> bool``: has the current thread's caller been interrupted?  Asked while a
        #: transaction waits for the session (the filesystem sets it to FUSE's check).
        self.interrupted: Callable[[], bool] | None = None
        #: Recent events, for callers that prefer polling to callbacks.
        self.events: queue.Queue[Event] = queue.Queue(maxsize=1024)
        #: Device behaviours this session adapted to (key -> one-line description).
        self.adaptations: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> Session:
        """Read DeviceInfo, open the session and start event delivery."""
        with self._lock:
            self._open_link()
        self._start_events()
        return self

    def _open_link(self) -> None:
        """GetDeviceInfo, OpenSession and the vendor set-up, on the current transport.

        A device that refuses GetDeviceInfo outside a session (uMTP-Responder answers
        SessionNotOpen) gets the session opened first and the question asked again, as
        libgphoto2 does.
        """
        result = self.transaction(OC.GetDeviceInfo, check=False)
        if result.code == RC.SessionNotOpen:
            self.adapt("deviceinfo-in-session",
                       "GetDeviceInfo is refused outside a session: opening the session first")
            self.open_session()
            result = self.transaction(OC.GetDeviceInfo, check=False)
        self._device_info = DeviceInfo.decode(result.raise_for_status().data, strict=False)
        self._capabilities = Capabilities.from_device_info(self._device_info)
        if not self.is_open:
            self.open_session()
        if self._capabilities.eos_events:
            for op, arg in ((OC.EOS_SetRemoteMode, 1), (OC.EOS_SetEventMode, 1)):
                self.transaction(op, [arg], data_phase=False)

    def adapt(self, key: str, message: str) -> bool:
        """Record a device behaviour the client adapts to; logged once per session (``-v``).

        Returns True the first time *key* is seen.
        """
        if key in self.adaptations:
            return False
        self.adaptations[key] = message
        log.info("device behaviour: %s", message)
        return True

    def _start_events(self) -> None:
        stop = threading.Event()
        self._stop = stop
        self._event_thread = threading.Thread(
            target=self._event_loop, args=(stop, self.generation), name="ptp-events",
            daemon=True)
        self._event_thread.start()

    def close(self) -> None:
        """Close the session (best effort, quickly) and release the transport."""
        self._closing.set()
        self._stop.set()
        thread = self._reconnect_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        if self.is_open and not self.lost:
            try:
                quick = min(self.timeout or 2.0, 2.0)
                self.transaction(OC.CloseSession, data_phase=False, timeout=quick, check=False)
            except Exception as exc:  # noqa: BLE001 - closing must never fail loudly
                log.debug("CloseSession failed: %s", exc)
        self.is_open = False
        thread = self._event_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._event_thread = None
        self.transport.close()
        release = getattr(self.reopen, "close", None)
        if callable(release):
            try:
                release()
            except Exception as exc:  # noqa: BLE001 - best effort
                log.debug("releasing the reconnect factory failed: %s", exc)

    def __enter__(self) -> Session:
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def device_info(self) -> DeviceInfo:
        """DeviceInfo read when the session opened (read now if not yet)."""
        if self._device_info is None:
            self._device_info = self.get_device_info()
        return self._device_info

    @property
    def capabilities(self) -> Capabilities:
        """What the device can do, from its DeviceInfo."""
        if self._capabilities is None:
            self._capabilities = Capabilities.from_device_info(self.device_info)
        return self._capabilities

    # -- listener registry -------------------------------------------------------------

    def _register(self, listeners: list[Any], callback: Any) -> Callable[[], None]:
        """Add *callback* to *listeners* under the subscriber lock; return its remover."""
        with self._sub_lock:
            listeners.append(callback)

        def remove() -> None:
            with self._sub_lock:
                if callback in listeners:
                    listeners.remove(callback)
        return remove

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Within the block, only this thread's transactions reach the device:
        for operations that span several transactions (SendObjectInfo, then
        SendObject and its confirmation), which another transaction in
        between would break."""
        with self._lock:
            yield

    # -- transactions ----------------------------------------------------------------

    def transaction(self, code: int, params: Iterable[int] = (), data_phase: bool = True,
                    senddata: bytes | bytearray | memoryview | BinaryIO | None = None, *,
                    sink: DataSink | None = None, length: int | None = None,
                    timeout: float | None = None,
                    progress: Callable[[int], None] | None = None,
                    check: bool = True) -> Result:
        """Run one transaction and return its :class:`Result`.

        *senddata* (bytes or a file object; *length* bytes are sent, default
        the rest of the file) is the host-to-device data phase.  Otherwise,
        with *data_phase* true, incoming data goes to *sink* if given, else
        into ``Result.data``.  A response other than OK raises
        :class:`ResponseError` (``Canon_GetMacAddress: OperationNotSupported
        (0x2005)``); with ``check=False`` the :class:`Result` is returned
        whatever the response, for the seed's style of reading
        ``r['ResponseCode']``.  ``DeviceBusy`` is retried with back-off up to
        ``busy_retries`` times.
        """
        params = tuple(int(p) for p in params)
        if len(params) > 5:
            raise InvalidValue("a PTP request carries at most 5 parameters")
        for p in params:
            if not 0 <= p <= 0xFFFFFFFF:
                raise InvalidValue(f"parameter {p} does not fit in 32 bits")
        source: BinaryIO | None = None
        if senddata is not None:
            if isinstance(senddata, (bytes, bytearray, memoryview)):
                source = io.BytesIO(bytes(senddata))
                length = len(senddata) if length is None else length
            else:
                source = senddata
                if length is None:
                    length = _source_length(source)
        start_pos = source.tell() if source is not None and source.seekable() else None
        delay = self.busy_delay
        attempt = 0
        while True:
            result = self._transact_once(code, params, data_phase, source, length or 0,
                                         sink, timeout, progress)
            if result.code != RC.DeviceBusy or attempt >= self.busy_retries:
                return result.raise_for_status() if check else result
            if source is not None:
                if start_pos is None:
                    return result.raise_for_status() if check else result
                source.seek(start_pos)
            attempt += 1
            log.debug("%s: DeviceBusy, retry %d in %.2fs", operation_name(code), attempt, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _transact_once(self, code: int, params: tuple[int, ...], data_phase: bool,
                       source: BinaryIO | None, length: int, sink: DataSink | None,
                       timeout: float | None,
                       progress: Callable[[int], None] | None) -> Result:
        collector = _Collector(MAX_DATASET) if data_phase and sink is None and source is None else None
        counter = _CountingSink(sink if sink is not None else collector, progress)
        out = _CountingSource(source, progress) if source is not None else None
        seen_failures = self._failures
        with self._queued(code):
            self._check_usable(seen_failures)
            if self._suspect and code != OC.GetDeviceInfo:
                self._probe()
            tid = self._take_tid(code)
            request = Request(code, tid, params)
            started = time.monotonic()
            self.transport.interrupted = self.interrupted
            try:
                response = self.transport.transact(
                    request, data_out=out, data_out_length=length if out else 0,  # type: ignore[arg-type]
                    data_in=counter, timeout=timeout if timeout is not None else self.timeout)
            except (ConnectionLost, TransportTimeout, ProtocolError) as exc:
                self._transaction_failed(code, tid, exc)
                raise
            elapsed = time.monotonic() - started
            # the response's transaction ID was checked by the transport's transaction machine
            self._suspect = False
            self.stats.transactions += 1
            self.stats.per_operation[code] += 1
            self.stats.bytes_in += counter.count
            self.stats.bytes_out += out.count if out else 0
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s(%s) -> %s%s, %d B in, %d B out, %.1f ms", operation_name(code),
                      ", ".join(f"0x{p:x}" for p in params), response_name(response.code),
                      f" [{', '.join(f'0x{p:x}' for p in response.params)}]" if response.params else "",
                      counter.count, out.count if out else 0, elapsed * 1000)
        data = bytes(collector.buf) if collector is not None else b""
        return Result(response.code, tuple(response.params), data, code, counter.count)

    @contextlib.contextmanager
    def _queued(self, code: int) -> Iterator[None]:
        """Hold the session lock; while waiting for it (another transaction is running),
        give up with :class:`Interrupted` as soon as :attr:`interrupted` says the caller
        was interrupted (a FUSE request whose program got a signal)."""
        check = self.interrupted
        if check is None:
            with self._lock:
                yield
            return
        while not self._lock.acquire(timeout=0.1):
            if check():
                raise Interrupted(f"{operation_name(code)}: interrupted while waiting for "
                                  "the device")
        try:
            yield
        finally:
            self._lock.release()

    def _take_tid(self, code: int) -> int:
        if code == OC.OpenSession or not self.is_open:
            return 0
        tid = self._next_tid
        self._next_tid = tid + 1 if tid < 0xFFFFFFFE else 1
        return tid

    def _checked(self, code: int, params: Iterable[int] = (), data_phase: bool = True,
                 **kw: Any) -> Result:
        return self.transaction(code, params, data_phase, **kw)

    # -- events ----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call *callback(event)* for every device event; returns an unsubscribe function."""
        return self._register(self._subscribers, callback)

    def _dispatch(self, event: Event) -> None:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            try:
                self.events.get_nowait()
                self.events.put_nowait(event)
            except (queue.Empty, queue.Full):
                pass
        with self._sub_lock:
            subscribers = list(self._subscribers)
        for cb in subscribers:
            try:
                cb(event)
            except Exception:
                log.exception("event subscriber failed")

    def _event_loop(self, stop: threading.Event, generation: int) -> None:
        eos_poll = self.capabilities.eos_events
        transport = self.transport
        while not stop.is_set():
            try:
                if eos_poll:
                    for event in self.eos_poll_events():
                        self._dispatch(event)
                    stop.wait(self.event_poll_interval)
                else:
                    # short waits keep close() prompt; an idle wait costs nothing
                    pending = transport.read_event(min(self.event_poll_interval, 0.1))
                    if pending is not None and not stop.is_set():
                        self._dispatch(pending)
            except ConnectionLost as exc:
                if not stop.is_set():
                    self._mark_lost(f"event channel: {exc}", generation)
                return
            except Exception as exc:  # noqa: BLE001 - any failure of the event channel ends it
                if stop.is_set():
                    return
                log.debug("event poll failed: %s", exc)
                stop.wait(self.event_poll_interval)

    def eos_poll_events(self) -> list[Event]:
        """Poll EOS GetEvent once and translate its records into standard events."""
        out: list[Event] = []
        for record in self.eos_get_event():
            event = eos.to_standard_event(record)
            if event is not None:
                out.append(event)
        return out

    # -- typed operations: device and session ------------------------------------------

    def get_device_info(self) -> DeviceInfo:
        """GetDeviceInfo (allowed outside a session)."""
        return DeviceInfo.decode(self._checked(OC.GetDeviceInfo).data, strict=False)

    def open_session(self) -> None:
        """OpenSession; a stale session on the device is closed and reopened."""
        result = self.transaction(OC.OpenSession, [self.session_id], data_phase=False,
                                  check=False)
        if result.code == RC.SessionAlreadyOpen:
            self.is_open = True
            self._next_tid = 1
            self.transaction(OC.CloseSession, data_phase=False, check=False)
            self.is_open = False
            result = self.transaction(OC.OpenSession, [self.session_id], data_phase=False,
                                      check=False)
        result.raise_for_status()
        self.is_open = True
        self._next_tid = 1

    def close_session(self) -> None:
        """CloseSession."""
        try:
            self._checked(OC.CloseSession, data_phase=False)
        finally:
            self.is_open = False

    # -- storages and objects ---------------------------------------------------------------

    def get_storage_ids(self) -> tuple[int, ...]:
        """GetStorageIDs."""
        return decode_u32_array(self._checked(OC.GetStorageIDs).data)

    def get_storage_info(self, storage_id: int) -> StorageInfo:
        """GetStorageInfo."""
        return StorageInfo.decode(self._checked(OC.GetStorageInfo, [storage_id]).data, strict=False)

    def get_num_objects(self, storage_id: int = ALL, fmt: int = 0, parent: int = ALL) -> int:
        """GetNumObjects."""
        r = self._checked(OC.GetNumObjects, [storage_id, fmt, parent], data_phase=False)
        if not r.params:
            raise ProtocolError("GetNumObjects: response carries no count")
        return r.params[0]

    def get_object_handles(self, storage_id: int = ALL, fmt: int = 0, parent: int = ALL) -> tuple[int, ...]:
        """GetObjectHandles (parent 0xFFFFFFFF = root only, 0 = all, else children)."""
        return decode_u32_array(self._checked(OC.GetObjectHandles, [storage_id, fmt, parent]).data)

    def get_object_info(self, handle: int) -> ObjectInfo:
        """GetObjectInfo (an ObjectInfo ending before its trailing strings is accepted)."""
        data = self._checked(OC.GetObjectInfo, [handle]).data
        if "short-objectinfo" in self.adaptations:
            return ObjectInfo.decode(data, strict=False)
        missing: list[str] = []
        info = ObjectInfo.decode(data, strict=False, missing=missing)
        if missing:
            self.adapt("short-objectinfo", f"ObjectInfo ends before {', '.join(missing)}: "
                                           "read as empty")
        return info

    def _get_into(self, code: int, params: list[int], sink: DataSink | None,
                  progress: Callable[[int], None] | None = None) -> bytes | int:
        r = self._checked(code, params, sink=sink, progress=progress)
        return r.data if sink is None else r.data_length

    @overload
    def get_object(self, handle: int, sink: None = None,
                   progress: Callable[[int], None] | None = None) -> bytes: ...
    @overload
    def get_object(self, handle: int, sink: DataSink,
                   progress: Callable[[int], None] | None = None) -> int: ...

    def get_object(self, handle: int, sink: DataSink | None = None,
                   progress: Callable[[int], None] | None = None) -> bytes | int:
        """GetObject: the bytes, or the byte count when streamed into *sink*."""
        if sink is None:
            sink_buf = io.BytesIO()
            self._checked(OC.GetObject, [handle], sink=sink_buf, progress=progress)
            return sink_buf.getvalue()
        return self._get_into(OC.GetObject, [handle], sink, progress)

    def get_thumb(self, handle: int, sink: DataSink | None = None) -> bytes | int:
        """GetThumb."""
        return self._get_into(OC.GetThumb, [handle], sink)

    def get_partial_object(self, handle: int, offset: int, size: int,
                           sink: DataSink | None = None) -> bytes | int:
        """GetPartialObject (32-bit offset)."""
        if not 0 <= offset <= 0xFFFFFFFF:
            raise InvalidValue("GetPartialObject cannot address beyond 4 GiB")
        return self._get_into(OC.GetPartialObject, [handle, offset, min(size, 0xFFFFFFFF)], sink)

    def get_partial_object64(self, handle: int, offset: int, size: int,
                             sink: DataSink | None = None) -> bytes | int:
        """Android GetPartialObject64 (0x95C1)."""
        return self._get_into(OC.GetPartialObject64,
                              [handle, offset & 0xFFFFFFFF, offset >> 32, min(size, 0xFFFFFFFF)],
                              sink)

    def eos_get_partial_object(self, handle: int, offset: int, size: int,
                               sink: DataSink | None = None) -> bytes | int:
        """Canon EOS GetPartialObject (0x9107); the 64-bit form (0x9172) beyond 4 GiB."""
        if offset > 0xFFFFFFFF:
            return self._get_into(OC.Canon_GetPartialObject64,
                                  [handle, offset & 0xFFFFFFFF, offset >> 32, min(size, 0xFFFFFFFF)],
                                  sink)
        return self._get_into(OC.EOS_GetPartialObject, [handle, offset, min(size, 0xFFFFFFFF)], sink)

    def eos_transfer_complete(self, handle: int) -> None:
        """Canon EOS TransferComplete (0x9117)."""
        self._checked(OC.EOS_TransferComplete, [handle], data_phase=False)

    def read_partial(self, handle: int, offset: int, size: int,
                     sink: DataSink | None = None) -> bytes | int:
        """Read part of an object with the best partial-read operation the device has."""
        mode = self.capabilities.partial_read
        if mode is PartialRead.OFFSET64:
            return self.get_partial_object64(handle, offset, size, sink)
        if mode is PartialRead.EOS:
            return self.eos_get_partial_object(handle, offset, size, sink)
        if mode is PartialRead.OFFSET32:
            return self.get_partial_object(handle, offset, size, sink)
        raise ResponseError(RC.OperationNotSupported, OC.GetPartialObject,
                            message="the device offers no partial-read operation")

    def delete_object(self, handle: int, fmt: int = 0) -> None:
        """DeleteObject."""
        self._checked(OC.DeleteObject, [handle, fmt], data_phase=False)

    def send_object_info(self, storage_id: int, parent: int,
                         info: ObjectInfo) -> tuple[int, int, int]:
        """SendObjectInfo; returns (storage, parent, new handle) as the device chose."""
        r = self._checked(OC.SendObjectInfo, [storage_id, parent], senddata=info.encode())
        if len(r.params) < 3:
            raise ProtocolError("SendObjectInfo: response lacks the new object's handle")
        return r.params[0], r.params[1], r.params[2]

    def send_object_prop_list(self, storage_id: int, parent: int, fmt: int, size: int,
                              entries: Iterable[ObjectPropEntry]) -> tuple[int, int, int]:
        """MTP SendObjectPropList: announce an object with a 64-bit *size* (for files of
        4 GiB or more); returns (storage, parent, new handle).  SendObject follows."""
        from ptpfs.protocol.datasets import encode_prop_list
        r = self._checked(OC.SendObjectPropList,
                          [storage_id, parent, fmt, size >> 32, size & 0xFFFFFFFF],
                          senddata=encode_prop_list(entries))
        if len(r.params) < 3:
            raise ProtocolError("SendObjectPropList: response lacks the new object's handle")
        return r.params[0], r.params[1], r.params[2]

    def send_object(self, source: bytes | BinaryIO, length: int | None = None,
                    progress: Callable[[int], None] | None = None) -> None:
        """SendObject: stream *length* bytes of *source* (bytes or a file object)."""
        self._checked(OC.SendObject, [], senddata=source, length=length, progress=progress)

    def move_object(self, handle: int, storage_id: int, parent: int) -> None:
        """MoveObject."""
        self._checked(OC.MoveObject, [handle, storage_id, parent], data_phase=False)

    def copy_object(self, handle: int, storage_id: int, parent: int) -> int:
        """CopyObject; returns the new handle."""
        r = self._checked(OC.CopyObject, [handle, storage_id, parent], data_phase=False)
        return r.params[0] if r.params else 0

    # -- device properties ----------------------------------------------------------------

    def get_device_prop_desc(self, code: int) -> DevicePropDesc:
        """GetDevicePropDesc."""
        data = self._checked(OC.GetDevicePropDesc, [code]).data
        try:
            desc = DevicePropDesc.decode(data)
        except ProtocolError as exc:
            if "trailing" not in str(exc):
                raise
            # libgphoto2 ignores bytes after a complete descriptor (uMTP-Responder adds 4)
            desc = DevicePropDesc.decode(data, strict=False)
            self.adapt("propdesc-trailing", f"GetDevicePropDesc data longer than the descriptor ({exc})")
        self._prop_types[code] = desc.datatype
        return desc

    def _prop_type(self, code: int, datatype: int | None) -> int:
        if datatype is not None:
            return datatype
        if code not in self._prop_types:
            self.get_device_prop_desc(code)
        return self._prop_types[code]

    def get_device_prop_value(self, code: int, datatype: int | None = None) -> Any:
        """GetDevicePropValue, decoded with the property's datatype.

        Devices without GetDevicePropValue (the EOS R6) report the current
        value in the property's descriptor instead.
        """
        if not self.capabilities.supports(OC.GetDevicePropValue):
            return self.get_device_prop_desc(code).current
        dt = self._prop_type(code, datatype)
        return decode_value(dt, self._checked(OC.GetDevicePropValue, [code]).data)

    def set_device_prop_value(self, code: int, value: Any, datatype: int | None = None) -> None:
        """SetDevicePropValue."""
        dt = self._prop_type(code, datatype)
        self._checked(OC.SetDevicePropValue, [code], senddata=encode_value(dt, value))

    # -- MTP object properties --------------------------------------------------------------

    def get_object_props_supported(self, fmt: int) -> tuple[int, ...]:
        """GetObjectPropsSupported for an object format."""
        return decode_u16_array(self._checked(OC.GetObjectPropsSupported, [fmt]).data)

    def get_object_prop_value(self, handle: int, prop: int, datatype: int) -> Any:
        """GetObjectPropValue."""
        return decode_value(datatype, self._checked(OC.GetObjectPropValue, [handle, prop]).data)

    def set_object_prop_value(self, handle: int, prop: int, value: Any, datatype: int) -> None:
        """SetObjectPropValue (ObjectFileName = rename on many devices)."""
        self._checked(OC.SetObjectPropValue, [handle, prop], senddata=encode_value(datatype, value))

    def get_object_prop_list(self, handle: int, fmt: int = 0, prop: int = ALL, group: int = 0,
                             depth: int = 0) -> list[ObjectPropEntry]:
        """GetObjectPropList (depth 1 = a folder's children in one transaction)."""
        r = self._checked(OC.GetObjectPropList, [handle, fmt, prop, group, depth])
        return decode_prop_list(r.data)

    # -- Canon -------------------------------------------------------------------------------

    def canon_get_mac_address(self) -> bytes:
        """Canon GetMacAddress (0x9033)."""
        return self._checked(OC.Canon_GetMacAddress).data

    def eos_get_thumb_ex(self, handle: int) -> bytes:
        """Canon EOS GetThumbEx (0x910A): the object's embedded thumbnail JPEG."""
        return self._checked(OC.EOS_GetThumbEx, [handle]).data

    def eos_set_remote_mode(self, mode: int = 1) -> None:
        """Canon EOS SetRemoteMode (0x9114)."""
        self._checked(OC.EOS_SetRemoteMode, [mode], data_phase=False)

    def eos_set_event_mode(self, mode: int = 1) -> None:
        """Canon EOS SetEventMode (0x9115)."""
        self._checked(OC.EOS_SetEventMode, [mode], data_phase=False)

    def eos_get_event(self) -> list[eos.EOSEvent]:
        """Canon EOS GetEvent (0x9116): the queued event records."""
        return eos.decode_eos_events(self._checked(OC.EOS_GetEvent).data)

    def eos_get_object_info_ex(self, storage_id: int, parent: int,
                               flags: int = 0x100000) -> list[eos.EOSObjectEntry]:
        """Canon EOS GetObjectInfoEx (0x9109): a folder's children in one data phase."""
        r = self._checked(OC.EOS_GetObjectInfoEx, [storage_id, parent, flags])
        return eos.decode_object_info_ex(r.data)
