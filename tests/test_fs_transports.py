"""ptpfs over the real transports (pyusb with the simulated USB backend,
PTP/IP to the simulator's server) and the ``ptpfs`` command line: background
mode, -f, signals, the mount.fuse3 calling convention, unmounting."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from fuse_helpers import ROOT, is_mounted, mounted_process, mounted_session, run, unmount

from ptpfs.connect import open_session
from ptpfs.sim import SD1, make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.sim.usb_backend import SimUsbBackend

pytestmark = pytest.mark.fuse


def sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def ptpip_camera():
    camera = make_camera(None, "android-mtp", folders=1, files_per_folder=4, jpeg_size=400_000,
                         raw_size=800_000)
    server = PtpipServer(camera, "127.0.0.1", 0)
    server.start()
    try:
        yield camera, f"ptpip:127.0.0.1:{server.port}"
    finally:
        server.stop()
        camera.store.close()


def exercise(mnt: str, camera, tmp_path) -> None:
    """The same round trip on any transport: list, read, write, delete, new photo."""
    folder = os.path.join(mnt, "SD1/DCIM/100CANON")
    names = sorted(os.listdir(folder))
    assert names
    for name in names[:2]:
        assert sha(os.path.join(folder, name)) == camera.store.find(f"DCIM/100CANON/{name}").sha256()
    data = os.urandom(1_234_567)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    assert run(["cp", str(src), os.path.join(mnt, "SD2/up.bin")]).returncode == 0
    assert camera.store.find("up.bin", camera.store.storages()[1].storage_id).sha256() == \
        hashlib.sha256(data).hexdigest()
    assert sha(os.path.join(mnt, "SD2/up.bin")) == hashlib.sha256(data).hexdigest()
    os.unlink(os.path.join(mnt, "SD2/up.bin"))
    assert "up.bin" not in os.listdir(os.path.join(mnt, "SD2"))
    handle = camera.take_photo(SD1, "DCIM/100CANON", size=50_000)
    new = camera.store.get(handle).name
    deadline = time.monotonic() + 5
    while new not in os.listdir(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new in os.listdir(folder)


def test_over_pyusb_backend(tmp_path) -> None:
    camera = make_camera(None, "canon-eos", folders=1, files_per_folder=4, jpeg_size=400_000,
                         raw_size=800_000, uploads=True)   # the real R6 refuses them
    session = open_session("usb", usb_backend=SimUsbBackend([camera]))
    try:
        with mounted_session(session) as mnt:
            exercise(mnt, camera, tmp_path)
    finally:
        session.close()
        camera.store.close()


def test_cli_foreground_over_ptpip(ptpip_camera, tmp_path) -> None:
    camera, spec = ptpip_camera
    with mounted_process(["--device", spec]) as (mnt, proc):
        exercise(mnt, camera, tmp_path)
        res = run(["cat", os.path.join(mnt, ".ptp/device")])
        assert "Model:" in res.stdout
    assert proc.returncode == 0
    assert not is_mounted(mnt)


def test_cli_sigterm_unmounts_and_closes(ptpip_camera) -> None:
    camera, spec = ptpip_camera
    with mounted_process([spec, "-o", "ro"]) as (mnt, proc):   # mount.fuse3 style: DEVICE MNT -o
        assert run(["mkdir", os.path.join(mnt, "SD1/x")]).returncode != 0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert proc.returncode == 0, proc.stderr.read()
        assert not is_mounted(mnt)


def test_cli_background_mode(ptpip_camera) -> None:
    camera, spec = ptpip_camera
    mnt = tempfile.mkdtemp(prefix="ptpfs-mnt-")
    env = dict(os.environ, PYTHONPATH=ROOT)
    try:
        started = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "ptpfs.cli.ptpfs_main", "--device", spec, mnt],
                             env=env, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        assert is_mounted(mnt)   # mounted by the time the command returned
        assert "SD1" in os.listdir(mnt)
        assert time.monotonic() - started < 30
    finally:
        unmount(mnt)
        os.rmdir(mnt)


def test_cli_errors_reach_terminal(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-m", "ptpfs.cli.ptpfs_main", "--device",
                          "ptpip:127.0.0.1:9", str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 3     # no camera found: nothing listens there
    assert "cannot open device" in res.stderr
    assert not is_mounted(str(tmp_path))


def test_cli_simulate(tmp_path) -> None:
    src = tmp_path / "card"
    (src / "DCIM").mkdir(parents=True)
    (src / "DCIM" / "a.jpg").write_bytes(b"jpeg!")
    with mounted_process([f"--simulate={src}", "--profile", "android-mtp"]) as (mnt, proc):
        storages = [n for n in os.listdir(mnt) if n != ".ptp"]
        assert len(storages) >= 1
        found = [os.path.join(mnt, s, "DCIM", "a.jpg") for s in storages
                 if os.path.exists(os.path.join(mnt, s, "DCIM", "a.jpg"))]
        assert found and open(found[0], "rb").read() == b"jpeg!"
