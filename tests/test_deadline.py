"""Transaction deadlines (issue 11.1): a camera that trickles is given up on.

A transaction may take its timeout plus one second per ``min_rate`` bytes it moved
(``ptpfs.transport.base.Deadline``).  The hostile PTP/IP peer's slow modes trickle one
byte per interval: a data phase announcing 4 GiB, or an InitCommandAck with a
2,000-character name.  The bounds below are hang checks, generous against the configured
timeout (1-2 s against 30 s), not timing assertions.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from fuse_helpers import is_mounted, mounted_process, run, unmount

from ptpfs.errors import ConnectionLost, TransportTimeout
from ptpfs.protocol.codes import OC
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.testing.hostile import HostileCamera, HostilePtpipServer, Mutation, Plan
from ptpfs.transport.ptpip import PtpipTransport

BOUND = 30.0       # seconds: a hang check, never reached by a working build
T = TypeVar("T")


def bounded(fn: Callable[[], T]) -> T:
    """Run *fn* in a worker; fail the test if it is still running after BOUND seconds."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fn).result(timeout=BOUND)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"still waiting after {BOUND} s on a trickling camera")
    finally:
        pool.shutdown(wait=False)


def hostile_server(kind: str, *ops: int | None, nth: int | None = None) -> HostilePtpipServer:
    camera = make_camera(None, "generic")
    plan = Plan(mutations=tuple(Mutation(kind, op, 0, nth) for op in ops or (None,)))
    return HostilePtpipServer(HostileCamera(camera, plan), trickle_interval=0.5)


def test_trickling_handshake_is_given_up_on() -> None:
    """InitCommandAck with a 2,000-character name at 2 bytes/s: refused within the deadline."""
    with hostile_server("ip_trickle_init") as server:
        def connect() -> None:
            PtpipTransport("127.0.0.1", server.port, guid=bytes(16), name="t", timeout=1.0)
        with pytest.raises(TransportTimeout, match="did not move its data in time"):
            bounded(connect)


def test_trickling_data_phase_is_given_up_on() -> None:
    """GetObjectHandles announcing 4 GiB, then a byte per interval: the caller gets an
    error within the deadline, and the session no longer uses the broken link."""
    with hostile_server("ip_trickle", OC.GetObjectHandles) as server:
        session = Session(PtpipTransport("127.0.0.1", server.port, guid=bytes(16), name="t",
                                         timeout=1.0), busy_retries=0)
        try:
            session.open()
            with pytest.raises(TransportTimeout, match="did not move its data in time"):
                bounded(lambda: session.get_object_handles(0x00010001))
            with pytest.raises(ConnectionLost):
                session.get_storage_ids()       # the link was out of step: lost, fails fast
        finally:
            session.close()


def test_a_slow_but_steady_transfer_is_not_cut_off() -> None:
    """A data phase longer than the timeout but above min_rate completes: the deadline
    grows with the bytes moved (4 MiB at 2 MiB/s, timeout 1 s, min_rate 64 KiB/s)."""
    size = 4 << 20
    camera = make_camera(None, "generic", big_file=size)
    handle = camera.store.find("/DCIM/100CANON/MVI_9999.MP4").handle
    camera.link.bandwidth = 2 << 20
    with PtpipServer(camera) as server:
        session = Session(PtpipTransport("127.0.0.1", server.port, guid=bytes(16), name="t",
                                         timeout=1.0, min_rate=64 << 10))
        try:
            session.open()
            data = bounded(lambda: session.get_object(handle))
        finally:
            session.close()
    assert data == camera.store.get(handle).read(0, size)


@pytest.mark.fuse
def test_cat_of_a_trickling_object_fails_and_the_mount_unmounts() -> None:
    """`cat` of a file whose data trickles ends with EIO after the deadline; /.ptp answers
    after it, and fusermount3 -u works."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    reads = (OC.GetObject, OC.GetPartialObject, OC.GetPartialObject64)
    with hostile_server("ip_trickle", *reads) as server, \
            mounted_process(["--device", f"ptpip:127.0.0.1:{server.port}",
                             "-o", "timeout=2,noreconnect"]) as (mnt, proc):
        folder = os.path.join(_storage_dir(mnt), "DCIM", "100CANON")
        name = min(os.listdir(folder))
        cat = run(["cat", os.path.join(folder, name)], timeout=BOUND)
        assert cat.returncode != 0 and "Input/output error" in cat.stderr, cat
        device = run(["cat", os.path.join(mnt, ".ptp", "device")], timeout=BOUND)
        assert device.returncode == 0 and device.stdout, device
        done = run(["fusermount3", "-u", mnt], timeout=BOUND)
        assert done.returncode == 0, done
        proc.wait(timeout=BOUND)


# ------------------------------------------------------------------ through a real mount
def _storage_dir(mnt: str) -> str:
    names = [n for n in os.listdir(mnt) if n != ".ptp"]
    assert names, os.listdir(mnt)
    return os.path.join(mnt, names[0])


@pytest.mark.fuse
def test_mount_stays_answerable_while_the_camera_trickles() -> None:
    """`ls` of a folder whose listing trickles ends with an error after the deadline
    (timeout 5 s); before that, while it is still waiting, a cached folder and /.ptp
    answer; afterwards the mount unmounts with fusermount3 -u."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    # GetObjectHandles call 0 lists the storage root; call 1 (DCIM) trickles
    with hostile_server("ip_trickle", OC.GetObjectHandles, nth=1) as server, \
            mounted_process(["--device", f"ptpip:127.0.0.1:{server.port}",
                             "-o", "timeout=5,noreconnect"]) as (mnt, proc):
        storage = _storage_dir(mnt)
        assert "DCIM" in os.listdir(storage)                       # now cached
        stuck = subprocess.Popen(["ls", os.path.join(storage, "DCIM")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            cached = run(["ls", storage], timeout=BOUND)
            assert cached.returncode == 0 and "DCIM" in cached.stdout, cached
            ptp = run(["stat", os.path.join(mnt, ".ptp")], timeout=BOUND)
            assert ptp.returncode == 0, ptp
            assert stuck.poll() is None, "answered only after the stuck listing ended"
            _, err = stuck.communicate(timeout=BOUND)
        finally:
            if stuck.poll() is None:
                stuck.kill()
        assert stuck.returncode != 0
        assert "Input/output error" in err, err
        done = run(["fusermount3", "-u", mnt], timeout=BOUND)
        assert done.returncode == 0, done
        proc.wait(timeout=BOUND)
        assert not is_mounted(mnt)


@pytest.mark.fuse
def test_sigterm_ends_a_mount_stuck_on_a_trickling_camera() -> None:
    """SIGTERM while a transaction trickles: ptpfs exits and the mount goes away."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    with hostile_server("ip_trickle", OC.GetObjectHandles, nth=1) as server, \
            mounted_process(["--device", f"ptpip:127.0.0.1:{server.port}",
                             "-o", "timeout=2,noreconnect"]) as (mnt, proc):
        storage = _storage_dir(mnt)
        os.listdir(storage)
        stuck = subprocess.Popen(["ls", os.path.join(storage, "DCIM")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_until(lambda: _waiting_in_fuse(stuck.pid), stuck)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=BOUND)
            stuck.communicate(timeout=BOUND)
        finally:
            if stuck.poll() is None:
                stuck.kill()
            if is_mounted(mnt):
                unmount(mnt)
        assert not is_mounted(mnt)



@pytest.mark.fuse
def test_a_signal_ends_a_request_queued_behind_a_trickling_one() -> None:
    """A program whose request waits for the device (behind a trickling transaction) and
    gets SIGINT ends while the trickling one is still waiting (FUSE interrupt -> EINTR)."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    with hostile_server("ip_trickle", OC.GetObjectHandles, nth=1) as server, \
            mounted_process(["--device", f"ptpip:127.0.0.1:{server.port}",
                             "-o", "timeout=8,noreconnect"]) as (mnt, _proc):
        storage = _storage_dir(mnt)
        os.listdir(storage)
        dcim = os.path.join(storage, "DCIM")
        stuck = subprocess.Popen(["ls", dcim], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        queued = None
        try:
            _wait_until(lambda: _waiting_in_fuse(stuck.pid), stuck)
            queued = subprocess.Popen(["stat", os.path.join(dcim, "x")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _wait_until(lambda: _waiting_in_fuse(queued.pid), queued)
            queued.send_signal(signal.SIGINT)
            queued.wait(timeout=BOUND)
            assert stuck.poll() is None, "the queued program ended only with the stuck one"
            stuck.communicate(timeout=BOUND)
        finally:
            for p in (stuck, queued):
                if p is not None and p.poll() is None:
                    p.kill()


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen) -> None:
    """Poll *condition* (bounded); fail if *proc* ends first."""
    for _ in range(int(BOUND / 0.01)):
        if condition():
            return
        assert proc.poll() is None, f"{proc.args} ended before it waited for the device"
        time.sleep(0.01)
    pytest.fail(f"{proc.args} never waited for the device")


def _waiting_in_fuse(pid: int) -> bool:
    """Whether *pid* sleeps in the kernel waiting for a FUSE answer."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state in ("S", "D") and ("fuse" in wchan or "request_wait_answer" in wchan)


@pytest.mark.fuse
def test_a_signal_ends_a_request_waiting_on_a_trickling_camera() -> None:
    """SIGINT to the program whose own listing trickles: it ends before the deadline (the
    transaction is abandoned while the camera is silent), and the mount keeps working."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    with hostile_server("ip_trickle", OC.GetObjectHandles, nth=1) as server, \
            mounted_process(["--device", f"ptpip:127.0.0.1:{server.port}",
                             "-o", "timeout=20,noreconnect"]) as (mnt, _proc):
        storage = _storage_dir(mnt)
        os.listdir(storage)
        stuck = subprocess.Popen(["ls", os.path.join(storage, "DCIM")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_until(lambda: _waiting_in_fuse(stuck.pid), stuck)
            stuck.send_signal(signal.SIGINT)
            # the deadline is 20 s: ending within 10 s shows the signal ended it
            stuck.wait(timeout=10)
        finally:
            if stuck.poll() is None:
                stuck.kill()
        assert stuck.returncode == -signal.SIGINT
        device = run(["cat", os.path.join(mnt, ".ptp", "device")], timeout=BOUND)
        assert device.returncode == 0 and device.stdout, device
