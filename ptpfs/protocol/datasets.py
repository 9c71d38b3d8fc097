"""PTP and MTP datasets as frozen dataclasses with ``encode()`` and ``decode(data)``.

``decode`` is total: it consumes every byte or raises :class:`~ptpfs.errors.ProtocolError`.  Real devices
sometimes append padding after a dataset; ``decode(data, strict=False)`` ignores trailing bytes for the
callers that know to expect it.  Lenient decoding also accepts DeviceInfo, StorageInfo and ObjectInfo
that end early, exactly at a field boundary among their trailing strings (an ObjectInfo that stops
before Keywords, as libgphoto2 accepts): the missing strings are empty and their names are appended
to the caller's ``missing`` list.  A length that lies (a string or array longer than the bytes left)
is still a :class:`~ptpfs.errors.ProtocolError`.  ``encode`` raises
:class:`~ptpfs.errors.InvalidValue` for values that do not fit their wire type.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ptpfs.errors import InvalidValue, ProtocolError

from .codes import ASSOCIATION_GENERIC_FOLDER, DT, OFC
from .wire import Reader, Writer, parse_datetime

U32_ALL = 0xFFFFFFFF

_utf16 = codecs.utf_16_le_decode

#: ObjectInfo's fixed-size head: StorageID .. SequenceNumber (52 bytes, little-endian).
_OBJECTINFO_HEAD = struct.Struct("<IHHIHIIIIIIIHII")


def _finish(reader: Reader, strict: bool) -> None:
    if strict:
        reader.end()


def _tail_strings(r: Reader, names: tuple[str, ...], strict: bool,
                  missing: list[str] | None) -> list[str]:
    """Read the trailing strings ``names``; lenient decoding lets the data end before any of them."""
    out = []
    for name in names:
        if not strict and r.remaining == 0:
            out.append("")
            if missing is not None:
                missing.append(name)
        else:
            out.append(r.string())
    return out


def _strings(raw: bytes, pos: int, count: int) -> tuple[list[str], int] | None:
    """*count* PTP strings from *pos* and the offset after them, decoded as
    :meth:`Reader.string` does; ``None`` if any is missing, truncated or not UTF-16."""
    out = []
    size = len(raw)
    for _ in range(count):
        if pos >= size:
            return None
        units = raw[pos]
        pos += 1
        if not units:
            out.append("")
            continue
        end = pos + 2 * units
        if end > size:
            return None
        try:
            text = _utf16(raw[pos:end], "strict", True)[0]   # bytes.decode's registry lookup
        except UnicodeDecodeError:                            # and wrapper cost more than this
            return None
        pos = end
        nul = text.find("\x00")
        out.append(text if nul < 0 else text[:nul])
    return out, pos


def _tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


@dataclass(frozen=True)
class DeviceInfo:
    """The answer to GetDeviceInfo (PTP 1.1 section 5.5.1): what the device is and can do.

    Fields:
        standard_version: PTP version in hundredths (``100`` = 1.00, ``110`` = 1.10).
        vendor_extension_id: who defines the vendor codes (``6`` Microsoft/MTP, ``11`` Canon).
        vendor_extension_version: that extension's version, in hundredths.
        vendor_extension_desc: the extension string (MTP lists ``microsoft.com: 1.0; …``).
        functional_mode: ``0`` standard, other values vendor-defined (e.g. sleep).
        operations_supported: operation codes the device accepts (``OC.*``).
        events_supported: event codes it may send (``EC.*``).
        device_properties_supported: device property codes (``DPC.*``).
        capture_formats: object formats it can capture (``OFC.*``).
        image_formats: object formats it can store and serve (``OFC.*``).
        manufacturer: e.g. ``Canon Inc.``.
        model: e.g. ``Canon EOS R6``.
        device_version: firmware version string.
        serial_number: the device's serial (identifies one camera across reconnects).
    """

    standard_version: int = 100
    vendor_extension_id: int = 0
    vendor_extension_version: int = 0
    vendor_extension_desc: str = ""
    functional_mode: int = 0
    operations_supported: tuple[int, ...] = ()
    events_supported: tuple[int, ...] = ()
    device_properties_supported: tuple[int, ...] = ()
    capture_formats: tuple[int, ...] = ()
    image_formats: tuple[int, ...] = ()
    manufacturer: str = ""
    model: str = ""
    device_version: str = ""
    serial_number: str = ""

    def __post_init__(self) -> None:
        for name in ("operations_supported", "events_supported", "device_properties_supported",
                     "capture_formats", "image_formats"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.standard_version).u32(self.vendor_extension_id).u16(self.vendor_extension_version)
        w.string(self.vendor_extension_desc).u16(self.functional_mode)
        for codes in (self.operations_supported, self.events_supported,
                      self.device_properties_supported, self.capture_formats, self.image_formats):
            w.array(DT.UINT16, codes)
        w.string(self.manufacturer).string(self.model).string(self.device_version)
        w.string(self.serial_number)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes, strict: bool = True, missing: list[str] | None = None) -> DeviceInfo:
        r = Reader(data, "DeviceInfo")
        head = {
            "standard_version": r.u16(), "vendor_extension_id": r.u32(),
            "vendor_extension_version": r.u16(), "vendor_extension_desc": r.string(),
            "functional_mode": r.u16(), "operations_supported": r.array(DT.UINT16),
            "events_supported": r.array(DT.UINT16),
            "device_properties_supported": r.array(DT.UINT16),
            "capture_formats": r.array(DT.UINT16), "image_formats": r.array(DT.UINT16)}
        tail = ("manufacturer", "model", "device_version", "serial_number")
        info = cls(**head, **dict(zip(tail, _tail_strings(r, tail, strict, missing))))  # type: ignore[arg-type]
        _finish(r, strict)
        return info


@dataclass(frozen=True)
class StorageInfo:
    """The answer to GetStorageInfo (PTP 1.1 section 5.5.3): one card or memory area.

    Fields:
        storage_type: ``1`` fixed ROM, ``2`` removable ROM, ``3`` fixed RAM, ``4`` removable RAM.
        filesystem_type: ``1`` flat, ``2`` hierarchical, ``3`` DCF (camera folders).
        access_capability: ``0`` read-write, ``1`` read-only, ``2`` read-only with delete.
        max_capacity: size in bytes.
        free_space_bytes: free bytes.
        free_space_objects: free object slots (``0xFFFFFFFF`` = not used).
        storage_description: e.g. ``SD``.
        volume_label: the card's label, often empty.
    """

    storage_type: int = 0
    filesystem_type: int = 0
    access_capability: int = 0
    max_capacity: int = 0
    free_space_bytes: int = 0
    free_space_objects: int = U32_ALL
    storage_description: str = ""
    volume_label: str = ""

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.storage_type).u16(self.filesystem_type).u16(self.access_capability)
        w.u64(self.max_capacity).u64(self.free_space_bytes).u32(self.free_space_objects)
        w.string(self.storage_description).string(self.volume_label)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes, strict: bool = True, missing: list[str] | None = None) -> StorageInfo:
        r = Reader(data, "StorageInfo")
        info = cls(r.u16(), r.u16(), r.u16(), r.u64(), r.u64(), r.u32(),
                   *_tail_strings(r, ("storage_description", "volume_label"), strict, missing))
        _finish(r, strict)
        return info


@dataclass(frozen=True)
class ObjectInfo:
    """The answer to GetObjectInfo and the data of SendObjectInfo (PTP 1.1 section 5.5.2).

    ``compressed_size`` is the raw u32: 0xFFFFFFFF means "4 GiB or more, ask ObjectSize (u64)".
    Dates are kept as the device's strings; see :attr:`capture_datetime`.

    Fields:
        storage_id: the storage holding the object (from GetStorageIDs).
        object_format: ``OFC.*`` (``0x3801`` EXIF/JPEG, ``0x3001`` Association = folder).
        protection_status: ``0`` none, ``1`` read-only (MTP adds ``0x8002``/``0x8003``).
        compressed_size: size in bytes as a u32 (see above).
        thumb_format: format of the thumbnail (GetThumb), ``0`` if none.
        thumb_compressed_size: the thumbnail's size in bytes.
        thumb_pix_width: thumbnail width in pixels.
        thumb_pix_height: thumbnail height in pixels.
        image_pix_width: image width in pixels (``0`` when not an image or unknown).
        image_pix_height: image height in pixels.
        image_bit_depth: bits per pixel.
        parent: handle of the containing folder; ``0`` (or ``0xFFFFFFFF``) at the storage root.
        association_type: for folders, ``1`` generic folder.
        association_desc: association-specific value, usually ``0``.
        sequence_number: position in a capture sequence, usually ``0``.
        filename: the object's name as the device gives it (untrusted: ptpfs sanitises it).
        capture_date: ``YYYYMMDDThhmmss[.s][Z|±hhmm]`` or empty.
        modification_date: same format, or empty.
        keywords: free text, usually empty.
    """

    storage_id: int
    object_format: int
    protection_status: int = 0
    compressed_size: int = 0
    thumb_format: int = 0
    thumb_compressed_size: int = 0
    thumb_pix_width: int = 0
    thumb_pix_height: int = 0
    image_pix_width: int = 0
    image_pix_height: int = 0
    image_bit_depth: int = 0
    parent: int = 0
    association_type: int = 0
    association_desc: int = 0
    sequence_number: int = 0
    filename: str = ""
    capture_date: str = ""
    modification_date: str = ""
    keywords: str = ""

    @property
    def is_folder(self) -> bool:
        """True for associations (folders)."""
        return self.object_format == OFC.Association

    @property
    def size_unknown(self) -> bool:
        """True when ``compressed_size`` is the 0xFFFFFFFF "too large for u32" marker."""
        return self.compressed_size == U32_ALL

    @property
    def capture_datetime(self) -> datetime | None:
        """``capture_date`` as a datetime (aware if the device gave a zone); None if unusable."""
        return parse_datetime(self.capture_date)

    @property
    def modification_datetime(self) -> datetime | None:
        """``modification_date`` as a datetime; None if empty or unusable."""
        return parse_datetime(self.modification_date)

    @classmethod
    def folder(cls, storage_id: int, parent: int, name: str, **kw: Any) -> ObjectInfo:
        """An ObjectInfo describing a generic folder."""
        return cls(storage_id, OFC.Association, parent=parent, filename=name,
                   association_type=ASSOCIATION_GENERIC_FOLDER, **kw)

    def encode(self) -> bytes:
        w = Writer()
        w.u32(self.storage_id).u16(self.object_format).u16(self.protection_status)
        w.u32(self.compressed_size).u16(self.thumb_format).u32(self.thumb_compressed_size)
        w.u32(self.thumb_pix_width).u32(self.thumb_pix_height).u32(self.image_pix_width)
        w.u32(self.image_pix_height).u32(self.image_bit_depth).u32(self.parent)
        w.u16(self.association_type).u32(self.association_desc).u32(self.sequence_number)
        w.string(self.filename).string(self.capture_date).string(self.modification_date)
        w.string(self.keywords)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes, strict: bool = True, missing: list[str] | None = None) -> ObjectInfo:
        # The listing hot path: a whole, well-formed ObjectInfo in one unpack and four
        # inline strings.  Anything unusual (short, bad UTF-16, trailing bytes when strict)
        # takes the checked path below, which gives the same result or names the fault.
        if len(data) >= _OBJECTINFO_HEAD.size:
            raw = bytes(data)
            fast = _strings(raw, _OBJECTINFO_HEAD.size, 4)
            if fast is not None and (not strict or fast[1] == len(raw)):
                return cls(*_OBJECTINFO_HEAD.unpack_from(raw), *fast[0])
        return cls._decode_checked(data, strict, missing)

    @classmethod
    def _decode_checked(cls, data: bytes, strict: bool = True,
                        missing: list[str] | None = None) -> ObjectInfo:
        """:meth:`decode` field by field, naming the first fault."""
        r = Reader(data, "ObjectInfo")
        if r.remaining >= _OBJECTINFO_HEAD.size:   # one unpack for the fixed part (listing hot path)
            (storage_id, object_format, protection_status, compressed_size, thumb_format,
             thumb_compressed_size, thumb_pix_width, thumb_pix_height, image_pix_width,
             image_pix_height, image_bit_depth, parent, association_type, association_desc,
             sequence_number) = _OBJECTINFO_HEAD.unpack(r.raw(_OBJECTINFO_HEAD.size))
        else:                                      # field by field: the error names the field
            storage_id, object_format, protection_status = r.u32(), r.u16(), r.u16()
            compressed_size, thumb_format, thumb_compressed_size = r.u32(), r.u16(), r.u32()
            thumb_pix_width, thumb_pix_height, image_pix_width = r.u32(), r.u32(), r.u32()
            image_pix_height, image_bit_depth, parent = r.u32(), r.u32(), r.u32()
            association_type, association_desc, sequence_number = r.u16(), r.u32(), r.u32()
        filename = r.string()   # a name is never optional
        capture_date, modification_date, keywords = _tail_strings(
            r, ("capture_date", "modification_date", "keywords"), strict, missing)
        info = cls(
            storage_id=storage_id, object_format=object_format, protection_status=protection_status,
            compressed_size=compressed_size, thumb_format=thumb_format,
            thumb_compressed_size=thumb_compressed_size, thumb_pix_width=thumb_pix_width,
            thumb_pix_height=thumb_pix_height, image_pix_width=image_pix_width,
            image_pix_height=image_pix_height, image_bit_depth=image_bit_depth, parent=parent,
            association_type=association_type, association_desc=association_desc,
            sequence_number=sequence_number, filename=filename, capture_date=capture_date,
            modification_date=modification_date, keywords=keywords)
        _finish(r, strict)
        return info


@dataclass(frozen=True)
class PropRange:
    """Range form of a property description: ``minimum..maximum`` in steps of ``step``
    (values in the property's datatype; a step of ``0`` means any value in the range)."""

    minimum: Any
    maximum: Any
    step: Any


@dataclass(frozen=True)
class PropEnum:
    """Enumeration form of a property description: ``values`` lists every allowed value."""

    values: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))


PropForm = PropRange | PropEnum | None

FORM_NONE = 0
FORM_RANGE = 1
FORM_ENUM = 2


@dataclass(frozen=True)
class DevicePropDesc:
    """The answer to GetDevicePropDesc (PTP 1.1 section 5.5.4); values use the property's
    ``datatype``.  :mod:`ptpfs.services.properties` parses, formats and checks its values.

    Fields:
        code: the property (``DPC.*``, e.g. ``0x500D`` ExposureTime).
        datatype: ``DT.*`` (``DT.UINT16``, ``DT.STR``, arrays ``0x4000 | base``).
        get_set: ``0`` read-only, ``1`` settable (see :attr:`writable`).
        factory_default: the default value.
        current: the current value (int, str, or a tuple of ints for arrays).
        form: ``None``, a :class:`PropRange` or a :class:`PropEnum` of allowed values.
    """

    code: int
    datatype: int
    get_set: int
    factory_default: Any
    current: Any
    form: PropForm = None

    @property
    def writable(self) -> bool:
        """True when the host may set the property (``get_set == 1``)."""
        return self.get_set == 1

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.code).u16(self.datatype).u8(self.get_set)
        w.value(self.datatype, self.factory_default).value(self.datatype, self.current)
        if self.form is None:
            w.u8(FORM_NONE)
        elif isinstance(self.form, PropRange):
            w.u8(FORM_RANGE)
            for v in (self.form.minimum, self.form.maximum, self.form.step):
                w.value(self.datatype, v)
        elif isinstance(self.form, PropEnum):
            if len(self.form.values) > 0xFFFF:
                raise InvalidValue(f"too many enumeration values ({len(self.form.values)})")
            w.u8(FORM_ENUM).u16(len(self.form.values))
            for v in self.form.values:
                w.value(self.datatype, v)
        else:
            raise InvalidValue(f"unknown property form {self.form!r}")
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes, strict: bool = True) -> DevicePropDesc:
        r = Reader(data, "DevicePropDesc")
        code, datatype, get_set = r.u16(), r.u16(), r.u8()
        default, current = r.value(datatype), r.value(datatype)
        flag = r.u8()
        form: PropForm
        if flag == FORM_NONE:
            form = None
        elif flag == FORM_RANGE:
            form = PropRange(r.value(datatype), r.value(datatype), r.value(datatype))
        elif flag == FORM_ENUM:
            count = r.u16()
            # every value takes at least one byte: refuse lying counts before reading
            if count > r.remaining:
                raise ProtocolError(
                    f"DevicePropDesc: enumeration of {count} values does not fit in "
                    f"{r.remaining} bytes")
            form = PropEnum(tuple(r.value(datatype) for _ in range(count)))
        else:
            raise ProtocolError(f"DevicePropDesc: unknown form flag {flag}")
        desc = cls(code, datatype, get_set, default, current, form)
        _finish(r, strict)
        return desc


@dataclass(frozen=True)
class ObjectPropEntry:
    """One element of an MTP object property list (GetObjectPropList / SendObjectPropList).

    Fields:
        handle: the object (``0`` in a SendObjectPropList for the object being created).
        prop: the object property (``OPC.*``, e.g. ``0xDC07`` ObjectFileName).
        datatype: ``DT.*`` of ``value``.
        value: the property's value.
    """

    handle: int
    prop: int
    datatype: int
    value: Any


def encode_prop_list(entries: Iterable[ObjectPropEntry]) -> bytes:
    """``u32 count`` then (u32 handle, u16 prop, u16 datatype, value) for each entry."""
    items = list(entries)
    w = Writer().u32(len(items))
    for e in items:
        w.u32(e.handle).u16(e.prop).u16(e.datatype).value(e.datatype, e.value)
    return w.getvalue()


def decode_prop_list(data: bytes, strict: bool = True) -> list[ObjectPropEntry]:
    """Inverse of :func:`encode_prop_list`."""
    r = Reader(data, "ObjectPropList")
    count = r.u32()
    if count > r.remaining // 9:  # the smallest entry is 4 + 2 + 2 + 1 bytes
        raise ProtocolError(f"ObjectPropList: {count} entries do not fit in {r.remaining} bytes")
    entries = []
    for _ in range(count):
        handle, prop, datatype = r.u32(), r.u16(), r.u16()
        entries.append(ObjectPropEntry(handle, prop, datatype, r.value(datatype)))
    _finish(r, strict)
    return entries


def encode_u32_array(values: Iterable[int]) -> bytes:
    """A u32 array (object handles, storage IDs)."""
    return Writer().array(DT.UINT32, values).getvalue()


def decode_u32_array(data: bytes, what: str = "u32 array", strict: bool = True) -> tuple[int, ...]:
    r = Reader(data, what)
    values = r.array(DT.UINT32)
    _finish(r, strict)
    return values


def encode_u16_array(values: Iterable[int]) -> bytes:
    """A u16 array (property codes, format codes)."""
    return Writer().array(DT.UINT16, values).getvalue()


def decode_u16_array(data: bytes, what: str = "u16 array", strict: bool = True) -> tuple[int, ...]:
    r = Reader(data, what)
    values = r.array(DT.UINT16)
    _finish(r, strict)
    return values


__all__ = [
    "DeviceInfo", "StorageInfo", "ObjectInfo", "DevicePropDesc", "PropRange", "PropEnum", "PropForm",
    "ObjectPropEntry", "encode_prop_list", "decode_prop_list", "encode_u32_array", "decode_u32_array",
    "encode_u16_array", "decode_u16_array", "FORM_NONE", "FORM_RANGE", "FORM_ENUM",
]
