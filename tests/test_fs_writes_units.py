"""The upload lifecycle (ptpfs.fs.uploads) and the time record (ptpfs.fs.mtimes)
without a mount: PtpFs driven directly over a simulated camera serving a host
folder, faults injected into the session, and the device side checked in DIR.
(Errors are checked as OSError, FuseOSError's base: importing mfusepy before
ptpfs.fs would make it load libfuse 2 where both are installed.)"""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from ptpfs.errors import ResponseError
from ptpfs.fs.mtimes import MTimes
from ptpfs.fs.operations import PtpFs
from ptpfs.fs.uploads import check_name
from ptpfs.protocol.codes import RC
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.transport.inprocess import InProcessTransport


class FI:
    """A stand-in for libfuse's fuse_file_info."""

    def __init__(self, flags: int = os.O_WRONLY) -> None:
        self.flags = flags
        self.fh = 0
        self.direct_io = 0
        self.keep_cache = 0


@pytest.fixture
def fs(tmp_path, monkeypatch) -> Any:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    card = tmp_path / "card"
    card.mkdir()
    camera = make_camera(str(card), "android-mtp", watch_interval=None)
    session = Session(InProcessTransport(camera)).open()
    (tmp_path / "spool").mkdir()
    ops = PtpFs(session, spool_dir=str(tmp_path / "spool"))
    root = "/" + next(n for n in ops.readdir("/", 0) if n not in (".", "..", ".ptp"))
    yield ops, root, card
    session.close()
    camera.store.close()


def write_file(ops: PtpFs, path: str, data: bytes) -> None:
    fi = FI()
    ops.create(path, 0o644, fi)
    ops.write(path, data, 0, fi)
    ops.flush(path, fi)
    ops.release(path, fi)


def test_failed_rename_leaves_the_destination_intact(fs, monkeypatch) -> None:
    ops, root, card = fs
    write_file(ops, f"{root}/dest.txt", b"old")
    write_file(ops, f"{root}/src.txt", b"new")
    real = ops.session.set_object_prop_value

    def failing(handle: int, prop: int, value: Any, datatype: int) -> None:
        if value == "dest.txt" and handle == ops.tree.lookup(f"{root}/src.txt").handle:
            raise ResponseError(RC.InvalidObjectPropValue)
        real(handle, prop, value, datatype)

    monkeypatch.setattr(ops.session, "set_object_prop_value", failing)
    with pytest.raises(OSError) as exc:
        ops.rename(f"{root}/src.txt", f"{root}/dest.txt")
    assert exc.value.errno == errno.EINVAL
    assert sorted(os.listdir(card)) == ["dest.txt", "src.txt"]   # renamed back
    assert (card / "dest.txt").read_bytes() == b"old"
    monkeypatch.setattr(ops.session, "set_object_prop_value", real)
    ops.rename(f"{root}/src.txt", f"{root}/dest.txt")
    assert sorted(os.listdir(card)) == ["dest.txt"]
    assert (card / "dest.txt").read_bytes() == b"new"


def test_failed_upload_keeps_the_old_file(fs, monkeypatch) -> None:
    ops, root, card = fs
    write_file(ops, f"{root}/a.txt", b"version 1")

    def refuse(*args: Any, **kw: Any) -> None:
        raise ResponseError(RC.StoreFull)

    fi = FI(os.O_WRONLY | os.O_TRUNC)
    ops.open(f"{root}/a.txt", fi)
    ops.truncate(f"{root}/a.txt", 0, fi)
    ops.write(f"{root}/a.txt", b"version 2", 0, fi)
    monkeypatch.setattr(ops.session, "send_object", refuse)
    with pytest.raises(OSError) as exc:
        ops.flush(f"{root}/a.txt", fi)
    assert exc.value.errno == errno.ENOSPC
    ops.release(f"{root}/a.txt", fi)
    assert sorted(os.listdir(card)) == ["a.txt"]
    assert (card / "a.txt").read_bytes() == b"version 1"


def test_parallel_sends_are_one_critical_section(fs) -> None:
    import threading
    ops, root, card = fs
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        for i in range(10):
            try:
                write_file(ops, f"{root}/t{t}-{i}.bin", bytes([t, i]) * 5000)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(os.listdir(card)) == 80
    assert (card / "t3-7.bin").read_bytes() == bytes([3, 7]) * 5000


@pytest.mark.parametrize("name,code", [("a" * 254, None), ("a" * 255, errno.ENAMETOOLONG),
                                       ("é" * 128, errno.ENAMETOOLONG), ("é" * 127, None),
                                       ("a\\b", errno.EINVAL), ("..", errno.EINVAL),
                                       ("\U0001F600" * 127, errno.ENAMETOOLONG)])
def test_check_name(name: str, code: int | None) -> None:
    if code is None:
        check_name(name)
        return
    with pytest.raises(OSError) as exc:
        check_name(name)
    assert exc.value.errno == code


def test_mtime_record_persists_and_expires(tmp_path) -> None:
    rec = MTimes("cam-1", str(tmp_path))
    assert rec.get(1, 5, "a.jpg", 10, 1000.0) is None
    assert not os.path.exists(rec.path)                 # nothing written until a time is set
    rec.set(1, 5, "a.jpg", 10, 1000.0, 1234.5678)
    rec.set(1, 6, "b.jpg", 10, 1000.0, 99.0)
    rec.flush()                                         # unmount (else within a second)
    again = MTimes("cam-1", str(tmp_path))              # a later mount
    assert again.get(1, 5, "a.jpg", 10, 1000.0) == pytest.approx(1234.5678)
    assert again.get(1, 5, "a.jpg", 11, 1000.0) is None   # changed size: the device's date
    assert again.get(1, 5, "b.jpg", 10, 1000.0) is None
    assert again.get(1, 5, "a.jpg", 10, 1001.0) is None
    (tmp_path / "mtimes-cam-1.json").write_text("{not json")
    assert MTimes("cam-1", str(tmp_path)).get(1, 5, "a.jpg", 10, 1000.0) is None
