"""ptpfs-automount: cameras appear and disappear; real ptpfs children mount them.

The device list is scripted here (cameras "plugged" by the test, served by the
simulator from folders); everything else is real: ptpfs processes, FUSE mounts
under ROOT, unmounting, folder clean-up.  The USB hot-plug path itself (QEMU's
device_add/device_del in the guest) is in tests/test_usb_vm_automount.py.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from ptpfs.cli import automount
from ptpfs.cli.automount import Watcher, folder_name, install_desktop_integration, is_mounted
from ptpfs.connect import DeviceListing

pytestmark = pytest.mark.fuse


ROOT_DIR = Path(__file__).resolve().parent.parent


def _camera(tmp: Path, name: str, files: dict[str, bytes]) -> DeviceListing:
    d = tmp / name
    (d / "DCIM" / "100TEST").mkdir(parents=True)
    for fname, data in files.items():
        (d / "DCIM" / "100TEST" / fname).write_bytes(data)
    return DeviceListing(f"sim:{d}", "04a9:32f5 Canon EOS R6 [ptp] (serial 0123)")


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted(p for p in points if p.startswith(str(root) + "/"))


def _photos(mount: Path) -> list[Path]:
    return list(mount.glob("*/DCIM/100TEST/IMG_*"))


@pytest.fixture
def env_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_folder_names() -> None:
    assert folder_name(DeviceListing("usb:1,2", "04a9:32f5 Canon EOS R6 [ptp] (serial 1)")) \
        == "Canon EOS R6"
    assert folder_name(DeviceListing("usb:1,3", "18d1:4ee1 Google/Pixel 7 [mtp]")) == "Google_Pixel 7"
    assert folder_name(DeviceListing("usb:1,4", "")) == "camera"


def test_plug_two_cameras_then_unplug(tmp_path: Path, env_path: None) -> None:
    root = tmp_path / "cameras"
    root.mkdir()
    a = _camera(tmp_path, "a,1", {"IMG_0001.JPG": b"a" * 1000})   # a comma, as in usb:1,5
    b = _camera(tmp_path, "b", {"IMG_0002.JPG": b"b" * 2000})
    plugged = [a]                                     # plugged before the watcher starts
    messages: list[str] = []
    watcher = Watcher(str(root), lister=lambda: list(plugged), say=messages.append)
    try:
        watcher.scan()
        first = root / "Canon EOS R6"
        assert is_mounted(str(first))
        assert [n for n in os.listdir(first) if n != ".ptp"] == ["sim"]   # one storage
        assert [p.read_bytes() for p in _photos(first)] == [b"a" * 1000]
        plugged.append(b)                             # a second camera of the same model
        watcher.scan()
        second = root / "Canon EOS R6 (2)"
        assert is_mounted(str(second))
        assert [p.read_bytes() for p in _photos(second)] == [b"b" * 2000]
        plugged.remove(a)                             # unplug the first
        watcher.scan()
        assert not first.exists() and _mounts_under(root) == [str(second)]
        assert any("unmounted" in m and "is gone" in m for m in messages)
    finally:
        watcher.stop()
    assert _mounts_under(root) == [] and os.listdir(root) == []


def test_busy_camera_is_reported_and_retried(tmp_path: Path, env_path: None) -> None:
    """A child that finds the camera claimed exits with ptpfs's busy status (4) and
    message; the watcher reports it once, retries after --retry, and mounts once free."""
    root = tmp_path / "cameras"
    root.mkdir()
    cam = _camera(tmp_path, "c", {"IMG_0001.JPG": b"c" * 10})
    held = tmp_path / "held"
    held.write_text("1")
    # ptpfs itself, behind a guard that plays "another program holds the device" while
    # the file `held` exists (what ptpfs prints then, holder included, and its status 4)
    guard = tmp_path / "guard.py"
    guard.write_text(
        "import os, runpy, sys\n"
        f"if os.path.exists({str(held)!r}):\n"
        "    print('ptpfs: cannot open device usb:1,5: another program holds the camera '\n"
        "          '(held by gvfs-gphoto2-vo, PID 4242)', file=sys.stderr)\n"
        "    sys.exit(4)\n"
        "sys.argv[0] = 'ptpfs'\n"
        "runpy.run_module('ptpfs.cli.ptpfs_main', run_name='__main__')\n")
    messages: list[str] = []
    watcher = Watcher(str(root), lister=lambda: [cam], retry=0.3, say=messages.append,
                      ptpfs_command=[sys.executable, str(guard)])
    try:
        watcher.scan()
        watcher.scan()                                # within --retry: not tried again
        busy = [m for m in messages if "busy" in m]
        assert len(busy) == 1 and "gvfs-gphoto2-vo, PID 4242" in busy[0]
        assert _mounts_under(root) == [] and os.listdir(root) == []
        held.unlink()                                 # the other program lets go
        time.sleep(0.35)
        watcher.scan()
        assert is_mounted(str(root / "Canon EOS R6"))
    finally:
        watcher.stop()
    assert _mounts_under(root) == []


def test_run_loop_and_signals(tmp_path: Path, env_path: None) -> None:
    root = tmp_path / "cameras"
    root.mkdir()
    plugged: list[DeviceListing] = []
    watcher = Watcher(str(root), lister=lambda: list(plugged), say=lambda m: None)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop, 0.1, False))
    thread.start()
    try:
        plugged.append(_camera(tmp_path, "d", {"IMG_0001.JPG": b"d"}))
        deadline = time.monotonic() + 30
        while not is_mounted(str(root / "Canon EOS R6")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_mounted(str(root / "Canon EOS R6"))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert _mounts_under(root) == [] and os.listdir(root) == []


def test_desktop_integration_writes_only_when_asked(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    shown = install_desktop_integration("~/Cameras", write=False, home=str(tmp_path),
                                        rules_dir=str(tmp_path / "rules"))
    assert not (tmp_path / "config").exists() and not (tmp_path / "rules").exists()
    assert "ExecStart=" in shown[0]
    done = install_desktop_integration(str(tmp_path / "Cameras"), write=True, home=str(tmp_path),
                                       rules_dir=str(tmp_path / "rules"))
    unit = (tmp_path / "config" / "systemd" / "user" / "ptpfs-automount.service").read_text()
    assert f'"{tmp_path / "Cameras"}"' in unit and "[Install]" in unit
    if os.geteuid() == 0:
        rule = (tmp_path / "rules" / "70-ptpfs-automount.rules").read_text()
        assert 'ENV{SYSTEMD_USER_WANTS}+="ptpfs-automount.service"' in rule
    assert done[-1].startswith("then: systemctl --user")
    assert automount.main(["--install-desktop-integration", "--print", str(tmp_path / "x")]) == 0
