"""The private spool directory for downloads and uploads.

ptpfs never changes, chmods or cleans a directory it did not create.  Each
instance makes its own private directory, ``ptpfs-spool-XXXXXXXX`` (mode 0700,
``mkdtemp``), inside a base directory: the one given with ``-o spool_dir=DIR``
(which must exist and be writable; it is left exactly as it is) or, by
default, ``$XDG_RUNTIME_DIR/ptpfs`` / ``$TMPDIR/ptpfs-UID`` (created 0700 by
ptpfs when absent; an existing one must be a directory owned by the user).
The private directory holds a marker file (``.ptpfs-spool``: the owner's pid
and process start time) and is removed when the filesystem stops.

Spool files are anonymous: created with ``O_TMPFILE`` (never visible by name,
mode 0600, gone when closed, even if ptpfs is killed), or where the
filesystem lacks ``O_TMPFILE`` created 0600 as ``spool-PID-XXXX`` inside the
private directory and unlinked at once.  At start-up, private directories
that a dead instance left behind are recognised by name, owner, mode and
marker (whose process no longer runs); only the names ptpfs creates there are
removed, then the directory if it is empty.  Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile

from ptpfs.errors import InvalidValue

log = logging.getLogger("ptpfs.fs")

PRIVATE_PREFIX = "ptpfs-spool-"
MARKER = ".ptpfs-spool"
_PRIVATE_NAME = re.compile(r"^ptpfs-spool-[A-Za-z0-9_]{1,32}$")
_SPOOL_NAME = re.compile(r"^spool-\d+-[A-Za-z0-9_]{1,32}$")
_MARKER_TEXT = re.compile(r"^ptpfs spool\npid=(\d+)\nstart=(\d+)\n$")


def default_spool_dir() -> str:
    """``$XDG_RUNTIME_DIR/ptpfs`` when usable, else ``$TMPDIR/ptpfs-UID``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return os.path.join(runtime, "ptpfs")
    return os.path.join(tempfile.gettempdir(), f"ptpfs-{os.getuid()}")


def check_spool_base(path: str) -> str:
    """The absolute path of a usable ``spool_dir=`` base, or :class:`InvalidValue` with a
    one-line reason.  Looks only: nothing is created or changed."""
    absolute = os.path.abspath(path)
    try:
        st = os.stat(absolute)
    except FileNotFoundError:
        raise InvalidValue(f"spool_dir={path}: no such directory") from None
    except OSError as exc:
        raise InvalidValue(f"spool_dir={path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidValue(f"spool_dir={path}: not a directory")
    if not os.access(absolute, os.W_OK | os.X_OK):
        raise InvalidValue(f"spool_dir={path}: not writable by this user")
    return absolute


def _process_start(pid: int) -> int | None:
    """The start time of process *pid* (clock ticks since boot), None if it does not run."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _alive_by_signal(pid)
    fields = text[text.rfind(b")") + 2:].split()
    try:
        return int(fields[19])          # field 22 of proc(5), counted after "pid (comm)"
    except (IndexError, ValueError):
        return 0


def _alive_by_signal(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0        # exists, belongs to someone else
    return 0


def _owner_running(marker_text: str) -> bool:
    """Whether the instance a marker names still runs (same pid and start time)."""
    m = _MARKER_TEXT.match(marker_text)
    if m is None:
        return True     # not a marker we wrote: treat as in use, touch nothing
    start = _process_start(int(m.group(1)))
    return start is not None and (start == 0 or start == int(m.group(2)))


class SpoolDir:
    """A private directory for anonymous temporary files (see the module docstring)."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            self.base = self._default_base()
        else:
            self.base = check_spool_base(path)
        self.removed_leftovers = self.clean()
        try:
            self.path = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=self.base)
        except OSError as exc:
            raise InvalidValue(f"spool_dir={self.base}: cannot create a private directory "
                               f"there ({exc.strerror})") from None
        start = _process_start(os.getpid()) or 0
        fd = os.open(os.path.join(self.path, MARKER),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"ptpfs spool\npid={os.getpid()}\nstart={start}\n")
        self._tmpfile = hasattr(os, "O_TMPFILE")

    @staticmethod
    def _default_base() -> str:
        base = os.path.abspath(default_spool_dir())
        try:
            os.mkdir(base, 0o700)       # ptpfs's own directory: created here, so ours
        except FileExistsError:
            pass
        except OSError as exc:
            raise InvalidValue(f"spool directory {base}: {exc.strerror}") from None
        st = os.lstat(base)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise InvalidValue(f"spool directory {base} is not a directory owned by you "
                               "(use -o spool_dir=DIR)")
        return base

    def clean(self) -> int:
        """Remove the private directories dead instances left in the base; returns how many.

        A candidate must be named ``ptpfs-spool-*``, be a real directory owned by this user
        with mode 0700, hold a marker naming a process that no longer runs, and hold nothing
        but that marker and ``spool-PID-*`` files; then those and the directory are removed.
        """
        removed = 0
        try:
            names = os.listdir(self.base)
        except OSError:
            return 0
        for name in names:
            if _PRIVATE_NAME.match(name) and self._remove_leftover(os.path.join(self.base, name)):
                removed += 1
        if removed:
            log.info("removed %d leftover spool directories from %s", removed, self.base)
        return removed

    @staticmethod
    def _remove_leftover(path: str) -> bool:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()
                or stat.S_IMODE(st.st_mode) != 0o700):
            return False
        marker = os.path.join(path, MARKER)
        try:
            fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        with os.fdopen(fd, "r", errors="replace") as f:
            text = f.read(200)
        if _owner_running(text):
            return False
        try:
            names = os.listdir(path)
            if any(name != MARKER and not _SPOOL_NAME.match(name) for name in names):
                return False            # something ptpfs did not put there: leave it all
            for name in names:
                if _SPOOL_NAME.match(name):
                    os.unlink(os.path.join(path, name))
            os.unlink(marker)
            os.rmdir(path)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Remove this instance's private directory (what is still open stays usable)."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.path):
                if _SPOOL_NAME.match(name):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.path, name))
            os.unlink(os.path.join(self.path, MARKER))
            os.rmdir(self.path)

    def anonymous_file(self) -> int:
        """A new private (0600) file that has no name; returns its descriptor."""
        if self._tmpfile:
            try:
                return os.open(self.path, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                self._tmpfile = False   # this filesystem has no O_TMPFILE
        fd, name = tempfile.mkstemp(prefix=f"spool-{os.getpid()}-", dir=self.path)
        os.unlink(name)
        return fd
