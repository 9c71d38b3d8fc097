"""A virtual clock for the simulator's link model, so tests assert modelled time, not wall time.

``VirtualClock`` stands in for the ``time`` module inside :mod:`ptpfs.sim.link`
(``monkeypatch.setattr(ptpfs.sim.link, "time", clock)``): ``sleep(d)`` returns at once and
moves the clock to the moment the caller would have woken (its last reading plus *d*), so
concurrent senders behave as they would in real time while a loaded machine changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import ptpfs.sim.link


class VirtualClock:
    """``monotonic()`` and ``sleep()`` on modelled time; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 1000.0
        self._seen = threading.local()
        self.sleeps = 0

    def monotonic(self) -> float:
        with self._lock:
            self._seen.now = self._now
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            base = getattr(self._seen, "now", self._now)
            self._now = max(self._now, base + max(seconds, 0.0))
            self._seen.now = self._now
            self.sleeps += 1

    def advance(self, seconds: float) -> None:
        """Time passing outside the link model (the sender's own work, idleness)."""
        self.sleep(seconds)


@contextmanager
def virtual_link_time(monkeypatch) -> Iterator[VirtualClock]:
    """Run the link model on a :class:`VirtualClock` for the duration of the block."""
    clock = VirtualClock()
    monkeypatch.setattr(ptpfs.sim.link, "time", clock)
    yield clock
