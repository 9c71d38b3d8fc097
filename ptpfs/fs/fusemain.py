"""libfuse 3's ``fuse_main_real`` with a hook between the loop and the teardown.

``fuse_destroy`` frees libfuse's node tables and lock *before* it calls the
filesystem's ``destroy``, so a ``fuse_invalidate_path`` from another thread
(device events, a reconnect, an upload finishing) in that window walked freed
memory and crashed the process.  :func:`serve` runs the same steps as
libfuse 3.12+'s ``fuse_main_real`` (lib/helper.c) and calls ``loop_ended``
after the loop returns and before ``fuse_unmount``/``fuse_destroy``: the
filesystem stops notifying there, while everything is still allocated.

mfusepy calls its module-level ``fuse_main_real``; :func:`install` points it at
a wrapper that runs :func:`serve` when the calling thread registered a hook
with :func:`hooked` and the library has the 3.12 entry points, and the
library's own ``fuse_main_real`` otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable, Iterator
from typing import Any

import mfusepy

_lib: Any = getattr(mfusepy, "_libfuse", None)
_original: Any = getattr(mfusepy, "fuse_main_real", None)
_local = threading.local()


class _Args(ctypes.Structure):
    """``struct fuse_args``."""

    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)),
                ("allocated", ctypes.c_int)]


class _CmdlineOpts(ctypes.Structure):
    """``struct fuse_cmdline_opts`` as of libfuse 3.12 (with room to spare)."""

    _fields_ = [("singlethread", ctypes.c_int), ("foreground", ctypes.c_int),
                ("debug", ctypes.c_int), ("nodefault_subtype", ctypes.c_int),
                ("mountpoint", ctypes.c_void_p), ("show_version", ctypes.c_int),
                ("show_help", ctypes.c_int), ("clone_fd", ctypes.c_int),
                ("max_idle_threads", ctypes.c_uint), ("max_threads", ctypes.c_uint),
                ("_spare", ctypes.c_char * 64)]


def _bind() -> dict[str, Any] | None:
    """The libfuse 3.12+ entry points, typed; ``None`` if one is missing."""
    vp, ip = ctypes.c_void_p, ctypes.c_int
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "fuse_parse_cmdline_312": (ip, [ctypes.POINTER(_Args), ctypes.POINTER(_CmdlineOpts)]),
        "fuse_new_31": (vp, [ctypes.POINTER(_Args), vp, ctypes.c_size_t, vp]),
        "fuse_mount": (ip, [vp, ctypes.c_char_p]),
        "fuse_daemonize": (ip, [ip]),
        "fuse_get_session": (vp, [vp]),
        "fuse_set_signal_handlers": (ip, [vp]),
        "fuse_remove_signal_handlers": (None, [vp]),
        "fuse_loop": (ip, [vp]),
        "fuse_loop_cfg_create": (vp, []),
        "fuse_loop_cfg_destroy": (None, [vp]),
        "fuse_loop_cfg_set_clone_fd": (None, [vp, ctypes.c_uint]),
        "fuse_loop_cfg_set_idle_threads": (None, [vp, ctypes.c_uint]),
        "fuse_loop_cfg_set_max_threads": (None, [vp, ctypes.c_uint]),
        "fuse_loop_mt_312": (ip, [vp, vp]),
        "fuse_unmount": (None, [vp]),
        "fuse_destroy": (None, [vp]),
        "fuse_opt_free_args": (None, [ctypes.POINTER(_Args)]),
    }
    funcs: dict[str, Any] = {}
    try:
        for name, (restype, argtypes) in sigs.items():
            # a private handle: mfusepy's own prototypes stay as they are
            func = getattr(_private, name)
            func.restype, func.argtypes = restype, argtypes
            funcs[name] = func
    except AttributeError:
        return None
    return funcs


try:
    _private: Any = ctypes.CDLL(_lib._name)
except (OSError, AttributeError, TypeError):
    _private = None
_funcs = _bind() if _private is not None and _original is not None \
    and getattr(mfusepy, "fuse_version_major", None) == 3 else None
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


def serve(argc: int, argv: Any, ops: Any, ops_size: int, user_data: Any,
          loop_ended: Callable[[], None]) -> int:
    """``fuse_main_real`` with *loop_ended* called between the loop and the teardown."""
    assert _funcs is not None
    f = _funcs
    args = _Args(argc, ctypes.cast(argv, ctypes.POINTER(ctypes.c_char_p)), 0)
    opts = _CmdlineOpts()
    if f["fuse_parse_cmdline_312"](ctypes.byref(args), ctypes.byref(opts)) != 0:
        f["fuse_opt_free_args"](ctypes.byref(args))
        return 1
    try:
        if opts.show_help or opts.show_version or not opts.mountpoint:
            # not something mfusepy asks for: let libfuse answer it
            return int(_original(argc, argv, ops, ops_size, user_data))
        fuse = f["fuse_new_31"](ctypes.byref(args), ctypes.cast(ops, ctypes.c_void_p),
                                ops_size, None)
        if not fuse:
            return 1
        res = 1
        try:
            if f["fuse_mount"](fuse, ctypes.cast(opts.mountpoint, ctypes.c_char_p)) != 0:
                return 1
            try:
                if f["fuse_daemonize"](opts.foreground) != 0:
                    return 1
                se = f["fuse_get_session"](fuse)
                if f["fuse_set_signal_handlers"](se) != 0:
                    return 1
                try:
                    res = _loop(fuse, opts)
                finally:
                    loop_ended()
                    f["fuse_remove_signal_handlers"](se)
            finally:
                f["fuse_unmount"](fuse)
        finally:
            f["fuse_destroy"](fuse)
        return 7 if res else 0
    finally:
        _libc.free(opts.mountpoint)
        f["fuse_opt_free_args"](ctypes.byref(args))


def _loop(fuse: int, opts: _CmdlineOpts) -> int:
    assert _funcs is not None
    f = _funcs
    if opts.singlethread:
        return int(f["fuse_loop"](fuse))
    config = f["fuse_loop_cfg_create"]()
    if not config:
        return 7
    try:
        f["fuse_loop_cfg_set_clone_fd"](config, opts.clone_fd)
        f["fuse_loop_cfg_set_idle_threads"](config, opts.max_idle_threads)
        f["fuse_loop_cfg_set_max_threads"](config, opts.max_threads)
        return int(f["fuse_loop_mt_312"](fuse, config))
    finally:
        f["fuse_loop_cfg_destroy"](config)


def _main_real(*args: Any) -> Any:
    hook = getattr(_local, "loop_ended", None)
    if hook is None or _funcs is None or len(args) != 5:
        return _original(*args)
    return serve(*args, loop_ended=hook)


@contextlib.contextmanager
def hooked(loop_ended: Callable[[], None]) -> Iterator[None]:
    """Within this block, a FUSE mount started by this thread calls
    *loop_ended* once its loop returns, before libfuse frees anything."""
    install()
    outer = getattr(_local, "loop_ended", None)
    _local.loop_ended = loop_ended
    try:
        yield
    finally:
        _local.loop_ended = outer


def install() -> None:
    """Point mfusepy at the hookable ``fuse_main_real`` (idempotent; nothing
    if this libfuse or mfusepy lacks what :func:`serve` needs)."""
    if _funcs is not None:
        mfusepy.fuse_main_real = _main_real
