"""PacketParser's streaming mode (``stream_data=True``): data packets as header + payload."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ptpip_packets import packets

from ptpfs.errors import ProtocolError
from ptpfs.protocol import ptpip as p


def _reassemble(items: list[object]) -> list[object]:
    """Turn streamed DataHeader + DataPayload items back into DataPacket / EndData."""
    out: list[object] = []
    pending: tuple[p.DataHeader, bytearray] | None = None
    for item in items:
        if isinstance(item, p.DataHeader):
            assert pending is None
            pending = (item, bytearray())
        elif isinstance(item, p.DataPayload):
            assert pending is not None
            pending[1].extend(item.payload)
        else:
            assert pending is None, "a packet inside a data packet's payload"
            out.append(item)
            continue
        header, body = pending
        if len(body) == header.payload_length:
            cls = p.EndData if header.end else p.DataPacket
            out.append(cls(header.transaction_id, bytes(body)))
            pending = None
    assert pending is None
    return out


@given(st.lists(packets, max_size=8), st.lists(st.integers(1, 40), min_size=1, max_size=50))
def test_streamed_packets_in_any_split_reassemble(plist: list[p.Packet], cuts: list[int]) -> None:
    raw = b"".join(p.encode_packet(x) for x in plist)
    parser = p.PacketParser(stream_data=True)
    items: list[object] = []
    pos, i = 0, 0
    while pos < len(raw):
        n = cuts[i % len(cuts)]
        i += 1
        parser.feed(raw[pos:pos + n])
        pos += n
        items.extend(parser.packets())
    assert _reassemble(items) == plist
    assert parser.at_boundary


@given(st.lists(packets, max_size=8))
def test_exact_reads_with_wanted_and_direct_payload(plist: list[p.Packet]) -> None:
    """A pump that reads exactly ``wanted()`` bytes and takes payloads itself."""
    raw = memoryview(b"".join(p.encode_packet(x) for x in plist))
    parser = p.PacketParser(stream_data=True)
    pos = 0
    out: list[object] = []
    while pos < len(raw) or not parser.at_boundary:
        item = parser.next_packet()
        if item is None:
            n = parser.wanted()
            assert n > 0
            parser.feed(raw[pos:pos + n])
            pos += n
            continue
        if isinstance(item, p.DataHeader):
            body = bytes(raw[pos:pos + item.payload_length])
            pos += item.payload_length
            parser.payload_consumed(item.payload_length)
            cls = p.EndData if item.end else p.DataPacket
            out.append(cls(item.transaction_id, body))
        else:
            out.append(item)
    assert out == plist and parser.buffered == 0


@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(data: bytes) -> None:
    parser = p.PacketParser(max_length=1024, stream_data=True)
    try:
        parser.feed(data)
        parser.packets()
    except ProtocolError:
        pass


def test_data_packets_pass_the_control_limit_but_others_do_not() -> None:
    parser = p.PacketParser(max_length=64, stream_data=True)
    parser.feed(p.encode_packet_header(p.TYPE_DATA, 4 + 1000) + struct.pack("<I", 7))
    assert parser.next_packet() == p.DataHeader(7, 1000, False)
    assert parser.payload_remaining == 1000
    with pytest.raises(ProtocolError, match="payload bytes consumed out of turn"):
        parser.payload_consumed(1001)
    parser.payload_consumed(1000)
    with pytest.raises(ProtocolError, match="1008-byte control packet"):
        parser.feed(p.encode_packet_header(p.TYPE_OPERATION_RESPONSE, 1000))
    with pytest.raises(ProtocolError, match="no transaction ID"):
        q = p.PacketParser(stream_data=True)
        q.feed(struct.pack("<II", 10, p.TYPE_DATA) + b"ab")
        q.next_packet()
