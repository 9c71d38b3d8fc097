"""Exit codes of ``ptpctl`` and ``ptpfs`` and the one-line message for an error.

Kept apart from ptpfs.cli.ptpctl so that ``ptpfs`` (the mount) does not import the whole
ptpctl command (its output formatting, services and argparse set-up) just to name an exit code.
"""

from __future__ import annotations

from ptpfs.errors import (
    ConnectionLost,
    DeviceClaimed,
    DeviceNotFound,
    DevicePermissionError,
    InvalidValue,
    NotSupported,
    PTPError,
    ResponseError,
    TransportError,
    TransportTimeout,
)
from ptpfs.protocol.codes import operation_name

EXIT_OK = 0
EXIT_ERROR = 1          # anything else (local file problems, unexpected device data)
EXIT_USAGE = 2          # bad command line or bad value (handle, property value, spec)
EXIT_NO_DEVICE = 3      # no camera found / nothing listening at the address
EXIT_BUSY = 4           # the device is claimed by another program
EXIT_PERMISSION = 5     # the OS refused access to the device
EXIT_PTP = 6            # the camera answered with a PTP error response
EXIT_LINK = 7           # connection lost or timed out mid-session
EXIT_INTERRUPTED = 130  # Ctrl-C

_BUSY_HINT = ("hint: if gvfs-gphoto2-volume-monitor holds it, unmount the camera with "
              "`gio mount -u gphoto2://…` (see `gio mount -l`), then retry")
_PERMISSION_HINT = ("hint: install the udev rule from the README (or libgphoto2's rules) "
                    "and replug the camera")


class UsageError(Exception):
    """A command-line problem (exit code 2)."""


def response_text(exc: ResponseError) -> str:
    """``Operation: ResponseName (0xCODE)`` for a device error response."""
    if exc.operation is None:
        return str(exc)
    op = operation_name(exc.operation).removeprefix("PTP_")
    return f"{op}: {exc.name} (0x{exc.code:04x})"


def error_exit_code(exc: BaseException) -> tuple[int, str]:
    """The exit code and one-line message for an exception."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, InvalidValue):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, ResponseError):
        return EXIT_PTP, response_text(exc)
    if isinstance(exc, DeviceNotFound):
        return EXIT_NO_DEVICE, str(exc)
    if isinstance(exc, DeviceClaimed):
        text = str(exc)
        return EXIT_BUSY, text if "gio mount -u" in text else f"{text}; {_BUSY_HINT}"
    if isinstance(exc, DevicePermissionError):
        return EXIT_PERMISSION, f"{exc}; {_PERMISSION_HINT}"
    if isinstance(exc, TransportTimeout):
        return EXIT_LINK, f"timed out: {exc}"
    if isinstance(exc, (ConnectionLost, TransportError)):
        return EXIT_LINK, f"connection lost: {exc}"
    if isinstance(exc, NotSupported):
        return EXIT_ERROR, f"not supported: {exc}"
    if isinstance(exc, PTPError):
        return EXIT_ERROR, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        text = exc.strerror if exc.filename and exc.strerror else str(exc)
        return EXIT_ERROR, f"{exc.filename}: {text}" if exc.filename else text
    return EXIT_ERROR, f"{type(exc).__name__}: {exc}"
