"""Code tables and display names (ptpfs.protocol.codes)."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.errors import ResponseError
from ptpfs.protocol.codes import (
    DPC,
    DT,
    EC,
    OC,
    OFC,
    OPC,
    RC,
    datatype_name,
    event_name,
    format_for_filename,
    format_name,
    object_prop_name,
    operation_name,
    property_name,
    render,
    response_name,
)

#: A listing in the seed tool's format, written for these tests (it lives in the repository).
SEED = Path(__file__).resolve().parent / "data" / "listing-eos.txt"
KINDS = ["operation", "response", "event", "property", "format", "objectprop", "datatype"]


def _seed_tokens(section: str) -> list[str]:
    lines = SEED.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == section)
    return lines[index + 1].split()


def test_every_operation_of_the_seed_listing_renders_exactly():
    tokens = _seed_tokens("+ operations_supported")
    assert len(tokens) >= 80
    for token in tokens:
        code = int(token.split("/")[0], 16)
        assert render("operation", code) == token


def test_every_property_of_the_seed_listing_renders_exactly():
    for token in _seed_tokens("+ device_prop_supported"):
        assert render("property", int(token.split("/")[0], 16)) == token


def test_seed_property_datatypes_render_like_the_listing():
    text = SEED.read_text(encoding="utf-8")
    for prop, dtype in re.findall(r"property_code: (0x[0-9a-f]+/\w+), datatype: (0x[0-9a-f]+/\w+)", text):
        assert render("property", int(prop.split("/")[0], 16)) == prop
        assert f"0x{int(dtype.split('/')[0], 16):x}/{datatype_name(int(dtype.split('/')[0], 16))}" == dtype


def test_operation_prefixes():
    assert operation_name(OC.GetDeviceInfo) == "PTP_GetDeviceInfo"
    assert operation_name(OC.GetObjectPropList) == "MTP_GetObjectPropList"
    assert operation_name(OC.SendObjectPropList) == "MTP_SendObjectPropList"
    assert operation_name(OC.GetPartialObject64) == "ANDROID_GetPartialObject64"
    assert operation_name(OC.EndEditObject) == "ANDROID_EndEditObject"
    assert operation_name(0x9109) == "EOS_GetObjectInfoEx"
    assert operation_name(0x911F) == "EOS_UpdateFirmware"
    assert operation_name(0x9033) == "Canon_GetMacAddress"
    assert OC.Canon_GetObjectInfoEx64 == 0x9173
    assert OC.EOS_GetPartialObjectEx == 0x912C


def test_standard_code_values():
    assert (RC.OK, RC.AccessDenied, RC.SessionAlreadyOpen, RC.TransactionCancelled) == \
        (0x2001, 0x200F, 0x201E, 0x201F)
    assert (RC.SpecificationByDepthUnsupported, RC.ObjectTooLarge, RC.InvalidDataset) == \
        (0xA808, 0xA809, 0xA806)
    assert (EC.ObjectAdded, EC.StorageInfoChanged, EC.ObjectPropChanged) == (0x4002, 0x400C, 0xC801)
    assert (EC.EOS_ObjectAddedEx, EC.EOS_ObjectRemoved, EC.EOS_PropValueChanged) == \
        (0xC181, 0xC182, 0xC189)
    assert (DPC.BatteryLevel, DPC.DateTime, DPC.ExposureIndex, DPC.DeviceFriendlyName,
            DPC.SessionInitiatorVersionInfo, DPC.PerceivedDeviceType, DPC.UsedDeviceState) == \
        (0x5001, 0x5011, 0x500F, 0xD402, 0xD406, 0xD407, 0xD303)
    assert (OFC.Association, OFC.EXIF_JPEG, OFC.CANON_CR3, OFC.MP4) == (0x3001, 0x3801, 0xB108, 0xB982)
    assert (OPC.ObjectSize, OPC.ObjectFileName, OPC.PersistentUniqueObjectIdentifier, OPC.Name) == \
        (0xDC04, 0xDC07, 0xDC41, 0xDC44)
    assert (DT.UINT128, DT.STR, DT.ARRAY) == (0x000A, 0xFFFF, 0x4000)


def test_names_of_each_kind():
    assert response_name(0x2001) == "OK"
    assert response_name(0x2009) == "InvalidObjectHandle"
    assert event_name(0x4002) == "ObjectAdded"
    assert property_name(0x5001) == "BatteryLevel"
    assert format_name(0x3801) == "EXIF_JPEG"
    assert format_name(0xB984) == "3GP"
    assert object_prop_name(0xDC07) == "ObjectFileName"
    assert datatype_name(DT.UINT8) == "uint8"
    assert datatype_name(DT.STR) == "str"
    assert datatype_name(DT.AUINT16) == "uint16[]"
    assert datatype_name(DT.AINT128) == "int128[]"


def test_unknown_codes_render_as_lowercase_hex():
    assert operation_name(0x902F) == "0x902f"
    assert render("operation", 0x902F) == "0x902f"
    assert render("operation", 0x911E) == "0x911e"
    assert response_name(0xA123) == "0xa123"
    assert render("event", 0x0001) == "0x0001"
    assert datatype_name(0x4000) == "0x4000"
    assert datatype_name(0x4FFF) == "0x4fff"
    assert render("operation", 0x9109) == "0x9109/EOS_GetObjectInfoEx"
    assert render("format", 0x12345) == "0x12345"


def test_render_rejects_unknown_kind():
    with pytest.raises(ValueError):
        render("colour", 1)


@given(st.sampled_from(KINDS), st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_render_never_fails(kind, code):
    text = render(kind, code)
    assert text.startswith(f"0x{code:04x}" if code <= 0xFFFF else f"0x{code:x}")


def test_response_error_uses_names():
    err = ResponseError(RC.AccessDenied, OC.SendObjectInfo)
    assert err.name == "AccessDenied"
    assert "PTP_SendObjectInfo" in str(err) and "0x200f" in str(err)


@pytest.mark.parametrize("name, code", [
    ("IMG_0001.JPG", OFC.EXIF_JPEG), ("a.jpeg", OFC.EXIF_JPEG), ("2U4A3378.CR3", OFC.CANON_CR3),
    ("x.cr2", OFC.CANON_CR2), ("DSC_1.NEF", OFC.TIFF_EP), ("DSC_1.ARW", OFC.SONY_RAW),
    ("DSCF1.RAF", OFC.TIFF_EP), ("x.dng", OFC.DNG), ("clip.MP4", OFC.MP4), ("clip.mov", OFC.QT),
    ("v.avi", OFC.AVI), ("s.wav", OFC.WAV), ("s.mp3", OFC.MP3), ("notes.txt", OFC.Text),
    ("p.png", OFC.PNG), ("p.tif", OFC.TIFF), ("p.TIFF", OFC.TIFF), ("g.gif", OFC.GIF),
    ("b.bmp", OFC.BMP), ("h.HEIC", OFC.HEIF), ("h.heif", OFC.HEIF),
    ("miniPtp.py", OFC.Undefined), ("README", OFC.Undefined), (".hidden", OFC.Undefined),
    ("archive.tar.gz", OFC.Undefined), ("", OFC.Undefined),
])
def test_format_for_filename(name, code):
    assert format_for_filename(name) == code
