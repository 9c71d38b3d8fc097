"""The library examples of docs/library.md and the README run as written.

Every ```python block is executed in order (one namespace per page, in a scratch directory)
against simulated cameras this test holds, so it can check what the examples did on the
camera side: the MAC address read, the property set, the firmware image received.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest

from ptpfs import connect
from ptpfs.protocol.codes import DPC
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.transport.inprocess import InProcessTransport

PROJECT = Path(__file__).resolve().parents[1]


def python_blocks(page: str) -> list[str]:
    text = (PROJECT / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


@pytest.fixture
def cameras(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """``open_session`` gives in-process sessions on cameras the test keeps (in order)."""
    made: list[Any] = []

    def fake_open_session(spec: str, **kw: Any) -> Session:
        parsed = connect.parse_spec(spec)
        assert parsed.kind == "sim", spec
        camera = make_camera(None, parsed.profile or connect.DEFAULT_PROFILE,
                             folders=1, files_per_folder=2)
        made.append(camera)
        return Session(InProcessTransport(camera)).open()

    monkeypatch.setattr(connect, "open_session", fake_open_session)
    monkeypatch.chdir(tmp_path)
    yield made
    for camera in made:
        camera.store.close()


def test_library_page_examples(cameras: list[Any], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks("docs/library.md")
    assert len(blocks) >= 6
    firmware = os.urandom(2 * 0x200000 + 12345)          # three data phases, the last short
    (tmp_path / "EOSR6150.FIR").write_bytes(firmware)
    namespace: dict[str, Any] = {"__name__": "library_docs"}
    for block in blocks:
        exec(compile(block, "docs/library.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "InvalidObjectHandle [] 0" in out and "not OK: InvalidObjectHandle" in out
    assert "Canon_GetMacAddress: OperationNotSupported (0x2005)" in out
    eos = [c for c in cameras if c.firmware is not None]
    assert len(eos) == 1
    image = eos[0].firmware
    assert (image.name, image.length) == ("EOSR6150.FIR", len(firmware))
    assert image.sha256 == hashlib.sha256(firmware).hexdigest()
    assert f"{len(firmware)} bytes sent" in out
    mac_lines = re.findall(r"^([0-9a-f]{2}(?::[0-9a-f]{2}){5})$", out, re.MULTILINE)
    assert len(mac_lines) == 1
    assert "1/125 (80)\n40\n" in out
    assert any(c.properties.value(DPC.ExposureTime) == 40 for c in cameras if
               DPC.ExposureTime in c.properties.codes())


def test_readme_library_example(cameras: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = python_blocks("README.md")
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)
    assert "Canon EOS" in capsys.readouterr().out
    (camera,) = cameras
    obj = camera.store.get(namespace["h"])               # the last object listed
    assert Path("out.jpg").read_bytes() == obj.read(0, obj.size) and obj.size > 0


@pytest.mark.parametrize("name", ["DeviceInfo", "StorageInfo", "ObjectInfo", "DevicePropDesc",
                                  "ObjectPropEntry", "PropRange", "PropEnum"])
def test_every_dataset_field_is_documented(name: str) -> None:
    import dataclasses

    from ptpfs.protocol import datasets

    cls = getattr(datasets, name)
    page = (PROJECT / "docs" / "library.md").read_text(encoding="utf-8")
    for field in dataclasses.fields(cls):
        assert field.name in (cls.__doc__ or ""), f"{name}.{field.name} not in its docstring"
        assert f"`{field.name}`" in page or f"({field.name}" in page or f", {field.name}" in page, \
            f"{name}.{field.name} not in docs/library.md"
