"""PTP/IP packets (CIPA DC-005) and a sans-I/O stream parser.

Every packet is ``u32 length`` (whole packet, header included), ``u32 type``, payload.  Layouts follow
libgphoto2's ``camlibs/ptp2/ptpip.c``: the init packets carry a 16-byte GUID, a NUL-terminated UTF-16LE
friendly name and a u32 protocol version (minor u16, major u16); StartData announces a u64 total length;
Data and EndData carry the transaction ID then the payload bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from ptpfs.errors import InvalidValue, ProtocolError

from .messages import DATA_OUT, Event, Request, Response

DEFAULT_PORT = 15740
PACKET_HEADER_SIZE = 8
#: Protocol version 1.0 as sent in the init packets (u16 minor = 0, u16 major = 1).
PTPIP_VERSION = 0x00010000
#: Largest packet PacketParser accepts unless told otherwise.
DEFAULT_MAX_PACKET_LENGTH = 64 * 1024 * 1024
#: Data-phase field of OperationRequest.
DATA_PHASE_NONE_OR_IN = 1
DATA_PHASE_SEND = 2
#: StartData's total length when the sender does not know it.
UNKNOWN_TOTAL_LENGTH = 0xFFFFFFFFFFFFFFFF
#: InitFail reasons.
FAIL_REJECTED_INITIATOR = 1
FAIL_BUSY = 2
FAIL_UNSPECIFIED = 3

TYPE_INIT_COMMAND_REQUEST = 1
TYPE_INIT_COMMAND_ACK = 2
TYPE_INIT_EVENT_REQUEST = 3
TYPE_INIT_EVENT_ACK = 4
TYPE_INIT_FAIL = 5
TYPE_OPERATION_REQUEST = 6
TYPE_OPERATION_RESPONSE = 7
TYPE_EVENT = 8
TYPE_START_DATA = 9
TYPE_DATA = 10
TYPE_CANCEL = 11
TYPE_END_DATA = 12
TYPE_PROBE_REQUEST = 13
TYPE_PROBE_RESPONSE = 14

_MAX_PARAMS = 5
_HEADER = struct.Struct("<II")


# --------------------------------------------------------------------------------------------- packets
@dataclass(frozen=True)
class InitCommandRequest:
    """Opens the command connection: initiator GUID, friendly name, protocol version."""

    guid: bytes
    name: str
    version: int = PTPIP_VERSION


@dataclass(frozen=True)
class InitCommandAck:
    """The responder's answer: the connection number to use for the event connection."""

    connection_number: int
    guid: bytes
    name: str
    version: int = PTPIP_VERSION


@dataclass(frozen=True)
class InitEventRequest:
    """Opens the event connection for a command connection."""

    connection_number: int


@dataclass(frozen=True)
class InitEventAck:
    """The event connection is ready."""


@dataclass(frozen=True)
class InitFail:
    """The responder refuses the connection."""

    reason: int = 0


@dataclass(frozen=True)
class OperationRequest:
    """A command; ``data_phase`` is 1 (none or device-to-host) or 2 (host-to-device)."""

    data_phase: int
    code: int
    transaction_id: int
    params: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))

    def to_request(self) -> Request:
        return Request(self.code, self.transaction_id, self.params)

    @classmethod
    def from_request(cls, request: Request, direction: int = 0) -> OperationRequest:
        """``direction`` is one of ``messages.NO_DATA / DATA_IN / DATA_OUT``."""
        phase = DATA_PHASE_SEND if direction == DATA_OUT else DATA_PHASE_NONE_OR_IN
        return cls(phase, request.code, request.transaction_id, tuple(request.params))


@dataclass(frozen=True)
class OperationResponse:
    """A response."""

    code: int
    transaction_id: int
    params: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))

    def to_response(self) -> Response:
        return Response(self.code, self.transaction_id, self.params)


@dataclass(frozen=True)
class EventPacket:
    """An event (sent on the event connection)."""

    code: int
    transaction_id: int = 0
    params: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))

    def to_event(self) -> Event:
        return Event(self.code, self.transaction_id, self.params)


@dataclass(frozen=True)
class StartData:
    """Announces a data phase of ``total_length`` bytes."""

    transaction_id: int
    total_length: int


@dataclass(frozen=True)
class DataPacket:
    """A piece of the data phase."""

    transaction_id: int
    payload: bytes = b""


@dataclass(frozen=True)
class CancelPacket:
    """Cancels a transaction."""

    transaction_id: int


@dataclass(frozen=True)
class EndData:
    """The last piece of the data phase (may be empty)."""

    transaction_id: int
    payload: bytes = b""


@dataclass(frozen=True)
class ProbeRequest:
    """Keep-alive probe."""


@dataclass(frozen=True)
class ProbeResponse:
    """Answer to a probe."""


Packet = (InitCommandRequest | InitCommandAck | InitEventRequest | InitEventAck | InitFail
          | OperationRequest | OperationResponse | EventPacket | StartData | DataPacket
          | CancelPacket | EndData | ProbeRequest | ProbeResponse)

PACKET_TYPES: dict[type, int] = {
    InitCommandRequest: TYPE_INIT_COMMAND_REQUEST, InitCommandAck: TYPE_INIT_COMMAND_ACK,
    InitEventRequest: TYPE_INIT_EVENT_REQUEST, InitEventAck: TYPE_INIT_EVENT_ACK,
    InitFail: TYPE_INIT_FAIL, OperationRequest: TYPE_OPERATION_REQUEST,
    OperationResponse: TYPE_OPERATION_RESPONSE, EventPacket: TYPE_EVENT,
    StartData: TYPE_START_DATA, DataPacket: TYPE_DATA, CancelPacket: TYPE_CANCEL,
    EndData: TYPE_END_DATA, ProbeRequest: TYPE_PROBE_REQUEST, ProbeResponse: TYPE_PROBE_RESPONSE,
}
_TYPE_NAMES = {v: k.__name__ for k, v in PACKET_TYPES.items()}


# ---------------------------------------------------------------------------------------- encoding
def _u(value: int, bits: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise InvalidValue(f"{what} {value!r} does not fit in u{bits}")
    return value


def _guid(guid: bytes) -> bytes:
    if not isinstance(guid, (bytes, bytearray)) or len(guid) != 16:
        raise InvalidValue(f"PTP/IP GUID must be 16 bytes, got {guid!r}")
    return bytes(guid)


def _name(name: str) -> bytes:
    if not isinstance(name, str) or "\x00" in name:
        raise InvalidValue(f"PTP/IP friendly name must be a str without NUL, got {name!r}")
    try:
        return name.encode("utf-16-le") + b"\x00\x00"
    except UnicodeEncodeError:
        raise InvalidValue(f"friendly name is not valid Unicode: {name!r}") from None


def _params(params: Iterable[int]) -> bytes:
    values = tuple(params)
    if len(values) > _MAX_PARAMS:
        raise InvalidValue(f"{len(values)} parameters; PTP allows at most {_MAX_PARAMS}")
    return b"".join(struct.pack("<I", _u(v, 32, "parameter")) for v in values)


def _payload(p: Packet) -> bytes:
    if isinstance(p, InitCommandRequest):
        return _guid(p.guid) + _name(p.name) + struct.pack("<I", _u(p.version, 32, "version"))
    if isinstance(p, InitCommandAck):
        return (struct.pack("<I", _u(p.connection_number, 32, "connection number"))
                + _guid(p.guid) + _name(p.name) + struct.pack("<I", _u(p.version, 32, "version")))
    if isinstance(p, InitEventRequest):
        return struct.pack("<I", _u(p.connection_number, 32, "connection number"))
    if isinstance(p, (InitEventAck, ProbeRequest, ProbeResponse)):
        return b""
    if isinstance(p, InitFail):
        return struct.pack("<I", _u(p.reason, 32, "reason"))
    if isinstance(p, OperationRequest):
        return (struct.pack("<IHI", _u(p.data_phase, 32, "data phase"), _u(p.code, 16, "code"),
                            _u(p.transaction_id, 32, "transaction id")) + _params(p.params))
    if isinstance(p, (OperationResponse, EventPacket)):
        return (struct.pack("<HI", _u(p.code, 16, "code"), _u(p.transaction_id, 32, "transaction id"))
                + _params(p.params))
    if isinstance(p, StartData):
        return struct.pack("<IQ", _u(p.transaction_id, 32, "transaction id"),
                           _u(p.total_length, 64, "total length"))
    if isinstance(p, (DataPacket, EndData)):
        return struct.pack("<I", _u(p.transaction_id, 32, "transaction id")) + bytes(p.payload)
    if isinstance(p, CancelPacket):
        return struct.pack("<I", _u(p.transaction_id, 32, "transaction id"))
    raise InvalidValue(f"not a PTP/IP packet: {p!r}")


def encode_packet_header(packet_type: int, payload_length: int) -> bytes:
    """The 8-byte header for a payload of ``payload_length`` bytes (for streaming large data)."""
    total = PACKET_HEADER_SIZE + payload_length
    return _HEADER.pack(_u(total, 32, "packet length"), _u(packet_type, 32, "packet type"))


def encode_packet(p: Packet) -> bytes:
    """A whole packet, header included."""
    payload = _payload(p)
    return encode_packet_header(PACKET_TYPES[type(p)], len(payload)) + payload


# ---------------------------------------------------------------------------------------- decoding
def parse_packet_header(b: bytes | bytearray | memoryview) -> tuple[int, int]:
    """``(length, type)`` from the first 8 bytes; validates both."""
    if len(b) < PACKET_HEADER_SIZE:
        raise ProtocolError(f"PTP/IP header truncated ({len(b)} of {PACKET_HEADER_SIZE} bytes)")
    length, ptype = _HEADER.unpack_from(bytes(b[:PACKET_HEADER_SIZE]))
    if length < PACKET_HEADER_SIZE:
        raise ProtocolError(f"PTP/IP packet length {length} shorter than its header")
    if ptype not in _TYPE_NAMES:
        raise ProtocolError(f"unknown PTP/IP packet type {ptype}")
    return length, ptype


class _Payload:
    """Bounds-checked reads over one packet's payload."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int, item: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise ProtocolError(f"PTP/IP {self.what}: truncated {item} at offset {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u16(self, item: str) -> int:
        return int(struct.unpack("<H", self.take(2, item))[0])

    def u32(self, item: str) -> int:
        return int(struct.unpack("<I", self.take(4, item))[0])

    def u64(self, item: str) -> int:
        return int(struct.unpack("<Q", self.take(8, item))[0])

    def name(self) -> str:
        end = self.data.find(b"\x00\x00", self.pos)
        while end >= 0 and (end - self.pos) % 2:
            end = self.data.find(b"\x00\x00", end + 1)
        if end < 0:
            raise ProtocolError(f"PTP/IP {self.what}: friendly name is not NUL-terminated")
        raw = self.take(end - self.pos, "name")
        self.pos += 2
        try:
            return raw.decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"PTP/IP {self.what}: invalid UTF-16 in name ({exc.reason})") from None

    def params(self) -> tuple[int, ...]:
        rest = len(self.data) - self.pos
        if rest % 4 or rest > 4 * _MAX_PARAMS:
            raise ProtocolError(f"PTP/IP {self.what}: {rest} parameter bytes (must be 0-5 u32)")
        values = struct.unpack(f"<{rest // 4}I", self.data[self.pos:])
        self.pos = len(self.data)
        return values

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(
                f"PTP/IP {self.what}: {len(self.data) - self.pos} unexpected trailing bytes")


def _decode_payload(ptype: int, payload: bytes) -> Packet:
    r = _Payload(payload, _TYPE_NAMES[ptype])
    p: Packet
    if ptype == TYPE_INIT_COMMAND_REQUEST:
        p = InitCommandRequest(r.take(16, "GUID"), r.name(), r.u32("version"))
    elif ptype == TYPE_INIT_COMMAND_ACK:
        p = InitCommandAck(r.u32("connection number"), r.take(16, "GUID"), r.name(),
                           r.u32("version"))
    elif ptype == TYPE_INIT_EVENT_REQUEST:
        p = InitEventRequest(r.u32("connection number"))
    elif ptype == TYPE_INIT_EVENT_ACK:
        p = InitEventAck()
    elif ptype == TYPE_INIT_FAIL:
        p = InitFail(r.u32("reason"))
    elif ptype == TYPE_OPERATION_REQUEST:
        p = OperationRequest(r.u32("data phase"), r.u16("code"), r.u32("transaction id"),
                             r.params())
    elif ptype == TYPE_OPERATION_RESPONSE:
        p = OperationResponse(r.u16("code"), r.u32("transaction id"), r.params())
    elif ptype == TYPE_EVENT:
        p = EventPacket(r.u16("code"), r.u32("transaction id"), r.params())
    elif ptype == TYPE_START_DATA:
        p = StartData(r.u32("transaction id"), r.u64("total length"))
    elif ptype == TYPE_DATA:
        p = DataPacket(r.u32("transaction id"), r.rest())
    elif ptype == TYPE_CANCEL:
        p = CancelPacket(r.u32("transaction id"))
    elif ptype == TYPE_END_DATA:
        p = EndData(r.u32("transaction id"), r.rest())
    elif ptype == TYPE_PROBE_REQUEST:
        p = ProbeRequest()
    else:
        p = ProbeResponse()
    r.end()
    return p


def decode_packet(b: bytes | bytearray | memoryview) -> Packet:
    """A whole packet (header included, nothing after it) -> packet dataclass."""
    length, ptype = parse_packet_header(b)
    if length != len(b):
        raise ProtocolError(
            f"PTP/IP {_TYPE_NAMES[ptype]} says {length} bytes but {len(b)} were given")
    return _decode_payload(ptype, bytes(b[PACKET_HEADER_SIZE:]))


@dataclass(frozen=True)
class DataHeader:
    """A streamed Data (``end`` false) or EndData packet's start: its payload follows as
    :class:`DataPayload` pieces (or is read directly by the caller, see
    :meth:`PacketParser.payload_consumed`)."""

    transaction_id: int
    payload_length: int
    end: bool


@dataclass(frozen=True)
class DataPayload:
    """A piece of a streamed data packet's payload."""

    payload: bytes


@dataclass
class PacketParser:
    """Sans-I/O reassembly of a PTP/IP byte stream: ``feed(bytes)`` then ``next_packet()``.

    A packet announcing more than ``max_length`` bytes raises :class:`ProtocolError` as soon as its
    header arrives; the parser never holds more than the bytes it was fed.  With ``stream_data``,
    Data and EndData packets are not collected: ``next_packet()`` gives a :class:`DataHeader`
    once the transaction ID is in, then the payload as :class:`DataPayload` pieces, and data
    packets of any length pass (``max_length`` then bounds the other packets).  :meth:`wanted`
    says how many bytes complete the item in progress, so a byte pump can read exactly that.
    """

    max_length: int = DEFAULT_MAX_PACKET_LENGTH
    stream_data: bool = False
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _payload_left: int = field(default=0, repr=False)
    _last_type: int = field(default=0, repr=False)
    _header: tuple[int, int] | None = field(default=None, repr=False)   # of the buffered packet

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        self._buffer += data
        if not self._payload_left:
            self._check_header()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
        return len(self._buffer)

    @property
    def payload_remaining(self) -> int:
        """Payload bytes of the streamed data packet in progress not yet returned."""
        return self._payload_left

    @property
    def at_boundary(self) -> bool:
        """Nothing of a packet is pending: the stream is between packets."""
        return not self._buffer and not self._payload_left

    @property
    def last_was_init_command_request(self) -> bool:
        """The newest packet header seen was an InitCommandRequest's: a responder answers
        such a packet with InitFail when it turns out malformed, rather than closing."""
        return self._last_type == TYPE_INIT_COMMAND_REQUEST

    def wanted(self) -> int:
        """Bytes still needed to complete the header, packet or payload in progress
        (0: :meth:`next_packet` has an item ready)."""
        if self._payload_left:
            return max(0, self._payload_left - len(self._buffer))
        length = self._check_header()
        if length is None:
            return PACKET_HEADER_SIZE - len(self._buffer)
        if self._streams(self._buffer):
            return max(0, PACKET_HEADER_SIZE + 4 - len(self._buffer))
        return max(0, length - len(self._buffer))

    def payload_consumed(self, n: int) -> None:
        """The caller read *n* payload bytes of the streamed packet itself (nothing buffered)."""
        if self._buffer or not 0 <= n <= self._payload_left:
            raise ProtocolError(f"PTP/IP parser: {n} payload bytes consumed out of turn")
        self._payload_left -= n

    def _streams(self, header: bytes | bytearray) -> bool:
        return self.stream_data and self._header is not None and self._header[1] in (
            TYPE_DATA, TYPE_END_DATA)

    def _check_header(self) -> int | None:
        if self._header is not None:
            return self._header[0]
        if len(self._buffer) < PACKET_HEADER_SIZE:
            return None
        length, ptype = parse_packet_header(self._buffer)
        self._last_type = ptype
        if length > self.max_length and not (
                self.stream_data and ptype in (TYPE_DATA, TYPE_END_DATA)):
            kind = "control packet" if self.stream_data else "packet"
            raise ProtocolError(
                f"PTP/IP peer announced a {length}-byte {kind} (limit {self.max_length})")
        self._header = (length, ptype)
        return length

    def next_packet(self) -> Packet | DataHeader | DataPayload | None:
        """The next complete packet (or streamed data piece), or ``None`` until more bytes are fed."""
        if self._payload_left:
            if not self._buffer:
                return None
            take = min(self._payload_left, len(self._buffer))
            piece = bytes(self._buffer[:take])
            del self._buffer[:take]
            self._payload_left -= take
            return DataPayload(piece)
        length = self._check_header()
        if length is None:
            return None
        if self._streams(self._buffer):
            if length < PACKET_HEADER_SIZE + 4:
                raise ProtocolError(f"PTP/IP data packet of {length} bytes has no transaction ID")
            if len(self._buffer) < PACKET_HEADER_SIZE + 4:
                return None
            ptype = self._header[1] if self._header is not None else TYPE_DATA
            (tid,) = struct.unpack_from("<I", self._buffer, PACKET_HEADER_SIZE)
            del self._buffer[:PACKET_HEADER_SIZE + 4]
            self._header = None
            self._payload_left = length - PACKET_HEADER_SIZE - 4
            return DataHeader(tid, self._payload_left, ptype == TYPE_END_DATA)
        if len(self._buffer) < length:
            return None
        raw = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._header = None
        return decode_packet(raw)

    def packets(self) -> list[Packet | DataHeader | DataPayload]:
        """Every complete packet buffered so far."""
        out: list[Packet | DataHeader | DataPayload] = []
        while (p := self.next_packet()) is not None:
            out.append(p)
        return out
