"""Stalls, DeviceBusy, corrupted replies and refused uploads, through the mounted
filesystem over the real USB (simulated pyusb backend) and PTP/IP transports."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fuse_helpers import mounted_session

from ptpfs.connect import open_session
from ptpfs.protocol.codes import OC
from ptpfs.sim import SD1, make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.sim.usb_backend import SimUsbBackend, SimUsbDevice

pytestmark = pytest.mark.fuse


FOLDER = "SD1/DCIM/100CANON"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_all(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Mount:
    def __init__(self, camera: Any, session: Any, mnt: str, link: Any) -> None:
        self.camera, self.session, self.mnt, self.link = camera, session, mnt, link

    def path(self, rel: str) -> str:
        return os.path.join(self.mnt, rel)

    def photos(self) -> list[str]:
        """Photo paths, each read at most once per test (the page cache keeps them)."""
        folder = self.path(FOLDER)
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".JPG")]

    def expected(self, path: str) -> str:
        rel = os.path.relpath(path, self.path("SD1"))
        return self.camera.store.find(rel).sha256()


@pytest.fixture(params=["usb", "ptpip"])
def mount(request) -> Iterator[Any]:
    """mount(reconnect=True, timeout=1.0, **camera_options) over USB or PTP/IP."""
    stack: list[Any] = []

    def make(reconnect: bool = True, timeout: float = 1.0, **camera_options: Any) -> Mount:
        camera_options.setdefault("folders", 1)
        camera_options.setdefault("files_per_folder", 10)
        cam = make_camera(None, "generic", **camera_options)
        if request.param == "usb":
            link: Any = SimUsbBackend([cam])
            session = open_session("usb", usb_backend=link, timeout=timeout, reconnect=reconnect)
        else:
            link = PtpipServer(cam).start()
            session = open_session(f"ptpip:127.0.0.1:{link.port}", timeout=timeout,
                                   reconnect=reconnect)
        ctx = mounted_session(session)
        mnt = ctx.__enter__()
        stack.append((ctx, session, cam, link))
        return Mount(cam, session, mnt, link)

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for ctx, session, cam, link in reversed(stack):
        cam.faults.clear()
        try:
            ctx.__exit__(None, None, None)
        finally:
            session.close()
            if isinstance(link, PtpipServer):
                link.stop()
            else:
                link.close()
            cam.store.close()


def test_stall_times_out_recovers_and_next_works(mount) -> None:
    m = mount(timeout=1.0, folders=3)
    cancels = m.link.devices[0].cancels if mount.kind == "usb" else 0
    # stalled until the test ends it (a stall of fixed length ended before the request
    # reached the device on a loaded machine, and the read did not time out)
    m.camera.faults.stall(None)
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        os.listdir(m.path("SD1/DCIM/101CANON"))         # one request, no kernel retry
    assert info.value.errno == errno.EIO
    assert time.monotonic() - start < 30.0               # a hang bound, not a figure
    if mount.kind == "usb":
        assert m.link.devices[0].cancels > cancels      # USB class-request Cancel was sent
    m.camera.faults.stall(0)
    # the stall is over: the same link works again, nothing was reopened
    assert any(n.endswith(".JPG") for n in os.listdir(m.path("SD1/DCIM/102CANON")))
    photos = m.photos()
    assert sha256(read_all(photos[0])) == m.expected(photos[0])
    assert not m.session.lost and m.session.reconnects == 0


def test_device_busy_retried_then_ebusy(mount) -> None:
    m = mount()
    photos = m.photos()
    m.camera.faults.busy(3)                              # a short busy spell is retried
    assert sha256(read_all(photos[0])) == m.expected(photos[0])
    m.camera.faults.busy(10_000)
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        read_all(photos[1])
    assert info.value.errno == errno.EBUSY
    assert time.monotonic() - start < 60.0              # a hang bound, not a figure
    # bounded back-off: each transaction is retried busy_retries times, no more (the
    # kernel asks twice: its read-ahead, then the page itself)
    asked = 10_000 - m.camera.faults.busy_left()
    assert 0 < asked <= 2 * (m.session.busy_retries + 1), asked
    m.camera.faults.busy(0)
    assert sha256(read_all(photos[2])) == m.expected(photos[2])
    assert not m.session.lost


@pytest.mark.parametrize("kind", ["tid", "garbage", "type", "nodata"])
def test_corrupt_reply_is_an_error_then_the_mount_works(wait_for, mount, kind: str) -> None:
    m = mount(folders=3)

    def corrupt() -> None:
        if mount.kind == "usb":
            m.link.devices[0].inject("type" if kind == "nodata" else kind)
        else:
            m.camera.faults.corrupt_next(kind)

    corrupt()
    with pytest.raises(OSError) as info:
        os.listdir(m.path("SD1/DCIM/101CANON"))
    assert info.value.errno == errno.EIO
    # resynchronised (USB recovery, PTP/IP cancel) or reopened (PTP/IP out of step)
    assert wait_for(lambda: not m.session.lost)
    assert any(n.endswith(".JPG") for n in os.listdir(m.path("SD1/DCIM/101CANON")))
    # a corrupted data transfer: an error or the right bytes, never wrong ones
    photos = m.photos()
    corrupt()
    try:
        data = read_all(photos[0])
    except OSError as exc:
        assert exc.errno == errno.EIO
    else:
        assert sha256(data) == m.expected(photos[0])
    assert wait_for(lambda: not m.session.lost)
    assert sha256(read_all(photos[1])) == m.expected(photos[1])


def test_usb_unplug_and_replug_reconnects_by_serial(wait_for) -> None:
    cam = make_camera(None, "generic", folders=1, files_per_folder=4)
    backend = SimUsbBackend([cam], serials=["CAM123"])
    session = open_session("usb:001,004", usb_backend=backend, timeout=1.0, reconnect=True)
    try:
        with mounted_session(session) as mnt:
            folder = os.path.join(mnt, FOLDER)
            photos = sorted(os.listdir(folder))
            assert read_all(os.path.join(folder, photos[0]))
            backend.devices[0].unplug()
            with pytest.raises(OSError) as info:
                read_all(os.path.join(folder, photos[1]))
            assert info.value.errno == errno.EIO
            # plugged in again: a new address on the bus, the same serial number
            backend.devices.append(SimUsbDevice(cam, 1, 9, serial="CAM123"))
            assert wait_for(lambda: session.reconnects == 1 and not session.lost)
            data = read_all(os.path.join(folder, photos[1]))
            assert sha256(data) == cam.store.find(f"DCIM/100CANON/{photos[1]}").sha256()
    finally:
        session.close()
        backend.close()
        cam.store.close()


# ---------------------------------------------------------------- refused uploads
@pytest.mark.parametrize("refusal,code", [("deny", errno.EACCES), ("full", errno.ENOSPC),
                                          ("readonly", errno.EROFS)])
def test_refused_upload_errno_at_close_nothing_left(mount, refusal: str, code: int) -> None:
    m = mount(deny_uploads=(refusal == "deny"))
    before = sorted(os.listdir(m.path("SD1/DCIM")))
    objects = len(m.camera.store.all_objects(SD1))
    f = open(m.path("SD1/DCIM/new.jpg"), "wb")
    f.write(os.urandom(200_000))
    if refusal == "full":
        m.camera.set_full(SD1)
    elif refusal == "readonly":
        m.camera.set_read_only(SD1)           # after open: the device refuses at close
    with pytest.raises(OSError) as info:
        f.close()
    assert info.value.errno == code
    assert len(m.camera.store.all_objects(SD1)) == objects
    assert sorted(os.listdir(m.path("SD1/DCIM"))) == before
    assert m.camera.stats.count(OC.SendObject) == 0 or refusal == "full"
