"""``ptpctl firmware FILE``: send a firmware file to a Canon EOS camera.

The command line around :mod:`ptpfs.services.firmware` (EOS_UpdateFirmware,
0x911F); ``scripts/update_canon_firmware.py`` runs the same code.  Exit codes
are ptpctl's; 1 also means "the camera does not offer the firmware update
operation".  Use at your own risk: a real camera starts flashing once it has
the whole image.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ptpfs import connect
from ptpfs.cli.exitcodes import EXIT_OK, error_exit_code
from ptpfs.cli.progress import ProgressBar
from ptpfs.errors import NotSupported, PTPError
from ptpfs.protocol.codes import OC, render
from ptpfs.services.firmware import filename_field, send_firmware

DESCRIPTION = ("Send a firmware file to a Canon EOS camera with EOS_UpdateFirmware (0x911F). "
               "Use at your own risk: a real camera starts flashing once it has the whole image.")


def build_parser(prog: str = "ptpctl firmware") -> argparse.ArgumentParser:
    """The argument parser of ``ptpctl firmware``."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("file", metavar="FILE", help="the firmware file (e.g. EOSR6150.FIR)")
    parser.add_argument("--device", metavar="SPEC",
                        help="usb[:…], ptpip:HOST[:PORT] or sim[?profile=canon-eos] "
                             "(default: the first USB camera)")
    parser.add_argument("--profile", metavar="NAME", default="canon-eos",
                        help="simulator profile for sim specs (default canon-eos)")
    parser.add_argument("--timeout", metavar="SECONDS", type=float,
                        help="per-transaction timeout")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per data phase")
    return parser


def firmware_main(argv: Sequence[str] | None = None, prog: str = "ptpctl firmware") -> int:
    """Run the command; returns the exit code."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)  # --help: 0, bad usage: 2

    def phase(text: str) -> None:
        print(text, file=sys.stderr)

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
            with ProgressBar(os.path.getsize(args.file), os.path.basename(args.file)) as bar:
                phases = send_firmware(session, args.file, progress=bar,
                                       phase=phase if args.verbose else None)
        finally:
            session.close()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (PTPError, OSError) as exc:
        code, message = error_exit_code(exc)
        print(f"{prog}: {' '.join(message.split())}", file=sys.stderr)
        return code
    print(f"done: sent {os.path.getsize(args.file)} bytes in {phases} data phases")
    return EXIT_OK
