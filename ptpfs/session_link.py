"""Link supervision for a :class:`~ptpfs.session.Session`: timeouts, probe, reconnect.

A transaction that times out or breaks the framing is followed by the
transport's recovery (USB class requests, PTP/IP cancel).  If that fails
the link counts as lost and every call fails at once with
:class:`ConnectionLost`; otherwise the next transaction is preceded by a
quick probe (GetDeviceInfo) and the link counts as lost if that goes
unanswered too.  With a *reopen* factory a background thread opens new
links until the device answers and reattaches the session to it, bumping
the session's ``generation`` (see ``docs/reliability.md``).

:class:`LinkSupervision` is a mixin: it owns the link state and reacts to
failures; :class:`~ptpfs.session.Session` owns the transactions.  The
attributes listed on the class are the contract between the two.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ptpfs.errors import (
    ConnectionLost,
    ProtocolError,
    PTPError,
    TransactionInterrupted,
    TransportError,
    TransportTimeout,
)
from ptpfs.protocol.codes import OC, operation_name
from ptpfs.protocol.messages import Request
from ptpfs.transport.base import Transport

if TYPE_CHECKING:
    from ptpfs.capabilities import Capabilities
    from ptpfs.protocol.datasets import DeviceInfo

log = logging.getLogger("ptpfs.session")


class LinkSupervision:
    """Link state, failure handling, probing and reconnection of a session."""

    # provided by the session
    transport: Transport
    reopen: Callable[[], Transport] | None
    reconnect_interval: float
    probe_timeout: float
    timeout: float | None
    is_open: bool
    lost: bool
    generation: int
    losses: int
    reconnects: int
    _lock: threading.RLock
    _state_lock: threading.Lock
    _sub_lock: threading.Lock
    _stop: threading.Event
    _closing: threading.Event
    _reconnect_thread: threading.Thread | None
    _link_listeners: list[Callable[[str], None]]
    _failures: int
    _suspect: bool
    _next_tid: int
    _pins: threading.local
    _device_info: DeviceInfo | None
    _capabilities: Capabilities | None

    if TYPE_CHECKING:
        def _register(self, listeners: list[Callable[[str], None]],
                      callback: Callable[[str], None]) -> Callable[[], None]: ...

        def _open_link(self) -> None: ...

        def _start_events(self) -> None: ...

        def _take_tid(self, code: int) -> int: ...

    # -- link state -------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"connected"``, ``"lost"`` (maybe reconnecting) or ``"closed"``."""
        if self._closing.is_set():
            return "closed"
        return "lost" if self.lost else "connected"

    def add_link_listener(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call *callback(state)* with ``"lost"``, ``"reattached"`` (a new session is
        open; only the calling thread may use it until the callbacks return) or
        ``"reconnected"`` (usable by every thread); returns a remover."""
        return self._register(self._link_listeners, callback)

    def _notify_link(self, state: str) -> None:
        with self._sub_lock:
            listeners = list(self._link_listeners)
        for cb in listeners:
            try:
                cb(state)
            except Exception:
                log.exception("link listener failed")

    @contextlib.contextmanager
    def pinned(self, generation: int | None = None) -> Iterator[int]:
        """Within the block, this thread's transactions fail with
        :class:`ConnectionLost` if the session was reopened since the block
        began (or since *generation*): handles resolved before a reconnect
        must never reach the new session, where they may name other objects."""
        outer = getattr(self._pins, "generation", None)
        if outer is not None:
            yield outer
            return
        gen = self.generation if generation is None else generation
        self._pins.generation = gen
        try:
            yield gen
        finally:
            self._pins.generation = None

    def _mark_lost(self, reason: str, generation: int | None = None) -> None:
        """The link is gone: fail fast from now on, reconnect if we can."""
        if threading.current_thread() is self._reconnect_thread:
            return              # a failed reconnect attempt: the loop retries
        with self._state_lock:
            if generation is not None and generation != self.generation:
                return          # an old link's thread reporting late
            if self.lost or self._closing.is_set():
                return
            self.lost = True
            self.losses += 1
        log.warning("device connection lost: %s", reason)
        self._stop.set()
        self._notify_link("lost")
        if self.reopen is not None:
            self._start_reconnect()

    def _start_reconnect(self) -> None:
        with self._state_lock:
            thread = self._reconnect_thread
            if thread is not None and thread.is_alive():
                return
            thread = threading.Thread(target=self._reconnect_loop, name="ptp-reconnect",
                                      daemon=True)
            self._reconnect_thread = thread
        thread.start()

    def _reconnect_loop(self) -> None:
        delay = self.reconnect_interval
        last = ""
        while not self._closing.wait(delay):
            delay = min(delay * 1.5, 5.0)
            try:
                transport = self.reopen()  # type: ignore[misc]
            except PTPError as exc:
                # say why once, not every attempt: "not found" is the normal wait
                (log.warning if str(exc) != last else log.debug)("reconnect: %s", exc)
                last = str(exc)
                continue
            except Exception:
                log.exception("reconnect failed")
                continue
            if self._reattach(transport):
                return

    def _reattach(self, transport: Transport) -> bool:
        """Open a session on a new transport and make it current."""
        old_info = self._device_info
        with self._lock:
            if self._closing.is_set():
                transport.close()
                return True
            old = self.transport
            self._stop.set()
            try:
                old.close()
            except Exception as exc:  # noqa: BLE001 - it is broken anyway
                log.debug("closing the old link: %s", exc)
            self.transport = transport
            self.is_open = False
            self._next_tid = 0
            self._suspect = False
            # ``lost`` stays true until the new session is complete: only this
            # thread may use the link meanwhile (see _check_usable)
            try:
                self._open_link()
                info = self._device_info
                if old_info is not None and info is not None and (
                        (old_info.serial_number, old_info.model)
                        != (info.serial_number, info.model)):
                    raise ConnectionLost(f"another device answered ({info.model} "
                                         f"{info.serial_number}); waiting for the original")
            except Exception as exc:  # noqa: BLE001 - not back yet
                log.warning("reconnect: opening the session failed: %s", exc)
                self.is_open = False
                self._device_info, self._capabilities = old_info, None
                return False
            with self._state_lock:
                self.generation += 1
                self._failures += 1
        log.warning("device reconnected (session generation %d)", self.generation)
        # "reattached" listeners (the fs checking its tree against the new handles) run
        # before any other thread may use the new session: ``lost`` stays true until they
        # are done, so no request resolves a path to an old handle and sends it to the
        # new session. "reconnected" listeners run once the session is usable by all.
        self._notify_link("reattached")
        with self._state_lock:
            self.reconnects += 1
            self.lost = False
        self._start_events()
        self._notify_link("reconnected")
        return True

    def _check_usable(self, seen_failures: int) -> None:
        """Raise at once if this transaction must not reach the device."""
        if self.lost and threading.current_thread() is not self._reconnect_thread:
            raise ConnectionLost("the device is not connected"
                                 + (" (reconnecting)" if self.reopen is not None else ""))
        pinned = getattr(self._pins, "generation", None)
        if pinned is not None and pinned != self.generation:
            raise ConnectionLost("the device was reconnected; object handles from before "
                                 "are no longer valid")
        if self._failures != seen_failures:
            raise TransportTimeout("the device stopped answering while this request waited")

    def _transaction_failed(self, code: int, tid: int, exc: PTPError) -> None:
        """React to a transaction that broke: count it, recover or mark the link lost.

        Called with the session lock held; the caller re-raises *exc*."""
        if isinstance(exc, ConnectionLost):
            self._failures += 1
            self._mark_lost(f"{operation_name(code)}: {exc}")
        elif isinstance(exc, TransactionInterrupted):
            # the caller gave up, the device did not fail: recover, but do not fail the
            # requests queued behind this one
            log.info("%s interrupted (%s); recovering the link", operation_name(code), exc)
            if self._recover():
                self._suspect = True
        elif isinstance(exc, TransportTimeout):
            self._failures += 1
            if not exc.request_sent and self._next_tid:
                self._next_tid = tid      # the device never saw this transaction ID
            log.warning("%s timed out (%s); recovering the link", operation_name(code), exc)
            if self._recover():
                self._suspect = True
        else:
            log.warning("%s failed (%s); recovering the link", operation_name(code), exc)
            self._recover()

    def _probe(self) -> None:
        """After a timeout: is anybody there?  GetDeviceInfo with a short
        timeout; no answer means the link is lost."""
        quick = min(self.timeout or self.probe_timeout, self.probe_timeout)
        tid = self._take_tid(OC.GetDeviceInfo)
        request = Request(OC.GetDeviceInfo, tid, ())
        try:
            self.transport.transact(request, data_in=None, timeout=quick)
        except ConnectionLost as exc:
            self._failures += 1
            self._mark_lost(f"probe: {exc}")
            raise
        except (TransportTimeout, ProtocolError) as exc:
            if not exc.request_sent and self._next_tid:
                self._next_tid = tid
            self._failures += 1
            self._recover()
            self._mark_lost(f"the device stopped answering ({exc})")
            raise ConnectionLost(f"the device stopped answering ({exc})") from exc
        self._suspect = False

    def _recover(self) -> bool:
        """Bring the link back to idle; ``False`` (and the link lost) if that failed."""
        try:
            self.transport.recover()
            return True
        except ConnectionLost as exc:
            self._mark_lost(f"recovery failed: {exc}")
        except TransportError as exc:
            log.warning("link recovery failed: %s", exc)
            self._mark_lost(f"recovery failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - a broken transport must not crash us
            log.warning("link recovery failed unexpectedly: %s", exc)
            self._mark_lost(f"recovery failed: {exc}")
        return False

