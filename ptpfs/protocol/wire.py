"""Little-endian PTP primitives: integers, arrays, strings, values, DateTime strings.

Parsing is total: every length or count is checked against the bytes that remain *before* anything is
allocated, and every failure raises :class:`~ptpfs.errors.ProtocolError` naming what was being read and
where.  Encoding a value that does not fit raises :class:`~ptpfs.errors.InvalidValue`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from ptpfs.errors import InvalidValue, ProtocolError

from .codes import DT, datatype_name

#: Base datatype -> (size in bytes, signed).
INT_TYPES: dict[int, tuple[int, bool]] = {
    DT.INT8: (1, True), DT.UINT8: (1, False),
    DT.INT16: (2, True), DT.UINT16: (2, False),
    DT.INT32: (4, True), DT.UINT32: (4, False),
    DT.INT64: (8, True), DT.UINT64: (8, False),
    DT.INT128: (16, True), DT.UINT128: (16, False),
}
_STRUCT_CHARS = {
    DT.INT8: "b", DT.UINT8: "B", DT.INT16: "h", DT.UINT16: "H",
    DT.INT32: "i", DT.UINT32: "I", DT.INT64: "q", DT.UINT64: "Q",
}
#: Longest PTP string, in UTF-16 code units including the terminating NUL.
MAX_STRING_UNITS = 255


def is_array_type(datatype: int) -> bool:
    """True for ``0x4000 | base`` datatypes with a known integer base."""
    return datatype != DT.STR and bool(datatype & DT.ARRAY) and (datatype & ~DT.ARRAY) in INT_TYPES


def _int_range(datatype: int) -> tuple[int, int]:
    size, signed = INT_TYPES[datatype]
    bits = size * 8
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


class Reader:
    """Reads PTP primitives from a buffer; ``what`` names the buffer in error messages."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str = "dataset") -> None:
        self._data = bytes(data)
        self._pos = 0
        self.what = what

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    @property
    def offset(self) -> int:
        """Bytes read so far."""
        return self._pos

    def _fail(self, message: str) -> ProtocolError:
        return ProtocolError(f"{self.what}: {message} at offset {self._pos}")

    def _need(self, n: int, item: str) -> None:
        if n < 0 or n > self.remaining:
            raise self._fail(f"truncated {item} (needs {n} bytes, {self.remaining} left)")

    def end(self) -> None:
        """Raise :class:`ProtocolError` unless every byte was consumed."""
        if self.remaining:
            raise self._fail(f"{self.remaining} unexpected trailing bytes")

    def raw(self, n: int) -> bytes:
        """The next ``n`` raw bytes."""
        self._need(n, "bytes")
        start = self._pos
        self._pos += n
        return self._data[start:self._pos]

    def rest(self) -> bytes:
        """Every remaining byte."""
        return self.raw(self.remaining)

    # -- integers -----------------------------------------------------------------------------------
    def integer(self, datatype: int) -> int:
        """One integer of a base datatype."""
        try:
            size, signed = INT_TYPES[datatype]
        except KeyError:
            raise self._fail(f"not an integer datatype {datatype_name(datatype)}") from None
        start = self._pos
        if start + size > len(self._data):   # the type's name only for the message (hot path)
            self._need(size, datatype_name(datatype))
        self._pos = start + size
        return int.from_bytes(self._data[start:self._pos], "little", signed=signed)

    def u8(self) -> int:
        return self.integer(DT.UINT8)

    def i8(self) -> int:
        return self.integer(DT.INT8)

    def u16(self) -> int:
        return self.integer(DT.UINT16)

    def i16(self) -> int:
        return self.integer(DT.INT16)

    def u32(self) -> int:
        return self.integer(DT.UINT32)

    def i32(self) -> int:
        return self.integer(DT.INT32)

    def u64(self) -> int:
        return self.integer(DT.UINT64)

    def i64(self) -> int:
        return self.integer(DT.INT64)

    def u128(self) -> int:
        return self.integer(DT.UINT128)

    def i128(self) -> int:
        return self.integer(DT.INT128)

    # -- composites ---------------------------------------------------------------------------------
    def array(self, datatype: int) -> tuple[int, ...]:
        """``u32 count`` then that many elements; ``datatype`` is the element or the array type."""
        base = datatype & ~DT.ARRAY if datatype != DT.STR else datatype
        if base not in INT_TYPES:
            raise self._fail(f"unsupported array datatype {datatype_name(datatype)}")
        size, signed = INT_TYPES[base]
        count = self.u32()
        if count > self.remaining // size:
            self._pos -= 4
            raise self._fail(
                f"array of {count} {datatype_name(base)} does not fit in {self.remaining - 4} bytes")
        start = self._pos
        self._pos += count * size
        if base in _STRUCT_CHARS:
            return struct.unpack_from(f"<{count}{_STRUCT_CHARS[base]}", self._data, start)
        return tuple(int.from_bytes(self._data[start + i * size:start + (i + 1) * size], "little",
                                    signed=signed) for i in range(count))

    def string(self) -> str:
        """A PTP string: ``u8`` count of UTF-16LE units (NUL included), then the units."""
        units = self.u8()
        if units == 0:
            return ""
        self._need(units * 2, "string")
        raw = self._data[self._pos:self._pos + units * 2]
        try:
            text = raw.decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise self._fail(f"invalid UTF-16 in string ({exc.reason})") from None
        self._pos += units * 2
        nul = text.find("\x00")
        return text if nul < 0 else text[:nul]

    def value(self, datatype: int) -> Any:
        """A value of any PTP datatype: ``int``, ``str`` or a tuple of ints for arrays."""
        if datatype == DT.STR:
            return self.string()
        if datatype in INT_TYPES:
            return self.integer(datatype)
        if is_array_type(datatype):
            return self.array(datatype)
        raise self._fail(f"unsupported datatype {datatype_name(datatype)}")


class Writer:
    """Builds a PTP byte string; the methods mirror :class:`Reader`."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def getvalue(self) -> bytes:
        """Everything written so far."""
        return b"".join(self._parts)

    def raw(self, data: bytes | bytearray | memoryview) -> Writer:
        self._parts.append(bytes(data))
        return self

    def integer(self, datatype: int, value: int) -> Writer:
        """One integer of a base datatype; out of range -> :class:`InvalidValue`."""
        if datatype not in INT_TYPES:
            raise InvalidValue(f"not an integer datatype: {datatype_name(datatype)}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"{datatype_name(datatype)} value must be an int, not {value!r}")
        low, high = _int_range(datatype)
        if not low <= value <= high:
            raise InvalidValue(f"{value} does not fit in {datatype_name(datatype)}")
        size, signed = INT_TYPES[datatype]
        self._parts.append(value.to_bytes(size, "little", signed=signed))
        return self

    def u8(self, v: int) -> Writer:
        return self.integer(DT.UINT8, v)

    def i8(self, v: int) -> Writer:
        return self.integer(DT.INT8, v)

    def u16(self, v: int) -> Writer:
        return self.integer(DT.UINT16, v)

    def i16(self, v: int) -> Writer:
        return self.integer(DT.INT16, v)

    def u32(self, v: int) -> Writer:
        return self.integer(DT.UINT32, v)

    def i32(self, v: int) -> Writer:
        return self.integer(DT.INT32, v)

    def u64(self, v: int) -> Writer:
        return self.integer(DT.UINT64, v)

    def i64(self, v: int) -> Writer:
        return self.integer(DT.INT64, v)

    def u128(self, v: int) -> Writer:
        return self.integer(DT.UINT128, v)

    def i128(self, v: int) -> Writer:
        return self.integer(DT.INT128, v)

    def array(self, datatype: int, values: Iterable[int]) -> Writer:
        """``u32 count`` then the elements; ``datatype`` is the element or the array type."""
        base = datatype & ~DT.ARRAY if datatype != DT.STR else datatype
        if base not in INT_TYPES:
            raise InvalidValue(f"unsupported array datatype {datatype_name(datatype)}")
        if isinstance(values, (str, bytes)):
            raise InvalidValue(f"{datatype_name(datatype)} array needs a sequence of ints")
        items = list(values)
        self.u32(len(items))
        for item in items:
            self.integer(base, item)
        return self

    def string(self, text: str) -> Writer:
        """A PTP string; too long, NUL inside, or not encodable -> :class:`InvalidValue`."""
        if not isinstance(text, str):
            raise InvalidValue(f"PTP string must be a str, not {type(text).__name__}")
        if text == "":
            self._parts.append(b"\x00")
            return self
        if "\x00" in text:
            raise InvalidValue("PTP string must not contain NUL")
        try:
            raw = text.encode("utf-16-le")
        except UnicodeEncodeError:
            raise InvalidValue(f"string is not valid Unicode: {text!r}") from None
        units = len(raw) // 2 + 1
        if units > MAX_STRING_UNITS:
            raise InvalidValue(f"string too long for PTP ({units} UTF-16 units, max {MAX_STRING_UNITS})")
        self._parts.append(bytes((units,)) + raw + b"\x00\x00")
        return self

    def value(self, datatype: int, value: Any) -> Writer:
        """A value of any PTP datatype."""
        if datatype == DT.STR:
            return self.string(value)
        if datatype in INT_TYPES:
            return self.integer(datatype, value)
        if is_array_type(datatype):
            return self.array(datatype, value)
        raise InvalidValue(f"unsupported datatype {datatype_name(datatype)}")


def encode_value(datatype: int, value: Any) -> bytes:
    """One value of ``datatype`` as bytes (e.g. the data phase of SetDevicePropValue)."""
    return Writer().value(datatype, value).getvalue()


def decode_value(datatype: int, data: bytes, what: str = "value") -> Any:
    """Decode a whole buffer holding exactly one value of ``datatype``."""
    reader = Reader(data, what)
    value = reader.value(datatype)
    reader.end()
    return value


_DATETIME = re.compile(
    r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d+))?(Z|[+-]\d{4})?")


def parse_datetime(text: str | None) -> datetime | None:
    """``YYYYMMDDThhmmss[.s][Z|±hhmm]`` -> datetime (aware when a zone is given); ``None`` if junk."""
    if not text or not isinstance(text, str):
        return None
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    tz = None
    if zone == "Z":
        tz = timezone.utc
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[3:5])
        if hours > 23 or minutes > 59:
            return None
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    micro = int((frac + "000000")[:6]) if frac else 0
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute),
                        int(second), micro, tzinfo=tz)
    except ValueError:
        return None


def format_datetime(dt: datetime) -> str:
    """datetime -> ``YYYYMMDDThhmmss[.s][Z|±hhmm]`` (tenths only when non-zero)."""
    if not 1 <= dt.year <= 9999:
        raise InvalidValue(f"year {dt.year} cannot be written as a PTP DateTime")
    text = f"{dt.year:04d}{dt.month:02d}{dt.day:02d}T{dt.hour:02d}{dt.minute:02d}{dt.second:02d}"
    if dt.microsecond // 100000:
        text += f".{dt.microsecond // 100000}"
    offset = dt.utcoffset()
    if offset is not None:
        if offset == timedelta(0):
            text += "Z"
        else:
            total = int(offset.total_seconds()) // 60
            sign = "-" if total < 0 else "+"
            total = abs(total)
            text += f"{sign}{total // 60:02d}{total % 60:02d}"
    return text
