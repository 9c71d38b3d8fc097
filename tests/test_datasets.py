"""PTP / MTP datasets (ptpfs.protocol.datasets): round trips, known bytes, garbage."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.errors import InvalidValue, ProtocolError
from ptpfs.protocol.codes import DPC, DT, OC, OFC, OPC
from ptpfs.protocol.datasets import (
    DeviceInfo,
    DevicePropDesc,
    ObjectInfo,
    ObjectPropEntry,
    PropEnum,
    PropRange,
    StorageInfo,
    decode_prop_list,
    decode_u16_array,
    decode_u32_array,
    encode_prop_list,
    encode_u16_array,
    encode_u32_array,
)
from ptpfs.protocol.wire import INT_TYPES

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
strings = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                  max_size=30)
u16s = st.lists(u16, max_size=12).map(tuple)

device_infos = st.builds(
    DeviceInfo, u16, u32, u16, strings, u16, u16s, u16s, u16s, u16s, u16s, strings, strings, strings,
    strings)
storage_infos = st.builds(StorageInfo, u16, u16, u16, u64, u64, u32, strings, strings)
object_infos = st.builds(
    ObjectInfo, u32, u16, u16, u32, u16, u32, u32, u32, u32, u32, u32, u32, u16, u32, u32, strings,
    strings, strings, strings)


def _range(dt):
    size, signed = INT_TYPES[dt]
    bits = 8 * size
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


@st.composite
def prop_descs(draw):
    dt = draw(st.sampled_from(sorted(INT_TYPES) + [DT.STR] + [DT.ARRAY | t for t in sorted(INT_TYPES)]))
    if dt == DT.STR:
        values = strings
    elif dt & DT.ARRAY:
        values = st.lists(st.integers(*_range(dt & ~DT.ARRAY)), max_size=5).map(tuple)
    else:
        values = st.integers(*_range(dt))
    form = draw(st.sampled_from(["none", "range", "enum"]))
    if form == "range":
        form_value = PropRange(draw(values), draw(values), draw(values))
    elif form == "enum":
        form_value = PropEnum(tuple(draw(st.lists(values, max_size=6))))
    else:
        form_value = None
    return DevicePropDesc(draw(u16), dt, draw(st.sampled_from([0, 1])), draw(values), draw(values),
                          form_value)


@st.composite
def prop_entries(draw):
    dt = draw(st.sampled_from([DT.UINT16, DT.UINT32, DT.UINT64, DT.UINT128, DT.INT8, DT.STR, DT.AUINT8]))
    if dt == DT.STR:
        value = draw(strings)
    elif dt == DT.AUINT8:
        value = tuple(draw(st.lists(u8, max_size=8)))
    else:
        value = draw(st.integers(*_range(dt)))
    return ObjectPropEntry(draw(u32), draw(u16), dt, value)


prop_lists = st.lists(prop_entries(), max_size=6)

DATASETS = {
    "DeviceInfo": (device_infos, DeviceInfo.decode),
    "StorageInfo": (storage_infos, StorageInfo.decode),
    "ObjectInfo": (object_infos, ObjectInfo.decode),
    "DevicePropDesc": (prop_descs(), DevicePropDesc.decode),
}
ALL_DECODERS = [DeviceInfo.decode, StorageInfo.decode, ObjectInfo.decode, DevicePropDesc.decode,
                decode_prop_list, decode_u16_array, decode_u32_array]


def must_fail_cleanly(decode, data):
    with pytest.raises(ProtocolError):
        decode(data)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", DATASETS)
@given(data=st.data())
def test_round_trip_object_bytes_object(name, data):
    strategy, decode = DATASETS[name]
    value = data.draw(strategy)
    encoded = value.encode()
    assert decode(encoded) == value
    assert decode(encoded).encode() == encoded


@pytest.mark.parametrize("name", DATASETS)
@given(data=st.data())
def test_every_truncation_and_trailing_garbage(name, data):
    strategy, decode = DATASETS[name]
    encoded = data.draw(strategy).encode()
    for n in range(len(encoded)):
        must_fail_cleanly(decode, encoded[:n])
    junk = data.draw(st.binary(min_size=1, max_size=16))
    must_fail_cleanly(decode, encoded + junk)
    assert decode(encoded + junk, strict=False) == decode(encoded)


@pytest.mark.parametrize("decode", ALL_DECODERS)
@given(raw=st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_error(decode, raw):
    try:
        decode(raw)
    except ProtocolError:
        pass


@given(prop_lists)
def test_prop_list_round_trip(entries):
    encoded = encode_prop_list(entries)
    assert decode_prop_list(encoded) == entries
    assert encode_prop_list(decode_prop_list(encoded)) == encoded
    for n in range(len(encoded)):
        must_fail_cleanly(decode_prop_list, encoded[:n])
    must_fail_cleanly(decode_prop_list, encoded + b"\x00")


@given(st.lists(u32, max_size=50), st.lists(u16, max_size=50))
def test_arrays_round_trip(handles, codes):
    assert decode_u32_array(encode_u32_array(handles)) == tuple(handles)
    assert decode_u16_array(encode_u16_array(codes)) == tuple(codes)
    for bad in (encode_u32_array(handles)[:-1], encode_u32_array(handles) + b"\x01"):
        if bad:
            must_fail_cleanly(decode_u32_array, bad)


# --------------------------------------------------------------------------- known vectors
def ptp_string(text):
    if not text:
        return b"\x00"
    return bytes([len(text) + 1]) + text.encode("utf-16-le") + b"\x00\x00"


def u16_array(values):
    return struct.pack(f"<I{len(values)}H", len(values), *values)


def test_device_info_from_hand_assembled_bytes():
    raw = (struct.pack("<HIH", 100, 0x0000000B, 100) + ptp_string("")
           + struct.pack("<H", 0)
           + u16_array([0x1001, 0x1002, 0x9109]) + u16_array([0x4002]) + u16_array([0x5001, 0xD402])
           + u16_array([]) + u16_array([0x3801, 0xB108])
           + ptp_string("Canon Inc.") + ptp_string("Canon EOS R6") + ptp_string("3-1.5.0")
           + ptp_string("0123456789"))
    info = DeviceInfo.decode(raw)
    assert info == DeviceInfo(
        standard_version=100, vendor_extension_id=0xB, vendor_extension_version=100,
        vendor_extension_desc="", functional_mode=0,
        operations_supported=(OC.GetDeviceInfo, OC.OpenSession, OC.EOS_GetObjectInfoEx),
        events_supported=(0x4002,), device_properties_supported=(DPC.BatteryLevel, DPC.DeviceFriendlyName),
        capture_formats=(), image_formats=(OFC.EXIF_JPEG, OFC.CANON_CR3), manufacturer="Canon Inc.",
        model="Canon EOS R6", device_version="3-1.5.0", serial_number="0123456789")
    assert info.encode() == raw
    with pytest.raises(ProtocolError, match="DeviceInfo"):
        DeviceInfo.decode(raw + b"\x00\x00")
    assert DeviceInfo.decode(raw + b"\x00\x00", strict=False) == info


def test_storage_info_from_seed_listing():
    raw = (struct.pack("<HHHQQI", 4, 3, 0, 15923150848, 15420555264, 0xFFFFFFFF)
           + ptp_string("SD2") + ptp_string(""))
    assert StorageInfo.decode(raw) == StorageInfo(4, 3, 0, 15923150848, 15420555264, 0xFFFFFFFF,
                                                  "SD2", "")


def test_object_info_layout_and_helpers():
    info = ObjectInfo(0x00020001, OFC.CANON_CR3, compressed_size=21662294, parent=0x91900000,
                      filename="2U4A3378.CR3", capture_date="20230115T103000",
                      modification_date="junk")
    raw = info.encode()
    assert raw[:4] == bytes.fromhex("01000200") and raw[4:6] == bytes.fromhex("08b1")
    assert struct.unpack_from("<I", raw, 8)[0] == 21662294
    assert struct.unpack_from("<I", raw, 38)[0] == 0x91900000
    assert raw[52] == 13  # "2U4A3378.CR3" + NUL
    assert not info.is_folder and not info.size_unknown
    assert info.capture_datetime.year == 2023 and info.modification_datetime is None
    folder = ObjectInfo.folder(0x10001, 0, "DCIM")
    assert folder.is_folder and folder.association_type == 1
    assert ObjectInfo(1, OFC.MP4, compressed_size=0xFFFFFFFF).size_unknown


def test_dataset_encode_rejects_out_of_range():
    with pytest.raises(InvalidValue):
        ObjectInfo(2**32, OFC.Text).encode()
    with pytest.raises(InvalidValue):
        StorageInfo(free_space_bytes=-1).encode()
    with pytest.raises(InvalidValue):
        DeviceInfo(model="x" * 300).encode()
    with pytest.raises(InvalidValue):
        DevicePropDesc(DPC.BatteryLevel, DT.UINT8, 0, 300, 0).encode()
    with pytest.raises(InvalidValue):
        DevicePropDesc(DPC.BatteryLevel, DT.UINT8, 0, 1, 1, form="bogus").encode()


def test_device_prop_desc_forms_known_bytes():
    desc = DevicePropDesc(DPC.BatteryLevel, DT.UINT8, 0, 100, 16, PropRange(0, 100, 1))
    assert desc.encode() == bytes.fromhex("0150 0200 00 64 10 01 00 64 01")
    enum = DevicePropDesc(DPC.WhiteBalance, DT.UINT16, 1, 2, 4, PropEnum((1, 2, 4)))
    assert enum.encode() == bytes.fromhex("0550 0400 01 0200 0400 02 0300 0100 0200 0400")
    assert DevicePropDesc.decode(enum.encode()).writable
    name = DevicePropDesc(DPC.DeviceFriendlyName, DT.STR, 1, "", "Canon EOS R6")
    assert DevicePropDesc.decode(name.encode()) == name


def test_device_prop_desc_garbage():
    must_fail_cleanly(DevicePropDesc.decode, bytes.fromhex("0150 0200 00 64 10 07"))  # form flag 7
    # enumeration claims 65535 values but carries 2 bytes
    must_fail_cleanly(DevicePropDesc.decode, bytes.fromhex("0150 0200 00 64 10 02 ffff 0102"))
    must_fail_cleanly(DevicePropDesc.decode, bytes.fromhex("0150 0b00 00 00"))  # unknown datatype


def test_prop_list_known_bytes_and_lying_count():
    entries = [ObjectPropEntry(5, OPC.ObjectFileName, DT.STR, "A"),
               ObjectPropEntry(5, OPC.ObjectSize, DT.UINT64, 7)]
    raw = encode_prop_list(entries)
    assert raw == bytes.fromhex("02000000 05000000 07dc ffff 02 4100 0000"
                                "05000000 04dc 0800 0700000000000000")
    must_fail_cleanly(decode_prop_list, b"\xff\xff\xff\xff" + raw[4:])


_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                 max_size=40)


@given(st.builds(ObjectInfo, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF),
                 filename=_names, capture_date=_names, modification_date=_names,
                 keywords=_names),
       st.integers(-60, 8), st.binary(max_size=8), st.booleans())
def test_objectinfo_fast_decode_matches_the_checked_decode(info, cut, tail, strict) -> None:
    """The one-unpack listing path gives exactly what the field-by-field decoder gives, or
    the same error, for whole, truncated, padded and corrupted ObjectInfo datasets."""
    data = info.encode()
    data = data[:len(data) + cut] if cut < 0 else data + tail[:cut]
    if tail and len(data) > 60:                       # a byte flipped inside the strings
        data = data[:60] + tail[:1] + data[61:]
    try:
        expected: object = ObjectInfo._decode_checked(data, strict)
    except ProtocolError as exc:
        expected = type(exc)
    try:
        got: object = ObjectInfo.decode(data, strict)
    except ProtocolError as exc:
        got = type(exc)
    assert got == expected
    if cut == 0 and not tail:
        assert got == info
