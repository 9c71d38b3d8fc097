"""Device properties of the simulated camera and their descriptors.

Each :class:`DeviceProperty` knows its datatype, whether the host may set it,
and its form (range or enumeration).  Values use PTP's units: ExposureTime in
1/10000 s, FNumber in 1/100, ExposureIndex as ISO.  ``DateTime`` is kept as an
offset from the host clock, so it keeps ticking after being set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ptpfs.errors import PTPError
from ptpfs.protocol.codes import DPC, DT
from ptpfs.protocol.datasets import DevicePropDesc, PropEnum, PropForm, PropRange
from ptpfs.protocol.wire import decode_value, encode_value, format_datetime, parse_datetime
from ptpfs.sim.store import StoreError

Validator = Callable[[Any], bool]


@dataclass
class DeviceProperty:
    """One device property: metadata, current value and validation."""

    code: int
    datatype: int
    writable: bool
    default: Any
    current: Any
    form: PropForm = None
    validator: Validator | None = None
    dynamic: Callable[[], Any] | None = None   # computes the current value (DateTime)

    def value(self) -> Any:
        return self.dynamic() if self.dynamic is not None else self.current

    def describe(self) -> DevicePropDesc:
        return DevicePropDesc(self.code, self.datatype, 1 if self.writable else 0,
                              self.default, self.value(), self.form)

    def accepts(self, value: Any) -> bool:
        form = self.form
        if isinstance(form, PropEnum) and value not in form.values:
            return False
        if isinstance(form, PropRange):
            if not form.minimum <= value <= form.maximum:
                return False
            if form.step and (value - form.minimum) % form.step:
                return False
        return self.validator is None or self.validator(value)


def _valid_datetime(value: Any) -> bool:
    try:
        return isinstance(value, str) and parse_datetime(value) is not None
    except PTPError:
        return False


# ExposureTime values in 1/10000 s: 1/8000 (1.25 -> 1) … 30 s.
EXPOSURE_TIMES = (1, 2, 5, 10, 20, 40, 80, 166, 333, 666, 1250, 2500, 5000, 10000, 20000,
                  40000, 80000, 150000, 300000)
F_NUMBERS = (280, 350, 400, 450, 500, 560, 630, 710, 800, 900, 1000, 1100, 1300, 1600, 2200)
ISO_VALUES = (100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 3200, 6400,
              12800, 25600, 51200)
# WhiteBalance: 1 manual, 2 automatic, 3 one-push, 4 daylight, 5 fluorescent, 6 tungsten, 7 flash
WHITE_BALANCES = (1, 2, 3, 4, 5, 6, 7)
IMAGE_SIZES = ("6000x4000", "3984x2656", "2976x1984", "2400x1600")


@dataclass
class DeviceProperties:
    """The properties a profile exposes; thread-safe."""

    props: dict[int, DeviceProperty] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def codes(self) -> tuple[int, ...]:
        return tuple(self.props)

    def get(self, code: int) -> DeviceProperty:
        prop = self.props.get(code)
        if prop is None:
            raise StoreError("DevicePropNotSupported")
        return prop

    def describe(self, code: int) -> bytes:
        with self._lock:
            return self.get(code).describe().encode()

    def encode_value(self, code: int) -> bytes:
        with self._lock:
            prop = self.get(code)
            return encode_value(prop.datatype, prop.value())

    def set_from_host(self, code: int, data: bytes) -> bool:
        """SetDevicePropValue: decode *data*, check it, store it.  Returns whether
        the value changed.  Raises ``StoreError`` with the right response name."""
        with self._lock:
            prop = self.get(code)
            if not prop.writable:
                raise StoreError("AccessDenied")
            try:
                value = decode_value(prop.datatype, data)
            except PTPError as exc:
                raise StoreError("InvalidDevicePropFormat", str(exc)) from exc
            if not prop.accepts(value):
                raise StoreError("InvalidDevicePropValue")
            return self._store(prop, value)

    def reset(self, code: int) -> bool:
        """ResetDevicePropValue."""
        with self._lock:
            prop = self.get(code)
            if not prop.writable:
                raise StoreError("AccessDenied")
            return self._store(prop, prop.default)

    def update(self, code: int, value: Any) -> bool:
        """Simulator side: the camera changes a value (no checks but the form)."""
        with self._lock:
            prop = self.get(code)
            if not prop.accepts(value):
                raise ValueError(f"value {value!r} not allowed for 0x{code:04x}")
            return self._store(prop, value)

    def value(self, code: int) -> Any:
        with self._lock:
            return self.get(code).value()

    def _store(self, prop: DeviceProperty, value: Any) -> bool:
        if prop.code == DPC.DateTime:
            target = parse_datetime(value)
            assert target is not None
            offset = target.replace(tzinfo=None) - datetime.now()
            prop.dynamic = lambda: format_datetime((datetime.now() + offset).replace(microsecond=0))
            return True
        changed = bool(prop.current != value)
        prop.current = value
        return changed


def _all_properties(friendly_name: str, battery: int) -> dict[int, DeviceProperty]:
    now = lambda: format_datetime(datetime.now().replace(microsecond=0))  # noqa: E731
    plist = [
        DeviceProperty(DPC.BatteryLevel, DT.UINT8, False, 100, battery, PropRange(0, 100, 1)),
        DeviceProperty(DPC.ImageSize, DT.STR, True, IMAGE_SIZES[0], IMAGE_SIZES[0],
                       PropEnum(IMAGE_SIZES)),
        DeviceProperty(DPC.WhiteBalance, DT.UINT16, True, 2, 2, PropEnum(WHITE_BALANCES)),
        DeviceProperty(DPC.FNumber, DT.UINT16, True, 400, 400, PropEnum(F_NUMBERS)),
        DeviceProperty(DPC.ExposureTime, DT.UINT32, True, 80, 80, PropEnum(EXPOSURE_TIMES)),
        DeviceProperty(DPC.ExposureIndex, DT.UINT16, True, 100, 100, PropEnum(ISO_VALUES)),
        DeviceProperty(DPC.DateTime, DT.STR, True, "20230116T100000", None, None,
                       _valid_datetime, now),
        DeviceProperty(DPC.UsedDeviceState, DT.UINT8, False, 1, 1),
        DeviceProperty(DPC.SynchronizationPartner, DT.STR, True, "", ""),
        DeviceProperty(DPC.DeviceFriendlyName, DT.STR, True, friendly_name, friendly_name),
        DeviceProperty(DPC.SessionInitiatorVersionInfo, DT.STR, True, "", ""),
        DeviceProperty(DPC.PerceivedDeviceType, DT.UINT32, False, 1, 1),
    ]
    return {p.code: p for p in plist}


def make_properties(codes: tuple[int, ...], friendly_name: str,
                    battery: int = 80) -> DeviceProperties:
    """The properties with these *codes* (in that order) for a profile."""
    every = _all_properties(friendly_name, battery)
    return DeviceProperties({code: every[code] for code in codes})
