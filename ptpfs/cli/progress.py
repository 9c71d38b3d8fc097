"""A transfer progress bar on stderr, drawn only when stderr is a terminal.

``ProgressBar`` is a callable ``(done, total=None)`` so it can be handed to
any library call taking a progress callback (``Session.get_object(...,
progress=bar)``); :class:`CountingWriter` wraps a sink so the bar follows the
bytes actually written.  When the stream is not a TTY (pipes, tests, cron) nothing is
written at all.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import BinaryIO, TextIO


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - loop always returns


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """``label  42% [#####.....] 12.0 MiB/28.6 MiB 5.1 MiB/s 0:03``.

    *enabled* defaults to ``stream.isatty()``.  Redraws are limited to one per
    *interval* seconds; :meth:`close` draws the final state and ends the line.
    """

    def __init__(self, total: int | None, label: str = "", *, stream: TextIO | None = None,
                 enabled: bool | None = None, interval: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total = total
        self.label = label
        self.done = 0
        self.interval = interval
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False
        self._closed = False

    def __call__(self, done: int, total: int | None = None) -> None:
        """Report *done* bytes of *total* (progress-callback signature)."""
        if total is not None:
            self.total = total
        self.done = done
        self._maybe_draw()

    def advance(self, n: int) -> None:
        """Report *n* more bytes."""
        self.done += n
        self._maybe_draw()

    def _maybe_draw(self) -> None:
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The bar's current text (without the leading carriage return)."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        width = shutil.get_terminal_size((80, 24)).columns
        if self.total:
            frac = min(self.done / self.total, 1.0)
            remaining = (self.total - self.done) / rate if rate > 0 else 0.0
            tail = (f" {frac * 100:3.0f}% {{bar}} {_human(self.done)}/{_human(self.total)}"
                    f" {_human(rate)}/s {_clock(remaining if frac < 1 else elapsed)}")
            label = self.label[:max(width // 3, 8)]
            room = width - len(label) - len(tail.format(bar="[]")) - 1
            cells = max(min(room, 40), 0)
            filled = int(frac * cells)
            bar = f"[{'#' * filled}{'.' * (cells - filled)}]" if cells >= 5 else ""
            return (label + tail.format(bar=bar))[:width - 1]
        return f"{self.label} {_human(self.done)} {_human(rate)}/s {_clock(elapsed)}"[:width - 1]

    def _draw(self, now: float) -> None:
        text = self.render(now)
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self._closed:
            return
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
        self._closed = True

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CountingWriter:
    """A sink that forwards writes to *target* and advances *progress*."""

    def __init__(self, target: BinaryIO, progress: ProgressBar) -> None:
        self.target = target
        self.progress = progress
        self.count = 0

    def write(self, data: bytes | memoryview, /) -> int:
        n = self.target.write(data)
        written = len(data) if n is None else n
        self.count += written
        self.progress.advance(written)
        return written
