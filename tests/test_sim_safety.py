"""The simulator serving a real folder never destroys it, and behaves more like a camera:
FormatStore refused on sim:DIR, no overwrite on upload, stale upload files cleaned,
explicit all-interfaces listening, InitFail on bad handshakes, ``--name``, uploads option."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from ptp_client import Client
from test_ptpctl import _env
from test_sim_dir import SID, names, upload

from ptpfs import connect
from ptpfs.cli.ptpctl import serve_address
from ptpfs.errors import InvalidValue
from ptpfs.protocol import ptpip as pk
from ptpfs.protocol.codes import OC, RC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.sim import make_camera
from ptpfs.sim.dirstore import TEMP_PREFIX, unique_host_name
from ptpfs.sim.ptpip_server import PtpipServer


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "DCIM" / "100TEST").mkdir(parents=True)
    (root / "DCIM" / "100TEST" / "IMG_0001.JPG").write_bytes(b"\xff\xd8old photo")
    (root / "notes.txt").write_text("keep me")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_format_store_never_erases_a_served_folder(folder: Path) -> None:
    before = _snapshot(folder)
    cam = make_camera(str(folder), "canon-eos", watch_interval=None)
    c = Client(cam)
    try:
        c.open()
        assert c.call(OC.FormatStore, SID).code == RC.AccessDenied
        assert _snapshot(folder) == before
        assert set(names(c)) == {"DCIM", "notes.txt"}
    finally:
        c.close()
        cam.close()


def test_format_store_still_erases_a_generated_card() -> None:
    cam = make_camera(None, "canon-eos", folders=1, files_per_folder=2)
    c = Client(cam)
    try:
        c.open()
        assert c.call(OC.FormatStore, 0x00010001).code == RC.OK
        assert cam.store.children(0x00010001, 0) == []
    finally:
        c.close()
        cam.close()


def test_upload_of_an_existing_name_never_overwrites(folder: Path) -> None:
    cam = make_camera(str(folder), "android-mtp", watch_interval=None)
    c = Client(cam)
    try:
        c.open()
        old = names(c)["notes.txt"]
        code, new = upload(c, "notes.txt", b"new notes")
        assert code == RC.OK and new != old
        # both objects exist, both under the camera-side name, the host file untouched
        assert (folder / "notes.txt").read_text() == "keep me"
        assert (folder / "notes~2.txt").read_bytes() == b"new notes"
        assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, old).data).filename == "notes.txt"
        assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, new).data).filename == "notes.txt"
        assert c.ok(OC.GetObject, old).data == b"keep me"
        assert c.ok(OC.GetObject, new).data == b"new notes"
        # a third one gets ~3
        code, third = upload(c, "notes.txt", b"third")
        assert code == RC.OK and (folder / "notes~3.txt").read_bytes() == b"third"
        # what a client replacing the file does next: delete the old object; the newest
        # file present then takes the plain host name back
        c.ok(OC.DeleteObject, old, 0)
        assert (folder / "notes.txt").read_bytes() in (b"new notes", b"third")
        assert c.ok(OC.GetObject, new).data == b"new notes"
        assert c.ok(OC.GetObject, third).data == b"third"
        c.ok(OC.DeleteObject, new, 0)
        c.ok(OC.DeleteObject, third, 0)
        assert not list(folder.glob("notes*"))
    finally:
        c.close()
        cam.close()


def test_upload_replacing_through_a_client_keeps_the_plain_name(folder: Path) -> None:
    """Upload, then delete the old object (ptpfs's overwrite): the host sees the new bytes
    under the old name and no ~N file, and the rescan keeps the new handle."""
    cam = make_camera(str(folder), "generic", watch_interval=None)
    c = Client(cam)
    try:
        c.open()
        old = names(c)["notes.txt"]
        code, new = upload(c, "notes.txt", b"replaced")
        assert code == RC.OK
        c.ok(OC.DeleteObject, old, 0)
        assert sorted(p.name for p in folder.iterdir()) == ["DCIM", "notes.txt"]
        assert (folder / "notes.txt").read_bytes() == b"replaced"
        assert names(c)["notes.txt"] == new
        assert c.ok(OC.GetObject, new).data == b"replaced"
    finally:
        c.close()
        cam.close()


def test_unique_host_name() -> None:
    taken = {"a.txt", "a~2.txt", "noext", ".hidden"}
    assert unique_host_name("b.txt", taken.__contains__) == "b.txt"
    assert unique_host_name("a.txt", taken.__contains__) == "a~3.txt"
    assert unique_host_name("noext", taken.__contains__) == "noext~2"
    assert unique_host_name(".hidden", taken.__contains__) == ".hidden~2"
    long = "x" * 251 + ".JPG"
    out = unique_host_name(long, {long}.__contains__)
    assert out.endswith("~2.JPG") and len(out.encode()) <= 255


def test_stale_upload_files_are_removed_at_start(folder: Path, tmp_path: Path) -> None:
    (folder / f"{TEMP_PREFIX}7-abcd").write_bytes(b"half an upload")
    (folder / "DCIM" / f"{TEMP_PREFIX}9-ef01").write_bytes(b"another")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not ours")
    (folder / f"{TEMP_PREFIX}link").symlink_to(outside)       # never followed
    cam = make_camera(str(folder), "generic", watch_interval=None)
    try:
        left = sorted(p.name for p in folder.rglob(f"{TEMP_PREFIX}*"))
        assert left == [f"{TEMP_PREFIX}link"]
        assert outside.read_bytes() == b"not ours"
        assert _snapshot(folder)["notes.txt"] == b"keep me"
    finally:
        cam.close()


def test_uploads_option_in_spec(tmp_path: Path) -> None:
    spec = connect.parse_spec(f"sim:{tmp_path}?profile=canon-eos&uploads=1")
    assert (spec.profile, spec.uploads) == ("canon-eos", True)
    assert connect.parse_spec(connect.describe_spec(spec)) == spec
    assert connect.parse_spec("sim?uploads=0").uploads is False
    assert connect.parse_spec("sim").uploads is None
    with pytest.raises(InvalidValue):
        connect.parse_spec("sim?uploads=yes")
    for text, accepted in ((f"sim:{tmp_path}?profile=canon-eos&uploads=1", True),
                           (f"sim:{tmp_path}?profile=canon-eos", False)):
        with connect.open_session(text) as session:
            info = ObjectInfo(SID, 0x3000, compressed_size=2, filename="up.txt")
            result = session.transaction(OC.SendObjectInfo, [SID, 0xFFFFFFFF],
                                         senddata=info.encode(), check=False)
            assert (result.code == RC.OK) == accepted, hex(result.code)
            if accepted:
                session.transaction(OC.SendObject, senddata=b"hi")
    assert (tmp_path / "up.txt").read_bytes() == b"hi"


@pytest.mark.parametrize("text", ["0", "0:15740", ":15740", "0.0:1"])
def test_listen_refuses_ambiguous_all_interfaces(text: str) -> None:
    with pytest.raises(InvalidValue):
        serve_address(text)


def test_listen_all_interfaces_only_explicit_with_warning() -> None:
    assert serve_address("127.0.0.1:0") == ("127.0.0.1", 0, None)
    host, port, warning = serve_address("0.0.0.0:1234")
    assert (host, port) == ("0.0.0.0", 1234) and warning and "every interface" in warning
    assert serve_address("[::]:5")[2]


def _handshake(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(4096)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_bad_init_command_request_gets_init_fail() -> None:
    cam = make_camera(None, "generic", folders=1, files_per_folder=1)
    server = PtpipServer(cam, port=0).start()
    try:
        # truncated: a GUID of 10 bytes and nothing else
        reply = _handshake(server.port, struct.pack("<II", 18, pk.TYPE_INIT_COMMAND_REQUEST)
                           + b"\x01" * 10)
        assert isinstance(pk.decode_packet(reply), pk.InitFail)
        # well formed but protocol version 2.0: refused with "rejected initiator"
        req = pk.encode_packet(pk.InitCommandRequest(b"\x02" * 16, "host", 0x00020000))
        fail = pk.decode_packet(_handshake(server.port, req))
        assert isinstance(fail, pk.InitFail) and fail.reason == 1
        # and a good one still works afterwards
        ok = pk.encode_packet(pk.InitCommandRequest(b"\x03" * 16, "host"))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(ok)
            length = struct.unpack("<I", sock.recv(4, socket.MSG_WAITALL))[0]
            ack = pk.decode_packet(struct.pack("<I", length) + sock.recv(length - 4,
                                                                         socket.MSG_WAITALL))
        assert isinstance(ack, pk.InitCommandAck)
    finally:
        server.stop()
        cam.close()


def test_serve_name_defaults_to_model_and_can_be_set(tmp_path: Path) -> None:
    for extra, expected in (([], "Canon EOS R6"), (["--name", "EOSR6_TEST"], "EOSR6_TEST")):
        proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpctl", "serve", "--listen",
                                 "127.0.0.1:0", "--profile", "canon-eos", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())
        try:
            line = proc.stdout.readline()
            assert line.startswith("listening on "), line + proc.stderr.read()
            port = int(line.split()[2].rsplit(":", 1)[1])
            req = pk.encode_packet(pk.InitCommandRequest(b"\x04" * 16, "host"))
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(req)
                length = struct.unpack("<I", sock.recv(4, socket.MSG_WAITALL))[0]
                ack = pk.decode_packet(struct.pack("<I", length)
                                       + sock.recv(length - 4, socket.MSG_WAITALL))
            assert isinstance(ack, pk.InitCommandAck) and ack.name == expected
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()


@pytest.mark.parametrize("value, accepted", [("canon-eos?uploads=1", True), ("canon-eos", False)])
def test_usb_sim_env_takes_the_uploads_option(monkeypatch: pytest.MonkeyPatch, value: str,
                                              accepted: bool) -> None:
    monkeypatch.setenv(connect.USB_SIM_ENV, value)
    with connect.open_session("usb") as session:
        info = ObjectInfo(0x00010001, 0x3000, compressed_size=2, filename="env.txt")
        result = session.transaction(OC.SendObjectInfo, [0x00010001, 0xFFFFFFFF],
                                     senddata=info.encode(), check=False)
        assert (result.code == RC.OK) == accepted, hex(result.code)
