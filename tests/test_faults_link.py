"""Lost links through the mounted filesystem: unplug mid-read, a silent camera,
reconnecting, stale handles, uploads cut off, unmounting a dead mount.

Every test mounts ptpfs for real (FUSE) over the simulated camera and acts with
ordinary file operations; the camera's fault switches (ptpfs.sim.faults) break
the link.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from fuse_helpers import ROOT, is_mounted, unmount

from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.sim.store import StoreError

pytestmark = pytest.mark.fuse


PHOTO = "SD1/DCIM/100CANON/IMG_0001.JPG"
PHOTO2 = "SD1/DCIM/100CANON/IMG_0002.JPG"
BIG = "SD1/DCIM/100CANON/MVI_9999.MP4"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected(camera: Any, path: str) -> str:
    return camera.store.find(path.split("/", 1)[1]).sha256()


#: Upper bounds on waits are hang checks, generous on purpose (a loaded 2-core machine);
#: what is fast and what waits for a timeout is shown by what reaches the device.
HANG = 15.0


def transport_calls(session: Any) -> list[Any]:
    """From now on, every request the session hands its transport (a list that grows)."""
    calls: list[Any] = []
    real = session.transport.transact

    def spy(request: Any, *args: Any, **kw: Any) -> Any:
        calls.append(request)
        return real(request, *args, **kw)

    session.transport.transact = spy
    return calls


def timed_errno(fn: Any) -> tuple[int | None, float]:
    """Run *fn*; (errno it failed with or None, seconds it took)."""
    start = time.monotonic()
    try:
        fn()
    except OSError as exc:
        return exc.errno, time.monotonic() - start
    return None, time.monotonic() - start


def read_all(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


#: Defaults of the shared ``sim_mount`` fixture (conftest.py) in this module.
SIM_MOUNT = {"folders": 1, "files_per_folder": 3, "big_file": 12 << 20, "timeout": 2.0}


# ---------------------------------------------------------------- unplug mid-read
def test_unplug_mid_read_eio_fast_cached_ls_and_unmount(sim_mount) -> None:
    m = sim_mount(bandwidth=40 << 20)
    folder = m.path("SD1/DCIM/100CANON")
    listing = sorted(os.listdir(folder))           # now cached
    result: dict[str, Any] = {}

    def reader() -> None:
        got = 0
        try:
            with open(m.path(BIG), "rb") as f:
                while chunk := f.read(1 << 20):
                    got += len(chunk)
                    if got >= 2 << 20 and "unplugged" not in result:
                        result["unplugged"] = time.monotonic()
                        m.camera.faults.unplug()
        except OSError as exc:
            result["errno"] = exc.errno
            result["failed"] = time.monotonic()
        result["got"] = got

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the reader hangs after the unplug"
    assert result.get("errno") == errno.EIO, result
    assert result["failed"] - result["unplugged"] < HANG   # hang check, not a timing figure
    assert m.session.lost
    # cached folders are still listed; anything needing the device fails at once:
    # without asking the device
    assert sorted(os.listdir(folder)) == listing
    asked = transport_calls(m.session)
    code, took = timed_errno(lambda: read_all(m.path(PHOTO2)))
    assert code == errno.EIO and took < HANG
    code, took = timed_errno(lambda: os.listdir(m.path("SD2")))
    assert code == errno.EIO and took < HANG
    assert asked == []
    start = time.monotonic()
    unmount(m.mnt)
    assert not is_mounted(m.mnt)
    assert time.monotonic() - start < HANG


def test_silent_camera_times_out_then_fails_fast(sim_mount) -> None:
    m = sim_mount(timeout=1.0)
    os.listdir(m.path("SD1/DCIM/100CANON"))
    m.camera.faults.stall(None)            # answers nothing, ever
    code, took = timed_errno(lambda: read_all(m.path(PHOTO)))
    assert code == errno.EIO and 0.9 < took < 1.0 + HANG   # waited for the timeout, then EIO
    # the next request probes briefly and gives up; after that nothing reaches the device
    code, took = timed_errno(lambda: read_all(m.path(PHOTO2)))
    assert code == errno.EIO and took < HANG
    assert m.session.lost
    asked = transport_calls(m.session)
    code, took = timed_errno(lambda: read_all(m.path(BIG)))
    assert code == errno.EIO and took < HANG
    assert asked == []


def test_waiters_fail_fast_behind_a_timeout(sim_mount) -> None:
    m = sim_mount(timeout=1.5, folders=1, files_per_folder=8)
    folder = m.path("SD1/DCIM/100CANON")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".JPG"))[:6]
    m.camera.faults.stall(None)
    sent = transport_calls(m.session)
    results: list[tuple[int | None, float]] = []
    lock = threading.Lock()

    def one(name: str) -> None:
        r = timed_errno(lambda: read_all(os.path.join(folder, name)))
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(results) == len(names)
    assert all(code == errno.EIO for code, _ in results), results
    # one waits for the timeout, the ones queued behind it are released with it: they never
    # reach the device (each waiting out its own timeout would take 6 x 1.5 s)
    probes = [r for r in sent if r.code == 0x1001]      # GetDeviceInfo, the link probe
    assert len(sent) - len(probes) == 1 and len(probes) <= 1, sent
    assert max(took for _, took in results) < 1.5 + HANG, results


# ---------------------------------------------------------------- reconnect
def test_reconnect_after_replug_and_stale_handles(wait_for, sim_mount, tmp_path) -> None:
    m = sim_mount(reconnect=True)
    assert read_all(m.path(PHOTO))                       # works
    stale = open(m.path(PHOTO2), "rb")                   # opened before the loss
    try:
        m.camera.faults.unplug()
        code, _ = timed_errno(lambda: read_all(m.path(BIG)))
        assert code == errno.EIO
        assert m.session.lost
        time.sleep(1.5)                                  # reconnect attempts fail meanwhile
        assert m.session.lost and m.session.reconnects == 0
        m.camera.faults.replug()
        assert wait_for(lambda: m.session.reconnects == 1 and not m.session.lost)
        assert m.session.generation == 1
        # handles from before the loss are dead...
        with pytest.raises(OSError) as info:
            os.pread(stale.fileno(), 4096, 0)
        assert info.value.errno == errno.EIO
    finally:
        stale.close()
    # ...fresh opens work, with the right bytes, and so do listings and writes
    assert sha256_file(m.path(PHOTO2)) == expected(m.camera, PHOTO2)
    assert sha256_file(m.path(BIG)) == expected(m.camera, BIG)
    assert "IMG_0001.JPG" in os.listdir(m.path("SD1/DCIM/100CANON"))
    with open(m.path("SD1/after.txt"), "wb") as f:
        f.write(b"back again\n")
    assert m.camera.store.find("after.txt").read(0, 100) == b"back again\n"


def test_no_reconnect_by_default_for_sim(sim_mount) -> None:
    m = sim_mount(reconnect=False)
    m.camera.faults.drop_after(0)
    assert timed_errno(lambda: read_all(m.path(PHOTO)))[0] == errno.EIO
    time.sleep(1.5)
    assert m.session.lost and m.session.reconnects == 0
    assert timed_errno(lambda: read_all(m.path(PHOTO2)))[0] == errno.EIO


def test_reconnect_rebuilds_tree_when_handles_change(wait_for, sim_mount) -> None:
    """A device whose handles differ in the new session: the same path must
    give the same file (the tree is rebuilt, nothing reused by handle)."""
    m = sim_mount(reconnect=True)
    photo = m.path(PHOTO)
    before = sha256_file(photo)
    assert before == expected(m.camera, PHOTO)
    store = m.camera.store
    # renumber every object, as a camera may do between sessions
    obj = store.find(PHOTO.split("/", 1)[1])
    m.camera.faults.unplug()
    assert timed_errno(lambda: read_all(m.path(BIG)))[0] == errno.EIO
    data = obj.read(0, obj.size)
    store.delete(obj.handle)
    store.add_file(PHOTO.split("/", 1)[1], data)        # same path, new handle
    m.camera.faults.replug()
    assert wait_for(lambda: m.session.reconnects == 1 and not m.session.lost)
    assert sha256_file(photo) == before


# ---------------------------------------------------------------- uploads cut off
def test_link_lost_mid_upload_leaves_nothing(wait_for, sim_mount, tmp_path) -> None:
    m = sim_mount(reconnect=True)
    m.camera.faults.keep_partial_uploads = True      # like a real camera
    before = sorted(os.listdir(m.path("SD1")))
    data = os.urandom(3 << 20)
    f = open(m.path("SD1/cut.bin"), "wb")
    f.write(data)
    m.camera.faults.drop_after(1 << 20)              # breaks during SendObject
    with pytest.raises(OSError) as info:
        f.close()
    assert info.value.errno == errno.EIO
    assert wait_for(lambda: m.session.reconnects == 1 and not m.session.lost)

    def gone() -> bool:
        try:
            m.camera.store.find("cut.bin")
        except StoreError:
            return True
        return False
    assert wait_for(gone), "the half-sent object is still on the camera"
    assert sorted(os.listdir(m.path("SD1"))) == before
    # and the same upload works now
    with open(m.path("SD1/cut.bin"), "wb") as f:
        f.write(data)
    assert m.camera.store.find("cut.bin").sha256() == hashlib.sha256(data).hexdigest()


def test_upload_open_across_reconnect_fails_at_close(wait_for, sim_mount) -> None:
    m = sim_mount(reconnect=True)
    f = open(m.path("SD1/DCIM/across.txt"), "wb")
    f.write(b"written before the loss\n")
    m.camera.faults.drop_after(0)
    assert timed_errno(lambda: read_all(m.path(PHOTO)))[0] == errno.EIO
    assert wait_for(lambda: m.session.reconnects == 1 and not m.session.lost)
    with pytest.raises(OSError) as info:
        f.close()
    assert info.value.errno == errno.EIO
    assert "across.txt" not in os.listdir(m.path("SD1/DCIM"))


# ---------------------------------------------------------------- the CLI, unmount, no zombie
def test_cli_dead_link_unmounts_at_once_no_zombie(wait_for, tmp_path) -> None:
    camera = make_camera(None, "generic", folders=1, files_per_folder=3)
    server = PtpipServer(camera).start()
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpfs_main", "-f", "--device",
                             f"ptpip:127.0.0.1:{server.port}", "-o", "timeout=1", mnt],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: is_mounted(mnt), 15)
        assert read_all(os.path.join(mnt, PHOTO))
        camera.faults.stall(None)                       # the camera goes silent
        code, took = timed_errno(lambda: read_all(os.path.join(mnt, PHOTO2)))
        assert code == errno.EIO and took < 1.0 + HANG
        start = time.monotonic()
        unmount(mnt)
        assert not is_mounted(mnt) and time.monotonic() - start < HANG
        assert proc.wait(timeout=8) == 0
    finally:
        camera.faults.clear()
        unmount(mnt)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        server.stop()
        camera.store.close()
