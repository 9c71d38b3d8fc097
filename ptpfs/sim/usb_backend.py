"""A pyusb backend that presents simulated cameras as USB still-image devices.

``usb.core.find(backend=SimUsbBackend([camera]))`` finds the camera, and the
real :mod:`ptpfs.transport.usb` code talks to it exactly as to hardware:
containers are parsed from bulk writes (a data phase is streamed into the
camera's ``DataReceiver`` as it arrives, across any number of writes), replies
are served lazily to bulk reads (large objects stream from ``Reply.data``),
events from ``camera.subscribe`` arrive on the interrupt endpoint, and the
class requests on endpoint 0 (Cancel, Get Device Status, Device Reset) and
the standard string descriptors behave like a device's.

USB semantics kept: a bulk IN transfer never spans two containers; a container
that is an exact multiple of wMaxPacketSize (512) is terminated by a
zero-length packet (which a read of exactly the remaining size leaves pending);
a read request that is not a multiple of the packet size and too small for the
data overflows.  The camera's link model paces the bytes, its faults apply:
``drop_after`` makes the device vanish (every call raises ``USBError`` with
``errno.ENODEV``, as after an unplug) and ``stall`` makes bulk reads block
until their timeout and raise ``USBTimeoutError``.  For protocol-error tests
:meth:`SimUsbDevice.inject` corrupts the next response container.

The transaction sequence (a command, data only for operations that take it,
the data header's transaction ID, a known or short-packet-ended length) is
checked by :class:`ptpfs.protocol.transaction.Transaction` in the responder
role; a container that breaks it stalls the OUT pipe, as a device does.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import errno
import logging
import struct
import threading
import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from ptpfs.errors import ProtocolError
from ptpfs.protocol import container
from ptpfs.protocol.codes import EC, RC
from ptpfs.protocol.messages import DATA_OUT, NO_DATA, Event, Request
from ptpfs.protocol.transaction import (
    RESPONDER,
    Cancel,
    Command,
    DataChunk,
    DataEnd,
    DataStart,
    Response,
    Transaction,
    usb_container_event,
)

__all__ = ["SimUsbBackend", "SimUsbDevice", "UsbIdentity", "PACKET_SIZE", "usb_identity"]

_log = logging.getLogger(__name__)

PACKET_SIZE = 512
EP_OUT, EP_IN, EP_INT = 0x02, 0x81, 0x83
_INT_PACKET = 64

@dataclasses.dataclass(frozen=True)
class UsbIdentity:
    """How a profile looks on the bus: IDs, strings and the interface class triple."""

    vendor_id: int
    product_id: int
    manufacturer: str
    product: str
    interface_class: tuple[int, int, int]
    interface_label: str


_IDENTITIES = {
    "canon-eos": UsbIdentity(0x04A9, 0x32F5, "Canon Inc.", "Canon Digital Camera", (6, 1, 1),
                             "PTP"),
    "android-mtp": UsbIdentity(0x18D1, 0x4EE1, "Google", "Pixel", (0xFF, 0xFF, 0x00), "MTP"),
    "generic": UsbIdentity(0x1D6B, 0x0150, "ptpfs", "Simulated Camera", (6, 1, 1), "PTP"),
}


def usb_identity(camera: Any) -> UsbIdentity:
    """The USB identity of *camera*'s profile (Canon's vendor ID and an EOS R6 product for
    ``canon-eos``, a Pixel in MTP mode for ``android-mtp``, a generic still-image device
    otherwise), with the manufacturer and product strings of the profile's DeviceInfo."""
    ident = _IDENTITIES.get(_profile_name(camera), _IDENTITIES["generic"])
    info = getattr(camera, "profile", None)
    if info is not None and not isinstance(info, str):
        ident = dataclasses.replace(
            ident, manufacturer=getattr(info, "manufacturer", None) or ident.manufacturer,
            product=getattr(info, "model", None) or ident.product)
    return ident


def _usb_error(code: int, message: str) -> usb.core.USBError:
    libusb = {errno.ENODEV: -4, errno.EPIPE: -9, errno.EBUSY: -6, errno.EACCES: -3,
              errno.EOVERFLOW: -8, errno.EINVAL: -2}.get(code, -99)
    return usb.core.USBError(message, libusb, code)


def _timeout_error() -> usb.core.USBTimeoutError:
    return usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)


def _profile_name(camera: Any) -> str:
    profile = getattr(camera, "profile", "generic")
    if not isinstance(profile, str):
        profile = getattr(profile, "name", None) or "generic"
    return profile


class _Outgoing:
    """One container queued for bulk IN: header bytes, then a lazily read payload."""

    def __init__(self, header: bytes, source: Any = None, length: int = 0) -> None:
        self.header = header
        self.source = source
        self.length = length            # payload bytes
        self.total = len(header) + length
        self.sent = 0
        self.short = False              # source ended early: container is cut short

    @property
    def remaining(self) -> int:
        return 0 if self.short else self.total - self.sent

    def take(self, n: int) -> bytes:
        """Up to *n* next bytes of the container."""
        out = b""
        if self.sent < len(self.header):
            out = self.header[self.sent:self.sent + n]
            self.sent += len(out)
            n -= len(out)
        while n > 0 and self.remaining > 0:
            piece = self.source.read(min(n, self.remaining))
            if not piece:
                self.short = True
                break
            out += piece
            self.sent += len(piece)
            n -= len(piece)
        return out


class SimUsbDevice:
    """One simulated camera as seen on the bus (descriptors plus device-side state)."""

    def __init__(self, camera: Any, bus: int, address: int, *, serial: str | None = None) -> None:
        self.camera = camera
        self.bus = bus
        self.address = address
        ident = usb_identity(camera)
        self.vendor_id, self.product_id = ident.vendor_id, ident.product_id
        self.interface_class = ident.interface_class
        info = getattr(camera, "profile", None)
        if info is not None and not isinstance(info, str):
            serial = serial or getattr(info, "serial_number", None)
        self.strings = {1: ident.manufacturer, 2: ident.product,
                        3: serial or f"SIM{bus:03d}{address:03d}", 4: ident.interface_label}
        # Host-visible switches for tests.
        self.kernel_driver_active = False
        self.claimed_elsewhere = False
        self.access_denied = False
        #: Data containers with at least this many payload bytes carry the length field
        #: 0xFFFFFFFF (read until a short packet).  Real devices do so above 4 GiB; tests
        #: lower it to exercise that path with small objects.
        self.unknown_length_from = container.LENGTH_UNKNOWN - container.HEADER_SIZE
        # Counters for tests.
        self.zlps_received = 0
        self.zlps_sent = 0
        self.cancels = 0
        self.resets = 0
        self.detaches = 0
        self.gone = False
        self._lock = threading.RLock()
        self._in_cond = threading.Condition(self._lock)
        self._events: collections.deque[Event] = collections.deque(maxlen=256)
        self._ev_cond = threading.Condition()
        self._injected: str | None = None
        self.responder = self._new_responder()
        self._reset_state()
        self._unsubscribe = camera.subscribe(self._on_event)

    # ------------------------------------------------------------- descriptors
    def device_descriptor(self) -> SimpleNamespace:
        return SimpleNamespace(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=self.vendor_id,
            idProduct=self.product_id, bcdDevice=0x0100, iManufacturer=1, iProduct=2,
            iSerialNumber=3, bNumConfigurations=1, address=self.address, bus=self.bus,
            port_number=self.address, port_numbers=(self.address,), speed=3)

    @staticmethod
    def configuration_descriptor() -> SimpleNamespace:
        return SimpleNamespace(bLength=9, bDescriptorType=2, wTotalLength=9 + 9 + 3 * 7,
                               bNumInterfaces=1, bConfigurationValue=1, iConfiguration=0,
                               bmAttributes=0xC0, bMaxPower=50, extra_descriptors=[])

    def interface_descriptor(self) -> SimpleNamespace:
        cls, sub, proto = self.interface_class
        return SimpleNamespace(bLength=9, bDescriptorType=4, bInterfaceNumber=0,
                               bAlternateSetting=0, bNumEndpoints=3, bInterfaceClass=cls,
                               bInterfaceSubClass=sub, bInterfaceProtocol=proto, iInterface=4,
                               extra_descriptors=[])

    @staticmethod
    def endpoint_descriptor(index: int) -> SimpleNamespace:
        address, attributes, size, interval = [(EP_IN, 2, PACKET_SIZE, 0),
                                               (EP_OUT, 2, PACKET_SIZE, 0),
                                               (EP_INT, 3, _INT_PACKET, 6)][index]
        return SimpleNamespace(bLength=7, bDescriptorType=5, bEndpointAddress=address,
                               bmAttributes=attributes, wMaxPacketSize=size, bInterval=interval,
                               bRefresh=0, bSynchAddress=0, extra_descriptors=[])

    # ------------------------------------------------------------- test hooks
    def inject(self, fault: str | None) -> None:
        """Corrupt the next response container: ``"tid"`` (wrong transaction ID),
        ``"garbage"`` (bytes that are no container), ``"type"`` (an event container
        where the response belongs); ``None`` disarms."""
        if fault not in (None, "tid", "garbage", "type"):
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._injected = fault

    def halt(self, ep: int = EP_IN) -> None:
        """Stall endpoint *ep* as a device does when it refuses a transfer."""
        with self._lock:
            self._halted.add(ep)

    def unplug(self) -> None:
        """Make the device vanish (as if the cable was pulled)."""
        with self._lock:
            self.gone = True
            self._abort()
            self._in_cond.notify_all()
        with self._ev_cond:
            self._ev_cond.notify_all()

    def detach(self) -> None:
        """Stop listening to the camera's events (backend shutdown)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------- state
    def _new_responder(self) -> Any:
        """A connection with its own session (closed again by a device reset)."""
        make = getattr(self.camera, "connection", None)
        return make() if callable(make) else self.camera

    def _power_cycle(self) -> None:
        """Device Reset: abort everything and forget the session."""
        self._abort()
        self._halted.clear()
        close = getattr(self.responder, "close", None)
        if self.responder is not self.camera and callable(close):
            close()
            self.responder = self._new_responder()

    def _reset_state(self) -> None:
        self._outbuf = bytearray()          # incomplete command / data header
        self._machine = Transaction(RESPONDER)
        self._request: Request | None = None
        self._receiver: Any = None
        self._queue: collections.deque[_Outgoing] = collections.deque()
        self._zlp_pending = False
        self._halted: set[int] = set()
        self._status_busy = 0

    def _check_alive(self) -> None:
        if self.gone:
            raise _usb_error(errno.ENODEV, "No such device (it may have been disconnected)")

    def _account(self, n: int) -> None:
        """Apply the camera's drop fault and link pacing to *n* bytes."""
        from ptpfs.sim.faults import LinkDropped

        try:
            self.camera.faults.consume(n)
        except LinkDropped:
            self.unplug()
            raise _usb_error(errno.ENODEV, "No such device (it may have been disconnected)") from None
        self.camera.link.pace(n)

    # ------------------------------------------------------------- events
    def _on_event(self, event: Event) -> None:
        with self._ev_cond:
            self._events.append(event)
            self._ev_cond.notify_all()

    def intr_read(self, buff: array.array[int], timeout_ms: int) -> int:
        deadline = None if timeout_ms == 0 else time.monotonic() + timeout_ms / 1000
        with self._ev_cond:
            while not self._events:
                self._check_alive()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _timeout_error()
                self._ev_cond.wait(left)
            self._check_alive()
            event = self._events.popleft()
        data = container.encode_event(event.code, event.transaction_id, tuple(event.params))
        if len(data) > len(buff) * buff.itemsize:
            raise _usb_error(errno.EOVERFLOW, "Overflow")
        memoryview(buff).cast("B")[:len(data)] = data
        return len(data)

    # ------------------------------------------------------------- bulk OUT
    def bulk_write(self, ep: int, data: array.array[int], timeout_ms: int) -> int:
        with self._lock:
            self._check_alive()
            if ep in self._halted:
                raise _usb_error(errno.EPIPE, "Pipe error")
            view = memoryview(data).cast("B")
            n = len(view)
            self._account(n)
            if n == 0:
                self.zlps_received += 1
                if self._machine.in_data_phase and self._machine.data_remaining is None:
                    self._end_data()
                return 0
            pos = 0
            while pos < n:
                pos += self._consume(view[pos:])
            machine = self._machine
            if machine.in_data_phase and machine.data_remaining is None and n % PACKET_SIZE:
                self._end_data()       # a short packet ends a data phase of unknown length
            return n

    def _consume(self, view: memoryview) -> int:
        """Feed bytes to the OUT side of the transaction machine; returns how many it took."""
        hs = container.HEADER_SIZE
        machine = self._machine
        if machine.in_data_phase:
            remaining = machine.data_remaining
            take = len(view) if remaining is None else min(remaining, len(view))
            self._receiver.write(bytes(view[:take]))
            machine.receive(DataChunk(take))
            if not machine.in_data_phase:
                self._finish_data()
            return take
        # idle or awaiting a data header: collect a header, then the rest of a command.
        need = hs - len(self._outbuf)
        if need > 0:
            take = min(need, len(view))
            self._outbuf += view[:take]
            if len(self._outbuf) < hs:
                return take
            used = take
        else:
            used = 0
        if not machine.idle:
            self._stall_unless(lambda: self._start_data(
                usb_container_event(self._outbuf[:hs])))
            return used
        try:
            length = container.parse_header(bytes(self._outbuf[:hs])).length
        except ProtocolError:
            length = 0
        if not hs <= length <= hs + 4 * container.MAX_PARAMS:
            self._stall_unless(None)
        want = length - len(self._outbuf)
        take = min(want, len(view) - used)
        self._outbuf += view[used:used + take]
        used += take
        if len(self._outbuf) == length:
            raw, self._outbuf = bytes(self._outbuf), bytearray()
            self._stall_unless(lambda: self._command(usb_container_event(raw)))
        return used

    def _stall_unless(self, step: Any) -> None:
        """Run *step*; if it (or the container) breaks the transaction sequence, stall the
        OUT pipe as a real device does on a malformed container."""
        try:
            if step is not None:
                step()
                return
        except ProtocolError:
            pass
        self._outbuf = bytearray()
        self._machine.reset()
        self._request = None
        self._halted.add(EP_OUT)
        raise _usb_error(errno.EPIPE, "Pipe error (malformed container)")

    def _command(self, event: Any) -> None:
        if not isinstance(event, Command):
            raise ProtocolError("not a command")
        camera = self.responder
        takes = camera.takes_data(event.code)
        self._machine.receive(dataclasses.replace(event, direction=DATA_OUT if takes else NO_DATA))
        request = Request(event.code, event.transaction_id, event.params)
        if takes:
            self._request = request
            return
        try:
            reply = camera.command(request)
        except Exception:  # noqa: BLE001 - a simulator bug must not wedge the bus
            _log.exception("simulated camera failed on %r", request)
            self._queue_reply(request, None)
            return
        self._queue_reply(request, reply)

    def _start_data(self, event: Any) -> None:
        request = self._request
        assert request is not None
        self._machine.receive(event)          # a data header for this transaction
        self._outbuf = bytearray()
        length = self._machine.data_length
        try:
            self._receiver = self.responder.begin_data(
                request, container.LENGTH_UNKNOWN if length is None else length)
        except Exception:  # noqa: BLE001 - a simulator bug must not wedge the bus
            _log.exception("simulated camera failed on %r", request)
            self._receiver = _Discard()
        if not self._machine.in_data_phase:
            self._finish_data()

    def _end_data(self) -> None:
        self._machine.receive(DataEnd())
        self._finish_data()

    def _finish_data(self) -> None:
        request, receiver = self._request, self._receiver
        self._request, self._receiver = None, None
        try:
            reply = receiver.finish()
        except Exception:  # noqa: BLE001 - a simulator bug must not wedge the bus
            _log.exception("simulated camera failed finishing %r", request)
            reply = None
        assert request is not None
        self._queue_reply(request, reply)

    def _queue_reply(self, request: Request, reply: Any) -> None:
        tid = request.transaction_id
        if reply is None:
            code, params, data = RC.GeneralError, (), None
        else:
            code, params, data = reply.code, tuple(reply.params), reply.data
        machine = self._machine
        if data is not None:
            header = container.encode_header(container.TYPE_DATA, request.code, tid, data.length)
            unknown = data.length >= self.unknown_length_from
            if unknown:
                header = struct.pack("<I", container.LENGTH_UNKNOWN) + header[4:]
            machine.send(DataStart(tid, None if unknown else data.length))
            machine.send(DataChunk(data.length))
            machine.send(DataEnd())
            self._queue.append(_Outgoing(header, data, data.length))
        fault, self._injected = self._injected, None
        if fault is None:
            machine.send(Response(code, tid, params))
        else:
            machine.reset()        # an injected fault breaks the sequence on purpose
        if fault == "tid":
            response = container.encode_response(code, (tid + 7) & 0xFFFFFFFF, params)
        elif fault == "garbage":
            response = b"\x07\x00\x00\x00junk\xff\xff\xff\xff"
        elif fault == "type":
            response = container.encode_event(code, tid, params)
        else:
            response = container.encode_response(code, tid, params)
        self._queue.append(_Outgoing(response))
        self._in_cond.notify_all()

    # ------------------------------------------------------------- bulk IN
    def bulk_read(self, ep: int, buff: array.array[int], timeout_ms: int) -> int:
        timeout_s = None if timeout_ms == 0 else timeout_ms / 1000
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self.camera.faults.wait_while_stalled(timeout_s):
            raise _timeout_error()
        with self._lock:
            self._check_alive()
            if ep in self._halted:
                raise _usb_error(errno.EPIPE, "Pipe error")
            while not self._queue and not self._zlp_pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _timeout_error()
                self._in_cond.wait(left)
                self._check_alive()
            if self._zlp_pending:
                self._zlp_pending = False
                self.zlps_sent += 1
                return 0
            current = self._queue[0]
            size = len(buff) * buff.itemsize
            if size % PACKET_SIZE and current.remaining > size:
                raise _usb_error(errno.EOVERFLOW, "Overflow (read size not a multiple of "
                                 "wMaxPacketSize)")
            chunk = current.take(size)
            if current.remaining == 0:
                self._queue.popleft()
                if len(chunk) == size and current.sent % PACKET_SIZE == 0:
                    self._zlp_pending = True
                elif current.sent % PACKET_SIZE == 0:
                    self.zlps_sent += 1
            self._account(len(chunk))
            memoryview(buff).cast("B")[:len(chunk)] = chunk
            return len(chunk)

    # ------------------------------------------------------------- endpoint 0
    def control(self, request_type: int, request: int, value: int, index: int,
                data: array.array[int] | None) -> int:
        with self._lock:
            self._check_alive()
            size = 0 if data is None else len(data) * data.itemsize
            if request_type == 0x80 and request == 0x06 and value >> 8 == 3:
                return self._write_ctrl(data, self._string_descriptor(value & 0xFF, index))
            if request_type == container.REQUEST_TYPE_OUT and request == container.REQ_CANCEL:
                raw = bytes(data) if data is not None else b""
                if len(raw) < 6 or struct.unpack_from("<H", raw)[0] != EC.CancelTransaction:
                    raise _usb_error(errno.EPIPE, "Pipe error (bad cancel request)")
                self.cancels += 1
                self._abort()
                self._status_busy = 1
                return size
            if request_type == container.REQUEST_TYPE_OUT and request == container.REQ_DEVICE_RESET:
                self.resets += 1
                self._power_cycle()
                return size
            if request_type == container.REQUEST_TYPE_IN and request == container.REQ_GET_DEVICE_STATUS:
                if self._status_busy:
                    self._status_busy -= 1
                    status = struct.pack("<HH", 4, RC.DeviceBusy)
                elif self._halted:
                    halted = sorted(self._halted)
                    status = struct.pack(f"<HH{len(halted)}I", 4 + 4 * len(halted),
                                         RC.TransactionCancelled, *halted)
                else:
                    status = struct.pack("<HH", 4, RC.OK)
                return self._write_ctrl(data, status)
            raise _usb_error(errno.EPIPE, "Pipe error (unsupported control request)")

    def _string_descriptor(self, index: int, langid: int) -> bytes:
        if index == 0:
            return bytes([4, 3, 0x09, 0x04])
        text = self.strings.get(index)
        if text is None:
            raise _usb_error(errno.EPIPE, "Pipe error (no such string)")
        encoded = text.encode("utf-16-le")[:252]
        return bytes([2 + len(encoded), 3]) + encoded

    @staticmethod
    def _write_ctrl(data: array.array[int] | None, payload: bytes) -> int:
        if data is None:
            return 0
        n = min(len(data) * data.itemsize, len(payload))
        memoryview(data).cast("B")[:n] = payload[:n]
        return n

    def _abort(self) -> None:
        """Drop the transaction in progress (Cancel / Device Reset)."""
        receiver = self._receiver
        abort = getattr(receiver, "abort", None)
        if callable(abort):
            try:
                abort()
            except Exception:  # noqa: BLE001 - logged; the bus goes on
                _log.exception("aborting the data phase failed")
        self._outbuf = bytearray()
        self._machine.receive(Cancel())
        self._request, self._receiver = None, None
        self._queue.clear()
        self._zlp_pending = False

    def clear_halt(self, ep: int) -> None:
        with self._lock:
            self._check_alive()
            self._halted.discard(ep)

    def reset(self) -> None:
        with self._lock:
            self._check_alive()
            self.resets += 1
            self._power_cycle()


class _Discard:
    """Receiver used when the camera refused to start a data phase."""

    def write(self, chunk: bytes) -> None:
        pass

    def finish(self) -> None:
        return None


class _Handle:
    def __init__(self, device: SimUsbDevice) -> None:
        self.device = device
        self.configuration = 1
        self.claimed: set[int] = set()


class SimUsbBackend(usb.backend.IBackend):
    """A pyusb ``IBackend`` serving simulated cameras: ``SimUsbBackend([camera, ...])``.

    Devices sit on bus 1 at addresses 4, 5, ...; ``backend.devices`` gives the
    :class:`SimUsbDevice` objects (fault switches, counters).
    """

    def __init__(self, cameras: Iterable[Any], *, bus: int = 1, first_address: int = 4,
                 serials: Iterable[str] | None = None) -> None:
        super().__init__()
        serial_list = list(serials) if serials is not None else []
        self.devices = [
            SimUsbDevice(cam, bus, first_address + i,
                         serial=serial_list[i] if i < len(serial_list) else None)
            for i, cam in enumerate(cameras)]

    def close(self) -> None:
        """Unsubscribe from every camera's events."""
        for dev in self.devices:
            dev.detach()

    # -- enumeration and descriptors
    def enumerate_devices(self) -> Iterable[SimUsbDevice]:
        return [d for d in self.devices if not d.gone]

    def get_parent(self, dev: SimUsbDevice) -> None:
        return None

    def get_device_descriptor(self, dev: SimUsbDevice) -> SimpleNamespace:
        return dev.device_descriptor()

    def get_configuration_descriptor(self, dev: SimUsbDevice, config: int) -> SimpleNamespace:
        if config != 0:
            raise IndexError("configuration index out of range")
        return dev.configuration_descriptor()

    def get_interface_descriptor(self, dev: SimUsbDevice, intf: int, alt: int,
                                 config: int) -> SimpleNamespace:
        if config != 0 or intf != 0 or alt != 0:
            raise IndexError("interface index out of range")
        return dev.interface_descriptor()

    def get_endpoint_descriptor(self, dev: SimUsbDevice, ep: int, intf: int, alt: int,
                                config: int) -> SimpleNamespace:
        if config != 0 or intf != 0 or alt != 0 or not 0 <= ep < 3:
            raise IndexError("endpoint index out of range")
        return dev.endpoint_descriptor(ep)

    # -- handles, configuration, interfaces
    def open_device(self, dev: SimUsbDevice) -> _Handle:
        dev._check_alive()
        if dev.access_denied:
            raise _usb_error(errno.EACCES, "Access denied (insufficient permissions)")
        return _Handle(dev)

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.claimed.clear()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        dev_handle.device._check_alive()
        if config_value not in (0, 1):
            raise _usb_error(errno.EINVAL, "Invalid configuration")
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        dev_handle.device._check_alive()
        return dev_handle.configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        dev_handle.device._check_alive()
        if intf != 0 or altsetting != 0:
            raise _usb_error(errno.EINVAL, "Invalid alternate setting")

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev = dev_handle.device
        dev._check_alive()
        if dev.kernel_driver_active or dev.claimed_elsewhere:
            raise _usb_error(errno.EBUSY, "Resource busy")
        dev_handle.claimed.add(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.device._check_alive()
        dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        dev_handle.device._check_alive()
        return dev_handle.device.kernel_driver_active

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        dev = dev_handle.device
        dev._check_alive()
        dev.kernel_driver_active = False
        dev.detaches += 1

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.device._check_alive()
        dev_handle.device.kernel_driver_active = True

    # -- transfers
    def _claimed(self, dev_handle: _Handle, intf: int) -> SimUsbDevice:
        if intf not in dev_handle.claimed:
            raise _usb_error(errno.EBUSY, "Interface not claimed")
        return dev_handle.device

    def bulk_write(self, dev_handle: _Handle, ep: int, intf: int, data: array.array[int],
                   timeout: int) -> int:
        return self._claimed(dev_handle, intf).bulk_write(ep, data, timeout)

    def bulk_read(self, dev_handle: _Handle, ep: int, intf: int, buff: array.array[int],
                  timeout: int) -> int:
        return self._claimed(dev_handle, intf).bulk_read(ep, buff, timeout)

    def intr_read(self, dev_handle: _Handle, ep: int, intf: int, buff: array.array[int],
                  timeout: int) -> int:
        return self._claimed(dev_handle, intf).intr_read(buff, timeout)

    def ctrl_transfer(self, dev_handle: _Handle, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: array.array[int], timeout: int) -> int:
        return dev_handle.device.control(bmRequestType, bRequest, wValue, wIndex, data)

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        dev_handle.device.clear_halt(ep)

    def reset_device(self, dev_handle: _Handle) -> None:
        dev_handle.device.reset()
