"""Read strategies for object contents.

* :class:`PartialReader` - GetPartialObject (32-bit, Android 64-bit or Canon
  EOS) with adaptive read-ahead: the kernel asks for 128 KiB at a time, and a
  sequential reader's window grows (128 KiB -> ``readahead_max``) so one
  transaction carries many kernel requests; a random reader keeps the window
  small.  Memory per open file: the current window, at most two more read
  ahead (``_Pipeline.DEPTH``) and a 1 MiB tail of the previous one.
* :class:`SpoolReader` - for devices without partial reads: GetObject streams
  into a private, already-unlinked temporary file shared by every reader of
  the object; readers wait only until the bytes they need have arrived.

:func:`open_reader` picks the strategy from the session's capabilities.
"""

from __future__ import annotations

import collections
import logging
import os
import threading

from ptpfs.capabilities import PartialRead
from ptpfs.errors import ProtocolError
from ptpfs.fs.spool import SpoolDir
from ptpfs.session import Session

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


class _Pipeline:
    """Background read-ahead for a streaming reader: one worker thread fetches
    consecutive windows from *start* so the next GetPartialObject is issued
    the moment the previous one completes (transactions are serialised on the
    session, so this is how the link is kept busy), never more than
    :attr:`DEPTH` windows ahead of what the reader has taken."""

    DEPTH = 2

    def __init__(self, reader: PartialReader, start: int, window: int,
                 spare: bytearray | None) -> None:
        self.reader = reader
        self.next_start = start          # offset of the first window not yet taken
        self._fetch_at = start           # offset the worker fetches next
        self._window = window
        self._ready: collections.deque[tuple[int, memoryview]] = collections.deque()
        self._spares: list[bytearray] = [spare] if spare is not None else []
        self._error: BaseException | None = None
        self._stopped = False
        self._busy = False
        self._cond = threading.Condition()
        # the worker's transactions belong to the session generation of the
        # request that started it (a reconnect must not see old handles)
        self._pinned = reader.session.pinned
        with self._pinned() as generation:
            self._generation: int | None = generation
        self._thread = threading.Thread(target=self._run, name="ptpfs-readahead", daemon=True)
        self._thread.start()

    def _fetch(self, start: int, length: int, spare: bytearray | None) -> memoryview:
        with self._pinned(self._generation):
            return self.reader._fetch(start, length, spare)

    def _run(self) -> None:
        reader = self.reader
        while True:
            with self._cond:
                # ready windows plus the one about to be fetched stay <= DEPTH
                while not self._stopped and len(self._ready) >= self.DEPTH:
                    self._cond.wait()
                if self._stopped or self._error is not None or self._fetch_at >= reader.size:
                    self._busy = False
                    self._cond.notify_all()
                    return
                start, length = self._fetch_at, self._window
                self._fetch_at += min(length, reader.size - start)
                self._window = min(self._window * 2, reader.maximum)
                spare = self._spares.pop() if self._spares else None
                self._busy = True
            try:
                data = self._fetch(start, length, spare)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader
                with self._cond:
                    self._error = exc
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                if len(data) < min(length, reader.size - start):
                    # a device answering short: go on from where it stopped, or stop
                    self._fetch_at = start + len(data) if len(data) else reader.size
                if not self._stopped and len(data):
                    self._ready.append((start, data))
                self._cond.notify_all()

    def take(self) -> tuple[int, memoryview]:
        """The next window in order (waits for it); raises the worker's error."""
        with self._cond:
            while not self._ready and self._error is None and not self._stopped \
                    and (self._busy or self._fetch_at < self.reader.size):
                self._cond.wait()
            if self._ready:
                start, data = self._ready.popleft()
                self.next_start = start + len(data)
                self._cond.notify_all()
                return start, data
            if self._error is not None:
                raise self._error
            return self.next_start, memoryview(b"")

    def recycle(self, buf: bytearray) -> None:
        """A buffer the reader no longer needs, for the worker to fill again."""
        with self._cond:
            if len(self._spares) < 2:
                self._spares.append(buf)

    def stop(self, wait: bool = False) -> None:
        """Stop fetching (a transaction in flight completes and is dropped)."""
        with self._cond:
            self._stopped = True
            self._ready.clear()
            self._cond.notify_all()
        if wait:
            self._thread.join()


class PartialReader(Reader):
    """Partial reads with an adaptive, bounded read-ahead window.

    While a reader is sequential the window doubles up to *maximum*; once it
    has grown, a background worker (:class:`_Pipeline`) fetches the following
    windows back to back, so the link does not idle while the kernel drains a
    window.  A reader that jumps is served with small windows and the pipeline
    stops.  Memory: the current window, at most :attr:`_Pipeline.DEPTH`
    windows ready or in flight, and a short tail of the previous window (for
    requests the kernel answers slightly out of order).
    """

    #: Bytes of the previous window kept for slightly out-of-order requests.
    TAIL = 1 * MIB

    def __init__(self, session: Session, handle: int, size: int, *,
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
        self._tail = b""
        self._tail_start = 0
        self._pipeline: _Pipeline | None = None
        self._spare: bytearray | None = None   # a retired buffer, filled again by the next fetch
        self._counter_lock = threading.Lock()
        self.transferred = 0
        self.transactions = 0
        self._eos = session.capabilities.partial_read is PartialRead.EOS

    def _fetch(self, start: int, length: int, reuse: bytearray | None = None) -> memoryview:
        """One partial read straight into a buffer (no extra copies); *reuse*
        is a retired buffer to fill again instead of allocating."""
        length = min(length, self.size - start)
        if length <= 0:
            return memoryview(b"")
        sink = _BufferSink(length, reuse)
        self.session.read_partial(self.handle, start, length, sink)
        while sink.pos < length:       # a device that sends less than asked: ask for the rest
            got = sink.pos
            self.session.read_partial(self.handle, start + got, length - got, sink)
            if sink.pos == got:        # nothing more: never hand out a silently short file
                raise ProtocolError(f"the device sent {got} of the {length} bytes asked for "
                                    f"at offset {start}")
        data = sink.view()
        with self._counter_lock:
            self.transactions += 1
            self.transferred += len(data)
        return data

    def _stop_pipeline(self, wait: bool = False) -> None:
        if self._pipeline is not None:
            self._pipeline.stop(wait)
            self._pipeline = None

    def _install(self, start: int, data: memoryview) -> None:
        """Make *data* the current window, keeping the old one's tail."""
        old = self._buf
        if len(old):
            keep = min(self.TAIL, len(old))
            self._tail = bytes(old[len(old) - keep:])
            self._tail_start = self._start + len(old) - keep
            retired = old.obj
            if isinstance(retired, bytearray) and retired is not data.obj:
                if self._pipeline is not None:
                    self._pipeline.recycle(retired)
                else:
                    self._spare = retired
        self._buf, self._start = data, start

    def _advance(self) -> bool:
        """Move to the window after the current one; ``False`` at the end."""
        end = self._start + len(self._buf)
        if end >= self.size:
            return False
        pipeline = self._pipeline
        if pipeline is not None and pipeline.next_start == end:
            start, data = pipeline.take()
            self._window = min(max(self._window, len(data)), self.maximum)
        else:
            self._stop_pipeline()
            self._window = min(self._window * 2, self.maximum)
            start, data = end, self._fetch(end, self._window, self._spare)
            self._spare = None
        if not len(data):
            return False
        self._install(start, data)
        if self._pipeline is None and self._window >= 4 * self.initial \
                and start + len(data) < self.size:
            self._window = min(self._window * 2, self.maximum)
            self._pipeline = _Pipeline(self, start + len(data), self._window, self._spare)
            self._spare = None
        return True

    def read(self, offset: int, size: int) -> bytes:
        """Bytes ``[offset, offset+size)`` clipped to the object's size."""
        with self._lock:
            if offset >= self.size or size <= 0:
                return b""
            size = min(size, self.size - offset)
            tail_end = self._tail_start + len(self._tail)
            if self._tail and self._tail_start <= offset and offset + size <= tail_end:
                return self._tail[offset - self._tail_start: offset - self._tail_start + size]
            end = self._start + len(self._buf)
            if not (len(self._buf) and self._start <= offset <= end + self._window):
                # a jump (or the first read): a fresh, small window here
                self._stop_pipeline()
                self._window = self.initial
                self._tail = b""
                data = self._fetch(offset, max(self._window, size), self._spare)
                self._spare = None
                self._install(offset, data)
                self._tail = b""
            pieces: list[bytes] = []
            pos, stop = offset, offset + size
            while pos < stop:
                end = self._start + len(self._buf)
                if self._start <= pos < end:
                    take = min(stop, end) - pos
                    pieces.append(bytes(self._buf[pos - self._start: pos - self._start + take]))
                    pos += take
                elif not self._advance():
                    break
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        with self._lock:
            self._stop_pipeline(wait=True)
            self._buf = memoryview(b"")
            self._tail = b""
            self._spare = None
        if self._eos and self.transactions:
            try:
                self.session.eos_transfer_complete(self.handle)
            except Exception as exc:  # noqa: BLE001 - advisory only
                log.debug("TransferComplete(0x%08x) failed: %s", self.handle, exc)


_ZEROS = bytes(1 << 20)


class Spool:
    """One object downloaded with GetObject into an unlinked temporary file."""

    def __init__(self, session: Session, handle: int, size: int, spool_dir: SpoolDir) -> None:
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
        """Sink for the GetObject data phase.  Zeros are not written but left as a
        hole (the file is extended sparsely): a mostly-empty object of many GiB
        costs no disk."""
        view = memoryview(data)
        n = len(view)
        if 0 < n <= len(_ZEROS) and view[:64].tobytes() == _ZEROS[:min(n, 64)] \
                and (view.tobytes() == (_ZEROS if n == len(_ZEROS) else _ZEROS[:n])):
            end = self.written + len(view)
            os.ftruncate(self.fd, end)
            with self._cond:
                self.written = end
                self._cond.notify_all()
            return len(data)
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
            if available < min(offset + size, self.size):
                raise ProtocolError(f"the device sent {available} of the {self.size} bytes "
                                    "of the object")
        if offset >= available:
            return b""
        return os.pread(self.fd, min(size, available - offset), offset)

    def close(self) -> None:
        """Close the file once the download thread has finished."""
        self._thread.join()
        os.close(self.fd)


class SpoolCache:
    """Shares one :class:`Spool` per object among concurrent readers."""

    def __init__(self, session: Session, spool_dir: SpoolDir) -> None:
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


def open_reader(session: Session, handle: int, size: int, spools: SpoolCache, *,
                readahead_max: int = 8 * MIB, readahead_min: int = 128 * KIB) -> Reader:
    """The best reader for this device and object."""
    mode = session.capabilities.partial_read
    if mode in (PartialRead.OFFSET64, PartialRead.EOS) or (
            mode is PartialRead.OFFSET32 and size <= LIMIT_32):
        return PartialReader(session, handle, size, initial=readahead_min, maximum=readahead_max)
    return SpoolReader(spools, handle, size)
