"""PTP, MTP, Android and Canon code tables and their display names.

Constants live in small namespaces (``OC`` operations, ``RC`` responses, ``EC`` events, ``DPC`` device
properties, ``OFC`` object formats, ``OPC`` MTP object properties, ``DT`` datatypes).  Names follow
libgphoto2's ``camlibs/ptp2/ptp.h``; the Canon vendor operations carry the display names of the miniPtp
listing (``0x9109/EOS_GetObjectInfoEx``).  Unknown codes render as ``0x902f``; nothing here raises on an
unknown code.
"""

from __future__ import annotations

from collections.abc import Callable


class OC:
    """Operation codes."""

    Undefined = 0x1000
    GetDeviceInfo = 0x1001
    OpenSession = 0x1002
    CloseSession = 0x1003
    GetStorageIDs = 0x1004
    GetStorageInfo = 0x1005
    GetNumObjects = 0x1006
    GetObjectHandles = 0x1007
    GetObjectInfo = 0x1008
    GetObject = 0x1009
    GetThumb = 0x100A
    DeleteObject = 0x100B
    SendObjectInfo = 0x100C
    SendObject = 0x100D
    InitiateCapture = 0x100E
    FormatStore = 0x100F
    ResetDevice = 0x1010
    SelfTest = 0x1011
    SetObjectProtection = 0x1012
    PowerDown = 0x1013
    GetDevicePropDesc = 0x1014
    GetDevicePropValue = 0x1015
    SetDevicePropValue = 0x1016
    ResetDevicePropValue = 0x1017
    TerminateOpenCapture = 0x1018
    MoveObject = 0x1019
    CopyObject = 0x101A
    GetPartialObject = 0x101B
    InitiateOpenCapture = 0x101C
    # PTP 1.1
    StartEnumHandles = 0x101D
    EnumHandles = 0x101E
    StopEnumHandles = 0x101F
    GetVendorExtensionMaps = 0x1020
    GetVendorDeviceInfo = 0x1021
    GetResizedImageObject = 0x1022
    GetFilesystemManifest = 0x1023
    GetStreamInfo = 0x1024
    GetStream = 0x1025
    # MTP (displayed as MTP_*)
    GetObjectPropsSupported = 0x9801
    GetObjectPropDesc = 0x9802
    GetObjectPropValue = 0x9803
    SetObjectPropValue = 0x9804
    GetObjectPropList = 0x9805
    SetObjectPropList = 0x9806
    GetInterdependentPropDesc = 0x9807
    SendObjectPropList = 0x9808
    GetObjectReferences = 0x9810
    SetObjectReferences = 0x9811
    UpdateDeviceFirmware = 0x9812
    Skip = 0x9820
    # Android random I/O extension (displayed as ANDROID_*)
    GetPartialObject64 = 0x95C1
    SendPartialObject = 0x95C2
    TruncateObject = 0x95C3
    BeginEditObject = 0x95C4
    EndEditObject = 0x95C5
    # Canon / Canon EOS, display names as in the miniPtp listing of an EOS R6
    Canon_GetMacAddress = 0x9033
    Canon_InitiateEventProc_50 = 0x9050
    Canon_TerminateEventProc_51 = 0x9051
    Canon_InitiateEventProc_5c = 0x905C
    Canon_TerminateEventProc_5d = 0x905D
    Canon_IsNeoKabotanProcMode = 0x9060
    Canon_GetWebServiceSpec = 0x9068
    Canon_GetWebServiceData = 0x9069
    Canon_SetWebServiceData = 0x906A
    Canon_DeleteWebServiceData = 0x906B
    Canon_GetRootCertificateSpec = 0x906C
    Canon_GetRootCertificateData = 0x906D
    Canon_SetRootCertificateData = 0x906E
    Canon_DeleteRootCertificateData = 0x906F
    Canon_GetTranscodeApproxSize = 0x9077
    Canon_RequestTranscodeStart = 0x9078
    Canon_RequestTranscodeCancel = 0x9079
    EOS_GetStorageIDs = 0x9101
    EOS_GetStorageInfo = 0x9102
    EOS_GetObjectInfo = 0x9103
    EOS_GetObject = 0x9104
    EOS_DeleteObject = 0x9105
    EOS_FormatStore = 0x9106
    EOS_GetPartialObject = 0x9107
    EOS_GetDeviceInfoEx = 0x9108
    EOS_GetObjectInfoEx = 0x9109
    EOS_GetThumbEx = 0x910A
    EOS_SetObjectAttributes = 0x910C
    EOS_Remote_Release = 0x910F
    EOS_SetDevicePropValueEx = 0x9110
    EOS_SetRemoteMode = 0x9114
    EOS_SetEventMode = 0x9115
    EOS_GetEvent = 0x9116
    EOS_TransferComplete = 0x9117
    EOS_CancelTransfer = 0x9118
    EOS_PCHDDCapacity = 0x911A
    EOS_SetUILock = 0x911B
    EOS_ResetUILock = 0x911C
    EOS_KeepDeviceOn = 0x911D
    EOS_UpdateFirmware = 0x911F
    EOS_RemoteReleaseOn = 0x9128
    EOS_RemoteReleaseOff = 0x9129
    EOS_GetPartialObjectEx = 0x912C
    EOS_EndGetPartialObjectEx = 0x9132
    EOS_GetCTGInfo = 0x9135
    EOS_GetLensAdjust = 0x9136
    EOS_SetRequestOLCInfoGroup = 0x913D
    EOS_GetCameraSupport = 0x913F
    EOS_RequestInnerDevelopStart = 0x9141
    EOS_RequestInnerDevelopEnd = 0x9143
    EOS_GetGpsLoggingData = 0x9144
    EOS_GetGpsLogCurrentHandle = 0x9145
    EOS_SetImageRecoveryData = 0x9146
    EOS_FormatRecoveryData = 0x9148
    EOS_GetPresetLensAdjustParam = 0x9149
    EOS_GetRawDispImage = 0x914A
    EOS_SaveImageRecoveryData = 0x914B
    EOS_DrivePowerZoom = 0x914D
    EOS_GetIptcData = 0x914F
    EOS_SetIptcData = 0x9150
    EOS_GetViewFinderData = 0x9153
    EOS_DoAutoFocus = 0x9154
    EOS_DriveLens = 0x9155
    Canon_ClickWB = 0x9157
    Canon_Zoom = 0x9158
    Canon_ZoomPosition = 0x9159
    Canon_SetLiveAFFrame = 0x915A
    Canon_TouchAfPosition = 0x915B
    Canon_SetLvPcFlavoreditMode = 0x915C
    Canon_SetLvPcFlavoreditParam = 0x915D
    Canon_AFCancel = 0x9160
    Canon_SetImageRecoveryDataEx = 0x916B
    Canon_GetImageRecoveryListEx = 0x916C
    Canon_CompleteAutoSendImages = 0x916D
    Canon_NotifyAutoTransferStatus = 0x916E
    Canon_GetReducedObject = 0x916F
    Canon_GetObjectInfo64 = 0x9170
    Canon_GetObject64 = 0x9171
    Canon_GetPartialObject64 = 0x9172
    Canon_GetObjectInfoEx64 = 0x9173
    Canon_GetPartialObjectEx64 = 0x9174
    Canon_NotifySaveComplete = 0x9177
    Canon_GetTranscodedBlock = 0x9178
    Canon_TransferCompleteTranscodedBlock = 0x9179
    Canon_NotifyEstimateNumberofImport = 0x9182
    Canon_NotifyNumberofImported = 0x9183
    Canon_NotifySizeOfPartialDataTransfer = 0x9184
    Canon_NotifyFinish = 0x9185
    EOS_GetWftData = 0x9186
    EOS_SetWftData = 0x9187
    EOS_ChangeWftSettingNum = 0x9188
    EOS_GetPictureStylePCFlavorParam = 0x9189
    Canon_SetFELock = 0x91B9
    EOS_DeleteWftSettingNum = 0x91BA
    Canon_SendCertData = 0x91D4
    Canon_DistinctionRTC = 0x91D7
    Canon_NotifyGpsTimeSyncStatus = 0x91D8
    Canon_NotifyAdapterStatus = 0x91E6
    Canon_ceresNotifyNetworkError = 0x91E8
    Canon_AdapterTransferProgress = 0x91E9
    Canon_ceresSEndWpsPinCode = 0x91EC
    Canon_TransferComplete2 = 0x91F0
    Canon_CancelTransfer2 = 0x91F1


class RC:
    """Response codes."""

    Undefined = 0x2000
    OK = 0x2001
    GeneralError = 0x2002
    SessionNotOpen = 0x2003
    InvalidTransactionID = 0x2004
    OperationNotSupported = 0x2005
    ParameterNotSupported = 0x2006
    IncompleteTransfer = 0x2007
    InvalidStorageID = 0x2008
    InvalidObjectHandle = 0x2009
    DevicePropNotSupported = 0x200A
    InvalidObjectFormatCode = 0x200B
    StoreFull = 0x200C
    ObjectWriteProtected = 0x200D
    StoreReadOnly = 0x200E
    AccessDenied = 0x200F
    NoThumbnailPresent = 0x2010
    SelfTestFailed = 0x2011
    PartialDeletion = 0x2012
    StoreNotAvailable = 0x2013
    SpecificationByFormatUnsupported = 0x2014
    NoValidObjectInfo = 0x2015
    InvalidCodeFormat = 0x2016
    UnknownVendorCode = 0x2017
    CaptureAlreadyTerminated = 0x2018
    DeviceBusy = 0x2019
    InvalidParentObject = 0x201A
    InvalidDevicePropFormat = 0x201B
    InvalidDevicePropValue = 0x201C
    InvalidParameter = 0x201D
    SessionAlreadyOpen = 0x201E
    TransactionCancelled = 0x201F
    SpecificationOfDestinationUnsupported = 0x2020
    InvalidEnumHandle = 0x2021
    NoStreamEnabled = 0x2022
    InvalidDataSet = 0x2023
    # MTP
    MTP_Undefined = 0xA800
    InvalidObjectPropCode = 0xA801
    InvalidObjectPropFormat = 0xA802
    InvalidObjectPropValue = 0xA803
    InvalidObjectReference = 0xA804
    GroupNotSupported = 0xA805
    InvalidDataset = 0xA806
    SpecificationByGroupUnsupported = 0xA807
    SpecificationByDepthUnsupported = 0xA808
    ObjectTooLarge = 0xA809
    ObjectPropNotSupported = 0xA80A


class EC:
    """Event codes."""

    Undefined = 0x4000
    CancelTransaction = 0x4001
    ObjectAdded = 0x4002
    ObjectRemoved = 0x4003
    StoreAdded = 0x4004
    StoreRemoved = 0x4005
    DevicePropChanged = 0x4006
    ObjectInfoChanged = 0x4007
    DeviceInfoChanged = 0x4008
    RequestObjectTransfer = 0x4009
    StoreFull = 0x400A
    DeviceReset = 0x400B
    StorageInfoChanged = 0x400C
    CaptureComplete = 0x400D
    UnreportedStatus = 0x400E
    # MTP
    ObjectPropChanged = 0xC801
    ObjectPropDescChanged = 0xC802
    ObjectReferencesChanged = 0xC803
    # Canon EOS (records of EOS_GetEvent, see eos.py)
    EOS_RequestGetEvent = 0xC101
    EOS_ObjectAddedEx = 0xC181
    EOS_ObjectRemoved = 0xC182
    EOS_RequestGetObjectInfoEx = 0xC183
    EOS_StorageStatusChanged = 0xC184
    EOS_StorageInfoChanged = 0xC185
    EOS_RequestObjectTransfer = 0xC186
    EOS_ObjectInfoChangedEx = 0xC187
    EOS_ObjectContentChanged = 0xC188
    EOS_PropValueChanged = 0xC189
    EOS_AvailListChanged = 0xC18A
    EOS_CameraStatusChanged = 0xC18B
    EOS_WillSoonShutdown = 0xC18D
    EOS_ShutdownTimerUpdated = 0xC18E
    EOS_StoreAdded = 0xC192
    EOS_StoreRemoved = 0xC193
    EOS_ObjectAddedEx64 = 0xC1A7
    EOS_ObjectInfoChangedEx64 = 0xC1A8
    EOS_RequestObjectTransfer64 = 0xC1A9


class DPC:
    """Device property codes."""

    Undefined = 0x5000
    BatteryLevel = 0x5001
    FunctionalMode = 0x5002
    ImageSize = 0x5003
    CompressionSetting = 0x5004
    WhiteBalance = 0x5005
    RGBGain = 0x5006
    FNumber = 0x5007
    FocalLength = 0x5008
    FocusDistance = 0x5009
    FocusMode = 0x500A
    ExposureMeteringMode = 0x500B
    FlashMode = 0x500C
    ExposureTime = 0x500D
    ExposureProgramMode = 0x500E
    ExposureIndex = 0x500F
    ExposureBiasCompensation = 0x5010
    DateTime = 0x5011
    CaptureDelay = 0x5012
    StillCaptureMode = 0x5013
    Contrast = 0x5014
    Sharpness = 0x5015
    DigitalZoom = 0x5016
    EffectMode = 0x5017
    BurstNumber = 0x5018
    BurstInterval = 0x5019
    TimelapseNumber = 0x501A
    TimelapseInterval = 0x501B
    FocusMeteringMode = 0x501C
    UploadURL = 0x501D
    Artist = 0x501E
    CopyrightInfo = 0x501F
    SupportedStreams = 0x5020
    EnabledStreams = 0x5021
    VideoFormat = 0x5022
    VideoResolution = 0x5023
    VideoQuality = 0x5024
    VideoFrameRate = 0x5025
    VideoContrast = 0x5026
    VideoBrightness = 0x5027
    AudioFormat = 0x5028
    AudioBitrate = 0x5029
    AudioSamplingRate = 0x502A
    AudioBitPerSample = 0x502B
    AudioVolume = 0x502C
    # Canon (as named by the miniPtp listing of an EOS R6)
    UsedDeviceState = 0xD303
    # MTP
    SecureTime = 0xD101
    DeviceCertificate = 0xD102
    RevocationInfo = 0xD103
    SynchronizationPartner = 0xD401
    DeviceFriendlyName = 0xD402
    VolumeLevel = 0xD403
    DeviceIcon = 0xD405
    SessionInitiatorVersionInfo = 0xD406
    PerceivedDeviceType = 0xD407
    PlaybackRate = 0xD410
    PlaybackObject = 0xD411
    PlaybackContainerIndex = 0xD412
    PlaybackPosition = 0xD413


class OFC:
    """Object format codes."""

    Undefined = 0x3000
    Association = 0x3001
    Script = 0x3002
    Executable = 0x3003
    Text = 0x3004
    HTML = 0x3005
    DPOF = 0x3006
    AIFF = 0x3007
    WAV = 0x3008
    MP3 = 0x3009
    AVI = 0x300A
    MPEG = 0x300B
    ASF = 0x300C
    QT = 0x300D
    UndefinedImage = 0x3800
    EXIF_JPEG = 0x3801
    TIFF_EP = 0x3802
    FlashPix = 0x3803
    BMP = 0x3804
    CIFF = 0x3805
    GIF = 0x3807
    JFIF = 0x3808
    PCD = 0x3809
    PICT = 0x380A
    PNG = 0x380B
    TIFF = 0x380D
    TIFF_IT = 0x380E
    JP2 = 0x380F
    JPX = 0x3810
    DNG = 0x3811
    # vendor formats
    CANON_CRW = 0xB101
    SONY_RAW = 0xB101          # same code as CANON_CRW (vendor-specific range)
    CANON_CR2 = 0xB103         # libgphoto2: PTP_OFC_CANON_CRW3, used for .CR2
    CANON_MOV = 0xB104
    CANON_MOV2 = 0xB105
    CANON_CR3 = 0xB108
    HEIF = 0xB110              # as reported by Sony bodies (no standard PTP code exists)
    # MTP
    MTP_Firmware = 0xB802
    MTP_WindowsImageFormat = 0xB881
    MTP_UndefinedAudio = 0xB900
    WMA = 0xB901
    OGG = 0xB902
    AAC = 0xB903
    AudibleCodec = 0xB904
    FLAC = 0xB906
    MTP_UndefinedVideo = 0xB980
    WMV = 0xB981
    MP4 = 0xB982
    MP2 = 0xB983
    _3GP = 0xB984
    AbstractAudioVideoPlaylist = 0xBA05
    M3UPlaylist = 0xBA11
    MTP_UndefinedDocument = 0xBA80
    AbstractDocument = 0xBA81
    XMLDocument = 0xBA82


class OPC:
    """MTP object property codes."""

    StorageID = 0xDC01
    ObjectFormat = 0xDC02
    ProtectionStatus = 0xDC03
    ObjectSize = 0xDC04
    AssociationType = 0xDC05
    AssociationDesc = 0xDC06
    ObjectFileName = 0xDC07
    DateCreated = 0xDC08
    DateModified = 0xDC09
    Keywords = 0xDC0A
    ParentObject = 0xDC0B
    AllowedFolderContents = 0xDC0C
    Hidden = 0xDC0D
    SystemObject = 0xDC0E
    PersistentUniqueObjectIdentifier = 0xDC41
    SyncID = 0xDC42
    PropertyBag = 0xDC43
    Name = 0xDC44
    CreatedBy = 0xDC45
    Artist = 0xDC46
    DateAuthored = 0xDC47
    Description = 0xDC48
    URLReference = 0xDC49
    LanguageLocale = 0xDC4A
    CopyrightInformation = 0xDC4B
    Source = 0xDC4C
    OriginLocation = 0xDC4D
    DateAdded = 0xDC4E
    NonConsumable = 0xDC4F
    CorruptUnplayable = 0xDC50
    Width = 0xDC87
    Height = 0xDC88
    Duration = 0xDC89
    DisplayName = 0xDCE0


class DT:
    """Datatype codes."""

    UNDEF = 0x0000
    INT8 = 0x0001
    UINT8 = 0x0002
    INT16 = 0x0003
    UINT16 = 0x0004
    INT32 = 0x0005
    UINT32 = 0x0006
    INT64 = 0x0007
    UINT64 = 0x0008
    INT128 = 0x0009
    UINT128 = 0x000A
    ARRAY = 0x4000
    AINT8 = 0x4001
    AUINT8 = 0x4002
    AINT16 = 0x4003
    AUINT16 = 0x4004
    AINT32 = 0x4005
    AUINT32 = 0x4006
    AINT64 = 0x4007
    AUINT64 = 0x4008
    AINT128 = 0x4009
    AUINT128 = 0x400A
    STR = 0xFFFF


#: Association types (ObjectInfo.association_type).
ASSOCIATION_GENERIC_FOLDER = 0x0001
#: StorageInfo access capabilities.
ACCESS_READ_WRITE = 0
ACCESS_READ_ONLY = 1
ACCESS_READ_ONLY_WITH_DELETE = 2
#: Vendor extension IDs (DeviceInfo.vendor_extension_id).
VENDOR_MICROSOFT = 0x00000006
VENDOR_CANON = 0x0000000B

#: "The storage's root folder" as an operation parameter (GetObjectHandles,
#: SendObjectInfo, MoveObject, GetObjectInfoEx …).  Devices report a root
#: object's parent as 0 or as this.  Inside ptpfs the root folder is 0:
#: :func:`wire_parent` and :func:`norm_parent` are the one conversion.
ROOT_PARENT = 0xFFFFFFFF


def wire_parent(parent: int | None) -> int:
    """ptpfs's parent handle (0 or ``None`` = the storage root) as a PTP parameter."""
    return parent or ROOT_PARENT


def norm_parent(parent: int) -> int:
    """A parent handle from a device (0 or 0xFFFFFFFF = the storage root) as ptpfs's (0)."""
    return 0 if parent in (0, ROOT_PARENT) else parent


def _table(namespace: type,
           display: Callable[[str, int], str] = lambda name, code: name) -> dict[int, str]:
    """code -> display name; the first attribute defined for a code wins."""
    table: dict[int, str] = {}
    for name, code in vars(namespace).items():
        if name.startswith("__") or not isinstance(code, int):
            continue
        table.setdefault(code, display(name.lstrip("_"), code))
    return table


def _operation_display(name: str, code: int) -> str:
    if name.startswith(("Canon_", "EOS_")):
        return name
    if 0x9800 <= code <= 0x98FF:
        return "MTP_" + name
    if 0x95C1 <= code <= 0x95C5:
        return "ANDROID_" + name
    return "PTP_" + name


_OPERATIONS = _table(OC, _operation_display)
_RESPONSES = _table(RC)
_EVENTS = _table(EC)
_PROPERTIES = _table(DPC)
_FORMATS = _table(OFC)
_OBJECT_PROPS = _table(OPC)

_BASE_TYPES = {
    DT.UNDEF: "undef", DT.INT8: "int8", DT.UINT8: "uint8", DT.INT16: "int16", DT.UINT16: "uint16",
    DT.INT32: "int32", DT.UINT32: "uint32", DT.INT64: "int64", DT.UINT64: "uint64",
    DT.INT128: "int128", DT.UINT128: "uint128",
}


def _hex(code: int) -> str:
    return f"0x{code:04x}"


def _lookup(table: dict[int, str], code: int) -> str:
    if not isinstance(code, int):
        return repr(code)
    return table.get(code) or _hex(code)


def operation_name(code: int) -> str:
    """``PTP_GetDeviceInfo``, ``EOS_GetObjectInfoEx``, ``MTP_GetObjectPropList``; unknown: ``0x902f``."""
    return _lookup(_OPERATIONS, code)


def response_name(code: int) -> str:
    """``OK``, ``InvalidObjectHandle``; unknown: ``0xa123``."""
    return _lookup(_RESPONSES, code)


def event_name(code: int) -> str:
    """``ObjectAdded``, ``EOS_ObjectAddedEx``; unknown: hex."""
    return _lookup(_EVENTS, code)


def property_name(code: int) -> str:
    """``BatteryLevel``, ``DeviceFriendlyName``; unknown: hex."""
    return _lookup(_PROPERTIES, code)


def format_name(code: int) -> str:
    """``EXIF_JPEG``, ``Association``, ``CANON_CR3``; unknown: hex."""
    return _lookup(_FORMATS, code)


def object_prop_name(code: int) -> str:
    """``ObjectFileName``, ``ObjectSize``; unknown: hex."""
    return _lookup(_OBJECT_PROPS, code)


def datatype_name(code: int) -> str:
    """``uint8``, ``str``, ``uint16[]``; unknown: hex."""
    if not isinstance(code, int):
        return repr(code)
    if code == DT.STR:
        return "str"
    if code in _BASE_TYPES:
        return _BASE_TYPES[code]
    if code & DT.ARRAY and (code & ~DT.ARRAY) in _BASE_TYPES and code & ~DT.ARRAY:
        return _BASE_TYPES[code & ~DT.ARRAY] + "[]"
    return _hex(code)


_KINDS = {
    "operation": operation_name,
    "response": response_name,
    "event": event_name,
    "property": property_name,
    "format": format_name,
    "objectprop": object_prop_name,
    "datatype": datatype_name,
}


def render(kind: str, code: int) -> str:
    """``0x9109/EOS_GetObjectInfoEx``, or just ``0x902f`` when the code has no name.

    ``kind`` is one of ``operation response event property format objectprop datatype``.
    """
    try:
        namer = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown code kind {kind!r}") from None
    name = namer(code)
    if not isinstance(code, int):
        return name
    hexed = f"0x{code:x}" if code > 0xFFFF else _hex(code)
    if name == _hex(code):
        return hexed
    return f"{hexed}/{name}"


_EXTENSIONS = {
    "jpg": OFC.EXIF_JPEG, "jpeg": OFC.EXIF_JPEG, "jpe": OFC.EXIF_JPEG,
    "cr3": OFC.CANON_CR3, "cr2": OFC.CANON_CR2, "crw": OFC.CANON_CRW,
    # camera raw without a registered PTP code: TIFF/EP is the standard code for raw files
    "nef": OFC.TIFF_EP, "nrw": OFC.TIFF_EP, "raf": OFC.TIFF_EP, "orf": OFC.TIFF_EP,
    "rw2": OFC.TIFF_EP, "pef": OFC.TIFF_EP,
    "arw": OFC.SONY_RAW, "dng": OFC.DNG,
    "mp4": OFC.MP4, "m4v": OFC.MP4, "mov": OFC.QT, "avi": OFC.AVI, "mpg": OFC.MPEG, "mpeg": OFC.MPEG,
    "wav": OFC.WAV, "mp3": OFC.MP3, "aif": OFC.AIFF, "aiff": OFC.AIFF, "wma": OFC.WMA, "wmv": OFC.WMV,
    "ogg": OFC.OGG, "flac": OFC.FLAC, "aac": OFC.AAC, "3gp": OFC._3GP,
    "txt": OFC.Text, "htm": OFC.HTML, "html": OFC.HTML, "xml": OFC.XMLDocument,
    "png": OFC.PNG, "tif": OFC.TIFF, "tiff": OFC.TIFF, "gif": OFC.GIF, "bmp": OFC.BMP,
    "heif": OFC.HEIF, "heic": OFC.HEIF, "hif": OFC.HEIF, "jp2": OFC.JP2,
}


def format_for_filename(name: str) -> int:
    """The object format code for a file name, by extension (case-insensitive); ``Undefined`` otherwise."""
    base = name.rsplit("/", 1)[-1].lstrip(".")
    ext = base.rpartition(".")[2].lower() if "." in base else ""
    return _EXTENSIONS.get(ext, OFC.Undefined)
