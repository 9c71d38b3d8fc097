"""Every operation and error code of the simulated camera, through InProcessTransport."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from ptp_client import Client

from ptpfs.protocol.codes import DPC, DT, EC, OC, OFC, OPC, RC
from ptpfs.protocol.datasets import (
    DeviceInfo,
    DevicePropDesc,
    ObjectInfo,
    PropEnum,
    PropRange,
    StorageInfo,
    decode_prop_list,
    decode_u16_array,
    decode_u32_array,
)
from ptpfs.protocol.messages import Request
from ptpfs.protocol.wire import decode_value, encode_value, parse_datetime
from ptpfs.sim import SD1, SD2, make_camera
from ptpfs.sim.camera import SimCamera

ALL = 0xFFFFFFFF


CAMERA = {"profile": "generic", "files_per_folder": 4, "jpeg_size": 200_000, "raw_size": 600_000}


def _make(profile: str = "generic", **kw: object):
    kw.setdefault("files_per_folder", 4)
    kw.setdefault("jpeg_size", 200_000)
    kw.setdefault("raw_size", 600_000)
    return make_camera(None, profile, **kw)


def _opened(profile: str) -> Iterator[tuple[SimCamera, Client]]:
    cam = _make(profile)
    c = Client(cam)
    c.open()
    try:
        yield cam, c
    finally:
        c.close()
        cam.close()


@pytest.fixture
def android() -> Iterator[tuple[SimCamera, Client]]:
    yield from _opened("android-mtp")


@pytest.fixture
def eos() -> Iterator[tuple[SimCamera, Client]]:
    yield from _opened("canon-eos")


def handles(c: Client, storage: int, fmt: int, parent: int) -> list[int]:
    return list(decode_u32_array(c.ok(OC.GetObjectHandles, storage, fmt, parent).data))


def info(c: Client, handle: int) -> ObjectInfo:
    return ObjectInfo.decode(c.ok(OC.GetObjectInfo, handle).data)


def upload(c: Client, name: str, data: bytes, storage: int = SD1, parent: int = ALL,
           fmt: int = OFC.Undefined) -> tuple[int, int]:
    oi = ObjectInfo(storage, fmt, compressed_size=len(data), filename=name)
    r = c.call(OC.SendObjectInfo, storage, parent, data=oi.encode())
    if r.code != RC.OK:
        return r.code, 0
    return c.call(OC.SendObject, data=data).code, r.params[2]


# -- sessions ------------------------------------------------------------------------------
def test_session_rules(camera: SimCamera) -> None:
    c = Client(camera)
    try:
        assert c.call(OC.GetStorageIDs).code == RC.SessionNotOpen
        c.tid = -1  # next call uses transaction 0
        assert DeviceInfo.decode(c.ok(OC.GetDeviceInfo).data).manufacturer == "ptpfs"
        t = c.transport
        assert t.transact(Request(OC.OpenSession, 5, (1,))).code == RC.InvalidTransactionID
        assert t.transact(Request(OC.OpenSession, 0, (0,))).code == RC.InvalidParameter
        assert t.transact(Request(OC.OpenSession, 0, (7,))).code == RC.OK
        r = t.transact(Request(OC.OpenSession, 0, (8,)))
        assert (r.code, r.params) == (RC.SessionAlreadyOpen, (7,))
        assert t.transact(Request(OC.GetStorageIDs, 2, ())).code == RC.InvalidTransactionID
        assert t.transact(Request(OC.GetStorageIDs, 1, ())).code == RC.OK
        assert t.transact(Request(OC.GetStorageIDs, 1, ())).code == RC.InvalidTransactionID
        assert t.transact(Request(OC.GetDeviceInfo, 2, ())).code == RC.OK
        assert t.transact(Request(OC.CloseSession, 3, ())).code == RC.OK
        assert t.transact(Request(OC.CloseSession, 4, ())).code == RC.SessionNotOpen
        assert t.transact(Request(OC.GetStorageIDs, 5, ())).code == RC.SessionNotOpen
    finally:
        c.close()


# -- storages ------------------------------------------------------------------------------
def test_storages_and_empty_slot_option() -> None:
    for slot, ids in (("empty", [SD1, SD2]), ("absent", [SD1, 0x00020000]), ("none", [SD1])):
        cam = _make(second_slot=slot)
        c = Client(cam)
        try:
            c.open()
            assert list(decode_u32_array(c.ok(OC.GetStorageIDs).data)) == ids
            si = StorageInfo.decode(c.ok(OC.GetStorageInfo, SD1).data)
            assert si.storage_description == "SD1" and si.access_capability == 0
            assert 0 < si.free_space_bytes < si.max_capacity
            if slot == "absent":
                assert c.call(OC.GetStorageInfo, 0x00020000).code == RC.StoreNotAvailable
                assert c.call(OC.GetObjectHandles, 0x00020000, 0, ALL).code == RC.StoreNotAvailable
            if slot == "empty":
                assert handles(c, SD2, 0, 0) == []
            assert c.call(OC.GetStorageInfo, 0x00090001).code == RC.InvalidStorageID
        finally:
            c.close()
            cam.close()


def test_insert_and_remove_card_events(camera: SimCamera, client: Client) -> None:
    dcim = camera.store.find("DCIM").handle
    camera.remove_card(SD1)
    assert (client.transport.read_event(1).code, ) == (EC.StoreRemoved,)
    assert SD1 & 0xFFFF0000 in decode_u32_array(client.ok(OC.GetStorageIDs).data)
    assert client.call(OC.GetObjectInfo, dcim).code == RC.InvalidObjectHandle
    camera.insert_card(SD1)
    ev = client.transport.read_event(1)
    assert (ev.code, ev.params) == (EC.StoreAdded, (SD1,))
    assert info(client, dcim).filename == "DCIM"


# -- listing -------------------------------------------------------------------------------
def test_object_handles_parent_semantics(camera: SimCamera, client: Client) -> None:
    dcim = camera.store.find("DCIM").handle
    folder = camera.store.find("DCIM/100CANON").handle
    assert handles(client, SD1, 0, ALL) == [dcim]
    assert handles(client, ALL, 0, ALL) == [dcim]
    every = handles(client, SD1, 0, 0)
    assert len(every) == 6 and dcim in every and folder in every
    assert handles(client, ALL, 0, 0) == every
    kids = handles(client, SD1, 0, folder)
    assert [info(client, h).filename for h in kids] == [
        "IMG_0001.JPG", "IMG_0001.CR3", "IMG_0002.JPG", "IMG_0002.CR3"]
    assert len(handles(client, SD1, OFC.CANON_CR3, folder)) == 2
    assert client.ok(OC.GetNumObjects, SD1, 0, 0).params == (6,)
    assert client.ok(OC.GetNumObjects, SD1, OFC.EXIF_JPEG, folder).params == (2,)
    assert client.call(OC.GetObjectHandles, SD1, 0, 0x7777).code == RC.InvalidObjectHandle
    assert client.call(OC.GetObjectHandles, SD1, 0, kids[0]).code == RC.InvalidParentObject
    assert client.call(OC.GetObjectHandles, 0x00030001, 0, ALL).code == RC.InvalidStorageID


def test_object_info_fields(camera: SimCamera, client: Client) -> None:
    folder = camera.store.find("DCIM/100CANON")
    jpg = camera.store.find("DCIM/100CANON/IMG_0001.JPG")
    fi = info(client, folder.handle)
    assert fi.is_folder and fi.association_type == 1 and fi.filename == "100CANON"
    assert fi.parent == camera.store.find("DCIM").handle
    assert info(client, camera.store.find("DCIM").handle).parent == 0
    ji = info(client, jpg.handle)
    assert (ji.storage_id, ji.object_format, ji.compressed_size) == (SD1, OFC.EXIF_JPEG, jpg.size)
    assert 180_000 <= ji.compressed_size <= 220_000
    assert ji.parent == folder.handle and ji.thumb_format == OFC.JFIF
    assert ji.thumb_compressed_size > 0 and ji.image_pix_width == 6000
    assert ji.capture_datetime.year == 2023 and ji.modification_datetime is not None
    assert client.call(OC.GetObjectInfo, 0x12345).code == RC.InvalidObjectHandle


def test_huge_object_reports_u32_marker_and_u64_size() -> None:
    cam = _make("android-mtp", files_per_folder=0, big_file=5 << 30)
    c = Client(cam)
    try:
        c.open()
        big = cam.store.find("DCIM/100CANON/MVI_9999.MP4")
        assert info(c, big.handle).compressed_size == ALL
        v = c.ok(OC.GetObjectPropValue, big.handle, OPC.ObjectSize).data
        assert decode_value(DT.UINT64, v) == 5 << 30
        offset = (4 << 30) + 12345
        r = c.ok(OC.GetPartialObject64, big.handle, offset & ALL, offset >> 32, 4096)
        assert r.params == (4096,) and r.data == big.read(offset, 4096)
    finally:
        c.close()
        cam.close()


# -- reading -------------------------------------------------------------------------------
def test_get_object_partial_and_thumb(camera: SimCamera, client: Client) -> None:
    jpg = camera.store.find("DCIM/100CANON/IMG_0001.JPG")
    assert client.ok(OC.GetObject, jpg.handle).data == jpg.read(0, jpg.size)
    r = client.ok(OC.GetPartialObject, jpg.handle, 1000, 5000)
    assert r.params == (5000,) and r.data == jpg.read(1000, 5000)
    r = client.ok(OC.GetPartialObject, jpg.handle, jpg.size - 10, 5000)
    assert r.params == (10,) and r.data == jpg.read(jpg.size - 10, 10)
    assert client.call(OC.GetPartialObject, jpg.handle, jpg.size + 1, 10).code == RC.InvalidParameter
    thumb = client.ok(OC.GetThumb, jpg.handle).data
    assert thumb[:2] == b"\xff\xd8" and thumb[-2:] == b"\xff\xd9"
    assert len(thumb) == info(client, jpg.handle).thumb_compressed_size
    folder = camera.store.find("DCIM/100CANON").handle
    assert client.call(OC.GetThumb, folder).code == RC.NoThumbnailPresent
    assert client.call(OC.GetObject, folder).code == RC.InvalidObjectHandle
    # generic profile: no 64-bit partial reads, no MTP properties, no MoveObject
    for op in (OC.GetPartialObject64, OC.GetObjectPropList, OC.MoveObject, OC.EOS_GetEvent):
        assert client.call(op, jpg.handle, 0, 0, 0).code == RC.OperationNotSupported


# -- deleting ------------------------------------------------------------------------------
def test_delete_file_folder_protected_readonly(camera: SimCamera, client: Client) -> None:
    folder = camera.store.find("DCIM/100CANON")
    kids = handles(client, SD1, 0, folder.handle)
    client.ok(OC.DeleteObject, kids[0], 0)
    assert client.call(OC.GetObjectInfo, kids[0]).code == RC.InvalidObjectHandle
    camera.store.get(kids[1]).protection = 1
    assert client.call(OC.DeleteObject, kids[1], 0).code == RC.ObjectWriteProtected
    # recursive folder deletion keeps the protected file: PartialDeletion
    assert client.call(OC.DeleteObject, folder.handle, 0).code == RC.PartialDeletion
    assert handles(client, SD1, 0, folder.handle) == [kids[1]]
    camera.set_read_only(SD1)
    assert client.call(OC.DeleteObject, kids[1], 0).code == RC.StoreReadOnly
    assert StorageInfo.decode(client.ok(OC.GetStorageInfo, SD1).data).access_capability == 1
    camera.set_read_only(SD1, False)
    camera.store.get(kids[1]).protection = 0
    client.ok(OC.DeleteObject, camera.store.find("DCIM").handle, 0)
    assert handles(client, SD1, 0, 0) == []


# -- uploading -----------------------------------------------------------------------------
def test_upload_roundtrip_and_events(camera: SimCamera, client: Client) -> None:
    folder = camera.store.find("DCIM/100CANON").handle
    payload = bytes(range(256)) * 1000
    code, handle = upload(client, "NEW.TXT", payload, parent=folder, fmt=OFC.Text)
    assert code == RC.OK
    assert handle in handles(client, SD1, 0, folder)
    assert client.ok(OC.GetObject, handle).data == payload
    assert info(client, handle).filename == "NEW.TXT"
    codes = []
    while (ev := client.transport.read_event(0.2)) is not None:
        codes.append((ev.code, ev.params))
    assert (EC.ObjectAdded, (handle,)) in codes
    # folders are created by SendObjectInfo alone
    oi = ObjectInfo.folder(SD1, 0, "NEWDIR")
    r = client.ok(OC.SendObjectInfo, SD1, ALL, data=oi.encode())
    assert info(client, r.params[2]).is_folder
    assert client.call(OC.SendObject, data=b"").code == RC.NoValidObjectInfo


def test_upload_errors(camera: SimCamera, client: Client) -> None:
    assert client.call(OC.SendObject, data=b"x").code == RC.NoValidObjectInfo
    for bad in ("../x", "a/b", "/etc/passwd", "..", "", "a\\b"):
        assert upload(client, bad, b"x")[0] == RC.InvalidParameter, bad
    assert client.call(OC.SendObjectInfo, SD1, ALL, data=b"\x01\x02").code == RC.InvalidDataset
    # incomplete data (fewer bytes than ObjectInfo announced): nothing is left behind
    oi = ObjectInfo(SD1, OFC.Undefined, compressed_size=1000, filename="short.bin")
    r = client.ok(OC.SendObjectInfo, SD1, ALL, data=oi.encode())
    assert client.call(OC.SendObject, data=b"y" * 10).code == RC.IncompleteTransfer
    assert client.call(OC.GetObjectInfo, r.params[2]).code == RC.InvalidObjectHandle
    assert "short.bin" not in {o.name for o in camera.store.children(SD1, 0)}
    # store full
    camera.set_full(SD1)
    assert upload(client, "f.bin", b"z" * 10)[0] == RC.StoreFull
    camera.set_full(SD1, False)
    # read-only storage
    camera.set_read_only(SD1)
    assert upload(client, "ro.bin", b"z")[0] == RC.StoreReadOnly
    camera.set_read_only(SD1, False)
    assert upload(client, "ok.bin", b"z")[0] == RC.OK
    f = camera.store.find("DCIM/100CANON/IMG_0001.JPG").handle
    assert upload(client, "x", b"z", parent=f)[0] == RC.InvalidParentObject


def test_store_full_during_data_phase() -> None:
    cam = _make(files_per_folder=2, capacity=1_000_000)
    c = Client(cam)
    try:
        c.open()
        free = StorageInfo.decode(c.ok(OC.GetStorageInfo, SD1).data).free_space_bytes
        assert free == cam.store.free_space(SD1) and free < 1_000_000
        oi = ObjectInfo(SD1, OFC.Undefined, compressed_size=free + 1, filename="x")
        assert c.call(OC.SendObjectInfo, SD1, ALL, data=oi.encode()).code == RC.StoreFull
        oi = ObjectInfo(SD1, OFC.Undefined, compressed_size=ALL, filename="big.bin")
        c.ok(OC.SendObjectInfo, SD1, ALL, data=oi.encode())
        assert c.call(OC.SendObject, data=bytes(free + 10)).code == RC.StoreFull
        assert "big.bin" not in {o.name for o in cam.store.children(SD1, 0)}
    finally:
        c.close()
        cam.close()


def test_r6_denies_uploads_unless_allowed() -> None:
    # the real R6 answers SendObjectInfo from a PC with AccessDenied: the default
    for options in ({}, {"deny_uploads": True}, {"uploads": False}):
        cam = _make("canon-eos", **options)
        c = Client(cam)
        try:
            c.open()
            assert upload(c, "a.txt", b"hello")[0] == RC.AccessDenied
        finally:
            c.close()
            cam.close()
    cam = _make("canon-eos", uploads=True)
    c = Client(cam)
    try:
        c.open()
        assert upload(c, "a.txt", b"hello")[0] == RC.OK
    finally:
        c.close()
        cam.close()


def test_upload_to_sample_card_uses_private_temp_dir(camera: SimCamera, client: Client) -> None:
    import os
    import stat
    code, handle = upload(client, "t.bin", b"abc")
    assert code == RC.OK
    tmp = camera.store._tempdir
    assert tmp and stat.S_IMODE(os.stat(tmp).st_mode) == 0o700
    camera.close()
    assert not os.path.exists(tmp)


# -- device properties ------------------------------------------------------------------------
def test_device_properties(camera: SimCamera, client: Client) -> None:
    props = DeviceInfo.decode(client.ok(OC.GetDeviceInfo).data).device_properties_supported
    for code in (DPC.BatteryLevel, DPC.DateTime, DPC.DeviceFriendlyName, DPC.ExposureTime,
                 DPC.FNumber, DPC.ExposureIndex, DPC.WhiteBalance, DPC.ImageSize):
        assert code in props
        d = DevicePropDesc.decode(client.ok(OC.GetDevicePropDesc, code).data)
        assert d.code == code
        value = decode_value(d.datatype, client.ok(OC.GetDevicePropValue, code).data)
        if code != DPC.DateTime:
            assert value == d.current
    battery = DevicePropDesc.decode(client.ok(OC.GetDevicePropDesc, DPC.BatteryLevel).data)
    assert isinstance(battery.form, PropRange) and not battery.writable
    assert client.call(OC.SetDevicePropValue, DPC.BatteryLevel,
                       data=encode_value(DT.UINT8, 50)).code == RC.AccessDenied
    exp = DevicePropDesc.decode(client.ok(OC.GetDevicePropDesc, DPC.ExposureTime).data)
    assert isinstance(exp.form, PropEnum) and 10000 in exp.form.values and 80 in exp.form.values
    client.ok(OC.SetDevicePropValue, DPC.ExposureTime, data=encode_value(DT.UINT32, 10000))
    assert decode_value(DT.UINT32, client.ok(OC.GetDevicePropValue, DPC.ExposureTime).data) == 10000
    ev = client.transport.read_event(1)
    assert (ev.code, ev.params) == (EC.DevicePropChanged, (DPC.ExposureTime,))
    assert client.call(OC.SetDevicePropValue, DPC.ExposureTime,
                       data=encode_value(DT.UINT32, 12345)).code == RC.InvalidDevicePropValue
    assert client.call(OC.SetDevicePropValue, DPC.FNumber,
                       data=encode_value(DT.UINT16, 123)).code == RC.InvalidDevicePropValue
    assert client.call(OC.SetDevicePropValue, DPC.ExposureIndex,
                       data=b"\x01").code == RC.InvalidDevicePropFormat
    assert client.call(OC.SetDevicePropValue, DPC.ImageSize,
                       data=encode_value(DT.STR, "1x1")).code == RC.InvalidDevicePropValue
    client.ok(OC.SetDevicePropValue, DPC.ImageSize, data=encode_value(DT.STR, "2976x1984"))
    client.ok(OC.SetDevicePropValue, DPC.WhiteBalance, data=encode_value(DT.UINT16, 4))
    client.ok(OC.SetDevicePropValue, DPC.DeviceFriendlyName, data=encode_value(DT.STR, "Cam"))
    assert decode_value(DT.STR, client.ok(OC.GetDevicePropValue, DPC.DeviceFriendlyName).data) == "Cam"
    client.ok(OC.SetDevicePropValue, DPC.DateTime, data=encode_value(DT.STR, "20200102T030405"))
    when = parse_datetime(decode_value(DT.STR, client.ok(OC.GetDevicePropValue, DPC.DateTime).data))
    assert (when.year, when.month, when.day, when.hour) == (2020, 1, 2, 3)
    assert client.call(OC.SetDevicePropValue, DPC.DateTime,
                       data=encode_value(DT.STR, "yesterday")).code == RC.InvalidDevicePropValue
    client.ok(OC.ResetDevicePropValue, DPC.ExposureTime)
    assert decode_value(DT.UINT32, client.ok(OC.GetDevicePropValue, DPC.ExposureTime).data) == 80
    assert client.call(OC.GetDevicePropDesc, 0x5099).code == RC.DevicePropNotSupported
    camera.set_property(DPC.BatteryLevel, 15)
    assert decode_value(DT.UINT8, client.ok(OC.GetDevicePropValue, DPC.BatteryLevel).data) == 15


# -- android-mtp: object properties, rename, move ---------------------------------------------
def test_object_props(android) -> None:
    cam, c = android
    jpg = cam.store.find("DCIM/100CANON/IMG_0001.JPG")
    supported = decode_u16_array(c.ok(OC.GetObjectPropsSupported, OFC.EXIF_JPEG).data)
    assert OPC.ObjectFileName in supported and OPC.ObjectSize in supported
    desc = c.ok(OC.GetObjectPropDesc, OPC.ObjectFileName, OFC.EXIF_JPEG).data
    assert struct.unpack_from("<HHB", desc) == (OPC.ObjectFileName, DT.STR, 1)
    assert c.call(OC.GetObjectPropDesc, 0xDFFF, 0).code == RC.InvalidObjectPropCode
    name = decode_value(DT.STR, c.ok(OC.GetObjectPropValue, jpg.handle, OPC.ObjectFileName).data)
    assert name == "IMG_0001.JPG"
    assert decode_value(DT.UINT32, c.ok(OC.GetObjectPropValue, jpg.handle,
                                        OPC.ParentObject).data) == jpg.parent
    assert c.call(OC.GetObjectPropValue, jpg.handle, 0xDFFF).code == RC.InvalidObjectPropCode
    # rename
    c.ok(OC.SetObjectPropValue, jpg.handle, OPC.ObjectFileName, data=encode_value(DT.STR, "R.JPG"))
    assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, jpg.handle).data).filename == "R.JPG"
    ev = c.transport.read_event(1)
    assert (ev.code, ev.params) == (EC.ObjectInfoChanged, (jpg.handle,))
    for bad in ("../x", "a/b", ""):
        assert c.call(OC.SetObjectPropValue, jpg.handle, OPC.ObjectFileName,
                      data=encode_value(DT.STR, bad)).code == RC.InvalidObjectPropValue
    assert c.call(OC.SetObjectPropValue, jpg.handle, OPC.ObjectSize,
                  data=encode_value(DT.UINT64, 1)).code == RC.AccessDenied
    # move
    dcim = cam.store.find("DCIM").handle
    c.ok(OC.MoveObject, jpg.handle, SD1, dcim)
    assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, jpg.handle).data).parent == dcim
    c.ok(OC.MoveObject, jpg.handle, SD2, 0)
    assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, jpg.handle).data).storage_id == SD2
    assert c.call(OC.MoveObject, dcim, SD1, cam.store.find("DCIM/100CANON").handle).code \
        == RC.InvalidParentObject


def test_object_prop_list(android) -> None:
    cam, c = android
    folder = cam.store.find("DCIM/100CANON")
    one = decode_prop_list(c.ok(OC.GetObjectPropList, folder.handle, 0, OPC.ObjectFileName, 0, 0).data)
    assert [(e.handle, e.value) for e in one] == [(folder.handle, "100CANON")]
    kids = decode_prop_list(c.ok(OC.GetObjectPropList, folder.handle, 0, ALL, 0, 1).data)
    names = {e.value for e in kids if e.prop == OPC.ObjectFileName}
    assert names == {"IMG_0001.JPG", "IMG_0001.CR3", "IMG_0002.JPG", "IMG_0002.CR3"}
    sizes = {e.handle: e.value for e in kids if e.prop == OPC.ObjectSize}
    assert all(cam.store.get(h).size == s for h, s in sizes.items())
    deep = decode_prop_list(c.ok(OC.GetObjectPropList, 0, 0, OPC.ObjectFileName, 0, ALL).data)
    assert len(deep) == 6
    roots = decode_prop_list(c.ok(OC.GetObjectPropList, 0, 0, OPC.ObjectFileName, 0, 1).data)
    assert [e.value for e in roots] == ["DCIM"]
    everything = decode_prop_list(c.ok(OC.GetObjectPropList, ALL, 0, OPC.ObjectSize, 0, 0).data)
    assert len(everything) == 6
    jpgs = decode_prop_list(c.ok(OC.GetObjectPropList, folder.handle, OFC.EXIF_JPEG,
                                 OPC.ObjectFileName, 0, 1).data)
    assert len(jpgs) == 2
    assert c.call(OC.GetObjectPropList, folder.handle, 0, ALL, 0, 2).code \
        == RC.SpecificationByDepthUnsupported
    assert c.call(OC.GetObjectPropList, folder.handle, 0, 0, 1, 0).code \
        == RC.SpecificationByGroupUnsupported
    assert c.call(OC.GetObjectPropList, 0x9999, 0, ALL, 0, 0).code == RC.InvalidObjectHandle
    info = DeviceInfo.decode(c.ok(OC.GetDeviceInfo).data)
    assert info.vendor_extension_id == 6 and "android.com" in info.vendor_extension_desc


# -- canon-eos ---------------------------------------------------------------------------------
def test_eos_profile_operations(eos) -> None:
    cam, c = eos
    di = DeviceInfo.decode(c.ok(OC.GetDeviceInfo).data)
    assert (di.vendor_extension_id, di.manufacturer, di.model) == (0xB, "Canon Inc.", "Canon EOS R6")
    assert OC.EOS_UpdateFirmware in di.operations_supported and 0x902F in di.operations_supported
    assert OC.GetDevicePropValue not in di.operations_supported
    assert c.call(OC.GetDevicePropValue, DPC.BatteryLevel).code == RC.OperationNotSupported
    assert c.call(OC.GetObjectPropList, 0, 0, ALL, 0, 1).code == RC.OperationNotSupported
    assert len(c.ok(OC.Canon_GetMacAddress).data) == 6
    c.ok(OC.EOS_KeepDeviceOn)
    assert c.call(OC.EOS_GetViewFinderData).code == RC.OperationNotSupported


def test_eos_listing_partial_and_events(eos) -> None:
    from ptpfs.protocol.eos import decode_eos_events, decode_object_info_ex
    cam, c = eos
    c.ok(OC.EOS_SetRemoteMode, 1)
    c.ok(OC.EOS_SetEventMode, 1)
    roots = decode_object_info_ex(c.ok(OC.EOS_GetObjectInfoEx, SD1, ALL, 0x100000).data)
    assert [e.filename for e in roots] == ["DCIM"]
    folder = cam.store.find("DCIM/100CANON")
    entries = decode_object_info_ex(c.ok(OC.EOS_GetObjectInfoEx, SD1, folder.handle, 0x100000).data)
    assert [(e.filename, e.size, e.parent) for e in entries] == [
        (o.name, o.size, folder.handle) for o in cam.store.children(SD1, folder.handle)]
    wide = decode_object_info_ex(c.ok(OC.Canon_GetObjectInfoEx64, SD1, folder.handle, 0x100000).data,
                                 wide=True)
    assert [e.size for e in wide] == [e.size for e in entries]
    cr3 = cam.store.find("DCIM/100CANON/IMG_0001.CR3")
    r = c.ok(OC.EOS_GetPartialObject, cr3.handle, 4096, 65536)
    assert r.data == cr3.read(4096, 65536)
    c.ok(OC.EOS_TransferComplete, cr3.handle)
    r = c.ok(OC.Canon_GetPartialObject64, cr3.handle, 10, 0, 100)
    assert r.data == cr3.read(10, 100)
    # the first GetEvent after SetEventMode: the full property dump, as a real R6 sends
    dump = decode_eos_events(c.ok(OC.EOS_GetEvent).data)
    assert dump and all(r.type == EC.EOS_PropValueChanged for r in dump)
    values = {r.params[0]: r.data for r in dump}
    assert set(cam.properties.codes()) <= set(values)
    assert int.from_bytes(values[0xD116][:4], "little") == 0x80000453   # ModelID: EOS R6
    assert values[DPC.BatteryLevel] == cam.properties.encode_value(DPC.BatteryLevel)
    assert decode_eos_events(c.ok(OC.EOS_GetEvent).data) == []
    new = cam.take_photo(SD1, size=1234)
    c.ok(OC.DeleteObject, cr3.handle, 0)
    records = decode_eos_events(c.ok(OC.EOS_GetEvent).data)
    kinds = [(r.type, r.params[0]) for r in records]
    assert (EC.EOS_ObjectAddedEx, new) in kinds and (EC.EOS_ObjectRemoved, cr3.handle) in kinds
    added = next(r for r in records if r.type == EC.EOS_ObjectAddedEx)
    assert added.params[3] == 1234 and added.name.endswith(".JPG")
    assert decode_eos_events(c.ok(OC.EOS_GetEvent).data) == []


def _send_firmware(c: Client, name: str, firmware: bytes, chunk_len: int) -> list[int]:
    """Exactly as the seed's update_canon.py sends it."""
    field = name.encode() + b"\x00" * (32 - len(name))
    codes, sent = [], 0
    while sent < len(firmware):
        r = c.call(OC.EOS_UpdateFirmware, len(firmware), sent,
                   data=field + firmware[sent:sent + chunk_len])
        codes.append(r.code)
        if r.code != RC.OK:
            break
        sent += min(chunk_len, len(firmware) - sent)
    return codes


def test_firmware_update(eos) -> None:
    import hashlib
    import random
    cam, c = eos
    firmware = random.Random(3).randbytes(5_000_000)
    codes = _send_firmware(c, "EOSR6150.FIR", firmware, 0x200000 - 32)
    assert codes == [RC.OK] * 3
    assert cam.firmware is not None
    assert (cam.firmware.name, cam.firmware.length) == ("EOSR6150.FIR", len(firmware))
    assert cam.firmware.sha256 == hashlib.sha256(firmware).hexdigest()
    # wrong offset, changed name, changed total are refused
    field = b"EOSR6150.FIR".ljust(32, b"\x00")
    c.ok(OC.EOS_UpdateFirmware, 100, 0, data=field + b"a" * 10)
    assert c.call(OC.EOS_UpdateFirmware, 100, 20, data=field + b"b" * 10).code == RC.InvalidParameter
    c.ok(OC.EOS_UpdateFirmware, 100, 0, data=field + b"a" * 10)
    assert c.call(OC.EOS_UpdateFirmware, 100, 10,
                  data=b"OTHER.FIR".ljust(32, b"\x00") + b"b" * 10).code == RC.InvalidParameter
    c.ok(OC.EOS_UpdateFirmware, 100, 0, data=field + b"a" * 10)
    assert c.call(OC.EOS_UpdateFirmware, 200, 10, data=field + b"b" * 10).code == RC.InvalidParameter
    assert c.call(OC.EOS_UpdateFirmware, 100, 0, data=b"short").code == RC.InvalidParameter
    assert cam.firmware.length == len(firmware)


def test_unknown_operation_is_not_supported(client: Client) -> None:
    assert client.call(0x9999).code == RC.OperationNotSupported


def test_eos_property_dump_after_each_set_event_mode(eos) -> None:
    from ptpfs.protocol.eos import decode_eos_events
    cam, c = eos
    assert decode_eos_events(c.ok(OC.EOS_GetEvent).data) == []   # event mode not set yet
    c.ok(OC.EOS_SetEventMode, 1)
    first = decode_eos_events(c.ok(OC.EOS_GetEvent).data)
    assert len(first) == len({r.params[0] for r in first}) >= 10
    assert decode_eos_events(c.ok(OC.EOS_GetEvent).data) == []
    c.ok(OC.EOS_SetEventMode, 1)       # a client that sets it again gets the dump again
    assert len(decode_eos_events(c.ok(OC.EOS_GetEvent).data)) == len(first)


@pytest.mark.parametrize("uploads, folder_status", [(False, 1), (True, 0)])
def test_r6_folders_report_protection(uploads: bool, folder_status: int) -> None:
    cam = _make("canon-eos", uploads=uploads)
    c = Client(cam)
    try:
        c.open()
        dcim = cam.store.find("DCIM")
        img = cam.store.find("DCIM/100CANON/IMG_0001.JPG")
        assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, dcim.handle).data).protection_status \
            == folder_status
        assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, img.handle).data).protection_status == 0
        # reported only: the photos inside stay deletable, as on the camera
        c.ok(OC.DeleteObject, img.handle, 0)
    finally:
        c.close()
        cam.close()


def test_generic_folders_are_not_protected(camera, client) -> None:
    dcim = camera.store.find("DCIM")
    assert ObjectInfo.decode(client.ok(OC.GetObjectInfo, dcim.handle).data).protection_status == 0


def test_whole_object_profile_has_no_partial_reads() -> None:
    cam = _make("whole-object")
    c = Client(cam)
    try:
        c.open()
        di = DeviceInfo.decode(c.ok(OC.GetDeviceInfo).data)
        partial = {OC.GetPartialObject, OC.GetPartialObject64, OC.EOS_GetPartialObject,
                   OC.Canon_GetPartialObject64}
        assert not partial & set(di.operations_supported)
        img = cam.store.find("DCIM/100CANON/IMG_0001.JPG")
        assert c.call(OC.GetPartialObject, img.handle, 0, 100).code == RC.OperationNotSupported
        assert c.ok(OC.GetObject, img.handle).data == img.read(0, img.size)
    finally:
        c.close()
        cam.close()
