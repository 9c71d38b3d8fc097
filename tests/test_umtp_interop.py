"""ptpfs and ptpctl against uMTP-Responder: a second real MTP device nobody here wrote.

One guest boot (``tools/usb-vm/usb-vm --umtp DIR``): the Debian kernel's dummy_hcd + FunctionFS
turn the guest into a USB device served by ``umtprd``, and the guest's own USB stack sees it
as 1d6b:0100 on a dummy host controller. One guest-side script runs every step and reports
JSON into a shared folder; assertions are made on the host, against the folder umtprd serves:

* ``ptpctl --list-devices``, ``-i -o -p -d -L`` (umtprd refuses GetDeviceInfo outside a
  session), ``-g``, ``-u``;
* the mount: ``ls -lR`` (names, sizes, non-ASCII, dot-files), ``cp -r`` out and in with hashes
  compared on the served folder, overwrite, append, mkdir/rm/rmdir/mv, ``df``, ``/.ptp``,
  ``sed -i``, a second ``rsync -a`` transferring nothing, parallel ``cp``, a clean unmount.
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
    pytest.mark.skipif(shutil.which("umtprd") is None,
                       reason="umtprd not installed (apt-get install umtp-responder)"),
]

ROOT = Path(__file__).resolve().parent.parent
USB_VM = ROOT / "tools" / "usb-vm" / "usb-vm"
STORAGE = "uMTP store"
UPLOAD_SIZES = [0, 1, 511, 512, 513, 16384, 65536, 65537, 524288, 1048576 + 3]
ODD_NAMES = ["Grüße ünï.txt", "日本語 ファイル.txt", "space name.txt", "with'quote&amp.txt"]
CTL_UPLOAD_SIZE = 234567


def _bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


GUEST = r'''
import hashlib, json, os, random, shutil, subprocess, sys, time, traceback
from pathlib import Path

SHARE = Path(sys.argv[1])
CONFIG = json.loads((SHARE / "config.json").read_text())
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
        try:
            out = fn() or {}
            out.setdefault("ok", True)
        except Exception:
            out = {"ok": False, "error": traceback.format_exc()}
        RESULT["steps"][name] = out
        save()
        return fn
    return wrap

def run(cmd, timeout=120, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    return {"rc": p.returncode, "stdout": p.stdout.decode("utf-8", "replace"),
            "stderr": p.stderr.decode("utf-8", "replace")[-3000:]}

def sha_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

def is_mounted(path):
    with open("/proc/self/mounts") as m:
        return any(line.split()[1] == path for line in m)

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
    for line in open(os.path.join(MNT, ".ptp", "stats")).read().splitlines():
        if line.startswith("transactions:"):
            return int(line.split(":")[1])

@step("list_devices")
def _():
    r = run(PTPCTL + ["--list-devices", "--json"])
    r["devices"] = json.loads(r["stdout"])["devices"] if r["rc"] == 0 else None
    return r

@step("info")
def _():
    return run(PTPCTL + ["-v", "-i", "-o", "-p", "-d", "-L"])

@step("list_json")
def _():
    r = run(PTPCTL + ["-L", "--json"])
    r["listing"] = json.loads(r["stdout"]) if r["rc"] == 0 else None
    r.pop("stdout")
    return r

@step("get_file")
def _():
    objs = RESULT["steps"]["list_json"]["listing"]["storages"][0]["objects"]
    target = next(o for o in objs if o["path"] == "/big.bin")
    # umtprd numbers objects afresh in every session, once listed: list in the same session
    r = run(PTPCTL + ["-L", "-g", "%x" % target["handle"], "-O", "/tmp/got.bin"])
    r["sha256"] = sha_file("/tmp/got.bin") if r["rc"] == 0 else None
    return r

@step("upload_ctl")
def _():
    data = random.Random(7).randbytes(CONFIG["ctl_upload_size"])
    Path("/tmp/up_ctl.bin").write_bytes(data)
    return run(PTPCTL + ["-u", "0,/tmp/up_ctl.bin"])

os.makedirs(MNT, exist_ok=True)
log = open("/tmp/ptpfs.log", "wb")
proc = subprocess.Popen(PTPFS + ["-f", "--device", "usb", MNT], stdout=log, stderr=subprocess.STDOUT)
end = time.monotonic() + 60
while not is_mounted(MNT):
    if proc.poll() is not None or time.monotonic() > end:
        RESULT["mount_error"] = open("/tmp/ptpfs.log", "rb").read().decode()[-3000:]
        save()
        sys.exit(1)
    time.sleep(0.05)
STOR = os.path.join(MNT, [n for n in os.listdir(MNT) if n != ".ptp"][0])

@step("ls_lR")
def _():
    before = stats()
    r = run(["ls", "-lR", MNT])
    cold = stats() - before
    before = stats()
    run(["ls", "-lR", MNT])
    return {"rc": r["rc"], "stderr": r["stderr"], "storage": os.path.basename(STOR),
            "tree": walk(STOR), "cold_transactions": cold, "warm_transactions": stats() - before}

@step("cp_out")
def _():
    r = run(["cp", "-r", os.path.join(STOR, "photos"), "/tmp/out"])
    r["hashes"] = {os.path.relpath(os.path.join(d, f), "/tmp/out"): sha_file(os.path.join(d, f))
                   for d, _, fs in os.walk("/tmp/out") for f in fs}
    r["odd"] = {name: sha_file(os.path.join(STOR, name)) for name in CONFIG["odd_names"]}
    return r

@step("cp_in")
def _():
    src = "/tmp/in"
    os.makedirs(src + "/nested")
    for size in CONFIG["upload_sizes"]:
        Path(f"{src}/f_{size}.bin").write_bytes(random.Random(size).randbytes(size))
    Path(f"{src}/nested/ü ñ.txt").write_text("nested\n")
    r = run(["cp", "-r", src, os.path.join(STOR, "in")], timeout=600)
    r["readback"] = {os.path.relpath(os.path.join(d, f), os.path.join(STOR, "in")):
                     sha_file(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(STOR, "in"))
                     for f in fs}
    return r

@step("overwrite")
def _():
    short = os.path.join(STOR, "over.txt")
    with open(short, "w") as f:
        f.write("short\n")
    r = run(["cp", "/tmp/in/f_1048579.bin", os.path.join(STOR, "photos", "IMG_0001.JPG")])
    return {"short_read": open(short).read(), "long_rc": r["rc"], "long_err": r["stderr"]}

@step("append")
def _():
    path = os.path.join(STOR, "append.txt")
    r = run(["sh", "-c", f"echo line2 >> '{path}'"])
    r["read"] = open(path).read()
    return r

@step("mkdir_rm_rmdir_mv")
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
    r = run(["mv", os.path.join(STOR, "mvme.txt"), os.path.join(STOR, "moved ü.txt")])
    out["mv"] = r
    r = run(["mv", os.path.join(STOR, "mvdir.txt"), os.path.join(STOR, "keepdir", "mvdir.txt")])
    out["mv_dir"] = r
    out["after_mv"] = sorted(os.listdir(STOR))
    return out

@step("df")
def _():
    st = os.statvfs(STOR)
    r = run(["df", "-k", MNT])
    r.update(blocks=st.f_blocks, bfree=st.f_bfree, bsize=st.f_frsize)
    return r

@step("ptp_files")
def _():
    return {name: run(["cat", os.path.join(MNT, ".ptp", name)])
            for name in ("device", "storages", "operations", "stats")}

@step("sed_i")
def _():
    path = os.path.join(STOR, "sed.txt")
    r = run(["sed", "-i", "s/alpha/omega/", path])
    r["read"] = open(path).read()
    return r

@step("rsync_twice")
def _():
    os.makedirs("/tmp/rs/sub")
    for i in range(5):
        Path(f"/tmp/rs/r{i}.bin").write_bytes(random.Random(100 + i).randbytes(20000 * (i + 1)))
    Path("/tmp/rs/sub/s.txt").write_text("rsync\n")
    dest = os.path.join(STOR, "rs")
    first = run(["rsync", "-a", "--stats", "/tmp/rs/", dest + "/"], timeout=300)
    second = run(["rsync", "-a", "--stats", "/tmp/rs/", dest + "/"], timeout=300)
    return {"first": first, "second": second}

@step("parallel_cp")
def _():
    procs = []
    for i in range(4):
        Path(f"/tmp/par{i}.bin").write_bytes(random.Random(200 + i).randbytes(300000 + i))
        procs.append(subprocess.Popen(["cp", f"/tmp/par{i}.bin", os.path.join(STOR, f"par{i}.bin")],
                                      stderr=subprocess.PIPE))
    rcs = [(p.wait(timeout=300), p.stderr.read().decode()) for p in procs]
    return {"rcs": rcs}

@step("unmount")
def _():
    r = run(["fusermount3", "-u", MNT], timeout=30)
    rc = proc.wait(timeout=30)
    shutil.copy("/tmp/ptpfs.log", SHARE / "ptpfs.log")
    return {"fusermount": r["rc"], "exit": rc,
            "log": open("/tmp/ptpfs.log", "rb").read().decode("utf-8", "replace")[-6000:]}

RESULT["done"] = True
save()
'''


@pytest.fixture(scope="module")
def umtp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One guest boot: every ptpctl and mount check against umtprd."""
    base = tmp_path_factory.mktemp("umtp")
    store, share = base / "store", base / "share"
    (store / "photos" / "sub").mkdir(parents=True)
    share.mkdir()
    files = {
        "photos/IMG_0001.JPG": _bytes(1, 300_000),
        "photos/IMG_0002.JPG": _bytes(2, 1_500_001),
        "photos/sub/deep.txt": b"deep\n",
        "big.bin": _bytes(3, 2_000_017),
        "over.txt": _bytes(4, 200_000),
        "append.txt": b"line1\n",
        "rmme.txt": b"remove me\n",
        "mvme.txt": b"move me\n",
        "mvdir.txt": b"move me to a folder\n",
        "sed.txt": b"alpha beta\nalpha\n",
        ".hidden": b"dot file\n",
    }
    for name in ODD_NAMES:
        files[name] = name.encode() * 3
    for rel, data in files.items():
        (store / rel).write_bytes(data)
    initial = {str(p.relative_to(store)): ("dir" if p.is_dir() else p.stat().st_size)
               for p in store.rglob("*")}
    (share / "config.json").write_text(json.dumps({
        "ctl_upload_size": CTL_UPLOAD_SIZE, "upload_sizes": UPLOAD_SIZES, "odd_names": ODD_NAMES}))
    (share / "check.py").write_text(GUEST)
    guest = (f"export PYTHONPATH={shlex.quote(str(ROOT))}; "
             f"{shlex.quote(sys.executable)} {shlex.quote(str(share / 'check.py'))} "
             f"{shlex.quote(str(share))}; rc=$?; cp /run/usb-vm/umtprd.log {shlex.quote(str(share))}/; "
             "exit $rc")
    proc = subprocess.run([str(USB_VM), "--umtp", str(store), "--umtp-name", STORAGE,
                           "--share", str(share), "--timeout", "420", guest],
                          check=False, capture_output=True, cwd=ROOT, timeout=480)
    path = share / "result.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data.update(returncode=proc.returncode, stderr=proc.stderr.decode("utf-8", "replace")[-5000:],
                store=store, files=files, initial=initial)
    return data


def _step(run: dict[str, Any], name: str) -> dict[str, Any]:
    step = run.get("steps", {}).get(name)
    assert step is not None, (f"step {name} did not run: vm {run['returncode']} "
                              f"{run.get('mount_error', '')} {run['stderr']}")
    assert step["ok"], step.get("error")
    return step


def test_guest_run_completed(umtp_run: dict[str, Any]) -> None:
    assert umtp_run.get("done") is True, umtp_run.get("mount_error") or umtp_run["stderr"]
    assert umtp_run["returncode"] == 0, umtp_run["stderr"]


def test_list_devices(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "list_devices")
    assert step["rc"] == 0, step["stderr"]
    usb = [d for d in step["devices"] if d["spec"].startswith("usb:")]
    assert len(usb) == 1 and usb[0]["vendor_id"] == 0x1D6B and usb[0]["product_id"] == 0x0100


def test_info_operations_properties_listing(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "info")
    assert step["rc"] == 0, step["stderr"]
    text = step["stdout"]
    assert "Manufacturer: uMTP-Responder" in text
    assert "0x9805/MTP_GetObjectPropList" in text and "0x5001/BatteryLevel" in text
    for name in ODD_NAMES + ["IMG_0001.JPG", "deep.txt", "big.bin", ".hidden"]:
        assert name in text
    # the adaptation is said once, in -v
    assert step["stderr"].count("GetDeviceInfo is refused outside a session") == 1, step["stderr"]


def test_get_file(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "get_file")
    assert step["rc"] == 0, step["stderr"]
    assert step["sha256"] == _sha(umtp_run["files"]["big.bin"])


def test_upload_lands_intact(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "upload_ctl")
    assert step["rc"] == 0, step["stderr"]
    assert _file_sha(umtp_run["store"] / "up_ctl.bin") == _sha(_bytes(7, CTL_UPLOAD_SIZE))


def test_ls_lR_matches_served_folder(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "ls_lR")
    assert step["rc"] == 0, step["stderr"]
    assert step["storage"] == STORAGE
    expected = dict(umtp_run["initial"])
    expected["up_ctl.bin"] = CTL_UPLOAD_SIZE
    assert step["tree"] == expected
    assert step["warm_transactions"] == 0, step


def test_cp_out_hashes(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "cp_out")
    assert step["rc"] == 0, step["stderr"]
    files = umtp_run["files"]
    assert step["hashes"] == {rel[len("photos/"):]: _sha(data) for rel, data in files.items()
                              if rel.startswith("photos/")}
    assert step["odd"] == {name: _sha(files[name]) for name in ODD_NAMES}


def test_cp_in_lands_intact(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "cp_in")
    assert step["rc"] == 0, step["stderr"]
    expected = {f"f_{s}.bin": _sha(_bytes(s, s)) for s in UPLOAD_SIZES}
    expected["nested/ü ñ.txt"] = _sha(b"nested\n")
    landed = umtp_run["store"] / "in"
    assert {str(p.relative_to(landed)): _file_sha(p) for p in landed.rglob("*") if p.is_file()} == expected
    assert step["readback"] == expected


def test_overwrite_and_append(umtp_run: dict[str, Any]) -> None:
    store = umtp_run["store"]
    step = _step(umtp_run, "overwrite")
    assert step["short_read"] == "short\n"
    assert (store / "over.txt").read_bytes() == b"short\n"
    assert step["long_rc"] == 0, step["long_err"]
    assert _file_sha(store / "photos" / "IMG_0001.JPG") == _sha(_bytes(1048579, 1048579))
    step = _step(umtp_run, "append")
    assert step["rc"] == 0 and step["read"] == "line1\nline2\n", step
    assert (store / "append.txt").read_bytes() == b"line1\nline2\n"


def test_mkdir_rm_rmdir_mv(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "mkdir_rm_rmdir_mv")
    store = umtp_run["store"]
    assert step["listed"] == ["inner"]
    assert step["rmdir_nonempty"] == errno.ENOTEMPTY
    assert step["after"] is False and not (store / "newdir").exists()
    assert (store / "keepdir").is_dir()
    assert step["rmme_exists"] is False and not (store / "rmme.txt").exists()
    assert step["mv"]["rc"] == 0, step["mv"]["stderr"]
    assert (store / "moved ü.txt").read_bytes() == b"move me\n" and not (store / "mvme.txt").exists()
    assert step["mv_dir"]["rc"] == 0, step["mv_dir"]["stderr"]
    assert (store / "keepdir" / "mvdir.txt").read_bytes() == b"move me to a folder\n"
    assert not (store / "mvdir.txt").exists()


def test_df(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "df")
    assert step["rc"] == 0, step["stderr"]
    assert step["blocks"] > 0 and 0 < step["bfree"] <= step["blocks"]


def test_ptp_virtual_files(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "ptp_files")
    for name, r in step.items():
        if isinstance(r, dict):
            assert r["rc"] == 0, (name, r["stderr"])
    assert "uMTP-Responder" in step["device"]["stdout"]
    assert "0x1009/PTP_GetObject" in step["operations"]["stdout"]
    assert STORAGE in step["storages"]["stdout"]


def test_sed_in_place(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "sed_i")
    assert step["rc"] == 0, step["stderr"]
    assert step["read"] == "omega beta\nomega\n"
    assert (umtp_run["store"] / "sed.txt").read_bytes() == b"omega beta\nomega\n"


def test_rsync_twice_second_transfers_nothing(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "rsync_twice")
    assert step["first"]["rc"] == 0, step["first"]["stderr"]
    assert step["second"]["rc"] == 0, step["second"]["stderr"]
    assert "Number of regular files transferred: 0" in step["second"]["stdout"], step["second"]
    dest = umtp_run["store"] / "rs"
    for i in range(5):
        assert _file_sha(dest / f"r{i}.bin") == _sha(_bytes(100 + i, 20000 * (i + 1)))
    assert (dest / "sub" / "s.txt").read_text() == "rsync\n"


def test_parallel_cp(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "parallel_cp")
    assert all(rc == 0 for rc, _ in step["rcs"]), step
    for i in range(4):
        assert _file_sha(umtp_run["store"] / f"par{i}.bin") == _sha(_bytes(200 + i, 300000 + i))


def test_unmount_clean(umtp_run: dict[str, Any]) -> None:
    step = _step(umtp_run, "unmount")
    assert step["fusermount"] == 0 and step["exit"] == 0, step["log"]
    assert "Traceback" not in step["log"], step["log"]
