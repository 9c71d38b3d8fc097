"""The spool directory through real mounts: ``-o spool_dir=DIR`` never changes, chmods or
cleans what ptpfs did not create (issue 11 item 2); spool files are private and nameless; a
killed instance's private directory is removed at the next start, a running one's never; an
unusable spool directory is refused with one line and exit 2, in the foreground and the
background."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from fuse_helpers import ROOT, is_mounted, mounted_process, mounted_session, unmount

from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.transport.inprocess import InProcessTransport

pytestmark = pytest.mark.fuse


def _snapshot(path: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry of *path* (not recursive): mode and content."""
    out: dict[str, tuple[int, bytes | None]] = {".": (os.lstat(path).st_mode, None)}
    for name in os.listdir(path):
        st = os.lstat(path / name)
        out[name] = (st.st_mode, (path / name).read_bytes() if (path / name).is_file() else None)
    return out


def _private_dirs(base: Path) -> list[str]:
    return sorted(n for n in os.listdir(base) if n.startswith("ptpfs-spool-"))


def _spool_fds(spool: str) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(spool + "/"):
            out.append(fd)
    return out


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout   # a bound on waiting, not a timing assertion
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def shared_dir(tmp_path: Path) -> Path:
    """A directory like /tmp: sticky and world-writable, holding other programs' files,
    including names that look like spool files."""
    base = tmp_path / "shared"
    base.mkdir()
    base.chmod(0o1777)
    (base / "spool-123-abcdef").write_bytes(b"someone else's")
    (base / "spool-old").write_bytes(b"old")
    (base / "spool-99999999-x").write_bytes(b"pid that does not run")
    (base / "ptpfs-spool-lookalike").mkdir()
    (base / "ptpfs-spool-lookalike" / "keep").write_bytes(b"k")
    (base / "report.txt").write_bytes(b"important")
    os.chmod(base / "report.txt", 0o644)
    return base


def test_given_spool_dir_and_its_files_stay_untouched(shared_dir: Path) -> None:
    before = _snapshot(shared_dir)
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    session = Session(InProcessTransport(camera)).open()
    try:
        with mounted_session(session, [f"spool_dir={shared_dir}"]) as mnt:
            private = _private_dirs(shared_dir)
            assert len(private) == 2 and "ptpfs-spool-lookalike" in private
            mine = shared_dir / next(p for p in private if p != "ptpfs-spool-lookalike")
            assert os.stat(mine).st_mode & 0o777 == 0o700
            with open(os.path.join(mnt, "SD1", "secret.bin"), "wb") as f:
                f.write(os.urandom(100_000))
                f.flush()
                fds = _spool_fds(str(mine))
                assert fds, "the upload is not spooled in the private directory"
                for fd in fds:
                    assert os.stat(f"/proc/self/fd/{fd}").st_mode & 0o777 == 0o600
                    assert "(deleted)" in os.readlink(f"/proc/self/fd/{fd}")
                assert os.listdir(mine) == [".ptpfs-spool"]      # spool files have no name
            assert _wait(lambda: _spool_fds(str(mine)) == [])     # closed with the file
            during = _snapshot(shared_dir)
            del during[mine.name]
            assert during == before                   # nothing else changed, mode included
            assert os.path.getsize(os.path.join(mnt, "SD1", "secret.bin")) == 100_000
        assert _snapshot(shared_dir) == before       # the private directory went at unmount
    finally:
        session.close()
        camera.store.close()
    assert os.stat(shared_dir).st_mode & 0o7777 == 0o1777


def test_killed_instance_leftover_removed_running_one_kept(shared_dir: Path) -> None:
    before = _snapshot(shared_dir)
    with mounted_process(["--simulate", "-o", f"spool_dir={shared_dir}"]) as (mnt_a, _):
        live = set(_private_dirs(shared_dir)) - {"ptpfs-spool-lookalike"}
        assert len(live) == 1
        with mounted_process(["--simulate", "-o", f"spool_dir={shared_dir}"]) as (_, proc_k):
            killed = set(_private_dirs(shared_dir)) - live - {"ptpfs-spool-lookalike"}
            assert len(killed) == 1
            os.kill(proc_k.pid, signal.SIGKILL)               # no chance to clean up
            proc_k.wait()
        assert killed <= set(_private_dirs(shared_dir))       # left behind
        with mounted_process(["--simulate", "-o", f"spool_dir={shared_dir}"]) as (mnt_b, _):
            assert is_mounted(mnt_b)
            now = set(_private_dirs(shared_dir))
            assert not killed & now                            # the dead one's is gone
            assert live <= now                                 # the running one's stays
        with open(os.path.join(mnt_a, "SD1", "still.txt"), "wb") as f:   # and still works
            f.write(b"ok\n")
        with open(os.path.join(mnt_a, "SD1", "still.txt"), "rb") as f:
            assert f.read() == b"ok\n"
    assert _snapshot(shared_dir) == before


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
@pytest.mark.parametrize("kind", ["missing", "file", "unwritable"])
def test_unusable_spool_dir_refused_in_one_line(tmp_path: Path, kind: str, background: bool) -> None:
    target = tmp_path / "spool"
    if kind == "file":
        target.write_bytes(b"x")
    elif kind == "unwritable":
        if os.geteuid() == 0:
            target = Path("/proc/self")          # root may write anywhere a mode allows
        else:
            target.mkdir(mode=0o500)
    mountpoint = tempfile.mkdtemp(prefix="ptpfs-mnt-")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "ptpfs.cli.ptpfs_main", *([] if background else ["-f"]),
            "--simulate", "-o", f"spool_dir={target}", mountpoint]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"ptpfs: spool_dir={target}: ")
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert not is_mounted(mountpoint)
    finally:
        if is_mounted(mountpoint):
            unmount(mountpoint)
        os.rmdir(mountpoint)
