"""The layering rule: each layer imports only those below it.

protocol (pure codec) -> transport -> sim -> session -> connect -> services (device
services: listing, naming, upload confirmation, property values) -> fs and cli.  The filesystem never builds containers;
the protocol never does I/O; the command line reaches the device through services, not
through the filesystem package.
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
    "ptpfs.testing": 3.5,   # test machinery over the simulator; not installed
    "ptpfs.capabilities": 4,
    "ptpfs.session": 5,
    "ptpfs.connect": 6,
    "ptpfs.services": 7,
    "ptpfs.fs": 8,
    "ptpfs.cli": 9,
}

#: The one command-line module that may import the filesystem: the mount program,
#: the filesystem's own front end.  Everything else in cli/ reaches the device through
#: ptpfs.services (listing, naming, upload confirmation, property values).
MOUNT_PROGRAM = "ptpfs_main.py"

#: Modules that move bytes; the pure codec must not import them.
IO_MODULES = {"socket", "select", "usb", "threading", "subprocess", "os", "mfusepy", "fuse"}


#: Modules that belong to another module's layer.
SAME_LAYER = {"ptpfs.session_link": "ptpfs.session"}


def _layer(module: str) -> str | None:
    module = SAME_LAYER.get(module, module)
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


#: Modules that move PTP bytes over a wire, on either side; they leave the transaction
#: sequence to ``ptpfs.protocol.transaction`` (``transport/inprocess.py`` has no wire: it
#: calls the responder's methods).
WIRE_PUMPS = ["transport/usb.py", "transport/ptpip.py", "sim/usb_backend.py",
              "sim/ptpip_server.py", "testing/hostile.py"]


def _names(node: ast.AST) -> set[str]:
    """Every identifier and attribute name in an expression."""
    out: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
    return out


def _sequencing(name: str) -> bool:
    """Names that carry the transaction sequence: transaction IDs, container and packet types."""
    return (name in {"transaction_id", "tid", "type", "ptype", "ctype"}
            or name.startswith(("TYPE_", "_T_")) or name.endswith("_tid"))


@pytest.mark.parametrize("rel", WIRE_PUMPS)
def test_wire_pumps_do_not_sequence_transactions(rel: str) -> None:
    """Transports and servers use the one transaction machine and compare no transaction
    IDs or container/packet types themselves (building packets with them is fine)."""
    path = PACKAGE / rel
    assert "ptpfs.protocol.transaction" in _imports(path), f"{rel} bypasses the machine"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            found = {n for part in [node.left, *node.comparators] for n in _names(part)
                     if _sequencing(n)}
            assert not found, f"{rel}:{node.lineno} compares {sorted(found)} itself"


@pytest.mark.parametrize("path", sorted(p for p in (PACKAGE / "cli").glob("*.py")
                                         if p.name != MOUNT_PROGRAM), ids=lambda p: p.name)
def test_cli_does_not_import_the_filesystem(path: Path) -> None:
    for imported in _imports(path):
        assert not imported.startswith("ptpfs.fs"), f"cli/{path.name} imports {imported}"


def test_services_sit_between_session_and_its_users() -> None:
    assert RANK["ptpfs.session"] < RANK["ptpfs.services"] < min(RANK["ptpfs.fs"], RANK["ptpfs.cli"])
    users = [p for p in (*(PACKAGE / "fs").glob("*.py"), *(PACKAGE / "cli").glob("*.py"))
             if "ptpfs.services.properties" in _imports(p) or "ptpfs.services" in _imports(p)]
    names = {p.relative_to(PACKAGE).as_posix() for p in users}
    assert {"fs/virtual.py", "cli/ptpctl.py"} <= names, names


def test_one_listing_and_size_fallback_for_mount_and_ptpctl() -> None:
    """The mount and ptpctl list objects and size them (ObjectSize for 4 GiB and more)
    with the same services code, not each its own copy."""
    users = {p.relative_to(PACKAGE).as_posix()
             for p in (*(PACKAGE / "fs").glob("*.py"), *(PACKAGE / "cli").glob("*.py"))
             if "ptpfs.services.listing" in _imports(p)}
    assert {"fs/tree.py", "cli/ptpctl.py"} <= users, users
    for path in SOURCES:
        if path.parent.name in {"fs", "cli"}:
            text = path.read_text(encoding="utf-8")
            assert "0xDC04" not in text and "OPC_SIZE" not in text, path.name


def test_test_machinery_is_not_installed_nor_imported_by_the_package() -> None:
    """ptpfs.testing ships with the source tree only: pyproject.toml leaves it out of the
    installed package, and only connect.py's opt-in PTPFS_TEST_USB_SIM hook reaches it."""
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'exclude = ["ptpfs.testing*"]' in pyproject
    for path in SOURCES:
        if path.parent.name == "testing":
            continue
        users = [m for m in _imports(path) if m.startswith("ptpfs.testing")]
        if path.name == "connect.py":
            assert users == ["ptpfs.testing"], users
        else:
            assert not users, f"{path.relative_to(PACKAGE)} imports {users}"

