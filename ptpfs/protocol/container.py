"""The USB generic container: a 12-byte header (u32 length, u16 type, u16 code, u32 transaction ID)
followed by up to five u32 parameters (command, response, event) or the payload (data)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ptpfs.errors import InvalidValue, ProtocolError

from .messages import Event, Request, Response

HEADER_SIZE = 12
MAX_PARAMS = 5

TYPE_COMMAND = 1
TYPE_DATA = 2
TYPE_RESPONSE = 3
TYPE_EVENT = 4
_TYPE_NAMES = {TYPE_COMMAND: "command", TYPE_DATA: "data", TYPE_RESPONSE: "response",
               TYPE_EVENT: "event"}

#: Length field of a data container whose payload does not fit a u32 length.
LENGTH_UNKNOWN = 0xFFFFFFFF

#: USB Still Image class requests on endpoint 0 (bmRequestType 0x21 host-to-device,
#: 0xA1 device-to-host).
REQUEST_TYPE_OUT = 0x21
REQUEST_TYPE_IN = 0xA1
REQ_CANCEL = 0x64
REQ_GET_EXTENDED_EVENT_DATA = 0x65
REQ_DEVICE_RESET = 0x66
REQ_GET_DEVICE_STATUS = 0x67

_HEADER = struct.Struct("<IHHI")


@dataclass(frozen=True)
class ContainerHeader:
    """A parsed container header."""

    length: int
    type: int
    code: int
    transaction_id: int

    @property
    def payload_length(self) -> int | None:
        """Bytes after the header, or ``None`` for a data container longer than 4 GiB."""
        if self.type == TYPE_DATA and self.length == LENGTH_UNKNOWN:
            return None
        return self.length - HEADER_SIZE

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type}")


def parse_header(b: bytes | bytearray | memoryview) -> ContainerHeader:
    """Parse and validate the first 12 bytes of a container."""
    if len(b) < HEADER_SIZE:
        raise ProtocolError(f"container header truncated ({len(b)} of {HEADER_SIZE} bytes)")
    length, ctype, code, tid = _HEADER.unpack_from(bytes(b[:HEADER_SIZE]))
    if ctype not in _TYPE_NAMES:
        raise ProtocolError(f"unknown container type {ctype}")
    if length < HEADER_SIZE:
        raise ProtocolError(f"container length {length} shorter than its header")
    if ctype != TYPE_DATA:
        payload = length - HEADER_SIZE
        if payload > 4 * MAX_PARAMS or payload % 4:
            raise ProtocolError(
                f"{_TYPE_NAMES[ctype]} container length {length}: parameters must be 0-5 u32")
    return ContainerHeader(length, ctype, code, tid)


#: The largest response container: the header and five parameters.
MAX_RESPONSE_SIZE = HEADER_SIZE + 4 * MAX_PARAMS


def is_response_for(transfer: bytes | bytearray | memoryview, transaction_id: int) -> bool:
    """Whether *transfer* is exactly one response container of *transaction_id* (what a
    device sends in place of the rest of a data phase it ends early)."""
    n = len(transfer)
    if n < HEADER_SIZE or n > MAX_RESPONSE_SIZE or n % 4:
        return False
    length, ctype, _code, tid = _HEADER.unpack_from(transfer)
    return bool(length == n and ctype == TYPE_RESPONSE and tid == transaction_id)


def encode_header(type: int, code: int, transaction_id: int, payload_length: int) -> bytes:
    """A container header; the length field is 0xFFFFFFFF when the container exceeds 4 GiB."""
    if type not in _TYPE_NAMES:
        raise InvalidValue(f"unknown container type {type}")
    if not 0 <= code <= 0xFFFF:
        raise InvalidValue(f"code {code:#x} does not fit in u16")
    if not 0 <= transaction_id <= 0xFFFFFFFF:
        raise InvalidValue(f"transaction id {transaction_id} does not fit in u32")
    if payload_length < 0:
        raise InvalidValue(f"negative payload length {payload_length}")
    total = HEADER_SIZE + payload_length
    return _HEADER.pack(total if total < LENGTH_UNKNOWN else LENGTH_UNKNOWN, type, code,
                        transaction_id)


def _encode_params(params: Iterable[int]) -> bytes:
    values = tuple(params)
    if len(values) > MAX_PARAMS:
        raise InvalidValue(f"{len(values)} parameters; PTP allows at most {MAX_PARAMS}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
            raise InvalidValue(f"parameter {v!r} does not fit in u32")
    return struct.pack(f"<{len(values)}I", *values)


def _encode(type: int, code: int, tid: int, params: Iterable[int]) -> bytes:
    payload = _encode_params(params)
    return encode_header(type, code, tid, len(payload)) + payload


def encode_command(code: int, transaction_id: int, params: Iterable[int] = ()) -> bytes:
    """A command container."""
    return _encode(TYPE_COMMAND, code, transaction_id, params)


def encode_response(code: int, transaction_id: int, params: Iterable[int] = ()) -> bytes:
    """A response container."""
    return _encode(TYPE_RESPONSE, code, transaction_id, params)


def encode_event(code: int, transaction_id: int = 0, params: Iterable[int] = ()) -> bytes:
    """An event container (interrupt endpoint)."""
    return _encode(TYPE_EVENT, code, transaction_id, params)


def encode_data(code: int, transaction_id: int, payload: bytes) -> bytes:
    """A whole data container (header and payload)."""
    return encode_header(TYPE_DATA, code, transaction_id, len(payload)) + bytes(payload)


def parse_params(payload: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """Up to five little-endian u32 parameters."""
    if len(payload) % 4 or len(payload) > 4 * MAX_PARAMS:
        raise ProtocolError(f"parameter block of {len(payload)} bytes: must be 0-5 u32")
    return struct.unpack(f"<{len(payload) // 4}I", bytes(payload))


def _decode(b: bytes | bytearray | memoryview, expected: int) -> tuple[ContainerHeader, tuple[int, ...]]:
    header = parse_header(b)
    if header.type != expected:
        raise ProtocolError(f"expected a {_TYPE_NAMES[expected]} container, got {header.type_name}")
    if header.length != len(b):
        raise ProtocolError(
            f"{header.type_name} container says {header.length} bytes but {len(b)} arrived")
    return header, parse_params(b[HEADER_SIZE:])


def decode_command(b: bytes | bytearray | memoryview) -> Request:
    """A whole command container -> :class:`Request`."""
    h, params = _decode(b, TYPE_COMMAND)
    return Request(h.code, h.transaction_id, params)


def decode_response(b: bytes | bytearray | memoryview) -> Response:
    """A whole response container -> :class:`Response`."""
    h, params = _decode(b, TYPE_RESPONSE)
    return Response(h.code, h.transaction_id, params)


def decode_event(b: bytes | bytearray | memoryview) -> Event:
    """A whole event container -> :class:`Event`."""
    h, params = _decode(b, TYPE_EVENT)
    return Event(h.code, h.transaction_id, params)
