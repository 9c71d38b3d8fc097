"""ptpfs and ptpctl over a real Linux USB stack against QEMU's emulated MTP device (usb-mtp).

Two guest boots (tools/usb-vm/usb-vm), each running one guest-side check script that performs many
steps and reports JSON into a shared folder; every assertion is made on the host, against the
folder QEMU serves:

* boot 1: ``ptpctl --list-devices``, ``-i -o -L``, ``-g``, ``-u``; then ``ptpfs`` mounted over USB:
  ``ls -lR`` (names, sizes, non-ASCII names), ``cp -r`` out and in (hashes compared with the
  served folder), overwrite (shorter and longer), append, mkdir/rm/rmdir, ``df``, ``/.ptp`` files,
  a warm ``ls -lR`` costing no transaction, a clean unmount;
* boot 2: the host unplugs the device (QMP ``device_del``) while the guest copies a big file out
  of the mount: the copy fails promptly with EIO, nothing hangs; after re-plugging, the mount is
  checked again and unmounts cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
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

ROOT = Path(__file__).resolve().parent.parent
USB_VM = ROOT / "tools" / "usb-vm" / "usb-vm"
STORAGE = "MTP store"          # usb-mtp desc=: the storage folder's name in the mount

#: Sizes of the files copied in: around the 64-byte packet, 512-byte packet, and usb-mtp's
#: 512 KiB receive buffer (524,276 = 512 KiB - 12-byte header).
UPLOAD_SIZES = [0, 1, 52, 63, 64, 511, 512, 4096, 524275, 524276, 524277, 524287, 524288,
                524300, 1048576, 3 * 1048576 + 7]
#: Sizes usb-mtp (QEMU 7.2) cannot receive from any client.  It receives into 512 KiB buffers
#: (the first holds min(size, 512 KiB - 12) bytes), drops the part of a transfer that crosses a
#: buffer, stalls transfers shorter than 12 bytes and stalls the zero-length packet, so a data
#: phase ends only on a transfer that is not a multiple of 64 bytes: above the first buffer,
#: containers that are a multiple of 64 bytes (1,048,564; 1,048,500) or whose last buffer would
#: hold 1-11 bytes (1,048,569) cannot be delivered.  The copy must fail with EIO, never succeed
#: with wrong content.
UNSENDABLE_SIZES = [1048564, 1048500, 1048569]
CTL_UPLOAD_SIZE = 1234567
ODD_NAMES = ["Grüße ünï.txt", "日本語 ファイル.txt", "space name.txt", "with'quote&amp.txt"]
BIG_SIZE = 160 << 20           # boot 2: the file being copied when the device goes away


def _bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- guest side

GUEST_COMMON = r'''
import hashlib, json, os, random, signal, subprocess, sys, time, traceback
from pathlib import Path

SHARE = Path(sys.argv[1])
PY = sys.executable
PTPCTL = [PY, "-m", "ptpfs.cli.ptpctl"]
PTPFS = [PY, "-m", "ptpfs.cli.ptpfs_main"]
MNT = "/tmp/mnt"
RESULT = {"steps": {}}

def save():
    tmp = SHARE / "result.json.tmp"
    tmp.write_text(json.dumps(RESULT, indent=1, ensure_ascii=False))
    os.replace(tmp, SHARE / "result.json")

def step(name):
    def wrap(fn):
        t0 = time.monotonic()
        try:
            out = fn() or {}
            out.setdefault("ok", True)
        except Exception:
            out = {"ok": False, "error": traceback.format_exc()}
        out["seconds"] = round(time.monotonic() - t0, 3)
        RESULT["steps"][name] = out
        save()
        return fn
    return wrap

def run(cmd, timeout=120, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    return {"rc": p.returncode, "stdout": p.stdout.decode("utf-8", "replace"),
            "stderr": p.stderr.decode("utf-8", "replace")[-3000:]}

def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()

def is_mounted(path):
    with open("/proc/self/mounts") as m:
        return any(line.split()[1] == path for line in m)

def mount(extra=()):
    os.makedirs(MNT, exist_ok=True)
    log = open("/tmp/ptpfs.log", "wb")
    proc = subprocess.Popen(PTPFS + ["-f", "--device", "usb", *extra, MNT],
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while not is_mounted(MNT):
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError("ptpfs did not mount: " + open("/tmp/ptpfs.log", "rb").read().decode()[-2000:])
        time.sleep(0.05)
    return proc

def unmount(proc, timeout=30):
    t0 = time.monotonic()
    r = run(["fusermount3", "-u", MNT], timeout=timeout)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "hung"
    if is_mounted(MNT):
        subprocess.run(["fusermount3", "-u", "-z", MNT])
    return {"fusermount": r["rc"], "fusermount_err": r["stderr"], "exit": rc,
            "unmount_seconds": round(time.monotonic() - t0, 3),
            "log": _log_digest(open("/tmp/ptpfs.log", "rb").read().decode("utf-8", "replace"))}

def _log_digest(text):
    """The log's tail, plus every line about the link (lost, reconnect) from before it."""
    tail = text[-3000:]
    link = [l for l in text[:-3000].splitlines() if "reconnect" in l.lower() or "lost" in l.lower()]
    return "\n".join(link[-40:]) + "\n" + tail

def storage_dir():
    names = [n for n in os.listdir(MNT) if n != ".ptp"]
    assert len(names) == 1, names
    return os.path.join(MNT, names[0])

def walk(top):
    out = {}
    for dirpath, dirs, files in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        for d in dirs:
            out[os.path.normpath(os.path.join(rel, d))] = "dir"
        for f in files:
            out[os.path.normpath(os.path.join(rel, f))] = os.stat(os.path.join(dirpath, f)).st_size
    return out

def stats():
    text = open(os.path.join(MNT, ".ptp", "stats")).read()
    for line in text.splitlines():
        if line.startswith("transactions:"):
            return int(line.split(":")[1])
    raise AssertionError(text)
'''

GUEST_MAIN = GUEST_COMMON + r'''
CONFIG = json.loads((SHARE / "config.json").read_text())
UNSENDABLE = CONFIG["unsendable_sizes"]

@step("list_devices")
def _():
    r = run(PTPCTL + ["--list-devices", "--json"])
    r["devices"] = json.loads(r["stdout"])["devices"] if r["rc"] == 0 else None
    return r

@step("info_ops_list")
def _():
    return run(PTPCTL + ["-i", "-o", "-L"])

@step("list_json")
def _():
    r = run(PTPCTL + ["-L", "--json"])
    r["listing"] = json.loads(r["stdout"]) if r["rc"] == 0 else None
    r.pop("stdout")
    return r

@step("get_file")
def _():
    objs = RESULT["steps"]["list_json"]["listing"]["storages"][0]["objects"]
    target = next(o for o in objs if o["path"] == "/" + CONFIG["get_path"])
    # usb-mtp numbers objects afresh in every session, in listing order: list in the same
    # session (-L runs before -g) so the handle from the previous session is valid again.
    r = run(PTPCTL + ["-L", "-g", "%x" % target["handle"], "-O", "/tmp/got.bin"])
    r.pop("stdout")
    r["sha256"] = sha_file("/tmp/got.bin") if r["rc"] == 0 else None
    return r

@step("upload_ctl")
def _():
    data = random.Random(7).randbytes(CONFIG["ctl_upload_size"])
    Path("/tmp/up_ctl.bin").write_bytes(data)
    r = run(PTPCTL + ["-u", "0,/tmp/up_ctl.bin", "-L", "--json"])
    r["sha256"] = hashlib.sha256(data).hexdigest()
    return r

proc = mount()
RESULT["mounted"] = True
save()

@step("ls_lR")
def _():
    STOR = storage_dir()
    before = stats()
    r = run(["ls", "-lR", MNT])
    cold = stats() - before
    tree = walk(STOR)
    before = stats()
    r2 = run(["ls", "-lR", MNT])
    warm = stats() - before
    return {"rc": r["rc"], "stderr": r["stderr"], "lines": len(r["stdout"].splitlines()),
            "storage": os.path.basename(STOR), "tree": tree, "cold_transactions": cold,
            "warm_transactions": warm, "warm_rc": r2["rc"]}

STOR = storage_dir()

@step("cp_out")
def _():
    r = run(["cp", "-r", os.path.join(STOR, "photos"), "/tmp/out"])
    hashes = {}
    for dirpath, dirs, files in os.walk("/tmp/out"):
        for f in files:
            p = os.path.join(dirpath, f)
            hashes[os.path.relpath(p, "/tmp/out")] = sha_file(p)
    odd = {}
    for name in CONFIG["odd_names"]:
        odd[name] = sha_file(os.path.join(STOR, name))
    r.update(hashes=hashes, odd=odd)
    return r

@step("cp_in")
def _():
    src = "/tmp/in"
    os.makedirs(src + "/nested")
    hashes = {}
    for size in CONFIG["upload_sizes"]:
        data = random.Random(size).randbytes(size)
        Path(f"{src}/f_{size}.bin").write_bytes(data)
        hashes[f"f_{size}.bin"] = hashlib.sha256(data).hexdigest()
    Path(f"{src}/nested/ü ñ.txt").write_text("nested\n")
    hashes["nested/ü ñ.txt"] = hashlib.sha256(b"nested\n").hexdigest()
    r = run(["cp", "-r", src, os.path.join(STOR, "in")], timeout=600)
    sizes = walk(os.path.join(STOR, "in"))
    back = {}
    for rel in hashes:
        try:
            back[rel] = sha_file(os.path.join(STOR, "in", rel))
        except OSError as exc:
            back[rel] = repr(exc)
    r.update(hashes=hashes, sizes_in_mount=sizes, readback=back)
    r["unsendable"] = {}
    for size in UNSENDABLE:
        data = random.Random(size).randbytes(size)
        Path(f"/tmp/u_{size}.bin").write_bytes(data)
        u = run(["cp", f"/tmp/u_{size}.bin", os.path.join(STOR, f"u_{size}.bin")])
        r["unsendable"][str(size)] = {"rc": u["rc"], "stderr": u["stderr"],
                                      "sha256": hashlib.sha256(data).hexdigest()}
    return r

@step("overwrite")
def _():
    short = os.path.join(STOR, "over.txt")
    with open(short, "w") as f:
        f.write("short\n")
    longer = os.path.join(STOR, "photos", "IMG_0001.JPG")
    r = run(["cp", "/tmp/in/f_1048576.bin", longer])
    return {"short_size": os.stat(short).st_size, "short_read": open(short).read(),
            "long_rc": r["rc"], "long_err": r["stderr"], "long_size": os.stat(longer).st_size,
            "long_sha": sha_file(longer)}

@step("append")
def _():
    path = os.path.join(STOR, "append.txt")
    r = run(["sh", "-c", f"echo line2 >> '{path}'"])
    r["read"] = open(path).read()
    return r

@step("mkdir_rm_rmdir")
def _():
    out = {}
    d = os.path.join(STOR, "newdir")
    os.mkdir(d)
    os.mkdir(os.path.join(d, "inner"))
    Path(d, "inner", "f.txt").write_text("x\n")
    out["listed"] = sorted(os.listdir(d))
    try:
        os.rmdir(d)
        out["rmdir_nonempty"] = "removed"
    except OSError as exc:
        out["rmdir_nonempty"] = exc.errno
    os.unlink(os.path.join(d, "inner", "f.txt"))
    os.rmdir(os.path.join(d, "inner"))
    os.rmdir(d)
    out["after"] = os.path.exists(d)
    os.mkdir(os.path.join(STOR, "keepdir"))
    os.unlink(os.path.join(STOR, "rmme.txt"))
    out["rmme_exists"] = os.path.exists(os.path.join(STOR, "rmme.txt"))
    with open(os.path.join(STOR, "moveme.txt"), "wb") as f:
        f.write(b"moved by copy\n")
    try:
        os.rename(os.path.join(STOR, "moveme.txt"), os.path.join(STOR, "renamed.txt"))
        out["rename"] = "renamed"
    except OSError as exc:
        out["rename"] = exc.errno
    out["renamed_listed"] = sorted(n for n in os.listdir(STOR) if n in ("moveme.txt", "renamed.txt"))
    return out

@step("df")
def _():
    st = os.statvfs(STOR)
    r = run(["df", "-k", MNT])
    r.update(blocks=st.f_blocks, bfree=st.f_bfree, bavail=st.f_bavail, bsize=st.f_frsize)
    return r

@step("ptp_files")
def _():
    out = {}
    for name in ("properties", "device", "storages", "operations", "stats"):
        r = run(["cat", os.path.join(MNT, ".ptp", name)])
        out[name] = {"rc": r["rc"], "text": r["stdout"][:4000], "stderr": r["stderr"]}
    return out

@step("unmount")
def _():
    return unmount(proc)

@step("list_after")
def _():
    r = run(PTPCTL + ["-L", "--json"])
    objs = json.loads(r["stdout"])["storages"][0]["objects"] if r["rc"] == 0 else []
    r["paths"] = sorted(o["path"] for o in objs)
    r.pop("stdout")
    return r

RESULT["done"] = True
save()
'''

GUEST_UNPLUG = GUEST_COMMON + r'''
def mtp_nodes():
    nodes = []
    for dev in Path("/sys/bus/usb/devices").iterdir():
        try:
            if (dev / "idVendor").read_text().strip() == "46f4":
                nodes.append(dev)
        except OSError:
            pass
    return nodes

def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False

def timed(cmd, timeout=60):
    t0 = time.monotonic()
    try:
        r = run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        r = {"rc": "timeout"}
    r["seconds"] = round(time.monotonic() - t0, 3)
    return r

proc = mount()
STOR = storage_dir()

@step("before")
def _():
    return {"ls": sorted(os.listdir(STOR)), "small": open(os.path.join(STOR, "small.txt")).read()}

@step("copy_unplugged")
def _():
    cp = subprocess.Popen(["cp", os.path.join(STOR, "big.bin"), "/tmp/big.copy"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Let the copy get going, then ask the host to pull the plug.
    wait_for(lambda: os.path.exists("/tmp/big.copy") and os.path.getsize("/tmp/big.copy") > (4 << 20), 60)
    copied_before = os.path.getsize("/tmp/big.copy") if os.path.exists("/tmp/big.copy") else 0
    RESULT["state"] = "copying"
    save()
    gone = wait_for(lambda: not mtp_nodes(), 60)
    t_gone = time.monotonic()
    try:
        cp.wait(timeout=60)
        rc = cp.returncode
    except subprocess.TimeoutExpired:
        cp.kill()
        cp.wait()
        rc = "hung"
    return {"gone": gone, "cp_rc": rc, "cp_err": cp.stderr.read().decode("utf-8", "replace"),
            "cp_seconds_after_unplug": round(time.monotonic() - t_gone, 3),
            "copied_before": copied_before,
            "copied": os.path.getsize("/tmp/big.copy") if os.path.exists("/tmp/big.copy") else 0}

@step("while_unplugged")
def _():
    ls = timed(["ls", "-l", STOR], 60)
    cat = timed(["cat", os.path.join(STOR, "small.txt")], 60)
    df = timed(["df", MNT], 60)
    return {"ls": ls, "cat": cat, "df": df}

RESULT["state"] = "want_plug"
save()

@step("replugged")
def _():
    back = wait_for(lambda: bool(mtp_nodes()), 60)
    t0 = time.monotonic()
    ok_after = None
    last = None
    while time.monotonic() - t0 < 30:
        # other.txt was never read: its bytes must come from the device, not the page cache
        last = timed(["cat", os.path.join(STOR, "other.txt")], 30)
        if last["rc"] == 0 and last["stdout"] == "other\n":
            ok_after = round(time.monotonic() - t0, 3)
            break
        time.sleep(0.5)
    listing = timed(["ls", STOR], 30)
    return {"back": back, "works_after": ok_after, "last_cat": last, "ls": listing}

@step("unmount")
def _():
    return unmount(proc)

RESULT["done"] = True
save()
'''


# --------------------------------------------------------------------------- host side

def _vm(mtp: Path, share: Path, script: str, *, qmp: Path | None = None,
        timeout: float = 400) -> subprocess.Popen[bytes]:
    (share / "check.py").write_text(script)
    cmd = [str(USB_VM), "--mtp-dir", str(mtp), "--mtp-desc", STORAGE, "--share", str(share),
           "--timeout", str(timeout)]
    if qmp is not None:
        cmd += ["--qmp", str(qmp)]
    guest = (f"export PYTHONPATH={shlex.quote(str(ROOT))}; "
             f"exec {shlex.quote(sys.executable)} {shlex.quote(str(share / 'check.py'))} "
             f"{shlex.quote(str(share))}")
    return subprocess.Popen(cmd + [guest], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)


def _result(share: Path) -> dict[str, Any]:
    path = share / "result.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _wait_state(share: Path, state: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if _result(share).get("state") == state:
                return
        except ValueError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"guest never reached state {state!r} (vm exit {proc.poll()}): "
                         f"{_result(share)}")


def _host_tree(top: Path) -> dict[str, Any]:
    """What usb-mtp shows of a folder: dot-files hidden."""
    out: dict[str, Any] = {}
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(dirpath, top)
        for d in dirs:
            out[os.path.normpath(os.path.join(rel, d))] = "dir"
        for f in files:
            if not f.startswith("."):
                out[os.path.normpath(os.path.join(rel, f))] = os.path.getsize(os.path.join(dirpath, f))
    return out


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Boot 1: ptpctl and the ptpfs mount, many checks in one guest run."""
    base = tmp_path_factory.mktemp("interop")
    mtp, share = base / "mtp", base / "share"
    (mtp / "photos" / "sub").mkdir(parents=True)
    share.mkdir()
    files = {
        "photos/IMG_0001.JPG": _bytes(1, 300_000),
        "photos/IMG_0002.JPG": _bytes(2, 1_500_001),
        "photos/sub/deep.txt": b"deep\n",
        "big.bin": _bytes(3, 3_000_017),
        "over.txt": _bytes(4, 200_000),
        "append.txt": b"line1\n",
        "rmme.txt": b"remove me\n",
        ".hidden": b"not shown\n",
    }
    for name in ODD_NAMES:
        files[name] = name.encode() * 3
    for rel, data in files.items():
        (mtp / rel).write_bytes(data)
    initial_tree = _host_tree(mtp)
    (share / "config.json").write_text(json.dumps({
        "get_path": "big.bin", "ctl_upload_size": CTL_UPLOAD_SIZE,
        "upload_sizes": UPLOAD_SIZES, "odd_names": ODD_NAMES,
        "unsendable_sizes": UNSENDABLE_SIZES}))
    proc = _vm(mtp, share, GUEST_MAIN)
    try:
        out, err = proc.communicate(timeout=450)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = _result(share)
    data.update(returncode=proc.returncode, stdout=out.decode("utf-8", "replace"),
                stderr=err.decode("utf-8", "replace")[-5000:], mtp=mtp, files=files,
                initial_tree=initial_tree)
    return data


def _step(run: dict[str, Any], name: str) -> dict[str, Any]:
    step = run.get("steps", {}).get(name)
    assert step is not None, f"step {name} did not run: vm {run['returncode']} {run['stderr']}"
    assert step["ok"], step.get("error")
    return step


def test_guest_run_completed(main_run: dict[str, Any]) -> None:
    assert main_run["returncode"] == 0, main_run["stderr"]
    assert main_run.get("done") is True


def test_ptpctl_list_devices(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "list_devices")
    assert step["rc"] == 0, step["stderr"]
    usb = [d for d in step["devices"] if d["spec"].startswith("usb:")]
    assert len(usb) == 1 and usb[0]["vendor_id"] == 0x46F4 and usb[0]["product_id"] == 0x0004


def test_ptpctl_info_operations_list(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "info_ops_list")
    assert step["rc"] == 0, step["stderr"]
    text = step["stdout"]
    assert "Manufacturer: QEMU" in text
    assert "0x101b/PTP_GetPartialObject" in text and "0x100d/PTP_SendObject" in text
    for name in ODD_NAMES + ["IMG_0001.JPG", "deep.txt", "big.bin"]:
        assert name in text
    assert ".hidden" not in text


def test_ptpctl_get_file(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "get_file")
    assert step["rc"] == 0, step["stderr"]
    assert step["sha256"] == _sha(main_run["files"]["big.bin"])


def test_ptpctl_upload_lands_intact(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "upload_ctl")
    assert step["rc"] == 0, step["stderr"]
    landed = main_run["mtp"] / "up_ctl.bin"
    assert landed.stat().st_size == CTL_UPLOAD_SIZE
    assert _file_sha(landed) == step["sha256"] == _sha(_bytes(7, CTL_UPLOAD_SIZE))
    # The handle ptpctl reports is the object's real handle (as the device lists it in the
    # same session; usb-mtp registers uploads later than it announces their handle).
    out = json.loads(step["stdout"])
    listed = {o["path"]: o["handle"] for o in out["storages"][0]["objects"]}
    assert listed["/up_ctl.bin"] == out["upload"]["handle"]


def test_mount_ls_matches_served_folder(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "ls_lR")
    assert step["rc"] == 0, step["stderr"]
    assert step["storage"] == STORAGE
    expected = dict(main_run["initial_tree"])
    expected["up_ctl.bin"] = CTL_UPLOAD_SIZE          # uploaded by ptpctl -u just before
    assert step["tree"] == expected
    assert not any(name.startswith(".") for name in step["tree"])


def test_mount_listing_costs(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "ls_lR")
    tree = step["tree"]
    folders = 1 + sum(1 for v in tree.values() if v == "dir")
    # one GetObjectInfo per object + one GetObjectHandles per folder (+ storage info at most)
    assert step["cold_transactions"] <= len(tree) + folders + 2, step
    assert step["warm_transactions"] == 0, step


def test_cp_out_hashes(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "cp_out")
    assert step["rc"] == 0, step["stderr"]
    files = main_run["files"]
    expected = {rel[len("photos/"):]: _sha(data) for rel, data in files.items()
                if rel.startswith("photos/")}
    assert step["hashes"] == expected
    assert step["odd"] == {name: _sha(files[name]) for name in ODD_NAMES}


def test_cp_in_lands_intact(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "cp_in")
    assert step["rc"] == 0, step["stderr"]
    landed = main_run["mtp"] / "in"
    got = {str(p.relative_to(landed)): _file_sha(p) for p in landed.rglob("*") if p.is_file()}
    assert got == step["hashes"]
    assert step["readback"] == step["hashes"]
    assert {k: v for k, v in step["sizes_in_mount"].items() if v != "dir"} == {
        rel: (landed / rel).stat().st_size for rel in step["hashes"]}


def test_undeliverable_upload_fails_loudly(main_run: dict[str, Any]) -> None:
    for size, step in _step(main_run, "cp_in")["unsendable"].items():
        landed = main_run["mtp"] / f"u_{size}.bin"
        if step["rc"] == 0:   # a usb-mtp that accepts it must have stored it intact
            assert _file_sha(landed) == step["sha256"], size
        else:                 # EIO at close; whatever usb-mtp kept is not the whole file
            assert "Input/output error" in step["stderr"], step
            assert not landed.exists() or _file_sha(landed) != step["sha256"]


def test_overwrite_shorter_and_longer(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "overwrite")
    mtp = main_run["mtp"]
    assert (mtp / "over.txt").read_bytes() == b"short\n"
    assert step["short_size"] == 6 and step["short_read"] == "short\n"
    assert step["long_rc"] == 0, step["long_err"]
    assert _file_sha(mtp / "photos" / "IMG_0001.JPG") == _sha(_bytes(1048576, 1048576))
    assert step["long_size"] == 1048576 and step["long_sha"] == _sha(_bytes(1048576, 1048576))


def test_append(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "append")
    assert step["rc"] == 0, step["stderr"]
    assert step["read"] == "line1\nline2\n"
    assert (main_run["mtp"] / "append.txt").read_bytes() == b"line1\nline2\n"


def test_mkdir_rm_rmdir(main_run: dict[str, Any]) -> None:
    import errno
    step = _step(main_run, "mkdir_rm_rmdir")
    mtp = main_run["mtp"]
    assert step["listed"] == ["inner"]
    assert step["rmdir_nonempty"] == errno.ENOTEMPTY
    assert step["after"] is False and not (mtp / "newdir").exists()
    assert (mtp / "keepdir").is_dir()
    assert step["rmme_exists"] is False and not (mtp / "rmme.txt").exists()
    # usb-mtp has neither SetObjectPropValue nor MoveObject: a small file is renamed by
    # copying it on the device (upload under the new name, then delete the old object).
    assert step["rename"] == "renamed"
    assert step["renamed_listed"] == ["renamed.txt"]
    assert (mtp / "renamed.txt").read_bytes() == b"moved by copy\n"
    assert not (mtp / "moveme.txt").exists()
    assert (mtp / "append.txt").exists()


def test_df_is_sane(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "df")
    assert step["rc"] == 0, step["stderr"]
    assert step["blocks"] > 0
    assert 0 < step["bfree"] <= step["blocks"]
    assert step["bavail"] <= step["bfree"]
    host = os.statvfs(main_run["mtp"])
    assert abs(step["blocks"] * step["bsize"] - host.f_blocks * host.f_frsize) <= 0.01 * (
        host.f_blocks * host.f_frsize)


def test_ptp_virtual_files(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "ptp_files")
    for name, r in step.items():
        if isinstance(r, dict):
            assert r["rc"] == 0, (name, r["stderr"])
    assert "QEMU" in step["device"]["text"]
    assert "0x1009/PTP_GetObject" in step["operations"]["text"]
    assert STORAGE in step["storages"]["text"]
    assert "transactions:" in step["stats"]["text"]


def test_unmount_clean(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "unmount")
    assert step["fusermount"] == 0, step["fusermount_err"]
    assert step["exit"] == 0, step["log"]
    assert "Traceback" not in step["log"], step["log"]


def test_device_view_after_session(main_run: dict[str, Any]) -> None:
    step = _step(main_run, "list_after")
    assert step["rc"] == 0, step["stderr"]
    paths = set(step["paths"])
    assert {"/in/f_0.bin", "/in/f_3145735.bin", "/in/nested/ü ñ.txt", "/keepdir",
            "/up_ctl.bin", "/over.txt"} <= paths
    assert "/rmme.txt" not in paths and "/newdir" not in paths


# --------------------------------------------------------------------------- boot 2: unplug

@pytest.fixture(scope="module")
def unplug_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Boot 2: pull the device out while the guest copies a big file; plug it back."""
    base = tmp_path_factory.mktemp("unplug")
    mtp, share = base / "mtp", base / "share"
    mtp.mkdir()
    share.mkdir()
    with open(mtp / "big.bin", "wb") as f:
        f.truncate(BIG_SIZE)
    (mtp / "small.txt").write_text("small\n")
    (mtp / "other.txt").write_text("other\n")
    qmp = base / "qmp.sock"
    proc = _vm(mtp, share, GUEST_UNPLUG, qmp=qmp, timeout=400)
    timing: dict[str, float] = {}
    try:
        _wait_state(share, "copying", proc, 200)
        t0 = time.monotonic()
        subprocess.run([str(USB_VM), "qmp", str(qmp), "unplug"], check=True, timeout=30)
        timing["unplug_seconds"] = time.monotonic() - t0
        _wait_state(share, "want_plug", proc, 200)
        subprocess.run([str(USB_VM), "qmp", str(qmp), "plug"], check=True, timeout=30)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = _result(share)
    data.update(timing, returncode=proc.returncode, stdout=out.decode("utf-8", "replace"),
                stderr=err.decode("utf-8", "replace")[-5000:])
    return data


def test_unplug_mid_copy_gives_eio_promptly(unplug_run: dict[str, Any]) -> None:
    step = _step(unplug_run, "copy_unplugged")
    assert step["gone"] is True
    assert step["cp_rc"] not in (0, "hung"), step
    assert "Input/output error" in step["cp_err"] or "No such device" in step["cp_err"], step
    assert step["cp_seconds_after_unplug"] < 10, step
    assert step["copied"] < BIG_SIZE


def test_unplugged_mount_answers_without_hanging(unplug_run: dict[str, Any]) -> None:
    step = _step(unplug_run, "while_unplugged")
    for what in ("ls", "cat", "df"):
        assert step[what]["rc"] != "timeout", (what, step[what])
        assert step[what]["seconds"] < 10, (what, step[what])
    assert step["cat"]["rc"] != 0 or step["cat"]["stdout"] == "small\n"


def test_replug_then_unmount(unplug_run: dict[str, Any]) -> None:
    assert unplug_run["returncode"] == 0, unplug_run["stderr"]
    step = _step(unplug_run, "replugged")
    assert step["back"] is True
    # the mount reconnects to the re-plugged device by itself
    assert step["works_after"] is not None and step["works_after"] < 20, step
    unmount = _step(unplug_run, "unmount")
    assert unmount["exit"] != "hung", unmount
    assert unmount["unmount_seconds"] < 20, unmount
