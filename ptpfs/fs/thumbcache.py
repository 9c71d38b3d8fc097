"""``-o thumbnails=prefill``: the freedesktop thumbnail cache filled from the camera.

When a folder of the mount is listed, every image or video in it that the
camera has a thumbnail for gets
``$XDG_CACHE_HOME/thumbnails/normal/<md5 of its file:// URI>.png`` (at most
128x128, as the Thumbnail Managing Standard says for ``normal``) with the PNG
text keys ``Thumb::URI``, ``Thumb::MTime`` (the ``st_mtime`` ptpfs reports:
the camera's date, so it holds across remounts) and ``Thumb::Size``.  File
managers that find a valid thumbnail there show it without opening the file.
One background thread does the work, one small GetThumb at a time, so a
copy running meanwhile keeps the link.

The camera's thumbnails are JPEG and the cache wants PNG, so a JPEG decoder
and a PNG encoder are needed: Pillow (the optional extra ``ptpfs[thumbnails]``),
imported only when this option is used.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import queue
import tempfile
import threading
from typing import Any
from urllib.parse import quote

from ptpfs.errors import InvalidValue, PTPError

log = logging.getLogger("ptpfs.fs")

#: Longest side of a ``normal`` thumbnail.
NORMAL_SIZE = 128
#: Characters GLib's g_filename_to_uri leaves unescaped in a path (besides
#: letters, digits and ``-_.~``), so our URIs hash like the file managers' do.
_URI_SAFE = "/!$&'()*+,:=@"


def file_uri(path: str) -> str:
    """The ``file://`` URI of an absolute path, escaped as GLib escapes it."""
    raw = os.fsencode(os.path.abspath(path))
    return "file://" + quote(raw, safe=_URI_SAFE)


def cache_dir(environ: dict[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/thumbnails`` (``~/.cache/thumbnails`` when unset)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or
                                                     os.path.expanduser("~"), ".cache")
    return os.path.join(base, "thumbnails")


def thumbnail_path(uri: str, size: str = "normal", base: str | None = None) -> str:
    """Where the standard keeps the thumbnail of *uri*."""
    name = hashlib.md5(uri.encode("utf-8")).hexdigest() + ".png"
    return os.path.join(base or cache_dir(), size, name)


def require_pillow() -> None:
    """Fail with a clear message when Pillow is missing."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise InvalidValue("thumbnails=prefill needs Pillow to turn the camera's JPEG "
                           "thumbnails into PNG: pip install 'ptpfs[thumbnails]' "
                           "(or apt install python3-pil)") from None


def png_thumbnail(jpeg: bytes, uri: str, mtime: int, size: int) -> bytes:
    """A ``normal`` PNG thumbnail of *jpeg* carrying the standard's keys."""
    from PIL import Image, PngImagePlugin

    with Image.open(io.BytesIO(jpeg)) as image:
        image.draft("RGB", (NORMAL_SIZE, NORMAL_SIZE))   # JPEG: decode at a reduced scale
        picture = image.convert("RGB")
    picture.thumbnail((NORMAL_SIZE, NORMAL_SIZE))
    info = PngImagePlugin.PngInfo()
    info.add_text("Thumb::URI", uri)
    info.add_text("Thumb::MTime", str(mtime))
    info.add_text("Thumb::Size", str(size))
    info.add_text("Software", "ptpfs")
    out = io.BytesIO()
    picture.save(out, "PNG", pnginfo=info)
    return out.getvalue()


class Prefill:
    """Writes cache thumbnails for the media files of listed folders, in the background."""

    def __init__(self, mountpoint: str, thumbs: Any, *, base: str | None = None) -> None:
        require_pillow()
        self.mountpoint = os.path.abspath(mountpoint)
        self.thumbs = thumbs
        self.base = base or cache_dir()
        self.written = 0
        self.skipped = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._queued: set[int] = set()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="ptpfs-thumb-prefill",
                                        daemon=True)
        self._thread.start()

    def listed(self, children: Any) -> None:
        """A folder was listed: queue its media files (each once)."""
        from ptpfs.fs.thumbs import is_media

        for node in children:
            if node.is_dir or not is_media(node.name, node.format):
                continue
            with self._lock:
                if node.handle in self._queued:
                    continue
                self._queued.add(node.handle)
            self._idle.clear()
            self._queue.put(node)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is done (for tests and scripts)."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        """Finish the thread (queued work is dropped)."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            node = self._queue.get()
            if node is None:
                return
            try:
                self._one(node)
            except (PTPError, OSError, ValueError) as exc:
                log.info("thumbnail of %s not cached: %s", node.path, exc)
            except Exception:
                log.exception("thumbnail of %s not cached", node.path)
            finally:
                with self._lock:
                    self._queued.discard(node.handle)
                if self._queue.empty():
                    self._idle.set()

    def _one(self, node: Any) -> None:
        uri = file_uri(self.mountpoint + node.path)
        target = thumbnail_path(uri, "normal", self.base)
        mtime = int(node.mtime)
        if _cached_mtime(target) == mtime:
            self.skipped += 1
            return
        jpeg = self.thumbs.content(node)
        if not jpeg.strip(b"\0"):
            self.skipped += 1       # the camera has no thumbnail for it
            return
        png = png_thumbnail(jpeg, uri, mtime, node.size)
        directory = os.path.dirname(target)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ptpfs-", suffix=".png", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:      # mkstemp: mode 0600, as the standard asks
                f.write(png)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self.written += 1


def _cached_mtime(path: str) -> int | None:
    """Thumb::MTime of an existing cache file, ``None`` if absent or unreadable."""
    try:
        from PIL import Image, PngImagePlugin

        with Image.open(path) as image:
            if not isinstance(image, PngImagePlugin.PngImageFile):
                return None     # not a thumbnail this cache wrote (those are PNG)
            return int(image.text.get("Thumb::MTime", ""))
    except (OSError, ValueError, SyntaxError):
        return None
