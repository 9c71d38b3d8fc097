"""Writes that programs can trust (issue 9): ptpfs mounted for real over a
simulated camera serving a host folder (``sim:DIR``), driven with real
programs, and the bytes checked on the device side, in DIR."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fuse_helpers import mounted_session, run

from ptpfs.connect import open_session
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.transport.inprocess import InProcessTransport

pytestmark = pytest.mark.fuse

if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
    pytest.fail("FUSE (/dev/fuse, fusermount3) is required for these tests")

PROFILES = ["android-mtp", "canon-eos", "generic"]


@dataclasses.dataclass
class WMount:
    """A mount over a camera serving *card* (the device side)."""

    camera: Any
    session: Session
    mnt: str
    card: str

    @property
    def root(self) -> str:
        """The mounted storage that is DIR."""
        return os.path.join(self.mnt, os.listdir(self.mnt)[0]
                            if os.listdir(self.mnt)[0] != ".ptp" else os.listdir(self.mnt)[1])

    def m(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def dev(self, *parts: str) -> bytes:
        with open(os.path.join(self.card, *parts), "rb") as f:
            return f.read()

    def dev_names(self, *parts: str) -> list[str]:
        return sorted(os.listdir(os.path.join(self.card, *parts)))


@pytest.fixture
def wmount(tmp_path, monkeypatch) -> Iterator[Any]:
    """Factory: wmount(profile, ptpip=False) -> WMount over an empty DIR."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    stack: list[Any] = []

    def make(profile: str = "android-mtp", ptpip: bool = False,
             options: list[str] | None = None, uploads: bool = True,
             card: Any = None) -> WMount:
        if card is None:
            card = tmp_path / f"card{len(stack)}"
            card.mkdir()
        camera = make_camera(str(card), profile, watch_interval=None, uploads=uploads)
        server = None
        if ptpip:
            server = PtpipServer(camera, "127.0.0.1", 0)
            server.start()
            session = open_session(f"ptpip:127.0.0.1:{server.port}")
        else:
            session = Session(InProcessTransport(camera)).open()
        ctx = mounted_session(session, options)
        mnt = ctx.__enter__()
        stack.append((ctx, session, camera, server))
        return WMount(camera, session, mnt, str(card))

    yield make
    for ctx, session, camera, server in reversed(stack):
        try:
            ctx.__exit__(None, None, None)
        finally:
            session.close()
            if server is not None:
                server.stop()
            camera.store.close()


def leftovers(w: WMount) -> list[str]:
    """Hidden or temporary names left in DIR."""
    return [n for n in os.listdir(w.card) if n.startswith(".")]


# ------------------------------------------------------------------ close-to-open
@pytest.mark.parametrize("profile", PROFILES)
def test_fsync_then_truncate_then_write(wmount, profile: str) -> None:
    w = wmount(profile)
    a, b = os.urandom(100_000), os.urandom(50_000)
    fd = os.open(w.m("f.bin"), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        assert os.fstat(fd).st_blksize == 1 << 20        # cp writes 1 MiB per request
        os.write(fd, a)
        os.fsync(fd)
        assert w.dev("f.bin") == a                       # fsync: the device copy is current
        assert os.stat(w.m("f.bin")).st_size == 100_000
        os.ftruncate(fd, 50_000)
        assert os.fstat(fd).st_size == 50_000
        assert os.stat(w.m("f.bin")).st_size == 50_000   # others see the open file
        os.pwrite(fd, b, 50_000)
    finally:
        os.close(fd)
    assert w.dev("f.bin") == a[:50_000] + b
    with open(w.m("f.bin"), "rb") as f:
        assert f.read() == a[:50_000] + b
    assert leftovers(w) == []


@pytest.mark.parametrize("profile", PROFILES)
def test_append_after_fsync_and_other_opens(wmount, profile: str) -> None:
    w = wmount(profile)
    parts = [os.urandom(n) for n in (70_000, 1, 33_333)]
    fd = os.open(w.m("log.txt"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    try:
        os.write(fd, parts[0])
        os.fsync(fd)
        with open(w.m("log.txt"), "rb") as other:       # another open + close of the path
            assert other.read() == parts[0]
        os.write(fd, parts[1])
        assert os.stat(w.m("log.txt")).st_size == 70_001
        os.fsync(fd)
        os.write(fd, parts[2])
    finally:
        os.close(fd)
    assert w.dev("log.txt") == b"".join(parts)


MMAP_SCRIPT = """
import mmap, os, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    with mmap.mmap(f.fileno(), 0) as mm:
        mm[10:20] = b"0123456789"
        mm[5000:5004] = b"WXYZ"
        mm.flush()                      # msync
    os.fsync(f.fileno())
    input()                             # the test checks the device copy here
    f.seek(0, os.SEEK_END)
    f.write(b"tail")
"""


@pytest.mark.parametrize("profile", ["android-mtp", "generic"])
def test_mmap_write_and_msync(wmount, profile: str) -> None:
    # in a child process: a page fault on the mount from this process would hold
    # the GIL that the in-process FUSE threads need to answer it
    w = wmount(profile)
    data = bytearray(os.urandom(3 * 4096 + 100))
    with open(w.m("map.bin"), "wb") as f:
        f.write(data)
    data[10:20] = b"0123456789"
    data[5000:5004] = b"WXYZ"
    child = subprocess.Popen([sys.executable, "-c", MMAP_SCRIPT, w.m("map.bin")],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while w.dev("map.bin") != bytes(data) and time.monotonic() < deadline \
                and child.poll() is None:
            time.sleep(0.05)
        assert w.dev("map.bin") == bytes(data)       # msync + fsync reached the device
        _, err = child.communicate(b"\n", timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert w.dev("map.bin") == bytes(data) + b"tail"


@pytest.mark.parametrize("profile", ["android-mtp", "canon-eos"])
def test_rm_of_open_file(wmount, profile: str) -> None:
    w = wmount(profile)
    with open(w.m("keep.txt"), "w") as f:
        f.write("keep")
    fd = os.open(w.m("gone.bin"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"x" * 5000)
        os.fsync(fd)
        assert w.dev_names() == ["gone.bin", "keep.txt"]
        assert run(["rm", w.m("gone.bin")]).returncode == 0
        assert "gone.bin" not in os.listdir(w.root)
        assert w.dev_names() == ["keep.txt"]              # the name is gone at once
        os.write(fd, b"y" * 10)                            # the handle keeps working
        assert os.fstat(fd).st_size == 5010
        assert os.pread(fd, 12, 4998) == b"xxyyyyyyyyyy"
        os.fsync(fd)
    finally:
        os.close(fd)
    assert w.dev_names() == ["keep.txt"]                  # and nothing comes back
    # an existing device file opened for writing, then removed
    fd = os.open(w.m("keep.txt"), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"more")
    os.unlink(w.m("keep.txt"))
    os.close(fd)
    assert w.dev_names() == []


# ------------------------------------------------------------------ replace
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("ptpip", [False, True])
def test_editors_and_replace(wmount, profile: str, ptpip: bool) -> None:
    w = wmount(profile, ptpip=ptpip)
    with open(w.m("a.txt"), "w") as f:
        f.write("hello world\n")
    assert run(["sed", "-i", "s/world/there/", w.m("a.txt")]).returncode == 0
    assert w.dev("a.txt") == b"hello there\n"
    assert run(["perl", "-pi", "-e", "s/hello/bye/", w.m("a.txt")]).returncode == 0
    assert w.dev("a.txt") == b"bye there\n"
    with open(w.m("b.txt"), "w") as f:
        f.write("new")
    os.replace(w.m("b.txt"), w.m("a.txt"))
    assert w.dev("a.txt") == b"new"
    assert w.dev_names() == ["a.txt"]
    with open(w.m("c.txt"), "w") as f:
        f.write("from mv")
    assert run(["mv", w.m("c.txt"), w.m("a.txt")]).returncode == 0
    assert w.dev("a.txt") == b"from mv"
    # replaced before close: sent under its final name
    with open(w.m("d.tmp"), "w") as f:
        f.write("pending")
        f.flush()
        os.rename(w.m("d.tmp"), w.m("a.txt"))
    assert w.dev("a.txt") == b"pending"
    assert w.dev_names() == ["a.txt"] and leftovers(w) == []
    assert sorted(os.listdir(w.root)) == ["a.txt"]


def test_rename_dir_onto_empty_dir(wmount) -> None:
    w = wmount("android-mtp")
    os.mkdir(w.m("src"))
    os.mkdir(w.m("empty"))
    with open(w.m("src", "f"), "w") as f:
        f.write("f")
    os.rename(w.m("src"), w.m("empty"))
    assert w.dev("empty", "f") == b"f"
    assert w.dev_names() == ["empty"]


# ------------------------------------------------------------------ timestamps
@pytest.mark.parametrize("profile", PROFILES)
def test_touch_d_then_stat(wmount, profile: str) -> None:
    w = wmount(profile)
    with open(w.m("t.txt"), "w") as f:
        f.write("t")
    assert run(["touch", "-d", "2021-03-04 05:06:07.25", w.m("t.txt")]).returncode == 0
    expect = time.mktime((2021, 3, 4, 5, 6, 7, 0, 0, -1)) + 0.25
    assert os.stat(w.m("t.txt")).st_mtime == pytest.approx(expect, abs=1e-6)
    if profile == "android-mtp":     # DateModified is settable: the device has it too
        assert int(os.stat(os.path.join(w.card, "t.txt")).st_mtime) == int(expect)


@pytest.mark.parametrize("profile", PROFILES)
def test_rsync_twice_transfers_nothing(wmount, tmp_path, profile: str) -> None:
    w = wmount(profile)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(os.urandom(1000 * (i + 1)))
    (src / "sub" / "deep.txt").write_text("deep")
    os.utime(src / "f0.bin", (1_500_000_000.5, 1_500_000_000.5))
    first = run(["rsync", "-a", "--stats", f"{src}/", f"{w.root}/"])
    assert first.returncode == 0, first.stderr
    second = run(["rsync", "-a", "--stats", f"{src}/", f"{w.root}/"])
    assert second.returncode == 0, second.stderr
    assert "Number of regular files transferred: 0" in second.stdout, second.stdout
    assert w.dev("f3.bin") == (src / "f3.bin").read_bytes()
    # a new mount of the same device (the time record persists across mounts)
    w.session.close()
    again = wmount(profile, card=w.card)
    third = run(["rsync", "-a", "--stats", f"{src}/", f"{again.root}/"])
    assert third.returncode == 0, third.stderr
    assert "Number of regular files transferred: 0" in third.stdout, third.stdout
    assert w.dev("sub", "deep.txt") == b"deep"
    assert leftovers(w) == []


# ------------------------------------------------------------------ parallel writers
@pytest.mark.parametrize("profile", ["android-mtp", "canon-eos"])
def test_parallel_writers(wmount, profile: str) -> None:
    w = wmount(profile)
    payloads = {f"w{t}-{i:02d}.bin": os.urandom(2000 + 97 * i + t)
                for t in range(8) for i in range(60 // 8 + (1 if t < 60 % 8 else 0))}
    assert len(payloads) == 60
    failures: list[str] = []
    names = sorted(payloads)

    def writer(t: int) -> None:
        for name in names[t::8]:
            try:
                with open(w.m(name), "wb") as f:
                    f.write(payloads[name])
            except OSError as exc:
                failures.append(f"{name}: {exc}")

    def lister() -> None:
        for _ in range(20):
            os.listdir(w.root)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    threads.append(threading.Thread(target=lister))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert w.dev_names() == names
    for name, data in payloads.items():
        assert w.dev(name) == data


def test_two_cp_r_at_once(wmount, tmp_path) -> None:
    w = wmount("android-mtp", ptpip=True)
    trees = []
    for k in range(2):
        src = tmp_path / f"tree{k}"
        src.mkdir()
        for i in range(12):
            (src / f"{i}.bin").write_bytes(os.urandom(3000 + i))
        trees.append(src)
    procs = [subprocess.Popen(["cp", "-r", str(src), w.root], stderr=subprocess.PIPE)
             for src in trees]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for src in trees:
        for f in src.iterdir():
            assert w.dev(src.name, f.name) == f.read_bytes()


# ------------------------------------------------------------------ names, link
def test_name_limits(wmount) -> None:
    w = wmount("android-mtp")
    assert os.statvfs(w.root).f_namemax == 254
    ok = "n" * 254
    with open(w.m(ok), "w") as f:
        f.write("x")
    assert w.dev_names() == [ok]
    for n in (255, 256):
        for call in (lambda p: open(p, "w"), os.mkdir, lambda p: os.rename(w.m(ok), p)):
            with pytest.raises(OSError) as exc:
                call(w.m("n" * n))
            assert exc.value.errno == errno.ENAMETOOLONG
    res = run(["sh", "-c", f"echo hi > '{w.m('back' + chr(92) + 'slash')}'"])
    assert res.returncode != 0                            # refused at create, not at close
    assert w.dev_names() == [ok]


def test_link_down_refuses_create(wmount) -> None:
    w = wmount("canon-eos")
    os.listdir(w.root)
    w.session._mark_lost("test: link cut")
    res = run(["sh", "-c", f"echo important > '{w.m('notes.txt')}'"])
    assert res.returncode != 0
    assert "Input/output error" in res.stderr
    assert w.dev_names() == []


# ------------------------------------------------------------------ header peeks
PEEK = """
import sys
with open(sys.argv[1], "rb") as f:          # buffered: reads st_blksize at a time
    assert f.read(2) == b"\\xff\\xd8"
    pos = 2
    for _ in range(20):                      # walk the JPEG markers, as EXIF readers do
        f.seek(pos)
        head = f.read(4)
        pos += 2 + int.from_bytes(head[2:4], "big")
"""


@pytest.mark.parametrize("profile", ["android-mtp", "generic"])
def test_header_peek_of_large_jpeg_fetches_little(wmount, profile: str) -> None:
    w = wmount(profile)
    body = bytearray(os.urandom(11_000_000))
    body[:2] = b"\xff\xd8"
    for i in range(20):                      # 20 APPn segments of 1000 bytes
        at = 2 + i * 1002
        body[at:at + 4] = b"\xff\xe1" + (1000).to_bytes(2, "big")
    with open(os.path.join(w.card, "big.jpg"), "wb") as f:
        f.write(body)
    assert os.stat(w.m("big.jpg")).st_blksize <= 128 << 10
    before = w.session.stats.bytes_in
    res = subprocess.run([sys.executable, "-c", PEEK, w.m("big.jpg")], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert w.session.stats.bytes_in - before <= 1 << 20


def test_rm_of_file_open_for_reading(wmount) -> None:
    w = wmount("android-mtp")
    data = os.urandom(600_000)
    with open(os.path.join(w.card, "photo.jpg"), "wb") as f:
        f.write(data)
    with open(w.m("photo.jpg"), "rb", buffering=0) as f:
        first = f.read(100_000)
        os.unlink(w.m("photo.jpg"))
        assert "photo.jpg" not in os.listdir(w.root)       # the name is gone at once
        assert os.fstat(f.fileno()).st_size == 600_000
        rest = f.read()
        assert first + rest == data                           # the reader keeps its bytes
    deadline = time.monotonic() + 5                           # release is asynchronous
    while w.dev_names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.dev_names() == []                                # deleted at the last close


@pytest.mark.parametrize("profile", ["android-mtp", "generic"])
def test_reader_of_overwritten_file_never_sees_a_mix(wmount, profile: str) -> None:
    # issue 11.7: a reader that opened the old object reads the old bytes, then (the
    # object being gone from the device) EIO; never new bytes inside old ones
    w = wmount(profile)
    old, new = os.urandom(3_000_000), os.urandom(3_000_000)
    with open(os.path.join(w.card, "f.bin"), "wb") as f:
        f.write(old)
    fd = os.open(w.m("f.bin"), os.O_RDONLY)
    got = os.read(fd, 1_000_000)
    subprocess.run(["cp", "/dev/stdin", w.m("f.bin")], input=new, check=True)
    error = None
    try:
        while chunk := os.read(fd, 65536):
            got += chunk
    except OSError as exc:
        error = exc.errno
    finally:
        os.close(fd)
    assert got == old or (old.startswith(got) and error == errno.EIO)
    assert w.dev("f.bin") == new


# ------------------------------------------------------------------ over 4 GiB (issue 13.3)
def test_5gib_sparse_round_trip(wmount) -> None:
    w = wmount("android-mtp")                 # has SendObjectPropList: 64-bit size
    size = 5 << 30
    head, tail = os.urandom(1 << 20), os.urandom(1 << 20)
    fd = os.open(w.m("big.bin"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.pwrite(fd, head, 0)
        os.pwrite(fd, tail, size - len(tail))
    finally:
        os.close(fd)
    st = os.stat(os.path.join(w.card, "big.bin"))
    assert st.st_size == size
    assert st.st_blocks * 512 < 64 << 20       # stored sparsely by the simulator
    assert os.stat(w.m("big.bin")).st_size == size
    with open(w.m("big.bin"), "rb") as f:
        assert f.read(len(head)) == head
        f.seek(size - len(tail))
        assert f.read() == tail
        f.seek(3 << 30)
        assert f.read(4096) == bytes(4096)


def test_over_4gib_refused_without_64bit_upload(wmount) -> None:
    w = wmount("generic")
    fd = os.open(w.m("big.bin"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"x" * 1000)
        with pytest.raises(OSError) as exc:
            os.ftruncate(fd, 5 << 30)
        assert exc.value.errno == errno.EFBIG
        with pytest.raises(OSError) as exc:
            os.pwrite(fd, b"y", 1 << 32)
        assert exc.value.errno == errno.EFBIG
    finally:
        os.close(fd)
    assert w.dev("big.bin") == b"x" * 1000            # what fits arrived, nothing else
    assert leftovers(w) == []


def test_device_refusing_uploads_fails_redirects_at_create(wmount) -> None:
    # issue 11.3: the R6 answers SendObjectInfo with AccessDenied; once known, a redirect
    # (whose shell ignores close()) fails at create, never silently
    w = wmount("canon-eos", uploads=False)
    first = run(["cp", "/dev/null", w.m("a.txt")])
    assert first.returncode != 0 and "Permission denied" in first.stderr
    res = run(["sh", "-c", f"echo important > '{w.m('notes.txt')}'"])
    assert res.returncode != 0 and "Permission denied" in res.stderr
    assert w.dev_names() == []
