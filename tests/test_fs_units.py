"""Filesystem pieces tested without mounting: errno mapping, mount options, command-line parsing,
listing and reading strategies against the simulated camera."""

from __future__ import annotations

import errno
import os

import pytest

from ptpfs.errors import ConnectionLost, InvalidValue, NotSupported, ResponseError
from ptpfs.fs.errmap import errno_for
from ptpfs.fs.mount import parse_options, parse_size
from ptpfs.fs.reader import PartialReader, SpoolCache, SpoolReader
from ptpfs.fs.spool import SpoolDir
from ptpfs.fs.tree import Tree
from ptpfs.sim import make_camera
from ptpfs.transport.inprocess import InProcessTransport


# ------------------------------------------------------------------ errmap
@pytest.mark.parametrize("code,expected", [
    (0x200C, errno.ENOSPC), (0x200F, errno.EACCES), (0x200E, errno.EROFS),
    (0x2009, errno.ENOENT), (0x2002, errno.EIO), (0x201C, errno.EINVAL)])
def test_response_errno(code: int, expected: int) -> None:
    assert errno_for(ResponseError(code)) == expected


def test_other_errno() -> None:
    assert errno_for(ConnectionLost("gone")) == errno.EIO
    assert errno_for(InvalidValue("bad")) == errno.EINVAL
    assert errno_for(NotSupported("no")) == errno.ENOTSUP
    assert errno_for(FileNotFoundError(errno.ENOENT, "x")) == errno.ENOENT
    assert errno_for(RuntimeError("?")) == errno.EIO


# property value forms: tests/test_properties.py (ptpfs.services.properties)


# ------------------------------------------------------------------ options / CLI
def test_mount_options_split() -> None:
    opts = parse_options(["ro,allow_other,uid=1000,umask=022", "cache_ttl=5,readahead_max=4M",
                          "noauto,user,x-systemd.automount,spool_dir=/tmp/x"])
    assert opts.read_only and opts.uid == 1000 and opts.umask == 0o22
    assert opts.cache_ttl == 5 and opts.readahead_max == 4 << 20
    assert opts.spool_dir == "/tmp/x"
    assert opts.fuse["allow_other"] is True and opts.fuse["ro"] is True
    assert "noauto" not in opts.fuse and "cache_ttl" not in opts.fuse
    assert "x-systemd.automount" not in opts.fuse
    assert parse_options([]).fuse.get("allow_other") is None
    assert parse_size("128k") == 131072 and parse_size("1MiB") == 1 << 20
    with pytest.raises(InvalidValue):
        parse_options(["readahead_max=lots"])


def test_cli_usage_errors(tmp_path) -> None:
    from ptpfs.cli.ptpfs_main import main
    assert main(["a", "b", "c"]) == 2
    assert main(["--simulate", str(tmp_path / "missing")]) == 2
    assert main(["-f", "ptpip:127.0.0.1:1", str(tmp_path)]) == 3  # nothing listens there


# ------------------------------------------------------------------ strategies
def _session(profile: str, **options):
    camera = make_camera(None, profile, **options)
    session = open_session_for(camera)
    return camera, session


def open_session_for(camera):
    from ptpfs.session import Session
    return Session(InProcessTransport(camera)).open()


@pytest.mark.parametrize("profile,expected_lister", [
    ("generic", "generic"), ("canon-eos", "eos"), ("android-mtp", "proplist")])
def test_listing_transactions(profile: str, expected_lister: str) -> None:
    camera, session = _session(profile, folders=5, files_per_folder=40)
    try:
        tree = Tree(session)
        assert tree.lister.name == expected_lister
        before = camera.stats.transactions
        dcim = tree.lookup("/SD1/DCIM")
        names = []
        for folder in tree.children(dcim).values():
            names += list(tree.children(folder))
        used = camera.stats.transactions - before
        assert len(names) == 200
        if expected_lister == "generic":
            assert used >= 200
        else:
            # storages (ids + 2 infos) + root + DCIM + 5 folders
            assert used <= 5 + 2 + 3 + 3
    finally:
        session.close()


@pytest.mark.parametrize("profile", ["generic", "canon-eos", "android-mtp"])
def test_partial_reader_sequential_and_random(profile: str) -> None:
    camera, session = _session(profile, folders=1, files_per_folder=2, big_file=6_000_000)
    try:
        tree = Tree(session)
        node = tree.lookup("/SD1/DCIM/100CANON/MVI_9999.MP4")
        obj = camera.store.get(node.handle)
        expected = obj.read(0, obj.size)
        reader = PartialReader(session, node.handle, node.size, maximum=2 << 20)
        got = bytearray()
        offset = 0
        while True:
            chunk = reader.read(offset, 131072)
            if not chunk:
                break
            got += chunk
            offset += len(chunk)
        assert bytes(got) == expected
        assert reader.transactions <= 10  # windows grew to 2 MiB
        assert reader.read(4_000_000, 100) == expected[4_000_000:4_000_100]
        assert reader.read(len(expected) - 10, 100) == expected[-10:]
        reader.close()
        head = PartialReader(session, node.handle, node.size)
        head.read(0, 65536)
        assert head.transferred <= 1 << 20
        head.close()
    finally:
        session.close()


def test_spool_reader_shared(tmp_path) -> None:
    camera, session = _session("generic", folders=1, files_per_folder=2)
    try:
        tree = Tree(session)
        node = tree.lookup("/SD1/DCIM/100CANON/IMG_0001.JPG")
        expected = camera.store.get(node.handle).read(0, node.size)
        (tmp_path / "spool").mkdir()
        spool = SpoolDir(str(tmp_path / "spool"))
        cache = SpoolCache(session, spool)
        before = camera.stats.per_operation.get(0x1009, 0)
        a = SpoolReader(cache, node.handle, node.size)
        b = SpoolReader(cache, node.handle, node.size)
        assert b.read(1000, 5000) == expected[1000:6000]
        assert a.read(0, node.size + 10) == expected
        assert camera.stats.per_operation.get(0x1009, 0) - before == 1  # one GetObject
        a.close()
        b.close()
        assert os.listdir(spool.path) == [".ptpfs-spool"]       # only the marker has a name
        assert os.stat(spool.path).st_mode & 0o777 == 0o700
    finally:
        session.close()


def test_spool_dir_never_touches_what_it_did_not_create(tmp_path) -> None:
    base = tmp_path / "given"
    base.mkdir()
    base.chmod(0o755)
    others = {"spool-old": b"x", "spool-1-abc": b"y", "ptpfs-spool-fake": None, "notes.txt": b"z"}
    for name, data in others.items():
        if data is None:
            (base / name).mkdir()          # looks like ours, but no marker: not ours
        else:
            (base / name).write_bytes(data)
    spool = SpoolDir(str(base))
    assert os.stat(base).st_mode & 0o777 == 0o755                 # mode untouched
    assert set(os.listdir(base)) == set(others) | {os.path.basename(spool.path)}
    assert (base / "spool-old").read_bytes() == b"x"
    assert os.path.dirname(spool.path) == str(base)
    assert os.stat(spool.path).st_mode & 0o777 == 0o700            # the private one is 0700
    os.close(spool.anonymous_file())
    spool.close()
    assert set(os.listdir(base)) == set(others)                   # gone again, the rest stays


def test_spool_dir_removes_only_a_dead_instances_private_dir(tmp_path) -> None:
    import subprocess

    base = tmp_path / "given"
    base.mkdir()
    alive = SpoolDir(str(base))                                   # this process: running
    dead_proc = subprocess.Popen(["true"])
    dead_proc.wait()
    marker = f"ptpfs spool\npid={dead_proc.pid}\nstart=1\n"
    dead = base / "ptpfs-spool-deadbeef"
    dead.mkdir(mode=0o700)
    (dead / ".ptpfs-spool").write_text(marker)
    (dead / f"spool-{dead_proc.pid}-left").write_bytes(b"left")
    kept = base / "ptpfs-spool-withfiles"                         # dead owner, foreign file
    kept.mkdir(mode=0o700)
    (kept / ".ptpfs-spool").write_text(marker)
    (kept / "photo.jpg").write_bytes(b"mine")
    second = SpoolDir(str(base))
    assert second.removed_leftovers == 1 and not dead.exists()
    assert os.path.isdir(alive.path)                              # a running instance's stays
    assert sorted(os.listdir(kept)) == [".ptpfs-spool", "photo.jpg"]   # not only ours: kept
    second.close()
    alive.close()


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such directory"),
    (lambda p: p.write_bytes(b""), "not a directory"),
])
def test_unusable_spool_dir_refused(tmp_path, make, message) -> None:
    from ptpfs.fs.spool import check_spool_base

    target = tmp_path / "x"
    make(target)
    with pytest.raises(InvalidValue, match=message):
        check_spool_base(str(target))
    with pytest.raises(InvalidValue, match=message):
        SpoolDir(str(target))
