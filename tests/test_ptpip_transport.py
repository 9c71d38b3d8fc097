"""The PTP/IP transport against PtpipServer (a simulated camera) and against hostile raw peers."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import threading
import time
import tracemalloc

import pytest
from ptp_client import RawClient, event_while_transacting

from ptpfs.errors import (
    ConnectionLost,
    DeviceClaimed,
    DeviceNotFound,
    DevicePermissionError,
    InvalidValue,
    ProtocolError,
    TransportError,
    TransportTimeout,
)
from ptpfs.protocol import ptpip as pk
from ptpfs.protocol.codes import EC, OC, OFC, RC
from ptpfs.protocol.datasets import DeviceInfo, ObjectInfo, decode_u32_array
from ptpfs.protocol.messages import Request
from ptpfs.sim import SD1, make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.sim.store import StoreError
from ptpfs.transport.ptpip import CHUNK_SIZE, PtpipTransport, load_guid

FOLDER = "DCIM/100CANON"
GUID = bytes(range(16))


CAMERA = {"profile": "generic", "folders": 1, "files_per_folder": 2, "jpeg_size": 300_000,
          "raw_size": 400_000}


@pytest.fixture(autouse=True)
def _config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def transport(server):
    t = PtpipTransport("127.0.0.1", server.port, guid=GUID, timeout=2.0)
    yield t
    t.close()


# ------------------------------------------------------------------ connection set-up

def test_guid_is_created_once_and_persisted(tmp_path, server):
    first = load_guid()
    assert len(first) == 16
    stored = (tmp_path / "config" / "ptpfs" / "guid").read_text().strip()
    assert bytes.fromhex(stored) == first
    assert load_guid() == first
    t = PtpipTransport("127.0.0.1", server.port, name="tester")
    try:
        assert t.guid == first
        assert t.camera_name == server.name
        assert t.description == f"ptpip:127.0.0.1:{server.port}"
    finally:
        t.close()


def test_connection_refused_is_device_not_found():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(DeviceNotFound):
        PtpipTransport("127.0.0.1", port, guid=GUID, connect_timeout=1.0)


@pytest.mark.parametrize("reason,error", [(1, DevicePermissionError), (2, DeviceClaimed),
                                          (3, TransportError)])
def test_init_fail_from_server(server, reason, error):
    server.refuse = reason
    with pytest.raises(error, match="InitFail"):
        PtpipTransport("127.0.0.1", server.port, guid=GUID, timeout=1.0)


# ------------------------------------------------------------------ transactions

def test_device_info_and_session(camera, transport):
    c = RawClient(transport)
    info = DeviceInfo.decode(c.get(OC.GetDeviceInfo))
    assert info.model == camera.profile.model
    c.open()
    assert decode_u32_array(c.get(OC.GetStorageIDs)) == (SD1, 0x00020001)


@pytest.mark.parametrize("size", [0, 1, 65536, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5])
def test_round_trip_sizes(camera, client, size):
    payload = hashlib.shake_256(str(size).encode()).digest(size)
    handle = client.upload(camera, f"F{size}.BIN", payload)
    assert camera.store.get(handle).read(0, size + 1) == payload
    assert client.get(OC.GetObject, handle) == payload
    assert client.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK


def test_large_object_streams_with_bounded_memory():
    size = 48 * 1024 * 1024 + 77
    cam = make_camera(None, "generic", folders=1, files_per_folder=1, jpeg_size=1000,
                      big_file=size)
    srv = PtpipServer(cam).start()
    try:
        t = PtpipTransport("127.0.0.1", srv.port, guid=GUID, timeout=5.0)
        try:
            c = RawClient(t)
            c.open()
            obj = cam.store.find(f"{FOLDER}/MVI_9999.MP4")
            digest, count = hashlib.sha256(), [0]

            class Sink:
                def write(self, data):
                    digest.update(data)
                    count[0] += len(data)

            tracemalloc.start()
            try:
                r = c.call(OC.GetObject, obj.handle, data_in=Sink())
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert r.code == RC.OK
            assert count[0] == size
            assert digest.hexdigest() == obj.sha256()
            # the client and the in-process server together stay far below the object size
            assert peak < 16 * 1024 * 1024, peak
        finally:
            t.close()
    finally:
        srv.stop()
        cam.close()


def test_event_arrives_on_event_connection(camera, transport, client):
    event, handle = event_while_transacting(camera, transport, client)
    assert event is not None
    assert (event.code, event.params[0]) == (EC.ObjectAdded, handle)


def test_clients_one_after_another_and_at_once(camera, server):
    for _ in range(2):  # each connection pair gets its own session, closed when it goes
        t = PtpipTransport("127.0.0.1", server.port, guid=GUID, timeout=2.0)
        try:
            c = RawClient(t)
            c.open()
            assert c.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK
        finally:
            t.close()
    a = PtpipTransport("127.0.0.1", server.port, guid=GUID, timeout=2.0)
    b = PtpipTransport("127.0.0.1", server.port, guid=GUID, timeout=2.0)
    try:
        assert a.connection_number != b.connection_number
        ca, cb = RawClient(a), RawClient(b)
        ca.open()
        cb.open()
        handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
        results = {}

        def fetch(name, c):
            results[name] = c.get(OC.GetObject, handle)

        threads = [threading.Thread(target=fetch, args=(n, c)) for n, c in (("a", ca), ("b", cb))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
        obj = camera.store.get(handle)
        assert results["a"] == results["b"] == obj.read(0, obj.size)
    finally:
        a.close()
        b.close()
    assert server.connections == 4


# ------------------------------------------------------------------ faults

def test_stall_times_out_then_recover(camera, client):
    camera.faults.stall(None)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        client.call(OC.GetStorageIDs, data_in=io.BytesIO(), timeout=0.3)
    assert time.monotonic() - started < 2.0
    camera.faults.clear()
    client.t.recover()
    assert decode_u32_array(client.get(OC.GetStorageIDs)) == (SD1, 0x00020001)


def test_drop_is_connection_lost(camera, client):
    handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
    camera.faults.drop_after(100_000)
    with pytest.raises(ConnectionLost):
        client.call(OC.GetObject, handle, data_in=io.BytesIO())
    with pytest.raises((ConnectionLost, TransportError)):
        client.call(OC.GetStorageIDs, data_in=io.BytesIO())


def test_short_data_source_cancels_and_raises(camera, client):
    parent = camera.store.find(FOLDER).handle
    info = ObjectInfo(storage_id=SD1, object_format=OFC.Undefined, compressed_size=100,
                      filename="SHORT.BIN")
    assert client.call(OC.SendObjectInfo, SD1, parent, data=info.encode()).code == RC.OK
    with pytest.raises(InvalidValue):
        client.t.transact(Request(OC.SendObject, client.tid, ()),
                          data_out=io.BytesIO(b"only ten!!"), data_out_length=100)
    client.tid += 1
    # no explicit recover(): the transport cancelled the data phase itself
    r = client.call(OC.GetStorageIDs, data_in=io.BytesIO())
    assert r.transaction_id == client.tid - 1
    with pytest.raises(StoreError):
        camera.store.find(f"{FOLDER}/SHORT.BIN")


def test_close_is_idempotent_and_final(transport):
    transport.close()
    transport.close()
    with pytest.raises(ConnectionLost):
        transport.transact(Request(OC.GetDeviceInfo, 0, ()))


# ------------------------------------------------------------------ hostile peers

class HostilePeer:
    """A raw TCP peer: answers the init handshake properly (unless told not to), then
    lets *on_request(sock, OperationRequest)* misbehave."""

    def __init__(self, *, on_request=None, on_init=None) -> None:
        self.on_request = on_request
        self.on_init = on_init
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, sock):
        head = self._exact(sock, 8)
        length, ptype = struct.unpack("<II", head)
        return pk.decode_packet(head + self._exact(sock, length - 8))

    @staticmethod
    def _exact(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _run(self):
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.socks.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        try:
            first = self._read(sock)
            if isinstance(first, pk.InitCommandRequest):
                if self.on_init is not None:
                    self.on_init(sock)
                    return
                sock.sendall(pk.encode_packet(pk.InitCommandAck(1, bytes(16), "hostile")))
                while not self.stop.is_set():
                    packet = self._read(sock)
                    if isinstance(packet, pk.OperationRequest):
                        self.on_request(sock, packet)
            elif isinstance(first, pk.InitEventRequest):
                sock.sendall(pk.encode_packet(pk.InitEventAck()))
                self.stop.wait()
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(2)


def _with_peer(peer, action):
    try:
        return action(peer)
    finally:
        peer.close()


def test_peer_that_never_answers_init_times_out():
    peer = HostilePeer(on_init=lambda sock: peer.stop.wait())
    started = time.monotonic()
    _with_peer(peer, lambda p: pytest.raises(
        TransportTimeout, PtpipTransport, "127.0.0.1", p.port, guid=GUID, timeout=0.4))
    assert time.monotonic() - started < 3


def test_raw_init_fail_is_a_clear_error():
    def fail(sock):
        sock.sendall(pk.encode_packet(pk.InitFail(2)))
    peer = HostilePeer(on_init=fail)
    _with_peer(peer, lambda p: pytest.raises(
        DeviceClaimed, PtpipTransport, "127.0.0.1", p.port, guid=GUID, timeout=1.0))


def _transact_against(on_request, timeout=0.5):
    peer = HostilePeer(on_request=on_request)
    try:
        t = PtpipTransport("127.0.0.1", peer.port, guid=GUID, timeout=timeout)
        try:
            return t.transact(Request(OC.GetObject, 1, (5,)), data_in=io.BytesIO())
        finally:
            t.close()
    finally:
        peer.close()


def test_announces_4gib_sends_10_bytes_then_silence_times_out():
    def liar(sock, req):
        sock.sendall(pk.encode_packet(pk.StartData(req.transaction_id, 4 << 30)))
        sock.sendall(pk.encode_packet(pk.DataPacket(req.transaction_id, b"0123456789")))
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        _transact_against(liar)
    assert time.monotonic() - started < 3


def test_more_data_than_announced_is_protocol_error():
    def overflow(sock, req):
        sock.sendall(pk.encode_packet(pk.StartData(req.transaction_id, 5)))
        sock.sendall(pk.encode_packet(pk.EndData(req.transaction_id, b"0123456789")))
        sock.sendall(pk.encode_packet(pk.OperationResponse(RC.OK, req.transaction_id)))
    with pytest.raises(ProtocolError, match="more than"):
        _transact_against(overflow)


def test_less_data_than_announced_is_protocol_error():
    def short(sock, req):
        sock.sendall(pk.encode_packet(pk.StartData(req.transaction_id, 50)))
        sock.sendall(pk.encode_packet(pk.EndData(req.transaction_id, b"0123456789")))
        sock.sendall(pk.encode_packet(pk.OperationResponse(RC.OK, req.transaction_id)))
    with pytest.raises(ProtocolError, match="10 of the 50"):
        _transact_against(short)


def test_wrong_transaction_id_is_protocol_error():
    def wrong(sock, req):
        sock.sendall(pk.encode_packet(pk.OperationResponse(RC.OK, req.transaction_id + 1)))
    with pytest.raises(ProtocolError, match="transaction ID"):
        _transact_against(wrong)


def test_garbage_header_is_protocol_error():
    def garbage(sock, req):
        sock.sendall(struct.pack("<II", 3, 99))
    with pytest.raises(ProtocolError):
        _transact_against(garbage)


def test_huge_control_packet_is_refused_without_allocating():
    def huge(sock, req):
        sock.sendall(struct.pack("<II", 0x7FFFFFFF, pk.TYPE_OPERATION_RESPONSE))
    with pytest.raises(ProtocolError, match="control packet"):
        _transact_against(huge)


def test_peer_closing_mid_transaction_is_connection_lost():
    def hang_up(sock, req):
        sock.sendall(pk.encode_packet(pk.StartData(req.transaction_id, 100)))
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    with pytest.raises(ConnectionLost):
        _transact_against(hang_up)
