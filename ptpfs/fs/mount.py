"""Mount options and the mount itself.

``-o`` options are split in two: ptpfs's own (``cache_ttl``, ``readahead_max``,
``readahead_min``, ``kernel_readahead``, ``spool_dir``, ``device``,
``profile``, ``timeout``, ``logfile``, ``reconnect`` / ``noreconnect``,
``thumbnails=prefill|off``, ``remote``) and everything else, which goes to libfuse (``ro``, ``allow_other``, ``uid=``,
``gid=``, ``umask=``, ``attr_timeout=``, ``entry_timeout=`` ...).  mount(8)-only
options that fstab entries carry (``noauto``, ``user``, ``nofail``,
``_netdev``, ``x-*``, ``defaults`` ...) are dropped.  Every value is
range-checked here, before anything is mounted (:class:`InvalidValue`, one
line).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ptpfs.errors import InvalidValue

if TYPE_CHECKING:
    from ptpfs.session import Session

log = logging.getLogger("ptpfs.fs")

OWN_OPTIONS = {"cache_ttl", "readahead_max", "readahead_min", "spool_dir", "device", "profile",
               "timeout", "kernel_readahead", "logfile", "min_rate", "thumbnails"}
OWN_FLAGS = {"reconnect": True, "noreconnect": False}
#: Seconds a transaction may stay silent before it fails with EIO (``-o timeout=``).
DEFAULT_TIMEOUT = 5.0
MOUNT8_ONLY = {"defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group",
               "nofail", "_netdev", "rw"}
DEFAULT_ATTR_TIMEOUT = 10.0
DEFAULT_ENTRY_TIMEOUT = 10.0
#: libfuse's idle worker threads; set explicitly because libfuse 3.14 warns
#: "Ignoring invalid max threads value 4294967295" when it is left unset.
DEFAULT_MAX_IDLE_THREADS = 10
#: Allowed ranges (inclusive) of the size and time options.
READAHEAD_RANGE = (4 << 10, 1 << 30)            # readahead_min / readahead_max
KERNEL_READAHEAD_MAX = 1 << 30                  # kernel_readahead (0 = leave it)
CACHE_TTL_MAX = 7 * 86400.0                     # cache_ttl seconds
KERNEL_TIMEOUT_MAX = 86400.0                    # attr_timeout / entry_timeout / negative_timeout
ID_MAX = 0xFFFFFFFE                             # uid= / gid= (0xFFFFFFFF is "no id")
#: Every -o option ptpfs knows, for --help, the man page and completion.
DOCUMENTED_OPTIONS = ("ro", "rw", "allow_other", "allow_root", "uid=", "gid=", "umask=",
                      "attr_timeout=", "entry_timeout=", "negative_timeout=", "cache_ttl=",
                      "readahead_min=", "readahead_max=", "kernel_readahead=", "timeout=", "min_rate=",
                      "reconnect", "noreconnect", "spool_dir=", "device=", "profile=",
                      "logfile=", "max_idle_threads=", "max_threads=",
                      "thumbnails=", "remote")


def parse_size(text: str) -> int:
    """``8M``, ``8MiB``, ``128k``, ``1048576`` -> bytes."""
    m = re.fullmatch(r"\s*(\d{1,15})\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise InvalidValue(f"bad size {text!r} (try 8M or 131072)")
    unit = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(m.group(1)) * unit


def _human(size: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("k", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def _size_in(key: str, val: str, low: int, high: int, zero_ok: bool = False) -> int:
    try:
        size = parse_size(val)
    except InvalidValue as exc:
        raise InvalidValue(f"{key}={val}: {exc}") from None
    if zero_ok and size == 0:
        return 0
    if not low <= size <= high:
        extra = "0 or " if zero_ok else ""
        raise InvalidValue(f"{key}={val}: expected {extra}{_human(low)} to {_human(high)}")
    return size


def _seconds(key: str, val: str, high: float, *, positive: bool = False) -> float:
    try:
        value = float(val)
    except ValueError:
        raise InvalidValue(f"{key}={val}: expected a number of seconds") from None
    if not math.isfinite(value) or value < 0 or value > high or (positive and value == 0):
        low = "more than 0" if positive else "0"
        raise InvalidValue(f"{key}={val}: expected seconds from {low} to {high:g}")
    return value


def _id(key: str, val: str) -> int:
    if not re.fullmatch(r"\d{1,10}", val) or int(val) > ID_MAX:
        raise InvalidValue(f"{key}={val}: expected a number from 0 to {ID_MAX}")
    return int(val)


@dataclass
class MountOptions:
    """Parsed ``-o`` options."""

    fuse: dict[str, Any] = field(default_factory=dict)
    cache_ttl: float = 60.0
    readahead_max: int = 8 << 20
    readahead_min: int = 128 << 10
    spool_dir: str | None = None
    device: str | None = None
    profile: str | None = None
    read_only: bool = False
    uid: int | None = None
    gid: int | None = None
    umask: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    reconnect: bool | None = None      # None: the default for the device kind
    #: Slowest progress a transaction may make after its first ``timeout`` seconds, bytes/s
    #: (``-o min_rate=``, e.g. ``16k``; 0: no transaction deadline).  None: the transport's.
    min_rate: int | None = None
    kernel_readahead: int = 512 << 10  # the mount's bdi read-ahead (root only); 0 = leave it
    kernel_readahead_given: bool = False  # -o kernel_readahead= was on the command line
    logfile: str | None = None         # -o logfile=PATH: log there instead of syslog
    thumbnails: str = "off"            # "prefill": write the freedesktop thumbnail cache
    remote: bool = False               # mount type fuse.sshfs: the FUSE type GIO calls remote


def split_options(values: list[str]) -> list[tuple[str, str | None]]:
    """``["ro,uid=1", "x"]`` -> ``[("ro", None), ("uid", "1"), ("x", None)]``."""
    out = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            key, eq, val = item.partition("=")
            out.append((key, val if eq else None))
    return out


def parse_options(values: list[str]) -> MountOptions:
    """Parse and range-check every ``-o`` argument (:class:`InvalidValue`
    with a one-line message on the first bad one)."""
    opts = MountOptions()
    opts.fuse["attr_timeout"] = DEFAULT_ATTR_TIMEOUT
    opts.fuse["entry_timeout"] = DEFAULT_ENTRY_TIMEOUT
    opts.fuse["negative_timeout"] = 0
    opts.fuse["max_idle_threads"] = DEFAULT_MAX_IDLE_THREADS
    # no hard_remove: libfuse renames a file unlinked while open to .fuse_hidden*, which
    # ptpfs.fs.uploads turns into an unlink on the device that keeps the handles working
    # (fstat included, which hard_remove answers with ESTALE)
    min_given = False
    for key, val in split_options(values):
        if key in OWN_FLAGS and val is None:
            opts.reconnect = OWN_FLAGS[key]
            continue
        if key == "remote" and val is None:
            opts.remote = True
            continue
        if key in OWN_OPTIONS:
            if not val:
                raise InvalidValue(f"option {key} needs a value ({key}=...)")
            if key == "cache_ttl":
                opts.cache_ttl = _seconds(key, val, CACHE_TTL_MAX)
            elif key == "readahead_max":
                opts.readahead_max = _size_in(key, val, *READAHEAD_RANGE)
            elif key == "readahead_min":
                opts.readahead_min = _size_in(key, val, *READAHEAD_RANGE)
                min_given = True
            elif key == "kernel_readahead":
                opts.kernel_readahead = _size_in(key, val, 4 << 10, KERNEL_READAHEAD_MAX,
                                                 zero_ok=True)
                opts.kernel_readahead_given = True
            elif key == "spool_dir":
                opts.spool_dir = os.path.abspath(val)
            elif key == "logfile":
                opts.logfile = os.path.abspath(val)
            elif key == "device":
                opts.device = val
            elif key == "profile":
                opts.profile = val
            elif key == "thumbnails":
                if val not in ("prefill", "off"):
                    raise InvalidValue(f"thumbnails={val}: expected prefill or off")
                if val == "prefill":
                    from ptpfs.fs.thumbcache import require_pillow

                    require_pillow()
                opts.thumbnails = val
            elif key == "timeout":
                opts.timeout = _seconds(key, val, 3600, positive=True)
            elif key == "min_rate":
                opts.min_rate = _size_in(key, val.removesuffix("/s"), 1, 1 << 40, zero_ok=True)
            continue
        if key in MOUNT8_ONLY or key.startswith("x-") or key == "comment":
            continue
        if key == "ro":
            opts.read_only = True
        elif key in ("uid", "gid", "umask", "attr_timeout", "entry_timeout", "negative_timeout",
                     "max_idle_threads", "max_threads") and not val:
            raise InvalidValue(f"option {key} needs a value ({key}=...)")
        elif key == "uid":
            opts.uid = _id(key, str(val))
        elif key == "gid":
            opts.gid = _id(key, str(val))
        elif key == "umask":
            if not re.fullmatch(r"0?[0-7]{1,3}", str(val)):
                raise InvalidValue(f"umask={val}: expected octal digits, e.g. 022")
            opts.umask = int(str(val), 8)
        elif key in ("attr_timeout", "entry_timeout", "negative_timeout"):
            _seconds(key, str(val), KERNEL_TIMEOUT_MAX)
        elif key in ("max_idle_threads", "max_threads") and (
                not re.fullmatch(r"\d{1,6}", str(val)) or not 1 <= int(str(val)) <= 100000):
            raise InvalidValue(f"{key}={val}: expected a number from 1 to 100000")
        opts.fuse[key] = True if val is None else val
    if opts.readahead_min > opts.readahead_max and not min_given:
        opts.readahead_min = opts.readahead_max   # a small readahead_max alone lowers both
    if opts.readahead_min > opts.readahead_max:
        raise InvalidValue(f"readahead_min ({_human(opts.readahead_min)}) is larger than "
                           f"readahead_max ({_human(opts.readahead_max)})")
    return opts


def fuse_conf_allows_other(path: str = "/etc/fuse.conf") -> bool:
    """Whether *path* (fuse.conf) has an uncommented ``user_allow_other``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def limit_malloc_growth() -> None:
    """Limit glibc's per-thread malloc arenas: with many FUSE threads each
    arena keeps its own freed read-ahead buffers, which inflates RSS."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 4)        # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def is_mount_point(path: str) -> bool:
    """Whether something is mounted on *path* (read from mountinfo, so a hung
    FUSE mount there cannot block the check)."""
    return _mount_device(os.path.realpath(path)) is not None


def _mount_device(mountpoint: str) -> str | None:
    """``MAJOR:MINOR`` of the filesystem mounted at *mountpoint*, from mountinfo
    (without a stat, which our own filesystem would have to answer)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                                      fields[4]) == mountpoint:
            found = fields[2]          # the last mount there is ours
    return found


def raise_kernel_readahead(mountpoint: str, size: int) -> None:
    """Let the kernel read ahead *size* bytes on this mount (root only).

    The default 128 KiB window makes every sequential read a stream of
    256 KiB FUSE requests; 512 KiB already lets the kernel send 1 MiB
    requests, a quarter of the per-request cost, while ``head -c 64K`` still
    moves well under 1 MiB (at 1 MiB and more the kernel's first window makes
    it fetch megabytes).
    """
    if not size:
        return
    dev = _mount_device(mountpoint)
    for _ in range(100):       # FUSE INIT may come before mountinfo lists the mount
        if dev is not None:
            break
        time.sleep(0.05)
        dev = _mount_device(mountpoint)
    if dev is None:
        log.debug("kernel read-ahead left as it is (%s not in mountinfo)", mountpoint)
        return
    want = str(max(size >> 10, 4))
    path = f"/sys/class/bdi/{dev}/read_ahead_kb"
    # This runs from FUSE INIT, before libfuse replies. The kernel holds every request
    # until it has processed that reply (and clamped the window), so a stat of the root
    # returns only after the clamp: no race with it, however slow the machine.
    try:
        os.stat(mountpoint)
    except OSError as exc:
        log.debug("kernel read-ahead left as it is (%s)", exc)
        return
    # Anonymous device numbers are reused: write only while the mount is still there
    # (a thread that outlived a short-lived mount used to set the next mount's window).
    if _mount_device(mountpoint) != dev:
        log.debug("kernel read-ahead left as it is (%s is gone)", mountpoint)
        return
    try:
        with open(path) as f:
            if f.read().strip() == want:
                return
        with open(path, "w") as f:
            f.write(want)
    except OSError as exc:
        log.debug("kernel read-ahead left as it is (%s)", exc)


def mount(session: Session, mountpoint: str, opts: MountOptions, *, debug: bool = False,
          fsname: str = "ptpfs", on_ready: Callable[[], None] | None = None,
          single_thread: bool = False) -> bool:
    """Serve *session* at *mountpoint* in the foreground until unmounted.

    Returns ``True`` if the filesystem was mounted (and has now been
    unmounted cleanly, by fusermount3 -u or a signal), ``False`` if the
    mount failed.  The session is not closed here.
    """
    from ptpfs.fs import fusemain
    from ptpfs.fs.operations import PlusFUSE, PtpFs, in_fuse_request

    mountpoint = os.path.abspath(mountpoint)  # libfuse changes the cwd to /
    if not os.environ.get("PTPFS_NO_MALLOPT"):
        limit_malloc_growth()
    state = {"ready": False, "serving": False}

    def ready() -> None:
        state["ready"] = True
        threading.Thread(target=raise_kernel_readahead, args=(mountpoint, opts.kernel_readahead),
                         name="ptpfs-readahead", daemon=True).start()
        if on_ready is not None:
            on_ready()
        # only now: this is libfuse's INIT thread, whose context has no request
        # (fuse_interrupted would dereference NULL here)
        state["serving"] = True

    ops = PtpFs(session, cache_ttl=opts.cache_ttl, read_only=opts.read_only,
                readahead_max=opts.readahead_max, readahead_min=opts.readahead_min,
                spool_dir=opts.spool_dir, uid=opts.uid, gid=opts.gid, umask=opts.umask,
                on_ready=ready)
    if opts.thumbnails == "prefill":
        from ptpfs.fs.thumbcache import Prefill

        ops.prefill = Prefill(mountpoint, ops.virtual.thumbs)
    kwargs = dict(opts.fuse)
    # libfuse splits -o on commas: a spec like usb:1,5 must reach it as usb:1\,5
    kwargs.setdefault("fsname", fsname.replace("\\", "\\\\").replace(",", "\\,"))
    # a program that gets a signal while its request waits for the device (queued behind
    # another transaction) is answered EINTR at once; see docs/reliability.md
    import mfusepy

    def interrupted() -> bool:
        # only a thread serving a request may ask: elsewhere libfuse's context is
        # missing, or has no (or a finished) request that fuse_interrupted would read
        return state["serving"] and in_fuse_request() \
            and bool(mfusepy._libfuse.fuse_interrupted())

    session.interrupted = interrupted
    # libfuse deletes its per-thread context key after destroy: stop asking before that
    fs_destroy = ops.destroy

    def destroy(path: str) -> None:
        state["serving"] = False
        fs_destroy(path)

    ops.destroy = destroy  # type: ignore[method-assign]

    def loop_ended() -> None:
        # fuse_destroy frees libfuse's tables before it calls destroy(), and runs the
        # .fuse_hidden unlinks in a context without a request: stop asking libfuse here
        state["serving"] = False
        ops.loop_ended()
    # GIO's is_remote_fs_type (gio/glocalfile.c) names fuse.sshfs as the remote FUSE type
    # (see docs/photographer.md for which GLib versions act on it).
    kwargs.setdefault("subtype", "sshfs" if opts.remote else "ptpfs")
    try:
        with fusemain.hooked(loop_ended):
            PlusFUSE(ops, mountpoint, raw_fi=True, foreground=True, debug=debug,
                     nothreads=single_thread, use_ino=True, **kwargs)
    except RuntimeError as exc:
        # libfuse 3 reports "ended by signal" as a non-zero result; that is a clean stop.
        if not state["ready"]:
            log.error("mounting %s failed (%s)", mountpoint, exc)
            return False
    finally:
        session.interrupted = None
        state["serving"] = False
        ops.tree.stop_events()
        ops.spool_dir.close()
        if ops.prefill is not None:
            ops.prefill.stop()
    return state["ready"]
