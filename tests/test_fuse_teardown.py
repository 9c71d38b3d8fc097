"""Unmounting while other threads notify the kernel: libfuse's ``fuse_destroy``
frees the node tables ``fuse_invalidate_path`` walks before it calls the
filesystem's ``destroy``, so notifications must stop when the loop returns
(ptpfs.fs.fusemain), not in ``destroy`` (that window crashed the process)."""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from typing import Any

import pytest
from fuse_helpers import mounted_session

from ptpfs.fs import operations
from ptpfs.fs.operations import PtpFs
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.transport.inprocess import InProcessTransport

pytestmark = pytest.mark.fuse

if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
    pytest.fail("FUSE (/dev/fuse, fusermount3) is required for these tests")


def test_notifications_stop_when_the_loop_ends_before_libfuse_frees(
        monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            events.append(what)

    mfusepy = operations.mfusepy        # loaded by ptpfs.fs, which picks libfuse 3
    real = mfusepy._libfuse.fuse_invalidate_path
    real.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    real.restype = ctypes.c_int

    def invalidate(fuse: Any, path: bytes) -> int:
        note("invalidate")
        return int(real(fuse, path))

    monkeypatch.setattr(mfusepy._libfuse, "fuse_invalidate_path", invalidate)
    mounted: list[PtpFs] = []
    original_init, original_ended = PtpFs.init_with_config, PtpFs.loop_ended
    original_destroy = PtpFs.destroy

    def init(self: PtpFs, conn: Any, config: Any) -> None:
        mounted.append(self)
        original_init(self, conn, config)

    def ended(self: PtpFs) -> None:
        original_ended(self)
        note("loop ended")

    def destroy(self: PtpFs, path: str) -> None:
        note("destroy")
        original_destroy(self, path)

    monkeypatch.setattr(PtpFs, "init_with_config", init)
    monkeypatch.setattr(PtpFs, "loop_ended", ended)
    monkeypatch.setattr(PtpFs, "destroy", destroy)
    camera = make_camera(None, "generic", files_per_folder=4)
    session = Session(InProcessTransport(camera)).open()
    stop = threading.Event()
    hammers: list[threading.Thread] = []
    try:
        with mounted_session(session) as mnt:
            folder = os.path.join(mnt, "SD1", "DCIM")
            assert os.listdir(folder)          # libfuse now has nodes for these paths
            ops = mounted[0]

            def hammer() -> None:   # what device events and reconnects do, without pause
                while not stop.is_set():
                    ops._notify_kernel("/SD1/DCIM")
            hammers = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
            for t in hammers:
                t.start()
            for _ in range(6000):   # a hang bound: the hammers reach libfuse at once
                with lock:
                    if "invalidate" in events:
                        break
                stop.wait(0.01)
            assert "invalidate" in events
        # unmounted (fusermount3 -u) while the hammers run
        for t in hammers:
            assert t.is_alive()
    finally:
        stop.set()
        for t in hammers:
            t.join(10)
        session.close()
        camera.close()
    assert "loop ended" in events and "destroy" in events
    ended_at = events.index("loop ended")
    assert ended_at < events.index("destroy")
    assert "invalidate" not in events[ended_at:], "a notification reached libfuse after its loop"
