"""gphoto2 (an independent PTP/IP initiator) against PtpipServer serving a simulated camera.

libgphoto2 connects its event socket to port 15740 unless the port spec names an event port,
so the spec is ``ptpip:127.0.0.1:PORT:PORT``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from ptpfs.sim.store import StoreError

pytestmark = [
    pytest.mark.gphoto2,
    pytest.mark.skipif(shutil.which("gphoto2") is None, reason="gphoto2 is not installed"),
]

FOLDER = "DCIM/100CANON"
GP_FOLDER = "/store_00010001/DCIM/100CANON"


CAMERA = {"profile": "generic", "folders": 1, "files_per_folder": 3, "jpeg_size": 250_000,
          "raw_size": 700_000}


@pytest.fixture
def gphoto2(server, tmp_path):
    """Run gphoto2 against the server in a scratch cwd/HOME; returns its stdout."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = dict(os.environ, HOME=str(home), LANG="C", LC_ALL="C")
    port = f"ptpip:127.0.0.1:{server.port}:{server.port}"

    def run(*args: str) -> str:
        proc = subprocess.run(["gphoto2", "--port", port, *args], cwd=work, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, f"gphoto2 {args} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    run.cwd = work  # type: ignore[attr-defined]
    return run


def _listing(output: str) -> dict[int, str]:
    """``{number: filename}`` from ``gphoto2 -L`` output."""
    return {int(m.group(1)): m.group(2)
            for m in re.finditer(r"^#(\d+)\s+(\S+)", output, re.MULTILINE)}


def test_summary(camera, gphoto2):
    out = gphoto2("--summary")
    assert f"Manufacturer: {camera.profile.manufacturer}" in out
    assert f"Model: {camera.profile.model}" in out
    assert "store_00010001" in out


def test_list_files(camera, gphoto2):
    files = _listing(gphoto2("-L"))
    expected = sorted(o.name for o in camera.store.children(
        0x00010001, camera.store.find(FOLDER).handle))
    assert sorted(files.values()) == expected


def test_get_file_bytes_match(camera, gphoto2):
    files = _listing(gphoto2("-L"))
    number, name = next((n, f) for n, f in files.items() if f.endswith(".CR3"))
    gphoto2("--get-file", str(number))
    got = (gphoto2.cwd / name).read_bytes()
    obj = camera.store.find(f"{FOLDER}/{name}")
    assert len(got) == obj.size
    assert got == obj.read(0, obj.size)


def test_upload_then_delete(camera, gphoto2):
    payload = os.urandom(200_000) + b"tail"   # several 64 KiB Data packets from gphoto2
    src = gphoto2.cwd / "upload.bin"
    src.write_bytes(payload)
    gphoto2("--folder", GP_FOLDER, "--upload-file", str(src))
    obj = camera.store.find(f"{FOLDER}/upload.bin")
    assert obj.read(0, obj.size + 1) == payload

    files = _listing(gphoto2("-L", "--folder", GP_FOLDER))
    number = next(n for n, name in files.items() if name == "upload.bin")
    gphoto2("--folder", GP_FOLDER, "--delete-file", str(number))
    with pytest.raises(StoreError):
        camera.store.find(f"{FOLDER}/upload.bin")
    assert "upload.bin" not in _listing(gphoto2("-L")).values()


def test_upload_empty_file(camera, gphoto2):
    """libgphoto2 sends only StartData(0) for an empty data phase (no EndData)."""
    src = gphoto2.cwd / "empty.bin"
    src.write_bytes(b"")
    gphoto2("--folder", GP_FOLDER, "--upload-file", str(src))
    assert camera.store.find(f"{FOLDER}/empty.bin").size == 0
    assert "empty.bin" in _listing(gphoto2("-L")).values()
