"""Device specifications: one string names a camera, one call opens it.

Spec grammar (the ``--device`` option of ``ptpctl`` and ``ptpfs``):

``usb``
    the first USB PTP/MTP device found.
``usb:BUS,DEV``
    the device at that bus and address (decimal, as ``lsusb`` prints them).
``usb:VVVV:PPPP``
    the first device with that vendor and product ID (hexadecimal).
``usb:SERIAL``
    the device with that serial number.
``ptpip:HOST[:PORT]``
    a PTP/IP camera (default port 15740); IPv6 addresses go in brackets,
    ``ptpip:[::1]:15740``.
``sim`` / ``sim:DIR``
    the simulated camera in this process, serving the sample content or the
    files under ``DIR``.  The simulator profile is chosen with the *profile*
    argument (``--profile`` on the command lines) or in the spec itself:
    ``sim?profile=canon-eos``, ``sim:DIR?profile=android-mtp``.  A profile in
    the spec wins over the argument.  ``uploads=1`` (or ``0``) makes the
    simulated camera accept (refuse) uploads whatever its profile's default
    (``canon-eos`` refuses them, as the real R6 does):
    ``sim:DIR?profile=canon-eos&uploads=1``.

Connection failures are reported as library exceptions: nothing at the
address (a refused PTP/IP connection, no matching USB device) raises
:class:`~ptpfs.errors.DeviceNotFound`; a peer that accepts and then drops or
stalls raises :class:`~ptpfs.errors.ConnectionLost` or
:class:`~ptpfs.errors.TransportTimeout`.

Testing aid: when the environment variable ``PTPFS_TEST_USB_SIM`` is set to a
simulator profile name (``generic``, ``canon-eos``, …, optionally with the
``sim`` spec's options: ``canon-eos?uploads=1``), ``usb`` specs are
served by the simulated camera through the simulated pyusb backend, so the
real USB transport code runs without hardware (``PTPFS_TEST_USB_SIM_ROOT``
optionally names the directory it serves).  The hook lives in
:mod:`ptpfs.testing.usb_sim`, which the source tree has and installations do not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ptpfs.errors import DeviceNotFound, InvalidValue, TransportError
from ptpfs.transport.usbspec import parse_usb_spec

#: Default TCP port of PTP/IP.
PTPIP_PORT = 15740
#: Simulator profile used when neither the spec nor the caller names one.
DEFAULT_PROFILE = "generic"
#: Environment variable that routes ``usb`` specs to the simulated USB backend
#: (the hook itself is :mod:`ptpfs.testing.usb_sim`); and the directory it serves.
USB_SIM_ENV = "PTPFS_TEST_USB_SIM"
USB_SIM_ROOT_ENV = "PTPFS_TEST_USB_SIM_ROOT"

_SIM_OPTIONS = frozenset({"profile", "uploads"})


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device specification (see the module docstring)."""

    kind: str                      # "usb", "ptpip" or "sim"
    usb: str = "usb"               # the USB selector as the USB transport takes it
    host: str = ""
    port: int = PTPIP_PORT
    root: str | None = None
    profile: str | None = None
    uploads: bool | None = None    # sim: accept uploads (None: the profile's default)

    def __str__(self) -> str:
        return describe_spec(self)


@dataclass(frozen=True)
class DeviceListing:
    """One line of ``--list-devices``: a spec that opens the device, and what it is."""

    spec: str
    description: str
    vendor_id: int | None = None
    product_id: int | None = None
    serial: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {"spec": self.spec, "description": self.description,
                "vendor_id": self.vendor_id, "product_id": self.product_id,
                "serial": self.serial}


def parse_spec(spec: str) -> DeviceSpec:
    """Parse a device spec string; raise :class:`InvalidValue` on bad syntax."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidValue("empty device spec (try usb, ptpip:HOST[:PORT] or sim[:DIR])")
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    lowered = kind.lower()
    if lowered == "sim" or lowered.startswith("sim?"):
        return _parse_sim(spec[3:])
    if lowered == "usb":
        return DeviceSpec("usb", usb=_parse_usb(rest) if sep else "usb")
    if lowered == "ptpip":
        if not sep or not rest:
            raise InvalidValue(f"bad device spec {spec!r}: expected ptpip:HOST[:PORT]")
        host, port = _parse_host_port(rest, PTPIP_PORT, what=f"device spec {spec!r}")
        return DeviceSpec("ptpip", host=host, port=port)
    raise InvalidValue(f"unknown device spec {spec!r} "
                       "(expected usb[:…], ptpip:HOST[:PORT] or sim[:DIR])")


def describe_spec(spec: DeviceSpec | str) -> str:
    """The canonical string for a spec (parsing it again gives the same spec)."""
    s = parse_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "usb":
        return s.usb
    if s.kind == "ptpip":
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"ptpip:{host}:{s.port}"
    text = "sim" if s.root is None else f"sim:{s.root}"
    query = ([f"profile={s.profile}"] if s.profile else []) + (
        [] if s.uploads is None else [f"uploads={int(s.uploads)}"])
    return f"{text}?{'&'.join(query)}" if query else text


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` / ``[V6]:PORT`` (also used by ``ptpctl serve --listen``)."""
    return _parse_host_port(text, default_port, what=repr(text))


def _parse_host_port(text: str, default_port: int, *, what: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d*))?", text)
    if not m:
        raise InvalidValue(f"bad address in {what}: expected HOST[:PORT]")
    host = m.group(1) or m.group(3)
    port_text = m.group(2) if m.group(1) else m.group(4)
    if port_text is None or port_text == "":
        if port_text == "":
            raise InvalidValue(f"bad address in {what}: empty port")
        return host, default_port
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise InvalidValue(f"bad port {port} in {what}")
    return host, port


def _parse_usb(rest: str) -> str:
    parse_usb_spec(f"usb:{rest}")  # validates; raises InvalidValue
    return f"usb:{rest}"


def _parse_sim(rest: str) -> DeviceSpec:
    # rest is what follows "sim": "", ":DIR", "?k=v", ":DIR?k=v"
    path, _, query = rest.partition("?")
    if path and not path.startswith(":"):
        raise InvalidValue(f"bad device spec 'sim{rest}': expected sim[:DIR][?profile=NAME]")
    root = path[1:] or None
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidValue(f"bad simulator options {query!r}: expected profile=NAME") from None
        for key, value in pairs:
            if key not in _SIM_OPTIONS:
                raise InvalidValue(f"unknown simulator option {key!r} (known: profile, uploads)")
            if not value:
                raise InvalidValue(f"empty simulator option {key!r}")
            if key == "uploads" and value not in ("0", "1"):
                raise InvalidValue(f"bad simulator option uploads={value!r}: expected 0 or 1")
            options[key] = value
    uploads = None if "uploads" not in options else options["uploads"] == "1"
    return DeviceSpec("sim", root=root, profile=options.get("profile"), uploads=uploads)


# --------------------------------------------------------------------------- opening

def open_transport(spec: str | DeviceSpec, *, usb_backend: Any = None,
                   profile: str | None = None, timeout: float | None = None,
                   min_rate: float | None = None) -> Any:
    """Open the transport a spec names, without opening a PTP session.

    *usb_backend* is a pyusb backend for ``usb`` specs (the simulated backend
    in tests); *profile* chooses the simulator profile for ``sim`` specs;
    *min_rate* (bytes/s) sets the transaction deadline of USB and PTP/IP
    transports (see ``docs/reliability.md``).
    """
    s = parse_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "sim":
        from ptpfs.transport.inprocess import InProcessTransport

        camera = _make_sim_camera(s.root, s.profile or profile or DEFAULT_PROFILE, s.uploads)
        if timeout is None:
            return InProcessTransport(camera, close_camera=True)
        return InProcessTransport(camera, timeout=timeout, close_camera=True)
    if s.kind == "usb":
        return _open_usb(s.usb, usb_backend, timeout, min_rate)
    return _open_ptpip(s.host, s.port, timeout, min_rate)


def open_session(spec: str | DeviceSpec, *, usb_backend: Any = None,
                 profile: str | None = None, timeout: float | None = None,
                 open: bool = True, reconnect: bool = False,
                 min_rate: float | None = None) -> Any:
    """Open the device a spec names and return a :class:`~ptpfs.session.Session`.

    The session is opened (OpenSession sent) unless ``open=False``; on any
    failure the transport is closed before the exception propagates.  With
    *reconnect* the session reopens the link by itself after it was lost
    (see :func:`reopener`).
    """
    from ptpfs.session import Session

    s = parse_spec(spec) if isinstance(spec, str) else spec
    transport = open_transport(s, usb_backend=usb_backend, profile=profile, timeout=timeout,
                               min_rate=min_rate)
    try:
        factory = reopener(s, transport, usb_backend=usb_backend, timeout=timeout,
                           min_rate=min_rate) if reconnect else None
        session = Session(transport, timeout=timeout, reopen=factory)
        if open:
            session.open()
    except BaseException:
        transport.close()
        raise
    return session


def default_reconnect(spec: str | DeviceSpec) -> bool:
    """Whether ptpfs reconnects by default: yes for USB and PTP/IP, no for the
    in-process simulator (whose links only break when a test breaks them)."""
    s = parse_spec(spec) if isinstance(spec, str) else spec
    return s.kind in ("usb", "ptpip")


class _SimReopener:
    """Reconnects to the same in-process simulated camera (unless it is
    "unplugged": ``camera.faults.present`` false) and owns the camera from
    then on, closing it with the session."""

    def __init__(self, transport: Any) -> None:
        self.camera = transport.camera
        self.timeout = transport.timeout
        self._owns = bool(getattr(transport, "_close_camera", False))
        transport._close_camera = False     # the camera outlives this first link

    def __call__(self) -> Any:
        from ptpfs.transport.inprocess import InProcessTransport

        if not getattr(getattr(self.camera, "faults", None), "present", True):
            raise DeviceNotFound("the simulated camera is unplugged")
        return InProcessTransport(self.camera, timeout=self.timeout)

    def close(self) -> None:
        if self._owns:
            self._owns = False
            self.camera.close()


def reopener(spec: str | DeviceSpec, transport: Any, *, usb_backend: Any = None,
             timeout: float | None = None, min_rate: float | None = None) -> Any:
    """A ``() -> Transport`` factory that reaches the same device again.

    PTP/IP reconnects to the same host and port; USB finds the device again
    by its serial number when it has one (bus addresses change on replug),
    else by the original spec; the in-process simulator reattaches to the
    same camera object.
    """
    s = parse_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "sim":
        return _SimReopener(transport)
    if s.kind == "ptpip":
        return lambda: _open_ptpip(s.host, s.port, timeout, min_rate)
    serial = getattr(getattr(transport, "info", None), "serial", None)
    selectors = [s.usb]
    if serial and _usable_serial(serial) and f"usb:{serial}" != s.usb:
        selectors.insert(0, f"usb:{serial}")

    def reopen() -> Any:
        # The USB serial first; some devices present a new one after a replug, so
        # then the original spec.  Either way the session checks that DeviceInfo
        # (model and serial number) is the same camera before using it.  Real USB
        # is searched with a new libusb context each time (see fresh_libusb_backend).
        from ptpfs.transport.usb import fresh_libusb_backend, release_libusb_backend

        backend = usb_backend
        fresh = None
        if backend is None and _usb_sim_backend(None) is None:
            backend = fresh = fresh_libusb_backend()
        try:
            for selector in selectors[:-1]:
                try:
                    return _open_usb(selector, backend, timeout, min_rate)
                except DeviceNotFound:
                    continue
            return _open_usb(selectors[-1], backend, timeout, min_rate)
        except BaseException:
            if fresh is not None:
                release_libusb_backend(fresh)
            raise
    return reopen


def _usable_serial(serial: str) -> bool:
    try:
        parsed = parse_usb_spec(f"usb:{serial}")
    except InvalidValue:
        return False
    return parsed.serial == serial


def _make_sim_camera(root: str | None, profile: str, uploads: bool | None = None) -> Any:
    from ptpfs.sim import make_camera

    if root is None:
        options: dict[str, Any] = {}
    elif os.path.isdir(root):
        options = {"watch_interval": None}  # rescan folders when they are listed
    else:
        raise DeviceNotFound(f"simulator root {root!r} is not a directory")
    if uploads is not None:
        options["uploads"] = uploads
    try:
        return make_camera(root, profile, **options)
    except ValueError as exc:  # unknown profile
        raise InvalidValue(str(exc)) from exc


def _usb_sim_backend(backend: Any) -> Any:
    """*backend*, or the simulated USB backend when the ``PTPFS_TEST_USB_SIM`` testing
    aid is on (:mod:`ptpfs.testing.usb_sim`, present in the source tree only)."""
    if backend is not None or not os.environ.get(USB_SIM_ENV):
        return backend
    try:
        from ptpfs.testing import usb_sim
    except ImportError:
        raise DeviceNotFound(f"{USB_SIM_ENV} is a testing aid of the ptpfs source tree; "
                             "this installation does not have it") from None

    def make(root: str | None, value: str) -> Any:
        # the value is a profile, optionally with the sim spec's options: canon-eos?uploads=1
        sim = _parse_sim("?profile=" + value.replace("?", "&", 1))
        return _make_sim_camera(root, sim.profile or DEFAULT_PROFILE, sim.uploads)

    return usb_sim.backend(make)


def _open_usb(selector: str, backend: Any, timeout: float | None,
              min_rate: float | None = None) -> Any:
    from ptpfs.transport.usb import open_usb

    backend = _usb_sim_backend(backend)
    kwargs: dict[str, Any] = {"backend": backend}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if min_rate is not None:
        kwargs["min_rate"] = min_rate
    return open_usb(selector, **kwargs)


def _open_ptpip(host: str, port: int, timeout: float | None,
                min_rate: float | None = None) -> Any:
    from ptpfs.transport.ptpip import PtpipTransport

    kwargs: dict[str, Any] = {} if min_rate is None else {"min_rate": min_rate}
    if timeout is None:
        return PtpipTransport(host, port, **kwargs)
    return PtpipTransport(host, port, timeout=timeout, connect_timeout=min(timeout, 5.0),
                          **kwargs)


# --------------------------------------------------------------------------- discovery

SIM_HINT = DeviceListing("sim", "simulated camera (sim[:DIR][?profile=generic|canon-eos|android-mtp|whole-object])")


def list_devices(*, usb_backend: Any = None, include_sim_hint: bool = True) -> list[DeviceListing]:
    """USB PTP/MTP devices found, then (optionally) a line describing the simulator.

    A machine without libusb or USB access simply lists no USB devices.
    """
    listings: list[DeviceListing] = []
    for dev in _find_usb(usb_backend):
        name = " ".join(w for w in (dev.manufacturer, dev.product) if w) or "PTP device"
        tail = f" (serial {dev.serial})" if dev.serial else ""
        listings.append(DeviceListing(dev.spec, f"{dev.vendor_id:04x}:{dev.product_id:04x} "
                                      f"{name} [{dev.kind}]{tail}",
                                      dev.vendor_id, dev.product_id, dev.serial))
    if include_sim_hint:
        listings.append(SIM_HINT)
    return listings


def _find_usb(backend: Any) -> list[Any]:
    try:
        from ptpfs.transport.usb import find_devices

        backend = _usb_sim_backend(backend)
        return list(find_devices("usb", backend=backend))
    except (DeviceNotFound, TransportError, ImportError, OSError):
        return []
    except Exception as exc:  # pyusb raises NoBackendError (a ValueError) without libusb
        if type(exc).__name__ == "NoBackendError":
            return []
        raise


def default_spec(*, usb_backend: Any = None) -> str:
    """``usb`` if a USB camera is present, else :class:`DeviceNotFound` with a hint."""
    if _find_usb(usb_backend):
        return "usb"
    raise DeviceNotFound("no camera found (connect one, or try --device sim for the simulated "
                         "camera; --list-devices shows what is found)")
