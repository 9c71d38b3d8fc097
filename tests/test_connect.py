"""Device specs and opening sessions over every transport (ptpfs.connect)."""

from __future__ import annotations

import socket
import threading

import pytest

from ptpfs import connect
from ptpfs.connect import DeviceSpec, describe_spec, list_devices, open_session, parse_spec
from ptpfs.errors import ConnectionLost, DeviceNotFound, InvalidValue, TransportTimeout
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.sim.usb_backend import SimUsbBackend


@pytest.mark.parametrize("text, expected", [
    ("usb", DeviceSpec("usb", usb="usb")),
    ("usb:001,004", DeviceSpec("usb", usb="usb:001,004")),
    ("usb:04a9:32b4", DeviceSpec("usb", usb="usb:04a9:32b4")),
    ("usb:SN12345", DeviceSpec("usb", usb="usb:SN12345")),
    ("ptpip:192.168.1.20", DeviceSpec("ptpip", host="192.168.1.20", port=15740)),
    ("ptpip:camera.local:1234", DeviceSpec("ptpip", host="camera.local", port=1234)),
    ("ptpip:[::1]:99", DeviceSpec("ptpip", host="::1", port=99)),
    ("sim", DeviceSpec("sim")),
    ("sim:/data/card", DeviceSpec("sim", root="/data/card")),
    ("sim?profile=canon-eos", DeviceSpec("sim", profile="canon-eos")),
    ("sim:/data/card?profile=android-mtp", DeviceSpec("sim", root="/data/card",
                                                      profile="android-mtp")),
])
def test_parse_spec(text: str, expected: DeviceSpec) -> None:
    spec = parse_spec(text)
    assert spec == expected
    assert parse_spec(describe_spec(spec)) == spec


@pytest.mark.parametrize("text", ["", "  ", "camera", "ptpip:", "ptpip:host:", "ptpip:host:70000",
                                  "ptpip:host:port", "usb:1,2,3", "usb:has space", "simx",
                                  "sim?colour=red", "sim?profile=", "sim:/x?profile"])
def test_bad_specs_raise_invalid_value(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_spec(text)


def test_describe_spec_is_canonical() -> None:
    assert describe_spec("ptpip:10.0.0.2") == "ptpip:10.0.0.2:15740"
    assert describe_spec("sim:/a?profile=canon-eos") == "sim:/a?profile=canon-eos"
    assert describe_spec("usb:04A9:32B4".lower()) == "usb:04a9:32b4"


def _sample_root(tmp_path):
    root = tmp_path / "card"
    (root / "DCIM" / "100TEST").mkdir(parents=True)
    (root / "DCIM" / "100TEST" / "IMG_0001.JPG").write_bytes(bytes(range(256)) * 100)
    (root / "notes.txt").write_bytes(b"hello\n")
    return root


def test_open_sim_session_reads_directory(tmp_path) -> None:
    root = _sample_root(tmp_path)
    with open_session(f"sim:{root}") as session:
        assert session.device_info.model
        [sid] = session.get_storage_ids()
        names = {session.get_object_info(h).filename
                 for h in session.get_object_handles(sid, 0, 0)}
        assert names == {"DCIM", "100TEST", "IMG_0001.JPG", "notes.txt"}


def test_sim_profile_from_spec_wins_over_argument() -> None:
    with open_session("sim?profile=canon-eos", profile="generic") as session:
        assert session.device_info.manufacturer.startswith("Canon")
    with open_session("sim", profile="canon-eos") as session:
        assert session.device_info.manufacturer.startswith("Canon")
    with open_session("sim") as session:
        assert not session.device_info.manufacturer.startswith("Canon")


def test_unknown_profile_and_missing_root(tmp_path) -> None:
    with pytest.raises(InvalidValue, match="profile"):
        open_session("sim?profile=nikon-z9")
    with pytest.raises(DeviceNotFound):
        open_session(f"sim:{tmp_path / 'nope'}")


def test_open_usb_session_with_sim_backend(tmp_path) -> None:
    root = _sample_root(tmp_path)
    camera = make_camera(str(root), "generic", watch_interval=None)
    backend = SimUsbBackend([camera])
    try:
        with open_session("usb", usb_backend=backend) as session:
            assert session.device_info.serial_number == camera.profile.serial_number
            assert session.transport.description == "usb:001,004"
        with open_session("usb:001,004", usb_backend=backend) as session:
            assert session.get_storage_ids()
        with pytest.raises(DeviceNotFound):
            open_session("usb:002,009", usb_backend=backend)
        [listing, hint] = list_devices(usb_backend=backend)
        assert listing.spec == "usb:001,004"
        assert f"{listing.vendor_id:04x}:{listing.product_id:04x}" in listing.description
        assert hint.spec == "sim"
    finally:
        backend.close()
        camera.close()


def test_usb_sim_env_var_routes_usb_specs(tmp_path, monkeypatch) -> None:
    root = _sample_root(tmp_path)
    monkeypatch.setenv(connect.USB_SIM_ENV, "canon-eos")
    monkeypatch.setenv(connect.USB_SIM_ROOT_ENV, str(root))
    assert connect.default_spec() == "usb"
    with open_session("usb") as session:
        assert session.device_info.manufacturer.startswith("Canon")
        assert session.transport.description.startswith("usb:")
    assert [d.spec for d in list_devices()][0] == "usb:001,004"


def test_no_usb_device_is_device_not_found(monkeypatch) -> None:
    monkeypatch.delenv(connect.USB_SIM_ENV, raising=False)
    with pytest.raises(DeviceNotFound):
        open_session("usb:ffff:fffe")


def test_ptpip_session(tmp_path) -> None:
    root = _sample_root(tmp_path)
    camera = make_camera(str(root), "generic", watch_interval=None)
    server = PtpipServer(camera).start()
    try:
        with open_session(f"ptpip:127.0.0.1:{server.port}", timeout=5) as session:
            assert session.device_info.model == camera.profile.model
    finally:
        server.stop()
        camera.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ptpip_refused_is_device_not_found() -> None:
    with pytest.raises(DeviceNotFound):
        open_session(f"ptpip:127.0.0.1:{_free_port()}", timeout=2)


class _Listener:
    """A TCP listener that accepts connections and either closes them or stays mute."""

    def __init__(self, mute: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.mute = mute
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mute:
                self.accepted.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        for conn in self.accepted:
            conn.close()
        self.thread.join(2)


def test_ptpip_peer_that_hangs_up_is_connection_lost() -> None:
    peer = _Listener(mute=False)
    try:
        with pytest.raises(ConnectionLost):
            open_session(f"ptpip:127.0.0.1:{peer.port}", timeout=2)
    finally:
        peer.close()


def test_ptpip_mute_peer_times_out() -> None:
    peer = _Listener(mute=True)
    try:
        with pytest.raises(TransportTimeout):
            open_session(f"ptpip:127.0.0.1:{peer.port}", timeout=0.5)
    finally:
        peer.close()


def test_default_spec_without_devices(monkeypatch) -> None:
    monkeypatch.delenv(connect.USB_SIM_ENV, raising=False)
    with pytest.raises(DeviceNotFound, match="--device sim"):
        connect.default_spec(usb_backend=SimUsbBackend([]))
