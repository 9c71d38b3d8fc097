"""USB generic container (ptpfs.protocol.container)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.errors import InvalidValue, ProtocolError
from ptpfs.protocol import container as c
from ptpfs.protocol.codes import EC, OC, RC
from ptpfs.protocol.messages import Event, Request, Response

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
params = st.lists(u32, max_size=5).map(tuple)

KINDS = [
    (c.encode_command, c.decode_command, Request, c.TYPE_COMMAND),
    (c.encode_response, c.decode_response, Response, c.TYPE_RESPONSE),
    (c.encode_event, c.decode_event, Event, c.TYPE_EVENT),
]


def test_open_session_command_bytes():
    raw = c.encode_command(OC.OpenSession, 0, (1,))
    assert raw == bytes.fromhex("10000000 0100 0210 00000000 01000000")
    assert c.decode_command(raw) == Request(OC.OpenSession, 0, (1,))


def test_response_and_event_bytes():
    assert c.encode_response(RC.OK, 7) == bytes.fromhex("0c000000 0300 0120 07000000")
    assert c.encode_event(EC.ObjectAdded, 0, (0x40029,)) == \
        bytes.fromhex("10000000 0400 0240 00000000 29000400")
    assert c.decode_response(bytes.fromhex("14000000 0300 0120 03000000 01000100 29000400")) == \
        Response(RC.OK, 3, (0x10001, 0x40029))


def test_data_header_and_large_lengths():
    assert c.encode_data(OC.GetObject, 2, b"ab") == bytes.fromhex("0e000000 0200 0910 02000000 6162")
    assert c.encode_header(c.TYPE_DATA, OC.GetObject, 2, 0xFFFFFFFF - 12 - 1)[:4] == b"\xfe\xff\xff\xff"
    big = c.encode_header(c.TYPE_DATA, OC.GetObject, 2, 5 * 2**30)
    assert big[:4] == b"\xff\xff\xff\xff"
    header = c.parse_header(big)
    assert header.payload_length is None and header.type == c.TYPE_DATA
    assert c.parse_header(c.encode_header(c.TYPE_DATA, 0x1009, 1, 100)).payload_length == 100


@pytest.mark.parametrize("encode, decode, cls, ctype", KINDS)
@given(code=u16, tid=u32, ps=params)
def test_round_trip(encode, decode, cls, ctype, code, tid, ps):
    raw = encode(code, tid, ps)
    message = decode(raw)
    assert message == cls(code, tid, ps)
    assert encode(message.code, message.transaction_id, message.params) == raw
    header = c.parse_header(raw)
    assert (header.length, header.type, header.code, header.transaction_id) == (len(raw), ctype, code, tid)
    for n in range(len(raw)):
        with pytest.raises(ProtocolError):
            decode(raw[:n])
    with pytest.raises(ProtocolError):
        decode(raw + b"\x00\x00\x00\x00")


@pytest.mark.parametrize("encode, decode, cls, ctype", KINDS)
@given(raw=st.binary(max_size=40))
def test_random_bytes_only_raise_protocol_error(encode, decode, cls, ctype, raw):
    try:
        message = decode(raw)
    except ProtocolError:
        return
    assert isinstance(message, cls) and len(message.params) <= 5


def test_wrong_container_type_and_bad_lengths():
    with pytest.raises(ProtocolError, match="expected a response"):
        c.decode_response(c.encode_command(OC.GetDeviceInfo, 0))
    with pytest.raises(ProtocolError, match="unknown container type"):
        c.parse_header(bytes.fromhex("0c000000 0900 0120 00000000"))
    with pytest.raises(ProtocolError, match="shorter than its header"):
        c.parse_header(bytes.fromhex("08000000 0300 0120 00000000"))
    with pytest.raises(ProtocolError, match="0-5"):
        c.parse_header(bytes.fromhex("24000000 0300 0120 00000000"))  # 6 params
    with pytest.raises(ProtocolError, match="0-5"):
        c.parse_header(bytes.fromhex("0e000000 0300 0120 00000000"))  # 2 stray bytes
    with pytest.raises(ProtocolError, match="says 16 bytes"):
        c.decode_response(bytes.fromhex("10000000 0300 0120 00000000"))
    with pytest.raises(ProtocolError):
        c.parse_header(b"\x0c\x00")
    with pytest.raises(ProtocolError):
        c.parse_params(b"\x00" * 6)


def test_encode_rejects_invalid_values():
    with pytest.raises(InvalidValue):
        c.encode_command(OC.GetObject, 1, (1, 2, 3, 4, 5, 6))
    with pytest.raises(InvalidValue):
        c.encode_command(OC.GetObject, 1, (-1,))
    with pytest.raises(InvalidValue):
        c.encode_command(0x10000, 1)
    with pytest.raises(InvalidValue):
        c.encode_response(RC.OK, 2**32)
    with pytest.raises(InvalidValue):
        c.encode_header(9, 0, 0, 0)


@given(code=st.integers(0, 0xFFFF), tid=st.integers(0, 0xFFFFFFFF),
       params=st.lists(st.integers(0, 0xFFFFFFFF), max_size=5), other=st.integers(0, 0xFFFFFFFF))
def test_is_response_for_recognises_exactly_one_response(code: int, tid: int, params: list[int],
                                                         other: int) -> None:
    raw = c.encode_response(code, tid, params)
    assert c.is_response_for(raw, tid)
    assert c.is_response_for(memoryview(raw), tid)
    assert c.is_response_for(raw, other) == (other == tid)
    assert not c.is_response_for(raw[:-1], tid)
    assert not c.is_response_for(raw + b"\0\0\0\0", tid)
    assert not c.is_response_for(c.encode_command(code, tid, params), tid)
    assert not c.is_response_for(c.encode_event(code, tid, params), tid)


@given(st.binary(max_size=40), st.integers(0, 0xFFFFFFFF))
def test_is_response_for_is_total(data: bytes, tid: int) -> None:
    assert c.is_response_for(data, tid) in (True, False)


def test_is_response_for_recognises_exactly_one_response_of_the_transaction() -> None:
    from ptpfs.protocol.container import encode_command, encode_response, is_response_for
    reply = encode_response(0x2001, 7, [1, 2])
    assert is_response_for(reply, 7)
    assert not is_response_for(reply, 8)                      # another transaction
    assert not is_response_for(reply + b"\0" * 4, 7)          # more than the container
    assert not is_response_for(reply[:-4], 7)                 # length field disagrees
    assert not is_response_for(encode_command(0x1001, 7), 7)  # not a response
    assert not is_response_for(encode_response(0x2001, 7, [1, 2, 3, 4, 5]) + b"\0" * 4, 7)
