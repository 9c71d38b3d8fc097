"""The FUSE filesystem: a PTP device as a folder (mfusepy on libfuse 3).

mfusepy picks libfuse 2 when both are installed; ptpfs is written for
libfuse 3, so the library is chosen here, before anything imports mfusepy:
by its soname when the dynamic loader finds it (mfusepy's own search runs
``ldconfig -p``, a process start that costs tenths of a second on a slow
host), else by name for mfusepy's search.
"""

import os as _os


def _choose_libfuse() -> None:
    if _os.environ.get("FUSE_LIBRARY_PATH") or _os.environ.get("FUSE_LIBRARY_NAME"):
        return
    import ctypes
    try:
        ctypes.CDLL("libfuse3.so.3")
    except OSError:
        _os.environ["FUSE_LIBRARY_NAME"] = "fuse3"
    else:
        _os.environ["FUSE_LIBRARY_PATH"] = "libfuse3.so.3"


_choose_libfuse()
