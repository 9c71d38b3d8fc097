"""Canon EOS datasets (ptpfs.protocol.eos): GetObjectInfoEx entries and GetEvent records."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.errors import InvalidValue, ProtocolError
from ptpfs.protocol import eos
from ptpfs.protocol.codes import EC, OFC
from ptpfs.protocol.eos import (
    EOSEvent,
    EOSObjectEntry,
    decode_eos_events,
    decode_object_info_ex,
    encode_eos_events,
    encode_object_info_ex,
)
from ptpfs.protocol.messages import Event

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@st.composite
def entries(draw, wide=False):
    size = draw(st.integers(0, 2**64 - 1 if wide else 0xFFFFFFFF))
    return EOSObjectEntry(draw(u32), draw(u32), draw(u16), draw(u32), size, draw(u32), draw(names),
                          draw(u32))


@st.composite
def events(draw):
    kind = draw(st.sampled_from(["added", "added64", "changed", "removed", "prop", "raw"]))
    if kind in ("added", "changed"):
        code = EC.EOS_ObjectAddedEx if kind == "added" else EC.EOS_ObjectInfoChangedEx
        return EOSEvent(code, (draw(u32), draw(u32), draw(u16), draw(u32), draw(u32)), draw(names))
    if kind == "added64":
        return EOSEvent(EC.EOS_ObjectAddedEx64,
                        (draw(u32), draw(u32), draw(u16), draw(st.integers(0, 2**64 - 1)), draw(u32)),
                        draw(names))
    if kind == "removed":
        return EOSEvent.object_removed(draw(u32))
    if kind == "prop":
        return EOSEvent.prop_changed(draw(u32), draw(st.binary(max_size=12)))
    code = draw(st.sampled_from([EC.EOS_CameraStatusChanged, EC.EOS_AvailListChanged, 0xC1FF]))
    return EOSEvent(code, data=draw(st.binary(max_size=24)))


# ------------------------------------------------------------------------- GetObjectInfoEx
# sample 1 from the comment above PTP_OC_CANON_EOS_GetObjectInfoEx in libgphoto2's ptp.h
LIBGPHOTO2_SAMPLE = bytes.fromhex(
    "01000000"
    "38000000 00000030 01000000 01300000 01000000 10000000 00000000 00000020 00000030"
    "4443494d000000000000000000000000 ccc30146")


def test_libgphoto2_sample_entry():
    (entry,) = decode_object_info_ex(LIBGPHOTO2_SAMPLE)
    assert entry == EOSObjectEntry(handle=0x30000000, storage=1, format=OFC.Association, flags=0x10,
                                   size=0, parent=0x20000000, filename="DCIM", time=0x4601C3CC)
    assert entry.is_folder
    again = encode_object_info_ex([entry])
    assert again == LIBGPHOTO2_SAMPLE
    assert decode_object_info_ex(again) == [entry]


def test_entry_layout_as_libgphoto2_reads_it():
    entry = EOSObjectEntry(0x9190D321, 0x20001, OFC.CANON_CR3, 0x21, 21662294, 0x91900000,
                           "2U4A3378.CR3", 1673778600)
    raw = entry.encode()
    assert len(raw) == eos.ENTRY_MIN_SIZE == struct.unpack_from("<I", raw)[0]
    body = raw[4:]
    assert struct.unpack_from("<I", body, 0)[0] == 0x9190D321
    assert struct.unpack_from("<H", body, 8)[0] == OFC.CANON_CR3
    assert body[16] == 0x21
    assert struct.unpack_from("<I", body, 20)[0] == 21662294
    assert body[32:48].split(b"\x00")[0] == b"2U4A3378.CR3"
    assert struct.unpack_from("<I", body, 48)[0] == 1673778600


def test_long_and_unicode_names_survive():
    long_name = EOSObjectEntry(1, 2, OFC.MP4, 0, 3, 4, "holiday video from the beach.mp4")
    raw = long_name.encode()
    assert raw[4 + 32:4 + 48].rstrip(b"\x00") == b"holiday video f"  # what libgphoto2 sees
    assert decode_object_info_ex(encode_object_info_ex([long_name])) == [long_name]
    accented = EOSObjectEntry(1, 2, OFC.Text, 0, 3, 4, "é.txt")
    assert decode_object_info_ex(encode_object_info_ex([accented])) == [accented]


@pytest.mark.parametrize("wide", [False, True])
@given(data=st.data())
def test_object_info_ex_round_trip(wide, data):
    items = data.draw(st.lists(entries(wide), max_size=5))
    raw = encode_object_info_ex(items, wide=wide)
    assert decode_object_info_ex(raw, wide=wide) == items
    assert encode_object_info_ex(decode_object_info_ex(raw, wide=wide), wide=wide) == raw
    for n in range(len(raw)):
        with pytest.raises(ProtocolError):
            decode_object_info_ex(raw[:n], wide=wide)
    with pytest.raises(ProtocolError):
        decode_object_info_ex(raw + b"\x00", wide=wide)
    assert decode_object_info_ex(raw + b"\x00", wide=wide, strict=False) == items


def test_object_info_ex_lying_counts_and_sizes():
    with pytest.raises(ProtocolError, match="cannot fit"):
        decode_object_info_ex(b"\xff\xff\xff\xff" + LIBGPHOTO2_SAMPLE[4:])
    small = bytearray(LIBGPHOTO2_SAMPLE)
    small[4:8] = struct.pack("<I", 8)
    with pytest.raises(ProtocolError, match="size 8 invalid"):
        decode_object_info_ex(bytes(small))
    big = bytearray(LIBGPHOTO2_SAMPLE)
    big[4:8] = struct.pack("<I", 0x7FFFFFFF)
    with pytest.raises(ProtocolError, match="invalid"):
        decode_object_info_ex(bytes(big))


def test_entry_encode_rejects_invalid_values():
    with pytest.raises(InvalidValue):
        EOSObjectEntry(1, 1, 0x3000, 0, 2**32, 0, "x").encode()
    with pytest.raises(InvalidValue):
        EOSObjectEntry(1, 1, 0x3000, 0, 0, 0, "a\x00b").encode()


# ---------------------------------------------------------------------------------- GetEvent
def test_object_added_record_layout():
    record = EOSEvent.object_added(0x9190D321, 0x20001, OFC.CANON_CR3, 21662294, 0x91900000,
                                   "2U4A3378.CR3").encode()
    size, rtype = struct.unpack_from("<II", record)
    assert (size, rtype) == (len(record), EC.EOS_ObjectAddedEx) and size % 4 == 0
    assert struct.unpack_from("<I", record, 0x08)[0] == 0x9190D321
    assert struct.unpack_from("<I", record, 0x0C)[0] == 0x20001
    assert struct.unpack_from("<H", record, 0x10)[0] == OFC.CANON_CR3
    assert struct.unpack_from("<I", record, 0x1C)[0] == 21662294
    assert struct.unpack_from("<I", record, 0x20)[0] == 0x91900000
    assert record[0x28:].split(b"\x00")[0] == b"2U4A3378.CR3"


def test_large_object_uses_64bit_record():
    event = EOSEvent.object_added(1, 2, OFC.MP4, 5 * 2**30, 3, "MVI_0001.MP4")
    record = event.encode()
    assert event.type == EC.EOS_ObjectAddedEx64
    assert struct.unpack_from("<Q", record, 0x1C)[0] == 5 * 2**30
    assert struct.unpack_from("<I", record, 0x24)[0] == 3
    assert record[0x2C:].split(b"\x00")[0] == b"MVI_0001.MP4"


def test_removed_prop_and_terminator_bytes():
    raw = encode_eos_events([EOSEvent.object_removed(7), EOSEvent.prop_changed(0xD101, b"\x2a\0\0\0")])
    assert raw == bytes.fromhex("0c000000 82c10000 07000000"
                                "10000000 89c10000 01d10000 2a000000"
                                "08000000 00000000")
    removed, prop = decode_eos_events(raw)
    assert removed.handle == 7 and prop.params == (0xD101,) and prop.value_int == 42
    assert encode_eos_events([]) == bytes.fromhex("08000000 00000000")
    assert decode_eos_events(b"") == []


@given(st.lists(events(), max_size=6))
def test_events_round_trip(items):
    raw = encode_eos_events(items)
    assert decode_eos_events(raw) == items
    assert encode_eos_events(decode_eos_events(raw)) == raw
    for n in range(1, len(raw)):
        with pytest.raises(ProtocolError):
            decode_eos_events(raw[:n])
    with pytest.raises(ProtocolError):
        decode_eos_events(raw + b"\x01")
    assert decode_eos_events(raw + b"\x01", strict=False) == items
    assert decode_eos_events(raw[:-8], strict=False) == items


@given(st.binary(max_size=120))
def test_random_bytes_only_raise_protocol_error(raw):
    for strict in (True, False):
        try:
            decode_eos_events(raw, strict=strict)
        except ProtocolError:
            pass
        for wide in (False, True):
            try:
                decode_object_info_ex(raw, wide=wide, strict=strict)
            except ProtocolError:
                pass


def test_malformed_records():
    with pytest.raises(ProtocolError, match="size 4"):
        decode_eos_events(bytes.fromhex("04000000 81c10000"))
    with pytest.raises(ProtocolError, match="invalid"):
        decode_eos_events(bytes.fromhex("ffffff7f 81c10000 00000000"))
    with pytest.raises(ProtocolError, match="too short"):
        decode_eos_events(bytes.fromhex("0c000000 81c10000 01000000 08000000 00000000"))
    with pytest.raises(ProtocolError, match="ObjectRemoved"):
        decode_eos_events(bytes.fromhex("08000000 82c10000 08000000 00000000"))
    unterminated = EOSEvent.object_added(1, 2, 3, 4, 5, "abc").encode().replace(b"abc\x00", b"abcd")
    with pytest.raises(ProtocolError, match="NUL"):
        decode_eos_events(unterminated + bytes.fromhex("08000000 00000000"))


def test_event_encode_rejects_invalid_values():
    for bad in (EOSEvent(EC.EOS_ObjectAddedEx, (1, 2)), EOSEvent(EC.EOS_ObjectRemoved, ()),
                EOSEvent(0xC18B, (1,)), EOSEvent(0), EOSEvent.object_removed(-1),
                EOSEvent(EC.EOS_ObjectAddedEx, (1, 2, 3, 2**32, 5), "x")):
        with pytest.raises(InvalidValue):
            bad.encode()


def test_to_standard_event():
    added = EOSEvent.object_added(9, 0x20001, OFC.EXIF_JPEG, 10, 4, "A.JPG")
    assert eos.to_standard_event(added) == Event(EC.ObjectAdded, 0, (9,))
    assert eos.to_standard_event(EOSEvent.object_removed(9)) == Event(EC.ObjectRemoved, 0, (9,))
    assert eos.to_standard_event(EOSEvent.prop_changed(0xD101, b"")) == \
        Event(EC.DevicePropChanged, 0, (0xD101,))
    assert eos.to_standard_event(EOSEvent(0xC18B, data=b"x")) is None
