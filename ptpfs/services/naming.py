"""Making untrusted device names safe and unique within a folder.

Names come from the device (ObjectInfo filenames, storage descriptions) and
cannot be trusted: they may contain ``/`` or NUL, be ``.`` or ``..``, carry
control characters or exceed the 255-byte limit of a Linux file name.
:func:`sanitize` turns any string into a valid single path component, and
:func:`unique_names` makes the names of one folder unique deterministically
(the lowest handle keeps the plain name, later ones get ``~2``, ``~3``...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NAME_MAX = 255  # bytes, UTF-8


def _fits(name: str, limit: int = NAME_MAX) -> str:
    """Shorten *name* to at most *limit* UTF-8 bytes, keeping its extension."""
    if len(name.encode("utf-8", "surrogatepass")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8", "surrogatepass")) > 16:
        stem, ext = name, ""
    suffix = ("." + ext) if ext else ""
    budget = limit - len(suffix.encode("utf-8"))
    out = stem.encode("utf-8", "surrogatepass")[:budget].decode("utf-8", "ignore")
    return out + suffix


_UNSAFE = re.compile("[/\x00-\x1f\x7f\ud800-\udfff]")


def sanitize(name: str | None, fallback: str = "_") -> str:
    """Return *name* as a safe single path component (never empty, ``.``, ``..``);
    a name that is safe already is returned as is (the same object: no copy)."""
    if not name:
        return fallback
    if (len(name) <= 63 and name not in (".", "..") and _UNSAFE.search(name) is None):
        return name         # 63 characters are at most 252 UTF-8 bytes
    chars = []
    for ch in name:
        code = ord(ch)
        if ch == "/" or code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            chars.append("_")
        else:
            chars.append(ch)
    safe = "".join(chars)
    if safe in (".", ".."):
        safe = safe.replace(".", "_")
    safe = _fits(safe)
    return safe or fallback


def with_suffix(name: str, n: int) -> str:
    """``IMG_0001.JPG`` -> ``IMG_0001~2.JPG`` for *n* = 2, within NAME_MAX."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    tail = f"~{n}" + (("." + ext) if ext else "")
    budget = NAME_MAX - len(tail.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return stem + tail


def unique_names(items: Iterable[tuple[int, str]],
                 reserved: Iterable[str] = ()) -> dict[int, str]:
    """Map each ``(key, raw_name)`` to a sanitised name unique among them.

    Deterministic: keys are processed in ascending order; the lowest key with
    a given name keeps it; later duplicates get the first free ``~N`` suffix
    that no other object uses as its plain name.  Comparison is exact
    (case-sensitive), like the Linux filesystems programs expect.
    """
    ordered = sorted((key, sanitize(raw)) for key, raw in items)
    taken = set(reserved)
    result: dict[int, str] = {}
    duplicates: list[tuple[int, str]] = []
    for key, name in ordered:
        if name in taken:
            duplicates.append((key, name))
        else:
            taken.add(name)
            result[key] = name
    next_suffix: dict[str, int] = {}  # per base name, so thousands of twins stay linear
    for key, name in duplicates:
        n = next_suffix.get(name, 2)
        while (candidate := with_suffix(name, n)) in taken:
            n += 1
        next_suffix[name] = n + 1
        taken.add(candidate)
        result[key] = candidate
    return result
