"""mkdir on a device that answers SendObjectInfo for a folder with a handle the folder
does not get (QEMU's usb-mtp predicts handles and registers objects later): the new
folder must be usable at once — lookup, a file created inside, ``cp -r`` into it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.fuse


def test_mkdir_then_create_inside_with_mispredicted_folder_handles(sim_mount, tmp_path: Path
                                                                   ) -> None:
    m = sim_mount("generic")
    m.camera.faults.mispredict_folder_handles = True
    store = next(n for n in os.listdir(m.mnt) if n != ".ptp")
    st = m.path(store)
    os.mkdir(os.path.join(st, "fresh"))
    assert os.path.isdir(os.path.join(st, "fresh"))
    with open(os.path.join(st, "fresh", "x.txt"), "wb") as f:
        f.write(b"hi\n")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(5000))
    (src / "sub" / "d").write_bytes(b"deep\n")
    proc = subprocess.run(["cp", "-r", str(src), os.path.join(st, "copy")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    objs = m.camera.store
    assert objs.find("fresh/x.txt").read(0, 100) == b"hi\n"
    assert objs.find("copy/sub/d").read(0, 100) == b"deep\n"
    assert objs.find("copy/a.bin").read(0, 10000) == (src / "a.bin").read_bytes()
