"""Thumbnails without whole-file downloads, through the real mount.

``/.ptp/thumbs`` (sizes from ThumbCompressedSize, bytes from GetThumb, cached),
header reads of the real files (a tumbler-style mmap + JPEG marker walk to the
Exif APP1, and a CR3 box walk to the THMB thumbnail) staying under 256 KiB per
file, ``-o thumbnails=prefill`` checked against the freedesktop Thumbnail
Managing Standard by an independent checker (and by GIO's own validation when
the ``gio`` tool is installed), and ``-o remote``'s mount type.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
import sys
import time
import zlib
from typing import Any
from urllib.parse import quote

import pytest
from fuse_helpers import run

from ptpfs.session import Session
from ptpfs.sim.store import THUMBNAIL

pytestmark = pytest.mark.fuse


FOLDER = "SD1/DCIM/100CANON"
HEADER_BUDGET = 256 << 10
READERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                       "header_reads.py")


@pytest.fixture
def mount(sim_mount: Any) -> Any:
    """mount(options, **card) -> (camera, session, mount point): the shared sim_mount."""
    def make(options: list[str] | None = None, **card: Any) -> tuple[Any, Session, str]:
        m = sim_mount("generic", options, **card)
        return m.camera, m.session, m.mnt
    return make


def _wait(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


# ----------------------------------------------------------------- /.ptp/thumbs

def test_thumbs_tree_listing_costs_no_thumbnail_transfers(mount: Any) -> None:
    cam, session, mnt = mount(files_per_folder=200, jpeg_size=20_000, raw_size=30_000,
                              big_file=1_000_000)
    thumbs = os.path.join(mnt, ".ptp", "thumbs", FOLDER)
    assert sorted(os.listdir(os.path.join(mnt, ".ptp", "thumbs"))) == ["SD1", "SD2"]
    os.listdir(os.path.join(mnt, FOLDER))             # the real listing, as a browser would
    before = session.stats.bytes_in
    listing = run(["ls", "-l", thumbs])
    assert listing.returncode == 0, listing.stderr
    cost = session.stats.bytes_in - before
    names = sorted(os.listdir(thumbs))
    assert len(names) == 201                          # 100 JPG, 100 CR3.jpg, the MP4's .jpg
    assert "IMG_0001.JPG" in names and "IMG_0001.CR3.jpg" in names and "MVI_9999.MP4.jpg" in names
    sizes = {n: os.stat(os.path.join(thumbs, n)).st_size for n in names}
    assert all(sizes[n] == len(THUMBNAIL) for n in names if n != "MVI_9999.MP4.jpg")
    assert sizes["MVI_9999.MP4.jpg"] == 0             # the camera has no thumbnail for it
    # one GetObjectInfo (~ 100-200 bytes) per file and no thumbnail transfer
    assert cost < 201 * 400, cost
    print(f"\nls -l of /.ptp/thumbs of a 200-image folder: {cost} bytes from the camera")
    real = os.stat(os.path.join(mnt, FOLDER, "IMG_0001.CR3"))
    assert os.stat(os.path.join(thumbs, "IMG_0001.CR3.jpg")).st_mtime == real.st_mtime


def test_thumb_bytes_match_stat_and_are_fetched_once(mount: Any) -> None:
    cam, session, mnt = mount(files_per_folder=6, big_file=1_000_000)
    thumbs = os.path.join(mnt, ".ptp", "thumbs", FOLDER)
    for name in os.listdir(thumbs):
        path = os.path.join(thumbs, name)
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            data = f.read()
        assert len(data) == size
        assert data == (THUMBNAIL if name != "MVI_9999.MP4.jpg" else b"")
    before = session.stats.bytes_in
    mapped = run([sys.executable, "-c", "import mmap, sys; f = open(sys.argv[1], 'rb'); "
                  "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); "
                  "print(m[:2].hex(), m[-2:].hex())", os.path.join(thumbs, "IMG_0002.JPG")])
    assert mapped.stdout.split() == ["ffd8", "ffd9"], mapped       # mmap works (own process)
    same = run(["cmp", "-s", os.path.join(thumbs, "IMG_0002.JPG"), os.path.join(thumbs, "IMG_0003.JPG")])
    assert same.returncode == 0
    assert session.stats.bytes_in == before           # served from the cache
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(thumbs, "IMG_0002.CR3"))  # the thumbnail is IMG_0002.CR3.jpg
    with pytest.raises(OSError):
        open(os.path.join(thumbs, "IMG_0002.JPG"), "wb")


def test_thumb_shorter_or_longer_than_announced(mount: Any) -> None:
    cam, session, mnt = mount(files_per_folder=4)
    thumbs = os.path.join(mnt, ".ptp", "thumbs", FOLDER)
    real_get = session.get_thumb
    short = THUMBNAIL[:-40] + b"\xff\xd9"

    def lying_camera(handle: int, sink: Any = None) -> Any:
        name = cam.store.get(handle).name
        return short if name == "IMG_0001.JPG" else THUMBNAIL + b"extra" \
            if name == "IMG_0002.JPG" else real_get(handle, sink)
    session.get_thumb = lying_camera  # type: ignore[method-assign]
    a = os.path.join(thumbs, "IMG_0001.JPG")
    assert os.stat(a).st_size == len(THUMBNAIL)
    data = open(a, "rb").read()
    assert len(data) == len(THUMBNAIL) and data.startswith(short) and not data[len(short):].strip(b"\0")
    b = os.path.join(thumbs, "IMG_0002.JPG")
    assert os.stat(b).st_size == len(THUMBNAIL)      # announced, before any transfer
    data = open(b, "rb").read()
    assert data == THUMBNAIL + b"extra"               # whole, not cut at the announced size
    with open(b, "rb") as f:
        assert os.fstat(f.fileno()).st_size == len(data)


# ----------------------------------------------------------------- header reads

def _kernel_readahead_kb(mnt: str) -> int:
    with open("/proc/self/mountinfo") as f:
        dev = next(line.split()[2] for line in f if line.split()[4] == os.path.realpath(mnt))
    with open(f"/sys/class/bdi/{dev}/read_ahead_kb") as f:
        return int(f.read())


@pytest.mark.parametrize("readahead", ["128k", "512k"])
def test_header_readers_fetch_little(mount: Any, readahead: str) -> None:
    """With -o kernel_readahead=128k (the setting docs/photographer.md gives for desktops)
    both readers stay under 256 KiB; with the default 512k an mmap fault reads
    around 512 KiB (the kernel's window), the pread-based CR3 reader still 128 KiB."""
    cam, session, mnt = mount([f"kernel_readahead={readahead}"], files_per_folder=8)
    if os.geteuid() != 0:
        pytest.skip("setting the mount's kernel read-ahead needs root")
    _wait(lambda: _kernel_readahead_kb(mnt) == int(readahead[:-1]), "the read-ahead setting")
    folder = os.path.join(mnt, FOLDER)
    costs: dict[str, list[int]] = {"JPG": [], "CR3": []}
    want = f"{len(THUMBNAIL)} {hashlib.sha256(THUMBNAIL).hexdigest()}"
    for name in sorted(os.listdir(folder)):
        before = session.stats.bytes_in
        path = os.path.join(folder, name)
        # another process: an mmap fault served by this process's FUSE threads would
        # wait for the interpreter lock the faulting thread holds
        out = run([sys.executable, READERS, path])
        assert out.returncode == 0 and out.stdout.split(None, 1)[1].strip() == want, out
        costs[name[-3:]].append(session.stats.bytes_in - before)
    print(f"\nkernel_readahead={readahead}: bytes fetched per header read: JPEG (mmap, APP1) "
          f"{costs['JPG']}, CR3 (preads, THMB) {costs['CR3']}")
    assert max(costs["CR3"]) <= HEADER_BUDGET
    if readahead == "128k":
        assert max(costs["JPG"]) <= HEADER_BUDGET
    else:
        assert max(costs["JPG"]) <= (512 << 10) + 4096   # the kernel's mmap read-around


# ----------------------------------------------------------------- freedesktop cache

def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """PNG chunks, CRCs checked (an independent reader, not Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        assert zlib.crc32(kind + body) == crc, kind
        out.append((kind, body))
        pos += 12 + length
    assert out[-1][0] == b"IEND"
    return out


def check_freedesktop_thumbnail(path: str, cache: str) -> str:
    """The Thumbnail Managing Standard's rules for one file's ``normal`` thumbnail:
    name = md5 of the file:// URI + .png, 0600 in a 0700 directory, at most 128 px,
    Thumb::URI and Thumb::MTime (= the file's st_mtime) present, Thumb::Size = st_size."""
    uri = "file://" + quote(os.path.abspath(path))
    thumb = os.path.join(cache, "thumbnails", "normal",
                         hashlib.md5(uri.encode()).hexdigest() + ".png")
    st = os.stat(path)
    assert stat.S_IMODE(os.stat(thumb).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(thumb)).st_mode) == 0o700
    chunks = _png_chunks(open(thumb, "rb").read())
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert chunks[0][0] == b"IHDR" and 0 < max(width, height) <= 128
    text = dict(body.split(b"\0", 1) for kind, body in chunks if kind == b"tEXt")
    assert text[b"Thumb::URI"].decode() == uri
    assert int(text[b"Thumb::MTime"]) == int(st.st_mtime)
    assert int(text[b"Thumb::Size"]) == st.st_size
    return thumb


def test_prefill_writes_valid_freedesktop_thumbnails(mount: Any, tmp_path: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("PIL", reason="thumbnails=prefill needs Pillow (the [thumbnails] extra)")
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("XDG_CACHE_HOME", cache)
    cam, session, mnt = mount(["thumbnails=prefill"], files_per_folder=12, big_file=1_000_000)
    folder = os.path.join(mnt, FOLDER)
    names = os.listdir(folder)                        # listing the folder starts the prefill
    media = [n for n in names if not n.endswith(".MP4")]   # the MP4 has no camera thumbnail
    normal = os.path.join(cache, "thumbnails", "normal")
    _wait(lambda: os.path.isdir(normal) and
          len([n for n in os.listdir(normal) if n.endswith(".png")]) == len(media),
          "the prefilled thumbnails")
    written = {check_freedesktop_thumbnail(os.path.join(folder, n), cache) for n in media}
    assert len(written) == len(media)
    if shutil.which("gio"):                           # GLib's own verdict, when installed
        for n in media[:3]:
            out = run(["gio", "info", "-a", "thumbnail::path,thumbnail::is-valid",
                       os.path.join(folder, n)], env=dict(os.environ, XDG_CACHE_HOME=cache))
            assert "thumbnail::is-valid: TRUE" in out.stdout, out.stdout + out.stderr
    # Listing again rewrites nothing (the MTime matches); a remount keeps st_mtime.
    stamps = {p: os.stat(p).st_mtime_ns for p in written}
    os.listdir(folder)
    time.sleep(0.3)
    assert {p: os.stat(p).st_mtime_ns for p in written} == stamps


def test_prefill_survives_a_remount_and_remote_type(mount: Any, tmp_path: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("PIL", reason="thumbnails=prefill needs Pillow (the [thumbnails] extra)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cam, session, mnt = mount(["thumbnails=prefill", "remote"], files_per_folder=2)
    with open("/proc/self/mounts") as f:
        kinds = {line.split()[1]: line.split()[2] for line in f}
    assert kinds[os.path.realpath(mnt)] == "fuse.sshfs"
    mtime = os.stat(os.path.join(mnt, FOLDER, "IMG_0001.JPG")).st_mtime
    cam2, session2, mnt2 = mount([], files_per_folder=2)
    with open("/proc/self/mounts") as f:
        kinds = {line.split()[1]: line.split()[2] for line in f}
    assert kinds[os.path.realpath(mnt2)] == "fuse.ptpfs"
    assert os.stat(os.path.join(mnt2, FOLDER, "IMG_0001.JPG")).st_mtime == mtime
