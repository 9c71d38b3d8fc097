"""The interface every client-side transport implements.

A transport moves one whole transaction (command, optional data phase,
response) at a time.  It never interprets datasets; it only frames bytes.
Data phases stream: outgoing data is read from a file-like *data_out* in
chunks, incoming data is written to *data_in* chunk by chunk, so a 4 GB
object never sits in memory.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import BinaryIO, Protocol

from ptpfs.errors import InvalidValue, TransportTimeout
from ptpfs.protocol.messages import Event, Request, Response

#: Default slowest progress a transaction may make once its first *timeout* seconds are
#: used up: it may take *timeout* seconds plus one second per this many bytes moved.
DEFAULT_MIN_RATE = 16 * 1024


class Deadline:
    """A transaction's (or handshake's) time budget: *timeout* seconds plus one second
    per *min_rate* bytes moved so far, so a peer that trickles is given up on after about
    *timeout* seconds however much it announced, while one that keeps up at *min_rate*
    or better is never cut off.  *min_rate* 0 means no budget (per-read timeouts only)."""

    def __init__(self, timeout: float, min_rate: float) -> None:
        self.start = time.monotonic()
        self.timeout = timeout
        self.min_rate = min_rate
        self.bytes = 0

    def moved(self, n: int) -> None:
        """*n* more bytes went over the link."""
        self.bytes += n

    def _limit(self) -> float:
        if self.min_rate <= 0:
            return float("inf")
        return self.start + self.timeout + self.bytes / self.min_rate

    def expired(self) -> bool:
        return time.monotonic() >= self._limit()

    def left(self, what: str) -> float:
        """Seconds left; :class:`TransportTimeout` if none are."""
        left = self._limit() - time.monotonic()
        if left <= 0:
            raise TransportTimeout(f"{what}: {self.explain()}")
        return left

    def explain(self) -> str:
        elapsed = time.monotonic() - self.start
        return (f"the device did not move its data in time: given up after {elapsed:.1f} s "
                f"with {self.bytes} bytes moved (the limit is {self.timeout:g} s plus 1 s per "
                f"{self.min_rate:g} bytes; options timeout= and min_rate=)")


class DataSink(Protocol):
    """Where an incoming data phase goes (a file, a buffer, a hash)."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class Transport(ABC):
    """One connection to one device.  Not thread-safe: the session serialises."""

    #: Human-readable description, e.g. ``usb:001,004`` or ``ptpip:10.0.0.2:15740``.
    description: str = "transport"
    #: ``() -> bool``, set by the session before each transaction: has the caller given up
    #: (a signal to the program waiting)?  A transport may then abandon a transaction whose
    #: device is silent, raising :class:`~ptpfs.errors.TransactionInterrupted`.
    interrupted: Callable[[], bool] | None = None

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

    def recover(self) -> None:  # noqa: B027 - optional: a transport with nothing to reset keeps it
        """Bring the link back to idle after a timeout or protocol error
        (USB: cancel, get device status, clear halts; PTP/IP: cancel)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device.  Idempotent."""

    def __enter__(self) -> Transport:
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
