"""Smoke test of tools/usb-vm/usb-vm: a TCG guest with a Linux USB stack and QEMU's usb-mtp device.

One guest boot runs a raw-pyusb PTP check (written below, independent of ptpfs) while the host
unplugs and re-plugs the MTP device over QMP; a second boot checks exit status, output streams,
the working directory and the read-write share.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                       reason="qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"),
]

def q(path: object) -> str:
    """Shell-quote a path for the guest command line."""
    return shlex.quote(str(path))


ROOT = Path(__file__).resolve().parent.parent
USB_VM = ROOT / "tools" / "usb-vm" / "usb-vm"
NON_ASCII = "Grüße-ünï.txt"

# Runs inside the guest with the host's python3 and pyusb. Speaks PTP over raw bulk transfers.
GUEST_CHECK = r'''
import json, os, struct, sys, time
from pathlib import Path
import usb.core, usb.util

share = Path(sys.argv[1])
result = {}

def save():
    (share / "result.json.tmp").write_text(json.dumps(result))
    os.replace(share / "result.json.tmp", share / "result.json")

def mtp_nodes():
    nodes = []
    for dev in Path("/sys/bus/usb/devices").iterdir():
        try:
            if (dev / "idVendor").read_text().strip() == "46f4":
                bus = int((dev / "busnum").read_text()); num = int((dev / "devnum").read_text())
                nodes.append(f"/dev/bus/usb/{bus:03d}/{num:03d}")
        except OSError:
            pass
    return [n for n in nodes if os.path.exists(n)]

def wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False

class Ptp:
    def __init__(self):
        self.dev = usb.core.find(custom_match=lambda d: any(
            i.bInterfaceClass == 6 for c in d for i in c))
        self.dev.set_configuration()
        intf = next(i for i in self.dev.get_active_configuration() if i.bInterfaceClass == 6)
        usb.util.claim_interface(self.dev, intf.bInterfaceNumber)
        def ep(direction, kind):
            return next(e for e in intf if usb.util.endpoint_direction(e.bEndpointAddress) == direction
                        and usb.util.endpoint_type(e.bmAttributes) == kind)
        self.out = ep(usb.util.ENDPOINT_OUT, usb.util.ENDPOINT_TYPE_BULK)
        self.inp = ep(usb.util.ENDPOINT_IN, usb.util.ENDPOINT_TYPE_BULK)
        self.tid = 0

    def _read_container(self):
        buf = bytes(self.dev.read(self.inp.bEndpointAddress, 1 << 20, timeout=5000))
        length = struct.unpack_from("<I", buf)[0]
        while len(buf) < length:
            buf += bytes(self.dev.read(self.inp.bEndpointAddress, 1 << 20, timeout=5000))
        kind, code, tid = struct.unpack_from("<HHI", buf, 4)
        return kind, code, tid, buf[12:length]

    def transaction(self, code, *params):
        self.tid += 1
        cmd = struct.pack("<IHHI", 12 + 4 * len(params), 1, code, self.tid)
        cmd += b"".join(struct.pack("<I", p) for p in params)
        self.out.write(cmd, timeout=5000)
        data = b""
        kind, rcode, tid, payload = self._read_container()
        if kind == 2:
            data = payload
            kind, rcode, tid, payload = self._read_container()
        assert kind == 3 and tid == self.tid, (kind, tid, self.tid)
        return rcode, data

def ptp_string(buf, pos):
    n = buf[pos]
    text = buf[pos + 1:pos + 1 + 2 * n].decode("utf-16-le").rstrip("\0")
    return text, pos + 1 + 2 * n

def device_info(data):
    pos = 8
    _, pos = ptp_string(data, pos)               # VendorExtensionDesc
    pos += 2                                     # FunctionalMode
    for _ in range(5):                           # ops, events, props, capture fmts, image fmts
        count = struct.unpack_from("<I", data, pos)[0]
        pos += 4 + 2 * count
    info = {}
    for key in ("manufacturer", "model", "version", "serial"):
        info[key], pos = ptp_string(data, pos)
    return info

result["usb_devices"] = [str(d) for d in usb.core.find(find_all=True)]
result["dev_nodes"] = sorted(str(p) for p in Path("/dev/bus/usb").glob("*/*"))
result["mtp_nodes"] = mtp_nodes()

ptp = Ptp()
rcode, data = ptp.transaction(0x1001)            # GetDeviceInfo, outside a session
result["getdeviceinfo_response"] = rcode
result["device_info"] = device_info(data)
assert ptp.transaction(0x1002, 1)[0] == 0x2001   # OpenSession
rcode, data = ptp.transaction(0x1004)            # GetStorageIDs
storage = struct.unpack_from("<I", data, 4)[0]
rcode, data = ptp.transaction(0x1007, storage, 0, 0xFFFFFFFF)   # GetObjectHandles, root
handles = struct.unpack_from(f"<{struct.unpack_from('<I', data)[0]}I", data, 4)
names = []
for handle in handles:
    rcode, data = ptp.transaction(0x1008, handle)                # GetObjectInfo
    names.append(ptp_string(data, 52)[0])
result["names"] = sorted(names)
ptp.transaction(0x1003)                          # CloseSession
usb.util.dispose_resources(ptp.dev)

fd = os.open("/dev/fuse", os.O_RDWR)
os.close(fd)
result["fuse_open"] = True
result["modprobe_fuse"] = os.system("modprobe fuse") == 0

# Unplug / re-plug, driven by the host over QMP.
result["present"] = True
save()
result["gone"] = wait_for(lambda: not mtp_nodes())
save()
result["back"] = wait_for(lambda: bool(mtp_nodes()))
result["back_nodes"] = mtp_nodes()
save()
print("guest check done")
'''


# A read-only FUSE filesystem with one file, mounted in the guest with mfusepy (libfuse 3).
GUEST_FUSE = r'''
import errno, stat, sys
import mfusepy

class Hello(mfusepy.Operations):
    use_ns = True

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/hello":
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": 6}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "hello"]

    def read(self, path, size, offset, fh):
        return b"hello\n"[offset:offset + size]

mfusepy.FUSE(Hello(), sys.argv[1], foreground=True)
'''


def _wait_file(path: Path, key: str, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Wait until ``path`` holds JSON with ``key`` (or the VM process ends)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            if key in data:
                return data
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"guest never reported {key!r} (vm exit {proc.poll()})")


@pytest.fixture(scope="module")
def mtp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Boot once: run GUEST_CHECK, unplug and re-plug the MTP device mid-run, collect results."""
    base = tmp_path_factory.mktemp("usbvm")
    mtp = base / "mtp"
    share = base / "share"
    mtp.mkdir()
    share.mkdir()
    (mtp / "plain.txt").write_text("plain\n")
    (mtp / NON_ASCII).write_text("umlauts\n")
    (share / "check.py").write_text(GUEST_CHECK)
    qmp = base / "qmp.sock"
    result = share / "result.json"
    cmd = [str(USB_VM), "--mtp-dir", str(mtp), "--share", str(share), "--qmp", str(qmp),
           "--timeout", "150",
           f"ls /dev/bus/usb/*/* > {q(share)}/ls.txt; exec {q(sys.executable)} {q(share)}/check.py {q(share)}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _wait_file(result, "present", proc, 120)
        t0 = time.monotonic()
        subprocess.run([str(USB_VM), "qmp", str(qmp), "unplug"], check=True, timeout=30)
        _wait_file(result, "gone", proc, 60)
        subprocess.run([str(USB_VM), "qmp", str(qmp), "plug"], check=True, timeout=30)
        out, err = proc.communicate(timeout=90)
        data: dict[str, Any] = json.loads(result.read_text())
        data.update(ls_at_start=(share / "ls.txt").read_text().split(), returncode=proc.returncode,
                    stdout=out.decode(), stderr=err.decode(), replug_seconds=time.monotonic() - t0)
        return data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_guest_lists_mtp_device(mtp_run: dict[str, Any]) -> None:
    assert mtp_run["returncode"] == 0, mtp_run["stderr"]
    assert "guest check done" in mtp_run["stdout"]
    assert any("46f4:0004" in d for d in mtp_run["usb_devices"]), mtp_run["usb_devices"]
    assert mtp_run["mtp_nodes"] and set(mtp_run["mtp_nodes"]) <= set(mtp_run["dev_nodes"])
    # usb-vm starts the command only once the device has enumerated.
    assert set(mtp_run["mtp_nodes"]) <= set(mtp_run["ls_at_start"]), mtp_run["ls_at_start"]


def test_raw_getdeviceinfo_is_qemus(mtp_run: dict[str, Any]) -> None:
    assert mtp_run["getdeviceinfo_response"] == 0x2001
    assert mtp_run["device_info"]["manufacturer"] == "QEMU"
    assert "QEMU" in mtp_run["device_info"]["model"]


def test_non_ascii_names_survive(mtp_run: dict[str, Any]) -> None:
    assert mtp_run["names"] == sorted(["plain.txt", NON_ASCII])


def test_fuse_device_usable(mtp_run: dict[str, Any]) -> None:
    assert mtp_run["fuse_open"] is True
    assert mtp_run["modprobe_fuse"] is True


def test_qmp_unplug_and_replug(mtp_run: dict[str, Any]) -> None:
    assert mtp_run["gone"] is True
    assert mtp_run["back"] is True and mtp_run["back_nodes"]


def test_status_output_cwd_and_share(tmp_path: Path) -> None:
    script = "echo to-stdout; echo to-stderr >&2; pwd > out/pwd; touch /overlay-ok; exit 7"
    (tmp_path / "out").mkdir()
    proc = subprocess.run([str(USB_VM), "--share", str(tmp_path / "out"), "--timeout", "120", script],
                          cwd=tmp_path, capture_output=True, timeout=150)
    assert proc.returncode == 7, proc.stderr.decode()
    assert proc.stdout == b"to-stdout\n"
    assert b"to-stderr\n" in proc.stderr and b"to-stdout" not in proc.stderr
    assert (tmp_path / "out" / "pwd").read_text() == f"{tmp_path}\n"
    assert not os.path.exists("/overlay-ok")   # the guest's root writes stay in its tmpfs overlay


def test_fuse_mount_in_guest(tmp_path: Path) -> None:
    (tmp_path / "hello_fs.py").write_text(GUEST_FUSE)
    script = (
        f"mkdir /tmp/mnt; {q(sys.executable)} {q(tmp_path)}/hello_fs.py /tmp/mnt 2>/dev/null & "
        "for i in $(seq 1 100); do grep -q ' /tmp/mnt fuse' /proc/mounts && break; sleep 0.2; done; "
        f"cat /tmp/mnt/hello > {q(tmp_path)}/read.txt; fusermount3 -u /tmp/mnt; wait"
    )
    proc = subprocess.run([str(USB_VM), "--share", str(tmp_path), "--timeout", "120", script],
                          capture_output=True, timeout=150)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "read.txt").read_text() == "hello\n"
