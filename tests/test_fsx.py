"""scripts/fsx.py, the write exerciser, with a fixed seed on every simulator
profile, in-process and over PTP/IP: random write/read/truncate/append/fsync/
mmap/close-reopen against a model, the device-side file (sim:DIR) compared
after every fsync and close (``scripts/fsx.py --ops N`` runs it for longer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from fuse_helpers import ROOT, mounted_session

from ptpfs.connect import open_session
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.transport.inprocess import InProcessTransport

pytestmark = pytest.mark.fuse

if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
    pytest.fail("FUSE (/dev/fuse, fusermount3) is required for these tests")

SCRIPT = os.path.join(ROOT, "scripts", "fsx.py")


@pytest.mark.parametrize("ptpip", [False, True], ids=["inprocess", "ptpip"])
@pytest.mark.parametrize("profile", ["android-mtp", "canon-eos", "generic"])
def test_fsx_fixed_seed(tmp_path, profile: str, ptpip: bool) -> None:
    card = tmp_path / "card"
    card.mkdir()
    camera = make_camera(str(card), profile, watch_interval=None, uploads=True)
    server = None
    if ptpip:
        server = PtpipServer(camera, "127.0.0.1", 0)
        server.start()
        session = open_session(f"ptpip:127.0.0.1:{server.port}")
    else:
        session = Session(InProcessTransport(camera)).open()
    ops = 2000 if ptpip else 3000
    try:
        with mounted_session(session) as mnt:
            storage = next(n for n in sorted(os.listdir(mnt)) if n != ".ptp")
            # a child process: mmap page faults must not happen in the mounting process
            res = subprocess.run([sys.executable, SCRIPT, "--file",
                                  os.path.join(mnt, storage, "fsx.bin"), "--device-file",
                                  str(card / "fsx.bin"), "--ops", str(ops), "--seed", "9"],
                                 capture_output=True, text=True, timeout=300, check=False)
    finally:
        session.close()
        if server is not None:
            server.stop()
        camera.store.close()
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"OK {ops} ops, 0 mismatches" in res.stdout
    assert os.listdir(card) == ["fsx.bin"]          # nothing else left on the device
