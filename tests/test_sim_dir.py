"""sim:DIR: the camera serves a host directory; writes stay inside it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ptp_client import Client

from ptpfs.protocol.codes import DT, EC, OC, OFC, OPC, RC
from ptpfs.protocol.datasets import ObjectInfo, StorageInfo, decode_u32_array
from ptpfs.protocol.wire import encode_value
from ptpfs.sim import make_camera

SID = 0x00010001
ALL = 0xFFFFFFFF


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "card"
    outside = tmp_path / "outside"
    (root / "DCIM" / "100TEST").mkdir(parents=True)
    outside.mkdir()
    (root / "DCIM" / "100TEST" / "a.jpg").write_bytes(b"\xff\xd8" + b"A" * 5000)
    (root / "notes.txt").write_text("hello")
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside, root / "linkdir")
    os.mkfifo(root / "fifo")
    return root, outside


def _open(root: Path, profile: str = "android-mtp", **kw: object):
    kw.setdefault("watch_interval", None)
    cam = make_camera(str(root), profile, **kw)
    c = Client(cam)
    c.open()
    return cam, c


def names(c: Client, parent: int = ALL) -> dict[str, int]:
    out = {}
    for h in decode_u32_array(c.ok(OC.GetObjectHandles, SID, 0, parent).data):
        out[ObjectInfo.decode(c.ok(OC.GetObjectInfo, h).data).filename] = h
    return out


def upload(c: Client, name: str, data: bytes, parent: int = ALL,
           fmt: int = OFC.Undefined) -> tuple[int, int]:
    oi = ObjectInfo(SID, fmt, compressed_size=len(data), filename=name)
    r = c.call(OC.SendObjectInfo, SID, parent, data=oi.encode())
    if r.code != RC.OK:
        return r.code, 0
    return c.call(OC.SendObject, data=data).code, r.params[2]


def test_serves_directory_without_links_or_specials(tree) -> None:
    root, _ = tree
    cam, c = _open(root)
    try:
        top = names(c)
        assert set(top) == {"DCIM", "notes.txt"}
        folder = names(c, names(c, top["DCIM"])["100TEST"])
        data = c.ok(OC.GetObject, folder["a.jpg"]).data
        assert data == (root / "DCIM" / "100TEST" / "a.jpg").read_bytes()
        oi = ObjectInfo.decode(c.ok(OC.GetObjectInfo, folder["a.jpg"]).data)
        assert oi.object_format == OFC.EXIF_JPEG and oi.compressed_size == 5002
        si = StorageInfo.decode(c.ok(OC.GetStorageInfo, SID).data)
        assert si.max_capacity > 0 and si.free_space_bytes > 0
    finally:
        c.close()
        cam.close()


def test_writes_go_to_directory(tree) -> None:
    root, _ = tree
    cam, c = _open(root)
    try:
        top = names(c)
        code, handle = upload(c, "new.bin", b"N" * 70_000, parent=top["DCIM"])
        assert code == RC.OK
        assert (root / "DCIM" / "new.bin").read_bytes() == b"N" * 70_000
        assert not [p for p in (root / "DCIM").iterdir() if p.name.startswith(".ptpfs")]
        r = c.ok(OC.SendObjectInfo, SID, ALL, data=ObjectInfo.folder(SID, 0, "sub").encode())
        assert (root / "sub").is_dir()
        assert upload(c, "x.txt", b"x", parent=r.params[2])[0] == RC.OK
        assert (root / "sub" / "x.txt").read_bytes() == b"x"
        # rename and move on the host
        c.ok(OC.SetObjectPropValue, handle, OPC.ObjectFileName, data=encode_value(DT.STR, "r.bin"))
        assert (root / "DCIM" / "r.bin").exists() and not (root / "DCIM" / "new.bin").exists()
        c.ok(OC.MoveObject, handle, SID, r.params[2])
        assert (root / "sub" / "r.bin").read_bytes() == b"N" * 70_000
        # delete (folders recursively)
        c.ok(OC.DeleteObject, r.params[2], 0)
        assert not (root / "sub").exists()
        # incomplete upload leaves nothing
        oi = ObjectInfo(SID, OFC.Undefined, compressed_size=100, filename="part.bin")
        c.ok(OC.SendObjectInfo, SID, ALL, data=oi.encode())
        assert c.call(OC.SendObject, data=b"p" * 50).code == RC.IncompleteTransfer
        assert sorted(p.name for p in root.iterdir()) == ["DCIM", "fifo", "link.txt", "linkdir",
                                                          "notes.txt"]
    finally:
        c.close()
        cam.close()


def test_hostile_names_never_escape(tree) -> None:
    root, outside = tree
    cam, c = _open(root)
    before = sorted(p.name for p in root.parent.iterdir())
    try:
        for bad in ("../x", "../outside/secret.txt", "/tmp/evil", "a/b", "..", ".", ""):
            assert upload(c, bad, b"evil")[0] == RC.InvalidParameter, bad
        h = names(c)["notes.txt"]
        for bad in ("../x", "/abs", "a/b"):
            assert c.call(OC.SetObjectPropValue, h, OPC.ObjectFileName,
                          data=encode_value(DT.STR, bad)).code == RC.InvalidObjectPropValue
        # uploading under a symlink's name neither writes through the link nor
        # replaces it: the bytes get a name of their own beside it
        assert upload(c, "link.txt", b"overwritten")[0] == RC.OK
        assert (outside / "secret.txt").read_text() == "secret"
        assert (root / "link.txt").is_symlink()
        assert (root / "link~2.txt").read_bytes() == b"overwritten"
        assert sorted(p.name for p in root.parent.iterdir()) == before
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    finally:
        c.close()
        cam.close()


def test_folder_swapped_for_symlink_is_not_followed(tree) -> None:
    root, outside = tree
    cam, c = _open(root)
    try:
        folder = names(c, names(c)["DCIM"])["100TEST"]
        oi = ObjectInfo(SID, OFC.Undefined, compressed_size=4, filename="t.bin")
        c.ok(OC.SendObjectInfo, SID, folder, data=oi.encode())
        # the folder is replaced by a link to outside between SendObjectInfo and SendObject
        os.rename(root / "DCIM" / "100TEST", root / "moved")
        os.symlink(outside, root / "DCIM" / "100TEST")
        assert c.call(OC.SendObject, data=b"evil").code != RC.OK
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    finally:
        c.close()
        cam.close()


def test_external_changes_noticed_when_listing(tree) -> None:
    root, _ = tree
    cam, c = _open(root)
    try:
        dcim = names(c)["DCIM"]
        (root / "DCIM" / "later.txt").write_text("new")
        kids = names(c, dcim)
        assert "later.txt" in kids
        events = []
        while (ev := c.transport.read_event(0.2)) is not None:
            events.append((ev.code, ev.params))
        assert (EC.ObjectAdded, (kids["later.txt"],)) in events
        os.unlink(root / "DCIM" / "later.txt")
        assert "later.txt" not in names(c, dcim)
        ev = c.transport.read_event(1)
        assert (ev.code, ev.params) == (EC.ObjectRemoved, (kids["later.txt"],))
        assert c.call(OC.GetObjectInfo, kids["later.txt"]).code == RC.InvalidObjectHandle
        # handles of unchanged objects are stable
        assert names(c, dcim)["100TEST"] == kids["100TEST"]
    finally:
        c.close()
        cam.close()


def test_watcher_emits_events_without_listing(tree) -> None:
    root, _ = tree
    cam, c = _open(root, watch_interval=0.1)
    try:
        (root / "watched.txt").write_text("w")
        deadline = time.monotonic() + 3
        got = None
        while time.monotonic() < deadline:
            ev = c.transport.read_event(0.2)
            if ev is not None and ev.code == EC.ObjectAdded:
                got = ev
                break
        assert got is not None
        assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, got.params[0]).data).filename == "watched.txt"
    finally:
        c.close()
        cam.close()
    assert cam.store._watcher is not None and not cam.store._watcher.is_alive()


def test_read_only_files_are_protected_and_read_only_option(tree) -> None:
    root, _ = tree
    os.chmod(root / "notes.txt", 0o444)
    cam, c = _open(root)
    try:
        assert c.call(OC.DeleteObject, names(c)["notes.txt"], 0).code == RC.ObjectWriteProtected
        assert (root / "notes.txt").exists()
    finally:
        c.close()
        cam.close()
    cam, c = _open(root, read_only=True)
    try:
        assert upload(c, "n.txt", b"n")[0] == RC.StoreReadOnly
        assert c.call(OC.DeleteObject, names(c)["DCIM"], 0).code == RC.StoreReadOnly
    finally:
        c.close()
        cam.close()
