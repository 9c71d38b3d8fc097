"""ptpfs.sim.gadget without a kernel: descriptor blocks, identities, and the pumps on socket pairs.

FunctionFS endpoint files are stood in for by ``AF_UNIX``/``SOCK_DGRAM`` socket pairs: one
datagram is one USB transfer (a zero-length datagram is a zero-length packet, or a stall where
the gadget writes nothing to an OUT endpoint), so the transfer boundaries the host would see
are checked exactly.  The real kernel path is tests/test_gadget_interop.py (QEMU).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.protocol import container
from ptpfs.protocol.codes import OC
from ptpfs.sim import make_camera
from ptpfs.sim.gadget import GadgetServer, configfs_identity, descriptors, main, strings

RC_OK = 0x2001


def test_descriptor_block_layout() -> None:
    block = descriptors((6, 1, 1))
    magic, length, flags, fs_count, hs_count = struct.unpack_from("<5I", block)
    assert (magic, length, flags, fs_count, hs_count) == (3, len(block), 3, 4, 4)
    pos, seen = 20, []
    while pos < len(block):
        size, kind = block[pos], block[pos + 1]
        seen.append((kind, block[pos:pos + size]))
        pos += size
    assert pos == len(block) and [k for k, _ in seen] == [4, 5, 5, 5] * 2
    interface = seen[0][1]
    assert tuple(interface[5:8]) == (6, 1, 1) and interface[4] == 3 and interface[8] == 1
    eps = [struct.unpack("<BBBBHB", d) for k, d in seen if k == 5]
    assert [(e[2], e[3]) for e in eps[:3]] == [(0x81, 2), (0x02, 2), (0x83, 3)]
    assert [e[4] for e in eps] == [64, 64, 64, 512, 512, 64]   # full speed, then high speed


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FFF), max_size=40))
def test_string_block_round_trip(label: str) -> None:
    block = strings(label)
    magic, length, count, langs, lang = struct.unpack_from("<4IH", block)
    assert (magic, length, count, langs, lang) == (2, len(block), 1, 1, 0x0409)
    assert block[18:] == label.encode() + b"\0"


def test_identities_per_profile(capsys: pytest.CaptureFixture[str]) -> None:
    canon = configfs_identity("canon-eos")
    assert (canon["idVendor"], canon["idProduct"]) == ("0x04a9", "0x32f5")
    assert canon["product"] == "Canon EOS R6"
    assert configfs_identity("android-mtp")["idVendor"] == "0x18d1"
    assert configfs_identity("generic")["idVendor"] == "0x1d6b"
    assert main(["--identity", "canon-eos"]) == 0
    assert "idVendor=0x04a9" in capsys.readouterr().out.splitlines()
    assert main(["--identity", "no-such"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such" in err


def test_start_on_a_folder_that_is_no_functionfs(tmp_path: Path) -> None:
    server = GadgetServer(make_camera(str(tmp_path)), tmp_path)
    with pytest.raises(OSError, match="FunctionFS"):
        server.start()


class _Host:
    """The host side of the four socket pairs."""

    def __init__(self, tmp_path: Path, size: int) -> None:
        (tmp_path / "DCIM").mkdir()
        self.payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        (tmp_path / "DCIM" / "A.JPG").write_bytes(self.payload)
        self.camera = make_camera(str(tmp_path), "generic", watch_interval=None)
        self.server = GadgetServer(self.camera, tmp_path)
        pairs = {name: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
                 for name in ("ep0", "ep1", "ep2", "ep3")}
        for host, _ in pairs.values():
            host.settimeout(10)
        self.ep = {name: host for name, (host, _) in pairs.items()}
        # the server owns (and closes) its ends
        eps = {name: g.detach() for name, (_, g) in pairs.items() if name != "ep0"}
        self.server.serve(pairs["ep0"][1].detach(), eps)
        self.event(2)                                # ENABLE
        assert self.server.enabled.wait(10)
        self.tid = -1                                # OpenSession is transaction 0

    def event(self, kind: int, setup: bytes = bytes(8)) -> None:
        self.ep["ep0"].send(setup + bytes([kind, 0, 0, 0]))

    def transfers(self, until_response: bool = True) -> list[bytes]:
        """IN transfers up to and including the one that ends a response container."""
        out = []
        while True:
            out.append(self.ep["ep1"].recv(1 << 20))
            if not until_response:
                return out
            data = b"".join(out)
            pos = 0
            while pos + 12 <= len(data):
                header = container.parse_header(data[pos:pos + 12])
                if header.type == container.TYPE_RESPONSE and pos + header.length == len(data):
                    return out
                pos += header.length

    def command(self, code: int, *params: int) -> list[bytes]:
        self.tid += 1
        self.ep["ep2"].send(container.encode_command(code, self.tid, params))
        return self.transfers()

    def close(self) -> None:
        self.server.stop()
        for sock in self.ep.values():
            sock.close()


@pytest.fixture
def host(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[_Host]:
    h = _Host(tmp_path, getattr(request, "param", 2048 - 12))
    yield h
    h.close()


def _response(transfers: list[bytes]) -> tuple[int, tuple[int, ...]]:
    resp = container.decode_response(transfers[-1])
    return resp.code, tuple(resp.params)


@pytest.mark.parametrize("host", [2048 - 12, 2048 - 11, 100_000], indirect=True)
def test_object_transfers_end_like_usb(host: _Host) -> None:
    """A container ending on a 512-byte boundary is followed by a zero-length transfer;
    no IN transfer spans two containers; the bytes are the file's."""
    assert _response(host.command(OC.OpenSession, 1))[0] == RC_OK
    handles_transfers = host.command(OC.GetObjectHandles, 0xFFFFFFFF, 0, 0)
    payload = b"".join(handles_transfers[:-1])[12:]
    handles = struct.unpack_from(f"<{payload[0]}I", payload, 4)
    sizes = {}
    for h in handles:
        info = host.command(OC.GetObjectInfo, h)
        sizes[h] = struct.unpack_from("<I", b"".join(info[:-1]), 12 + 8)[0]
    handle = next(h for h, size in sizes.items() if size == len(host.payload))
    transfers = host.command(OC.GetObject, handle)
    data_len = 12 + len(host.payload)
    joined = b"".join(transfers[:-1])
    assert joined[12:] == host.payload and _response(transfers)[0] == RC_OK
    if data_len % 512 == 0:
        assert transfers[-2] == b"", [len(t) for t in transfers]
    else:
        assert all(transfers[:-1]), [len(t) for t in transfers]
    assert sum(len(t) for t in transfers[:-1]) == data_len   # the response is its own transfer


def test_class_requests_on_ep0(host: _Host) -> None:
    ep0 = host.ep["ep0"]
    host.event(4, struct.pack("<BBHHH", 0xA1, 0x67, 0, 0, 64))        # Get Device Status
    resets = host.server.device.resets
    assert ep0.recv(64) == struct.pack("<HH", 4, RC_OK)
    host.event(4, struct.pack("<BBHHH", 0x21, 0x64, 0, 0, 6))         # Cancel + its data
    ep0.send(struct.pack("<HI", 0x4001, 1))
    host.event(4, struct.pack("<BBHHH", 0xA1, 0x67, 0, 0, 64))
    assert ep0.recv(64) == struct.pack("<HH", 4, 0x2019)              # busy once after it
    assert host.server.device.cancels == 1
    host.event(4, struct.pack("<BBHHH", 0x21, 0x66, 0, 0, 0))         # Device Reset
    ep0.send(b"")                                                     # its status stage
    host.event(4, struct.pack("<BBHHH", 0x21, 0x65, 0, 0, 4))         # unknown: stalled
    assert ep0.recv(64) == b""
    host.event(4, struct.pack("<BBHHH", 0xA1, 0x67, 0, 0, 64))
    assert ep0.recv(64) == struct.pack("<HH", 4, RC_OK)
    assert host.server.device.resets == resets + 1 and host.server.stalls == 1


def test_malformed_container_stalls_bulk_out_and_the_next_works(host: _Host) -> None:
    host.ep["ep2"].send(struct.pack("<IHHI", 5, 1, 0x1002, 0))   # length below the header
    assert host.ep["ep2"].recv(64) == b""               # the gadget halted ep2
    assert host.server.stalls == 1
    assert _response(host.command(OC.OpenSession, 1))[0] == RC_OK


def test_events_reach_the_interrupt_endpoint(host: _Host) -> None:
    assert _response(host.command(OC.OpenSession, 1))[0] == RC_OK
    (Path(host.camera.store.root) / "DCIM" / "NEW.JPG").write_bytes(b"new")
    host.camera.store.rescan()
    raw = host.ep["ep3"].recv(64)
    event = container.decode_event(raw)
    assert event.code == 0x4002            # ObjectAdded


def test_ptpctl_serve_usb_gadget_on_no_functionfs(tmp_path: Path) -> None:
    """``ptpctl serve --usb-gadget DIR`` on a folder that is no FunctionFS mount: one line."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ptpfs.cli.ptpctl", "serve", "--usb-gadget",
                           str(tmp_path)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"ptpctl: {tmp_path}/ep0: cannot open (No such file or directory); "
                     "is a FunctionFS instance mounted there?"], proc.stderr
