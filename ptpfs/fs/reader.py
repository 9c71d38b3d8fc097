"""Read strategies for object contents.

* :class:`PartialReader` - GetPartialObject (32-bit, Android 64-bit or Canon
  EOS) with adaptive read-ahead: the kernel asks for 128 KiB at a time, and a
  sequential reader's window grows (128 KiB -> ``readahead_max``) so one
  transaction carries many kernel requests; a random reader keeps the window
  small.  Memory: at most two windows per open file.
* :class:`SpoolReader` - for devices without partial reads: GetObject streams
  into a private, already-unlinked temporary file shared by every reader of
  the object; readers wait only until the bytes they need have arrived.

:func:`open_reader` picks the strategy from the session's capabilities.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ptpfs.fs.spool import SpoolDir

log = logging.getLogger("ptpfs.fs")

KIB = 1024
MIB = 1024 * KIB
LIMIT_32 = 0xFFFFFFFF


class Reader:
    """Common interface: ``read(offset, size) -> bytes`` and ``close()``."""

    transferred = 0

    def read(self, offset: int, size: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (idempotent)."""


class _BufferSink:
    """A data-phase sink writing into one preallocated buffer."""

    def __init__(self, length: int, reuse: bytearray | None = None) -> None:
        self.buf = reuse if reuse is not None and len(reuse) >= length else bytearray(length)
        self.limit = length
        self.pos = 0

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        if self.pos + n > self.limit:  # a device sending more than asked: keep what fits
            n = self.limit - self.pos
        self.buf[self.pos: self.pos + n] = data[:n] if n != len(data) else data
        self.pos += n
        return len(data)

    def view(self) -> memoryview:
        return memoryview(self.buf)[: self.pos]


class _Prefetch:
    """One background GetPartialObject for the window after the buffer."""

    def __init__(self, reader: "PartialReader", start: int, length: int,
                 reuse: bytearray | None) -> None:
        self.start = start
        self.reuse = reuse
        self.data: memoryview = memoryview(b"")
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(reader, length),
                                        name="ptpfs-readahead", daemon=True)
        self._thread.start()

    def _run(self, reader: "PartialReader", length: int) -> None:
        try:
            self.data = reader._fetch(self.start, length, self.reuse)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the reader
            self.error = exc
        finally:
            self._done.set()

    def result(self) -> memoryview:
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.data


class PartialReader(Reader):
    """Partial reads with an adaptive, bounded read-ahead window.

    While a reader is sequential the window doubles up to *maximum*, and
    once it has grown the next window is fetched in the background while
    the current one is served, so the link never idles.  Memory: at most
    three windows (previous, current, prefetched) per open file.
    """

    def __init__(self, session: Any, handle: int, size: int, *,
                 initial: int = 128 * KIB, maximum: int = 8 * MIB) -> None:
        self.session = session
        self.handle = handle
        self.size = size
        self.initial = max(4 * KIB, initial)
        self.maximum = max(self.initial, maximum)
        self._window = self.initial
        self._lock = threading.Lock()
        self._buf: memoryview = memoryview(b"")
        self._start = 0
        self._prev: memoryview = memoryview(b"")
        self._prev_start = 0
        self._prefetch: _Prefetch | None = None
        self._spare: bytearray | None = None   # a retired buffer, filled again by the next fetch
        self._counter_lock = threading.Lock()
        self.transferred = 0
        self.transactions = 0
        self._eos = session.capabilities.partial_read == "eos"

    def _cached(self, offset: int, size: int) -> bytes | None:
        for start, buf in ((self._start, self._buf), (self._prev_start, self._prev)):
            if buf and start <= offset and offset + size <= start + len(buf):
                return bytes(memoryview(buf)[offset - start: offset - start + size])
        return None

    def _fetch(self, start: int, length: int, reuse: bytearray | None = None) -> memoryview:
        """One partial read straight into a buffer (no extra copies); *reuse*
        is a retired buffer to fill again instead of allocating."""
        length = min(length, self.size - start)
        if length <= 0:
            return memoryview(b"")
        sink = _BufferSink(length, reuse)
        self.session.read_partial(self.handle, start, length, sink)
        data = sink.view()
        with self._counter_lock:
            self.transactions += 1
            self.transferred += len(data)
        return data

    def _maybe_prefetch(self) -> None:
        """Start fetching the next window if the reader is streaming."""
        end = self._start + len(self._buf)
        if (self._prefetch is None and self._window >= 4 * self.initial
                and self._buf and end < self.size):
            self._prefetch = _Prefetch(self, end, self._window, self._spare)
            self._spare = None

    def _take_prefetch(self, start: int) -> memoryview | None:
        pending = self._prefetch
        if pending is None:
            return None
        self._prefetch = None
        data = pending.result()
        return data if pending.start == start else None

    def read(self, offset: int, size: int) -> bytes:
        """Bytes ``[offset, offset+size)`` clipped to the object's size."""
        with self._lock:
            if offset >= self.size or size <= 0:
                return b""
            size = min(size, self.size - offset)
            hit = self._cached(offset, size)
            if hit is not None:
                if offset + size > self._start + len(self._buf) // 2:
                    self._maybe_prefetch()
                return hit
            end = self._start + len(self._buf)
            if self._buf and self._start <= offset <= end + self._window:
                # sequential (or close to it): continue the stream from the buffer's end
                fetch_from = end
                head = self._buf[offset - self._start:] if offset < end else b""
                data = self._take_prefetch(end)
                self._window = min(self._window * 2, self.maximum)
                if data is None or (len(head) + len(data) < size and end + len(data) < self.size):
                    got = bytes(data) if data is not None else b""
                    want = max(self._window, offset + size - fetch_from)
                    data = memoryview(got + bytes(self._fetch(fetch_from + len(got),
                                                              want - len(got))))
            else:
                self._take_prefetch(-1)
                self._window = self.initial
                fetch_from = offset
                head = b""
                data = self._fetch(fetch_from, max(self._window, size))
            retired = self._prev.obj if len(self._prev) else None
            self._prev, self._prev_start = self._buf, self._start
            self._buf, self._start = data, fetch_from
            if isinstance(retired, bytearray) and retired is not data.obj:
                self._spare = retired
            self._maybe_prefetch()
            if head:
                return bytes(head) + bytes(data[: size - len(head)])
            skip = offset - fetch_from
            return bytes(data[skip: skip + size])

    def close(self) -> None:
        with self._lock:
            self._take_prefetch(-1)
            self._buf = self._prev = memoryview(b"")
        if self._eos and self.transactions:
            try:
                self.session.eos_transfer_complete(self.handle)
            except Exception as exc:  # noqa: BLE001 - advisory only
                log.debug("TransferComplete(0x%08x) failed: %s", self.handle, exc)


class Spool:
    """One object downloaded with GetObject into an unlinked temporary file."""

    def __init__(self, session: Any, handle: int, size: int, spool_dir: SpoolDir) -> None:
        self.session = session
        self.handle = handle
        self.size = size
        self.fd = spool_dir.anonymous_file()
        self.written = 0
        self.done = False
        self.error: BaseException | None = None
        self.refs = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._download, name=f"spool-{handle:08x}",
                                        daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> int:
        """Sink for the GetObject data phase."""
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, self.written)
            view = view[n:]
            with self._cond:
                self.written += n
                self._cond.notify_all()
        return len(data)

    def _download(self) -> None:
        try:
            self.session.get_object(self.handle, sink=self)
        except BaseException as exc:  # noqa: BLE001 - handed to the readers
            log.warning("GetObject(0x%08x) failed: %s", self.handle, exc)
            with self._cond:
                self.error = exc
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def read(self, offset: int, size: int) -> bytes:
        """Wait for the bytes and return them (fewer at the end of the object)."""
        with self._cond:
            while not self.done and self.written < offset + size:
                self._cond.wait(1.0)
            if self.error is not None and self.written < offset + size:
                raise self.error
            available = self.written
        if offset >= available:
            return b""
        return os.pread(self.fd, min(size, available - offset), offset)

    def close(self) -> None:
        """Close the file once the download thread has finished."""
        self._thread.join()
        os.close(self.fd)


class SpoolCache:
    """Shares one :class:`Spool` per object among concurrent readers."""

    def __init__(self, session: Any, spool_dir: SpoolDir) -> None:
        self.session = session
        self.spool_dir = spool_dir
        self._lock = threading.Lock()
        self._spools: dict[int, Spool] = {}

    def acquire(self, handle: int, size: int) -> Spool:
        """The spool of *handle*, starting its download if needed."""
        with self._lock:
            spool = self._spools.get(handle)
            if spool is None or spool.error is not None:
                spool = Spool(self.session, handle, size, self.spool_dir)
                self._spools[handle] = spool
            spool.refs += 1
            return spool

    def release(self, spool: Spool) -> None:
        """Drop one reference; the last one removes the spool."""
        with self._lock:
            spool.refs -= 1
            if spool.refs > 0:
                return
            if self._spools.get(spool.handle) is spool:
                del self._spools[spool.handle]
        threading.Thread(target=spool.close, daemon=True).start()

    def forget(self, handle: int) -> None:
        """The object changed or vanished: new readers download afresh."""
        with self._lock:
            self._spools.pop(handle, None)


class SpoolReader(Reader):
    """Reads served from a shared :class:`Spool`."""

    def __init__(self, cache: SpoolCache, handle: int, size: int) -> None:
        self.cache = cache
        self.spool = cache.acquire(handle, size)
        self._closed = False

    @property
    def transferred(self) -> int:  # type: ignore[override]
        return self.spool.written

    def read(self, offset: int, size: int) -> bytes:
        return self.spool.read(offset, size)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cache.release(self.spool)


def open_reader(session: Any, handle: int, size: int, spools: SpoolCache, *,
                readahead_max: int = 8 * MIB, readahead_min: int = 128 * KIB) -> Reader:
    """The best reader for this device and object."""
    mode = session.capabilities.partial_read
    if mode in ("64", "eos") or (mode == "32" and size <= LIMIT_32):
        return PartialReader(session, handle, size, initial=readahead_min, maximum=readahead_max)
    return SpoolReader(spools, handle, size)
