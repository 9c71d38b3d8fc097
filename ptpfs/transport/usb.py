"""PTP over USB (Still Image class and MTP interfaces) through pyusb.

``find_devices`` lists candidate interfaces, ``open_usb`` claims one and
returns a :class:`UsbTransport`.  Any pyusb backend may be passed in; the
simulator provides one (``ptpfs.sim.usb_backend``) so this exact code runs in
tests without hardware.

Data phases stream: outgoing data is read from a file object into a 512 KiB
buffer and written in transfers of exactly :data:`OUT_CHUNK_SIZE` bytes (the
first carries the 12-byte container header), only the last one short,
followed by a zero-length packet when the container is an exact multiple of
the packet size.  Bulk transfers call the pyusb backend's ``bulk_read``/``bulk_write`` directly
(libusb's, or the simulator's in tests), not ``Device.read``/``write``, whose
per-call endpoint lookup, lock and claim check cost as much as a small transfer
on a slow host.  Incoming data is read into preallocated buffers sized by
what is expected (16 KiB for responses, datasets and a data phase's first
transfer; the announced remainder, at most 1 MiB, after that) and handed to
the sink chunk by chunk.  The sequence (command, data in the declared
direction, response, transaction IDs) is checked by
:class:`ptpfs.protocol.transaction.Transaction`; every transaction has a
deadline (:class:`~ptpfs.transport.base.Deadline`).

Device behaviour handled here, by observation rather than by device name
(all seen on QEMU's usb-mtp, which behaves like several cheap MTP stacks):

* responders that receive data into fixed 512 KiB buffers and accept only
  part of a longer bulk-OUT transfer: :data:`OUT_CHUNK_SIZE` transfers line
  up with such buffers (the first one, header included, fills the first);
* responders that stall bulk-OUT transfers shorter than a container header:
  the last transfer of a data phase is never shorter than 12 bytes;
* responders that take only transfers that are not a multiple of 64 bytes as
  short (whatever the packet size) and never answer otherwise: if no reply
  comes within 1.5 s of such a last transfer, a zero-length packet is offered;
* responders that end a data phase only on a short packet and stall the
  terminating zero-length packet: :class:`ZeroLengthPacketRefused` (every
  data byte was accepted; the transaction is cancelled and the caller may
  check whether the object arrived complete);
* responders whose data phase is not the length its container announces
  (the transaction machine's ``tolerant`` mode, as libgphoto2): up to 11 stray
  bytes after the data are discarded and logged once; a phase that ends early
  (a short transfer, a zero-length packet or the response itself) is read to
  its response, keeping the link in step, and is then a :class:`ProtocolError`
  if the device answered OK (never a silently short object);
* responders without the GetDeviceStatus / DeviceReset class requests
  (stalled on endpoint 0): recovery then relies on the cancel request alone
  instead of polling for two seconds.
"""

from __future__ import annotations

import array
import errno
import functools
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import usb.core
import usb.util

from ptpfs.errors import (
    ConnectionLost,
    DeviceClaimed,
    DeviceNotFound,
    DevicePermissionError,
    InvalidValue,
    ProtocolError,
    TransportError,
    TransportTimeout,
)
from ptpfs.protocol import container
from ptpfs.protocol.codes import EC, RC
from ptpfs.protocol.messages import DATA_OUT, NO_DATA, Event, Request, Response
from ptpfs.protocol.transaction import (
    INITIATOR,
    Command,
    DataChunk,
    DataEnd,
    DataStart,
    Transaction,
    TransactionEvent,
    usb_container_event,
)
from ptpfs.protocol.transaction import Response as ResponseEvent
from ptpfs.transport.base import (
    DEFAULT_MIN_RATE,
    DataSink,
    Deadline,
    Transport,
    fill_from,
)
from ptpfs.transport.usbspec import UsbSpec, format_busdev, parse_usb_spec

log = logging.getLogger("ptpfs.transport.usb")

__all__ = ["UsbDeviceInfo", "UsbTransport", "EndpointStalled", "ZeroLengthPacketRefused",
           "find_devices", "open_usb", "CHUNK_SIZE", "OUT_CHUNK_SIZE"]

#: Largest bulk-IN transfer request (a multiple of 512), for large data phases.
CHUNK_SIZE = 1 << 20
#: Bulk-IN request outside a data phase known to be large (responses, datasets, the first
#: transfer of any data phase).  In a slow guest, 1 MiB requests for 12-byte responses made
#: a listing 2.7 times slower (issue 13).
SMALL_READ = 16 << 10
#: Size of every bulk-OUT data transfer but the last (a multiple of 512 and of 1024).
#: Responders that receive into 512 KiB buffers accept only part of a longer transfer.
OUT_CHUNK_SIZE = 512 << 10


#: How long to wait for a reply before offering a zero-length packet (see _probe_reply).
_PROBE_MS = 1500

_CLAIMED_HINT = ("another program holds the camera; on desktops this is usually "
                 "gvfs-gphoto2-volume-monitor (try: gio mount -s gphoto2, or "
                 "systemctl --user stop gvfs-gphoto2-volume-monitor) or a running gphoto2")
_PERMISSION_HINT = ("no permission to open the USB device; install the libgphoto2 udev rules "
                    "(or add a rule giving your user access to the camera) and replug it")


@dataclass(frozen=True)
class UsbDeviceInfo:
    """One PTP-capable interface found on the bus."""

    bus: int | None
    address: int | None
    vendor_id: int
    product_id: int
    interface_number: int
    kind: str                      # "ptp" (still image class) or "mtp"
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None

    @property
    def spec(self) -> str:
        """The gphoto2-style spec selecting exactly this device, e.g. ``usb:001,004``."""
        return format_busdev(self.bus, self.address)

    def __str__(self) -> str:
        name = " ".join(x for x in (self.manufacturer, self.product) if x) or "unknown device"
        return f"{self.spec} {self.vendor_id:04x}:{self.product_id:04x} {name} ({self.kind})"


# --------------------------------------------------------------------------- errors

class EndpointStalled(TransportError):
    """The device stalled an endpoint (it refused the transfer).  The transport has
    already run :meth:`UsbTransport.recover`; the link is usable again."""


class ZeroLengthPacketRefused(EndpointStalled):
    """The device accepted every byte of a host-to-device data phase but stalled the
    zero-length packet that ends it, and sent no response; the transaction was cancelled.

    Some responders end a data phase only on a short packet, so a container whose length is
    a multiple of the packet size cannot be terminated.  ``data_delivered`` is True: the
    caller may check (by listing) whether the object arrived complete.
    """

    data_delivered = True


def _usb_errno(exc: BaseException) -> int | None:
    return getattr(exc, "errno", None)


def _is_timeout(exc: BaseException) -> bool:
    return (isinstance(exc, usb.core.USBTimeoutError) or _usb_errno(exc) == errno.ETIMEDOUT
            or getattr(exc, "backend_error_code", None) == -7)


def _map_usb_error(exc: BaseException, what: str) -> TransportError:
    """Translate a pyusb exception into the library's hierarchy."""
    if isinstance(exc, usb.core.NoBackendError):
        return ConnectionLost(f"{what}: no USB backend available ({exc})")
    if _is_timeout(exc):
        return TransportTimeout(f"{what}: device did not answer in time")
    code = _usb_errno(exc)
    if code in (errno.ENODEV, errno.ENOENT, errno.ESHUTDOWN, errno.EIO, errno.ENXIO) \
            or getattr(exc, "backend_error_code", None) == -4:
        return ConnectionLost(f"{what}: device disconnected ({exc})")
    if code == errno.EPIPE:
        return EndpointStalled(f"{what}: endpoint stalled (the device refused the transfer)")
    if code == errno.EBUSY:
        return DeviceClaimed(f"{what}: {_CLAIMED_HINT}")
    if code in (errno.EACCES, errno.EPERM):
        return DevicePermissionError(f"{what}: {_PERMISSION_HINT}")
    return TransportError(f"{what}: USB error ({exc})")


# --------------------------------------------------------------------------- discovery

def _ep_kind(ep: Any) -> tuple[int, bool]:
    """(transfer type, is_in) of an endpoint descriptor."""
    return (usb.util.endpoint_type(ep.bmAttributes),
            usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN)


def _has_ptp_endpoints(intf: Any) -> bool:
    kinds = {_ep_kind(ep) for ep in intf}
    return {(usb.util.ENDPOINT_TYPE_BULK, True), (usb.util.ENDPOINT_TYPE_BULK, False),
            (usb.util.ENDPOINT_TYPE_INTR, True)} <= kinds


def _safe_string(dev: Any, index: int) -> str | None:
    if not index:
        return None
    try:
        text: str | None = usb.util.get_string(dev, index)
        return text
    except (usb.core.USBError, ValueError, NotImplementedError, UnicodeDecodeError):
        return None


def _interface_kind(dev: Any, intf: Any) -> str | None:
    cls, sub, proto = intf.bInterfaceClass, intf.bInterfaceSubClass, intf.bInterfaceProtocol
    if (cls, sub, proto) == (6, 1, 1):
        return "ptp"
    if cls == 0xFF:
        label = _safe_string(dev, getattr(intf, "iInterface", 0)) or ""
        if "MTP" in label.upper():
            return "mtp"
        if intf.bNumEndpoints == 3 and _has_ptp_endpoints(intf):
            return "mtp"
    return None


def _scan(spec: UsbSpec, backend: Any) -> list[tuple[Any, Any, UsbDeviceInfo]]:
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.NoBackendError as exc:
        raise DeviceNotFound(f"no USB backend (libusb) available: {exc}") from exc
    except usb.core.USBError as exc:
        raise _map_usb_error(exc, "listing USB devices") from exc
    found: list[tuple[Any, Any, UsbDeviceInfo]] = []
    for dev in devices:
        if spec.bus is not None and (dev.bus != spec.bus or dev.address != spec.address):
            continue
        if spec.vendor_id is not None and (dev.idVendor != spec.vendor_id
                                           or dev.idProduct != spec.product_id):
            continue
        try:
            cfg = dev[0]
            interfaces = list(cfg)
        except (usb.core.USBError, IndexError, NotImplementedError):
            continue
        for intf in interfaces:
            if intf.bAlternateSetting != 0:
                continue
            kind = _interface_kind(dev, intf)
            if kind is None or not _has_ptp_endpoints(intf):
                continue
            serial = _safe_string(dev, dev.iSerialNumber)
            if not spec.matches(dev.bus, dev.address, dev.idVendor, dev.idProduct, serial):
                continue
            info = UsbDeviceInfo(
                bus=dev.bus, address=dev.address, vendor_id=dev.idVendor,
                product_id=dev.idProduct, interface_number=intf.bInterfaceNumber, kind=kind,
                manufacturer=_safe_string(dev, dev.iManufacturer),
                product=_safe_string(dev, dev.iProduct), serial=serial)
            found.append((dev, intf, info))
            break
    return found


def find_devices(spec: str = "usb", backend: Any = None) -> list[UsbDeviceInfo]:
    """List the PTP/MTP interfaces matching *spec* (``usb`` lists them all)."""
    return [info for _dev, _intf, info in _scan(parse_usb_spec(spec), backend)]


def open_usb(spec: str = "usb", backend: Any = None, timeout: float = 5.0,
             min_rate: float = DEFAULT_MIN_RATE) -> UsbTransport:
    """Open and claim the first device matching *spec*.

    Raises :class:`DeviceNotFound`, :class:`DeviceClaimed` (another program
    holds it) or :class:`DevicePermissionError` (udev permissions).
    """
    parsed = parse_usb_spec(spec)
    found = _scan(parsed, backend)
    if not found:
        raise DeviceNotFound(f"no PTP/MTP USB device matches {spec!r}")
    dev, intf, info = found[0]
    return UsbTransport(dev, intf, info, timeout=timeout, min_rate=min_rate)


# --------------------------------------------------------------------------- transport

class UsbTransport(Transport):
    """One claimed PTP interface: bulk OUT/IN for transactions, interrupt IN for events."""

    def __init__(self, dev: Any, intf: Any, info: UsbDeviceInfo, *, timeout: float = 5.0,
                 min_rate: float = DEFAULT_MIN_RATE) -> None:
        self.device = dev
        self.min_rate = min_rate
        self._machine = Transaction(INITIATOR, tolerant=True)
        self._noted: set[str] = set()     # device behaviours logged once
        self._deadline: Deadline | None = None
        self._deadline_bound = False
        self._asked = 0
        self.info = info
        self.timeout = timeout
        self.description = info.spec
        self._ifnum = intf.bInterfaceNumber
        self._closed = False
        self._claimed = False
        self._last_tid = 0
        self._code = 0                    # operation in progress, for messages
        self._leftover = b""
        self._event_lock = threading.Lock()
        self._ep_out, self._ep_in, self._ep_int = self._endpoints(intf)
        self._mps_out = max(1, int(self._ep_out.wMaxPacketSize) & 0x7FF)
        self._mps_in = max(1, int(self._ep_in.wMaxPacketSize) & 0x7FF)
        if CHUNK_SIZE % self._mps_out or SMALL_READ % self._mps_in:
            raise ProtocolError(f"unsupported wMaxPacketSize {self._mps_out}/{self._mps_in}")
        if OUT_CHUNK_SIZE % self._mps_out:
            raise ProtocolError(f"unsupported wMaxPacketSize {self._mps_out}")
        self._no_status_request = False   # GetDeviceStatus stalled once: not implemented
        self._inbufs: dict[int, array.array[int]] = {}
        self._outbuf = array.array("B", bytes(OUT_CHUNK_SIZE))
        self._respbuf = array.array("B", bytes(max(512, self._mps_in)))
        self._evbuf = array.array("B", bytes(max(64, int(self._ep_int.wMaxPacketSize) & 0x7FF)))
        self._claim()
        self._bulk_in, self._bulk_out = self._bulk_calls()

    # ---------------------------------------------------------------- setup
    @staticmethod
    def _endpoints(intf: Any) -> tuple[Any, Any, Any]:
        ep_out = ep_in = ep_int = None
        for ep in intf:
            kind, is_in = _ep_kind(ep)
            if kind == usb.util.ENDPOINT_TYPE_BULK and not is_in and ep_out is None:
                ep_out = ep
            elif kind == usb.util.ENDPOINT_TYPE_BULK and is_in and ep_in is None:
                ep_in = ep
            elif kind == usb.util.ENDPOINT_TYPE_INTR and is_in and ep_int is None:
                ep_int = ep
        if ep_out is None or ep_in is None or ep_int is None:
            raise DeviceNotFound("interface lacks the bulk OUT, bulk IN and interrupt IN endpoints")
        return ep_out, ep_in, ep_int

    def _claim(self) -> None:
        dev = self.device
        what = f"opening {self.description}"
        try:
            try:
                if dev.is_kernel_driver_active(self._ifnum):
                    dev.detach_kernel_driver(self._ifnum)
            except NotImplementedError:
                pass
            try:
                dev.get_active_configuration()
            except usb.core.USBError:
                dev.set_configuration()
            usb.util.claim_interface(dev, self._ifnum)
        except usb.core.USBError as exc:
            self._dispose()
            raise _map_usb_error(exc, what) from exc
        except usb.core.NoBackendError as exc:
            self._dispose()
            raise ConnectionLost(f"{what}: {exc}") from exc
        self._claimed = True

    def _bulk_calls(self) -> tuple[Callable[[array.array[int], int], int],
                                   Callable[[array.array[int], int], int]]:
        """Bulk-IN and bulk-OUT calls straight into the pyusb backend (libusb, or the
        simulator's): ``device.read``/``write`` look the endpoint up, take pyusb's lock and
        check the claim on every call, which in a slow guest costs as much as the transfer
        itself.  The interface is claimed and the endpoints fixed for the transport's life."""
        dev = self.device
        ctx = getattr(dev, "_ctx", None)
        backend = getattr(ctx, "backend", None)
        handle = getattr(ctx, "handle", None)
        ep_in, ep_out = self._ep_in.bEndpointAddress, self._ep_out.bEndpointAddress
        if backend is None or handle is None or not hasattr(backend, "bulk_read"):
            return (lambda buf, ms: int(dev.read(ep_in, buf, ms)),     # pragma: no cover
                    lambda data, ms: int(dev.write(ep_out, data, ms)))
        return (functools.partial(backend.bulk_read, handle, ep_in, self._ifnum),
                functools.partial(backend.bulk_write, handle, ep_out, self._ifnum))

    def _dispose(self) -> None:
        try:
            usb.util.dispose_resources(self.device)
        except (usb.core.USBError, NotImplementedError, ValueError):
            pass

    def _ms(self, timeout: float | None) -> int:
        t = self.timeout if timeout is None else timeout
        return max(1, int(t * 1000))

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.description}: transport is closed")

    # ---------------------------------------------------------------- raw I/O
    def _what(self, what: str) -> str:
        """*what* with the operation's code for ``{}``: messages are built only when they are
        needed (formatting them for every transfer costs real time on slow hosts)."""
        return what.replace("{}", f"0x{self._code:04x}")

    def _limit(self, ms: int, what: str) -> int:
        """*ms*, cut short by the transaction deadline (which raises once it has passed)."""
        self._deadline_bound = False
        if self._deadline is not None:
            try:
                left = int(self._deadline.left(what) * 1000)
            except TransportTimeout:
                raise TransportTimeout(f"{self._what(what)}: {self._deadline.explain()}") \
                    from None
            if left < ms:
                ms, self._deadline_bound = max(1, left), True
        return ms

    def _usb_failed(self, exc: BaseException, what: str) -> TransportError:
        what = self._what(what)
        if self._deadline is not None and self._deadline_bound and _is_timeout(exc):
            return TransportTimeout(f"{what}: {self._deadline.explain()}")
        return _map_usb_error(exc, what)

    def _write(self, data: Any, ms: int, what: str) -> None:
        try:
            n = self._bulk_out(data, self._limit(ms, what))
        except (usb.core.USBError, usb.core.NoBackendError) as exc:
            raise self._usb_failed(exc, what) from exc
        if n != len(data):
            raise TransportTimeout(f"{self._what(what)}: device accepted {n} of {len(data)} bytes")
        if self._deadline is not None:
            self._deadline.moved(n)

    def _read(self, buf: array.array[int], ms: int, what: str) -> int:
        try:
            n = self._bulk_in(buf, self._limit(ms, what))
        except (usb.core.USBError, usb.core.NoBackendError) as exc:
            raise self._usb_failed(exc, what) from exc
        if self._deadline is not None:
            self._deadline.moved(n)
        return n

    def _in_buffer(self, want: int) -> array.array[int]:
        """A bulk-IN buffer for a read of about *want* bytes: the smallest of the power-of-two
        sizes from :data:`SMALL_READ` to :data:`CHUNK_SIZE` that holds it (reads are sized by
        what is expected: responses and datasets small, only large data phases large)."""
        size = SMALL_READ
        while size < want and size < CHUNK_SIZE:
            size *= 2
        buf = self._inbufs.get(size)
        if buf is None:
            buf = self._inbufs[size] = array.array("B", bytes(size))
        return buf

    # ---------------------------------------------------------------- transact
    def transact(self, request: Request, *, data_out: BinaryIO | None = None,
                 data_out_length: int = 0, data_in: DataSink | None = None,
                 timeout: float | None = None) -> Response:
        """Run one transaction (command, optional data phase, response) within its deadline:
        the timeout plus one second per ``min_rate`` bytes moved."""
        self._check_open()
        self._deadline = Deadline(self.timeout if timeout is None else timeout, self.min_rate)
        try:
            return self._transact(request, data_out, data_out_length, data_in, timeout)
        except (EndpointStalled, InvalidValue):
            # A refused transfer or a data source that ran dry leaves the device
            # mid-transaction: bring it back to idle now (ConnectionLost if that fails).
            self._deadline = None
            self.recover()
            raise
        finally:
            self._deadline = None

    def _transact(self, request: Request, data_out: BinaryIO | None, data_out_length: int,
                  data_in: DataSink | None, timeout: float | None) -> Response:
        ms = self._ms(timeout)
        tid = request.transaction_id
        self._last_tid = tid
        self._code = request.code
        self._leftover = b""
        name = f"0x{request.code:04x}"
        machine = self._machine
        machine.reset()
        machine.send(Command(request.code, tid, tuple(request.params),
                             DATA_OUT if data_out is not None else NO_DATA))
        cmd = container.encode_command(request.code, tid, tuple(request.params))
        self._write(array.array("B", cmd), ms, "sending command {}")
        if data_out is not None and self._send_data(request, data_out, data_out_length, ms):
            first = self._probe_reply(ms, name)
        else:
            first = self._read_transfer(ms, "reading reply to {}")
        while True:
            event = self._event(first, name)
            short, done = machine.data_short, machine.data_done   # the response resets them
            self._feed(event, name)
            if isinstance(event, ResponseEvent):
                return self._response(event, short, done, name)
            self._receive_data(first, data_in, ms, name)
            first = self._read_transfer(ms, "reading response to {}")

    def _response(self, event: ResponseEvent, short: int, done: int, name: str) -> Response:
        """The transaction's response; a data phase that ended *short* bytes early is an
        error (raised after the response, so the link stays in step) unless the device also
        answered with an error: a short GetObject would otherwise become a silently short
        file."""
        if short and event.code == RC.OK:
            self._note("short", f"{name}: the device ended a data phase before its "
                       "announced length")
            raise ProtocolError(f"{name}: data phase ended after {done} of the "
                                f"{done + short} bytes announced")
        return Response(event.code, event.transaction_id, event.params)

    def _note(self, key: str, message: str) -> None:
        """Log a device behaviour once per link (``-v``)."""
        if key not in self._noted:
            self._noted.add(key)
            log.info("%s", message)

    def _event(self, first: memoryview, name: str) -> TransactionEvent:
        try:
            return usb_container_event(first)
        except ProtocolError as exc:
            raise ProtocolError(f"{name}: {exc} from the device") from None

    def _feed(self, event: TransactionEvent, name: str) -> None:
        try:
            self._machine.receive(event)
        except ProtocolError as exc:
            raise ProtocolError(f"{name}: {exc}") from None

    def _read_transfer(self, ms: int, what: str) -> memoryview:
        """One container-sized transfer from bulk IN (skips stray zero-length packets).
        Outside a data phase only a container header, a response or a dataset's first
        part is expected: the read is small."""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            self._asked = 0
            return memoryview(data)
        buf = self._in_buffer(SMALL_READ)
        self._asked = len(buf)
        for _ in range(3):
            n = self._read(buf, ms, what)
            if n:
                return memoryview(buf)[:n]
        raise ProtocolError(f"{self._what(what)}: device sent only empty packets")

    def _receive_data(self, first: memoryview, sink: DataSink | None, ms: int,
                      name: str) -> None:
        """The data phase whose container starts in *first* (its DataStart already fed)."""
        machine = self._machine
        hs = container.HEADER_SIZE
        chunk = first[hs:]
        # The size of the read that produced *chunk*, to tell a short transfer.  Not for the
        # first one of a known length: some devices send the container header on its own.
        asked = self._asked if machine.data_remaining is None else 0
        n = len(first)            # length of the transfer that carried *chunk*
        while True:
            surplus = 0
            if machine.data_remaining is not None and len(chunk) > machine.data_remaining:
                keep = machine.data_remaining
                if len(chunk) - keep >= hs:
                    # The device glued the response onto the data (no ZLP): keep it.
                    self._leftover = bytes(chunk[keep:])
                else:   # stray bytes too few for a container: counted, then discarded
                    surplus = len(chunk) - keep
                chunk = chunk[:keep]
            if sink is not None and len(chunk):
                sink.write(chunk)
            self._feed(DataChunk(len(chunk) + surplus), name)
            if surplus:
                self._note("excess", f"{name}: the device sent more data than it announced; "
                           f"the surplus ({surplus} bytes) is discarded")
            if not machine.in_data_phase:
                return
            if asked and n < asked:               # a short transfer ends the data phase
                self._feed(DataEnd(), name)       # early: checked with the response
                return
            remaining = machine.data_remaining
            want = CHUNK_SIZE if remaining is None else -(-remaining // self._mps_in) * self._mps_in
            buf = self._in_buffer(want)
            asked = len(buf)
            n = self._read(buf, ms, "{}: reading data")
            chunk = memoryview(buf)[:n]
            if remaining is not None and (n == 0 or container.is_response_for(chunk, self._last_tid)):
                # A zero-length packet, or the response itself: the phase ended early.
                self._leftover = bytes(chunk)
                self._feed(DataEnd(), name)
                return


    def _probe_reply(self, ms: int, name: str) -> memoryview:
        """The reply after a data phase whose last transfer was a multiple of 64 bytes but
        shorter than a packet.  Some responders treat only non-multiples of 64 as short: they
        never answer, and refuse the zero-length packet they wait for."""
        try:
            return self._read_transfer(min(ms, _PROBE_MS), "reading reply to {}")
        except TransportTimeout:
            pass
        except EndpointStalled:   # "still awaiting data": it stalls bulk IN meanwhile
            self._clear_halt(self._ep_in.bEndpointAddress)
        try:
            self._write(array.array("B"), ms, "{}: sending zero-length packet")
        except EndpointStalled as exc:
            raise ZeroLengthPacketRefused(
                f"{name}: the device accepted every data byte but did not end the data phase "
                "and refused the zero-length packet (it ends data phases only on transfers "
                "that are not a multiple of 64 bytes); the transaction was cancelled") from exc
        return self._read_transfer(ms, "reading reply to {}")

    def _send_data(self, request: Request, source: BinaryIO, length: int, ms: int) -> bool:
        """Send the data phase; True if the device may not have seen its end (the last
        transfer was a multiple of 64 bytes yet shorter than a packet)."""
        if length < 0:
            raise InvalidValue(f"negative data length {length}")
        name = f"0x{request.code:04x}"
        hs = container.HEADER_SIZE
        self._machine.send(DataStart(request.transaction_id, length))
        header = container.encode_header(container.TYPE_DATA, request.code,
                                         request.transaction_id, length)
        buf = self._outbuf
        view = memoryview(buf)
        view[:hs] = header
        fill = hs
        remaining = length
        total = hs + length
        last = 0
        while True:
            want = min(OUT_CHUNK_SIZE - fill, remaining)
            if 0 < remaining - want < hs and remaining == length:
                # Never end on a transfer shorter than a container header: some responders
                # stall it.  Move one packet's worth into the last transfer instead.  Only
                # when splitting the first transfer: such responders may receive into
                # fixed buffers (the first sized to the object) and drop a transfer that
                # crosses one, so later boundaries must stay where they are.
                want -= self._mps_out
            if want:
                fill_from(source, view[fill:fill + want], name)
                self._machine.send(DataChunk(want))
                fill += want
                remaining -= want
            data = buf if fill == OUT_CHUNK_SIZE else buf[:fill]
            self._write(data, ms, "{}: sending data")
            last = fill
            fill = 0
            if not remaining:
                break
        if total % self._mps_out == 0:
            try:
                self._write(array.array("B"), ms, "{}: sending zero-length packet")
            except EndpointStalled as exc:   # transact() recovers (cancels) before re-raising
                raise ZeroLengthPacketRefused(
                    f"{name}: the device accepted all {length} data bytes but refused the "
                    "zero-length packet ending the data phase (it ends data phases only on "
                    "short packets); the transaction was cancelled") from exc
            return False
        return last % 64 == 0

    # ---------------------------------------------------------------- events
    def read_event(self, timeout: float) -> Event | None:
        """Wait up to *timeout* seconds for an event on the interrupt endpoint."""
        self._check_open()
        ms = max(1, int(timeout * 1000))
        with self._event_lock:
            try:
                n = int(self.device.read(self._ep_int, self._evbuf, ms))
            except (usb.core.USBError, usb.core.NoBackendError) as exc:
                if _is_timeout(exc):
                    return None
                raise _map_usb_error(exc, "reading event") from exc
            if n == 0:
                return None
            data = bytes(self._evbuf[:n])
        try:
            return container.decode_event(data)
        except ProtocolError as exc:
            raise ProtocolError(f"interrupt endpoint: {exc}") from None

    # ---------------------------------------------------------------- recovery
    def recover(self) -> None:
        """Cancel the current transaction, wait for the device to become idle, clear halts."""
        self._check_open()
        self._leftover = b""
        dev = self.device
        try:
            dev.ctrl_transfer(container.REQUEST_TYPE_OUT, container.REQ_CANCEL, 0, self._ifnum,
                              struct.pack("<HI", EC.CancelTransaction, self._last_tid), 1000)
        except usb.core.USBError as exc:
            if isinstance(_map_usb_error(exc, ""), ConnectionLost):
                raise _map_usb_error(exc, "cancelling") from exc
        if not self._wait_idle(2.0):
            try:
                dev.ctrl_transfer(container.REQUEST_TYPE_OUT, container.REQ_DEVICE_RESET, 0, self._ifnum, None, 1000)
            except usb.core.USBError as exc:
                if isinstance(_map_usb_error(exc, ""), ConnectionLost):
                    raise _map_usb_error(exc, "resetting") from exc
            self._wait_idle(2.0)
        for ep in (self._ep_in, self._ep_out):
            self._clear_halt(ep.bEndpointAddress)
        self._drain()

    def _device_status(self) -> tuple[int, list[int]] | None:
        try:
            raw = bytes(self.device.ctrl_transfer(container.REQUEST_TYPE_IN,
                                                  container.REQ_GET_DEVICE_STATUS, 0, self._ifnum,
                                                  20, 1000))
        except usb.core.USBError as exc:
            mapped = _map_usb_error(exc, "getting device status")
            if isinstance(mapped, ConnectionLost):
                raise mapped from exc
            if isinstance(mapped, EndpointStalled):
                self._no_status_request = True   # a stall on endpoint 0: not implemented
            return None
        if len(raw) < 4:
            return None
        length, code = struct.unpack_from("<HH", raw)
        end = min(len(raw), max(4, length))
        eps = [struct.unpack_from("<I", raw, off)[0] & 0xFF for off in range(4, end - 3, 4)]
        return code, eps

    def _wait_idle(self, limit: float) -> bool:
        """Poll GetDeviceStatus until OK.  A device without that request is taken as idle
        after the cancel request (nothing better can be known)."""
        deadline = time.monotonic() + limit
        while True:
            if self._no_status_request:
                return True
            status = self._device_status()
            if status is not None:
                code, stalled = status
                for ep in stalled:
                    self._clear_halt(ep)
                if code == RC.OK:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _clear_halt(self, ep: int) -> None:
        try:
            self.device.clear_halt(ep)
        except usb.core.USBError as exc:
            if isinstance(_map_usb_error(exc, ""), ConnectionLost):
                raise _map_usb_error(exc, "clearing halt") from exc
        except NotImplementedError:
            pass

    def _drain(self) -> None:
        """Discard whatever the device still had queued on bulk IN."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                n = self.device.read(self._ep_in, self._in_buffer(CHUNK_SIZE), 20)
            except usb.core.USBError as exc:
                if _is_timeout(exc):
                    return
                mapped = _map_usb_error(exc, "draining")
                if isinstance(mapped, ConnectionLost):
                    raise mapped from exc
                return
            if not n:
                return

    # ---------------------------------------------------------------- close
    def close(self) -> None:
        """Release the interface and the device handle.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._claimed:
            try:
                usb.util.release_interface(self.device, self._ifnum)
            except (usb.core.USBError, NotImplementedError, ValueError):
                pass
        self._dispose()


def fresh_libusb_backend() -> Any | None:
    """A pyusb libusb-1.0 backend with a context of its own (``None`` if libusb is missing).

    pyusb shares one libusb context per process, and that context's device list
    follows hotplug notifications from the udev daemon.  Where none runs
    (containers, minimal systems, the test guest) a device plugged in after the
    first scan never appears there; a new context scans the bus afresh.  Free an
    unused one with :func:`release_libusb_backend`.
    """
    import usb.backend.libusb1 as libusb1

    if libusb1.get_backend() is None:
        return None
    try:
        return libusb1._LibUSB(libusb1._lib)  # pyusb has no public constructor for this
    except Exception:  # noqa: BLE001 - the caller falls back to the shared context
        return None


def release_libusb_backend(backend: Any) -> None:
    """Free a context made by :func:`fresh_libusb_backend` that opened nothing."""
    ctx = getattr(backend, "ctx", None)
    if ctx is not None and getattr(ctx, "value", None):
        backend.lib.libusb_exit(ctx)
        backend.ctx = None
