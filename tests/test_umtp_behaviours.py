"""Device behaviours seen on uMTP-Responder, reproduced on the simulator: ptpfs adapts, once.

Each test makes the simulated camera answer like umtprd does (measured in the QEMU guest, see
docs/devices.md) and checks that the session or the listing carries on, notes the behaviour
once in ``Session.adaptations``, and still rejects what is really broken.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptpfs.errors import ProtocolError
from ptpfs.protocol.codes import OC, RC
from ptpfs.protocol.datasets import DeviceInfo, ObjectInfo, StorageInfo
from ptpfs.services.listing import GenericLister, PropListLister
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.sim.camera import Reply
from ptpfs.transport.inprocess import InProcessTransport


@pytest.fixture
def camera():
    cam = make_camera(None, "android-mtp", uploads=True)
    yield cam
    cam.close()


def _patch(camera: Any, code: int, make: Any) -> None:
    original = camera._handlers[code]
    camera._handlers[code] = make(original)


def test_deviceinfo_refused_outside_a_session(camera: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[bool] = []

    def make(original: Any) -> Any:
        def handler(conn: Any, request: Any) -> Reply:
            calls.append(bool(conn.session_id))
            if not conn.session_id:
                return Reply(RC.SessionNotOpen)
            return original(conn, request)
        return handler

    _patch(camera, OC.GetDeviceInfo, make)
    with caplog.at_level(logging.INFO, logger="ptpfs.session"):
        session = Session(InProcessTransport(camera)).open()
    try:
        assert calls == [False, True]            # asked, refused, asked again in the session
        assert session.is_open
        assert session.device_info.model
        assert session.get_storage_ids()
        assert list(session.adaptations) == ["deviceinfo-in-session"]
        assert sum("outside a session" in r.message for r in caplog.records) == 1
    finally:
        session.close()


def test_deviceinfo_outside_a_session_is_asked_first_when_allowed(camera: Any) -> None:
    session = Session(InProcessTransport(camera)).open()
    try:
        assert session.adaptations == {}
    finally:
        session.close()


def test_proplist_ignoring_depth_falls_back_to_objectinfo(camera: Any) -> None:
    asked: list[int] = []

    def make(original: Any) -> Any:
        def handler(conn: Any, request: Any) -> Reply:
            # umtprd: depth ignored, the answer describes the queried object itself
            asked.append(request.params[0])
            params = list(request.params)
            params[4] = 0
            return original(conn, type(request)(request.code, request.transaction_id,
                                                tuple(params)))
        return handler

    session = Session(InProcessTransport(camera)).open()
    try:
        sid = session.get_storage_ids()[0]
        expected = sorted((m.handle, m.filename) for m in
                          GenericLister(session).list_folder(sid, 0))
        folder = next(m for m in GenericLister(session).list_folder(sid, 0) if m.is_folder)
        expected_sub = sorted((m.handle, m.filename) for m in
                              GenericLister(session).list_folder(sid, folder.handle))
        _patch(camera, OC.GetObjectPropList, make)
        lister = PropListLister(session)
        got = sorted((m.handle, m.filename) for m in lister.list_folder(sid, folder.handle))
        assert got == expected_sub
        assert lister.broken and "proplist-depth" in session.adaptations
        asked.clear()
        assert sorted((m.handle, m.filename) for m in lister.list_folder(sid, 0)) == expected
        assert asked == []                        # decided once: no more GetObjectPropList
    finally:
        session.close()


def test_propdesc_with_trailing_bytes_is_accepted(camera: Any) -> None:
    def make(original: Any) -> Any:
        def handler(conn: Any, request: Any) -> Reply:
            reply = original(conn, request)
            data = reply.data.read(1 << 20) if reply.data is not None else b""
            return camera._data(data + b"\0\0\0\0")   # umtprd sends 4 bytes too many
        return handler

    session = Session(InProcessTransport(camera)).open()
    try:
        code = session.device_info.device_properties_supported[0]
        plain = session.get_device_prop_desc(code)
        _patch(camera, OC.GetDevicePropDesc, make)
        assert session.get_device_prop_desc(code) == plain
        assert "propdesc-trailing" in session.adaptations
    finally:
        session.close()


def test_short_objectinfo_from_the_device_reads_missing_strings_empty(camera: Any) -> None:
    def make(original: Any) -> Any:
        def handler(conn: Any, request: Any) -> Reply:
            info = ObjectInfo.decode(original(conn, request).data.read(1 << 20))
            bare = dataclasses.replace(info, capture_date="", modification_date="", keywords="")
            return camera._data(bare.encode()[:-3])     # ends right after the filename
        return handler

    session = Session(InProcessTransport(camera)).open()
    try:
        sid = session.get_storage_ids()[0]
        handle = session.get_object_handles(sid, 0, 0xFFFFFFFF)[0]
        plain = session.get_object_info(handle)
        _patch(camera, OC.GetObjectInfo, make)
        short = session.get_object_info(handle)
        assert short.filename == plain.filename and short.parent == plain.parent
        assert (short.capture_date, short.modification_date, short.keywords) == ("", "", "")
        assert "short-objectinfo" in session.adaptations
    finally:
        session.close()


# --------------------------------------------------------------------------- codec

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=150, deadline=None)
@given(name=_text.filter(bool), dates=st.lists(_text, min_size=3, max_size=3), keep=st.integers(0, 3))
def test_objectinfo_may_end_at_any_trailing_string(name: str, dates: list[str], keep: int) -> None:
    full = ObjectInfo(0x10001, 0x3000, compressed_size=5, parent=3, filename=name,
                      capture_date=dates[0], modification_date=dates[1], keywords=dates[2])
    # cut after the filename and `keep` of the three trailing strings
    cut = ObjectInfo(0x10001, 0x3000, compressed_size=5, parent=3, filename=name,
                     **dict(zip(("capture_date", "modification_date", "keywords"), dates[:keep], strict=False)))
    data = cut.encode()
    for _ in range(3 - keep):
        data = data[:-1]    # each absent string was encoded as one zero length byte
    missing: list[str] = []
    got = ObjectInfo.decode(data, strict=False, missing=missing)
    assert got.filename == name
    assert [got.capture_date, got.modification_date, got.keywords][:keep] == dates[:keep]
    assert missing == ["capture_date", "modification_date", "keywords"][keep:]
    assert ObjectInfo.decode(full.encode(), strict=False) == full
    if keep < 3:
        with pytest.raises(ProtocolError):
            ObjectInfo.decode(data)            # strict decoding still wants every field


@settings(max_examples=150, deadline=None)
@given(name=_text.filter(lambda s: len(s) > 1), cut=st.integers(1, 60))
def test_objectinfo_cut_inside_a_string_is_rejected(name: str, cut: int) -> None:
    data = ObjectInfo(1, 0x3000, filename=name, keywords="kw").encode()
    start = len(ObjectInfo(1, 0x3000).encode()) - 4          # the filename's length byte
    end = start + 1 + 2 * (len(name.encode("utf-16-le")) // 2 + 1)
    position = start + 1 + (cut % (end - start - 1))           # strictly inside the name
    with pytest.raises(ProtocolError):
        ObjectInfo.decode(data[:position], strict=False)


@settings(max_examples=100, deadline=None)
@given(strings=st.lists(_text, min_size=4, max_size=4), keep=st.integers(0, 4))
def test_deviceinfo_and_storageinfo_may_end_early(strings: list[str], keep: int) -> None:
    info = DeviceInfo(operations_supported=(0x1001,),
                      **dict(zip(("manufacturer", "model", "device_version", "serial_number"),
                                 strings[:keep], strict=False)))
    data = info.encode()[:len(info.encode()) - (4 - keep)]
    missing: list[str] = []
    assert DeviceInfo.decode(data, strict=False, missing=missing) == info
    assert len(missing) == 4 - keep
    storage = StorageInfo(3, 2, 0, 100, 50, 7, storage_description=strings[0])
    encoded = storage.encode()[:-1]                              # no volume label
    assert StorageInfo.decode(encoded, strict=False) == storage
    with pytest.raises(ProtocolError):
        StorageInfo.decode(encoded)


@pytest.mark.parametrize("refusal", [RC.OperationNotSupported, RC.GeneralError])
def test_listed_operation_refused_falls_back_to_standard_listing(refusal: int) -> None:
    """An EOS body that lists GetObjectInfoEx but refuses it: GetObjectHandles + GetObjectInfo."""
    from ptpfs.services.listing import EosLister, choose_lister

    cam = make_camera(None, "canon-eos")
    calls: list[int] = []

    def refuse(conn: Any, request: Any) -> Reply:
        calls.append(request.code)
        return Reply(refusal)

    session = Session(InProcessTransport(cam)).open()
    try:
        sid = session.get_storage_ids()[0]
        expected = sorted((m.handle, m.filename) for m in GenericLister(session).list_folder(sid, 0))
        cam._handlers[OC.EOS_GetObjectInfoEx] = refuse
        lister = choose_lister(session)
        assert isinstance(lister, EosLister)
        assert sorted((m.handle, m.filename) for m in lister.list_folder(sid, 0)) == expected
        assert sorted((m.handle, m.filename) for m in lister.list_folder(sid, 0)) == expected
        assert len(calls) == 1                    # decided once
        assert "eos-infoex-refused" in session.adaptations
    finally:
        session.close()
        cam.close()


@pytest.mark.parametrize("refusal", [RC.OperationNotSupported, RC.GeneralError,
                                     RC.ParameterNotSupported])
def test_proplist_listed_but_refused_falls_back_once(camera: Any, refusal: int) -> None:
    calls: list[int] = []

    def refuse(conn: Any, request: Any) -> Reply:
        calls.append(request.code)
        return Reply(refusal)

    session = Session(InProcessTransport(camera)).open()
    try:
        sid = session.get_storage_ids()[0]
        expected = sorted((m.handle, m.filename) for m in GenericLister(session).list_folder(sid, 0))
        camera._handlers[OC.GetObjectPropList] = refuse
        lister = PropListLister(session)
        for _ in range(2):
            assert sorted((m.handle, m.filename) for m in lister.list_folder(sid, 0)) == expected
        assert calls == [OC.GetObjectPropList]
        assert "proplist-refused" in session.adaptations
    finally:
        session.close()


def test_missing_objectsize_property_keeps_the_32_bit_marker(camera: Any) -> None:
    def big(original: Any) -> Any:
        def handler(conn: Any, request: Any) -> Reply:
            info = ObjectInfo.decode(original(conn, request).data.read(1 << 20))
            if not info.is_folder:
                info = dataclasses.replace(info, compressed_size=0xFFFFFFFF)   # "4 GiB or more"
            return camera._data(info.encode())
        return handler

    session = Session(InProcessTransport(camera)).open()
    try:
        sid = session.get_storage_ids()[0]
        _patch(camera, OC.GetObjectInfo, big)
        camera._handlers[OC.GetObjectPropValue] = lambda conn, req: Reply(RC.OperationNotSupported)
        lister, files, todo = GenericLister(session), [], [0]
        while todo and not files:
            for m in lister.list_folder(sid, todo.pop()):
                (todo.append(m.handle) if m.is_folder else files.append(m))
        assert files and all(m.size == 0xFFFFFFFF for m in files)
        assert "objectsize-missing" in session.adaptations
    finally:
        session.close()
