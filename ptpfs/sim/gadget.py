"""The simulated camera as a real USB device: a FunctionFS function (``ptpctl serve --usb-gadget``).

On Linux, a configfs gadget with an ``ffs.NAME`` function and ``mount -t functionfs NAME DIR``
give user space ``DIR/ep0``; :class:`GadgetServer` writes the function's descriptors and strings
there (FunctionFS v2: full and high speed, one interface with bulk IN, bulk OUT and interrupt
IN, the profile's interface class — still image 6/1/1, or vendor-specific with the string
"MTP" for ``android-mtp``), answers the PTP class requests that arrive as ep0 SETUP events
(Cancel 0x64, Device Reset 0x66, Get Device Status 0x67) and pumps the bulk and interrupt
endpoints ``ep1`` (IN), ``ep2`` (OUT), ``ep3`` (interrupt IN).

The protocol side is :class:`ptpfs.sim.usb_backend.SimUsbDevice`, the same byte pump the pyusb
backend uses (and through it the one transaction machine): bytes read from ``ep2`` are fed to its
``bulk_write`` as they arrive, its ``bulk_read`` gives each IN transfer (never spanning two
containers), and a container that ends on a packet boundary is followed by a zero-length write.
A container that breaks the transaction sequence stalls ``ep2``, as a camera does.  The device's
identity in the gadget (vendor/product IDs, strings) is set in configfs by whoever builds the
gadget — :func:`configfs_identity` gives the values for the profile (``tools/usb-vm/usb-vm
--sim-gadget`` uses it).
"""

from __future__ import annotations

import array
import errno
import logging
import os
import struct
import threading
from pathlib import Path
from typing import Any

import usb.core

from ptpfs.sim.usb_backend import EP_IN, EP_OUT, PACKET_SIZE, SimUsbDevice, usb_identity

__all__ = ["GadgetServer", "configfs_identity", "descriptors", "strings"]

_log = logging.getLogger(__name__)

# linux/usb/functionfs.h
_DESCRIPTORS_MAGIC_V2 = 3
_STRINGS_MAGIC = 2
_HAS_FS_DESC, _HAS_HS_DESC = 1, 2
_EVENT_SIZE = 12
_EV_BIND, _EV_UNBIND, _EV_ENABLE, _EV_DISABLE, _EV_SETUP = 0, 1, 2, 3, 4
_EVENT_NAMES = {0: "BIND", 1: "UNBIND", 2: "ENABLE", 3: "DISABLE", 4: "SETUP", 5: "SUSPEND",
                6: "RESUME"}

_FS_BULK, _HS_BULK, _INT_PACKET = 64, PACKET_SIZE, 64
#: Bytes asked of the simulated device per IN transfer (a multiple of every packet size).
IN_TRANSFER = 64 * 1024
#: Bytes read from ep2 per OUT request; a short packet or a zero-length packet ends it early.
OUT_TRANSFER = 64 * 1024
_POLL_MS = 500
#: The PTP still-image class requests (bmRequestType, bRequest): Cancel, Device Reset,
#: Get Device Status.
_CLASS_REQUESTS = {(0x21, 0x64), (0x21, 0x66), (0xA1, 0x67)}


def _interface(cls: int, sub: int, proto: int) -> bytes:
    return struct.pack("<BBBBBBBBB", 9, 4, 0, 0, 3, cls, sub, proto, 1)


def _endpoint(address: int, attributes: int, size: int, interval: int) -> bytes:
    return struct.pack("<BBBBHB", 7, 5, address, attributes, size, interval)


def descriptors(interface_class: tuple[int, int, int]) -> bytes:
    """The FunctionFS v2 descriptor block: full- and high-speed copies of one interface with
    bulk IN (ep1), bulk OUT (ep2) and interrupt IN (ep3)."""
    def speed(bulk: int, interval: int) -> bytes:
        return (_interface(*interface_class) + _endpoint(EP_IN, 2, bulk, 0)
                + _endpoint(EP_OUT, 2, bulk, 0) + _endpoint(0x83, 3, _INT_PACKET, interval))

    body = speed(_FS_BULK, 10) + speed(_HS_BULK, 6)
    return struct.pack("<IIIII", _DESCRIPTORS_MAGIC_V2, 20 + len(body),
                       _HAS_FS_DESC | _HAS_HS_DESC, 4, 4) + body


def strings(label: str) -> bytes:
    """The FunctionFS string block: the interface string (``iInterface`` 1) in US English."""
    body = struct.pack("<H", 0x0409) + label.encode() + b"\0"
    return struct.pack("<IIII", _STRINGS_MAGIC, 16 + len(body), 1, 1) + body


def configfs_identity(profile: str) -> dict[str, str]:
    """The configfs gadget attributes for *profile*: ``idVendor``, ``idProduct``,
    ``manufacturer``, ``product``, ``serialnumber`` (as written to the configfs files)."""
    from ptpfs.sim.profiles import get_profile

    info = get_profile(profile)
    ident = usb_identity(_ProfileOnly(info))
    return {"idVendor": f"0x{ident.vendor_id:04x}", "idProduct": f"0x{ident.product_id:04x}",
            "manufacturer": ident.manufacturer, "product": ident.product,
            "serialnumber": info.serial_number}


class _ProfileOnly:
    """Enough of a camera for :func:`usb_identity`."""

    def __init__(self, profile: Any) -> None:
        self.profile = profile


class GadgetServer:
    """Serve *camera* on the FunctionFS instance mounted at *ffs_dir* (until :meth:`stop`)."""

    def __init__(self, camera: Any, ffs_dir: str | os.PathLike[str]) -> None:
        self.camera = camera
        self.ffs_dir = Path(ffs_dir)
        self.device = SimUsbDevice(camera, bus=0, address=0)
        self.identity = usb_identity(camera)
        self.enabled = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ep0 = -1
        self._eps: dict[str, int] = {}
        #: Counters for tests and ``--debug``: ep0 events by name, bytes each way, stalls.
        self.events: dict[str, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.stalls = 0

    # ------------------------------------------------------------- life cycle
    def start(self) -> None:
        """Write the descriptors and strings to ep0 and start the pumps; raises ``OSError``
        with a clear message when *ffs_dir* is no FunctionFS mount or is already in use."""
        ep0 = self.ffs_dir / "ep0"
        try:
            self._ep0 = os.open(ep0, os.O_RDWR)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot open ({exc.strerror}); is a FunctionFS "
                                     "instance mounted there?", str(ep0)) from None
        try:
            os.write(self._ep0, descriptors(self.identity.interface_class))
            os.write(self._ep0, strings(self.identity.interface_label))
        except OSError as exc:
            os.close(self._ep0)
            self._ep0 = -1
            raise OSError(exc.errno, f"FunctionFS refused the descriptors ({exc.strerror}); "
                                     "is another server using it?", str(ep0)) from None
        self.serve(self._ep0, {name: os.open(self.ffs_dir / name, os.O_RDWR)
                               for name in ("ep1", "ep2", "ep3")})

    def serve(self, ep0: int, eps: dict[str, int]) -> None:
        """Start the pumps on open endpoint files: *ep0* (descriptors already written) and
        ``ep1``/``ep2``/``ep3`` in *eps*.  :meth:`start` calls it; tests pass socket pairs."""
        self._ep0 = ep0
        self._eps = dict(eps)
        for target, name in ((self._ep0_loop, "ep0"), (self._in_loop, "bulk-in"),
                             (self._out_loop, "bulk-out"), (self._intr_loop, "intr-in")):
            thread = threading.Thread(target=target, name=f"gadget-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving: close the endpoint files (the gadget disappears from the bus)."""
        self._stop.set()
        self.device.detach()
        for fd in [*self._eps.values(), self._ep0]:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._eps.clear()
        self._ep0 = -1

    # ------------------------------------------------------------- ep0
    def _ep0_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw = os.read(self._ep0, _EVENT_SIZE * 4)
            except OSError as exc:
                if self._stop.is_set() or exc.errno == errno.EBADF:
                    return
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                _log.warning("gadget: reading ep0 failed: %s", exc)
                self._stop.wait(0.1)
                continue
            for off in range(0, len(raw) - _EVENT_SIZE + 1, _EVENT_SIZE):
                self._event(raw[off:off + _EVENT_SIZE])

    def _event(self, raw: bytes) -> None:
        rtype, request, value, index, length, kind = struct.unpack_from("<BBHHHB", raw)
        name = _EVENT_NAMES.get(kind, f"event{kind}")
        self.events[name] = self.events.get(name, 0) + 1
        _log.debug("gadget: ep0 %s", name)
        if kind == _EV_ENABLE:
            self._host_changed()
            self.enabled.set()
        elif kind in (_EV_DISABLE, _EV_UNBIND):
            self.enabled.clear()
            self._host_changed()
        elif kind == _EV_SETUP:
            self._setup(rtype, request, value, index, length)

    def _host_changed(self) -> None:
        """A new (or no) host: forget the session and anything in flight."""
        try:
            self.device.reset()
        except usb.core.USBError:
            pass

    def _setup(self, rtype: int, request: int, value: int, index: int, length: int) -> None:
        """A class request on the interface: run it on the simulated device, answer or stall.

        Requests the device does not know are stalled before any data stage; a known one
        whose data the device then refuses (a malformed Cancel) is only logged, as its data
        stage has already been acknowledged."""
        ep0 = self._ep0
        try:
            if (rtype, request) not in _CLASS_REQUESTS:
                raise usb.core.USBError("unsupported control request", None, errno.EPIPE)
            if rtype & 0x80:
                buf = array.array("B", bytes(length))
                n = self.device.control(rtype, request, value, index, buf)
                os.write(ep0, buf.tobytes()[:n])
                return
            data = os.read(ep0, length) if length else b""
        except usb.core.USBError as exc:
            self._stall_ep0(rtype, request, exc)
            return
        except OSError as exc:
            _log.debug("gadget: control request %#04x/%#04x: %s", rtype, request, exc)
            return
        if not length:
            try:           # no data stage: reading nothing acknowledges the status stage
                os.read(ep0, 0)
            except OSError as exc:
                _log.debug("gadget: control request %#04x/%#04x: %s", rtype, request, exc)
        try:
            self.device.control(rtype, request, value, index,
                                array.array("B", data) if length else None)
        except usb.core.USBError as exc:
            _log.info("gadget: control request %#04x/%#04x refused after its data: %s",
                      rtype, request, exc)

    def _stall_ep0(self, rtype: int, request: int, exc: BaseException) -> None:
        _log.debug("gadget: stalling control request %#04x/%#04x: %s", rtype, request, exc)
        self.stalls += 1
        try:   # the opposite direction stalls ep0 (linux/usb/functionfs.h)
            if rtype & 0x80:
                os.read(self._ep0, 0)
            else:
                os.write(self._ep0, b"")
        except OSError:
            pass

    # ------------------------------------------------------------- bulk and interrupt
    def _wait_enabled(self) -> bool:
        while not self._stop.is_set():
            if self.enabled.wait(0.5):
                return True
        return False

    def _endpoint_failed(self, where: str, exc: OSError) -> None:
        """A transfer failed (host gone, endpoint disabled): drop what was in flight."""
        if self._stop.is_set():
            return
        _log.debug("gadget: %s: %s", where, exc)
        if exc.errno in (errno.ESHUTDOWN, errno.ECONNRESET, errno.EBADF) or not self.enabled.is_set():
            self.enabled.clear()
        self._stop.wait(0.05)

    def _in_loop(self) -> None:
        buf = array.array("B", bytes(IN_TRANSFER))
        while self._wait_enabled():
            try:
                n = self.device.bulk_read(EP_IN, buf, _POLL_MS)
            except usb.core.USBTimeoutError:
                continue
            except usb.core.USBError as exc:
                if exc.errno == errno.ENODEV:
                    self._stop.wait(0.5)    # a dropped link: the device stays silent
                continue
            chunk = memoryview(buf)[:n]
            try:
                os.write(self._eps["ep1"], chunk)
                self.bytes_in += n
                # A read that came back short ended its container; on a packet boundary the
                # host sees the end only from a zero-length packet.  (A full read that ended
                # one exactly gets the ZLP as the device's next, empty, transfer.)
                if 0 < n < IN_TRANSFER and n % PACKET_SIZE == 0:
                    os.write(self._eps["ep1"], b"")
            except (OSError, KeyError) as exc:
                if isinstance(exc, OSError):
                    self._endpoint_failed("bulk IN", exc)

    def _out_loop(self) -> None:
        while self._wait_enabled():
            try:
                data = os.read(self._eps["ep2"], OUT_TRANSFER)
            except (OSError, KeyError) as exc:
                if isinstance(exc, OSError):
                    self._endpoint_failed("bulk OUT", exc)
                continue
            self.bytes_out += len(data)
            try:
                self.device.bulk_write(EP_OUT, array.array("B", data), 0)
            except usb.core.USBError as exc:
                if exc.errno != errno.EPIPE:
                    continue
                # A container that breaks the sequence: stall ep2 for real (writing to an OUT
                # endpoint halts it); the kernel clears the halt when the host asks.
                self.stalls += 1
                try:
                    os.write(self._eps["ep2"], b"")
                except OSError:
                    pass
                self.device.clear_halt(EP_OUT)

    def _intr_loop(self) -> None:
        buf = array.array("B", bytes(_INT_PACKET))
        while self._wait_enabled():
            try:
                n = self.device.intr_read(buf, _POLL_MS)
            except usb.core.USBError:
                continue
            try:
                os.write(self._eps["ep3"], memoryview(buf)[:n])
            except (OSError, KeyError) as exc:
                if isinstance(exc, OSError):
                    self._endpoint_failed("interrupt IN", exc)


def main(argv: list[str] | None = None) -> int:
    """``python3 -m ptpfs.sim.gadget --identity PROFILE``: the configfs attributes, one
    ``NAME=VALUE`` a line (for scripts that build the gadget)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--identity":
        print("usage: python3 -m ptpfs.sim.gadget --identity PROFILE", file=sys.stderr)
        return 2
    try:
        identity = configfs_identity(args[1])
    except (KeyError, ValueError) as exc:
        print(f"ptpfs.sim.gadget: {exc}", file=sys.stderr)
        return 2
    for key, value in identity.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
