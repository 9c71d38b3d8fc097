"""Where ptpfs's log goes.

In the foreground: stderr.  In the background: ``-o logfile=PATH`` if given,
else syslog/journal through ``/dev/log`` (``ptpfs[PID]: message``), else --
no syslog socket, as in containers -- the file ``$XDG_STATE_HOME/ptpfs/ptpfs.log``
(``~/.local/state/ptpfs/ptpfs.log``).  Levels: warnings, the mount's own
lifecycle lines and device actions (property writes, refused uploads:
``ptpfs.fs.activity``) by default; ``-v`` adds one line per PTP transaction and the
filesystem's informational messages; ``-d`` everything (and libfuse's own
request log on stderr).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

#: The syslog socket (the ``PTPFS_SYSLOG_SOCKET`` environment variable overrides it).
SYSLOG_SOCKET = "/dev/log"
#: Name of the logger for the program's own lifecycle lines (mounted, unmounted, ...).
CLI_LOGGER = "ptpfs.cli"

_handler: logging.Handler | None = None


def syslog_socket() -> str:
    """The syslog socket path in use."""
    return os.environ.get("PTPFS_SYSLOG_SOCKET") or SYSLOG_SOCKET


def fallback_log_path() -> str:
    """The log file used in the background when there is no syslog socket."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return os.path.join(state, "ptpfs", "ptpfs.log")


def set_levels(verbose: bool, debug: bool) -> None:
    """Warnings by default; ``verbose`` adds the transaction log, ``debug`` everything."""
    root = logging.getLogger("ptpfs")
    root.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    logging.getLogger("ptpfs.session").setLevel(logging.DEBUG if verbose or debug else logging.NOTSET)
    for name in (CLI_LOGGER, "ptpfs.activity"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


@contextlib.contextmanager
def scoped() -> Iterator[None]:
    """Restore the ptpfs loggers' levels, handlers and propagation afterwards
    (for callers of ``main()`` inside a longer-lived process, such as tests)."""
    global _handler
    names = ("ptpfs", "ptpfs.session", CLI_LOGGER, "ptpfs.activity")
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    root = logging.getLogger("ptpfs")
    handlers, propagate, current = list(root.handlers), root.propagate, _handler
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.propagate = propagate
        _handler = current


def _install(handler: logging.Handler) -> logging.Handler:
    global _handler
    root = logging.getLogger("ptpfs")
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    root.addHandler(handler)
    _handler = handler
    return handler


def to_stderr() -> logging.Handler:
    """Log to stderr as ``ptpfs: message`` (foreground, and before going to the background)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("ptpfs: %(message)s"))
    return _install(handler)


def to_file(path: str, make_dirs: bool = False) -> logging.Handler:
    """Log to *path* (appending), one ``date ptpfs[PID]: message`` line per record.

    Raises OSError when the file cannot be opened (its folder is created only
    with *make_dirs*)."""
    directory = os.path.dirname(path)
    if directory and make_dirs:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=False)
    handler.setFormatter(logging.Formatter("%(asctime)s ptpfs[%(process)d]: %(message)s",
                                           datefmt="%Y-%m-%dT%H:%M:%S%z"))
    return _install(handler)


def to_syslog() -> logging.Handler | None:
    """Log to syslog/journal as ``ptpfs[PID]: message``; ``None`` when there is
    no syslog socket to connect to."""
    path = syslog_socket()
    if not os.path.exists(path):
        return None
    import logging.handlers  # only here: ~0.2 s of start-up on a slow host
    import socket
    try:
        handler = logging.handlers.SysLogHandler(address=path,
                                                 facility=logging.handlers.SysLogHandler.LOG_DAEMON,
                                                 socktype=socket.SOCK_DGRAM)
    except OSError:
        return None
    handler.ident = f"ptpfs[{os.getpid()}]: "
    handler.setFormatter(logging.Formatter("%(message)s"))
    return _install(handler)


def for_background(logfile: str | None) -> str:
    """Switch to the background destination; returns a description of it
    (``syslog``, or the file path).  Raises OSError if *logfile* cannot be opened."""
    if logfile:
        if not (isinstance(_handler, logging.FileHandler)
                and _handler.baseFilename == os.path.abspath(logfile)):
            to_file(logfile)
        return logfile
    if to_syslog() is not None:
        return "syslog"
    path = fallback_log_path()
    to_file(path, make_dirs=True)
    return path


def stream_fd() -> int | None:
    """The file descriptor of a file destination (for stderr), if the log goes to a file."""
    if isinstance(_handler, logging.FileHandler) and _handler.stream is not None:
        return _handler.stream.fileno()
    return None
