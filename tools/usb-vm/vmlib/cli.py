"""Command line of ``tools/usb-vm/usb-vm``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cache, qmp, runner

USAGE = """\
usb-vm [--mtp-dir DIR] [--umtp DIR | --sim-gadget PROFILE... [--sim-root DIR]] [--share DIR]...
       [--qmp SOCKET] [--trace PATTERN]... [--trace-file FILE]
       [--timeout S] [--mem MB] [--smp N] [-v] [--] COMMAND...
usb-vm prepare
usb-vm qmp SOCKET unplug|plug|status"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="usb-vm", usage=USAGE,
        description="Run COMMAND as root in a TCG guest that sees the host's files (read-only root "
                    "with a tmpfs overlay) and QEMU's emulated MTP device on a real Linux USB stack.")
    p.add_argument("--mtp-dir", type=Path, help="folder served by QEMU's usb-mtp device (read-write)")
    p.add_argument("--mtp-desc", default="ptpfs test MTP", help="usb-mtp desc= (storage description)")
    p.add_argument("--umtp", type=Path, metavar="DIR",
                   help="serve DIR (read-write, shared into the guest) with uMTP-Responder on a USB "
                        "gadget (dummy_hcd + FunctionFS) inside the guest")
    p.add_argument("--umtp-name", default="uMTP store", help="uMTP-Responder's storage name")
    p.add_argument("--sim-gadget", metavar="PROFILE", action="append", default=[],
                   help="serve ptpfs's simulated camera (this PROFILE: generic, canon-eos, "
                        "android-mtp, whole-object) as a real USB device on a FunctionFS gadget "
                        "inside the guest, with the profile's vendor/product IDs; repeatable "
                        "(one dummy USB bus per gadget)")
    p.add_argument("--sim-root", type=Path, metavar="DIR",
                   help="with --sim-gadget: serve DIR (read-write, shared) instead of a sample card")
    p.add_argument("--share", type=Path, action="append", default=[],
                   help="host folder mounted read-write at the same path in the guest (repeatable)")
    p.add_argument("--qmp", type=Path, help="QMP unix socket to create (for 'usb-vm qmp')")
    p.add_argument("--trace", action="append", default=[], metavar="PATTERN",
                   help="enable QEMU trace events (e.g. 'usb_mtp_command'; globs allowed; repeatable; "
                        "'qemu-system-x86_64 -trace help' lists them); written to --trace-file")
    p.add_argument("--trace-file", type=Path,
                   help="where QEMU writes the trace events (default: usb-vm's stderr)")
    p.add_argument("--timeout", type=float, default=600.0, help="kill the guest after S seconds (exit 124)")
    p.add_argument("--mem", type=int, default=1024, help="guest memory in MiB")
    p.add_argument("--smp", type=int, default=1, help="guest CPUs (default 1: TCG boots faster and more reliably)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console and QEMU command")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="one word: a shell script run by /bin/sh -c; several words: a command and its arguments")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the guest command's exit status (124 timeout, 125 harness failure)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["qmp"]:
        return qmp.main(argv[1:])
    if argv[:1] == ["prepare"]:
        try:
            art = cache.prepare()
        except cache.PrepareError as exc:
            cache.log(str(exc))
            return runner.EXIT_HARNESS
        print(f"kernel {art.kernel}\ninitrd {art.initrd}\npreload {art.preload}")
        return 0
    args = _parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        _parser().error("no COMMAND given")
    if args.umtp is not None and args.sim_gadget:
        _parser().error("--umtp and --sim-gadget cannot be combined (one dummy USB controller)")
    if args.sim_root is not None and not args.sim_gadget:
        _parser().error("--sim-root needs --sim-gadget")
    for folder in [args.mtp_dir, args.umtp, args.sim_root, *args.share]:
        if folder is not None and not folder.is_dir():
            _parser().error(f"{folder} is not a directory")
    try:
        art = cache.prepare()
    except cache.PrepareError as exc:
        cache.log(str(exc))
        return runner.EXIT_HARNESS
    config = runner.VmConfig(
        command=command,
        mtp_dir=args.mtp_dir.resolve() if args.mtp_dir else None,
        mtp_desc=args.mtp_desc,
        shares=[s.resolve() for s in args.share],
        qmp=args.qmp.absolute() if args.qmp else None,
        timeout=args.timeout,
        mem_mb=args.mem,
        smp=args.smp,
        verbose=args.verbose,
        trace=list(args.trace),
        trace_file=args.trace_file.absolute() if args.trace_file else None,
        umtp_dir=args.umtp.resolve() if args.umtp else None,
        umtp_name=args.umtp_name,
        sim_profiles=list(args.sim_gadget),
        sim_root=args.sim_root.resolve() if args.sim_root else None,
    )
    try:
        return runner.run(art, config)
    except cache.PrepareError as exc:
        cache.log(str(exc))
        return runner.EXIT_HARNESS
