"""``ptpctl import DEST``: copy the camera's new shots into DEST (see
:mod:`ptpfs.services.importer` for what "new", resuming and verifying mean).

Prints one line per copied file (or, with ``--json``, one summary document),
a progress bar with files, bytes and ETA on a terminal, and ends with a
summary line.  Exit codes are ptpctl's; a file that could not be copied or
verified makes the exit code 1 after the others were imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ptpfs import connect
from ptpfs.cli.progress import ProgressBar, _human
from ptpfs.errors import PTPError
from ptpfs.services.importer import (
    DEFAULT_TEMPLATE,
    TEMPLATE_FIELDS,
    Importer,
    ImportOptions,
    parse_extensions,
    parse_since,
)


def build_import_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ptpctl import``."""
    from ptpfs.cli.ptpctl import EXIT_CODES_HELP, PROG, _Parser

    p = _Parser(prog=f"{PROG} import", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Copy the photos and videos not imported before from this camera "
                            "into DEST.  Remembers what was imported per camera serial number "
                            "in $XDG_STATE_HOME/ptpfs/imports; skips files DEST already has "
                            "(same name and size); resumes after an interruption.",
                epilog=f"template fields: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}\n\n"
                       + EXIT_CODES_HELP)
    p.add_argument("dest", metavar="DEST", help="destination folder")
    p.add_argument("--device", metavar="SPEC", help="device to use (default: usb)")
    p.add_argument("--profile", metavar="NAME", help="simulator profile for sim specs")
    p.add_argument("--timeout", metavar="SECONDS", type=float, help="per-transaction timeout")
    p.add_argument("--template", default=DEFAULT_TEMPLATE,
                   help=f"destination path under DEST (default {DEFAULT_TEMPLATE})")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="list what would be copied, copy nothing")
    p.add_argument("--ext", metavar="LIST", help="only these extensions, e.g. jpg,cr3")
    p.add_argument("--since", metavar="DATE", help="only files captured on/after DATE "
                   "(YYYY-MM-DD or YYYY-MM-DDTHH:MM)")
    p.add_argument("--verify", action="store_true",
                   help="read every file a second time and compare SHA-256 hashes")
    p.add_argument("--hash", action="store_true", dest="hash_existing",
                   help="a file already in DEST counts only if its SHA-256 matches too")
    p.add_argument("--move", action="store_true",
                   help="delete each file from the camera after its copy was verified "
                        "(implies --verify)")
    p.add_argument("--all", action="store_true", dest="everything",
                   help="ignore what earlier imports recorded (still skip files in DEST)")
    p.add_argument("--json", action="store_true", help="a JSON summary on stdout")
    p.add_argument("-v", "--debug", action="store_true", help="log every transaction to stderr")
    return p


def import_main(argv: Sequence[str]) -> int:
    """``ptpctl import``; returns the exit code."""
    from ptpfs.cli.exitcodes import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, UsageError
    from ptpfs.cli.ptpctl import PROG, _fail, _LogSetup

    parser = build_import_parser()
    try:
        args = parser.parse_args(list(argv))
        options = ImportOptions(
            template=args.template,
            extensions=parse_extensions(args.ext) if args.ext else frozenset(),
            since=parse_since(args.since) if args.since else None,
            dry_run=args.dry_run, verify=args.verify, hash_existing=args.hash_existing,
            move=args.move, everything=args.everything)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        return _fail(exc)
    except PTPError as exc:
        return _fail(exc)
    except SystemExit as exc:
        return int(exc.code or 0)
    importer: Importer | None = None
    bar: ProgressBar | None = None
    with _LogSetup(args.debug):
        try:
            session = connect.open_session(args.device or connect.default_spec(),
                                           profile=args.profile, timeout=args.timeout)
            try:
                bar = ProgressBar(None, "")

                def progress(files: int, nfiles: int, done: int, total: int, name: str) -> None:
                    assert bar is not None
                    bar.label = f"{min(files + 1, nfiles)}/{nfiles} {name}"[:40]
                    bar(done, total)

                importer = Importer(session, args.dest, options,
                                    progress=progress if bar.enabled else None)
                report = importer.run()
            finally:
                if bar is not None:
                    bar.close()
                session.close()
        except KeyboardInterrupt:
            _summary(importer, args, sys.stderr)
            print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (PTPError, OSError) as exc:
            _summary(importer, args, sys.stderr)
            code = _fail(exc)
            if importer is not None and importer.report.planned:
                print(f"{PROG}: run the same command again to resume", file=sys.stderr)
            return code
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        verb = "would copy" if options.dry_run else "copied"
        for entry in report.copied:
            print(f"{verb} {entry['camera_path']} -> {entry['dest']}")
        for entry in report.failed:
            print(f"{PROG}: {entry['camera_path']}: {entry['error']}", file=sys.stderr)
        _summary(importer, args, sys.stdout)
    return EXIT_ERROR if report.failed else EXIT_OK


def _summary(importer: Importer | None, args: Any, stream: Any) -> None:
    if importer is None or args.json and stream is sys.stdout:
        return
    r = importer.report
    rate = r.bytes_copied / r.seconds if r.seconds > 0 else 0.0
    verb = "would copy" if r.dry_run else "copied"
    n = r.planned_bytes if r.dry_run else r.bytes_copied
    print(f"{verb} {len(r.copied)} of {r.planned} new files ({_human(n)}"
          + ("" if r.dry_run else f", {_human(rate)}/s") + f"); "
          f"{r.skipped_imported} imported before, {r.skipped_existing} already in "
          f"{args.dest}" + (f", {len(r.failed)} failed" if r.failed else "")
          + (f", {r.deleted} deleted from the camera" if r.deleted else ""), file=stream)
