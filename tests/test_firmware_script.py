"""scripts/update_canon_firmware.py against the simulated Canon EOS camera."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType

import pytest

from ptpfs.connect import open_session
from ptpfs.errors import ResponseError
from ptpfs.protocol.codes import OC
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "scripts" / "update_canon_firmware.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("update_canon_firmware", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fw = _load_script()


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    """A firmware image spanning three data phases, the last one short."""
    path = tmp_path / "EOSR6150.FIR"
    path.write_bytes(random.Random(3).randbytes(2 * fw.FIRM_CHUNK_LEN + 12_345))
    return path


@pytest.fixture
def eos_server():
    camera = make_camera(None, "canon-eos", folders=1, files_per_folder=2,
                         jpeg_size=1000, raw_size=1000)
    server = PtpipServer(camera).start()
    try:
        yield camera, f"ptpip:127.0.0.1:{server.port}"
    finally:
        server.stop()
        camera.close()


def test_filename_field() -> None:
    assert fw.filename_field("/x/EOSR6150.FIR") == b"EOSR6150.FIR" + b"\0" * 20
    assert len(fw.filename_field("a" * 32)) == 32
    with pytest.raises(ValueError, match="1..32 bytes"):
        fw.filename_field("a" * 33)
    assert fw.PTP_DATA_LEN == 0x200000 and fw.FIRM_CHUNK_LEN == 0x200000 - 32


def test_update_verified_by_camera(eos_server, firmware: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    camera, spec = eos_server
    assert fw.main(["--device", spec, str(firmware)]) == 0
    out = capsys.readouterr().out
    assert "update operation is supported" in out
    assert f"done: sent {firmware.stat().st_size} bytes in 3 data phases" in out
    image = camera.firmware
    assert image is not None
    assert image.name == "EOSR6150.FIR"
    assert image.length == firmware.stat().st_size
    assert image.sha256 == hashlib.sha256(firmware.read_bytes()).hexdigest()
    assert camera.stats.count(OC.EOS_UpdateFirmware) == 3


def test_camera_without_the_operation(tmp_path: Path, firmware: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert fw.main(["--device", "sim?profile=generic", str(firmware)]) == 1
    err = capsys.readouterr().err
    assert err == ("update_canon_firmware: not supported: the camera does not offer "
                   "0x911f/EOS_UpdateFirmware\n")


def test_stops_on_first_error_response(eos_server, firmware: Path) -> None:
    camera, spec = eos_server
    session = open_session(spec, timeout=5)
    session.busy_retries = 1
    try:
        camera.faults.busy(100)  # more than the session retries
        with pytest.raises(ResponseError) as info:
            fw.send_firmware(session, str(firmware))
        assert info.value.name == "DeviceBusy"
        assert info.value.operation == OC.EOS_UpdateFirmware
    finally:
        camera.faults.busy(0)
        session.close()
    assert camera.firmware is None
    sent = camera.stats.count(OC.EOS_UpdateFirmware)
    assert sent == session.busy_retries + 1  # only the first data phase, retried


def test_empty_image_is_refused_before_sending(eos_server, firmware: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    camera, spec = eos_server
    firmware.write_bytes(b"")  # the camera is never asked: empty images are refused here
    assert fw.main(["--device", spec, str(firmware)]) == 2
    assert "empty firmware file" in capsys.readouterr().err
    assert camera.stats.count(OC.EOS_UpdateFirmware) == 0


def _peak_memory(path: Path) -> int:
    tracemalloc.start()
    try:
        assert fw.main(["--device", "sim?profile=canon-eos", str(path)]) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    small, big = tmp_path / "SMALL.FIR", tmp_path / "BIG.FIR"
    small.write_bytes(random.Random(1).randbytes(3 << 20))
    with open(big, "wb") as f:
        for i in range(12):
            f.write(random.Random(i).randbytes(2 << 20))
    small_peak, big_peak = _peak_memory(small), _peak_memory(big)
    assert "in 13 data phases" in capsys.readouterr().out
    # a few 2 MiB chunk buffers in the script, session and simulator; never the whole 24 MiB
    assert big_peak < small_peak + (1 << 20), (small_peak, big_peak)
    assert big_peak < big.stat().st_size // 2


def test_script_runs_as_a_program(firmware: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPFS_TEST_")}
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "sim?profile=canon-eos",
                           "-v", str(firmware)], capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "camera: Canon Inc. Canon EOS R6" in done.stdout
    assert done.stderr.count("transaction: file EOSR6150.FIR") == 3
    missing = subprocess.run([sys.executable, str(SCRIPT), "--device", "sim?profile=canon-eos",
                              str(firmware.with_name("NOPE.FIR"))], capture_output=True,
                             text=True, timeout=60, env=env)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_ptpctl_firmware_runs_the_same_update(eos_server, firmware: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``ptpctl firmware`` is the script's code (not a copy): same transfer, same checks."""
    from ptpfs.cli import ptpctl
    from ptpfs.services import firmware as service

    assert fw.send_firmware is service.send_firmware
    camera, spec = eos_server
    assert ptpctl.main(["firmware", "--device", spec, "-v", str(firmware)]) == 0
    captured = capsys.readouterr()
    assert f"done: sent {firmware.stat().st_size} bytes in 3 data phases" in captured.out
    assert captured.err.count("transaction: file EOSR6150.FIR") == 3
    assert camera.firmware is not None
    assert camera.firmware.sha256 == hashlib.sha256(firmware.read_bytes()).hexdigest()
    assert ptpctl.main(["firmware", "--device", "sim?profile=generic", str(firmware)]) == 1
    assert capsys.readouterr().err.startswith("ptpctl firmware: not supported:")


def test_ptpctl_firmware_is_documented_and_completed() -> None:
    from ptpfs.cli.firmware import build_parser

    man = (PROJECT / "docs" / "man" / "ptpctl.1").read_text()
    section = man.split(".SH FIRMWARE", 1)[1].split(".SH ", 1)[0].replace("\\-", "-")
    bash = (PROJECT / "contrib" / "completion" / "ptpfs.bash").read_text()
    zsh = (PROJECT / "contrib" / "completion" / "_ptpctl").read_text()
    for action in build_parser()._actions:
        for opt in action.option_strings:
            if opt not in ("-h", "--help"):
                assert opt in section, opt
            assert opt in bash.split('= firmware ]', 1)[1], opt
            assert opt.lstrip("-") in zsh.split("== firmware ]]", 1)[1], opt
