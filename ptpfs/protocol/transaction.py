"""The PTP transaction sequence as a sans-I/O state machine, for both sides.

Every PTP transaction is: a command from the initiator, an optional data
phase in the direction the operation declares, then a response from the
responder carrying the command's transaction ID.  :class:`Transaction`
checks that sequence and nothing else; it never touches a socket or an
endpoint, holds no payload bytes and raises only :class:`ProtocolError`.
Transports and the simulator's servers decode containers or packets, hand
the result here as events and move bytes::

    machine = Transaction(INITIATOR)
    machine.send(Command(0x1009, tid, (handle,)))           # GetObject
    machine.receive(DataStart(tid, 4096))                   # the device's data header
    machine.receive(DataChunk(4096))                        # payload bytes (counted only)
    machine.receive(Response(0x2001, tid))                  # back to idle

``send`` is for events this side originates, ``receive`` for the peer's;
both check that the event's originator matches the role and that it may
come now.  :attr:`Transaction.expecting` says what comes next and
:attr:`Transaction.data_remaining` how many data bytes are still announced,
so a byte pump can size its reads.  A data phase of unknown length (USB
containers over 4 GiB, PTP/IP's all-ones total) ends with :class:`DataEnd`;
one of known length ends by itself when its last byte is counted
(``DataEnd`` is then accepted and redundant).  :class:`Cancel` from the
initiator ends the transaction wherever it is.

An initiator built with ``tolerant=True`` accepts a responder's data phase of
the wrong length the way libgphoto2 does, instead of raising: one that ends
early (``DataEnd`` with announced bytes missing; :attr:`Transaction.data_short`
says how many) and one that carries bytes beyond its announced length, up to
:data:`MAX_EXCESS` in total (:attr:`Transaction.data_excess`; the byte pump
discards them).  Every other rule stays, and a host-to-device data phase is
always held to its announced length.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ptpfs.errors import ProtocolError

from . import container
from .messages import DATA_IN, DATA_OUT, NO_DATA

__all__ = [
    "INITIATOR",
    "RESPONDER",
    "Cancel",
    "Command",
    "DataChunk",
    "DataEnd",
    "DataStart",
    "Expect",
    "MAX_EXCESS",
    "Response",
    "Role",
    "Transaction",
    "TransactionEvent",
    "ptpip_data_events",
    "ptpip_events",
    "usb_container_event",
]


#: Bytes a tolerant initiator discards beyond a data phase's announced length before it
#: calls the phase a protocol error (a few stray bytes or packets, not a second payload).
MAX_EXCESS = 64 << 10


class Role(enum.Enum):
    """Which side of the link a machine stands on."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


INITIATOR = Role.INITIATOR
RESPONDER = Role.RESPONDER


class Expect(enum.Enum):
    """What the transaction waits for next."""

    COMMAND = "command"                  # idle
    DATA_OUT_OR_RESPONSE = "data-out"    # after a host-to-device command: its data (or a refusal)
    DATA_IN_OR_RESPONSE = "data-in"      # after any other command: data from the responder or the response
    DATA = "data"                        # inside a data phase
    RESPONSE = "response"                # after the data phase


def _u32(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise ProtocolError(f"{what} {value!r} is not a u32")
    return value


@dataclass(frozen=True)
class Command:
    """The initiator's operation request; ``direction`` is ``NO_DATA``, ``DATA_IN`` or ``DATA_OUT``
    (``NO_DATA`` and ``DATA_IN`` are not told apart on the wire: both allow a data phase from
    the responder)."""

    code: int
    transaction_id: int
    params: tuple[int, ...] = ()
    direction: int = NO_DATA

    def __post_init__(self) -> None:
        if self.direction not in (NO_DATA, DATA_IN, DATA_OUT):
            raise ProtocolError(f"command direction {self.direction!r} is not a data direction")
        _u32(self.transaction_id, "transaction ID")


@dataclass(frozen=True)
class DataStart:
    """A data phase begins: its transaction ID and announced payload length (``None``: unknown)."""

    transaction_id: int
    length: int | None

    def __post_init__(self) -> None:
        if self.length is not None and (isinstance(self.length, bool)
                                        or not isinstance(self.length, int) or self.length < 0):
            raise ProtocolError(f"data length {self.length!r} is not a byte count")


@dataclass(frozen=True)
class DataChunk:
    """*size* payload bytes of the data phase moved (the machine counts, never holds them)."""

    size: int

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ProtocolError(f"data chunk size {self.size!r} is not a byte count")


@dataclass(frozen=True)
class DataEnd:
    """The data phase's sender says it is complete (a short USB transfer, PTP/IP EndData)."""


@dataclass(frozen=True)
class Response:
    """The responder's answer, ending the transaction."""

    code: int
    transaction_id: int
    params: tuple[int, ...] = ()


@dataclass(frozen=True)
class Cancel:
    """The initiator abandons the transaction (USB class request, PTP/IP Cancel packet)."""

    transaction_id: int | None = None


TransactionEvent = Command | DataStart | DataChunk | DataEnd | Response | Cancel


class Transaction:
    """One side's view of the transaction sequence on one link (see the module text)."""

    def __init__(self, role: Role, *, tolerant: bool = False) -> None:
        self.role = role
        #: Accept a responder's data phase shorter or longer than announced (module text).
        self.tolerant = tolerant and role is INITIATOR
        self.expecting = Expect.COMMAND
        #: The command of the transaction in progress (``None`` when idle).
        self.command: Command | None = None
        #: Who sends the current or coming data phase.
        self.data_sender: Role | None = None
        #: Announced payload bytes not yet counted (``None``: unknown length or no data phase).
        self.data_remaining: int | None = None
        #: Payload bytes counted in the current data phase.
        self.data_done = 0
        #: Announced length of the current data phase (``None``: unknown or none).
        self.data_length: int | None = None
        #: Announced bytes that never came (a tolerated short data phase; 0 otherwise).
        self.data_short = 0
        #: Bytes beyond the announced length (tolerated and discarded; 0 otherwise).
        self.data_excess = 0

    # ------------------------------------------------------------------ public
    @property
    def idle(self) -> bool:
        """No transaction in progress."""
        return self.expecting is Expect.COMMAND

    @property
    def in_data_phase(self) -> bool:
        return self.expecting is Expect.DATA

    def send(self, event: TransactionEvent) -> None:
        """An event this side originates; :class:`ProtocolError` if it may not send it now."""
        self._handle(event, self.role)

    def receive(self, event: TransactionEvent) -> None:
        """An event from the peer; :class:`ProtocolError` if the peer may not send it now."""
        self._handle(event, RESPONDER if self.role is INITIATOR else INITIATOR)

    def reset(self) -> None:
        """Forget the transaction in progress (the link was recovered or replaced)."""
        self.expecting = Expect.COMMAND
        self.command = None
        self.data_sender = None
        self.data_remaining = self.data_length = None
        self.data_done = self.data_short = self.data_excess = 0

    # ------------------------------------------------------------------ rules
    def _what(self) -> str:
        c = self.command
        return f"0x{c.code:04x} (transaction {c.transaction_id})" if c is not None else "idle link"

    def _handle(self, event: TransactionEvent, by: Role) -> None:
        kind = type(event)
        if kind is DataChunk:           # the most frequent events first (byte pumps)
            self._on_chunk(event, by)   # type: ignore[arg-type]
        elif kind is Response:
            self._on_response(event, by)  # type: ignore[arg-type]
        elif isinstance(event, Command):
            self._on_command(event, by)
        elif isinstance(event, DataStart):
            self._on_data_start(event, by)
        elif isinstance(event, DataChunk):
            self._on_chunk(event, by)
        elif isinstance(event, DataEnd):
            self._on_data_end(by)
        elif isinstance(event, Response):
            self._on_response(event, by)
        elif isinstance(event, Cancel):
            self._on_cancel(event, by)
        else:
            raise ProtocolError(f"not a transaction event: {event!r}")

    def _on_command(self, event: Command, by: Role) -> None:
        if by is not INITIATOR:
            raise ProtocolError(f"{by.value} sent a command")
        if not self.idle:
            raise ProtocolError(f"command 0x{event.code:04x} while {self._what()} "
                                f"waits for {self.expecting.value}")
        self.reset()
        self.command = event
        if event.direction == DATA_OUT:
            self.data_sender = INITIATOR
            self.expecting = Expect.DATA_OUT_OR_RESPONSE
        else:
            self.data_sender = RESPONDER
            self.expecting = Expect.DATA_IN_OR_RESPONSE

    def _check_tid(self, tid: int, what: str) -> None:
        assert self.command is not None
        if tid != self.command.transaction_id:
            raise ProtocolError(f"{self._what()}: {what} with transaction ID {tid}, "
                                f"expected {self.command.transaction_id}")

    def _on_data_start(self, event: DataStart, by: Role) -> None:
        if self.expecting not in (Expect.DATA_OUT_OR_RESPONSE, Expect.DATA_IN_OR_RESPONSE):
            raise ProtocolError(f"{self._what()}: data phase from the {by.value} while "
                                f"waiting for {self.expecting.value}")
        if by is not self.data_sender:
            raise ProtocolError(f"{self._what()}: the {by.value} started a data phase "
                                f"in the wrong direction")
        self._check_tid(event.transaction_id, "data")
        self.data_length = self.data_remaining = event.length
        self.data_done = self.data_short = self.data_excess = 0
        self.expecting = Expect.DATA
        if event.length == 0:
            self.expecting = Expect.RESPONSE

    def _tolerates(self, by: Role) -> bool:
        return self.tolerant and by is RESPONDER and self.data_sender is RESPONDER

    def _excess(self, size: int) -> None:
        self.data_excess += size
        if self.data_excess > MAX_EXCESS:
            raise ProtocolError(f"{self._what()}: {self.data_done + self.data_excess} data "
                                f"bytes, more than the {self.data_length} announced")

    def _on_chunk(self, event: DataChunk, by: Role) -> None:
        if self.expecting is not Expect.DATA:
            if self.expecting is Expect.RESPONSE and event.size == 0:
                return              # an empty trailing piece (zero-length packet, empty EndData)
            if self.expecting is Expect.RESPONSE and self._tolerates(by) \
                    and self.data_length is not None and not self.data_short:
                self._excess(event.size)   # stray bytes after the announced end
                return
            raise ProtocolError(f"{self._what()}: data bytes while waiting for "
                                f"{self.expecting.value}")
        if by is not self.data_sender:
            raise ProtocolError(f"{self._what()}: data from the {by.value} in the other "
                                "direction's data phase")
        if self.data_remaining is not None:
            if event.size > self.data_remaining:
                if not self._tolerates(by):
                    raise ProtocolError(f"{self._what()}: {self.data_done + event.size} data "
                                        f"bytes, more than the {self.data_length} announced")
                self._excess(event.size - self.data_remaining)
                event = DataChunk(self.data_remaining)
            self.data_remaining -= event.size
        self.data_done += event.size
        if self.data_remaining == 0:
            self.expecting = Expect.RESPONSE

    def _on_data_end(self, by: Role) -> None:
        if self.expecting is Expect.RESPONSE and by is self.data_sender:
            return                  # the known length was reached already
        if self.expecting is not Expect.DATA or by is not self.data_sender:
            raise ProtocolError(f"{self._what()}: end of data from the {by.value} while "
                                f"waiting for {self.expecting.value}")
        if self.data_remaining is not None:
            if not self._tolerates(by):
                raise ProtocolError(f"{self._what()}: data phase ended after {self.data_done} "
                                    f"of the {self.data_length} bytes announced")
            self.data_short, self.data_remaining = self.data_remaining, 0
        self.expecting = Expect.RESPONSE

    def _on_response(self, event: Response, by: Role) -> None:
        if by is not RESPONDER:
            raise ProtocolError(f"{by.value} sent a response")
        if self.expecting in (Expect.COMMAND, Expect.DATA) and not (
                self.expecting is Expect.DATA and self.data_sender is INITIATOR):
            raise ProtocolError(f"{self._what()}: response while waiting for "
                                f"{self.expecting.value}")
        # A responder may refuse a host-to-device transaction before or during its data.
        self._check_tid(event.transaction_id, "response")
        self.reset()

    def _on_cancel(self, event: Cancel, by: Role) -> None:
        if by is not INITIATOR:
            raise ProtocolError(f"{by.value} sent a cancel")
        if (event.transaction_id is not None and self.command is not None
                and event.transaction_id != self.command.transaction_id):
            raise ProtocolError(f"{self._what()}: cancel for transaction {event.transaction_id}")
        self.reset()


# --------------------------------------------------------------------- wire adapters
_HEADER = struct.Struct("<IHHI")
_PARAMS = tuple(struct.Struct(f"<{n}I") for n in range(container.MAX_PARAMS + 1))
_MAX_RESPONSE = container.HEADER_SIZE + 4 * container.MAX_PARAMS


def usb_container_event(first: bytes | bytearray | memoryview,
                        direction: int = NO_DATA) -> TransactionEvent:
    """The transaction event a USB container stands for, from its first transfer.

    *first* holds at least the container header; a command or response must
    be whole (the transfer carries exactly the container).  A data header
    gives :class:`DataStart` (``None`` length for the all-ones "over 4 GiB"
    marker).  *direction* is what a decoded command declares (USB commands do
    not say).  Events and unknown types raise :class:`ProtocolError`.
    """
    size = len(first)
    if size < container.HEADER_SIZE:
        raise ProtocolError(f"short container ({size} bytes)")
    # The two containers of every transaction, decoded with one unpack each; anything
    # else (and every malformed container) takes the checked path below.
    length, ctype, code, tid = _HEADER.unpack_from(first)
    if ctype == container.TYPE_DATA and length >= container.HEADER_SIZE:
        return DataStart(tid, None if length == container.LENGTH_UNKNOWN
                         else length - container.HEADER_SIZE)
    if ctype == container.TYPE_RESPONSE and length == size and size <= _MAX_RESPONSE \
            and not size % 4:
        return Response(code, tid, _PARAMS[(size - container.HEADER_SIZE) >> 2].unpack_from(
            first, container.HEADER_SIZE))
    header = container.parse_header(bytes(first[:container.HEADER_SIZE]))
    if header.type == container.TYPE_DATA:
        unknown = header.length == container.LENGTH_UNKNOWN
        return DataStart(header.transaction_id, None if unknown else header.payload_length)
    if header.type in (container.TYPE_RESPONSE, container.TYPE_COMMAND):
        if header.length != len(first):
            raise ProtocolError(f"{'response' if header.type == container.TYPE_RESPONSE else 'command'}"
                                f" container says {header.length} bytes, transfer carried "
                                f"{len(first)}")
        if header.type == container.TYPE_COMMAND:
            req = container.decode_command(bytes(first))
            return Command(req.code, req.transaction_id, tuple(req.params), direction)
        resp = container.decode_response(bytes(first))
        return Response(resp.code, resp.transaction_id, tuple(resp.params))
    raise ProtocolError(f"expected a command, data or response container, got type {header.type}")


def ptpip_events(packet: object, direction: int = NO_DATA) -> list[TransactionEvent]:
    """The transaction events a decoded PTP/IP packet stands for (``[]`` for packets outside
    the transaction sequence: probes, events, init packets).  A Data or EndData packet
    gives a :class:`DataChunk` of its payload (:func:`ptpip_data_events` for streamed ones)."""
    # imported here: a USB mount never loads the PTP/IP codec (start-up time)
    from . import ptpip as pk

    if isinstance(packet, pk.OperationRequest):
        declared = DATA_OUT if packet.data_phase == pk.DATA_PHASE_SEND else direction
        return [Command(packet.code, packet.transaction_id, packet.params, declared)]
    if isinstance(packet, pk.OperationResponse):
        return [Response(packet.code, packet.transaction_id, packet.params)]
    if isinstance(packet, pk.StartData):
        unknown = packet.total_length == pk.UNKNOWN_TOTAL_LENGTH
        return [DataStart(packet.transaction_id, None if unknown else packet.total_length)]
    if isinstance(packet, (pk.DataPacket, pk.EndData)):
        return ptpip_data_events(packet.transaction_id, len(packet.payload),
                                 isinstance(packet, pk.EndData), None)
    if isinstance(packet, pk.CancelPacket):
        return [Cancel(packet.transaction_id)]
    return []


def ptpip_data_events(transaction_id: int, size: int, end: bool,
                      machine: Transaction | None) -> list[TransactionEvent]:
    """Events for a PTP/IP Data (``end`` false) or EndData packet of *size* payload bytes;
    with *machine*, its transaction ID is checked against the one in progress."""
    if machine is not None and machine.command is not None:
        machine._check_tid(transaction_id, "data packet")
    out: list[TransactionEvent] = [DataChunk(size)]
    if end:
        out.append(DataEnd())
    return out
