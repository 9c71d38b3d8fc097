"""The one place where exceptions become ``errno`` values for FUSE.

Every FUSE request that may reach the device runs inside :func:`fuse_errors`
(``PtpFs._op`` in :mod:`ptpfs.fs.operations`), so a library exception never
escapes into mfusepy (which would log it and answer EINVAL).  Requests
answered locally (xattrs, ``releasedir``) and the mount's ``init``/``destroy``
do not go through it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator

from mfusepy import FuseOSError

from ptpfs.errors import (
    Interrupted,
    InvalidValue,
    NotSupported,
    ProtocolError,
    PTPError,
    ResponseError,
    TransportError,
)
from ptpfs.protocol.codes import RC

log = logging.getLogger("ptpfs.fs")

#: PTP/MTP response code -> errno.  Anything not listed is EIO.
RESPONSE_ERRNO: dict[int, int] = {
    RC.OperationNotSupported: errno.ENOTSUP,
    RC.ParameterNotSupported: errno.EINVAL,
    RC.InvalidStorageID: errno.ENOENT,
    RC.InvalidObjectHandle: errno.ENOENT,
    RC.DevicePropNotSupported: errno.ENOTSUP,
    RC.InvalidObjectFormatCode: errno.EINVAL,
    RC.StoreFull: errno.ENOSPC,
    RC.ObjectWriteProtected: errno.EACCES,
    RC.StoreReadOnly: errno.EROFS,
    RC.AccessDenied: errno.EACCES,
    RC.StoreNotAvailable: errno.ENODEV,
    RC.DeviceBusy: errno.EBUSY,
    RC.InvalidParentObject: errno.ENOENT,
    RC.InvalidDevicePropFormat: errno.EINVAL,
    RC.InvalidDevicePropValue: errno.EINVAL,
    RC.InvalidParameter: errno.EINVAL,
    RC.InvalidObjectPropCode: errno.ENOTSUP,
    RC.InvalidObjectPropFormat: errno.EINVAL,
    RC.InvalidObjectPropValue: errno.EINVAL,
    RC.ObjectTooLarge: errno.EFBIG,
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
    if isinstance(exc, Interrupted):
        return errno.EINTR
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
    except Exception as exc:
        code = errno_for(exc)
        if isinstance(exc, (PTPError, ValueError)) and not isinstance(exc, OSError):
            level = logging.INFO if code in (errno.ENOENT, errno.EINVAL) else logging.WARNING
            log.log(level, "%s %s: %s -> %s", what, path or "", exc, errno.errorcode.get(code, code))
        elif not isinstance(exc, OSError):
            log.exception("%s %s: unexpected error", what, path or "")
        raise FuseOSError(code) from exc
