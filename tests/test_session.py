"""Session behaviour against the simulated camera over the in-process transport."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest

from ptpfs.capabilities import PartialRead
from ptpfs.errors import ConnectionLost, InvalidValue, ResponseError
from ptpfs.protocol.codes import DPC, EC, OC, OFC, RC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.session import Session
from ptpfs.transport.inprocess import InProcessTransport


@pytest.fixture(params=["generic", "canon-eos", "android-mtp"])
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


#: The shared ``camera`` fixture (conftest.py) takes its profile from ``profile`` above.
CAMERA = {"uploads": True}   # canon-eos refuses them by default


@pytest.fixture
def session(camera):
    s = Session(InProcessTransport(camera), busy_delay=0.001).open()
    yield s
    s.close()


def _files(session: Session) -> list[int]:
    sid = session.get_storage_ids()[0]
    return [h for h in session.get_object_handles(sid, 0, 0)
            if session.get_object_info(h).object_format != OFC.Association]


def test_one_liner_transaction_and_seed_spelling(session: Session) -> None:
    r = session.transaction(OC.GetStorageIDs, [])
    assert r.ok and r.name == "OK"
    assert r["ResponseCode"] == RC.OK and r["Data"] == r.data
    # the default raises on an error response ...
    with pytest.raises(ResponseError) as err:
        session.transaction(OC.GetObjectInfo, [0xDEADBEEF])
    assert err.value.code == RC.InvalidObjectHandle
    assert "GetObjectInfo" in str(err.value) and "0x2009" in str(err.value)
    # ... check=False hands back the Result for the seed's r['ResponseCode'] style
    r = session.transaction(OC.GetObjectInfo, [0xDEADBEEF], check=False)
    assert r.code == RC.InvalidObjectHandle and r.name == "InvalidObjectHandle"
    assert r["ResponseCode"] == RC.InvalidObjectHandle and not r.ok
    with pytest.raises(ResponseError) as err:
        r.raise_for_status()
    assert err.value.code == RC.InvalidObjectHandle


def test_seed_one_liner_raises_when_the_camera_lacks_the_operation(session: Session) -> None:
    if OC.Canon_GetMacAddress in session.device_info.operations_supported:
        assert len(session.transaction(OC.Canon_GetMacAddress).data) == 6
        return
    with pytest.raises(ResponseError) as err:
        session.transaction(OC.Canon_GetMacAddress).data  # noqa: B018 - the seed's one-liner
    assert err.value.code == RC.OperationNotSupported
    assert str(err.value) == "Canon_GetMacAddress: OperationNotSupported (0x2005)"


def test_transaction_rejects_bad_params(session: Session) -> None:
    with pytest.raises(InvalidValue):
        session.transaction(OC.GetObjectInfo, [1, 2, 3, 4, 5, 6])
    with pytest.raises(InvalidValue):
        session.transaction(OC.GetObjectInfo, [1 << 32])


def test_capabilities_follow_the_profile(session: Session, profile: str) -> None:
    caps = session.capabilities
    expected = {"generic": PartialRead.OFFSET32, "canon-eos": PartialRead.EOS,
                "android-mtp": PartialRead.OFFSET64}
    assert caps.partial_read == expected[profile]
    assert caps.prop_list == (profile == "android-mtp")
    assert caps.eos_listing == caps.eos_events == (profile == "canon-eos")
    assert caps.upload and caps.delete


def test_object_read_whole_partial_and_streamed(session: Session, camera) -> None:
    handle = _files(session)[0]
    info = session.get_object_info(handle)
    expected = camera.store.get(handle).read(0, info.compressed_size)
    assert session.get_object(handle) == expected
    sink = io.BytesIO()
    seen: list[int] = []
    assert session.get_object(handle, sink=sink, progress=seen.append) == len(expected)
    assert sink.getvalue() == expected and seen[-1] == len(expected)
    assert session.read_partial(handle, 1000, 5000) == expected[1000:6000]
    # a partial read past the end returns what is there
    assert session.read_partial(handle, len(expected) - 10, 100) == expected[-10:]


def test_upload_then_read_back(session: Session, camera) -> None:
    sid = session.get_storage_ids()[0]
    payload = bytes(range(256)) * 4099
    info = ObjectInfo(storage_id=sid, object_format=OFC.Text, protection_status=0,
                      compressed_size=len(payload), thumb_format=0, thumb_compressed_size=0,
                      thumb_pix_width=0, thumb_pix_height=0, image_pix_width=0,
                      image_pix_height=0, image_bit_depth=0, parent=0, association_type=0,
                      association_desc=0, sequence_number=0, filename="notes.txt",
                      capture_date="", modification_date="", keywords="")
    _, _, handle = session.send_object_info(sid, 0, info)
    session.send_object(io.BytesIO(payload))
    assert session.get_object_info(handle).filename == "notes.txt"
    assert hashlib.sha256(session.get_object(handle)).digest() == hashlib.sha256(payload).digest()
    session.delete_object(handle)
    with pytest.raises(ResponseError) as err:
        session.get_object_info(handle)
    assert err.value.code == RC.InvalidObjectHandle


def test_send_object_without_object_info_is_refused(session: Session) -> None:
    with pytest.raises(ResponseError) as err:
        session.send_object(b"abc")
    assert err.value.code == RC.NoValidObjectInfo


def test_device_busy_is_retried_then_raised(session: Session, camera) -> None:
    camera.faults.busy(2)
    assert session.get_storage_ids()  # two busy answers absorbed by retries
    camera.faults.busy(50)
    with pytest.raises(ResponseError) as err:
        session.get_storage_ids()
    assert err.value.code == RC.DeviceBusy
    camera.faults.busy(0)
    assert session.get_storage_ids()


def test_device_properties(session: Session) -> None:
    desc = session.get_device_prop_desc(DPC.BatteryLevel)
    assert session.get_device_prop_value(DPC.BatteryLevel) == desc.current
    name = "ptpfs test camera"
    session.set_device_prop_value(DPC.DeviceFriendlyName, name)
    assert session.get_device_prop_value(DPC.DeviceFriendlyName) == name
    with pytest.raises(ResponseError):
        session.set_device_prop_value(DPC.BatteryLevel, 5)  # read-only


def test_events_reach_subscribers(session: Session, camera) -> None:
    got: list = []
    done = threading.Event()

    def on_event(event) -> None:
        got.append(event)
        if event.code == EC.ObjectAdded:
            done.set()

    unsubscribe = session.subscribe(on_event)
    handle = camera.take_photo()
    assert done.wait(5), "no ObjectAdded event arrived"
    assert any(e.code == EC.ObjectAdded and e.params[0] == handle for e in got)
    unsubscribe()


def test_many_threads_share_one_session(session: Session, camera) -> None:
    handles = _files(session)[:4]
    expected = {h: camera.store.get(h).read(0, 300_000) for h in handles}
    errors: list[BaseException] = []

    def reader(h: int) -> None:
        try:
            for off in range(0, 300_000, 60_000):
                assert session.read_partial(h, off, 60_000) == expected[h][off:off + 60_000]
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(h,)) for h in handles for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert session.stats.transactions >= 5 * len(threads)


def test_lost_link_fails_fast_afterwards(session: Session, camera) -> None:
    handle = _files(session)[0]
    camera.faults.drop_after(1000)
    with pytest.raises(ConnectionLost):
        session.get_object(handle)
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        session.get_storage_ids()
    assert time.monotonic() - started < 1.0
