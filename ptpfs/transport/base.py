"""The interface every client-side transport implements.

A transport moves one whole transaction (command, optional data phase,
response) at a time.  It never interprets datasets; it only frames bytes.
Data phases stream: outgoing data is read from a file-like *data_out* in
chunks, incoming data is written to *data_in* chunk by chunk, so a 4 GB
object never sits in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import BinaryIO, Protocol

from ptpfs.errors import InvalidValue
from ptpfs.protocol.messages import Event, Request, Response


class DataSink(Protocol):
    """Where an incoming data phase goes (a file, a buffer, a hash)."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class Transport(ABC):
    """One connection to one device.  Not thread-safe: the session serialises."""

    #: Human-readable description, e.g. ``usb:001,004`` or ``ptpip:10.0.0.2:15740``.
    description: str = "transport"

    @abstractmethod
    def transact(self, request: Request, *, data_out: BinaryIO | None = None,
                 data_out_length: int = 0, data_in: DataSink | None = None,
                 timeout: float | None = None) -> Response:
        """Run one transaction.

        If *data_out* is given, ``data_out_length`` bytes are read from it and
        sent as the data phase.  Otherwise, if the device sends a data phase,
        it is written to *data_in* (or discarded when *data_in* is ``None``).
        Raises :class:`~ptpfs.errors.TransportError` subclasses on link
        failure and :class:`~ptpfs.errors.ProtocolError` on malformed framing.
        """

    @abstractmethod
    def read_event(self, timeout: float) -> Event | None:
        """Wait up to *timeout* seconds for an event; ``None`` if none came.

        Called from the session's event thread, concurrently with
        :meth:`transact`, so implementations must keep the two paths apart.
        """

    def recover(self) -> None:
        """Bring the link back to idle after a timeout or protocol error
        (USB: cancel, get device status, clear halts; PTP/IP: cancel)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device.  Idempotent."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fill_from(source: BinaryIO, target: memoryview, name: str) -> None:
    """Fill *target* completely from an outgoing data source (``readinto`` where it
    has one); a source that ends early raises :class:`InvalidValue`."""
    pos = 0
    readinto = getattr(source, "readinto", None)
    while pos < len(target):
        if readinto is not None:
            n = readinto(target[pos:])
        else:
            chunk = source.read(len(target) - pos)
            n = len(chunk) if chunk else 0
            target[pos:pos + n] = chunk
        if not n:
            raise InvalidValue(f"{name}: data source ended {len(target) - pos} bytes early")
        pos += n
