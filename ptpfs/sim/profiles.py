"""Device profiles: what the simulated camera says it is and which operations it offers.

* ``generic``: a plain PTP camera (no MTP object properties, 32-bit partial reads).
* ``canon-eos``: a Canon EOS R6: its exact operations list, EOS listing, partial reads,
  polled events and firmware update.  Listed operations the simulator does not
  implement answer ``OperationNotSupported``, except a few harmless ones answered ``OK``.
  Like the real R6 it refuses uploads from a PC (SendObjectInfo answers AccessDenied)
  unless the camera is made with ``uploads=True`` (spec ``sim?profile=canon-eos&uploads=1``,
  ``ptpctl serve --allow-uploads``); its folders report ProtectionStatus 1 (read-only) as
  R6 listings show; its first EOS GetEvent after SetEventMode carries the full property dump.
* ``android-mtp``: an Android phone in MTP mode: object property lists, 64-bit partial
  reads, rename via ObjectFileName, MoveObject.
* ``whole-object``: a plain PTP camera with no partial reads at all (GetObject of a whole
  object only, like many older PowerShots and phones in PTP mode).

An operation that is not in the profile's list answers ``OperationNotSupported``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptpfs.protocol.codes import DPC, EC, OC, OFC


@dataclass(frozen=True)
class Profile:
    """Everything GetDeviceInfo reports, plus behaviour switches."""

    name: str
    operations: tuple[int, ...]
    events: tuple[int, ...]
    properties: tuple[int, ...]
    vendor_extension_id: int
    vendor_extension_version: int
    vendor_extension_desc: str
    manufacturer: str
    model: str
    device_version: str
    serial_number: str
    capture_formats: tuple[int, ...]
    image_formats: tuple[int, ...]
    eos_events: bool = False          # queue EOS GetEvent records
    pc_uploads: bool = True           # SendObjectInfo accepted (False: AccessDenied)
    folder_protection: int = 0        # ProtectionStatus reported for folders
    noop_operations: frozenset[int] = frozenset()   # listed, answered OK and ignored


_STANDARD_OPS = (
    OC.GetDeviceInfo, OC.OpenSession, OC.CloseSession, OC.GetStorageIDs, OC.GetStorageInfo,
    OC.GetNumObjects, OC.GetObjectHandles, OC.GetObjectInfo, OC.GetObject, OC.GetThumb,
    OC.DeleteObject, OC.SendObjectInfo, OC.SendObject, OC.GetDevicePropDesc,
    OC.GetDevicePropValue, OC.SetDevicePropValue, OC.ResetDevicePropValue, OC.GetPartialObject,
)
_STANDARD_EVENTS = (EC.ObjectAdded, EC.ObjectRemoved, EC.StoreAdded, EC.StoreRemoved,
                    EC.DevicePropChanged, EC.ObjectInfoChanged, EC.StorageInfoChanged)
_ALL_PROPS = (DPC.BatteryLevel, DPC.ImageSize, DPC.WhiteBalance, DPC.FNumber, DPC.ExposureTime,
              DPC.ExposureIndex, DPC.DateTime, DPC.DeviceFriendlyName)
_IMAGE_FORMATS = (OFC.Undefined, OFC.Association, OFC.EXIF_JPEG, OFC.JFIF, OFC.CANON_CR3,
                  OFC.MP4, OFC.Text)

#: The Canon EOS R6's OperationsSupported, as listed in the seed (miniPtp -o).
R6_OPERATIONS = (
    0x1001, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007, 0x1008, 0x1009, 0x100A, 0x100B,
    0x100C, 0x100D, 0x100F, 0x1014, 0x1016, 0x101B, 0x902F, 0x9033, 0x9050, 0x9051, 0x905C,
    0x905D, 0x9060, 0x9068, 0x9069, 0x906A, 0x906B, 0x906C, 0x906D, 0x906E, 0x906F, 0x9077,
    0x9078, 0x9079, 0x9101, 0x9102, 0x9103, 0x9104, 0x9105, 0x9106, 0x9107, 0x9108, 0x9109,
    0x910A, 0x910C, 0x910F, 0x9110, 0x9114, 0x9115, 0x9116, 0x9117, 0x9118, 0x911A, 0x911B,
    0x911C, 0x911D, 0x911E, 0x911F, 0x9122, 0x9123, 0x9124, 0x9127, 0x9128, 0x9129, 0x912B,
    0x912C, 0x912D, 0x912E, 0x912F, 0x9130, 0x9131, 0x9132, 0x9133, 0x9134, 0x9135, 0x9136,
    0x9137, 0x9138, 0x9139, 0x913A, 0x913B, 0x913C, 0x913D, 0x913E, 0x913F, 0x9140, 0x9141,
    0x9143, 0x9144, 0x9145, 0x9146, 0x9148, 0x9149, 0x914A, 0x914B, 0x914D, 0x914F, 0x9150,
    0x9153, 0x9154, 0x9155, 0x9157, 0x9158, 0x9159, 0x915A, 0x915B, 0x915C, 0x915D, 0x9160,
    0x9166, 0x916B, 0x916C, 0x916D, 0x916E, 0x916F, 0x9170, 0x9171, 0x9172, 0x9173, 0x9174,
    0x9177, 0x9178, 0x9179, 0x9180, 0x9181, 0x9182, 0x9183, 0x9184, 0x9185, 0x9186, 0x9187,
    0x9188, 0x9189, 0x918A, 0x91AE, 0x91AF, 0x91B9, 0x91BA, 0x91D3, 0x91D4, 0x91D5, 0x91D7,
    0x91D8, 0x91D9, 0x91DA, 0x91DB, 0x91DC, 0x91DD, 0x91DE, 0x91E1, 0x91E3, 0x91E6, 0x91E7,
    0x91E8, 0x91E9, 0x91EC, 0x91F0, 0x91F1,
)
#: The R6's DevicePropertiesSupported (seed listing).
R6_PROPERTIES = (DPC.BatteryLevel, DPC.UsedDeviceState, DPC.DeviceFriendlyName,
                 DPC.SessionInitiatorVersionInfo, DPC.PerceivedDeviceType)

GENERIC = Profile(
    name="generic", operations=_STANDARD_OPS, events=_STANDARD_EVENTS, properties=_ALL_PROPS,
    vendor_extension_id=0, vendor_extension_version=0, vendor_extension_desc="",
    manufacturer="ptpfs", model="Simulated PTP camera", device_version="1.0",
    serial_number="SIM000000001", capture_formats=(OFC.EXIF_JPEG,), image_formats=_IMAGE_FORMATS)

CANON_EOS = Profile(
    name="canon-eos", operations=R6_OPERATIONS,
    events=_STANDARD_EVENTS + (EC.EOS_RequestGetEvent, EC.EOS_ObjectAddedEx, EC.EOS_ObjectRemoved,
                               EC.EOS_PropValueChanged, EC.EOS_StoreAdded, EC.EOS_StoreRemoved),
    properties=R6_PROPERTIES,
    vendor_extension_id=0x0000000B, vendor_extension_version=100, vendor_extension_desc="",
    manufacturer="Canon Inc.", model="Canon EOS R6", device_version="3-1.5.0",
    serial_number="083021000123", capture_formats=(OFC.EXIF_JPEG, OFC.CANON_CR3),
    image_formats=_IMAGE_FORMATS, eos_events=True, pc_uploads=False, folder_protection=1,
    noop_operations=frozenset({OC.Canon_InitiateEventProc_50, OC.Canon_TerminateEventProc_51,
                               OC.Canon_InitiateEventProc_5c, OC.Canon_TerminateEventProc_5d,
                               OC.EOS_SetUILock, OC.EOS_ResetUILock, OC.EOS_KeepDeviceOn,
                               OC.EOS_CancelTransfer, OC.EOS_EndGetPartialObjectEx,
                               OC.EOS_RemoteReleaseOff}))

ANDROID_MTP = Profile(
    name="android-mtp",
    operations=_STANDARD_OPS + (
        OC.MoveObject, OC.GetObjectPropsSupported, OC.GetObjectPropDesc, OC.GetObjectPropValue,
        OC.SetObjectPropValue, OC.GetObjectPropList, OC.GetPartialObject64,
        OC.SendObjectPropList),
    events=_STANDARD_EVENTS, properties=_ALL_PROPS + (DPC.SynchronizationPartner,
                                                      DPC.PerceivedDeviceType),
    vendor_extension_id=0x00000006, vendor_extension_version=100,
    vendor_extension_desc="microsoft.com: 1.0; android.com: 1.0;",
    manufacturer="Google", model="Pixel (simulated)", device_version="1.0",
    serial_number="SIMANDROID0001", capture_formats=(), image_formats=_IMAGE_FORMATS)

WHOLE_OBJECT = Profile(
    name="whole-object",
    # no partial reads; the MTP ObjectSize property for the size of objects >= 4 GiB
    operations=tuple(op for op in _STANDARD_OPS if op != OC.GetPartialObject) + (
        OC.GetObjectPropsSupported, OC.GetObjectPropDesc, OC.GetObjectPropValue),
    events=_STANDARD_EVENTS, properties=(DPC.BatteryLevel, DPC.DateTime),
    vendor_extension_id=0, vendor_extension_version=0, vendor_extension_desc="",
    manufacturer="ptpfs", model="PTP camera (whole objects)", device_version="1.0",
    serial_number="SIMWHOLE0001", capture_formats=(OFC.EXIF_JPEG,), image_formats=_IMAGE_FORMATS)

PROFILES: dict[str, Profile] = {p.name: p for p in (GENERIC, CANON_EOS, ANDROID_MTP,
                                                    WHOLE_OBJECT)}


def get_profile(name: str) -> Profile:
    """The profile called *name*; ``ValueError`` listing the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown simulator profile {name!r} "
                         f"(choose from {', '.join(PROFILES)})") from None
