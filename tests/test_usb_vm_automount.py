"""ptpfs-automount in the QEMU guest: real USB hot-plug with QMP device_add/device_del.

One boot: the watcher runs in the guest (polling libusb: the guest has no udev) with
QEMU's usb-mtp device plugged at start-up but claimed by another process (reported
once with the holder's name, mounted once it lets go); the host unplugs it (the folder goes away,
no stale mount), plugs it back (measuring the time until the folder lists the device's
file), then adds a second usb-mtp device (two cameras at once, unique folder names);
stopping the watcher unmounts everything.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                       reason="qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"),
]

ROOT = Path(__file__).resolve().parent.parent
USB_VM = ROOT / "tools" / "usb-vm" / "usb-vm"

HOLDER = r'''
import os, sys, time
import usb.core, usb.util
share = sys.argv[1]
dev = usb.core.find(idVendor=0x46f4)
usb.util.claim_interface(dev, 0)
open(os.path.join(share, "held"), "w").close()
while not os.path.exists(os.path.join(share, "release")):
    time.sleep(0.1)
usb.util.release_interface(dev, 0)
usb.util.dispose_resources(dev)
'''

GUEST = r'''
import json, os, signal, subprocess, sys, time
HOLDER = open(os.path.join(sys.argv[1], "holder.py")).read()
share, root = sys.argv[1], "/tmp/cams"
os.makedirs(root)
# Another program holds the camera at start-up (claims its interface, as gvfs would).
holder = subprocess.Popen([sys.executable, "-c", HOLDER, share])
while not os.path.exists(os.path.join(share, "held")) and holder.poll() is None:
    time.sleep(0.1)
log = open(os.path.join(share, "watcher.log"), "w")
watcher = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.automount", root, "--interval", "0.3",
                            "--retry", "1", "--no-udev"], stderr=log)

def mounts():
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted(p for p in points if p.startswith(root + "/"))

def listed():
    out = {}
    for name in sorted(os.listdir(root)):
        files = []
        try:
            for storage in os.listdir(os.path.join(root, name)):
                if storage != ".ptp":
                    files += os.listdir(os.path.join(root, name, storage))
        except OSError as exc:
            files = [f"error: {exc}"]
        out[name] = sorted(files)
    return out

def save(doc, name="state.json"):
    tmp = os.path.join(share, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, os.path.join(share, name))

while not os.path.exists(os.path.join(share, "stop")):
    save({"mounts": mounts(), "listed": listed()})
    time.sleep(0.1)
watcher.send_signal(signal.SIGTERM)
rc = watcher.wait(60)
save({"rc": rc, "mounts": mounts(), "dirs": sorted(os.listdir(root))}, "final.json")
'''


def _wait(path: Path, ok: Callable[[dict[str, Any]], bool], proc: subprocess.Popen[bytes],
          timeout: float, what: str) -> dict[str, Any]:
    end = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < end:
        try:
            last = json.loads(path.read_text())
        except (OSError, ValueError):
            last = {}
        if last and ok(last):
            return last
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"guest never showed {what}; last state {last}; vm exit {proc.poll()}")


def test_watcher_follows_hotplug_in_the_guest(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools" / "usb-vm"))
    from vmlib import qmp as vmqmp

    mtp_a, mtp_b, share = tmp_path / "a", tmp_path / "b", tmp_path / "share"
    for d in (mtp_a, mtp_b, share):
        d.mkdir()
    (mtp_a / "IMG_0001.JPG").write_bytes(b"\xff\xd8a\xff\xd9")
    (mtp_b / "IMG_0002.JPG").write_bytes(b"\xff\xd8b\xff\xd9")
    (share / "guest.py").write_text(GUEST)
    (share / "holder.py").write_text(HOLDER)
    sock = tmp_path / "qmp.sock"
    state = share / "state.json"
    cmd = [str(USB_VM), "--mtp-dir", str(mtp_a), "--share", str(share), "--qmp", str(sock),
           "--timeout", "300",
           f"exec {shlex.quote(sys.executable)} {shlex.quote(str(share / 'guest.py'))} "
           f"{shlex.quote(str(share))}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)

    def one_camera(doc: dict[str, Any]) -> bool:
        return len(doc["mounts"]) == 1 and list(doc["listed"].values()) == [["IMG_0001.JPG"]]

    log = share / "watcher.log"

    def busy_reported(doc: dict[str, Any]) -> bool:
        return log.exists() and "busy" in log.read_text()

    try:
        _wait(state, busy_reported, proc, 200, "the busy camera reported")
        busy = [line for line in log.read_text().splitlines() if "busy" in line]
        # the holder is this interpreter (python3, or python in a virtual environment)
        assert len(busy) == 1 and "held by python" in busy[0], busy
        (share / "release").write_text("")            # the other program lets go
        first = _wait(state, one_camera, proc, 60, "the camera plugged at start-up, listed")
        (name,) = first["listed"]
        vmqmp.unplug(sock)
        _wait(state, lambda d: d["mounts"] == [] and d["listed"] == {}, proc, 60,
              "the folder gone after device_del")
        t0 = time.monotonic()
        vmqmp.plug(sock)
        _wait(state, one_camera, proc, 60, "the camera listed again after device_add")
        plug_to_listed = time.monotonic() - t0
        props = json.loads(Path(f"{sock}.json").read_text())["mtp"]
        vmqmp.plug(sock, {**props, "id": "mtp1", "port": "2", "rootdir": str(mtp_b)})
        both = _wait(state, lambda d: len(d["mounts"]) == 2 and len(d["listed"]) == 2, proc, 60,
                     "two cameras at once")
        assert sorted(both["listed"].values()) == [["IMG_0001.JPG"], ["IMG_0002.JPG"]]
        assert name in both["listed"] and f"{name} (2)" in both["listed"]
        (share / "stop").write_text("")
        out, err = proc.communicate(timeout=120)
        final = json.loads((share / "final.json").read_text())
        assert final == {"rc": 0, "mounts": [], "dirs": []}, final
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        print(f"\nwatcher in the guest: device_add to listed folder {plug_to_listed:.2f} s "
              f"(TCG guest, 0.3 s polling)")
        text = log.read_text()
        assert "unmounted" in text and "is gone" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
