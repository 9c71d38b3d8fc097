"""PTP primitives (ptpfs.protocol.wire): integers, arrays, strings, values, DateTime."""

import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.errors import InvalidValue, ProtocolError
from ptpfs.protocol.codes import DT
from ptpfs.protocol.wire import (
    INT_TYPES,
    MAX_STRING_UNITS,
    Reader,
    Writer,
    decode_value,
    encode_value,
    format_datetime,
    is_array_type,
    parse_datetime,
)


def int_range(dt):
    size, signed = INT_TYPES[dt]
    bits = size * 8
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


INT_DTS = sorted(INT_TYPES)
ARRAY_DTS = [DT.ARRAY | dt for dt in INT_DTS]


@st.composite
def typed_values(draw):
    dt = draw(st.sampled_from(INT_DTS + ARRAY_DTS + [DT.STR]))
    if dt == DT.STR:
        return dt, draw(ptp_strings())
    low, high = int_range(dt & ~DT.ARRAY)
    if is_array_type(dt):
        return dt, tuple(draw(st.lists(st.integers(low, high), max_size=20)))
    return dt, draw(st.integers(low, high))


def ptp_strings():
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    return st.text(chars, max_size=40).filter(lambda s: len(s.encode("utf-16-le")) // 2 < 255)


# ------------------------------------------------------------------------------------ integers
@pytest.mark.parametrize("dt", INT_DTS)
def test_integer_bounds_round_trip(dt):
    size, _ = INT_TYPES[dt]
    for v in int_range(dt):
        data = encode_value(dt, v)
        assert len(data) == size
        assert decode_value(dt, data) == v


@pytest.mark.parametrize("dt", INT_DTS)
def test_integer_out_of_range_is_invalid_value(dt):
    low, high = int_range(dt)
    for v in (low - 1, high + 1):
        with pytest.raises(InvalidValue):
            encode_value(dt, v)
    with pytest.raises(InvalidValue):
        encode_value(dt, "1")
    with pytest.raises(InvalidValue):
        encode_value(dt, True)


def test_integer_byte_order():
    w = Writer().u8(1).i8(-2).u16(0x0304).i16(-3).u32(0x05060708).u64(0x1122334455667788)
    w.i32(-1).u128(1 << 120).i128(-1).i64(-(1 << 63))
    data = w.getvalue()
    assert data[:18].hex() == "01fe0403fdff080706058877665544332211"
    r = Reader(data)
    assert (r.u8(), r.i8(), r.u16(), r.i16(), r.u32(), r.u64(), r.i32(), r.u128(), r.i128(), r.i64()) == \
        (1, -2, 0x0304, -3, 0x05060708, 0x1122334455667788, -1, 1 << 120, -1, -(1 << 63))
    r.end()


@given(typed_values())
def test_value_round_trip(pair):
    dt, value = pair
    assert decode_value(dt, encode_value(dt, value)) == value


@given(typed_values(), st.binary(min_size=1, max_size=8))
def test_value_with_trailing_bytes_is_protocol_error(pair, junk):
    dt, value = pair
    with pytest.raises(ProtocolError):
        decode_value(dt, encode_value(dt, value) + junk)


@given(typed_values())
def test_every_truncation_is_protocol_error(pair):
    dt, value = pair
    data = encode_value(dt, value)
    for n in range(len(data)):
        with pytest.raises(ProtocolError):
            decode_value(dt, data[:n])


@given(st.sampled_from(INT_DTS + ARRAY_DTS + [DT.STR, 0, 0x4000, 0x1234]), st.binary(max_size=64))
def test_random_bytes_only_raise_protocol_error(dt, data):
    try:
        decode_value(dt, data)
    except ProtocolError:
        pass


# -------------------------------------------------------------------------------------- arrays
def test_array_layout():
    assert encode_value(DT.AUINT16, (1, 0xFFFF)) == bytes.fromhex("02000000 0100 ffff")
    assert Reader(bytes.fromhex("00000000")).array(DT.UINT32) == ()


def test_lying_array_count_fails_before_allocating():
    data = b"\xff\xff\xff\xff" + b"\x00" * 10
    tracemalloc.start()
    try:
        for dt in ARRAY_DTS:
            with pytest.raises(ProtocolError, match="does not fit"):
                decode_value(dt, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000     # nothing sized by the lying count was allocated


def test_array_element_out_of_range_is_invalid_value():
    with pytest.raises(InvalidValue):
        encode_value(DT.AUINT8, [1, 256])
    with pytest.raises(InvalidValue):
        encode_value(DT.AUINT8, "abc")


# ------------------------------------------------------------------------------------- strings
def test_string_layout():
    assert encode_value(DT.STR, "") == b"\x00"
    assert encode_value(DT.STR, "SD") == bytes.fromhex("03 5300 4400 0000")
    assert decode_value(DT.STR, b"\x00") == ""


@given(ptp_strings())
def test_string_round_trip(text):
    assert decode_value(DT.STR, encode_value(DT.STR, text)) == text


def test_string_length_limit():
    longest = "x" * (MAX_STRING_UNITS - 1)
    assert decode_value(DT.STR, encode_value(DT.STR, longest)) == longest
    with pytest.raises(InvalidValue):
        encode_value(DT.STR, longest + "x")
    # a character outside the BMP takes two UTF-16 units
    with pytest.raises(InvalidValue):
        encode_value(DT.STR, "x" * 253 + "\U0001F4F7")
    assert decode_value(DT.STR, encode_value(DT.STR, "x" * 252 + "\U0001F4F7")).endswith("\U0001F4F7")


def test_string_encoding_rejects_nul_and_lone_surrogates():
    for bad in ("a\x00b", "\ud800", 5, None):
        with pytest.raises(InvalidValue):
            encode_value(DT.STR, bad)


def test_string_with_lone_surrogate_is_protocol_error():
    with pytest.raises(ProtocolError, match="UTF-16"):
        decode_value(DT.STR, bytes.fromhex("02 00d8 0000"))
    with pytest.raises(ProtocolError):
        decode_value(DT.STR, bytes.fromhex("02 00dc 4100"))


def test_string_without_terminating_nul_is_accepted():
    assert decode_value(DT.STR, bytes.fromhex("02 4100 4200")) == "AB"


def test_string_stops_at_first_nul_padding():
    assert decode_value(DT.STR, bytes.fromhex("04 4100 0000 0000 0000")) == "A"


def test_string_count_beyond_data_is_protocol_error():
    with pytest.raises(ProtocolError, match="truncated"):
        decode_value(DT.STR, bytes.fromhex("ff 4100 0000"))


# ------------------------------------------------------------------------------ reader / writer
def test_reader_reports_where_it_failed():
    r = Reader(b"\x01\x02\x03", what="ObjectInfo")
    r.u16()
    with pytest.raises(ProtocolError, match=r"ObjectInfo: truncated uint32 .* at offset 2"):
        r.u32()
    assert r.remaining == 1
    with pytest.raises(ProtocolError, match="trailing"):
        r.end()
    assert r.raw(1) == b"\x03"
    r.end()


def test_unsupported_datatypes():
    with pytest.raises(ProtocolError):
        Reader(b"\x00" * 8).value(0x0000)
    with pytest.raises(InvalidValue):
        encode_value(0x000B, 1)
    with pytest.raises(ProtocolError):
        Reader(b"\x00" * 8).array(DT.STR)


# ------------------------------------------------------------------------------------ DateTime
@pytest.mark.parametrize("text, expected", [
    ("20230115T103000", datetime(2023, 1, 15, 10, 30, 0)),
    ("20230115T103000.5", datetime(2023, 1, 15, 10, 30, 0, 500000)),
    ("20230115T103000Z", datetime(2023, 1, 15, 10, 30, tzinfo=timezone.utc)),
    ("20230115T103000+0130", datetime(2023, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=1, minutes=30)))),
    ("20230115T103000.0-0800", datetime(2023, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=-8)))),
])
def test_parse_datetime(text, expected):
    parsed = parse_datetime(text)
    assert parsed == expected
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize("junk", [
    "", "0", "junk", "20231315T103000", "20230230T000000", "20230115 103000", "20230115T256000",
    "2023-01-15T10:30:00", "20230115T103000+2500", "20230115T103000X", None, 20230115,
])
def test_parse_datetime_returns_none_for_junk(junk):
    assert parse_datetime(junk) is None


def test_format_datetime():
    assert format_datetime(datetime(2023, 1, 2, 3, 4, 5)) == "20230102T030405"
    assert format_datetime(datetime(2023, 1, 2, 3, 4, 5, 700000)) == "20230102T030405.7"
    assert format_datetime(datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "20230102T030405Z"
    assert format_datetime(datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=3, minutes=30)))) \
        == "20230102T030405-0330"


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
       st.sampled_from([None, timezone.utc, timezone(timedelta(hours=5, minutes=45)),
                        timezone(timedelta(hours=-11))]))
def test_datetime_round_trip(dt, tz):
    dt = dt.replace(microsecond=dt.microsecond // 100000 * 100000, tzinfo=tz)
    assert parse_datetime(format_datetime(dt)) == dt


@given(st.text(max_size=30))
def test_parse_datetime_never_raises(text):
    result = parse_datetime(text)
    assert result is None or isinstance(result, datetime)
