"""A PTP/IP server (CIPA DC-005) serving a simulated camera over TCP.

``PtpipServer(camera).start()`` listens on 127.0.0.1 (port 0 = any free
port, see ``.port``); any PTP/IP initiator -- ptpfs's own transport or
gphoto2 (``gphoto2 --port ptpip:127.0.0.1:PORT``) -- can connect.  Every
connection pair gets a thread for its command connection and one for its
event connection; pairs may come one after another or at the same time.

Data phases stream in both directions (1 MiB Data packets out of
``Reply.data``; incoming Data packets go to the camera's ``DataReceiver``
as they arrive).  The camera's link model paces the bytes and its faults
apply: ``drop_after`` closes both sockets of the pair, ``stall`` withholds the
reply until the stall ends (a Cancel or a new request meanwhile discards it).

Packets are read through the one parser (:class:`PacketReader` over
:class:`ptpfs.protocol.ptpip.PacketParser`, Data payloads streamed) and the
sequence is checked by :class:`ptpfs.protocol.transaction.Transaction` in the
responder role.

libgphoto2 compatibility: it sends no Data/EndData at all for an empty data
phase (only StartData with length 0), so an empty host-to-device data phase
completes on StartData, and a stray empty EndData after it is ignored.
"""

from __future__ import annotations

import collections
import itertools
import logging
import select
import socket
import struct
import threading
from typing import Any

from ptpfs.errors import ProtocolError
from ptpfs.protocol import ptpip as pk
from ptpfs.protocol.codes import RC
from ptpfs.protocol.messages import DATA_OUT, NO_DATA, Event, Request
from ptpfs.protocol.transaction import (
    RESPONDER,
    Cancel,
    Command,
    DataChunk,
    DataStart,
    Response,
    Transaction,
    ptpip_data_events,
    ptpip_events,
)

__all__ = ["PtpipServer"]

_log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
#: The first Data packet of a reply is small, so the modelled wire starts while
#: the rest is still being read (a camera streams; it does not read 1 MiB first).
FIRST_CHUNK_SIZE = 64 << 10
_MAX_CONTROL = 64 * 1024
_SERVER_GUID = bytes.fromhex("70747066732d73696d2d63616d657261")  # "ptpfs-sim-camera"


class _Closed(Exception):
    """The peer went away or the server is stopping."""


class _Pair:
    """One command connection plus (once it arrives) its event connection."""

    def __init__(self, number: int, cmd: socket.socket) -> None:
        self.number = number
        self.cmd = cmd
        self.evt: socket.socket | None = None
        self.events: collections.deque[Event] = collections.deque(maxlen=1024)
        self.cond = threading.Condition()
        self.closed = False

    def close(self) -> None:
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self.cond.notify_all()
        for sock in (self.cmd, self.evt):
            if sock is not None:
                _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _sendall_parts(sock: socket.socket, parts: list[memoryview]) -> None:
    """``sendall`` of several buffers with scatter/gather I/O (no joining copy)."""
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = parts[0][sent:]


def _recv_exact(sock: socket.socket, n: int, into: memoryview | None = None) -> bytes | None:
    """Exactly *n* bytes (into *into* when given, returning ``None``)."""
    view = into if into is not None else memoryview(bytearray(n))
    pos = 0
    while pos < n:
        try:
            got = sock.recv_into(view[pos:n])
        except OSError as exc:
            raise _Closed(str(exc)) from exc
        if got == 0:
            raise _Closed("peer closed the connection")
        pos += got
    return None if into is not None else bytes(view)


class PacketReader:
    """Packets from one socket through the one PTP/IP parser, reading exactly the bytes it
    wants (Data packets stream: a :class:`~ptpfs.protocol.ptpip.DataHeader`, then
    :meth:`read_payload`).  *account* is told every byte count read."""

    def __init__(self, sock: socket.socket, *, stream_data: bool = True,
                 account: Any = None) -> None:
        self.sock = sock
        self.parser = pk.PacketParser(_MAX_CONTROL, stream_data=stream_data)
        self.account = account
        self.pending: pk.Packet | pk.DataHeader | None = None   # looked at, not yet used

    def _recv(self, n: int, into: memoryview | None = None) -> bytes | None:
        data = _recv_exact(self.sock, n, into)
        if self.account is not None:
            self.account(n)
        return data

    def next_item(self) -> pk.Packet | pk.DataHeader:
        """The next packet (or data packet header)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            return pending
        while True:
            try:
                item = self.parser.next_packet()
            except ProtocolError as exc:
                raise _Closed(str(exc)) from None
            if item is not None:
                assert not isinstance(item, pk.DataPayload)
                return item
            data = self._recv(self.parser.wanted()) or b""
            try:
                self.parser.feed(data)
            except ProtocolError as exc:
                raise _Closed(str(exc)) from None

    def read_payload(self, view: memoryview) -> None:
        """The next ``len(view)`` payload bytes of the data packet in progress."""
        self._recv(len(view), view)
        self.parser.payload_consumed(len(view))


class PtpipServer:
    """Serve *camera* (the responder interface of ``ptpfs.sim``) over PTP/IP."""

    def __init__(self, camera: Any, host: str = "127.0.0.1", port: int = 0, *,
                 name: str = "ptpfs simulated camera", guid: bytes = _SERVER_GUID) -> None:
        self.camera = camera
        self.host = host
        self._requested_port = port
        self.name = name
        self.guid = guid
        #: When set to a reason code, InitCommandRequests are answered with InitFail.
        self.refuse: int | None = None
        #: Number of command connections accepted so far.
        self.connections = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._pairs: dict[int, _Pair] = {}
        self._socks: set[socket.socket] = set()       # every accepted socket still open
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()

    # ---------------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        """The TCP port listened on (valid after :meth:`start`)."""
        if self._listener is None:
            return self._requested_port
        return int(self._listener.getsockname()[1])

    def start(self) -> PtpipServer:
        """Bind, listen and accept in a background thread."""
        if self._listener is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._listener = sock
        self._spawn(self._accept_loop, "ptpip-accept")
        return self

    def stop(self) -> None:
        """Close every connection and the listener; join the threads."""
        self._stopping.set()
        if self._listener is not None:
            _close(self._listener)
        with self._lock:
            pairs = list(self._pairs.values())
            socks = list(self._socks)
        for pair in pairs:
            pair.close()
        for sock in socks:
            _close(sock)
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]

    def __enter__(self) -> PtpipServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()]
        self._threads.append(t)
        t.start()

    # ---------------------------------------------------------------- accepting
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._socks.add(conn)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:
                pass
            self._spawn(self._handshake, "ptpip-conn", conn)

    def _handshake(self, conn: socket.socket) -> None:
        try:
            self._dispatch(conn)
        finally:
            _close(conn)
            with self._lock:
                self._socks.discard(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        reader = PacketReader(conn, stream_data=False)
        try:
            conn.settimeout(10.0)
            packet = reader.next_item()
            conn.settimeout(None)
        except Exception as exc:  # noqa: BLE001 - whatever a stranger sends, the server carries on
            _log.debug("PTP/IP handshake failed: %s", exc)
            if reader.parser.last_was_init_command_request:
                # a malformed InitCommandRequest gets a reason, not a silent close
                self._send_quiet(conn, pk.encode_packet(pk.InitFail(pk.FAIL_UNSPECIFIED)))
            _close(conn)
            return
        if isinstance(packet, pk.InitCommandRequest) and packet.version >> 16 != 1:
            _log.debug("PTP/IP InitCommandRequest of version 0x%08x refused", packet.version)
            self._send_quiet(conn, pk.encode_packet(pk.InitFail(pk.FAIL_REJECTED_INITIATOR)))
            _close(conn)
        elif isinstance(packet, pk.InitCommandRequest):
            self._serve_command(conn, packet)
        elif isinstance(packet, pk.InitEventRequest):
            self._serve_events(conn, packet.connection_number)
        elif isinstance(packet, pk.ProbeRequest):
            self._send_quiet(conn, pk.encode_packet(pk.ProbeResponse()))
            _close(conn)
        else:
            _close(conn)

    @staticmethod
    def _send_quiet(sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass

    # ---------------------------------------------------------------- command connection
    def _serve_command(self, conn: socket.socket, init: pk.InitCommandRequest) -> None:
        if self.refuse is not None:
            self._send_quiet(conn, pk.encode_packet(pk.InitFail(self.refuse)))
            _close(conn)
            return
        if not getattr(getattr(self.camera, "faults", None), "present", True):
            _close(conn)      # an unplugged camera: the host is gone
            return
        number = next(self._numbers)
        pair = _Pair(number, conn)
        with self._lock:
            self._pairs[number] = pair
            self.connections += 1
        make_connection = getattr(self.camera, "connection", None)
        responder = make_connection() if callable(make_connection) else self.camera
        loop = _CommandLoop(self, pair, responder)
        try:
            conn.sendall(pk.encode_packet(pk.InitCommandAck(number, self.guid, self.name)))
            loop.run()
        except (_Closed, OSError) as exc:
            _log.debug("PTP/IP command connection %d ended: %s", number, exc)
        except ProtocolError as exc:
            _log.warning("PTP/IP command connection %d: protocol error: %s", number, exc)
        finally:
            _abort(loop.receiver)
            pair.close()
            if responder is not self.camera:
                responder.close()     # the client went away: its session ends
            with self._lock:
                self._pairs.pop(number, None)

    # ---------------------------------------------------------------- event connection
    def _serve_events(self, conn: socket.socket, number: int) -> None:
        with self._lock:
            pair = self._pairs.get(number)
        if pair is None or pair.evt is not None or pair.closed:
            self._send_quiet(conn, pk.encode_packet(pk.InitFail(pk.FAIL_UNSPECIFIED)))
            _close(conn)
            return
        pair.evt = conn

        def on_event(event: Event) -> None:
            with pair.cond:
                pair.events.append(event)
                pair.cond.notify_all()

        unsubscribe = self.camera.subscribe(on_event)
        reader = PacketReader(conn, stream_data=False)
        try:
            conn.sendall(pk.encode_packet(pk.InitEventAck()))
            while not pair.closed and not self._stopping.is_set():
                with pair.cond:
                    if not pair.events:
                        pair.cond.wait(0.1)
                    pending = list(pair.events)
                    pair.events.clear()
                for event in pending:
                    data = pk.encode_packet(pk.EventPacket(event.code, event.transaction_id,
                                                           tuple(event.params)[:3]))
                    conn.sendall(data)
                readable, _, _ = select.select([conn], [], [], 0)
                if readable:
                    packet = reader.next_item()
                    if isinstance(packet, pk.ProbeRequest):
                        conn.sendall(pk.encode_packet(pk.ProbeResponse()))
        except (_Closed, OSError, ProtocolError, ValueError) as exc:
            _log.debug("PTP/IP event connection %d ended: %s", number, exc)
        finally:
            unsubscribe()
            pair.close()


class _CommandLoop:
    """Serves operations on one command connection."""

    def __init__(self, server: PtpipServer, pair: _Pair, responder: Any) -> None:
        self.server = server
        self.camera = responder
        self.receiver: Any = None                      # data phase in progress
        self.pair = pair
        self.sock = pair.cmd
        self.buf = bytearray(CHUNK_SIZE)
        self.reader = PacketReader(self.sock, account=self._account)
        self.machine = Transaction(RESPONDER)

    # -- faults and pacing
    def _account(self, n: int) -> None:
        from ptpfs.sim.faults import LinkDropped

        try:
            self.camera.faults.consume(n)
        except LinkDropped:
            self.pair.close()
            raise _Closed("simulated connection drop") from None
        self.camera.link.pace(n)

    def _send(self, data: bytes | memoryview, *more: bytes | memoryview) -> None:
        """Send *data* (and *more* parts, gathered without copying)."""
        self._account(len(data) + sum(len(m) for m in more))
        try:
            if more:
                _sendall_parts(self.sock, [memoryview(data), *(memoryview(m) for m in more)])
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise _Closed(str(exc)) from exc

    def _drain(self) -> None:
        """Wait until the modelled wire has carried everything sent so far."""
        drain = getattr(self.camera.link, "drain", None)
        if callable(drain):
            drain()

    # -- main loop
    def run(self) -> None:
        while not self.pair.closed:
            item = self.reader.next_item()
            if isinstance(item, pk.DataHeader):
                self._skip(item.payload_length)   # stray (e.g. after cancel)
            elif isinstance(item, pk.OperationRequest):
                takes = self.camera.takes_data(item.code)
                self.machine.receive(ptpip_events(item, DATA_OUT if takes else NO_DATA)[0])
                self._operation(item.to_request())
            elif isinstance(item, pk.ProbeRequest):
                self._send(pk.encode_packet(pk.ProbeResponse()))
            elif isinstance(item, pk.CancelPacket):
                self.machine.receive(Cancel())      # nothing in progress
            else:
                raise ProtocolError(f"unexpected {type(item).__name__} on the command "
                                       "connection")

    def _skip(self, n: int) -> None:
        view = memoryview(self.buf)
        while n:
            k = min(n, len(view))
            self.reader.read_payload(view[:k])
            n -= k

    def _operation(self, request: Request) -> None:
        camera = self.camera
        if camera.takes_data(request.code):
            reply = self._receive_data(request)
            if reply is _CANCELLED:
                return
        else:
            try:
                reply = camera.command(request)
            except Exception:  # noqa: BLE001 - a simulator bug answers GeneralError
                _log.exception("simulated camera failed on %r", request)
                reply = None
        if not self._wait_stall():
            self.machine.reset()      # the reply is dropped
            return
        self._reply(request, reply)

    def _wait_stall(self) -> bool:
        """Hold the reply while the camera is stalled; ``False`` if the initiator
        cancelled or moved on meanwhile (the reply is then dropped)."""
        faults = self.camera.faults
        while not faults.wait_while_stalled(0.05):
            if self.pair.closed or self.server._stopping.is_set():
                raise _Closed("stopping")
            readable, _, _ = select.select([self.sock], [], [], 0)
            if readable:
                item = self.reader.next_item()
                if not isinstance(item, pk.CancelPacket):
                    self.reader.pending = item
                return False
        return True

    def _receive_data(self, request: Request) -> Any:
        machine = self.machine
        item = self.reader.next_item()
        if isinstance(item, pk.CancelPacket):
            machine.receive(Cancel())
            return _CANCELLED
        if isinstance(item, pk.DataHeader):
            raise ProtocolError(f"expected StartData after 0x{request.code:04x}, got data")
        events = ptpip_events(item)
        if not events or not isinstance(events[0], DataStart):
            raise ProtocolError(f"expected StartData after 0x{request.code:04x}, got "
                                   f"{type(item).__name__}")
        machine.receive(events[0])          # checks the transaction ID
        total = machine.data_length
        try:
            receiver = self.camera.begin_data(
                request, pk.UNKNOWN_TOTAL_LENGTH if total is None else total)
        except Exception:  # noqa: BLE001 - a simulator bug answers GeneralError
            _log.exception("simulated camera failed starting data for %r", request)
            receiver = None
        self.receiver = receiver
        view = memoryview(self.buf)
        # libgphoto2 sends neither Data nor EndData for an empty phase
        while machine.in_data_phase:
            item = self.reader.next_item()
            if isinstance(item, pk.CancelPacket):
                machine.receive(Cancel())
                _abort(receiver)
                self.receiver = None
                return _CANCELLED
            if not isinstance(item, pk.DataHeader):
                raise ProtocolError(f"data phase interrupted by {type(item).__name__}")
            chunk, *end = ptpip_data_events(item.transaction_id, item.payload_length,
                                            item.end, machine)
            machine.receive(chunk)
            n = item.payload_length
            while n:
                k = min(n, len(view))
                self.reader.read_payload(view[:k])
                if receiver is not None:
                    receiver.write(view[:k])     # receivers copy what they keep
                n -= k
            for event in end:
                machine.receive(event)
        self.receiver = None
        if receiver is None:
            return None
        try:
            return receiver.finish()
        except Exception:  # noqa: BLE001 - a simulator bug answers GeneralError
            _log.exception("simulated camera failed finishing %r", request)
            return None

    def _reply(self, request: Request, reply: Any) -> None:
        tid = request.transaction_id
        if reply is None:
            code, params, data = RC.GeneralError, (), None
        else:
            code, params, data = reply.code, tuple(reply.params), reply.data
        take = getattr(self.camera.faults, "take_corruption", None)   # ptpfs.sim.faults hook
        corrupt = take() if callable(take) else None
        # An injected fault breaks the sequence on purpose: the machine is bypassed for it.
        machine = self.machine if corrupt is None else Transaction(RESPONDER)
        if corrupt is not None:
            self.machine.reset()
            machine.receive(Command(request.code, tid, tuple(request.params)))
        if corrupt == "garbage":
            self._send(b"\x07\x00\x00\x00junk\xff\xff\xff\xff")
            return
        if corrupt == "type":
            self._send(pk.encode_packet_header(pk.TYPE_DATA, 8) + struct.pack("<I", tid)
                       + b"oops")
        if corrupt == "tid":
            tid = (tid + 7) & 0xFFFFFFFF
            machine.reset()
            machine.receive(Command(request.code, tid, tuple(request.params)))
        if corrupt == "nodata":
            data = None
        if data is not None:
            machine.send(DataStart(tid, data.length))
            self._send(pk.encode_packet(pk.StartData(tid, data.length)))
            remaining = data.length
            step = FIRST_CHUNK_SIZE
            while True:
                k = min(step, remaining)
                step = CHUNK_SIZE
                chunk = data.read(k) if k else b""
                short = len(chunk) < k
                remaining -= len(chunk)
                last = remaining == 0 or short
                ptype = pk.TYPE_END_DATA if last else pk.TYPE_DATA
                machine.send(DataChunk(len(chunk)))
                self._send(pk.encode_packet_header(ptype, 4 + len(chunk))
                           + struct.pack("<I", tid), chunk)
                if last:
                    if short:
                        machine.reset()     # the source ran dry: the initiator will notice
                    break
        self._drain()    # the response cannot overtake the data on the wire
        if not machine.idle:
            machine.send(Response(code, tid, params))
        self._send(pk.encode_packet(pk.OperationResponse(code, tid, params)))


_CANCELLED = object()


def _abort(receiver: Any) -> None:
    abort = getattr(receiver, "abort", None)
    if callable(abort):
        try:
            abort()
        except Exception:  # noqa: BLE001 - logged; the connection goes on
            _log.exception("aborting a data phase failed")
