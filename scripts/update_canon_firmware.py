#!/usr/bin/env python3
"""Send a firmware file to a Canon EOS camera with EOS_UpdateFirmware (0x911F).

The miniPtp example, rewritten on the ptpfs library; the same code as
``ptpctl firmware`` (:mod:`ptpfs.cli.firmware`, :mod:`ptpfs.services.firmware`)::

    python3 scripts/update_canon_firmware.py --device usb EOSR6150.FIR
    python3 scripts/update_canon_firmware.py --device 'sim?profile=canon-eos' test.FIR

The camera must list 0x911F among its operations.  The file goes in data
phases of 0x200000 bytes: each is the file's base name in a 32-byte
NUL-padded field followed by up to 0x200000-32 bytes of firmware, with
parameters [total length, offset].  The file is read one chunk at a time (it
never sits in memory whole) and the first non-OK response stops the update.

Exit codes are ptpctl's (``ptpctl --help``); 1 also means "the camera does
not offer the firmware update operation".  Use at your own risk: a
real camera starts flashing once it has the whole image.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ptpfs.cli.firmware import firmware_main
from ptpfs.services.firmware import FILENAME_LEN, FIRM_CHUNK_LEN, PTP_DATA_LEN, filename_field, send_firmware  # noqa: F401

PROG = "update_canon_firmware"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; returns the exit code."""
    return firmware_main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
