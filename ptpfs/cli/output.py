"""Text and JSON renderings of PTP datasets for the command lines.

Pure functions: a dataset in, lines or a JSON-ready dict out.  The text
shapes follow miniPtp, the tool ptpctl succeeds (``0x1001/PTP_GetDeviceInfo``
tokens, ``property_code: …, datatype: 0x2/uint8, current: 16`` lines and
``handle storage parent format size name`` file rows).
"""

from __future__ import annotations

from typing import Any

from ptpfs.protocol.codes import datatype_name, property_name, render
from ptpfs.protocol.datasets import DeviceInfo, DevicePropDesc, ObjectInfo, PropEnum, PropRange, StorageInfo
from ptpfs.services import properties

_ACCESS = {0: "rw", 1: "ro", 2: "ro+delete"}


def version_text(v: int) -> str:
    """PTP versions are hundredths: ``100`` -> ``1.00``."""
    return f"{v // 100}.{v % 100:02d}"


def format_value(value: Any) -> str:
    """A property value for humans: ints in decimal, strings as they are, arrays in brackets."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def json_value(value: Any) -> Any:
    """A property value as JSON (arrays become lists, bytes hex strings)."""
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def prop_value(code: int | None, value: Any) -> str:
    """A property value as ``-d`` shows it: ``1/125 (80)`` (human form and raw value) for
    properties that have a human form, the raw value alone for the others."""
    if code is not None and code in properties.HUMAN_FORMS and not isinstance(value, (list, tuple)):
        return properties.format_both(code, value)
    return format_value(value)


def describe_form(form: Any, code: int | None = None) -> str:
    """``range 1..100 step 1``, ``enum [1, 2, 3]`` or ``""`` when there is no form;
    with the property *code*, values that have a human form show both (``1/250 (40)``)."""
    if isinstance(form, PropRange):
        return (f"range {prop_value(code, form.minimum)}..{prop_value(code, form.maximum)} "
                f"step {format_value(form.step)}")
    if isinstance(form, PropEnum):
        return "enum [" + ", ".join(_enum_item(code, v) for v in form.values) + "]"
    return ""


def _enum_item(code: int | None, v: Any) -> str:
    if isinstance(v, str) and not (code is not None and code in properties.HUMAN_FORMS):
        return repr(v)
    return prop_value(code, v)


def access_text(get_set: int) -> str:
    """``rw`` for settable properties, ``ro`` otherwise."""
    return "rw" if get_set else "ro"


def code_token(kind: str, code: int) -> str:
    """``0x1001/PTP_GetDeviceInfo`` or bare ``0x902f`` for unknown codes."""
    return render(kind, code)


def datatype_token(datatype: int) -> str:
    """The seed's ``0x2/uint8`` form."""
    return f"0x{datatype:x}/{datatype_name(datatype)}"


def prop_desc_line(desc: DevicePropDesc) -> str:
    """``property_code: 0x5001/BatteryLevel, datatype: 0x2/uint8, current: 16, access: ro, …``;
    ``current: 1/125 (80)`` where the property has a human form."""
    parts = [f"property_code: {code_token('property', desc.code)}",
             f"datatype: {datatype_token(desc.datatype)}",
             f"current: {prop_value(desc.code, desc.current)}",
             f"default: {prop_value(desc.code, desc.factory_default)}",
             f"access: {access_text(desc.get_set)}"]
    allowed = describe_form(desc.form, desc.code)
    if allowed:
        parts.append(f"allowed: {allowed}")
    return ", ".join(parts)


def prop_desc_json(desc: DevicePropDesc) -> dict[str, Any]:
    """A DevicePropDesc as a JSON object."""
    out: dict[str, Any] = {
        "code": desc.code, "name": property_name(desc.code), "datatype": desc.datatype,
        "datatype_name": datatype_name(desc.datatype), "access": access_text(desc.get_set),
        "current": json_value(desc.current), "default": json_value(desc.factory_default),
        "current_text": properties.format_value(desc.code, desc.current),
        "default_text": properties.format_value(desc.code, desc.factory_default),
        "form": None}
    if isinstance(desc.form, PropRange):
        out["form"] = {"range": {"min": desc.form.minimum, "max": desc.form.maximum,
                                 "step": desc.form.step}}
    elif isinstance(desc.form, PropEnum):
        out["form"] = {"enum": [json_value(v) for v in desc.form.values]}
    return out


def code_json(kind: str, code: int) -> dict[str, Any]:
    """``{"code": 4097, "hex": "0x1001", "name": "PTP_GetDeviceInfo"}`` (name null if unknown)."""
    token = render(kind, code)
    hexed, _, name = token.partition("/")
    return {"code": code, "hex": hexed, "name": name or None}


def device_info_lines(info: DeviceInfo) -> list[str]:
    """The DeviceInfo dataset, one ``Field: value`` line each."""
    def tokens(kind: str, codes: tuple[int, ...]) -> str:
        return " ".join(render(kind, c) for c in codes) or "-"

    return [
        f"Manufacturer: {info.manufacturer}",
        f"Model: {info.model}",
        f"Device version: {info.device_version}",
        f"Serial number: {info.serial_number}",
        f"Standard version: {version_text(info.standard_version)}",
        f"Vendor extension: 0x{info.vendor_extension_id:08x} version "
        f"{version_text(info.vendor_extension_version)} {info.vendor_extension_desc!r}",
        f"Functional mode: 0x{info.functional_mode:04x}",
        f"Operations supported: {len(info.operations_supported)} (-o lists them)",
        f"Events supported: {tokens('event', info.events_supported)}",
        f"Properties supported: {len(info.device_properties_supported)} (-p lists them)",
        f"Capture formats: {tokens('format', info.capture_formats)}",
        f"Image formats: {tokens('format', info.image_formats)}",
    ]


def device_info_json(info: DeviceInfo) -> dict[str, Any]:
    """The DeviceInfo dataset as a JSON object (codes as numbers)."""
    return {
        "manufacturer": info.manufacturer, "model": info.model,
        "device_version": info.device_version, "serial_number": info.serial_number,
        "standard_version": info.standard_version,
        "vendor_extension_id": info.vendor_extension_id,
        "vendor_extension_version": info.vendor_extension_version,
        "vendor_extension_desc": info.vendor_extension_desc,
        "functional_mode": info.functional_mode,
        "operations_supported": list(info.operations_supported),
        "events_supported": list(info.events_supported),
        "device_properties_supported": list(info.device_properties_supported),
        "capture_formats": list(info.capture_formats),
        "image_formats": list(info.image_formats),
    }


def storage_line(index: int, storage_id: int, info: StorageInfo | None) -> str:
    """``+ storage 0: 0x00010001 'SD' type 4 fs 3 rw capacity … free …``."""
    if info is None:
        return f"+ storage {index}: 0x{storage_id:08x} (not present)"
    return (f"+ storage {index}: 0x{storage_id:08x} {info.storage_description!r} "
            f"type {info.storage_type} fs {info.filesystem_type} "
            f"{_ACCESS.get(info.access_capability, str(info.access_capability))} "
            f"capacity {info.max_capacity} free {info.free_space_bytes}")


def storage_json(index: int, storage_id: int, info: StorageInfo | None) -> dict[str, Any]:
    """A storage and its StorageInfo (``null`` when the storage is not present)."""
    out: dict[str, Any] = {"index": index, "id": storage_id, "present": info is not None}
    if info is not None:
        out.update(description=info.storage_description, volume_label=info.volume_label,
                   storage_type=info.storage_type, filesystem_type=info.filesystem_type,
                   access=_ACCESS.get(info.access_capability, info.access_capability),
                   max_capacity=info.max_capacity, free_space_bytes=info.free_space_bytes,
                   free_space_objects=info.free_space_objects)
    return out


def object_row(handle: int, info: ObjectInfo, size: int) -> str:
    """``01a0aee1 00010001 01a00000 3801 4952866 IMG_2798.JPG`` (the seed's listing)."""
    return (f"{handle:08x} {info.storage_id:08x} {info.parent:08x} {info.object_format:04x} "
            f"{size} {info.filename}")


def object_json(handle: int, info: ObjectInfo, size: int, path: str) -> dict[str, Any]:
    """An object of the listing as a JSON object."""
    return {"handle": handle, "storage": info.storage_id, "parent": info.parent,
            "format": info.object_format, "format_name": render("format", info.object_format),
            "size": size, "name": info.filename, "path": path, "folder": info.is_folder,
            "protection": info.protection_status, "captured": info.capture_date,
            "modified": info.modification_date}
