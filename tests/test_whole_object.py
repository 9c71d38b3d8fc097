"""A camera with no partial reads at all (profile ``whole-object``): every read goes through
the mount's spool path (one GetObject per object, shared by concurrent readers), including an
object over 4 GiB, generated mostly as zeros so that neither the simulator nor the spool
(zeros become holes) needs 4 GiB of memory or disk."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading

import pytest
from fuse_helpers import mounted_session

from ptpfs.protocol.codes import OC
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.sim.sample import MP4_HEADER, GiB
from ptpfs.transport.inprocess import InProcessTransport

pytestmark = pytest.mark.fuse

BIG = 5 * GiB + 12345


@pytest.fixture(scope="module")
def mount():
    camera = make_camera(None, "whole-object", folders=1, files_per_folder=6,
                         jpeg_size=700_000, raw_size=2_000_000, sparse_file=BIG)
    session = Session(InProcessTransport(camera), timeout=30).open()
    try:
        with mounted_session(session) as mnt:
            yield camera, session, mnt
    finally:
        session.close()
        camera.close()


def _sha(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_no_partial_read_is_offered(mount) -> None:
    camera, session, mnt = mount
    assert session.capabilities.partial_read is None


def test_cp_and_parallel_readers_through_the_spool(mount, tmp_path) -> None:
    camera, session, mnt = mount
    folder = os.path.join(mnt, "SD1", "DCIM", "100CANON")
    small = [n for n in sorted(os.listdir(folder)) if n.startswith("IMG_")]
    assert len(small) == 6
    before = camera.stats.count(OC.GetObject)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(["cp", *[os.path.join(folder, n) for n in small], str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in small:
        assert _sha(str(out / name)) == camera.store.find(f"DCIM/100CANON/{name}").sha256()
    assert camera.stats.count(OC.GetObject) - before == 6          # one whole object each
    # four readers of one file at once share one download
    target = os.path.join(folder, small[1])
    expected = camera.store.find(f"DCIM/100CANON/{small[1]}").sha256()
    before = camera.stats.count(OC.GetObject)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(_sha(target))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [expected] * 4
    assert camera.stats.count(OC.GetObject) - before <= 4


def test_object_over_4_gib(mount) -> None:
    camera, session, mnt = mount
    path = os.path.join(mnt, "SD1", "DCIM", "100CANON", "MVI_9998.MP4")
    assert os.stat(path).st_size == BIG                      # the 64-bit size, not 0xFFFFFFFF
    head = subprocess.run(["head", "-c", "65536", path], capture_output=True, timeout=300)
    assert head.returncode == 0
    assert head.stdout[:len(MP4_HEADER)] == MP4_HEADER and len(head.stdout) == 65536
    obj = camera.store.find("DCIM/100CANON/MVI_9998.MP4")
    with open(path, "rb") as f:
        for k in (1, 4, 5):                                  # marks at each GiB, past 4 GiB
            f.seek(k * GiB - 8)
            assert f.read(32) == obj.read(k * GiB - 8, 32), k
        f.seek(BIG - 4)
        assert f.read() == b"END!"
    tail = subprocess.run(["tail", "-c", "100", path], capture_output=True, timeout=300)
    assert tail.stdout == obj.read(BIG - 100, 100)


def test_spool_keeps_zeros_as_holes(tmp_path) -> None:
    """The spool of a mostly-zero object of 256 MiB takes almost no disk, reads back exact."""
    from ptpfs.fs.reader import Spool
    from ptpfs.fs.spool import SpoolDir
    from ptpfs.sim.sample import SparseContent

    content = SparseContent(256 << 20, b"HEAD", b"TAIL")

    class Device:
        def get_object(self, handle: int, sink) -> None:
            for offset in range(0, content.size, 1 << 20):
                sink.write(content.read(offset, 1 << 20))

    spool_dir = SpoolDir(str(tmp_path))
    spool = Spool(Device(), 1, content.size, spool_dir)
    try:
        assert spool.read(0, 4) == b"HEAD"
        assert spool.read(content.size - 4, 4) == b"TAIL"
        assert spool.read(100 << 20, 1 << 20) == bytes(1 << 20)
        assert os.fstat(spool.fd).st_size == content.size
        # the first and last MiB carry data; the rest are holes, not 254 MiB of zeros
        assert os.fstat(spool.fd).st_blocks * 512 <= 4 << 20
    finally:
        spool.close()
        spool_dir.close()
