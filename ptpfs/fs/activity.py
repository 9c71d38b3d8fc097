"""One log line per user-visible device action (property writes, refused
uploads), on the ``ptpfs.activity`` logger, which ptpfs logs by default
(syslog/journal in the background).  Each line names the path and, for a
refusal, the camera's response (``StoreFull (0x200c)``)."""

from __future__ import annotations

import errno
import logging

from ptpfs.errors import ResponseError

log = logging.getLogger("ptpfs.activity")


def describe(exc: BaseException) -> str:
    """The camera's response name for a PTP refusal, else the error text."""
    if isinstance(exc, ResponseError):
        return str(exc)          # "SendObjectInfo: StoreFull (0x200c)"
    if isinstance(exc, OSError) and exc.errno:
        return f"{type(exc).__name__} ({errno.errorcode.get(exc.errno, exc.errno)})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def property_written(path: str, value: str, exc: BaseException | None = None) -> None:
    """Log a property write through *path*: done, or refused with the reason."""
    shown = " ".join(value.split())[:80]
    if exc is None:
        log.info("%s: set to %r", path, shown)
    else:
        log.warning("%s: setting %r refused: %s", path, shown, describe(exc))


def upload_failed(path: str, exc: BaseException) -> None:
    """Log an upload that did not reach the device (reported to the program at close)."""
    log.warning("%s: upload failed: %s", path, describe(exc))
