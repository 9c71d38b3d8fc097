"""``ptpfs``: mount a PTP/MTP/PTP-IP camera as a folder.

    ptpfs [options] [DEVICE] MOUNTPOINT
    ptpfs --simulate[=DIR] [--profile NAME] [options] MOUNTPOINT
    ptpfs --install-mount-helper[=PREFIX]

Opens the device and mounts before going to the background, so errors reach
the terminal and the exit status (the codes of ptpctl, listed in ``--help``
and ptpfs(1)); ``-f`` stays in the foreground.  In the background the log goes
to syslog/journal, or ``-o logfile=PATH`` (see :mod:`ptpfs.cli.logsetup`).
Every option is checked before anything is mounted, and a mount point that
already is one is refused (no stacked mounts).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ptpfs import __version__
from ptpfs.cli import logsetup
from ptpfs.cli.exitcodes import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_USAGE,
    error_exit_code,
)
from ptpfs.errors import DeviceClaimed, InvalidValue, PTPError

if TYPE_CHECKING:
    from ptpfs.fs.mount import MountOptions

log = logging.getLogger(logsetup.CLI_LOGGER)

USAGE = """\
ptpfs [options] [DEVICE] MOUNTPOINT
       ptpfs --simulate[=DIR] [--profile NAME] [options] MOUNTPOINT
       ptpfs --install-mount-helper[=PREFIX]"""

#: The -o options, one line each (the man page and completion list the same names).
MOUNT_OPTIONS_HELP = """\
mount options (-o OPT[,OPT...], also the options field of an fstab line):
  ro                    read-only: no uploads, deletes, renames or property writes
  allow_other           let other users use the mount (non-root: needs user_allow_other
                        in /etc/fuse.conf); allow_root likewise for root only
  uid=N, gid=N          owner and group shown for every file (default: the mounting user)
  umask=OOO             permission bits to clear, octal (e.g. 022)
  attr_timeout=S        kernel attribute cache, seconds (default 10)
  entry_timeout=S       kernel name cache, seconds (default 10)
  negative_timeout=S    kernel cache of missing names, seconds (default 0)
  cache_ttl=S           ptpfs's listing cache, 0..604800 s (default 60; events refresh earlier)
  readahead_min=SIZE    smallest read-ahead window, 4k..1G (default 128k)
  readahead_max=SIZE    largest read-ahead window, 4k..1G (default 8M)
  kernel_readahead=SIZE the kernel's read-ahead on the mount, 0 or 4k..1G (default 512k;
                        root only, ignored with a message otherwise)
  timeout=S             a device silent for S seconds fails the request with EIO (default 5)
  min_rate=RATE         after timeout=S, a transaction must keep moving at least RATE bytes/s
                        (e.g. 16k; 0: no whole-transaction deadline; default 16k)
  reconnect, noreconnect  reopen the device by itself after the link was lost
                        (default: on for usb and ptpip, off for sim)
  spool_dir=DIR         where upload and download spool files are kept
  device=SPEC           the device, for fstab lines (same as the DEVICE argument)
  profile=NAME          simulator profile, for fstab lines
  logfile=PATH          log to PATH instead of syslog/journal
  thumbnails=prefill    write the freedesktop thumbnail cache from the camera's thumbnails
                        for every listed folder (needs Pillow; default off)
  remote                mount type fuse.sshfs, the FUSE type GIO calls remote
  max_idle_threads=N, max_threads=N  libfuse worker threads (defaults 10, 10)
  mount(8)'s own options (noauto, user, users, nofail, _netdev, defaults, x-*) are ignored,
  as are rw, dev, suid, exec and their no- forms, which go to the kernel."""

EPILOG = MOUNT_OPTIONS_HELP + """

device specs:
  usb, usb:BUS,DEV, usb:VVVV:PPPP, usb:SERIAL   a USB camera (default: the first found)
  ptpip:HOST[:PORT]                              a PTP/IP camera (port 15740)
  sim, sim:DIR                                   the simulated camera in this process

exit codes:
  0  mounted (and, with -f, unmounted cleanly)
  1  other error, or the mount itself failed (fusermount3's message is above)
  2  usage error or invalid value: bad option or option value, mount point not a
     directory or already a mount point, allow_other not allowed
  3  no camera found (no USB device; nothing listening at a PTP/IP address)
  4  device busy: claimed by another program (named when visible)
  5  permission denied opening the device (install the udev rule from the README)
  6  the camera answered with a PTP error while opening
  7  connection lost or timed out while opening

logging: in the background to syslog/journal (ptpfs[PID]: ...) or -o logfile=PATH;
without a syslog socket to ~/.local/state/ptpfs/ptpfs.log.  -v adds one line per PTP
transaction; -d adds libfuse's request log and stays in the foreground.

unmount: fusermount3 -u MOUNTPOINT (umount as root; SIGINT/SIGTERM also work)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests, the man page check and completion)."""
    p = argparse.ArgumentParser(
        prog="ptpfs", usage=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mount a PTP/MTP/PTP-IP camera as a folder (FUSE).", epilog=EPILOG)
    p.add_argument("args", nargs="*", metavar="[DEVICE] MOUNTPOINT",
                   help="the mount point, optionally preceded by a device spec")
    p.add_argument("-V", "--version", action="version", version=f"ptpfs {__version__}")
    p.add_argument("-D", "--device", metavar="SPEC",
                   help="device spec (default: the first USB camera)")
    p.add_argument("--simulate", metavar="DIR", nargs="?", const="",
                   help="mount the built-in simulated camera (serving DIR if given)")
    p.add_argument("--profile", metavar="NAME",
                   help="simulator profile: generic, canon-eos, android-mtp")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log one line per PTP transaction (without libfuse's -d output)")
    p.add_argument("-d", "--debug", action="store_true",
                   help="libfuse's request log and the PTP transaction log (implies -f)")
    p.add_argument("-s", "--single-thread", action="store_true", help="one FUSE thread")
    p.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=None,
                   help="reopen the device by itself after the link was lost (default: on "
                        "for usb and ptpip, off for sim); also -o reconnect / -o noreconnect")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                   help="comma-separated mount options (listed below)")
    p.add_argument("--install-mount-helper", metavar="PREFIX", nargs="?", const="/usr/local",
                   help="write launchers PREFIX/bin/ptpfs and ptpctl (default /usr/local) so "
                        "that mount(8) and fstab find this installation, then exit")
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


def _say(message: str) -> None:
    print(f"ptpfs: {' '.join(message.split())}", file=sys.stderr)


def _fail(exc: BaseException, spec: str | None = None) -> int:
    """Print the one-line message for *exc*; return its exit code."""
    code, message = error_exit_code(exc)
    if isinstance(exc, DeviceClaimed):
        from ptpfs.cli.holders import describe_holders
        held = describe_holders(str(exc))
        message += held
    if spec and code != EXIT_USAGE:
        message = f"cannot open device {spec}: {message.removeprefix(spec + ': ')}"
    _say(message)
    return code


def _serve(spec: str, profile: str | None, mountpoint: str, opts: MountOptions, debug: bool,
           single_thread: bool, on_ready: Callable[[], None] | None,
           reconnect: bool | None = None) -> int:
    from ptpfs.connect import default_reconnect, open_session
    from ptpfs.fs.mount import mount

    try:
        if reconnect is None:
            reconnect = opts.reconnect if opts.reconnect is not None else default_reconnect(spec)
        session = open_session(spec, profile=profile, timeout=opts.timeout, reconnect=reconnect,
                               min_rate=opts.min_rate)
    except PTPError as exc:
        return _fail(exc, spec)
    try:
        ok = mount(session, mountpoint, opts, debug=debug, fsname=f"ptpfs:{spec}",
                   on_ready=on_ready, single_thread=single_thread)
    except PTPError as exc:
        return _fail(exc)
    finally:
        session.close()
    if not ok:
        _say(f"mounting {spec} on {mountpoint} failed")
        return EXIT_ERROR
    log.info("unmounted %s from %s", spec, mountpoint)
    return EXIT_OK


def _daemonize_and_serve(serve: Callable[[Callable[[], None] | None], int],
                         logfile: str | None, announce: Callable[[], None]) -> int:
    """Fork; the child opens the device and mounts; the parent waits for
    "mounted" (exit 0) or the child's failure (its exit status).  Once
    mounted, the child's log goes to the background destination."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            status = pipe.read(1)
        if status == b"1":
            return EXIT_OK
        _, wait_status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(wait_status) or EXIT_ERROR
    os.close(read_fd)
    os.setsid()

    def ready() -> None:
        try:
            where = logsetup.for_background(logfile)
        except OSError as exc:
            where = "nowhere"
            _say(f"no syslog socket and cannot write {exc.filename or logsetup.fallback_log_path()}"
                 f" ({exc.strerror}): background messages are discarded; use -o logfile=PATH")
        os.write(write_fd, b"1")
        os.close(write_fd)
        null = os.open(os.devnull, os.O_RDWR)
        file_fd = logsetup.stream_fd()
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(file_fd if file_fd is not None else null, 2)  # libfuse's own messages
        os.close(null)
        announce()
        log.debug("logging to %s", where)

    code = EXIT_ERROR
    try:
        code = serve(ready)
    except BaseException as exc:
        log.critical("ptpfs stopped by an unexpected error: %s: %s", type(exc).__name__, exc,
                     exc_info=True)
    finally:
        logging.shutdown()
        os._exit(code)


def _check_mountpoint(mountpoint: str) -> str | None:
    """A one-line reason why *mountpoint* cannot be used, or None."""
    from ptpfs.fs.mount import is_mount_point
    if is_mount_point(mountpoint):
        return (f"{mountpoint} is already a mount point (unmount it first: "
                f"fusermount3 -u {mountpoint})")
    if not os.path.isdir(mountpoint):
        return f"mount point {mountpoint} is not a directory"
    return None


def _check_privileged_options(opts: MountOptions) -> str | None:
    """Explain options a normal user cannot have; returns a fatal reason or None
    (non-fatal notes are printed)."""
    from ptpfs.fs.mount import fuse_conf_allows_other
    if os.geteuid() == 0:
        return None
    if opts.kernel_readahead_given:
        _say("kernel_readahead ignored: only root can set the kernel's read-ahead "
             "(the kernel's default applies)")
    if ("allow_other" in opts.fuse or "allow_root" in opts.fuse) and not fuse_conf_allows_other():
        which = "allow_other" if "allow_other" in opts.fuse else "allow_root"
        return (f"-o {which} needs 'user_allow_other' in /etc/fuse.conf "
                f"(as root: echo user_allow_other >> /etc/fuse.conf), or mount as root")
    return None


def _install_mount_helper(prefix: str) -> int:
    from ptpfs.cli.helper_install import install
    try:
        for line in install(prefix):
            print(line)
    except PermissionError as exc:
        _say(f"{exc.filename or prefix}: {exc.strerror}; run it as root "
             f"(sudo {sys.argv[0]} --install-mount-helper)")
        return EXIT_PERMISSION
    except OSError as exc:
        _say(str(exc) if not exc.strerror else f"{exc.filename or prefix}: {exc.strerror}")
        return EXIT_ERROR
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ptpfs`` command; returns the exit code."""
    parser = build_parser()
    raw = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_intermixed_args(raw)
    except SystemExit as exc:      # usage errors (2), --help and --version (0)
        return int(exc.code or 0)
    if args.install_mount_helper is not None:
        if args.args:
            parser.print_usage(sys.stderr)
            _say("--install-mount-helper takes no mount point")
            return EXIT_USAGE
        return _install_mount_helper(args.install_mount_helper)
    if not args.args:
        parser.print_usage(sys.stderr)
        _say("a mount point is required")
        return EXIT_USAGE
    if len(args.args) > 2:
        parser.print_usage(sys.stderr)
        _say("expected [DEVICE] MOUNTPOINT, got " + " ".join(args.args))
        return EXIT_USAGE
    with logsetup.scoped():
        return _mount_main(args)


def _mount_main(args: argparse.Namespace) -> int:
    positional_device = args.args[0] if len(args.args) == 2 else None
    mountpoint = os.path.abspath(args.args[-1])
    logsetup.set_levels(args.verbose, args.debug)
    logsetup.to_stderr()
    from ptpfs.fs.mount import parse_options
    try:
        opts = parse_options(args.options)
    except InvalidValue as exc:
        _say(str(exc))
        return EXIT_USAGE
    reason = _check_mountpoint(mountpoint) or _check_privileged_options(opts)
    if reason:
        _say(reason)
        return EXIT_USAGE
    if opts.logfile:
        try:
            logsetup.to_file(opts.logfile)     # from now on, also before going to the background
        except OSError as exc:
            logsetup.to_stderr()
            _say(f"cannot write the log file {opts.logfile}: {exc.strerror}")
            return EXIT_USAGE
    if opts.spool_dir is not None:  # refused before forking, so background mode says it too
        from ptpfs.fs.spool import check_spool_base
        try:
            check_spool_base(opts.spool_dir)
        except InvalidValue as exc:
            _say(str(exc))
            return EXIT_USAGE
    try:
        spec = _device_spec(args, positional_device, opts.device)
    except PTPError as exc:
        return _fail(exc)
    profile = args.profile or opts.profile

    def announce() -> None:
        log.info("mounted %s on %s (ptpfs %s)", spec, mountpoint, __version__)

    def serve(on_ready: Callable[[], None] | None) -> int:
        return _serve(spec, profile, mountpoint, opts, args.debug, args.single_thread, on_ready,
                      args.reconnect)

    if args.foreground or args.debug:
        def ready_fg() -> None:
            announce()
        return serve(ready_fg)
    return _daemonize_and_serve(serve, opts.logfile, announce)


if __name__ == "__main__":
    sys.exit(main())
