"""The private spool directory for downloads and uploads.

A 0700 directory owned by the user.  Spool files are anonymous: created
with ``O_TMPFILE`` (never visible by name, mode 0600, gone when closed, even
if ptpfs is killed), or where the filesystem lacks ``O_TMPFILE`` created
0600 as ``spool-PID-XXXX`` and unlinked at once.  At start-up, names that a
crashed instance left behind (``spool-PID-*`` of a process that no longer
runs, and unnamed-PID ``spool-*`` files of older versions) are removed; the
files of a live instance are never touched.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile

log = logging.getLogger("ptpfs.fs")

_PID_NAME = re.compile(r"^spool-(\d+)-")


def default_spool_dir() -> str:
    """``$XDG_RUNTIME_DIR/ptpfs`` when usable, else ``$TMPDIR/ptpfs-UID``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return os.path.join(runtime, "ptpfs")
    return os.path.join(tempfile.gettempdir(), f"ptpfs-{os.getuid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True     # exists, belongs to someone else
    return True


class SpoolDir:
    """A private directory for anonymous temporary files."""

    def __init__(self, path: str | None = None) -> None:
        self.path = os.path.abspath(path or default_spool_dir())
        self._tmpfile = hasattr(os, "O_TMPFILE")
        self._prepare()

    def _prepare(self) -> None:
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(self.path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise PermissionError(f"spool directory {self.path} is not a directory owned by you")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.path, 0o700)
        self.clean()

    def clean(self) -> int:
        """Remove spool files that crashed runs left behind; returns how many.
        Files of instances that are still running stay."""
        removed = 0
        for name in os.listdir(self.path):
            if not name.startswith("spool-"):
                continue
            m = _PID_NAME.match(name)
            if m and _pid_alive(int(m.group(1))):
                continue
            try:
                os.unlink(os.path.join(self.path, name))
                removed += 1
            except OSError:
                pass
        if removed:
            log.info("removed %d leftover spool files from %s", removed, self.path)
        return removed

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
