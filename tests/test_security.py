"""Security properties: loopback-only simulator, writes confined to sim:DIR,
allow_other only on request, private spool files cleaned after crashes,
property values validated before they reach the camera, and no path from the
filesystem to FormatStore or firmware updates."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest
from fuse_helpers import ROOT, mounted_session, run

from ptpfs.cli.ptpctl import build_serve_parser
from ptpfs.connect import open_session
from ptpfs.errors import ResponseError
from ptpfs.fs.mount import parse_options
from ptpfs.protocol.codes import OC, RC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.transport.inprocess import InProcessTransport

pytestmark = pytest.mark.fuse


HOSTILE_NAMES = ["../escape.txt", "/tmp/ptpfs-abs-escape.txt", "..", ".", "a/b.txt",
                 "..\\..\\escape.txt", "sub\\..\\..\\x.txt", ""]


def listening_addresses(port: int) -> list[str]:
    """Local addresses of TCP sockets listening on *port* (from /proc/net/tcp)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        addr, hexport = fields[1].split(":")
        if int(hexport, 16) == port and fields[3] == "0A":          # LISTEN
            found.append(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
    return found


def tree_snapshot(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# ---------------------------------------------------------------- network exposure
def test_simulator_listens_on_loopback_unless_told() -> None:
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    server = PtpipServer(camera).start()
    try:
        assert listening_addresses(server.port) == ["127.0.0.1"]
    finally:
        server.stop()
        camera.store.close()
    assert build_serve_parser().parse_args([]).listen.startswith("127.0.0.1:")


# ---------------------------------------------------------------- sim:DIR confinement
def test_sim_dir_writes_stay_inside_through_the_mount(tmp_path) -> None:
    outer = tmp_path / "outer"
    root = outer / "card"
    (root / "DCIM").mkdir(parents=True)
    (root / "DCIM" / "a.jpg").write_bytes(b"jpeg")
    before_outer = tree_snapshot(outer)
    camera = make_camera(str(root), "generic", watch_interval=None)
    session = Session(InProcessTransport(camera)).open()
    try:
        with mounted_session(session) as mnt:
            storage = os.path.join(mnt, sorted(n for n in os.listdir(mnt) if n != ".ptp")[0])
            for name in ("..\\escape.txt", "x\\..\\..\\y.txt"):
                with pytest.raises(OSError):
                    with open(os.path.join(storage, name), "wb") as f:
                        f.write(b"nope")
            with pytest.raises(OSError):
                os.mkdir(os.path.join(storage, "..\\dir"))
            with pytest.raises(OSError):
                os.symlink("/etc/passwd", os.path.join(storage, "DCIM", "link"))
            with pytest.raises(OSError):
                os.link(os.path.join(storage, "DCIM", "a.jpg"),
                        os.path.join(storage, "DCIM", "hard"))
            with pytest.raises(OSError):
                os.rename(os.path.join(storage, "DCIM", "a.jpg"),
                          os.path.join(storage, "DCIM", "..\\a.jpg"))
            with open(os.path.join(storage, "DCIM", "ok.txt"), "wb") as f:
                f.write(b"fine\n")
    finally:
        session.close()
        camera.store.close()
    assert (root / "DCIM" / "ok.txt").read_bytes() == b"fine\n"
    after = tree_snapshot(outer)
    assert after - before_outer == {"card/DCIM/ok.txt"}


def test_raw_send_object_info_with_hostile_names_over_ptpip(tmp_path) -> None:
    outer = tmp_path / "outer"
    root = outer / "card"
    root.mkdir(parents=True)
    before = tree_snapshot(outer)
    camera = make_camera(str(root), "generic", watch_interval=None)
    server = PtpipServer(camera).start()
    session = open_session(f"ptpip:127.0.0.1:{server.port}", timeout=5)
    try:
        storage = session.get_storage_ids()[0]
        for name in HOSTILE_NAMES:
            info = ObjectInfo(storage_id=storage, object_format=0x3000, compressed_size=4,
                              parent=0, filename=name)
            with pytest.raises(ResponseError):
                session.send_object_info(storage, 0xFFFFFFFF, info)
            # nothing announced, so nothing can be sent either
            r = session.transaction(OC.SendObject, senddata=b"evil", check=False)
            assert r.code != RC.OK
    finally:
        session.close()
        server.stop()
        camera.store.close()
    assert tree_snapshot(outer) == before
    assert not os.path.exists("/tmp/ptpfs-abs-escape.txt")


# ---------------------------------------------------------------- mount options
def test_allow_other_only_on_request() -> None:
    assert "allow_other" not in parse_options([]).fuse
    assert "allow_other" not in parse_options(["ro,uid=1000"]).fuse
    assert parse_options(["allow_other"]).fuse["allow_other"] is True
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)

    def options(mnt: str) -> set[str]:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if fields[1] == os.path.realpath(mnt):
                return set(fields[3].split(","))
        raise AssertionError("not mounted")
    try:
        for extra, expect in (([], False), (["allow_other"], True)):
            session = Session(InProcessTransport(camera)).open()
            try:
                with mounted_session(session, extra) as mnt:
                    assert ("allow_other" in options(mnt)) is expect
            finally:
                session.close()
    finally:
        camera.store.close()


# spool files: tests/test_spool_mount.py


# ---------------------------------------------------------------- properties
def test_invalid_property_values_never_reach_the_camera() -> None:
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    session = Session(InProcessTransport(camera)).open()
    try:
        with mounted_session(session) as mnt:
            props = os.path.join(mnt, ".ptp", "properties.d")
            before = camera.stats.count(OC.SetDevicePropValue)
            for name, text in (("ExposureIndex", "123457\n"), ("ExposureIndex", "banana\n"),
                               ("ExposureIndex", "-1\n"), ("FNumber", "f/0\n"),
                               ("ExposureTime", "1/0\n")):
                path = os.path.join(props, name)
                if not os.path.exists(path):
                    continue
                with pytest.raises(OSError) as info:
                    with open(path, "w") as f:
                        f.write(text)
                assert info.value.errno == errno.EINVAL, (name, text)
            with pytest.raises(OSError) as info:               # read-only property
                with open(os.path.join(props, "BatteryLevel"), "w") as f:
                    f.write("100\n")
            assert info.value.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
            assert camera.stats.count(OC.SetDevicePropValue) == before
            with open(os.path.join(props, "ExposureIndex"), "w") as f:   # a valid one does
                f.write("400\n")
            assert camera.stats.count(OC.SetDevicePropValue) == before + 1
    finally:
        session.close()
        camera.store.close()


# ---------------------------------------------------------------- no dangerous operations
DANGEROUS = (OC.FormatStore, OC.EOS_FormatStore, OC.EOS_UpdateFirmware, OC.UpdateDeviceFirmware)


def test_no_format_or_firmware_through_the_filesystem(tmp_path) -> None:
    camera = make_camera(None, "canon-eos", folders=2, files_per_folder=3, uploads=True)
    session = Session(InProcessTransport(camera)).open()
    try:
        with mounted_session(session) as mnt:
            assert run(["ls", "-laR", mnt]).returncode == 0
            for dirpath, _, files in os.walk(mnt):
                for name in files:
                    with open(os.path.join(dirpath, name), "rb") as f:
                        f.read()
            sd1 = os.path.join(mnt, "SD1")
            os.mkdir(os.path.join(sd1, "work"))
            with open(os.path.join(sd1, "work", "FIRMWARE.FIR"), "wb") as f:
                f.write(b"\x00" * 4096)
            assert run(["mv", os.path.join(sd1, "work", "FIRMWARE.FIR"),
                        os.path.join(sd1, "work", "x.FIR")]).returncode == 0
            os.unlink(os.path.join(sd1, "work", "x.FIR"))
            os.rmdir(os.path.join(sd1, "work"))
            for name in os.listdir(os.path.join(mnt, ".ptp", "properties.d")):
                try:                                  # every property, settable or not
                    with open(os.path.join(mnt, ".ptp", "properties.d", name), "w") as f:
                        f.write("0\n")
                except OSError:
                    pass
            for target in (os.path.join(mnt, ".ptp", "format"),
                           os.path.join(mnt, ".ptp", "device")):
                with pytest.raises(OSError):
                    with open(target, "w") as f:
                        f.write("format\n")
            run(["rm", "-rf", sd1])
    finally:
        session.close()
        camera.store.close()
    for code in DANGEROUS:
        assert camera.stats.count(code) == 0, hex(code)
    assert camera.firmware is None
    # and no call path exists: the filesystem package never names these operations
    # nor sends arbitrary operation codes (Session.transaction)
    pattern = re.compile(r"FormatStore|format_store|UpdateFirmware|update_firmware|"
                         r"UpdateDeviceFirmware|0x100[fF]|0x911[fF]|0x9106|0x9812|\.transaction\(")
    for source in sorted(Path(ROOT, "ptpfs", "fs").glob("*.py")):
        hits = [line for line in source.read_text().splitlines() if pattern.search(line)]
        assert hits == [], f"{source.name}: {hits}"
