#!/usr/bin/env python3
"""Send a firmware file to a Canon EOS camera with EOS_UpdateFirmware (0x911F).

The miniPtp example, rewritten on the ptpfs library::

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

import argparse
import os
import sys
from typing import Sequence

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ptpfs import connect  # noqa: E402
from ptpfs.cli.progress import ProgressBar  # noqa: E402
from ptpfs.cli.ptpctl import EXIT_OK, error_exit_code  # noqa: E402
from ptpfs.errors import InvalidValue, NotSupported, PTPError  # noqa: E402
from ptpfs.protocol.codes import OC, render  # noqa: E402

PROG = "update_canon_firmware"
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


def send_firmware(session: object, path: str, *, verbose: bool = False) -> int:
    """Send *path* with EOS_UpdateFirmware; return the number of data phases.

    Raises :class:`ResponseError` on the first non-OK response.
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
        with ProgressBar(total, os.path.basename(path)) as bar:
            while sent < total:
                n = f.readinto(view[FILENAME_LEN:FILENAME_LEN + min(FIRM_CHUNK_LEN, total - sent)])
                if not n:
                    raise InvalidValue(f"{path}: file shrank while it was being sent")
                if verbose:
                    print(f"transaction: file {os.path.basename(path)}, length {total}, "
                          f"offset {sent}, {n} bytes", file=sys.stderr)
                result = session.transaction(  # type: ignore[attr-defined]
                    OC.EOS_UpdateFirmware, [total, sent], senddata=view[:FILENAME_LEN + n])
                result.raise_for_status()
                sent += n
                phases += 1
                bar(sent)
    return phases


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; returns the exit code."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("file", metavar="FILE", help="the firmware file (e.g. EOSR6150.FIR)")
    parser.add_argument("--device", metavar="SPEC",
                        help="usb[:…], ptpip:HOST[:PORT] or sim[?profile=canon-eos] "
                             "(default: the first USB camera)")
    parser.add_argument("--profile", metavar="NAME", default="canon-eos",
                        help="simulator profile for sim specs (default canon-eos)")
    parser.add_argument("--timeout", metavar="SECONDS", type=float,
                        help="per-transaction timeout")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per data phase")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)  # --help: 0, bad usage: 2
    try:
        filename_field(args.file)
        if not os.path.isfile(args.file):
            raise FileNotFoundError(f"{args.file}: no such file")
        spec = args.device or connect.default_spec()
        session = connect.open_session(spec, profile=args.profile, timeout=args.timeout,
                                       open=False)
        try:
            info = session.get_device_info()
            print(f"camera: {info.manufacturer} {info.model} {info.device_version}")
            if OC.EOS_UpdateFirmware not in info.operations_supported:
                raise NotSupported(f"the camera does not offer "
                                   f"{render('operation', OC.EOS_UpdateFirmware)}")
            print("update operation is supported")
            session.open()
            phases = send_firmware(session, args.file, verbose=args.verbose)
        finally:
            session.close()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (PTPError, OSError) as exc:
        code, message = error_exit_code(exc)
        print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
        return code
    print(f"done: sent {os.path.getsize(args.file)} bytes in {phases} data phases")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
