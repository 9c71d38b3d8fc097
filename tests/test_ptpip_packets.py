"""PTP/IP packets and the stream parser (ptpfs.protocol.ptpip)."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.errors import InvalidValue, ProtocolError
from ptpfs.protocol import ptpip as p
from ptpfs.protocol.messages import DATA_IN, DATA_OUT, Request

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
params = st.lists(u32, max_size=5).map(tuple)
guids = st.binary(min_size=16, max_size=16)
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
payloads = st.binary(max_size=64)

packets = st.one_of(
    st.builds(p.InitCommandRequest, guids, names, u32),
    st.builds(p.InitCommandAck, u32, guids, names, u32),
    st.builds(p.InitEventRequest, u32),
    st.just(p.InitEventAck()),
    st.builds(p.InitFail, u32),
    st.builds(p.OperationRequest, u32, u16, u32, params),
    st.builds(p.OperationResponse, u16, u32, params),
    st.builds(p.EventPacket, u16, u32, params),
    st.builds(p.StartData, u32, st.integers(0, 2**64 - 1)),
    st.builds(p.DataPacket, u32, payloads),
    st.builds(p.CancelPacket, u32),
    st.builds(p.EndData, u32, payloads),
    st.just(p.ProbeRequest()),
    st.just(p.ProbeResponse()),
)

GUID = bytes(range(16))


def test_init_command_request_bytes():
    raw = p.encode_packet(p.InitCommandRequest(GUID, "host"))
    assert raw == (struct.pack("<II", 38, 1) + GUID + "host\x00".encode("utf-16-le")
                   + bytes.fromhex("0000 0100"))
    assert p.decode_packet(raw) == p.InitCommandRequest(GUID, "host", 0x00010000)


def test_other_known_layouts():
    assert p.encode_packet(p.InitEventRequest(1)) == bytes.fromhex("0c000000 03000000 01000000")
    assert p.encode_packet(p.InitEventAck()) == bytes.fromhex("08000000 04000000")
    assert p.encode_packet(p.OperationRequest(1, 0x1002, 0, (1,))) == \
        bytes.fromhex("16000000 06000000 01000000 0210 00000000 01000000")
    assert p.encode_packet(p.OperationResponse(0x2001, 5)) == \
        bytes.fromhex("0e000000 07000000 0120 05000000")
    assert p.encode_packet(p.StartData(5, 2**32 + 1)) == \
        bytes.fromhex("14000000 09000000 05000000 01000000 01000000")
    assert p.encode_packet(p.DataPacket(5, b"xy")) == bytes.fromhex("0e000000 0a000000 05000000 7879")
    assert p.encode_packet(p.EndData(5, b"")) == bytes.fromhex("0c000000 0c000000 05000000")
    ack = p.encode_packet(p.InitCommandAck(7, GUID, "Cam"))
    assert ack[8:12] == b"\x07\x00\x00\x00" and ack[12:28] == GUID
    assert p.encode_packet_header(p.TYPE_DATA, 100) == struct.pack("<II", 108, 10)


def test_operation_request_from_request():
    request = Request(0x100C, 3, (0x10001, 0))
    out = p.OperationRequest.from_request(request, DATA_OUT)
    assert out.data_phase == p.DATA_PHASE_SEND and out.to_request() == request
    assert p.OperationRequest.from_request(request, DATA_IN).data_phase == p.DATA_PHASE_NONE_OR_IN
    assert p.OperationResponse(0x2001, 3, (1,)).to_response().params == (1,)
    assert p.EventPacket(0x4002, 0, (9,)).to_event().code == 0x4002


@given(packets)
def test_round_trip(packet):
    raw = p.encode_packet(packet)
    assert p.parse_packet_header(raw) == (len(raw), p.PACKET_TYPES[type(packet)])
    decoded = p.decode_packet(raw)
    assert decoded == packet
    assert p.encode_packet(decoded) == raw


@given(packets)
def test_truncations_and_trailing_bytes(packet):
    raw = p.encode_packet(packet)
    for n in range(len(raw)):
        with pytest.raises(ProtocolError):
            p.decode_packet(raw[:n])
    with pytest.raises(ProtocolError):
        p.decode_packet(raw + b"\x00")


@given(st.binary(max_size=80))
def test_random_bytes_only_raise_protocol_error(raw):
    try:
        p.decode_packet(raw)
    except ProtocolError:
        pass
    parser = p.PacketParser(max_length=1024)
    try:
        parser.feed(raw)
        parser.packets()
    except ProtocolError:
        pass
    assert parser.buffered <= len(raw)


@given(st.lists(packets, max_size=6), st.integers(1, 17))
def test_parser_reassembles_any_split(items, chunk):
    stream = b"".join(p.encode_packet(x) for x in items)
    parser, out = p.PacketParser(), []
    for i in range(0, len(stream), chunk):
        parser.feed(stream[i:i + chunk])
        assert parser.buffered <= len(stream)
        out.extend(parser.packets())
    assert out == items and parser.buffered == 0 and parser.next_packet() is None


def test_parser_rejects_enormous_packet_immediately():
    parser = p.PacketParser(max_length=1 << 20)
    with pytest.raises(ProtocolError, match="announced"):
        parser.feed(struct.pack("<II", 0xFFFFFFF0, p.TYPE_DATA))
    assert p.PacketParser().max_length == p.DEFAULT_MAX_PACKET_LENGTH


def test_parser_rejects_bad_headers():
    with pytest.raises(ProtocolError, match="shorter than its header"):
        p.PacketParser().feed(struct.pack("<II", 4, 1))
    with pytest.raises(ProtocolError, match="unknown PTP/IP packet type"):
        p.PacketParser().feed(struct.pack("<II", 8, 99))


def test_decode_errors():
    with pytest.raises(ProtocolError, match="not NUL-terminated"):
        p.decode_packet(struct.pack("<II", 8 + 16 + 8, 1) + GUID + "ABCD".encode("utf-16-le"))
    with pytest.raises(ProtocolError, match="UTF-16"):
        p.decode_packet(struct.pack("<II", 8 + 16 + 4 + 4, 1) + GUID + b"\x00\xd8\x00\x00" + b"\x00\x00\x01\x00")
    with pytest.raises(ProtocolError, match="0-5"):
        p.decode_packet(struct.pack("<IIHI", 8 + 6 + 24, 7, 0x2001, 1) + b"\x00" * 24)
    with pytest.raises(ProtocolError, match="says"):
        p.decode_packet(struct.pack("<II", 20, 13))


def test_encode_rejects_invalid_values():
    for bad in (p.InitCommandRequest(b"short", "x"), p.InitCommandRequest(GUID, "a\x00b"),
                p.OperationRequest(1, 0x10000, 0), p.OperationResponse(0x2001, 0, (1, 2, 3, 4, 5, 6)),
                p.StartData(1, -1), p.CancelPacket(2**32), "not a packet"):
        with pytest.raises(InvalidValue):
            p.encode_packet(bad)
