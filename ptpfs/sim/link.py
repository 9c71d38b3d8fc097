"""A model of the link between host and simulated camera: bandwidth and latency.

Server adapters (and :class:`~ptpfs.transport.inprocess.InProcessTransport`)
call :meth:`LinkModel.pace` once per chunk they move; the camera calls
:meth:`LinkModel.delay_transaction` once per transaction.  Pacing is a virtual
clock shared by every connection to the camera: each chunk occupies the wire
for ``nbytes / bandwidth`` seconds after the previous one, so the long-run
rate is exact and nothing busy-waits.

The sender may run up to :attr:`LinkModel.LEAD` seconds ahead of the modelled
wire, as a real device keeps its DMA buffer filled while the wire drains it:
the simulator's own work per chunk (producing the bytes, copying them, writing
an upload to disk) then overlaps the wire time instead of being charged as
idle wire.  Adapters call :meth:`LinkModel.drain` before they send a
transaction's response, so a transaction never completes before all of its
bytes would have crossed the wire; the lead therefore never shortens a
transaction, it only lets data arrive at most ``LEAD`` early within one.
"""

from __future__ import annotations

import threading
import time


class LinkModel:
    """Bandwidth (bytes/s, ``None`` = unlimited) and latency (s per transaction)."""

    #: How far (in seconds) a sender may run ahead of the modelled wire.
    LEAD = 0.004

    def __init__(self, bandwidth: float | None = None, latency: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._bandwidth: float | None = None
        self._latency = 0.0
        self._next_free = 0.0  # monotonic time when the wire is next idle
        self.bandwidth = bandwidth
        self.latency = latency

    @property
    def bandwidth(self) -> float | None:
        """Bytes per second, or ``None`` for an unlimited link."""
        return self._bandwidth

    @bandwidth.setter
    def bandwidth(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("bandwidth must be positive or None")
        with self._lock:
            self._bandwidth = None if value is None else float(value)
            self._next_free = 0.0

    @property
    def latency(self) -> float:
        """Seconds added to every transaction."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        if value < 0:
            raise ValueError("latency must be >= 0")
        self._latency = float(value)

    def pace(self, nbytes: int) -> None:
        """Account for *nbytes* crossing the link; sleep so the rate holds."""
        if nbytes <= 0:
            return
        with self._lock:
            bandwidth = self._bandwidth
            if bandwidth is None:
                return
            now = time.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + nbytes / bandwidth
            wait = self._next_free - now - self.LEAD
        if wait > 0:
            time.sleep(wait)

    def drain(self) -> None:
        """Sleep until every byte paced so far has crossed the wire (call
        before a transaction's response)."""
        with self._lock:
            if self._bandwidth is None:
                return
            wait = self._next_free - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def delay_transaction(self) -> None:
        """Sleep for the per-transaction latency (if any)."""
        latency = self._latency
        if latency > 0:
            time.sleep(latency)

    def __repr__(self) -> str:
        return f"LinkModel(bandwidth={self._bandwidth!r}, latency={self._latency!r})"
