"""A transport that calls a simulated camera in the same process.

Works with any responder that has the ``SimCamera`` interface (duck typing; this module
does not import :mod:`ptpfs.sim`).  Each transport takes its own connection
(``camera.connection()``) when the responder offers one, so several transports on one
camera have separate sessions.  Data phases move in chunks; each chunk is paced by
``camera.link.pace`` and counted by ``camera.faults.consume``, so bandwidth limits and
connection drops behave as they do over the socket and USB adapters.  A stalled camera
makes :meth:`transact` raise :class:`~ptpfs.errors.TransportTimeout` after the timeout.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from ptpfs.errors import ConnectionLost, TransportTimeout
from ptpfs.protocol.messages import Event, Request, Response
from ptpfs.transport.base import DataSink, Transport

CHUNK_SIZE = 1 << 20
HEADER = 12  # bytes of a USB container header, counted towards drop faults


class InProcessTransport(Transport):
    """Transport to *camera* (a ``SimCamera``-like responder) without any I/O."""

    def __init__(self, camera: Any, *, timeout: float = 10.0, chunk_size: int = CHUNK_SIZE,
                 close_camera: bool = False) -> None:
        self.camera = camera
        make_connection = getattr(camera, "connection", None)
        self._responder = make_connection() if callable(make_connection) else camera
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.description = "sim"
        self._close_camera = close_camera
        self._events: queue.Queue[Event] = queue.Queue()
        self._unsubscribe: Callable[[], None] | None = camera.subscribe(self._events.put)
        self._dead = False
        self._closed = False
        self._lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost("in-process transport is closed")
        if self._dead:
            raise ConnectionLost("simulated connection was dropped")

    def _move(self, nbytes: int) -> None:
        """Account for *nbytes* on the link: drop faults first, then pacing."""
        faults = getattr(self.camera, "faults", None)
        if faults is not None:
            try:
                faults.consume(nbytes)
            except Exception as exc:  # the simulator's LinkDropped
                self._drop()
                raise ConnectionLost("simulated connection drop") from exc
        link = getattr(self.camera, "link", None)
        if link is not None:
            link.pace(nbytes)

    def _drop(self) -> None:
        self._dead = True
        close = getattr(self._responder, "close", None)
        if self._responder is not self.camera and callable(close):
            close()

    # -- Transport -------------------------------------------------------------------------
    def transact(self, request: Request, *, data_out: BinaryIO | None = None,
                 data_out_length: int = 0, data_in: DataSink | None = None,
                 timeout: float | None = None) -> Response:
        with self._lock:
            self._check_open()
            limit = self.timeout if timeout is None else timeout
            faults = getattr(self.camera, "faults", None)
            if faults is not None and not faults.wait_while_stalled(limit):
                exc = TransportTimeout(f"simulated camera did not answer within {limit} s")
                exc.request_sent = False    # the transaction ID was not used
                raise exc
            self._move(HEADER + 4 * len(request.params))
            responder = self._responder
            if data_out is not None:
                receiver = responder.begin_data(request, data_out_length)
                self._move(HEADER)
                left = data_out_length
                try:
                    while left > 0:
                        chunk = data_out.read(min(self.chunk_size, left))
                        if not chunk:
                            break
                        self._move(len(chunk))
                        receiver.write(chunk)
                        left -= len(chunk)
                except BaseException:
                    receiver.abort()
                    raise
                reply = receiver.finish()
            elif responder.takes_data(request.code):
                receiver = responder.begin_data(request, 0)
                reply = receiver.finish()
            else:
                reply = responder.command(request)
            source = reply.data
            if source is not None:
                self._move(HEADER)
                left = source.length
                while left > 0:
                    chunk = source.read(min(self.chunk_size, left))
                    if not chunk:
                        break
                    self._move(len(chunk))
                    if data_in is not None:
                        data_in.write(chunk)
                    left -= len(chunk)
            drain = getattr(getattr(self.camera, "link", None), "drain", None)
            if callable(drain):
                drain()       # the response cannot overtake the data on the modelled wire
            self._move(HEADER + 4 * len(reply.params))
            return Response(reply.code, request.transaction_id, tuple(reply.params))

    def read_event(self, timeout: float) -> Event | None:
        if self._closed or self._dead:
            self._check_open()
        try:
            return self._events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            if self._dead:
                raise ConnectionLost("simulated connection was dropped") from None
            return None

    def recover(self) -> None:
        """Nothing to clear in process; a dropped connection stays dropped."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        close = getattr(self._responder, "close", None)
        if self._responder is not self.camera and callable(close):
            close()
        if self._close_camera:
            self.camera.close()
