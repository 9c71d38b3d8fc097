"""The layering rule: each layer imports only those below it.

protocol (pure codec) -> transport -> sim -> session -> connect -> services -> fs -> cli.
The filesystem never builds containers; the protocol never does I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ptpfs"

RANK = {
    "ptpfs.errors": 0,
    "ptpfs.protocol": 1,
    "ptpfs.transport": 2,
    "ptpfs.sim": 3,
    "ptpfs.capabilities": 4,
    "ptpfs.session": 5,
    "ptpfs.connect": 6,
    "ptpfs.services": 6.5,
    "ptpfs.fs": 7,
    "ptpfs.cli": 8,
}

#: Modules that move bytes; the pure codec must not import them.
IO_MODULES = {"socket", "select", "usb", "threading", "subprocess", "os", "mfusepy", "fuse"}


def _layer(module: str) -> str | None:
    for name in sorted(RANK, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_lower_layers(path: Path) -> None:
    me = _module_name(path)
    my_layer = _layer(me)
    if my_layer is None:  # the package's own __init__
        return
    for imported in _imports(path):
        layer = _layer(imported)
        if layer is None or layer == my_layer:
            continue
        if me == "ptpfs.errors" and imported == "ptpfs.protocol.codes":
            continue  # response and operation names for messages: a pure table
        assert RANK[layer] < RANK[my_layer], f"{me} imports {imported} from a higher layer"


@pytest.mark.parametrize("path", sorted((PACKAGE / "protocol").glob("*.py")),
                         ids=lambda p: p.name)
def test_protocol_is_pure(path: Path) -> None:
    for imported in _imports(path):
        assert imported.split(".")[0] not in IO_MODULES, f"{path.name} imports {imported}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "fs").glob("*.py")), ids=lambda p: p.name)
def test_filesystem_never_builds_containers(path: Path) -> None:
    for imported in _imports(path):
        assert imported not in {"ptpfs.protocol.container", "ptpfs.protocol.ptpip"}, imported
        assert not imported.startswith("ptpfs.transport"), f"{path.name} imports {imported}"
