"""The real USB transport (pyusb) driving a simulated camera through SimUsbBackend."""

from __future__ import annotations

import hashlib
import io
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
    TransportTimeout,
)
from ptpfs.protocol.codes import EC, OC, OFC, RC
from ptpfs.protocol.datasets import DeviceInfo, ObjectInfo, decode_u32_array
from ptpfs.protocol.messages import Request
from ptpfs.sim import SD1, make_camera
from ptpfs.sim.usb_backend import EP_IN, PACKET_SIZE, SimUsbBackend
from ptpfs.transport.usb import CHUNK_SIZE, EndpointStalled, find_devices, open_usb
from ptpfs.transport.usbspec import parse_usb_spec

FOLDER = "DCIM/100CANON"


CAMERA = {"profile": "generic", "folders": 1, "files_per_folder": 2, "jpeg_size": 300_000,
          "raw_size": 400_000}


@pytest.fixture
def backend(camera):
    be = SimUsbBackend([camera])
    yield be
    be.close()


@pytest.fixture
def transport(backend):
    t = open_usb("usb", backend=backend, timeout=1.0)
    yield t
    t.close()


# ------------------------------------------------------------------ discovery

def test_spec_parsing():
    assert parse_usb_spec("usb").is_any
    assert parse_usb_spec("usb:001,004").bus == 1
    assert parse_usb_spec("usb:001,004").address == 4
    s = parse_usb_spec("usb:04a9:32F5")
    assert (s.vendor_id, s.product_id) == (0x04A9, 0x32F5)
    assert parse_usb_spec("usb:ABC123").serial == "ABC123"
    for bad in ("ptpip:1.2.3.4", "usb:1,2,3", "usb:has space", "", "usbx"):
        with pytest.raises(InvalidValue):
            parse_usb_spec(bad)


def test_find_by_every_spec_form():
    cams = [make_camera(None, p, folders=1, files_per_folder=1, jpeg_size=1000, raw_size=1000)
            for p in ("generic", "canon-eos", "android-mtp")]
    be = SimUsbBackend(cams, serials=["GEN1", "EOS1", "PIX1"])
    try:
        everything = find_devices("usb", be)
        assert [d.spec for d in everything] == ["usb:001,004", "usb:001,005", "usb:001,006"]
        assert [d.kind for d in everything] == ["ptp", "ptp", "mtp"]
        canon = find_devices("usb:001,005", be)
        assert len(canon) == 1 and canon[0].vendor_id == 0x04A9 and canon[0].serial == "EOS1"
        google = find_devices(f"usb:18d1:{everything[2].product_id:04x}", be)
        assert [d.serial for d in google] == ["PIX1"]
        assert google[0].vendor_id == 0x18D1
        assert [d.spec for d in find_devices("usb:GEN1", be)] == ["usb:001,004"]
        assert find_devices("usb:002,004", be) == []
        assert find_devices("usb:NOPE", be) == []
        with pytest.raises(DeviceNotFound):
            open_usb("usb:NOPE", backend=be)
        t = open_usb("usb:PIX1", backend=be)
        try:
            c = RawClient(t)
            info = DeviceInfo.decode(c.get(OC.GetDeviceInfo))
            assert info.model == cams[2].profile.model
        finally:
            t.close()
    finally:
        be.close()
        for cam in cams:
            cam.close()


def test_open_errors_are_explained(camera, backend):
    dev = backend.devices[0]
    dev.claimed_elsewhere = True
    with pytest.raises(DeviceClaimed, match="gvfs"):
        open_usb("usb", backend=backend)
    dev.claimed_elsewhere = False
    dev.access_denied = True
    with pytest.raises(DevicePermissionError, match="udev"):
        open_usb("usb:001,004", backend=backend)
    dev.access_denied = False
    dev.kernel_driver_active = True
    t = open_usb("usb", backend=backend)
    try:
        assert dev.detaches == 1
        assert RawClient(t).get(OC.GetDeviceInfo)
    finally:
        t.close()


# ------------------------------------------------------------------ transactions

def test_device_info_and_session(camera, transport):
    c = RawClient(transport)
    info = DeviceInfo.decode(c.get(OC.GetDeviceInfo))
    assert info.manufacturer == camera.profile.manufacturer
    assert OC.GetObject in info.operations_supported
    c.open()
    storages = decode_u32_array(c.get(OC.GetStorageIDs))
    assert SD1 in storages
    assert transport.description == "usb:001,004"


@pytest.mark.parametrize("size", [
    0, 1, PACKET_SIZE - 12, PACKET_SIZE, 2 * PACKET_SIZE - 12, 3 * PACKET_SIZE,
    CHUNK_SIZE - 12, CHUNK_SIZE, 2 * CHUNK_SIZE + 300,
])
def test_round_trip_sizes(camera, backend, client, size):
    """Data out and back in, including containers that are exact multiples of 512."""
    dev = backend.devices[0]
    payload = hashlib.shake_256(str(size).encode()).digest(size)
    zlps_before = dev.zlps_received
    handle = client.upload(camera, f"F{size}.BIN", payload)
    container_total = 12 + size
    assert dev.zlps_received - zlps_before == (1 if container_total % PACKET_SIZE == 0 else 0)
    assert camera.store.get(handle).read(0, size + 1) == payload
    assert client.get(OC.GetObject, handle) == payload
    # and the link stays usable for the next transaction
    assert client.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK


def test_exact_chunk_sized_data_in_leaves_no_stray_zlp(camera, backend, client):
    """A data container of exactly 1 MiB fills the read; the ZLP after it must be skipped."""
    payload = bytes(range(256)) * ((CHUNK_SIZE - 12) // 256) + b"x" * ((CHUNK_SIZE - 12) % 256)
    handle = client.upload(camera, "EXACT.BIN", payload)
    sent_before = backend.devices[0].zlps_sent
    assert client.get(OC.GetObject, handle) == payload
    assert backend.devices[0].zlps_sent == sent_before + 1
    assert client.call(OC.GetObjectInfo, handle, data_in=io.BytesIO()).code == RC.OK


def test_large_object_streams_with_bounded_memory():
    size = 48 * 1024 * 1024 + 123
    cam = make_camera(None, "generic", folders=1, files_per_folder=1, jpeg_size=1000,
                      big_file=size)
    be = SimUsbBackend([cam])
    t = open_usb("usb", backend=be, timeout=5.0)
    try:
        c = RawClient(t)
        c.open()
        obj = cam.store.find(f"{FOLDER}/MVI_9999.MP4")

        class Hasher:
            def __init__(self):
                self.h, self.n = hashlib.sha256(), 0

            def write(self, data):
                self.h.update(data)
                self.n += len(data)

        sink = Hasher()
        tracemalloc.start()
        try:
            r = c.call(OC.GetObject, obj.handle, data_in=sink)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert r.code == RC.OK
        assert sink.n == size
        assert sink.h.hexdigest() == obj.sha256()
        assert peak < 12 * 1024 * 1024, peak
    finally:
        t.close()
        be.close()
        cam.close()


def test_response_error_codes_pass_through(client):
    r = client.call(OC.GetObjectInfo, 0x7FFFFFFF, data_in=io.BytesIO())
    assert r.code == RC.InvalidObjectHandle


# ------------------------------------------------------------------ events

def test_event_arrives_on_interrupt_endpoint(camera, transport, client):
    # a transaction on bulk endpoints while the event thread waits on interrupt IN
    event, handle = event_while_transacting(camera, transport, client)
    assert event is not None
    assert (event.code, event.params[0]) == (EC.ObjectAdded, handle)


# ------------------------------------------------------------------ faults

def test_stall_times_out_then_recover(camera, backend, client):
    camera.faults.stall(None)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        client.call(OC.GetStorageIDs, data_in=io.BytesIO(), timeout=0.3)
    assert time.monotonic() - started < 2.0
    camera.faults.clear()
    client.t.recover()
    assert backend.devices[0].cancels == 1
    assert decode_u32_array(client.get(OC.GetStorageIDs)) == (SD1, 0x00020001)


def test_stall_during_large_download_then_recover(camera, client):
    handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
    camera.faults.stall(0.6)
    with pytest.raises(TransportTimeout):
        client.call(OC.GetObject, handle, data_in=io.BytesIO(), timeout=0.2)
    time.sleep(0.6)
    client.t.recover()
    obj = camera.store.get(handle)
    assert client.get(OC.GetObject, handle) == obj.read(0, obj.size)


def test_drop_is_connection_lost(camera, backend, client):
    handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
    camera.faults.drop_after(100_000)
    with pytest.raises(ConnectionLost):
        client.call(OC.GetObject, handle, data_in=io.BytesIO())
    with pytest.raises(ConnectionLost):
        client.call(OC.GetStorageIDs, data_in=io.BytesIO())
    with pytest.raises(ConnectionLost):
        client.t.read_event(0.01)
    assert find_devices("usb", backend) == []


def test_stalled_endpoint_is_cleared(backend, client):
    dev = backend.devices[0]
    dev.halt(EP_IN)
    with pytest.raises(EndpointStalled):
        client.call(OC.GetStorageIDs, data_in=io.BytesIO())
    assert dev.cancels == 1
    assert client.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK


@pytest.mark.parametrize("fault", ["tid", "garbage", "type"])
def test_bad_response_is_protocol_error(backend, client, fault):
    backend.devices[0].inject(fault)
    with pytest.raises(ProtocolError):
        client.call(OC.GetStorageIDs, data_in=io.BytesIO())
    client.t.recover()
    assert client.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK


def test_short_data_source_is_invalid_value(camera, client):
    parent = camera.store.find(FOLDER).handle
    info = ObjectInfo(storage_id=SD1, object_format=OFC.Undefined, compressed_size=100,
                      filename="SHORT.BIN")
    assert client.call(OC.SendObjectInfo, SD1, parent, data=info.encode()).code == RC.OK
    with pytest.raises(InvalidValue):
        client.t.transact(Request(OC.SendObject, client.tid, ()),
                          data_out=io.BytesIO(b"only ten!!"), data_out_length=100)
    client.tid += 1
    # No explicit recover(): the transport cancelled the transaction itself.  The link is
    # usable again: a well-framed answer for the right transaction (the
    # simulator may object to the transaction ID gap left by the aborted SendObject).
    r = client.call(OC.GetStorageIDs, data_in=io.BytesIO())
    assert r.transaction_id == client.tid - 1
    assert r.code in (RC.OK, RC.InvalidTransactionID)


def test_close_is_idempotent_and_final(transport):
    transport.close()
    transport.close()
    with pytest.raises(ConnectionLost):
        transport.transact(Request(OC.GetDeviceInfo, 0, ()))


@pytest.mark.parametrize("size", [10, PACKET_SIZE - 12, CHUNK_SIZE - 12, CHUNK_SIZE + 1000])
def test_unknown_length_data_container_reads_until_short_packet(camera, backend, client, size):
    """Length field 0xFFFFFFFF (objects over 4 GiB): the data ends at a short packet or ZLP."""
    payload = hashlib.shake_256(b"long" + str(size).encode()).digest(size)
    handle = client.upload(camera, f"L{size}.BIN", payload)
    backend.devices[0].unknown_length_from = 0
    assert client.get(OC.GetObject, handle) == payload
    assert client.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK
