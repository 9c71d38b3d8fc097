"""``ptpfs``: mount a PTP/MTP/PTP-IP camera as a folder.

    ptpfs [--device SPEC] [-f] [-d] [-o OPTIONS] MOUNTPOINT
    ptpfs --simulate[=DIR] [--profile NAME] MOUNTPOINT
    ptpfs DEVICE MOUNTPOINT [-o OPTIONS]          (mount.fuse3 / fstab convention)

Runs in the background once the device is open and the mount is up (so
errors reach the terminal and the exit status); ``-f`` stays in the
foreground.  Exit status: 0 mounted / unmounted cleanly, 1 device or mount
failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from ptpfs.errors import PTPError

log = logging.getLogger("ptpfs")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(
        prog="ptpfs", description="Mount a PTP/MTP/PTP-IP camera as a folder (FUSE).",
        epilog="Device specs: usb, usb:BUS,DEV, usb:VVVV:PPPP, usb:SERIAL, ptpip:HOST[:PORT], "
               "sim[:DIR]. Options (-o): ro, allow_other, uid=, gid=, umask=, attr_timeout=, "
               "entry_timeout=, cache_ttl=, readahead_max=, readahead_min=, spool_dir=, "
               "timeout=SECONDS (default 5), reconnect, noreconnect, thumbnails=prefill, remote.")
    p.add_argument("args", nargs="+", metavar="[DEVICE] MOUNTPOINT",
                   help="mount point, optionally preceded by a device spec")
    p.add_argument("--device", "-D", help="device spec (default: the first USB camera)")
    p.add_argument("--simulate", metavar="DIR", nargs="?", const="",
                   help="mount the built-in simulated camera (serving DIR if given)")
    p.add_argument("--profile", help="simulator profile: generic, canon-eos, android-mtp")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("-d", "--debug", action="store_true",
                   help="FUSE debug output and the PTP transaction log (implies -f)")
    p.add_argument("-s", "--single-thread", action="store_true", help="one FUSE thread")
    p.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=None,
                   help="reopen the device by itself after the link was lost (default: on "
                        "for usb and ptpip, off for sim); also -o reconnect / -o noreconnect")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                   help="comma-separated mount options")
    return p


def _normalise_argv(argv: list[str]) -> list[str]:
    # "--simulate MOUNTPOINT" must not take the mount point as the directory.
    return ["--simulate=" if a == "--simulate" else a for a in argv]


def _device_spec(args: argparse.Namespace, positional_device: str | None,
                 option_device: str | None) -> str:
    if args.simulate is not None:
        return f"sim:{args.simulate}" if args.simulate else "sim"
    spec = args.device or positional_device or option_device
    if spec:
        return spec
    from ptpfs.connect import default_spec
    return default_spec()


def _serve(spec: str, profile: str | None, mountpoint: str, opts: Any, debug: bool,
           single_thread: bool, on_ready: Callable[[], None] | None,
           reconnect: bool | None = None) -> int:
    from ptpfs.connect import default_reconnect, open_session
    from ptpfs.fs.mount import mount

    try:
        if reconnect is None:
            reconnect = opts.reconnect if opts.reconnect is not None else default_reconnect(spec)
        session = open_session(spec, profile=profile, timeout=opts.timeout, reconnect=reconnect)
    except PTPError as exc:
        print(f"ptpfs: cannot open device {spec}: {exc}", file=sys.stderr)
        return 1
    try:
        ok = mount(session, mountpoint, opts, debug=debug, fsname=f"ptpfs:{spec}",  # type: ignore[arg-type]
                   on_ready=on_ready, single_thread=single_thread)
    except PTPError as exc:
        print(f"ptpfs: {exc}", file=sys.stderr)
        return 1
    finally:
        session.close()
    if not ok:
        print(f"ptpfs: mounting on {mountpoint} failed", file=sys.stderr)
        return 1
    return 0


def _daemonize_and_serve(serve: Callable[[Callable[[], None] | None], int]) -> int:
    """Fork; the child opens the device and mounts; the parent waits for
    "mounted" (exit 0) or the child's failure (its exit status)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            status = pipe.read(1)
        if status == b"1":
            return 0
        _, wait_status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(wait_status) or 1
    os.close(read_fd)
    os.setsid()

    def ready() -> None:
        os.write(write_fd, b"1")
        os.close(write_fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)

    code = 1
    try:
        code = serve(ready)
    finally:
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ptpfs`` command."""
    parser = build_parser()
    args = parser.parse_intermixed_args(_normalise_argv(list(sys.argv[1:] if argv is None else argv)))
    if len(args.args) > 2:
        parser.error("expected [DEVICE] MOUNTPOINT")
    positional_device = args.args[0] if len(args.args) == 2 else None
    mountpoint = os.path.abspath(args.args[-1])
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="ptpfs: %(name)s: %(message)s")
    from ptpfs.errors import InvalidValue
    from ptpfs.fs.mount import parse_options
    try:
        opts = parse_options(args.options)
    except InvalidValue as exc:
        parser.error(str(exc))
    if not os.path.isdir(mountpoint):
        print(f"ptpfs: mount point {mountpoint} is not a directory", file=sys.stderr)
        return 1
    try:
        spec = _device_spec(args, positional_device, opts.device)
    except PTPError as exc:
        print(f"ptpfs: {exc}", file=sys.stderr)
        return 1
    profile = args.profile or opts.profile

    def serve(on_ready: Callable[[], None] | None) -> int:
        return _serve(spec, profile, mountpoint, opts, args.debug, args.single_thread, on_ready,
                      args.reconnect)

    if args.foreground or args.debug:
        return serve(None)
    return _daemonize_and_serve(serve)


if __name__ == "__main__":
    sys.exit(main())
