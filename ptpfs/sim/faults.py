"""Faults to inject into the simulated camera, settable at runtime from any thread.

* ``busy(n)``: the next *n* transactions are answered ``DeviceBusy`` (applied by
  :class:`~ptpfs.sim.camera.SimCamera` itself).
* ``drop_after(nbytes)``: the connection breaks once *nbytes* more bytes have
  crossed it.  Server adapters call :meth:`Faults.consume` for every chunk they
  move; it raises :class:`LinkDropped` when the budget runs out, and the adapter
  then closes the connection (the in-process transport raises ``ConnectionLost``).
* ``stall(seconds)`` / ``stall(None)``: the camera stops answering for a while or
  forever.  Adapters call :meth:`Faults.wait_while_stalled` before answering.
* ``unplug()`` / ``replug()``: the camera goes away (the next bytes on any link drop it,
  and ``present`` is false so reconnecting fails) and comes back.  The in-process
  reconnect path and the PTP/IP server check ``present``.
* ``keep_partial_uploads``: a SendObject broken off by a dropped link leaves the bytes
  received so far as an object (as many real cameras do) instead of nothing.
* ``corrupt_next(kind)``: the PTP/IP server corrupts its next reply (``"tid"``: wrong
  transaction ID, ``"garbage"``: bytes that are no packet, ``"type"``: a Data packet
  without StartData, ``"nodata"``: the response without the data phase).  The USB
  backend has the same switch as ``SimUsbDevice.inject``.
"""

from __future__ import annotations

import math
import threading
import time

#: Reply corruptions :meth:`Faults.corrupt_next` knows.
CORRUPTIONS = ("tid", "garbage", "type", "nodata")


class LinkDropped(Exception):
    """Raised by :meth:`Faults.consume` when the connection must be dropped now."""


class Faults:
    """Thread-safe fault switches for one simulated camera."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0
        self._drop_budget: int | None = None
        self._stall_until = 0.0  # monotonic deadline; math.inf = forever
        self.drops = 0  # how many times a drop was triggered
        self.present = True
        #: Keep what a broken SendObject received as a (truncated) object.
        self.keep_partial_uploads = False
        #: Answer SendObjectInfo for a folder with a handle the folder does not get (as
        #: QEMU's usb-mtp may: it predicts a handle and registers the folder later,
        #: possibly under another handle); the folder is listed under its real handle.
        self.mispredict_folder_handles = False
        self._corrupt: str | None = None

    # -- DeviceBusy -----------------------------------------------------------
    def busy(self, count: int) -> None:
        """Answer the next *count* transactions with ``DeviceBusy``."""
        with self._cond:
            self._busy = max(0, int(count))

    def busy_left(self) -> int:
        """How many ``DeviceBusy`` answers are still pending."""
        with self._cond:
            return self._busy

    def take_busy(self) -> bool:
        """Consume one pending busy answer; ``True`` if this transaction is busy."""
        with self._cond:
            if self._busy > 0:
                self._busy -= 1
                return True
            return False

    # -- connection drop -------------------------------------------------------
    def drop_after(self, nbytes: int | None) -> None:
        """Drop the connection after *nbytes* more bytes (``None`` disarms)."""
        with self._cond:
            self._drop_budget = None if nbytes is None else max(0, int(nbytes))

    def consume(self, nbytes: int) -> None:
        """Account for *nbytes* about to cross a connection; raise
        :class:`LinkDropped` if that would exceed the armed budget (one-shot)."""
        with self._cond:
            if not self.present:
                raise LinkDropped("simulated camera unplugged")
            if self._drop_budget is None:
                return
            if nbytes > self._drop_budget:
                self._drop_budget = None
                self.drops += 1
                raise LinkDropped("simulated connection drop")
            self._drop_budget -= nbytes

    # -- unplug / replug ---------------------------------------------------------
    def unplug(self) -> None:
        """The camera goes away: the next bytes on a link drop it, reconnects fail."""
        with self._cond:
            if self.present:
                self.drops += 1
            self.present = False
            self._cond.notify_all()

    def replug(self) -> None:
        """The camera is back: new connections succeed again."""
        with self._cond:
            self.present = True

    # -- corrupted replies -------------------------------------------------------
    def corrupt_next(self, kind: str | None) -> None:
        """Corrupt the next reply of the PTP/IP server (see the module docstring)."""
        if kind not in CORRUPTIONS and kind is not None:
            raise ValueError(f"unknown corruption {kind!r} (known: {', '.join(CORRUPTIONS)})")
        with self._cond:
            self._corrupt = kind

    def take_corruption(self) -> str | None:
        """The pending corruption (one-shot), for server adapters."""
        with self._cond:
            kind, self._corrupt = self._corrupt, None
            return kind

    # -- stall -----------------------------------------------------------------
    def stall(self, seconds: float | None) -> None:
        """Stop answering for *seconds* (``None`` = until :meth:`clear`)."""
        with self._cond:
            self._stall_until = math.inf if seconds is None else time.monotonic() + seconds
            self._cond.notify_all()

    def stall_remaining(self) -> float:
        """Seconds the stall still lasts (0 if none, ``math.inf`` if forever)."""
        with self._cond:
            return max(0.0, self._stall_until - time.monotonic())

    def wait_while_stalled(self, timeout: float | None = None) -> bool:
        """Block while stalled; ``True`` when free to answer, ``False`` if
        *timeout* seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                remaining = self._stall_until - now
                if remaining <= 0:
                    return True
                if deadline is not None:
                    if now >= deadline:
                        return False
                    remaining = min(remaining, deadline - now)
                self._cond.wait(None if remaining == math.inf else remaining)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._cond:
            self._busy = 0
            self._drop_budget = None
            self._stall_until = 0.0
            self._corrupt = None
            self.present = True
            self.keep_partial_uploads = False
            self.mispredict_folder_handles = False
            self._cond.notify_all()
