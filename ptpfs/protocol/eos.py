"""Canon EOS datasets: GetObjectInfoEx folder entries and GetEvent records.

Byte layouts as libgphoto2 reads them (``camlibs/ptp2/ptp-pack.c``: ``ptp_unpack_Canon_EOS_FE``,
``ptp_unpack_CANON_changes``; ``ptp.c``: ``ptp_canon_eos_getobjectinfoex``).

GetObjectInfoEx data: ``u32 count`` then ``count`` entries, each ``u32 entry_size`` (itself included)
followed by::

    +0  u32 handle        +4  u32 storage       +8  u16 format (u32 field)   +12 u32 (1 for folders, as seen)
    +16 u32 flags (libgphoto2 reads the low byte)                             +20 u32 size
    +24 u32 parent        +28 u32 handle again  +32 char[16] filename (NUL-padded)
    +48 u32 time (seconds since the epoch)

ptpfs extensions, invisible to libgphoto2: in the 64-bit form (``Canon_GetObjectInfoEx64``, whose real
layout is undocumented) the size is a u64 at +20 and the parent moves to +28; a name that does not fit
the 16-byte field as ASCII is also stored whole, UTF-8 and NUL-terminated, after the time field (the
16-byte field then holds a truncated ASCII form, which is what libgphoto2 shows).

GetEvent data: records ``u32 size`` (header included), ``u32 type``, payload, ended by the record
``size 8, type 0``.  Known payloads: ObjectAddedEx / ObjectInfoChangedEx (handle at +8, storage +0x0c,
format +0x10, size +0x1c, parent +0x20, NUL-terminated name +0x28), ObjectAddedEx64 (size u64 at +0x1c,
parent +0x24, name +0x2c), ObjectRemoved (handle at +8), PropValueChanged (property at +8, raw value
from +0x0c).  Other records keep their payload as raw bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ptpfs.errors import InvalidValue, ProtocolError

from .codes import EC
from .messages import Event

#: Bytes of one folder entry after its size field, and the smallest valid entry_size.
ENTRY_BODY = 52
ENTRY_MIN_SIZE = 4 + ENTRY_BODY
_NAME_FIELD = 16


def _check(value: int, bits: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise InvalidValue(f"{what} {value!r} does not fit in u{bits}")
    return value


def _short_name(name: str) -> tuple[bytes, bool]:
    """The 16-byte ASCII field and whether the whole name fits in it."""
    if "\x00" in name:
        raise InvalidValue("EOS file names must not contain NUL")
    ascii_form = name.encode("ascii", "replace")
    fits = len(ascii_form) < _NAME_FIELD and ascii_form.decode("ascii") == name
    return ascii_form[:_NAME_FIELD - 1].ljust(_NAME_FIELD, b"\x00"), fits


def _cstring(raw: bytes, what: str, encoding: str = "latin-1") -> str:
    text = raw.split(b"\x00", 1)[0]
    try:
        return text.decode(encoding)
    except UnicodeDecodeError:
        raise ProtocolError(f"{what}: file name is not valid {encoding}") from None


# ------------------------------------------------------------------------------ GetObjectInfoEx
@dataclass(frozen=True)
class EOSObjectEntry:
    """One child of a folder as listed by EOS_GetObjectInfoEx."""

    handle: int
    storage: int
    format: int
    flags: int
    size: int
    parent: int
    filename: str
    time: int = 0

    @property
    def is_folder(self) -> bool:
        return self.format == 0x3001

    def encode(self, wide: bool = False) -> bytes:
        """One entry, size field included (``wide``: 64-bit size layout)."""
        short, fits = _short_name(self.filename)
        head = struct.pack("<IIHHII", _check(self.handle, 32, "handle"),
                           _check(self.storage, 32, "storage"), _check(self.format, 16, "format"),
                           0, 1 if self.is_folder else 0, _check(self.flags, 32, "flags"))
        if wide:
            middle = struct.pack("<QI", _check(self.size, 64, "size"), _check(self.parent, 32, "parent"))
        else:
            middle = struct.pack("<III", _check(self.size, 32, "size"),
                                 _check(self.parent, 32, "parent"), self.handle)
        body = head + middle + short + struct.pack("<I", _check(self.time, 32, "time"))
        if not fits:
            body += self.filename.encode("utf-8", "surrogatepass") + b"\x00"
            body += b"\x00" * (-len(body) % 4)
        return struct.pack("<I", 4 + len(body)) + body

    @classmethod
    def decode_body(cls, body: bytes, wide: bool = False) -> EOSObjectEntry:
        """An entry without its size field (``len(body) >= 52``)."""
        if len(body) < ENTRY_BODY:
            raise ProtocolError(f"EOS folder entry: {len(body)} bytes, needs {ENTRY_BODY}")
        handle, storage, fmt, _, _, flags = struct.unpack_from("<IIHHII", body, 0)
        if wide:
            size, parent = struct.unpack_from("<QI", body, 20)
        else:
            size, parent = struct.unpack_from("<II", body, 20)
        (time,) = struct.unpack_from("<I", body, 48)
        tail = body[ENTRY_BODY:]
        if tail.strip(b"\x00"):
            if b"\x00" not in tail:
                raise ProtocolError("EOS folder entry: long file name is not NUL-terminated")
            name = _cstring(tail, "EOS folder entry", "utf-8")
        else:
            name = _cstring(body[32:32 + _NAME_FIELD], "EOS folder entry")
        return cls(handle, storage, fmt, flags, size, parent, name, time)


def encode_object_info_ex(entries: Iterable[EOSObjectEntry], wide: bool = False) -> bytes:
    """The data phase of EOS_GetObjectInfoEx (``wide`` for Canon_GetObjectInfoEx64)."""
    items = list(entries)
    return struct.pack("<I", len(items)) + b"".join(e.encode(wide) for e in items)


def decode_object_info_ex(data: bytes, wide: bool = False,
                          strict: bool = True) -> list[EOSObjectEntry]:
    """Inverse of :func:`encode_object_info_ex`; lying counts or sizes raise ProtocolError."""
    data = bytes(data)
    if len(data) < 4:
        raise ProtocolError(f"EOS GetObjectInfoEx: {len(data)} bytes, no entry count")
    (count,) = struct.unpack_from("<I", data, 0)
    if count > (len(data) - 4) // ENTRY_MIN_SIZE:
        raise ProtocolError(
            f"EOS GetObjectInfoEx: {count} entries cannot fit in {len(data) - 4} bytes")
    pos, entries = 4, []
    for i in range(count):
        if len(data) - pos < 4:
            raise ProtocolError(f"EOS GetObjectInfoEx: entry {i} truncated at offset {pos}")
        (size,) = struct.unpack_from("<I", data, pos)
        if size < ENTRY_MIN_SIZE or size > len(data) - pos:
            raise ProtocolError(
                f"EOS GetObjectInfoEx: entry {i} size {size} invalid at offset {pos} "
                f"({len(data) - pos} bytes left)")
        entries.append(EOSObjectEntry.decode_body(data[pos + 4:pos + size], wide))
        pos += size
    if strict and pos != len(data):
        raise ProtocolError(f"EOS GetObjectInfoEx: {len(data) - pos} unexpected trailing bytes")
    return entries


# ------------------------------------------------------------------------------------- GetEvent
_OBJECT_RECORDS = (EC.EOS_ObjectAddedEx, EC.EOS_ObjectInfoChangedEx)
_NAME_OFFSET = 0x28
_NAME_OFFSET_64 = 0x2C


@dataclass(frozen=True)
class EOSEvent:
    """One EOS GetEvent record.

    ``params`` by type: ObjectAddedEx / ObjectInfoChangedEx / ObjectAddedEx64 ->
    ``(handle, storage, format, size, parent)`` with ``name`` the file name; ObjectRemoved ->
    ``(handle,)``; PropValueChanged -> ``(property,)`` with ``data`` the raw value bytes; any other
    type -> no params, ``data`` the raw payload.
    """

    type: int
    params: tuple[int, ...] = ()
    name: str = ""
    data: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "data", bytes(self.data))

    # constructors for the records the simulator sends
    @classmethod
    def object_added(cls, handle: int, storage: int, format: int, size: int, parent: int,
                     name: str) -> EOSEvent:
        """ObjectAddedEx (ObjectAddedEx64 when the size needs more than 32 bits)."""
        kind = EC.EOS_ObjectAddedEx if size <= 0xFFFFFFFF else EC.EOS_ObjectAddedEx64
        return cls(kind, (handle, storage, format, size, parent), name)

    @classmethod
    def object_removed(cls, handle: int) -> EOSEvent:
        return cls(EC.EOS_ObjectRemoved, (handle,))

    @classmethod
    def prop_changed(cls, prop: int, value: bytes) -> EOSEvent:
        return cls(EC.EOS_PropValueChanged, (prop,), data=value)

    @property
    def handle(self) -> int | None:
        """The object handle of object records, else ``None``."""
        if self.type in _OBJECT_RECORDS or self.type in (EC.EOS_ObjectAddedEx64,
                                                          EC.EOS_ObjectRemoved):
            return self.params[0]
        return None

    @property
    def value_int(self) -> int:
        """A PropValueChanged value read as a little-endian unsigned integer (up to 4 bytes)."""
        return int.from_bytes(self.data[:4], "little")

    def encode(self) -> bytes:
        """The record, size and type included."""
        payload = self._payload()
        return struct.pack("<II", 8 + len(payload), _check(self.type, 32, "event type")) + payload

    def _need(self, n: int) -> tuple[int, ...]:
        if len(self.params) != n:
            raise InvalidValue(f"EOS event {self.type:#x} needs {n} params, got {self.params!r}")
        return self.params

    def _payload(self) -> bytes:
        if self.type in _OBJECT_RECORDS or self.type == EC.EOS_ObjectAddedEx64:
            handle, storage, fmt, size, parent = self._need(5)
            if "\x00" in self.name:
                raise InvalidValue("EOS file names must not contain NUL")
            name = self.name.encode("utf-8", "surrogatepass") + b"\x00"
            if self.type == EC.EOS_ObjectAddedEx64:
                fixed = struct.pack("<IIIIIQII", _check(handle, 32, "handle"),
                                    _check(storage, 32, "storage"), _check(fmt, 16, "format"),
                                    0, 0, _check(size, 64, "size"), _check(parent, 32, "parent"),
                                    handle)
            else:
                fixed = struct.pack("<IIIIIIII", _check(handle, 32, "handle"),
                                    _check(storage, 32, "storage"), _check(fmt, 16, "format"),
                                    0, 0, _check(size, 32, "size"), _check(parent, 32, "parent"),
                                    0)
            body = fixed + name
            return body + b"\x00" * (-len(body) % 4)
        if self.type == EC.EOS_ObjectRemoved:
            (handle,) = self._need(1)
            return struct.pack("<I", _check(handle, 32, "handle"))
        if self.type == EC.EOS_PropValueChanged:
            (prop,) = self._need(1)
            return struct.pack("<I", _check(prop, 32, "property")) + self.data
        if self.params or self.name:
            raise InvalidValue(f"EOS event {self.type:#x} carries raw data only")
        if self.type == 0:
            raise InvalidValue("EOS event type 0 is the terminator")
        return self.data


def _decode_record(rtype: int, payload: bytes) -> EOSEvent:
    what = f"EOS event {rtype:#06x}"
    if rtype in _OBJECT_RECORDS or rtype == EC.EOS_ObjectAddedEx64:
        wide = rtype == EC.EOS_ObjectAddedEx64
        name_at = (_NAME_OFFSET_64 if wide else _NAME_OFFSET) - 8
        if len(payload) < name_at + 1:
            raise ProtocolError(f"{what}: {len(payload) + 8}-byte record too short")
        handle, storage, fmt = struct.unpack_from("<IIH", payload, 0)
        if wide:
            size, parent = struct.unpack_from("<QI", payload, 0x14)
        else:
            size, parent = struct.unpack_from("<II", payload, 0x14)
        tail = payload[name_at:]
        if b"\x00" not in tail:
            raise ProtocolError(f"{what}: file name is not NUL-terminated")
        return EOSEvent(rtype, (handle, storage, fmt, size, parent),
                        _cstring(tail, what, "utf-8"))
    if rtype == EC.EOS_ObjectRemoved:
        if len(payload) != 4:
            raise ProtocolError(f"{what}: ObjectRemoved record of {len(payload) + 8} bytes")
        return EOSEvent(rtype, struct.unpack("<I", payload))
    if rtype == EC.EOS_PropValueChanged:
        if len(payload) < 4:
            raise ProtocolError(f"{what}: PropValueChanged record of {len(payload) + 8} bytes")
        return EOSEvent(rtype, struct.unpack_from("<I", payload), data=payload[4:])
    return EOSEvent(rtype, data=payload)


def encode_eos_events(events: Iterable[EOSEvent]) -> bytes:
    """The data phase of EOS_GetEvent: the records then the terminator."""
    return b"".join(e.encode() for e in events) + struct.pack("<II", 8, 0)


def decode_eos_events(data: bytes, strict: bool = True) -> list[EOSEvent]:
    """Inverse of :func:`encode_eos_events`.

    Empty data means no records.  ``strict`` requires the terminator and nothing after it;
    otherwise a missing terminator or trailing bytes after it are tolerated.  A record whose size
    is below 8 or beyond the data always raises :class:`ProtocolError`.
    """
    data = bytes(data)
    if not data:  # no data phase at all: nothing queued
        return []
    pos, events = 0, list[EOSEvent]()
    while True:
        left = len(data) - pos
        if left == 0:
            if strict:
                raise ProtocolError("EOS GetEvent: data ends without the terminator record")
            return events
        if left < 8:
            raise ProtocolError(f"EOS GetEvent: {left} stray bytes at offset {pos}")
        size, rtype = struct.unpack_from("<II", data, pos)
        if size < 8 or size > left:
            raise ProtocolError(
                f"EOS GetEvent: record size {size} invalid at offset {pos} ({left} bytes left)")
        if rtype == 0 and size == 8:
            pos += 8
            if strict and pos != len(data):
                raise ProtocolError(
                    f"EOS GetEvent: {len(data) - pos} bytes after the terminator record")
            return events
        if rtype == 0:
            raise ProtocolError(f"EOS GetEvent: type 0 record of {size} bytes at offset {pos}")
        events.append(_decode_record(rtype, data[pos + 8:pos + size]))
        pos += size


_STANDARD = {
    EC.EOS_ObjectAddedEx: EC.ObjectAdded,
    EC.EOS_ObjectAddedEx64: EC.ObjectAdded,
    EC.EOS_ObjectRemoved: EC.ObjectRemoved,
    EC.EOS_ObjectInfoChangedEx: EC.ObjectInfoChanged,
    EC.EOS_PropValueChanged: EC.DevicePropChanged,
}


def to_standard_event(record: EOSEvent) -> Event | None:
    """The standard PTP event an EOS record stands for (ObjectAdded(handle), ObjectRemoved(handle),
    ObjectInfoChanged(handle), DevicePropChanged(property)), or ``None`` for other records."""
    code = _STANDARD.get(record.type)
    if code is None or not record.params:
        return None
    return Event(code, 0, (record.params[0],))
