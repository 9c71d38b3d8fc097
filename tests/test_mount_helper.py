"""mount(8) and fstab find ptpfs after ``ptpfs --install-mount-helper``.

Runs for real in a private mount namespace (``unshare -m``) so the host's
/usr/local/bin and /etc/fstab are never touched: an empty folder is bound
over /usr/local/bin, the helper writes its launchers there, then
``mount -t fuse.ptpfs sim MNT`` and an fstab line ``noauto,user`` (a temporary
fstab bound over /etc/fstab) are mounted with mount(8)'s own minimal PATH,
listed and unmounted -- as root, and as an ordinary user where that user can
run this Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ptpfs

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces, mount(8))"),
    pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("mount") is None,
                       reason="needs unshare(1) and mount(8)"),
    pytest.mark.skipif(not os.path.exists("/dev/fuse") or shutil.which("mount.fuse3") is None
                       and not os.path.exists("/sbin/mount.fuse3"),
                       reason="needs /dev/fuse and mount.fuse3 (package fuse3)"),
]


@pytest.fixture
def world() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ptpfs-helper-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _in_namespace(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run *script* with sh in a private mount namespace."""
    full = ("set -eu\ncd /\n"
            "mount --make-rprivate /\n" + script)
    return subprocess.run(check=False, args=["unshare", "-m", "sh", "-c", full], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ,
                                                    PYTHONPATH=str(ROOT) + os.pathsep
                                                    + os.environ.get("PYTHONPATH", "")),
                          stdin=subprocess.DEVNULL)


def _setup(world: Path) -> str:
    (world / "bin").mkdir()
    for name in ("mnt1", "mnt2"):
        (world / name).mkdir()
    return (f"mount --bind {world}/bin /usr/local/bin\n"
            f"{sys.executable} -m ptpfs.cli.ptpfs_main --install-mount-helper\n"
            f"trap 'umount -l {world}/mnt1 2>/dev/null || true; "
            f"umount -l {world}/mnt2 2>/dev/null || true' EXIT\n")


def test_mount_t_fuse_ptpfs_and_fstab_line_as_root(world: Path) -> None:
    fstab = world / "fstab"
    fstab.write_text(f"sim {world}/mnt2 fuse.ptpfs noauto,user,cache_ttl=30,ro 0 0\n")
    script = _setup(world) + f"""
echo "== launcher"; /usr/local/bin/ptpfs --version
env -i PATH=/usr/bin:/bin mount -t fuse.ptpfs sim {world}/mnt1
echo "== mounts1"; grep " {world}/mnt1 " /proc/self/mounts
echo "== ls1"; ls {world}/mnt1
echo "== device1"; head -n 2 {world}/mnt1/.ptp/device
env -i PATH=/usr/bin:/bin mount -t fuse.ptpfs sim {world}/mnt1 && echo "stacked!" || echo "== refused $?"
umount {world}/mnt1
mount --bind {fstab} /etc/fstab
env -i PATH=/usr/bin:/bin mount {world}/mnt2
echo "== mounts2"; grep " {world}/mnt2 " /proc/self/mounts
echo "== ls2"; ls {world}/mnt2/SD1/DCIM
touch {world}/mnt2/SD1/x 2>/dev/null || echo "== ro refused"
umount {world}/mnt2
echo "== done"
"""
    res = _in_namespace(script)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert f"ptpfs {ptpfs.__version__}" in out
    sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1] if "\n" in s else ""
                for s in out.split("== ")[1:]}
    assert sections["mounts1"].split()[2] == "fuse.ptpfs"
    assert sections["mounts1"].split()[0] == "ptpfs:sim"
    assert sections["ls1"].split() == ["SD1", "SD2"]
    assert sections["device1"].startswith("Manufacturer: ")
    assert "stacked!" not in out and "== refused" in out
    assert "already a mount point" in res.stderr
    mounts2 = sections["mounts2"].split()
    assert mounts2[2] == "fuse.ptpfs" and "ro" in mounts2[3].split(",")
    assert sections["ls2"].split() == ["100CANON"]
    assert "== ro refused" in out
    assert "== done" in out
    # nothing leaked into the host's mount table
    with open("/proc/self/mounts") as f:
        assert str(world) not in f.read()


def _user_install(world: Path) -> tuple[str, str]:
    """An installation an ordinary user can run: copies of ptpfs and its
    dependencies in *world*/lib, for the system's /usr/bin/python3 (this
    test's interpreter may live in root's home).  Returns (python, lib)."""
    import importlib.util
    lib = world / "lib"
    lib.mkdir()
    shutil.copytree(ROOT / "ptpfs", lib / "ptpfs",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for module in ("mfusepy", "cachetools", "usb"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, lib / origin.parent.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, lib / origin.name)
    for path in [lib, *lib.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return "/usr/bin/python3", str(lib)


def _nobody_can_run(python: str, lib: str) -> str | None:
    if not os.access(python, os.X_OK):
        return f"no {python}"
    probe = subprocess.run(check=False, args=
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python,
         "-c", "import ptpfs.cli.ptpfs_main, mfusepy"],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": lib})
    if probe.returncode != 0:
        last = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "denied"
        return f"user nobody cannot run ptpfs with {python} ({last})"
    return None


def test_fstab_user_line_mounts_for_an_ordinary_user(world: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv(1)")
    python, lib = _user_install(world)
    reason = _nobody_can_run(python, lib)
    if reason:
        pytest.skip(reason)
    (world / "bin").mkdir()
    (world / "mnt").mkdir()
    fstab = world / "fstab"
    fstab.write_text(f"sim {world}/mnt fuse.ptpfs noauto,user 0 0\n")
    n = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
    # /dev/fuse as a distribution ships it (0666), also where this machine has it 0600:
    # a node of our own bound over it, inside the private namespace only
    script = f"""
mknod -m 666 {world}/fuse c 10 229
mount --bind {world}/fuse /dev/fuse
mount --bind {world}/bin /usr/local/bin
PYTHONPATH={lib} {python} -m ptpfs.cli.ptpfs_main --install-mount-helper
trap 'umount -l {world}/mnt 2>/dev/null || true' EXIT
chown {NOBODY}:{NOBODY} {world}/mnt
mount --bind {fstab} /etc/fstab
{n} env -i PATH=/usr/bin:/bin mount {world}/mnt
echo "== mounts"; grep " {world}/mnt " /proc/self/mounts
echo "== ls"; {n} ls {world}/mnt
echo "== owner"; {n} stat -c %u {world}/mnt/SD1
{n} env -i PATH=/usr/bin:/bin umount {world}/mnt
echo "== after"; grep -c " {world}/mnt " /proc/self/mounts || true
"""
    res = _in_namespace(script)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1] if "\n" in s else ""
                for s in out.split("== ")[1:]}
    fields = sections["mounts"].split()
    assert fields[2] == "fuse.ptpfs" and f"user_id={NOBODY}" in fields[3]
    assert sections["ls"].split() == ["SD1", "SD2"]
    assert sections["owner"].strip() == str(NOBODY)
    assert sections["after"].strip() == "0"
    # no syslog here and no home for nobody: said once, on the terminal, not silently lost
    if not os.path.exists("/dev/log"):
        assert "background messages are discarded; use -o logfile=PATH" in res.stderr


def test_ordinary_user_gets_one_line_for_root_only_options(world: Path) -> None:
    """kernel_readahead as a normal user: a message, and the mount goes on;
    allow_other without user_allow_other in fuse.conf: one line, exit 2."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv(1)")
    python, lib = _user_install(world)
    reason = _nobody_can_run(python, lib)
    if reason:
        pytest.skip(reason)
    (world / "mnt").mkdir()
    (world / "fuse.conf").write_text("# user_allow_other\n")
    n = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
    run = f"{n} env -i PATH=/usr/bin:/bin PYTHONPATH={lib} {python} -m ptpfs.cli.ptpfs_main"
    script = f"""
mknod -m 666 {world}/fuse c 10 229
mount --bind {world}/fuse /dev/fuse
mount --bind {world}/fuse.conf /etc/fuse.conf
trap 'umount -l {world}/mnt 2>/dev/null || true' EXIT
mkdir {world}/logs
chown {NOBODY}:{NOBODY} {world}/mnt {world}/logs
echo "== allow_other"; {run} --simulate -o allow_other {world}/mnt 2>&1 || echo "rc=$?"
echo "== readahead"; {run} --simulate -o kernel_readahead=1M,logfile={world}/logs/mnt.log {world}/mnt 2>&1 \\
    || echo "rc=$?"
echo "== ls"; {n} ls {world}/mnt
{n} fusermount3 -u {world}/mnt
"""
    res = _in_namespace(script)
    assert res.returncode == 0, res.stdout + res.stderr
    sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1] if "\n" in s else ""
                for s in res.stdout.split("== ")[1:]}
    assert sections["allow_other"] == (
        "ptpfs: -o allow_other needs 'user_allow_other' in /etc/fuse.conf (as root: echo "
        "user_allow_other >> /etc/fuse.conf), or mount as root\nrc=2\n")
    assert sections["readahead"] == ("ptpfs: kernel_readahead ignored: only root can set the "
                                     "kernel's read-ahead (the kernel's default applies)\n")
    assert sections["ls"].split() == ["SD1", "SD2"]


def test_readme_extras_block_installs_man_pages_and_completion(world: Path) -> None:
    """The README's "Installing the extras" commands, verbatim, with an empty
    folder bound over /usr/local/share: man(1) finds the pages and bash
    completes with the installed file."""
    import re
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Installing the extras", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```sh\n(.*?)\n```$", section, re.MULTILINE | re.DOTALL)
    assert block, "README lost its extras block"
    (world / "share").mkdir()
    script = f"""
mount --bind {world}/share /usr/local/share
cd {ROOT}
{block.group(1)}
cd /
echo "== man"; man -w ptpfs 2>&1 || true; man -w ptpctl 2>&1 || true
echo "== complete"; bash --norc -c 'source /usr/local/share/bash-completion/completions/ptpctl; \\
  COMP_WORDS=(ptpctl --list-d); COMP_CWORD=1; _ptpctl; echo "${{COMPREPLY[@]}}"'
echo "== zsh"; ls /usr/local/share/zsh/site-functions
"""
    res = _in_namespace(script)
    assert res.returncode == 0, res.stdout + res.stderr
    sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1] if "\n" in s else ""
                for s in res.stdout.split("== ")[1:]}
    if shutil.which("man"):
        found = sections["man"].split()     # /usr/local/man is Debian's link to share/man
        assert len(found) == 2 and all(p.startswith("/usr/local/") for p in found), found
        assert found[0].endswith("/man1/ptpfs.1") and found[1].endswith("/man1/ptpctl.1")
    assert sections["complete"].split() == ["--list-devices"]
    assert sections["zsh"].split() == ["_ptpctl", "_ptpfs"]
