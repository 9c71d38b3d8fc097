"""The one exception hierarchy of ptpfs.

Every error the library raises derives from :class:`PTPError`.  The
filesystem maps these to ``errno`` values in exactly one place
(``ptpfs.fs.errmap``); the command line maps them to exit codes.
"""

from __future__ import annotations


class PTPError(Exception):
    """Root of every error raised by ptpfs.

    Two attributes say what a failed transaction left behind (a transport sets them on
    the instance when it knows better than the defaults):
    """

    #: False when the request never reached the device (its transaction ID may be reused).
    request_sent: bool = True
    #: True when every byte of a host-to-device data phase went out although the
    #: transaction failed (the object may have arrived complete: check by listing).
    data_delivered: bool = False


class ProtocolError(PTPError):
    """Malformed or unexpected bytes from a peer (truncated data, lying
    lengths, wrong transaction IDs, invalid strings, trailing garbage)."""


class ResponseError(PTPError):
    """The device answered a transaction with a response code other than OK."""

    def __init__(self, code: int, operation: int | None = None,
                 params: tuple[int, ...] = (), message: str | None = None) -> None:
        self.code = code
        self.operation = operation
        self.params = tuple(params)
        super().__init__(message or self._describe())

    @property
    def name(self) -> str:
        """The response code's name, e.g. ``InvalidObjectHandle``."""
        from ptpfs.protocol.codes import response_name

        return response_name(self.code)

    def _describe(self) -> str:
        from ptpfs.protocol.codes import operation_name

        what = f"{operation_name(self.operation)}: " if self.operation is not None else ""
        return f"{what}{self.name} (0x{self.code:04x})"


class TransportError(PTPError):
    """The link to the device failed."""


class ConnectionLost(TransportError):
    """The device went away (USB unplugged, socket closed)."""


class TransportTimeout(TransportError):
    """The device did not answer in time."""


class Interrupted(PTPError):
    """The caller gave up (a signal to the program that waits) before its request reached
    the device; nothing was sent."""


class TransactionInterrupted(TransportTimeout, Interrupted):
    """The caller gave up while its transaction was waiting for a silent device; the
    transaction was abandoned (the link is recovered as after a timeout)."""


class DeviceNotFound(PTPError):
    """No device matches the requested specification."""


class DeviceClaimed(TransportError):
    """The device is in use by another program (kernel driver, gvfs, gphoto2)."""


class DevicePermissionError(TransportError):
    """The operating system refused access to the device."""


class InvalidValue(PTPError, ValueError):
    """A value supplied by the user does not fit (property value, device spec, path)."""


class NotSupported(PTPError):
    """The device does not offer the operation this needs."""
