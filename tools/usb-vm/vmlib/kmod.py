"""Find kernel modules in an unpacked module tree and order them by their ``depends=`` field."""

from __future__ import annotations

import lzma
import struct
from pathlib import Path


class ModuleError(Exception):
    """A module is missing from the tree or its file cannot be read."""


def normalize(name: str) -> str:
    """Module names compare with dashes and underscores alike; use underscores."""
    return name.replace("-", "_")


def module_name(path: Path) -> str:
    """The module name of a ``.ko`` or ``.ko.xz`` file."""
    return normalize(path.name.split(".ko")[0])


def read_module(path: Path) -> bytes:
    """The ELF bytes of a ``.ko`` file, decompressing ``.ko.xz``."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        try:
            return lzma.decompress(data)
        except lzma.LZMAError as exc:
            raise ModuleError(f"{path}: {exc}") from exc
    return data


def modinfo(path: Path) -> dict[str, list[str]]:
    """Return the ``.modinfo`` section of a 64-bit little-endian ELF module as key -> values."""
    data = read_module(path)
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ModuleError(f"{path}: not a 64-bit little-endian ELF module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        name, = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    _, stroff, _ = section(shstrndx)
    info: dict[str, list[str]] = {}
    for index in range(shnum):
        name_off, offset, size = section(index)
        end = data.index(b"\0", stroff + name_off)
        if data[stroff + name_off:end] != b".modinfo":
            continue
        for item in data[offset:offset + size].split(b"\0"):
            key, sep, value = item.decode("utf-8", "replace").partition("=")
            if sep:
                info.setdefault(key, []).append(value)
    return info


def index_tree(moddir: Path) -> dict[str, Path]:
    """Map each module name (dashes as underscores) to its ``.ko``/``.ko.xz`` path under ``moddir``."""
    return {module_name(p): p for pattern in ("*.ko", "*.ko.xz") for p in moddir.rglob(pattern)}


def load_order(moddir: Path, wanted: list[str], builtin: set[str] | None = None) -> list[Path]:
    """Return the ``.ko`` files for ``wanted`` and everything they depend on, dependencies first.

    Names in ``builtin`` (from ``modules.builtin``) are compiled into the kernel and skipped.
    """
    tree = index_tree(moddir)
    builtin = {normalize(b) for b in (builtin or set())}
    order: list[Path] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = normalize(name)
        if name in done or name in builtin:
            return
        if name in chain:
            raise ModuleError(f"dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in tree:
            raise ModuleError(f"module {name!r} is neither in {moddir} nor built in")
        for values in modinfo(tree[name]).get("depends", []):
            for dep in filter(None, values.split(",")):
                visit(dep, chain + (name,))
        done.add(name)
        order.append(tree[name])

    for name in wanted:
        visit(name, ())
    return order


def read_builtin(moddir: Path) -> set[str]:
    """Names of built-in modules listed in ``modules.builtin`` (``kernel/.../name.ko`` lines)."""
    path = moddir / "modules.builtin"
    if not path.exists():
        return set()
    return {module_name(Path(line.strip())) for line in path.read_text().splitlines() if line.strip()}
