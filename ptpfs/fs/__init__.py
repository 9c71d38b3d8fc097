"""The FUSE filesystem: a PTP device as a folder (mfusepy on libfuse 3).

mfusepy picks libfuse 2 when both are installed; ptpfs is written for
libfuse 3, so the library name is chosen here, before anything imports
mfusepy.
"""

import os as _os

_os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
