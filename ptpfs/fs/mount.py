"""Mount options and the mount itself.

``-o`` options are split in two: ptpfs's own (``cache_ttl``, ``readahead_max``,
``readahead_min``, ``spool_dir``, ``device``, ``profile``, ``timeout``,
``reconnect`` / ``noreconnect``, ``thumbnails=prefill|off``, ``remote``) and everything else,
which goes to libfuse (``ro``, ``allow_other``, ``uid=``, ``gid=``,
``umask=``, ``attr_timeout=``, ``entry_timeout=`` ...).  mount(8)-only
options that fstab entries carry (``noauto``, ``user``, ``nofail``,
``_netdev``, ``x-*``, ``defaults`` ...) are dropped.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ptpfs.errors import InvalidValue

log = logging.getLogger("ptpfs.fs")

OWN_OPTIONS = {"cache_ttl", "readahead_max", "readahead_min", "spool_dir", "device", "profile",
               "timeout", "kernel_readahead", "thumbnails"}
OWN_FLAGS = {"reconnect": True, "noreconnect": False}
#: Seconds a transaction may stay silent before it fails with EIO (``-o timeout=``).
DEFAULT_TIMEOUT = 5.0
MOUNT8_ONLY = {"defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group",
               "nofail", "_netdev", "rw"}
DEFAULT_ATTR_TIMEOUT = 10.0
DEFAULT_ENTRY_TIMEOUT = 10.0


def parse_size(text: str) -> int:
    """``8M``, ``8MiB``, ``128k``, ``1048576`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", text)
    if not m:
        raise InvalidValue(f"bad size {text!r} (try 8M or 131072)")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


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
    kernel_readahead: int = 512 << 10  # the mount's bdi read-ahead (root only); 0 = leave it
    thumbnails: str = "off"            # "prefill": write the freedesktop thumbnail cache
    remote: bool = False               # mount type fuse.sshfs: GIO then treats it as remote


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
    """Parse every ``-o`` argument."""
    opts = MountOptions()
    opts.fuse["attr_timeout"] = DEFAULT_ATTR_TIMEOUT
    opts.fuse["entry_timeout"] = DEFAULT_ENTRY_TIMEOUT
    opts.fuse["negative_timeout"] = 0
    # unlink removes at once: libfuse would otherwise rename a file that is still open
    # (or whose release has not arrived yet) to .fuse_hidden*, which a camera refuses
    opts.fuse["hard_remove"] = True
    for key, val in split_options(values):
        try:
            if key == "remote" and val is None:
                opts.remote = True
                continue
            if key in OWN_FLAGS and val is None:
                opts.reconnect = OWN_FLAGS[key]
                continue
            if key in OWN_OPTIONS:
                if val is None:
                    raise InvalidValue(f"option {key} needs a value ({key}=...)")
                if key == "cache_ttl":
                    opts.cache_ttl = float(val)
                elif key == "readahead_max":
                    opts.readahead_max = parse_size(val)
                elif key == "readahead_min":
                    opts.readahead_min = parse_size(val)
                elif key == "kernel_readahead":
                    opts.kernel_readahead = parse_size(val)
                elif key == "spool_dir":
                    opts.spool_dir = os.path.abspath(val)
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
                    opts.timeout = float(val)
                    if not 0 < opts.timeout <= 3600:
                        raise InvalidValue(f"timeout={val}: expected seconds between 0 and 3600")
                continue
            if key in MOUNT8_ONLY or key.startswith("x-") or key == "comment":
                continue
            if key == "ro":
                opts.read_only = True
            elif key == "uid" and val is not None:
                opts.uid = int(val)
            elif key == "gid" and val is not None:
                opts.gid = int(val)
            elif key == "umask" and val is not None:
                opts.umask = int(val, 8)
            elif key in ("attr_timeout", "entry_timeout", "negative_timeout") and val is not None:
                float(val)
            opts.fuse[key] = True if val is None else val
        except ValueError as exc:
            if isinstance(exc, InvalidValue):
                raise
            raise InvalidValue(f"bad value for option {key}: {val!r}") from None
    return opts


def limit_malloc_growth() -> None:
    """Limit glibc's per-thread malloc arenas: with many FUSE threads each
    arena keeps its own freed read-ahead buffers, which inflates RSS."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 4)        # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


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
    dev = _mount_device(mountpoint)
    if not size or dev is None:
        return
    try:
        with open(f"/sys/class/bdi/{dev}/read_ahead_kb", "w") as f:
            f.write(str(max(size >> 10, 4)))
    except OSError as exc:
        log.debug("kernel read-ahead left as it is (%s)", exc)


def mount(session: Any, mountpoint: str, opts: MountOptions, *, debug: bool = False,
          fsname: str = "ptpfs", on_ready: Callable[[], None] | None = None,
          single_thread: bool = False) -> bool:
    """Serve *session* at *mountpoint* in the foreground until unmounted.

    Returns ``True`` if the filesystem was mounted (and has now been
    unmounted cleanly, by fusermount3 -u or a signal), ``False`` if the
    mount failed.  The session is not closed here.
    """
    from ptpfs.fs.operations import PlusFUSE, PtpFs

    mountpoint = os.path.abspath(mountpoint)  # libfuse changes the cwd to /
    if not os.environ.get("PTPFS_NO_MALLOPT"):
        limit_malloc_growth()
    state = {"ready": False}

    def ready() -> None:
        state["ready"] = True
        threading.Thread(target=raise_kernel_readahead, args=(mountpoint, opts.kernel_readahead),
                         name="ptpfs-readahead", daemon=True).start()
        if on_ready is not None:
            on_ready()

    ops = PtpFs(session, cache_ttl=opts.cache_ttl, read_only=opts.read_only,
                readahead_max=opts.readahead_max, readahead_min=opts.readahead_min,
                spool_dir=opts.spool_dir, uid=opts.uid, gid=opts.gid, umask=opts.umask,
                on_ready=ready)
    if opts.thumbnails == "prefill":
        from ptpfs.fs.thumbcache import Prefill

        ops.prefill = Prefill(mountpoint, ops.virtual.thumbs)
    kwargs = dict(opts.fuse)
    kwargs.setdefault("fsname", fsname)
    # GIO (gio/glocalfile.c is_remote_fs_type) calls a FUSE mount remote only for the
    # type fuse.sshfs: then Nautilus & co. stop opening every image to thumbnail it.
    kwargs.setdefault("subtype", "sshfs" if opts.remote else "ptpfs")
    try:
        PlusFUSE(ops, mountpoint, raw_fi=True, foreground=True, debug=debug,
                 nothreads=single_thread, use_ino=True, **kwargs)
    except RuntimeError as exc:
        # libfuse 3 reports "ended by signal" as a non-zero result; that is a clean stop.
        if not state["ready"]:
            log.error("mounting %s failed (%s)", mountpoint, exc)
            return False
    finally:
        ops.tree.stop_events()
        if ops.prefill is not None:
            ops.prefill.stop()
    return state["ready"]
