"""InProcessTransport against the simulated camera: streaming, events, link model, faults.

Also home of :class:`Client`, the small raw-transaction helper the ``test_sim_*`` modules use.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest
from ptp_client import Client
from virtual_clock import virtual_link_time

from ptpfs.errors import ConnectionLost, TransportTimeout
from ptpfs.protocol.codes import EC, OC, RC
from ptpfs.protocol.datasets import DeviceInfo, decode_u32_array
from ptpfs.protocol.messages import Request
from ptpfs.sim import make_camera
from ptpfs.sim.camera import SimCamera
from ptpfs.sim.store import StoreError
from ptpfs.transport.inprocess import InProcessTransport

CAMERA = {"profile": "generic", "files_per_folder": 4, "jpeg_size": 300_000, "raw_size": 900_000}


def test_get_object_streams_in_chunks_and_matches(camera: SimCamera) -> None:
    c = Client(camera, chunk_size=64 * 1024)
    try:
        c.open()
        obj = camera.store.find("DCIM/100CANON/IMG_0001.CR3")
        before = camera.stats.bytes_out
        r = c.ok(OC.GetObject, obj.handle)
        assert hashlib.sha256(r.data).hexdigest() == obj.sha256()
        assert camera.stats.bytes_out - before == obj.size
    finally:
        c.close()


def test_two_transports_have_separate_sessions(camera: SimCamera) -> None:
    a, b = Client(camera), Client(camera)
    try:
        a.open()
        b.open()          # no SessionAlreadyOpen: separate connections
        a.ok(OC.GetStorageIDs)
        a.ok(OC.GetStorageIDs)
        b.ok(OC.GetStorageIDs)
    finally:
        a.close()
        b.close()


def test_events_arrive_through_read_event(camera: SimCamera, client: Client) -> None:
    handle = camera.take_photo(size=1000)
    seen = []
    while True:
        ev = client.transport.read_event(0.5)
        if ev is None:
            break
        seen.append((ev.code, ev.params))
    assert (EC.ObjectAdded, (handle,)) in seen
    assert client.transport.read_event(0.05) is None


def test_read_event_after_close_raises(camera: SimCamera) -> None:
    c = Client(camera)
    c.close()
    with pytest.raises(ConnectionLost):
        c.transport.read_event(0.01)
    with pytest.raises(ConnectionLost):
        c.transport.transact(Request(OC.GetDeviceInfo, 0, ()))


# Modelled time (tests/virtual_clock.py), not wall time: these hold on a loaded machine.
def test_link_pacing_accuracy(camera: SimCamera, client: Client, monkeypatch) -> None:
    obj = camera.store.add_file("big.bin", bytes(2_000_000))
    with virtual_link_time(monkeypatch) as clock:
        camera.link.bandwidth = 20_000_000
        start = clock.monotonic()
        r = client.ok(OC.GetObject, obj.handle)
        assert len(r.data) == 2_000_000
        # 2 MB at 20 MB/s = 0.1 s (+ the response's bytes), never less
        assert clock.monotonic() - start == pytest.approx(0.1, abs=0.0002)
        camera.link.bandwidth = None
        sleeps = clock.sleeps
        client.ok(OC.GetObject, obj.handle)
        assert clock.sleeps == sleeps            # an unlimited link never waits


def test_latency_per_transaction(camera: SimCamera, client: Client, monkeypatch) -> None:
    with virtual_link_time(monkeypatch) as clock:
        camera.link.latency = 0.02
        start = clock.monotonic()
        for _ in range(5):
            client.ok(OC.GetStorageIDs)
        assert clock.monotonic() - start == pytest.approx(0.1)


def test_busy_fault(camera: SimCamera, client: Client) -> None:
    camera.faults.busy(2)
    assert client.call(OC.GetStorageIDs).code == RC.DeviceBusy
    assert client.call(OC.GetStorageIDs).code == RC.DeviceBusy
    assert decode_u32_array(client.ok(OC.GetStorageIDs).data)


def test_busy_retry_may_reuse_transaction_id(camera: SimCamera, client: Client) -> None:
    camera.faults.busy(1)
    assert client.call(OC.GetStorageIDs).code == RC.DeviceBusy
    client.tid -= 1  # resend the same transaction
    client.ok(OC.GetStorageIDs)


def test_drop_fault_mid_transfer(camera: SimCamera, client: Client) -> None:
    obj = camera.store.find("DCIM/100CANON/IMG_0001.CR3")
    camera.faults.drop_after(100_000)
    with pytest.raises(ConnectionLost):
        client.call(OC.GetObject, obj.handle)
    with pytest.raises(ConnectionLost):
        client.call(OC.GetStorageIDs)
    assert camera.faults.drops == 1
    fresh = Client(camera)          # the fault was one-shot: reconnecting works
    try:
        fresh.open()
        assert len(fresh.ok(OC.GetObject, obj.handle).data) == obj.size
    finally:
        fresh.close()


def test_drop_fault_during_upload_leaves_nothing(camera: SimCamera, client: Client) -> None:
    from ptpfs.protocol.datasets import ObjectInfo
    info = ObjectInfo(0, 0x3000, compressed_size=500_000, filename="up.bin")
    r = client.ok(OC.SendObjectInfo, 0x00010001, 0xFFFFFFFF, data=info.encode())
    camera.faults.drop_after(1000)
    with pytest.raises(ConnectionLost):
        client.call(OC.SendObject, data=bytes(500_000))
    with pytest.raises(StoreError):
        camera.store.get(r.params[2])
    assert "up.bin" not in {o.name for o in camera.store.children(0x00010001, 0)}


def test_stall_for_a_while_then_answers(camera: SimCamera, client: Client) -> None:
    camera.faults.stall(0.2)
    start = time.monotonic()
    client.ok(OC.GetStorageIDs)
    assert time.monotonic() - start >= 0.18


def test_stall_forever_times_out_until_cleared(camera: SimCamera, client: Client) -> None:
    camera.faults.stall(None)
    with pytest.raises(TransportTimeout):
        client.call(OC.GetStorageIDs, timeout=0.1)
    timer = threading.Timer(0.1, camera.faults.clear)
    timer.start()
    try:
        client.tid -= 1
        client.ok(OC.GetStorageIDs)
    finally:
        timer.cancel()


def test_device_info_without_session(camera: SimCamera) -> None:
    c = Client(camera)
    try:
        r = c.transport.transact(Request(OC.GetDeviceInfo, 0, ()), data_in=(sink := io.BytesIO()))
        assert r.code == RC.OK
        assert DeviceInfo.decode(sink.getvalue()).model == "Simulated PTP camera"
    finally:
        c.close()


def test_close_camera_option() -> None:
    cam = make_camera(None, files_per_folder=1)
    t = InProcessTransport(cam, close_camera=True)
    cam.take_photo(size=10)
    t.close()
    t.close()
    assert cam.store._closed
