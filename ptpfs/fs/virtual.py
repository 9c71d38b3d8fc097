"""The ``/.ptp`` directory: device facts and settable properties as files.

``device``, ``operations``, ``events``, ``formats``, ``properties``,
``storages``, ``stats`` and ``events.log`` are read-only text files; their
content is computed when they are looked at (getattr/open) so ``stat``,
``wc -c`` and ``cat`` agree.  ``properties.d/<Name>`` holds one property's
current value; writing a value to a settable property sets it on the camera
(``echo 1/250 > .ptp/properties.d/ExposureTime``).  Values are parsed,
formatted and checked by :mod:`ptpfs.services.properties`, the same code
``ptpctl --set-property`` uses.  ``thumbs/`` mirrors the
storages with the camera's thumbnails (see :mod:`ptpfs.fs.thumbs`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from ptpfs.errors import InvalidValue, PTPError
from ptpfs.fs.thumbs import INO_THUMBS_DIR, Thumbs
from ptpfs.fs.tree import Tree
from ptpfs.protocol.datasets import DevicePropDesc
from ptpfs.services.naming import unique_names
from ptpfs.session import Session

log = logging.getLogger("ptpfs.fs")

INO_VIRTUAL = 2            # /.ptp
INO_VIRTUAL_FILES = 3      # 3.. for the fixed files
INO_PROPS_DIR = 100
INO_PROPERTY = 1 << 39     # | property code


# ----------------------------------------------------------------- the files
@dataclass
class VNode:
    """A virtual directory or file."""

    name: str
    ino: int
    is_dir: bool = False
    writable: bool = False
    prop: int | None = None
    target: Any = None      # for thumbs/ entries: the tree node they stand for


class Virtual:
    """Content of the ``/.ptp`` tree for one session."""

    FILES = ("device", "operations", "events", "formats", "properties", "storages",
             "stats", "events.log")

    def __init__(self, session: Session, tree: Tree, *, ttl: float = 30.0) -> None:
        self.session = session
        self.tree = tree
        self._lock = threading.RLock()
        self._descs: TTLCache[int, DevicePropDesc] = TTLCache(maxsize=512, ttl=ttl)
        self._prop_names: dict[str, int] | None = None
        self.root = VNode(".ptp", INO_VIRTUAL, is_dir=True)
        self.props_dir = VNode("properties.d", INO_PROPS_DIR, is_dir=True)
        self.files = {name: VNode(name, INO_VIRTUAL_FILES + i)
                      for i, name in enumerate(self.FILES)}
        self.generators: dict[str, Callable[[], str]] = {
            "device": self._device, "operations": self._operations, "events": self._events,
            "formats": self._formats, "properties": self._properties,
            "storages": self._storages, "stats": self._stats, "events.log": self._event_log,
        }
        tree.prop_listeners.append(self.property_changed)
        self.thumbs = Thumbs(session, tree, ttl=ttl)
        self.thumbs_dir = VNode("thumbs", INO_THUMBS_DIR, is_dir=True, target=tree.root)

    # -- structure ---------------------------------------------------------------
    def lookup(self, parts: list[str]) -> VNode:
        """Resolve path components below ``/.ptp``; FileNotFoundError if absent."""
        if not parts:
            return self.root
        if parts[0] == "thumbs":
            return self._thumb_vnode(parts[-1], self.thumbs.lookup(parts[1:]))
        if parts[0] == "properties.d":
            if len(parts) == 1:
                return self.props_dir
            if len(parts) == 2:
                code = self.property_names().get(parts[1])
                if code is not None:
                    desc = self.desc(code)
                    return VNode(parts[1], INO_PROPERTY | code, writable=desc.writable, prop=code)
        elif len(parts) == 1 and parts[0] in self.files:
            return self.files[parts[0]]
        raise FileNotFoundError("/".join(parts))

    def list(self, node: VNode) -> list[VNode]:
        """Children of a virtual directory."""
        if node is self.root:
            return [self.props_dir, self.thumbs_dir, *self.files.values()]
        if node.target is not None:
            return [self._thumb_vnode(name, n) for name, n in self.thumbs.children(node.target)]
        return [self.lookup(["properties.d", name]) for name in self.property_names()]

    def _thumb_vnode(self, name: str, node: Any) -> VNode:
        if node.kind == "root":
            return self.thumbs_dir
        return VNode(name, self.thumbs.ino(node), is_dir=node.is_dir, target=node)

    def stat_hint(self, node: VNode) -> tuple[int, float] | None:
        """Size and mtime of a ``thumbs/`` entry (``None`` for other virtual files)."""
        if node.target is None:
            return None
        target = node.target
        mtime = target.mtime or self.tree.root.mtime
        return (0 if target.is_dir else self.thumbs.size(target)), mtime

    def property_names(self) -> dict[str, int]:
        """File name -> property code for the device's properties."""
        with self._lock:
            if self._prop_names is None:
                from ptpfs.protocol.codes import property_name
                codes = list(self.session.device_info.device_properties_supported)
                names = unique_names((c, property_name(c)) for c in codes)
                self._prop_names = {names[c]: c for c in codes}
            return self._prop_names

    def desc(self, code: int) -> DevicePropDesc:
        """The property's descriptor (cached until DevicePropChanged)."""
        with self._lock:
            desc = self._descs.get(code)
        if desc is None:
            desc = self.session.get_device_prop_desc(code)
            with self._lock:
                self._descs[code] = desc
        return desc

    def property_changed(self, code: int) -> None:
        """DevicePropChanged: re-read on next access."""
        with self._lock:
            self._descs.pop(code, None)

    # -- content ------------------------------------------------------------------
    def content(self, node: VNode) -> bytes:
        """The current bytes of a virtual file."""
        if node.target is not None:
            return self.thumbs.content(node.target)
        if node.prop is not None:
            from ptpfs.services.properties import format_value  # not at mount time (slow hosts)
            desc = self.desc(node.prop)
            return (format_value(desc.code, desc.current) + "\n").encode()
        return self.generators[node.name]().encode("utf-8", "replace")

    def write_property(self, node: VNode, text: str) -> None:
        """Parse, validate and set a property from what was written to its file."""
        if node.prop is None or not node.writable:
            raise PermissionError(node.name)
        from ptpfs.services.properties import check_value
        desc = self.desc(node.prop)
        try:
            value = check_value(desc, text)
        except InvalidValue as exc:
            log.warning("property %s: %s", node.name, exc)
            raise
        self.session.set_device_prop_value(desc.code, value, desc.datatype)
        self.property_changed(desc.code)

    def _device(self) -> str:
        info = self.session.device_info
        from ptpfs.protocol.codes import render
        lines = [
            f"Manufacturer: {info.manufacturer}",
            f"Model: {info.model}",
            f"DeviceVersion: {info.device_version}",
            f"SerialNumber: {info.serial_number}",
            f"StandardVersion: {info.standard_version}",
            f"VendorExtensionID: 0x{info.vendor_extension_id:08x}",
            f"VendorExtensionVersion: {info.vendor_extension_version}",
            f"VendorExtensionDesc: {info.vendor_extension_desc}",
            f"FunctionalMode: {info.functional_mode}",
            f"Operations: {len(info.operations_supported)}",
            f"Events: {len(info.events_supported)}",
            f"Properties: {len(info.device_properties_supported)}",
            "CaptureFormats: " + " ".join(render("format", c) for c in info.capture_formats),
            "ImageFormats: " + " ".join(render("format", c) for c in info.image_formats),
        ]
        caps = self.session.capabilities
        lines.append("Capabilities: " + " ".join(
            f"{k}={getattr(caps, k)}" for k in ("prop_list", "eos_listing", "partial_read", "rename",
                                                "move", "eos_events", "upload", "delete")))
        return "\n".join(lines) + "\n"

    def _code_lines(self, kind: str, codes: Any) -> str:
        from ptpfs.protocol.codes import render
        return "".join(render(kind, c) + "\n" for c in codes)

    def _operations(self) -> str:
        return self._code_lines("operation", self.session.device_info.operations_supported)

    def _events(self) -> str:
        return self._code_lines("event", self.session.device_info.events_supported)

    def _formats(self) -> str:
        info = self.session.device_info
        seen: list[int] = []
        for code in (*info.capture_formats, *info.image_formats):
            if code not in seen:
                seen.append(code)
        return self._code_lines("format", seen)

    def _properties(self) -> str:
        from ptpfs.protocol.codes import datatype_name, render
        from ptpfs.services.properties import describe_form, format_value
        lines = []
        for code in self.property_names().values():
            try:
                desc = self.desc(code)
            except PTPError as exc:
                lines.append(f"{render('property', code)}\t?\t?\t-\t({exc})")
                continue
            lines.append("\t".join([
                render("property", code), datatype_name(desc.datatype),
                format_value(code, desc.current),
                "rw" if desc.writable else "ro", describe_form(desc)]))
        return "".join(line + "\n" for line in lines)

    def _storages(self) -> str:
        access = {0: "read-write", 1: "read-only", 2: "read-only-with-delete"}
        lines = []
        for name, node in self.tree.storages().items():
            info = node.info
            lines.append("\t".join([
                f"0x{node.storage_id:08x}", name, access.get(info.access_capability, "?"),
                f"capacity={info.max_capacity}", f"free={info.free_space_bytes}",
                f"type={info.storage_type}", f"fs={info.filesystem_type}",
                f"description={info.storage_description}", f"label={info.volume_label}"]))
        return "".join(line + "\n" for line in lines)

    def _stats(self) -> str:
        stats = self.session.stats
        lines = [f"transactions: {stats.transactions}", f"bytes_in: {stats.bytes_in}",
                 f"bytes_out: {stats.bytes_out}", f"listing: {self.tree.lister.name}"]
        for code, count in sorted(getattr(stats, "per_operation", {}).items()):
            from ptpfs.protocol.codes import render
            lines.append(f"op {render('operation', code)}: {count}")
        return "\n".join(lines) + "\n"

    def _event_log(self) -> str:
        return "".join(line + "\n" for line in list(self.tree.events))
