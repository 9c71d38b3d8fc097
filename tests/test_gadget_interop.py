"""The simulated camera as a real USB device, checked by USB clients nobody here wrote.

One guest boot (``tools/usb-vm/usb-vm --sim-gadget canon-eos --sim-gadget android-mtp --sim-gadget
generic --sim-root DIR``): three FunctionFS gadgets on three dummy_hcd buses, each served by
``ptpctl serve --usb-gadget`` with its profile's identity (Canon's 04a9:32f5, a Pixel's
18d1:4ee1, a generic still-image device).  In the guest:

* gphoto2 ``--auto-detect``, ``--summary``, ``-L`` and ``--get-file`` on every profile
  (libgphoto2 takes its Canon EOS code paths on canon-eos, its MTP paths on android-mtp);
* gphotofs mounting canon-eos;
* libmtp's ``mtp-detect``, ``mtp-files``, ``mtp-getfile`` and jmtpfs and go-mtpfs mounts on
  android-mtp;
* ptpfs itself over the real USB stack on every profile (and a write through the mount).

Assertions are made on the host against the served folder: names, sizes and sha256 of what
each client fetched equal the files the simulator serves.
"""

from __future__ import annotations

import errno
import hashlib
import json
import random
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                       reason="qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"),
]

ROOT = Path(__file__).resolve().parent.parent
USB_VM = ROOT / "tools" / "usb-vm" / "usb-vm"
PROFILES = {"canon-eos": "04a9:32f5", "android-mtp": "18d1:4ee1", "generic": "1d6b:0150"}
FOLDER = "DCIM/100TEST"
FETCHED = "IMG_0001.JPG"
UPLOAD = "UP_{}.BIN"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


GUEST = r'''
import errno, hashlib, json, os, re, shutil, subprocess, sys, time, traceback
import usb.util
from pathlib import Path

SHARE = Path(sys.argv[1])
CONFIG = json.loads((SHARE / "config.json").read_text())
PY = sys.executable
PTPCTL = [PY, "-m", "ptpfs.cli.ptpctl"]
PTPFS = [PY, "-m", "ptpfs.cli.ptpfs_main"]
RESULT = {"steps": {}}
FOLDER, FETCHED = CONFIG["folder"], CONFIG["fetched"]

def save():
    tmp = SHARE / "result.json.tmp"
    tmp.write_text(json.dumps(RESULT, indent=1, ensure_ascii=False))
    os.replace(tmp, SHARE / "result.json")

def step(name, fn, *args):
    try:
        out = fn(*args) or {}
        out.setdefault("ok", True)
    except Exception:
        out = {"ok": False, "error": traceback.format_exc()}
    RESULT["steps"][name] = out
    save()

def run(cmd, timeout=120):
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": "timeout", "stdout": "", "stderr": ""}
    except FileNotFoundError:      # a client not installed: its host-side test skips
        return {"rc": "missing", "stdout": "", "stderr": f"{cmd[0]} is not installed"}
    return {"rc": p.returncode, "stdout": p.stdout.decode("utf-8", "replace"),
            "stderr": p.stderr.decode("utf-8", "replace")[-3000:]}

def sha_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

def is_mounted(path):
    with open("/proc/self/mounts") as m:
        return any(line.split()[1] == path for line in m)

def wait_mounted(path, proc, seconds=60):
    end = time.monotonic() + seconds
    while not is_mounted(path):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True

def tree(top):
    """{relative path: sha256} of every file under top, {path: "dir"} for folders."""
    out = {}
    for dirpath, dirs, files in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        for d in dirs:
            out[os.path.normpath(os.path.join(rel, d))] = "dir"
        for f in files:
            out[os.path.normpath(os.path.join(rel, f))] = sha_file(os.path.join(dirpath, f))
    return out

def unmount(path, proc):
    r = run(["fusermount3", "-u", path], timeout=30)
    if r["rc"] != 0:
        r = run(["fusermount", "-u", path], timeout=30)
    rc = None
    if proc is not None:
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
    return {"umount_rc": r["rc"], "exit": rc}

def present():
    found = set()
    for dev in Path("/sys/bus/usb/devices").iterdir():
        try:
            found.add((dev / "idVendor").read_text().strip() + ":" + (dev / "idProduct").read_text().strip())
        except OSError:
            pass
    return found

def wait_devices():
    want = set(CONFIG["profiles"].values())
    end = time.monotonic() + 60
    while not want <= present() and time.monotonic() < end:
        time.sleep(0.2)
    return {"present": sorted(present() & want)}

def ptpctl_devices():
    r = run(PTPCTL + ["--list-devices", "--json"])
    devices = json.loads(r["stdout"])["devices"] if r["rc"] == 0 else []
    ports = {}
    for d in devices:
        ident = "%04x:%04x" % (d.get("vendor_id") or 0, d.get("product_id") or 0)
        for profile, want in CONFIG["profiles"].items():
            if ident == want:
                ports[profile] = d["spec"]
    r["ports"] = ports
    return r

def gphoto2(profile):
    port = PORTS[profile]
    out = {"port": port}
    out["summary"] = run(["gphoto2", "--port", port, "--summary"])
    listing = run(["gphoto2", "--port", port, "-L"])
    out["list"] = listing
    files = {}
    for m in re.finditer(r"^#(\d+)\s+(\S.*?)\s+rd\s+(\d+) KB", listing["stdout"], re.M):
        files[m.group(2)] = int(m.group(1))
    out["files"] = files
    target = f"/tmp/gphoto2-{profile}.jpg"
    if FETCHED in files:
        g = run(["gphoto2", "--port", port, "--get-file", str(files[FETCHED]),
                 "--filename", target])
        out["get"] = g
        out["sha256"] = sha_file(target) if os.path.exists(target) else None
    return out

def gphotofs(profile):
    mnt = "/tmp/gphotofs"
    os.makedirs(mnt, exist_ok=True)
    r = run(["gphotofs", "--port=" + PORTS[profile].replace("usb:", "usb:"), mnt], timeout=60)
    out = {"start": r}
    if not wait_mounted(mnt, None, 30):
        return out
    found = {}
    for dirpath, _, files in os.walk(mnt):
        if FETCHED in files:
            found[os.path.relpath(os.path.join(dirpath, FETCHED), mnt)] = sha_file(os.path.join(dirpath, FETCHED))
    out["found"] = found
    out.update(unmount(mnt, None))
    return out

def mtp_tools():
    out = {"detect": run(["mtp-detect"], timeout=120)}
    files = run(["mtp-files"], timeout=120)
    out["files"] = files
    ids = {}
    for m in re.finditer(r"File ID: (\d+)\n\s+Filename: (.*)\n\s+File size (\d+)", files["stdout"]):
        ids[m.group(2)] = {"id": int(m.group(1)), "size": int(m.group(3))}
    out["ids"] = ids
    if FETCHED in ids:
        g = run(["mtp-getfile", str(ids[FETCHED]["id"]), "/tmp/mtp-get.jpg"], timeout=120)
        out["get"] = g
        out["sha256"] = sha_file("/tmp/mtp-get.jpg") if os.path.exists("/tmp/mtp-get.jpg") else None
    return out

def mtp_mount(name, cmd, background):
    mnt = f"/tmp/{name}"
    os.makedirs(mnt, exist_ok=True)
    log = open(f"/tmp/{name}.log", "wb")
    proc = subprocess.Popen(cmd + [mnt], stdout=log, stderr=subprocess.STDOUT)
    if not background:
        proc.wait(timeout=60)
        proc = None
    out = {"mounted": wait_mounted(mnt, proc, 60)}
    if out["mounted"]:
        out["tree"] = tree(mnt)
        out.update(unmount(mnt, proc))
    elif proc is not None:
        proc.kill()
    out["log"] = open(f"/tmp/{name}.log", "rb").read().decode("utf-8", "replace")[-2000:]
    return out

def ptpfs(profile):
    mnt = f"/tmp/ptpfs-{profile}"
    os.makedirs(mnt, exist_ok=True)
    log = open(f"/tmp/ptpfs-{profile}.log", "wb")
    proc = subprocess.Popen(PTPFS + ["-f", "--device", PORTS[profile], mnt],
                            stdout=log, stderr=subprocess.STDOUT)
    out = {"mounted": wait_mounted(mnt, proc, 60)}
    if out["mounted"]:
        out["tree"] = tree(mnt)
        if profile != "canon-eos":       # an R6 refuses uploads from a PC
            storage = sorted(n for n in os.listdir(mnt) if n != ".ptp")[0]
            dest = os.path.join(mnt, storage, FOLDER, CONFIG["upload"].format(profile))
            data = bytes.fromhex(CONFIG["upload_hex"])
            with open(dest, "wb") as f:
                f.write(data)
            out["upload_readback"] = sha_file(dest)
        out.update(unmount(mnt, proc))
    else:
        proc.kill()
    out["log"] = open(f"/tmp/ptpfs-{profile}.log", "rb").read().decode("utf-8", "replace")[-3000:]
    return out

def class_requests(profile):
    """The PTP class requests over the real control pipe (pyusb, no PTP library)."""
    import usb.core
    vid, pid = (int(x, 16) for x in CONFIG["profiles"][profile].split(":"))
    dev = usb.core.find(idVendor=vid, idProduct=pid)
    out = {"status": bytes(dev.ctrl_transfer(0xA1, 0x67, 0, 0, 64)).hex()}
    dev.ctrl_transfer(0x21, 0x64, 0, 0, bytes.fromhex("014005000000"))   # Cancel, tid 5
    out["after_cancel"] = bytes(dev.ctrl_transfer(0xA1, 0x67, 0, 0, 64)).hex()
    out["again"] = bytes(dev.ctrl_transfer(0xA1, 0x67, 0, 0, 64)).hex()
    dev.ctrl_transfer(0x21, 0x66, 0, 0, None)                            # Device Reset
    out["after_reset"] = bytes(dev.ctrl_transfer(0xA1, 0x67, 0, 0, 64)).hex()
    try:
        dev.ctrl_transfer(0xA1, 0x65, 0, 0, 64)          # Get Extended Event Data: not offered
        out["unknown"] = "answered"
    except usb.core.USBError as exc:
        out["unknown"] = exc.errno
    out["status_after_stall"] = bytes(dev.ctrl_transfer(0xA1, 0x67, 0, 0, 64)).hex()
    usb.util.dispose_resources(dev)
    return out

def uploads():
    """Each client that writes puts its own copy of the upload bytes on the device."""
    data = bytes.fromhex(CONFIG["upload_hex"])
    out = {}
    def local(name):
        path = f"/tmp/{name}"
        Path(path).write_bytes(data)
        return path
    out["gphoto2"] = run(["gphoto2", "--port", PORTS["generic"], "--folder",
                          "/store_00010001/" + FOLDER, "--upload-file", local("gphoto2_up.bin")])
    out["mtp-sendfile"] = run(["mtp-sendfile", local("mtp_up.bin"), "mtp_up.bin"])
    for name, cmd, background in (("jmtpfs", ["jmtpfs"], False),
                                   ("go-mtpfs", ["go-mtpfs", "-android=false"], True)):
        mnt = f"/tmp/{name}-w"
        os.makedirs(mnt, exist_ok=True)
        proc = subprocess.Popen(cmd + [mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not background:
            proc.wait(timeout=60)
            proc = None
        if not wait_mounted(mnt, proc, 60):
            out[name] = {"mounted": False}
            continue
        storage = sorted(os.listdir(mnt))[0]
        r = run(["cp", local(f"{name}_up.bin"), os.path.join(mnt, storage, FOLDER) + "/"])
        r.update(unmount(mnt, proc))
        out[name] = r
    return out

step("wait_devices", wait_devices)
step("ptpctl_devices", ptpctl_devices)
PORTS = RESULT["steps"]["ptpctl_devices"].get("ports", {})
step("gphoto2_autodetect", run, ["gphoto2", "--auto-detect"])
for profile in CONFIG["profiles"]:
    step(f"gphoto2_{profile}", gphoto2, profile)
step("gphotofs_canon-eos", gphotofs, "canon-eos")
step("mtp_tools", mtp_tools)
step("jmtpfs", mtp_mount, "jmtpfs", ["jmtpfs"], False)
step("go-mtpfs", mtp_mount, "go-mtpfs", ["go-mtpfs"], True)
for profile in CONFIG["profiles"]:
    step(f"ptpfs_{profile}", ptpfs, profile)
step("class_requests", class_requests, "generic")
step("uploads", uploads)
RESULT["done"] = True
save()
'''


@pytest.fixture(scope="module")
def gadget_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One guest boot with the three profiles as USB gadgets, every client run against them."""
    base = tmp_path_factory.mktemp("gadget")
    root, share = base / "root", base / "share"
    (root / FOLDER).mkdir(parents=True)
    share.mkdir()
    files = {
        f"{FOLDER}/{FETCHED}": random.Random(1).randbytes(300_001),
        f"{FOLDER}/IMG_0002.JPG": random.Random(2).randbytes(65_536),   # packet multiple: ZLP
        f"{FOLDER}/IMG_0003.JPG": random.Random(3).randbytes(1_000_000),
        f"{FOLDER}/empty.txt": b"",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    upload = random.Random(9).randbytes(123_457)
    (share / "config.json").write_text(json.dumps({
        "profiles": PROFILES, "folder": FOLDER, "fetched": FETCHED, "upload": UPLOAD,
        "upload_hex": upload.hex()}))
    (share / "check.py").write_text(GUEST)
    guest = (f"export PYTHONPATH={shlex.quote(str(ROOT))}; "
             f"{shlex.quote(sys.executable)} {shlex.quote(str(share / 'check.py'))} "
             f"{shlex.quote(str(share))}; rc=$?; "
             f"cat /run/usb-vm/sim-gadget*.log > {shlex.quote(str(share))}/servers.log; exit $rc")
    # the harness runs the simulator's gadget servers with its own interpreter: this one,
    # which has pyusb (a bare `python3` on PATH may not, e.g. beside a virtual environment)
    args = [sys.executable, str(USB_VM)]
    for profile in PROFILES:
        args += ["--sim-gadget", profile]
    proc = subprocess.run([*args, "--sim-root", str(root), "--share", str(share),
                           "--timeout", "400", guest],
                          check=False, capture_output=True, cwd=ROOT, timeout=460)
    path = share / "result.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    servers = share / "servers.log"
    data.update(returncode=proc.returncode, stderr=proc.stderr.decode("utf-8", "replace")[-5000:],
                root=root, files=files, upload=upload,
                servers=servers.read_text("utf-8", "replace") if servers.exists() else "")
    return data


def _need(*tools: str) -> None:
    """Skip when a client is not installed (the guest runs the host's programs)."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install gphoto2 gphotofs "
                    "mtp-tools jmtpfs go-mtpfs)")


def _step(run: dict[str, Any], name: str) -> dict[str, Any]:
    step = run.get("steps", {}).get(name)
    assert step is not None, f"step {name} did not run: vm {run['returncode']} {run['stderr']}"
    assert step["ok"], step.get("error")
    return step


def test_guest_run_completed(gadget_run: dict[str, Any]) -> None:
    assert gadget_run.get("done") is True, gadget_run["stderr"] + gadget_run["servers"]
    assert gadget_run["returncode"] == 0, gadget_run["stderr"]
    for profile, ident in PROFILES.items():
        assert f"profile {profile}, {ident}" in gadget_run["servers"]


def test_every_gadget_enumerates_with_its_identity(gadget_run: dict[str, Any]) -> None:
    assert _step(gadget_run, "wait_devices")["present"] == sorted(PROFILES.values())
    step = _step(gadget_run, "ptpctl_devices")
    assert set(step["ports"]) == set(PROFILES), step["stdout"]


def test_gphoto2_autodetect_names_each_profile(gadget_run: dict[str, Any]) -> None:
    _need("gphoto2")
    out = _step(gadget_run, "gphoto2_autodetect")["stdout"]
    ports = _step(gadget_run, "ptpctl_devices")["ports"]
    lines = {line.split()[-1]: line for line in out.splitlines() if "usb:" in line}
    # libgphoto2 knows 04a9:32f5 as the R6 and 18d1:4ee1 as a Pixel in MTP mode, and takes
    # the generic device by its still-image interface class
    assert lines[ports["canon-eos"]].startswith("Canon EOS R6"), out
    assert "Nexus/Pixel (MTP)" in lines[ports["android-mtp"]], out
    assert lines[ports["generic"]].startswith("USB PTP Class Camera"), out


@pytest.mark.parametrize("profile", list(PROFILES))
def test_gphoto2_summary_list_and_get_file(gadget_run: dict[str, Any], profile: str) -> None:
    _need("gphoto2")
    step = _step(gadget_run, f"gphoto2_{profile}")
    summary = step["summary"]["stdout"]
    model = {"canon-eos": "Canon EOS R6", "android-mtp": "Pixel (simulated)",
             "generic": "Simulated PTP camera"}[profile]
    assert f"Model: {model}" in summary, summary + step["summary"]["stderr"]
    if profile == "canon-eos":      # libgphoto2's EOS paths: the EOS capture capabilities
        assert "Canon EOS Capture" in summary, summary
    files = gadget_run["files"]
    assert set(step["files"]) == {rel.rsplit("/", 1)[1] for rel in files}, step["list"]
    assert step["get"]["rc"] == 0, step["get"]
    assert step["sha256"] == _sha(files[f"{FOLDER}/{FETCHED}"])


def test_gphotofs_reads_canon_eos(gadget_run: dict[str, Any]) -> None:
    _need("gphotofs")
    step = _step(gadget_run, "gphotofs_canon-eos")
    want = _sha(gadget_run["files"][f"{FOLDER}/{FETCHED}"])
    assert step.get("found"), step["start"]
    assert list(step["found"].values()) == [want], step["found"]
    assert step["umount_rc"] == 0


def test_libmtp_tools_on_android_mtp(gadget_run: dict[str, Any]) -> None:
    _need("mtp-detect", "mtp-files", "mtp-getfile")
    step = _step(gadget_run, "mtp_tools")
    detect = step["detect"]["stdout"]
    assert "VID=18d1 and PID=4ee1" in detect, detect + step["detect"]["stderr"]
    assert "Friendly name: Pixel (simulated)" in detect, detect
    files = gadget_run["files"]
    assert {name: v["size"] for name, v in step["ids"].items()} == {
        rel.rsplit("/", 1)[1]: len(data) for rel, data in files.items()}, step["files"]
    assert step["get"]["rc"] == 0, step["get"]
    assert step["sha256"] == _sha(files[f"{FOLDER}/{FETCHED}"])


def _expected_tree(files: dict[str, bytes], prefix: str) -> dict[str, str]:
    out = {}
    for rel, data in files.items():
        out[f"{prefix}/{rel}"] = _sha(data)
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out[f"{prefix}/{'/'.join(parts[:i])}"] = "dir"
    out[prefix] = "dir"
    return out


@pytest.mark.parametrize("client", ["jmtpfs", "go-mtpfs"])
def test_mtp_mounts_read_android_mtp(gadget_run: dict[str, Any], client: str) -> None:
    _need(client)
    step = _step(gadget_run, client)
    assert step["mounted"], step["log"]
    tree = step["tree"]
    storages = [p for p in tree if "/" not in p]
    assert len(storages) == 1, tree
    assert tree == _expected_tree(gadget_run["files"], storages[0]), step["log"]
    assert step["umount_rc"] == 0


@pytest.mark.parametrize("profile", list(PROFILES))
def test_ptpfs_over_the_real_usb_stack(gadget_run: dict[str, Any], profile: str) -> None:
    step = _step(gadget_run, f"ptpfs_{profile}")
    assert step["mounted"], step["log"]
    tree = {p: v for p, v in step["tree"].items() if not p.startswith(".ptp")}
    storages = sorted(p for p in tree if "/" not in p)
    files = gadget_run["files"]
    expected = _expected_tree(files, storages[0])
    got = {p: v for p, v in tree.items() if p == storages[0] or p.startswith(storages[0] + "/")}
    for other in PROFILES:                # uploads through the gadgets mounted before
        got.pop(f"{storages[0]}/{FOLDER}/{UPLOAD.format(other)}", None)
    assert got == expected, step["log"]
    assert step["umount_rc"] == 0 and step["exit"] == 0, step["log"]
    if profile != "canon-eos":
        assert step["upload_readback"] == _sha(gadget_run["upload"])


@pytest.mark.parametrize("profile", ["android-mtp", "generic"])
def test_ptpfs_uploads_reach_the_served_folder(gadget_run: dict[str, Any], profile: str) -> None:
    _step(gadget_run, f"ptpfs_{profile}")
    landed = gadget_run["root"] / FOLDER / UPLOAD.format(profile)
    assert landed.exists(), sorted(p.name for p in (gadget_run["root"] / FOLDER).iterdir())
    assert _sha(landed.read_bytes()) == _sha(gadget_run["upload"])


def test_class_requests_over_the_real_control_pipe(gadget_run: dict[str, Any]) -> None:
    step = _step(gadget_run, "class_requests")
    ok, busy = "04000120", "04001920"
    assert (step["status"], step["after_cancel"], step["again"]) == (ok, busy, ok), step
    assert step["after_reset"] == ok and step["status_after_stall"] == ok, step
    assert step["unknown"] == errno.EPIPE, step


@pytest.mark.parametrize("client, where", [
    ("gphoto2", f"{FOLDER}/gphoto2_up.bin"), ("mtp-sendfile", "mtp_up.bin"),
    ("jmtpfs", f"{FOLDER}/jmtpfs_up.bin"), ("go-mtpfs", f"{FOLDER}/go-mtpfs_up.bin")])
def test_client_uploads_reach_the_served_folder(gadget_run: dict[str, Any], client: str,
                                                where: str) -> None:
    """gphoto2 on generic, libmtp's sendfile (into the root: it keeps the local basename),
    jmtpfs and go-mtpfs (plain SendObject mode: ``-android=false``) on android-mtp."""
    _need("mtp-sendfile" if client == "mtp-sendfile" else client)
    step = _step(gadget_run, "uploads")[client]
    assert step.get("rc") == 0, step
    landed = gadget_run["root"] / where
    assert landed.exists(), step
    assert _sha(landed.read_bytes()) == _sha(gadget_run["upload"])
