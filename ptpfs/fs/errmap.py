"""The one place where exceptions become ``errno`` values for FUSE.

Every Operations method runs inside :func:`fuse_errors`, so a library
exception never escapes into mfusepy (which would log it and answer EINVAL).
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator

from mfusepy import FuseOSError

from ptpfs.errors import (InvalidValue, NotSupported, PTPError, ProtocolError,
                          ResponseError, TransportError)

log = logging.getLogger("ptpfs.fs")

#: PTP/MTP response code -> errno.  Anything not listed is EIO.
RESPONSE_ERRNO: dict[int, int] = {
    0x2005: errno.ENOTSUP,    # OperationNotSupported
    0x2006: errno.EINVAL,     # ParameterNotSupported
    0x2008: errno.ENOENT,     # InvalidStorageID
    0x2009: errno.ENOENT,     # InvalidObjectHandle
    0x200A: errno.ENOTSUP,    # DevicePropNotSupported
    0x200B: errno.EINVAL,     # InvalidObjectFormatCode
    0x200C: errno.ENOSPC,     # StoreFull
    0x200D: errno.EACCES,     # ObjectWriteProtected
    0x200E: errno.EROFS,      # StoreReadOnly
    0x200F: errno.EACCES,     # AccessDenied
    0x2013: errno.ENODEV,     # StoreNotAvailable
    0x2019: errno.EBUSY,      # DeviceBusy
    0x201A: errno.ENOENT,     # InvalidParentObject
    0x201B: errno.EINVAL,     # InvalidDevicePropFormat
    0x201C: errno.EINVAL,     # InvalidDevicePropValue
    0x201D: errno.EINVAL,     # InvalidParameter
    0xA801: errno.ENOTSUP,    # InvalidObjectPropCode
    0xA802: errno.EINVAL,     # InvalidObjectPropFormat
    0xA803: errno.EINVAL,     # InvalidObjectPropValue
    0xA809: errno.EFBIG,      # ObjectTooLarge
}


OSERROR_CLASSES: tuple[tuple[type, int], ...] = (
    (FileNotFoundError, errno.ENOENT), (NotADirectoryError, errno.ENOTDIR),
    (IsADirectoryError, errno.EISDIR), (FileExistsError, errno.EEXIST),
    (PermissionError, errno.EACCES))


def errno_for(exc: BaseException) -> int:
    """The errno a program should see for *exc*."""
    if isinstance(exc, OSError):
        if isinstance(exc.errno, int) and exc.errno > 0:
            return exc.errno
        for cls, code in OSERROR_CLASSES:
            if isinstance(exc, cls):
                return code
    if isinstance(exc, ResponseError):
        return RESPONSE_ERRNO.get(exc.code, errno.EIO)
    if isinstance(exc, InvalidValue):
        return errno.EINVAL
    if isinstance(exc, NotSupported):
        return errno.ENOTSUP
    if isinstance(exc, (TransportError, ProtocolError, PTPError)):
        return errno.EIO
    return errno.EIO


@contextlib.contextmanager
def fuse_errors(what: str, path: str | None = None) -> Iterator[None]:
    """Turn any exception raised inside into a :class:`FuseOSError`."""
    try:
        yield
    except FuseOSError:
        raise
    except Exception as exc:  # noqa: BLE001 - this is the mapping point
        code = errno_for(exc)
        if isinstance(exc, (PTPError, ValueError)) and not isinstance(exc, OSError):
            level = logging.INFO if code in (errno.ENOENT, errno.EINVAL) else logging.WARNING
            log.log(level, "%s %s: %s -> %s", what, path or "", exc, errno.errorcode.get(code, code))
        elif not isinstance(exc, OSError):
            log.exception("%s %s: unexpected error", what, path or "")
        raise FuseOSError(code) from exc
