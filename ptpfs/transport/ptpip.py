"""PTP/IP client transport (CIPA DC-005, TCP port 15740).

Two TCP connections: the command/data connection (InitCommandRequest /
InitCommandAck) and the event connection (InitEventRequest / InitEventAck).
Data phases stream in 1 MiB Data packets in both directions; incoming Data
packets go straight from the socket into a preallocated buffer and on to the
sink, so an object of any size costs 1 MiB of memory.  Packets are read
through the one parser (:class:`ptpfs.protocol.ptpip.PacketParser`, exactly
the bytes it wants) and the sequence is checked by
:class:`ptpfs.protocol.transaction.Transaction`: this module only moves
bytes.  Every socket operation has a timeout, and every transaction and the
handshake a deadline (:class:`~ptpfs.transport.base.Deadline`): a peer that
trickles is given up on.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ptpfs.errors import (
    ConnectionLost,
    DeviceClaimed,
    DeviceNotFound,
    DevicePermissionError,
    InvalidValue,
    ProtocolError,
    TransactionInterrupted,
    TransportError,
    TransportTimeout,
)
from ptpfs.protocol import ptpip as pk
from ptpfs.protocol.messages import DATA_OUT, NO_DATA, Event, Request, Response
from ptpfs.protocol.transaction import (
    INITIATOR,
    Cancel,
    Command,
    DataChunk,
    DataEnd,
    DataStart,
    Transaction,
    TransactionEvent,
    ptpip_data_events,
    ptpip_events,
)
from ptpfs.transport.base import (
    DEFAULT_MIN_RATE,
    DataSink,
    Deadline,
    Transport,
    fill_from,
)

__all__ = ["PtpipTransport", "load_guid", "CHUNK_SIZE"]

#: Payload bytes per outgoing Data packet and size of the receive buffer.
CHUNK_SIZE = 1 << 20
#: The deadline shortens a socket wait only when it ends this much sooner than the
#: per-read timeout (saves resetting the socket's timeout before every read).
DEADLINE_SLACK = 0.05
#: While a caller may be interrupted, a silent peer is waited for in slices this long.
INTERRUPT_SLICE = 0.25
#: Largest non-data packet accepted from a peer.
MAX_CONTROL_PACKET = 64 * 1024
_SOCKET_BUFFER = 4 << 20


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ptpfs"


def load_guid() -> bytes:
    """This computer's stable PTP/IP GUID (16 bytes), created on first use in
    ``$XDG_CONFIG_HOME/ptpfs/guid``.  Cameras remember paired hosts by it."""
    path = _config_dir() / "guid"
    try:
        text = path.read_text().strip().replace("-", "").replace(":", "")
        guid = bytes.fromhex(text)
        if len(guid) == 16:
            return guid
    except (OSError, ValueError):
        pass
    guid = uuid.uuid4().bytes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(guid.hex() + "\n")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable config dir only costs stability across runs
    return guid


def _init_fail_error(reason: int, where: str) -> TransportError:
    if reason == pk.FAIL_BUSY:
        return DeviceClaimed(f"{where}: the camera is busy with another PTP/IP client "
                             "(InitFail reason 2: busy); disconnect the other program")
    if reason == pk.FAIL_REJECTED_INITIATOR:
        return DevicePermissionError(f"{where}: the camera rejected this computer (InitFail "
                                     "reason 1: rejected initiator); pair/allow it on the camera")
    return TransportError(f"{where}: the camera refused the connection (InitFail reason "
                          f"{reason:#x})")


class _Channel:
    """One TCP connection: exact-length reads through the one PTP/IP packet parser, error
    mapping, and the transaction deadline (see :class:`~ptpfs.transport.base.Deadline`)."""

    def __init__(self, sock: socket.socket, name: str, *, stream_data: bool) -> None:
        self.sock = sock
        self.name = name
        self.desynced = False        # a timeout or bad packet hit in the middle of a packet
        self.parser = pk.PacketParser(MAX_CONTROL_PACKET, stream_data=stream_data)
        self.read_timeout = 10.0
        self.deadline: Deadline | None = None
        self._deadline_bound = False    # the last socket call was cut short by the deadline
        self._armed: float | None = None    # the socket's current timeout
        self._sliced = False                # the last socket call waits one interrupt slice
        #: ``() -> bool``: did the caller give up (see :attr:`Transport.interrupted`)?
        self.interrupted: Callable[[], bool] | None = None

    def settimeout(self, timeout: float) -> None:
        self.read_timeout = timeout
        self.sock.settimeout(timeout)
        self._armed = timeout

    def _arm(self, what: str, silent: float = 0.0) -> None:
        """Before each socket call: the per-call timeout (less the *silent* seconds already
        waited), cut short by the deadline, and sliced while an interrupt may come."""
        t = self.read_timeout - silent
        self._deadline_bound = self._sliced = False
        if self.deadline is not None:
            left = self.deadline.left(what)
            if left < t - DEADLINE_SLACK:
                t, self._deadline_bound = left, True
        if self.interrupted is not None and t > INTERRUPT_SLICE:
            t, self._sliced, self._deadline_bound = INTERRUPT_SLICE, True, False
        t = max(t, 0.001)
        if t != self._armed:
            self.sock.settimeout(t)
            self._armed = t

    def _timed_out(self, what: str, sending: bool) -> TransportTimeout:
        if self.deadline is not None and self._deadline_bound:
            return TransportTimeout(f"{self.name}: {what}: {self.deadline.explain()}")
        if sending:
            return TransportTimeout(f"{self.name}: {what}: peer stopped accepting data")
        return TransportTimeout(f"{self.name}: {what}: no data from the peer in time")

    def send(self, data: bytes | memoryview, what: str) -> None:
        try:
            self._arm(what)
            self.sock.sendall(data)
        except TimeoutError as exc:
            self.desynced = True
            raise self._timed_out(what, True) from exc
        except TransportTimeout:
            raise
        except OSError as exc:
            raise ConnectionLost(f"{self.name}: {what}: {exc.strerror or exc}") from exc
        if self.deadline is not None:
            self.deadline.moved(len(data))

    def recv_into(self, view: memoryview, what: str, *, boundary: bool = False) -> None:
        """Fill *view* completely (``boundary``: a timeout before the first byte
        leaves the stream in step).  While the peer is silent, :attr:`interrupted` is
        asked every :data:`INTERRUPT_SLICE` seconds: the caller gave up, and so does this."""
        pos = 0
        quiet_since = time.monotonic()
        while pos < len(view):
            try:
                self._arm(what, time.monotonic() - quiet_since if self.interrupted else 0.0)
                n = self.sock.recv_into(view[pos:])
            except (TimeoutError, TransportTimeout) as exc:
                interrupted = self._sliced and isinstance(exc, socket.timeout)
                if interrupted and self.interrupted is not None and not self.interrupted():
                    continue                       # only a slice of the wait is over
                if not (boundary and pos == 0):
                    self.desynced = True
                if isinstance(exc, TransportTimeout):
                    raise
                if interrupted:
                    raise TransactionInterrupted(f"{self.name}: {what}: interrupted (the "
                                                 "program waiting for it got a signal)") from exc
                raise self._timed_out(what, False) from exc
            except OSError as exc:
                raise ConnectionLost(f"{self.name}: {what}: {exc.strerror or exc}") from exc
            if n == 0:
                raise ConnectionLost(f"{self.name}: {what}: connection closed by the peer")
            pos += n
            quiet_since = time.monotonic()
            if self.deadline is not None:
                self.deadline.moved(n)

    def next_item(self, what: str) -> pk.Packet | pk.DataHeader:
        """The next packet (a data packet: its header; read its payload with
        :meth:`read_payload`), reading exactly the bytes the parser wants."""
        parser = self.parser
        try:
            while need := parser.wanted():
                buf = bytearray(need)
                self.recv_into(memoryview(buf), what, boundary=parser.at_boundary)
                parser.feed(buf)
            item = parser.next_packet()
        except ProtocolError:
            self.desynced = True
            raise
        assert item is not None and not isinstance(item, pk.DataPayload)
        return item

    def read_payload(self, view: memoryview, what: str) -> None:
        """Read the next ``len(view)`` payload bytes of the data packet in progress."""
        self.recv_into(view, what)
        self.parser.payload_consumed(len(view))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _connect(host: str, port: int, timeout: float, what: str) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        raise TransportTimeout(f"{what}: no answer from {host}:{port} within {timeout:g} s") \
            from exc
    except ConnectionRefusedError as exc:
        raise DeviceNotFound(f"{what}: nothing listens on {host}:{port} (connection refused; "
                             "is the camera's PTP/IP mode on?)") from exc
    except socket.gaierror as exc:
        raise DeviceNotFound(f"{what}: unknown host {host!r} ({exc})") from exc
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise DeviceNotFound(f"{what}: {host}:{port} unreachable ({exc.strerror})") from exc
        raise ConnectionLost(f"{what}: {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
    except OSError:
        pass
    return sock


class PtpipTransport(Transport):
    """A PTP/IP connection pair to one camera."""

    def __init__(self, host: str, port: int = pk.DEFAULT_PORT, *, guid: bytes | None = None,
                 name: str | None = None, timeout: float = 10.0,
                 connect_timeout: float = 5.0, min_rate: float = DEFAULT_MIN_RATE) -> None:
        if guid is not None and len(guid) != 16:
            raise InvalidValue("PTP/IP GUID must be 16 bytes")
        self.host, self.port = host, port
        self.timeout = timeout
        self.min_rate = min_rate
        self.description = f"ptpip:{host}:{port}"
        self.guid = guid if guid is not None else load_guid()
        self.name = name if name is not None else socket.gethostname()
        self.camera_guid = b""
        self.camera_name = ""
        self.connection_number = 0
        self._closed = False
        self._last_tid = 0
        self._machine = Transaction(INITIATOR)
        self._cmd_lock = threading.Lock()
        self._evt_lock = threading.Lock()
        self._stray_events: collections.deque[Event] = collections.deque(maxlen=64)
        self._buf = bytearray(CHUNK_SIZE + 12)
        self._cmd: _Channel | None = None
        self._evt: _Channel | None = None
        try:
            self._open(connect_timeout)
        except BaseException:
            self._shutdown()
            raise

    # ---------------------------------------------------------------- setup
    def _open(self, connect_timeout: float) -> None:
        where = self.description
        cmd = self._cmd = _Channel(_connect(self.host, self.port, connect_timeout, where),
                                   "command connection", stream_data=True)
        reply = self._init(cmd, pk.InitCommandRequest(self.guid, self.name), pk.InitCommandAck,
                           where)
        self.connection_number = reply.connection_number
        self.camera_guid, self.camera_name = reply.guid, reply.name
        evt = self._evt = _Channel(_connect(self.host, self.port, connect_timeout, where),
                                   "event connection", stream_data=False)
        self._init(evt, pk.InitEventRequest(self.connection_number), pk.InitEventAck, where)

    def _init(self, channel: _Channel, request: Any, expected: type, where: str) -> Any:
        """Send one init request and return the peer's acknowledgement of type *expected*
        (within the deadline: a peer trickling its answer is given up on)."""
        channel.settimeout(self.timeout)
        channel.deadline = Deadline(self.timeout, self.min_rate)
        try:
            channel.send(pk.encode_packet(request), f"sending {type(request).__name__}")
            reply = channel.next_item(f"waiting for {expected.__name__}")
        finally:
            channel.deadline = None
        if isinstance(reply, pk.InitFail):
            raise _init_fail_error(reply.reason, where)
        if not isinstance(reply, expected):
            raise ProtocolError(f"{where}: expected {expected.__name__}, got "
                                f"{type(reply).__name__}")
        return reply

    def _channel(self) -> _Channel:
        if self._closed or self._cmd is None:
            raise ConnectionLost(f"{self.description}: transport is closed")
        return self._cmd

    # ---------------------------------------------------------------- transact
    def transact(self, request: Request, *, data_out: BinaryIO | None = None,
                 data_out_length: int = 0, data_in: DataSink | None = None,
                 timeout: float | None = None) -> Response:
        """Run one transaction (OperationRequest, optional data phase, OperationResponse)
        within its deadline: *timeout* plus one second per ``min_rate`` bytes moved."""
        with self._cmd_lock:
            cmd = self._channel()
            if cmd.desynced:
                raise ConnectionLost(f"{self.description}: link out of step after an earlier "
                                     "timeout; reconnect")
            wait = self.timeout if timeout is None else timeout
            cmd.settimeout(wait)
            cmd.deadline = Deadline(wait, self.min_rate)
            cmd.interrupted = self.interrupted
            try:
                return self._transact(cmd, request, data_out, data_out_length, data_in, wait)
            finally:
                cmd.deadline = None
                cmd.interrupted = None

    def _transact(self, cmd: _Channel, request: Request, data_out: BinaryIO | None,
                  data_out_length: int, data_in: DataSink | None, wait: float) -> Response:
        tid = request.transaction_id
        self._last_tid = tid
        name = f"0x{request.code:04x}"
        machine = self._machine
        machine.reset()
        phase = DATA_OUT if data_out is not None else NO_DATA
        machine.send(Command(request.code, tid, tuple(request.params), phase))
        cmd.send(pk.encode_packet(pk.OperationRequest.from_request(request, phase)),
                 f"sending {name}")
        if data_out is not None:
            try:
                self._send_data(cmd, tid, data_out, data_out_length, name)
            except InvalidValue:
                self._cancel(cmd)    # the camera waits for data that will never come
                raise
        # Probes and stray events are not an answer: they must not keep a silent
        # transaction alive past its timeout.
        silent_until = time.monotonic() + wait
        while True:
            if time.monotonic() > silent_until:
                raise TransportTimeout(f"{name}: no reply within {wait:g} s (the device "
                                       "only sent probes or events)")
            item = cmd.next_item(f"waiting for the reply to {name}")
            if isinstance(item, pk.DataHeader):
                self._receive_data(cmd, item, data_in, name)
                silent_until = time.monotonic() + wait
                continue
            events = ptpip_events(item)
            for event in events:
                self._feed(cmd, event, name)
            if isinstance(item, pk.OperationResponse):
                return item.to_response()
            if isinstance(item, pk.ProbeRequest):
                cmd.send(pk.encode_packet(pk.ProbeResponse()), "answering probe")
            elif isinstance(item, pk.EventPacket):
                self._stray_events.append(item.to_event())
            elif not events:
                raise ProtocolError(f"{name}: unexpected {type(item).__name__} on the command "
                                    "connection")

    def _feed(self, cmd: _Channel, event: TransactionEvent, name: str) -> None:
        """Hand the peer's *event* to the transaction machine."""
        try:
            self._machine.receive(event)
        except ProtocolError:
            if not cmd.parser.at_boundary:
                cmd.desynced = True
            raise

    def _send_data(self, cmd: _Channel, tid: int, source: BinaryIO, length: int,
                   name: str) -> None:
        if length < 0:
            raise InvalidValue(f"negative data length {length}")
        self._machine.send(DataStart(tid, length))
        cmd.send(pk.encode_packet(pk.StartData(tid, length)), f"{name}: sending StartData")
        buf = self._buf
        view = memoryview(buf)
        remaining = length
        while True:
            k = min(CHUNK_SIZE, remaining)
            fill_from(source, view[12:12 + k], name)
            remaining -= k
            ptype = pk.TYPE_END_DATA if remaining == 0 else pk.TYPE_DATA
            view[:12] = pk.encode_packet_header(ptype, 4 + k) + struct.pack("<I", tid)
            self._machine.send(DataChunk(k))
            cmd.send(view[:12 + k], f"{name}: sending data")
            if remaining == 0:
                self._machine.send(DataEnd())
                return

    def _receive_data(self, cmd: _Channel, header: pk.DataHeader, sink: DataSink | None,
                      name: str) -> None:
        """One Data or EndData packet straight from the socket to *sink*."""
        machine = self._machine
        try:
            chunk, *end = ptpip_data_events(header.transaction_id, header.payload_length,
                                            header.end, machine)
        except ProtocolError:
            cmd.desynced = True
            raise
        self._feed(cmd, chunk, name)       # direction and announced total, before reading
        view = memoryview(self._buf)
        n = header.payload_length
        while n:
            k = min(n, CHUNK_SIZE)
            cmd.read_payload(view[:k], f"{name}: reading data")
            if sink is not None:
                sink.write(view[:k])
            n -= k
        for event in end:
            self._feed(cmd, event, name)   # EndData: the phase must be complete

    # ---------------------------------------------------------------- events
    def read_event(self, timeout: float) -> Event | None:
        """Wait up to *timeout* seconds for an Event packet on the event connection."""
        with self._evt_lock:
            if self._stray_events:
                return self._stray_events.popleft()
            evt = self._evt
            if self._closed or evt is None:
                raise ConnectionLost(f"{self.description}: transport is closed")
            if evt.desynced:
                raise ConnectionLost(f"{self.description}: event connection out of step")
            try:
                ready, _, _ = select.select([evt.sock], [], [], max(0.0, timeout))
            except (OSError, ValueError) as exc:
                raise ConnectionLost(f"{self.description}: event connection: {exc}") from exc
            if not ready:
                return None
            evt.settimeout(self.timeout)
            evt.deadline = Deadline(self.timeout, self.min_rate)
            try:
                packet = evt.next_item("reading event")
            finally:
                evt.deadline = None
            if isinstance(packet, pk.EventPacket):
                return packet.to_event()
            if isinstance(packet, pk.ProbeRequest):
                evt.send(pk.encode_packet(pk.ProbeResponse()), "answering probe")
                return None
            if isinstance(packet, pk.ProbeResponse):
                return None
            raise ProtocolError(f"unexpected {type(packet).__name__} on the event connection")

    # ---------------------------------------------------------------- recovery
    def recover(self) -> None:
        """Cancel the current transaction and discard what the camera still sends."""
        with self._cmd_lock:
            self._cancel(self._channel())

    def _cancel(self, cmd: _Channel) -> None:
        if cmd.desynced:
            raise ConnectionLost(f"{self.description}: link out of step after a timeout in "
                                 "the middle of a packet; reconnect")
        self._machine.send(Cancel())
        cmd.send(pk.encode_packet(pk.CancelPacket(self._last_tid)), "sending Cancel")
        cmd.settimeout(0.2)
        drain_until = time.monotonic() + max(self.timeout, 1.0)
        try:
            while True:
                if time.monotonic() > drain_until:
                    cmd.desynced = True
                    raise ConnectionLost(f"{self.description}: the device keeps talking after "
                                         "cancel; reconnect")
                item = cmd.next_item("draining after cancel")
                if isinstance(item, pk.DataHeader):
                    self._skip(cmd, item.payload_length)
        except TransportTimeout:
            if cmd.desynced:
                raise ConnectionLost(f"{self.description}: link out of step after cancel; "
                                     "reconnect") from None
        finally:
            if not self._closed:
                cmd.settimeout(self.timeout)

    def _skip(self, cmd: _Channel, n: int) -> None:
        view = memoryview(self._buf)
        while n:
            k = min(n, CHUNK_SIZE)
            cmd.read_payload(view[:k], "draining data")
            n -= k

    # ---------------------------------------------------------------- close
    def _shutdown(self) -> None:
        for ch in (self._evt, self._cmd):
            if ch is not None:
                try:
                    ch.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Close both connections.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._shutdown()

