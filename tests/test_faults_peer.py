"""``ptpfs --device ptpip:…`` against raw hostile peers: one that never answers
the handshake, one that announces a 4 GiB data phase and sends 10 bytes, one
that hangs up mid-handshake.  ptpfs must exit with a clear message within the
timeout, never hang or mount."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from fuse_helpers import ROOT, is_mounted, unmount

from ptpfs.protocol import ptpip as pk

TIMEOUT = 1.0


class RawPeer:
    """A TCP listener on 127.0.0.1 that plays one hostile script per connection."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._play, args=(conn,), daemon=True).start()

    def _read_packet(self, conn: socket.socket) -> bytes:
        head = b""
        while len(head) < 8:
            chunk = conn.recv(8 - len(head))
            if not chunk:
                raise OSError("closed")
            head += chunk
        length, _ = struct.unpack("<II", head)
        body = b""
        while len(body) < length - 8:
            chunk = conn.recv(length - 8 - len(body))
            if not chunk:
                raise OSError("closed")
            body += chunk
        return head + body

    def _play(self, conn: socket.socket) -> None:
        try:
            first = pk.decode_packet(self._read_packet(conn))
            if self.mode == "silent":
                self.stop.wait()                       # accepts, reads, says nothing
                return
            if self.mode == "hangup":
                conn.close()
                return
            if isinstance(first, pk.InitCommandRequest):
                conn.sendall(pk.encode_packet(pk.InitCommandAck(1, b"\x11" * 16, "evil", 0x10000)))
                request = pk.decode_packet(self._read_packet(conn))   # GetDeviceInfo
                tid = request.transaction_id
                conn.sendall(pk.encode_packet(pk.StartData(tid, 4 << 30)))
                conn.sendall(pk.encode_packet_header(pk.TYPE_DATA, 8 + 4 + 10)
                             + struct.pack("<I", tid) + b"0123456789")
                self.stop.wait()                       # and then nothing
            elif isinstance(first, pk.InitEventRequest):
                conn.sendall(pk.encode_packet(pk.InitEventAck()))
                self.stop.wait()
        except (OSError, pk.ProtocolError, ValueError):
            pass

    def close(self) -> None:
        self.stop.set()
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def peer(request) -> Iterator[RawPeer]:
    p = RawPeer(request.param)
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("peer", ["silent", "bigdata", "hangup"], indirect=True)
def test_ptpfs_exits_clearly_against_hostile_peer(peer: RawPeer, tmp_path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ptpfs.cli.ptpfs_main", "--device",
             f"ptpip:127.0.0.1:{peer.port}", "-o", f"timeout={TIMEOUT}", str(mnt)],
            env=env, capture_output=True, text=True, timeout=20)
    finally:
        if is_mounted(str(mnt)):
            unmount(str(mnt))
    took = time.monotonic() - start
    assert proc.returncode == 7, proc.stderr     # link lost or timed out while opening
    assert not is_mounted(str(mnt))
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f"ptpfs: cannot open device ptpip:127.0.0.1:{peer.port}:"), message
    expected = {"silent": "InitCommandAck", "bigdata": "in time", "hangup": "closed"}[peer.mode]
    assert expected in message, message
    assert "Traceback" not in proc.stderr
    assert took < TIMEOUT + 15.0, took     # a hang check (process start-up included), not a figure
