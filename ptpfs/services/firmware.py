"""Canon EOS firmware update: a file sent with EOS_UpdateFirmware (0x911F).

The file goes in data phases of 0x200000 bytes: each is the file's base name
in a 32-byte NUL-padded field followed by up to 0x200000-32 bytes of firmware,
with parameters [total length, offset].  The file is read one chunk at a time
(it never sits in memory whole) and the first non-OK response stops the
update.  Used by ``ptpctl firmware`` and ``scripts/update_canon_firmware.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ptpfs.errors import InvalidValue
from ptpfs.protocol.codes import OC
from ptpfs.session import Session

#: Size of each data phase (file-name field included).
PTP_DATA_LEN = 0x200000
#: The file-name field that starts every data phase.
FILENAME_LEN = 32
#: Firmware bytes per data phase.
FIRM_CHUNK_LEN = PTP_DATA_LEN - FILENAME_LEN


def filename_field(path: str) -> bytes:
    """The 32-byte NUL-padded field holding the file's base name."""
    name = os.path.basename(path).encode("utf-8")
    if not name or len(name) > FILENAME_LEN:
        raise InvalidValue(f"the firmware file name must be 1..{FILENAME_LEN} bytes "
                           f"(got {len(name)}): rename the file")
    return name.ljust(FILENAME_LEN, b"\0")


def send_firmware(session: Session, path: str, *,
                  progress: Callable[[int], object] | None = None,
                  phase: Callable[[str], object] | None = None) -> int:
    """Send *path* with EOS_UpdateFirmware; return the number of data phases.

    *progress(sent_bytes)* follows the transfer; *phase(text)* hears one line
    per data phase.  Raises :class:`~ptpfs.errors.ResponseError` on the first
    non-OK response.
    """
    header = filename_field(path)
    buf = bytearray(PTP_DATA_LEN)
    buf[:FILENAME_LEN] = header
    view = memoryview(buf)
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        if total == 0:
            raise InvalidValue(f"{path}: empty firmware file")
        if total > 0xFFFFFFFF:
            raise InvalidValue(f"{path}: larger than 4 GiB, the operation cannot address it")
        sent = phases = 0
        while sent < total:
            n = f.readinto(view[FILENAME_LEN:FILENAME_LEN + min(FIRM_CHUNK_LEN, total - sent)])
            if not n:
                raise InvalidValue(f"{path}: file shrank while it was being sent")
            if phase is not None:
                phase(f"transaction: file {os.path.basename(path)}, length {total}, "
                      f"offset {sent}, {n} bytes")
            result = session.transaction(OC.EOS_UpdateFirmware, [total, sent],
                                         senddata=view[:FILENAME_LEN + n])
            result.raise_for_status()
            sent += n
            phases += 1
            if progress is not None:
                progress(sent)
    return phases
