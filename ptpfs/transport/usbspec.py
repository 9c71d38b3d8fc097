"""USB device specifications: ``usb``, ``usb:BUS,DEV``, ``usb:VVVV:PPPP``, ``usb:SERIAL``.

Pure parsing and matching; no USB I/O happens here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ptpfs.errors import InvalidValue

_BUSDEV = re.compile(r"^(\d{1,3}),(\d{1,3})$")
_VIDPID = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")


@dataclass(frozen=True)
class UsbSpec:
    """A parsed device specification.  Unset fields match anything."""

    bus: int | None = None
    address: int | None = None
    vendor_id: int | None = None
    product_id: int | None = None
    serial: str | None = None

    @property
    def is_any(self) -> bool:
        """True for the bare ``usb`` spec (first matching device)."""
        return (self.bus is None and self.vendor_id is None and self.serial is None)

    def matches(self, bus: int | None, address: int | None, vendor_id: int,
                product_id: int, serial: str | None) -> bool:
        """Does a device with these identifiers satisfy the spec?"""
        if self.bus is not None and (bus != self.bus or address != self.address):
            return False
        if self.vendor_id is not None and (vendor_id != self.vendor_id
                                           or product_id != self.product_id):
            return False
        return not (self.serial is not None and serial != self.serial)


def parse_usb_spec(spec: str) -> UsbSpec:
    """Parse a USB device spec string; raises :class:`InvalidValue` if malformed."""
    if not isinstance(spec, str):
        raise InvalidValue(f"USB device spec must be a string, not {type(spec).__name__}")
    text = spec.strip()
    head, sep, rest = text.partition(":")
    if head.lower() != "usb":
        raise InvalidValue(f"not a USB device spec: {spec!r} (expected usb, usb:BUS,DEV, "
                           "usb:VVVV:PPPP or usb:SERIAL)")
    if not sep or rest == "":
        return UsbSpec()
    m = _BUSDEV.match(rest)
    if m:
        return UsbSpec(bus=int(m.group(1)), address=int(m.group(2)))
    m = _VIDPID.match(rest)
    if m:
        return UsbSpec(vendor_id=int(m.group(1), 16), product_id=int(m.group(2), 16))
    if any(ch.isspace() for ch in rest) or "," in rest:
        raise InvalidValue(f"malformed USB device spec {spec!r}")
    return UsbSpec(serial=rest)


def format_busdev(bus: int | None, address: int | None) -> str:
    """gphoto2-style ``usb:001,004``."""
    return f"usb:{bus or 0:03d},{address or 0:03d}"
