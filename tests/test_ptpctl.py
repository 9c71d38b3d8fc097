"""ptpctl against the simulated camera over all three transports.

``sim:DIR`` runs the camera in-process, ``usb`` reaches it through the
simulated pyusb backend (the ``PTPFS_TEST_USB_SIM`` testing aid of
ptpfs.connect) and ``ptpip:127.0.0.1:PORT`` through a PtpipServer started
here.  Most tests call ``main(argv)`` in-process; a few run the real command
in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptpfs import connect
from ptpfs.cli import ptpctl
from ptpfs.cli.progress import CountingWriter, ProgressBar
from ptpfs.cli.ptpctl import main
from ptpfs.sim import make_camera
from ptpfs.sim.ptpip_server import PtpipServer

PROJECT = Path(__file__).resolve().parents[1]
TRANSPORTS = ("sim", "usb", "ptpip")
BIG = 1_500_000  # more than one 1 MiB transport chunk


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A card directory: two photos in DCIM/100TEST and a text file at the root."""
    rng = random.Random(5)
    root = tmp_path / "card"
    (root / "DCIM" / "100TEST").mkdir(parents=True)
    (root / "DCIM" / "100TEST" / "IMG_0001.JPG").write_bytes(rng.randbytes(300_000))
    (root / "DCIM" / "100TEST" / "IMG_0002.JPG").write_bytes(rng.randbytes(BIG))
    (root / "notes.txt").write_bytes(b"hello from the card\n")
    return root


@contextlib.contextmanager
def device(kind: str, root: Path, monkeypatch: pytest.MonkeyPatch,
           profile: str = "generic") -> Iterator[tuple[str, object]]:
    """A device spec for *kind* serving *root*, and the camera object when the test owns it."""
    if kind == "sim":
        yield f"sim:{root}?profile={profile}", None
    elif kind == "usb":
        monkeypatch.setenv(connect.USB_SIM_ENV, profile)
        monkeypatch.setenv(connect.USB_SIM_ROOT_ENV, str(root))
        yield "usb", None
    else:
        camera = make_camera(str(root), profile, watch_interval=None)
        server = PtpipServer(camera).start()
        try:
            yield f"ptpip:127.0.0.1:{server.port}", camera
        finally:
            server.stop()
            camera.close()


@pytest.fixture(params=TRANSPORTS)
def spec(request: pytest.FixtureRequest, card: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with device(request.param, card, monkeypatch) as (text, _camera):
        yield text


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def objects(capsys: pytest.CaptureFixture[str], spec: str) -> dict[str, dict]:
    code, out, err = run(capsys, "--json", "-L", "--device", spec)
    assert code == 0, err
    return {o["path"]: o for s in json.loads(out)["storages"] for o in s["objects"]}


# --------------------------------------------------------------------------- usage

def test_no_options_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == ptpctl.EXIT_USAGE == 2
    assert err.startswith("usage: ptpctl") and "ptpctl: nothing to do" in err
    assert out == ""


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for n, word in ((3, "no camera"), (4, "busy"), (5, "permission"), (6, "PTP error"),
                    (7, "connection lost")):
        assert re.search(rf"^\s+{n}\s+.*{word}", out, re.M), word
    assert "--list-devices" in out and "serve" in out


def test_bad_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--frobnicate")
    assert code == 2 and "ptpctl: unrecognized arguments: --frobnicate" in err
    code, _, err = run(capsys, "-g", "xyz", "--device", "sim")
    assert code == 2 and "bad handle" in err
    code, _, err = run(capsys, "-i", "--device", "floppy:0")
    assert code == 2 and err.startswith("ptpctl: unknown device spec")


# --------------------------------------------------------------------------- listings

def _normalise(text: str) -> str:
    # the simulated clock ticks between runs; everything else must match byte for byte
    return re.sub(r"(0x5011/DateTime, datatype: 0xffff/str, current: )[^,]+", r"\1<now>", text)


def test_listings_identical_over_all_transports(card: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    outputs: dict[str, str] = {}
    rows: dict[str, list[str]] = {}
    for kind in TRANSPORTS:
        with device(kind, card, monkeypatch) as (spec, _camera):
            code, out, err = run(capsys, "-i", "-o", "-p", "-d", "--device", spec)
            assert code == 0, err
            outputs[kind] = _normalise(out)
            code, out, err = run(capsys, "-L", "--device", spec)
            assert code == 0, err
            rows[kind] = [line for line in out.splitlines() if not line.startswith("+")]
    assert outputs["sim"] == outputs["usb"] == outputs["ptpip"]
    assert rows["sim"] == rows["usb"] == rows["ptpip"]
    text = outputs["sim"]
    assert "\n0x1001/PTP_GetDeviceInfo\n" in text and "\n0x101b/PTP_GetPartialObject\n" in text
    assert "\n0x5001/BatteryLevel\n" in text
    assert ("property_code: 0x5001/BatteryLevel, datatype: 0x2/uint8, current: 80, default: 100,"
            " access: ro, allowed: range 0..100 step 1") in text
    # values with a human form show it and the raw value
    assert re.search(r"property_code: 0x500d/ExposureTime, datatype: 0x6/uint32, "
                     r"current: 1/\d+ \(\d+\), .*access: rw, "
                     r"allowed: enum \[1/8000 \(1\), 1/5000 \(2\), 1/2000 \(5\),", text)
    assert "Model: Simulated PTP camera" in text


def test_sections_combine_in_one_run(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-Lodip", "--device", spec)
    assert code == 0, err
    headers = [line for line in out.splitlines() if line.startswith("+ ") and ":" not in line]
    assert headers == ["+ device_info", "+ operations_supported", "+ device_prop_supported",
                       "+ properties_description", "+ storages_and_files"]


def test_list_files_rows(spec: str, card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-L", "--device", spec)
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"\+ storage 0: 0x00010001 '.*' type \d+ fs \d+ rw capacity \d+ free \d+",
                        lines[1])
    rows = [line.split(" ", 5) for line in lines if not line.startswith("+")]
    for row in rows:
        assert all(re.fullmatch(r"[0-9a-f]{8}", f) for f in row[:3]), row
        assert re.fullmatch(r"[0-9a-f]{4}", row[3]) and row[4].isdigit()
    by_name = {r[5]: r for r in rows}
    assert set(by_name) == {"DCIM", "100TEST", "IMG_0001.JPG", "IMG_0002.JPG", "notes.txt"}
    assert by_name["IMG_0002.JPG"][4] == str(BIG) and by_name["IMG_0002.JPG"][3] == "3801"
    assert by_name["DCIM"][3] == "3001" and by_name["DCIM"][2] == "00000000"
    assert by_name["IMG_0001.JPG"][2] == by_name["100TEST"][0]
    # tree order: a folder comes before what it holds
    order = [r[5] for r in rows]
    assert order.index("DCIM") < order.index("100TEST") < order.index("IMG_0001.JPG")


def test_json_output_parses(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--json", "-Lodip", "--device", spec)
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"device_info", "operations", "properties", "property_descriptions",
                        "storages"}
    assert {"code": 0x1001, "hex": "0x1001", "name": "PTP_GetDeviceInfo"} in doc["operations"]
    battery = next(p for p in doc["property_descriptions"] if p["name"] == "BatteryLevel")
    assert battery["form"] == {"range": {"min": 0, "max": 100, "step": 1}}
    assert battery["access"] == "ro" and battery["datatype_name"] == "uint8"
    paths = {o["path"] for o in doc["storages"][0]["objects"]}
    assert "/DCIM/100TEST/IMG_0002.JPG" in paths
    assert doc["device_info"]["model"] == "Simulated PTP camera"


# --------------------------------------------------------------------------- get / upload / delete

def test_get_file(spec: str, card: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    handle = objects(capsys, spec)["/DCIM/100TEST/IMG_0002.JPG"]["handle"]
    expected = (card / "DCIM" / "100TEST" / "IMG_0002.JPG").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(capsys, "-g", f"{handle:08x}", "--device", spec)
    assert code == 0, err
    assert (work / "IMG_0002.JPG").read_bytes() == expected
    assert f"saved 0x{handle:08x} IMG_0002.JPG ({BIG} bytes)" in out
    assert err == ""  # no progress bar when stderr is not a terminal
    # never overwrite silently
    (work / "IMG_0002.JPG").write_bytes(b"mine")
    code, _, err = run(capsys, "-g", f"0x{handle:x}", "--device", spec)
    assert code == ptpctl.EXIT_ERROR and "exists (use --force to overwrite)" in err
    assert (work / "IMG_0002.JPG").read_bytes() == b"mine"
    code, _, err = run(capsys, "-g", f"0x{handle:x}", "--force", "--device", spec)
    assert code == 0, err
    assert (work / "IMG_0002.JPG").read_bytes() == expected
    # -O to a named file and into a directory
    code, _, err = run(capsys, "-g", f"{handle:x}", "-O", str(tmp_path / "x.bin"), "--device", spec)
    assert code == 0 and (tmp_path / "x.bin").read_bytes() == expected
    (tmp_path / "dir").mkdir()
    code, _, err = run(capsys, "-g", f"{handle:x}", "-O", str(tmp_path / "dir"), "--device", spec)
    assert code == 0 and (tmp_path / "dir" / "IMG_0002.JPG").read_bytes() == expected
    assert not [p for p in work.iterdir() if p.name.endswith(".part")]


def test_get_folder_is_refused(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    handle = objects(capsys, spec)["/DCIM"]["handle"]
    code, _, err = run(capsys, "-g", f"{handle:x}", "--device", spec)
    assert code == 2 and "is a folder" in err


def test_upload_to_root_and_folder(spec: str, card: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    payload = random.Random(9).randbytes(1_234_567)
    src = tmp_path / "upload.bin"
    src.write_bytes(payload)
    code, out, err = run(capsys, "-u", f"0,{src}", "--device", spec)
    assert code == 0, err
    assert re.search(r"uploaded .*upload.bin as 0x[0-9a-f]{8} \(storage 0x00010001", out)
    assert (card / "upload.bin").read_bytes() == payload
    folder = objects(capsys, spec)["/DCIM/100TEST"]["handle"]
    code, out, err = run(capsys, "-u", f"0x00010001,{src}", "--parent", f"{folder:08x}",
                         "--device", spec)
    assert code == 0, err
    assert (card / "DCIM" / "100TEST" / "upload.bin").read_bytes() == payload
    listed = objects(capsys, spec)
    assert listed["/DCIM/100TEST/upload.bin"]["size"] == len(payload)
    assert listed["/upload.bin"]["parent"] == 0


def test_upload_errors(spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"a")
    code, _, err = run(capsys, "-u", f"7,{src}", "--device", spec)
    assert code == 2 and "no storage index 7" in err
    code, _, err = run(capsys, "-u", f"0x00090001,{src}", "--device", spec)
    assert code == 2 and "no storage 0x00090001" in err
    code, _, err = run(capsys, "-u", f"0,{tmp_path / 'missing'}", "--device", spec)
    assert code == 1 and "no such file" in err
    code, _, err = run(capsys, "-u", str(src), "--device", spec)
    assert code == 2 and "STORAGE,FILE" in err
    code, _, err = run(capsys, "-u", f"0,{src}", "--parent", "00000bad", "--device", spec)
    assert code == 6 and err.startswith("ptpctl: SendObjectInfo: ")


def test_delete(spec: str, card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handle = objects(capsys, spec)["/notes.txt"]["handle"]
    code, out, err = run(capsys, "--delete", f"{handle:08x}", "--device", spec)
    assert code == 0, err
    assert out == f"deleted 0x{handle:08x}\n"
    assert not (card / "notes.txt").exists()
    assert "/notes.txt" not in objects(capsys, spec)
    code, _, err = run(capsys, "--delete", f"{handle:08x}", "--device", spec)
    assert code == ptpctl.EXIT_PTP
    assert err == "ptpctl: DeleteObject: InvalidObjectHandle (0x2009)\n"


def test_ptp_error_exit_code(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-g", "0xdeadbeef", "--device", spec)
    assert code == 6 and out == ""
    assert err == "ptpctl: GetObjectInfo: InvalidObjectHandle (0x2009)\n"


# --------------------------------------------------------------------------- properties

def test_set_property(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--set-property", "ExposureTime=166", "--device", spec)
    assert code == 0, err
    assert out == "0x500d/ExposureTime = 1/60 (166)\n"
    code, out, err = run(capsys, "--set-property", "ExposureTime=1/250", "--device", spec)
    assert code == 0, err
    assert out == "0x500d/ExposureTime = 1/250 (40)\n"
    code, out, err = run(capsys, "--set-property", "0xd402=Studio camera",
                         "--set-property", "fnumber=560", "--json", "--device", spec)
    assert code == 0, err
    assert json.loads(out)["set_property"] == [
        {"code": 0xD402, "name": "DeviceFriendlyName", "value": "Studio camera",
         "text": "Studio camera"},
        {"code": 0x5007, "name": "FNumber", "value": 560, "text": "f/5.6"}]


@pytest.mark.parametrize("assignment, message", [
    ("ExposureTime=167", "ExposureTime: 1/60 (167) is not one of the allowed values: "
                         "1/8000 (1), 1/5000 (2),"),
    ("ExposureTime=fast", "ExposureTime: 'fast' is not an integer (raw value) nor a form like"),
    ("ExposureTime=inf", "ExposureTime: 'inf' is not an integer"),
    ("FNumber=f/1e309", "FNumber: 'f/1e309' is not an f-number"),
    ("DateTime=20241399T999999", "DateTime: '20241399T999999' is not a date and time"),
    ("ExposureTime=-1", "ExposureTime: -1 does not fit in 0x6/uint32"),
    ("WhiteBalance=70000", "WhiteBalance: 70000 does not fit in 0x4/uint16"),
    ("BatteryLevel=50", "BatteryLevel is read-only"),
    ("Shininess=3", "unknown property 'Shininess'"),
    ("ExposureTime", "expected CODE=VALUE"),
    ("ImageSize=1x1", "ImageSize: 1x1 is not one of the allowed values: 6000x4000, "),
])
def test_set_property_validation(assignment: str, message: str, card: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    with device("ptpip", card, monkeypatch) as (spec, camera):
        before = camera.stats.count(0x1016)
        code, out, err = run(capsys, "--set-property", assignment, "--device", spec)
        assert code == ptpctl.EXIT_USAGE, err
        assert err.startswith("ptpctl: ") and message in err and err.count("\n") == 1
        assert camera.stats.count(0x1016) == before  # nothing was sent


# --------------------------------------------------------------------------- errors and devices

def test_no_device_exit_code(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(connect.USB_SIM_ENV, raising=False)
    code, _, err = run(capsys, "-i", "--device", "usb:ffff:fffe")
    assert code == ptpctl.EXIT_NO_DEVICE == 3 and err.startswith("ptpctl: ")
    code, _, err = run(capsys, "-i")
    assert code == 3 and "--device sim" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ptpip_closed_port_is_no_device(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-i", "--device", f"ptpip:127.0.0.1:{_closed_port()}")
    assert code == 3 and "connection refused" in err and err.count("\n") == 1


def test_ptpip_peer_hanging_up_is_connection_lost(capsys: pytest.CaptureFixture[str]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)

    def hang_up() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        code, _, err = run(capsys, "-i", "--device",
                           f"ptpip:127.0.0.1:{listener.getsockname()[1]}", "--timeout", "2")
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(2)
    assert code == ptpctl.EXIT_LINK == 7 and err.startswith("ptpctl: connection lost")


@pytest.mark.parametrize("kind", ["ptpip", "sim-usb"])
def test_connection_lost_mid_download(kind: str, card: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    if kind == "ptpip":
        cm = device("ptpip", card, monkeypatch)
    else:  # the USB backend with a camera this test holds, so it can pull the plug
        cm = _usb_device_with_camera(card, monkeypatch)
    with cm as (spec, camera, *_):
        handle = objects(capsys, spec)["/DCIM/100TEST/IMG_0002.JPG"]["handle"]
        camera.faults.drop_after(500_000)
        out = tmp_path / "partial.jpg"
        code, _, err = run(capsys, "-g", f"{handle:x}", "-O", str(out), "--device", spec)
    assert code == ptpctl.EXIT_LINK, err
    assert err.startswith("ptpctl: connection lost") and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("*.part"))


@contextlib.contextmanager
def _usb_device_with_camera(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    from ptpfs.sim.usb_backend import SimUsbBackend

    camera = make_camera(str(root), "generic", watch_interval=None)
    backend = SimUsbBackend([camera])
    real_open = connect.open_session
    monkeypatch.setattr(ptpctl.connect, "open_session",
                        lambda spec, **kw: real_open(spec, usb_backend=backend, **kw))
    try:
        yield "usb", camera, backend
    finally:
        backend.close()
        camera.close()


@pytest.mark.parametrize("flag, code, hint", [
    ("claimed_elsewhere", ptpctl.EXIT_BUSY, "gio mount -u gphoto2://"),
    ("access_denied", ptpctl.EXIT_PERMISSION, "udev rule"),
])
def test_busy_and_permission_exit_codes(flag: str, code: int, hint: str, card: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with _usb_device_with_camera(card, monkeypatch) as (spec, _camera, backend):
        setattr(backend.devices[0], flag, True)
        got, out, err = run(capsys, "-L", "--device", spec)
    assert (got, out) == (code, "")
    assert err.startswith("ptpctl: ") and hint in err and err.count("\n") == 1


def test_downloaded_names_are_made_safe() -> None:
    assert ptpctl._safe_filename("../../etc/passwd", 7) == ".._.._etc_passwd"
    assert ptpctl._safe_filename("a\\b\x00c", 7) == "a_b_c"
    assert ptpctl._safe_filename("..", 0x1A) == "object-0000001a"
    assert ptpctl._safe_filename("", 0x1A) == "object-0000001a"


def test_debug_logs_one_line_per_transaction(card: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-v", "-p", "--device", f"sim:{card}")
    assert code == 0
    lines = err.splitlines()
    assert any(re.fullmatch(r"ptpfs\.session: PTP_OpenSession\(0x1\) -> OK, 0 B in, 0 B out, "
                            r"[\d.]+ ms", line) for line in lines), err
    assert any(line.startswith("ptpfs.session: PTP_GetDeviceInfo() -> OK, ") for line in lines)
    assert len(lines) == 3  # GetDeviceInfo, OpenSession, CloseSession


def test_list_devices(card: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(connect.USB_SIM_ENV, "canon-eos")
    monkeypatch.setenv(connect.USB_SIM_ROOT_ENV, str(card))
    code, out, _ = run(capsys, "--list-devices")
    assert code == 0
    first, second = out.splitlines()
    assert first.startswith("usb:001,004") and "Canon" in first
    assert second.startswith("sim ")
    code, out, _ = run(capsys, "--auto-detect", "--json")
    assert [d["spec"] for d in json.loads(out)["devices"]] == ["usb:001,004", "sim"]
    code, out, err = run(capsys, "-i")  # the default device is the USB camera
    assert code == 0 and "Manufacturer: Canon" in out


def test_progress_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    with ProgressBar(1000, "x", stream=quiet) as bar:
        bar(500)
    assert quiet.getvalue() == ""
    tty = Tty()
    sink = io.BytesIO()
    with ProgressBar(1000, "IMG.JPG", stream=tty, interval=0) as bar:
        writer = CountingWriter(sink, bar)
        writer.write(b"a" * 250)
        assert "IMG.JPG" in tty.getvalue() and "25%" in tty.getvalue()
        writer.write(b"b" * 750)
    assert sink.getvalue() == b"a" * 250 + b"b" * 750
    assert "100%" in tty.getvalue() and tty.getvalue().endswith("\n")


# --------------------------------------------------------------------------- subprocesses

def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTPFS_TEST_")}
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _ptpctl(*argv: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ptpfs.cli.ptpctl", *argv], capture_output=True,
                          text=True, timeout=60, env=env or _env(), cwd=cwd)


def test_subprocess_sim_and_usb(card: Path, tmp_path: Path) -> None:
    sim = _ptpctl("-L", "-i", "--device", f"sim:{card}")
    usb = _ptpctl("-L", "-i", env=_env(PTPFS_TEST_USB_SIM="generic",
                                       PTPFS_TEST_USB_SIM_ROOT=str(card)))
    assert sim.returncode == usb.returncode == 0, sim.stderr + usb.stderr
    strip = lambda text: [line for line in text.splitlines() if " free " not in line]  # noqa: E731
    assert strip(sim.stdout) == strip(usb.stdout)
    assert "IMG_0002.JPG" in sim.stdout
    bad = _ptpctl("-g", "deadbeef", "--device", f"sim:{card}", cwd=tmp_path)
    assert bad.returncode == 6
    assert bad.stderr == "ptpctl: GetObjectInfo: InvalidObjectHandle (0x2009)\n"
    none = _ptpctl()
    assert none.returncode == 2 and none.stderr.startswith("usage: ptpctl")
    handle = re.search(r"^([0-9a-f]{8}) .* IMG_0002\.JPG$", sim.stdout, re.M).group(1)
    piped = subprocess.run([sys.executable, "-m", "ptpfs.cli.ptpctl", "-g", handle, "-O", "-",
                            "--device", f"sim:{card}"], capture_output=True, timeout=60,
                           env=_env())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == (card / "DCIM" / "100TEST" / "IMG_0002.JPG").read_bytes()
    assert piped.stderr.decode().startswith("sent IMG_0002.JPG (1500000 bytes) to stdout")


def test_serve_subcommand(card: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpctl", "serve", "--listen",
                             "127.0.0.1:0", "--root", str(card), "--profile", "canon-eos",
                             "--latency", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline()
        match = re.match(r"listening on 127\.0\.0\.1:(\d+) ", line)
        assert match, line + proc.stderr.read()
        port = match.group(1)
        got = _ptpctl("-i", "-g", "0xdeadbeef", "--device", f"ptpip:127.0.0.1:{port}",
                      cwd=tmp_path)
        assert "Manufacturer: Canon" in got.stdout
        assert got.returncode == 6
        listing = _ptpctl("--json", "-L", "--device", f"ptpip:127.0.0.1:{port}")
        assert listing.returncode == 0, listing.stderr
        doc = json.loads(listing.stdout)
        handle = next(o["handle"] for s in doc["storages"] for o in s["objects"]
                      if o["name"] == "IMG_0001.JPG")
        fetched = _ptpctl("-g", f"{handle:x}", "--device", f"ptpip:127.0.0.1:{port}",
                          cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        assert (tmp_path / "IMG_0001.JPG").read_bytes() == \
            (card / "DCIM" / "100TEST" / "IMG_0001.JPG").read_bytes()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "server stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_serve_refuses_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve", "--listen", "127.0.0.1:http")
    assert code == 2 and err.startswith("ptpctl: bad address")
