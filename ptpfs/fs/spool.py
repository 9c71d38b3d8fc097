"""The private spool directory for downloads and uploads.

A 0700 directory owned by the user; every spool file is created 0600 and
unlinked at once, so nothing is left behind even if ptpfs is killed.  Files
that an older version or a crash left there are removed at start-up.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile

log = logging.getLogger("ptpfs.fs")


def default_spool_dir() -> str:
    """``$XDG_RUNTIME_DIR/ptpfs`` when usable, else ``$TMPDIR/ptpfs-UID``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return os.path.join(runtime, "ptpfs")
    return os.path.join(tempfile.gettempdir(), f"ptpfs-{os.getuid()}")


class SpoolDir:
    """A private directory for anonymous temporary files."""

    def __init__(self, path: str | None = None) -> None:
        self.path = os.path.abspath(path or default_spool_dir())
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
        """Remove leftover spool files of crashed runs; returns how many."""
        removed = 0
        for name in os.listdir(self.path):
            if name.startswith("spool-"):
                try:
                    os.unlink(os.path.join(self.path, name))
                    removed += 1
                except OSError:
                    pass
        if removed:
            log.info("removed %d leftover spool files from %s", removed, self.path)
        return removed

    def anonymous_file(self) -> int:
        """A new 0600 file, already unlinked; returns its descriptor."""
        fd, name = tempfile.mkstemp(prefix="spool-", dir=self.path)
        os.unlink(name)
        return fd
