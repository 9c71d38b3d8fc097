"""Real mounts of the ptpfs command: no stacked mounts, no libfuse warning,
the background log (file and syslog) with the mount's lifecycle, PTP
transactions with -v only, property writes and refused uploads named with
the path and the camera's response."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuse_helpers import is_mounted, mounted_process, mounted_session, unmount

from ptpfs.session import Session
from ptpfs.sim import SampleStore, SimCamera
from ptpfs.transport.inprocess import InProcessTransport

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
                       reason="needs /dev/fuse and fusermount3"),
]


def _ptpfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(check=False, args=[sys.executable, "-m", "ptpfs.cli.ptpfs_main", *args],
                          capture_output=True, text=True, env=env or ENV, timeout=60,
                          stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _mountpoint() -> Iterator[str]:
    mnt = tempfile.mkdtemp(prefix="ptpfs-mnt-")
    try:
        yield mnt
    finally:
        unmount(mnt)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


def _mounts_at(path: str) -> int:
    with open("/proc/self/mounts") as f:
        return sum(1 for line in f if line.split()[1] == os.path.realpath(path))


def test_a_mount_point_that_is_a_mount_is_refused_and_no_libfuse_warning() -> None:
    with _mountpoint() as mnt:
        first = _ptpfs("--simulate", mnt)
        assert first.returncode == 0, first.stderr
        assert "Ignoring invalid max threads" not in first.stderr
        assert first.stderr == ""
        second = _ptpfs("--simulate", mnt)
        assert second.returncode == 2
        assert second.stderr == (f"ptpfs: {mnt} is already a mount point "
                                 f"(unmount it first: fusermount3 -u {mnt})\n")
        assert _mounts_at(mnt) == 1
        assert sorted(os.listdir(mnt)) == [".ptp", "SD1", "SD2"]   # the first mount still works
        # a bad option is refused before anything is mounted, also next to a mount
        third = _ptpfs("--simulate", "-o", "readahead_max=0", mnt)
        assert third.returncode == 2 and _mounts_at(mnt) == 1


def test_foreground_has_no_libfuse_thread_warning() -> None:
    with mounted_process(["--simulate"]) as (mnt, proc):
        assert sorted(os.listdir(mnt)) == [".ptp", "SD1", "SD2"]
    assert proc.returncode == 0
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert "Ignoring invalid max threads" not in err
    assert re.search(rf"^ptpfs: mounted sim on {re.escape(mnt)} \(ptpfs ", err, re.MULTILINE), err


def _wait_gone(pid: int) -> None:
    """Wait (bounded) until the daemon *pid* has exited after its unmount."""
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"ptpfs daemon {pid} still running after its unmount")


def _log_pid(text: str) -> int:
    m = re.search(r"ptpfs\[(\d+)\]: mounted \S+ on", text)
    assert m, text
    return int(m.group(1))


def test_background_log_file_with_verbose_transactions(tmp_path: Path) -> None:
    log = tmp_path / "ptpfs.log"
    with _mountpoint() as mnt:
        res = _ptpfs("--simulate", "-v", "-o", f"logfile={log}", mnt)
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert sorted(os.listdir(f"{mnt}/SD1")) == ["DCIM"]
        prop = f"{mnt}/.ptp/properties.d/ExposureTime"
        with open(prop, "w") as f:
            f.write("1/250\n")
        with pytest.raises(OSError), open(prop, "w") as f:
            f.write("7/3\n")
        pid = _log_pid(log.read_text())
        os.kill(pid, 0)                      # the daemon that logs is the one serving
        assert pid != os.getpid()
        unmount(mnt)
        _wait_gone(pid)
    text = log.read_text()
    assert re.search(rf"ptpfs\[{pid}\]: (PTP_)?GetStorageIDs\(.*\) -> OK", text), text
    assert re.search(rf"ptpfs\[{pid}\]: /\.ptp/properties\.d/ExposureTime: set to '1/250'", text)
    assert re.search(r"/\.ptp/properties\.d/ExposureTime: setting '7/3' refused: ", text)
    assert re.search(rf"ptpfs\[{pid}\]: unmounted sim from ", text)


def test_background_log_without_verbose_has_no_transactions(tmp_path: Path) -> None:
    log = tmp_path / "quiet.log"
    with _mountpoint() as mnt:
        assert _ptpfs("--simulate", "-o", f"logfile={log}", mnt).returncode == 0
        os.listdir(f"{mnt}/SD1/DCIM")
        pid = _log_pid(log.read_text())
        unmount(mnt)
        _wait_gone(pid)
    text = log.read_text()
    assert "mounted sim on" in text and "unmounted sim" in text
    assert "GetStorageIDs" not in text and "GetObject" not in text


def test_background_log_goes_to_syslog(tmp_path: Path) -> None:
    sock_path = str(tmp_path / "dev-log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.settimeout(20)
    env = dict(ENV, PTPFS_SYSLOG_SOCKET=sock_path)
    try:
        with _mountpoint() as mnt:
            res = _ptpfs("--simulate", mnt, env=env)
            assert res.returncode == 0, res.stderr
            first = server.recv(4096).decode()
            unmount(mnt)
            last = server.recv(4096).decode()
    finally:
        server.close()
    m = re.fullmatch(rf"<30>ptpfs\[(\d+)\]: mounted sim on {re.escape(mnt)} \(ptpfs .*\)\x00",
                     first)
    assert m, first
    assert last == f"<30>ptpfs[{m.group(1)}]: unmounted sim from {mnt}\x00"


def test_an_unwritable_logfile_is_refused_before_mounting(tmp_path: Path) -> None:
    with _mountpoint() as mnt:
        res = _ptpfs("--simulate", "-o", f"logfile={tmp_path}/no/such/dir/log", mnt)
        assert res.returncode == 2 and "cannot write the log file" in res.stderr
        assert not is_mounted(mnt)


def test_refused_upload_is_logged_with_path_and_response(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    store = SampleStore(folders=1, files_per_folder=2, jpeg_size=1000, raw_size=1000,
                        capacity=4000)
    session = Session(InProcessTransport(SimCamera(store, "generic")))
    session.open()
    try:
        with mounted_session(session) as mnt, \
                caplog.at_level(logging.INFO, logger="ptpfs.activity"), \
                pytest.raises(OSError) as err, \
                open(f"{mnt}/SD1/DCIM/100CANON/big.bin", "wb") as f:
            f.write(b"x" * 100_000)
    finally:
        session.close()
    assert err.value.errno == errno.ENOSPC
    lines = [r.getMessage() for r in caplog.records if r.name == "ptpfs.activity"]
    assert any(re.fullmatch(r"/SD1/DCIM/100CANON/big\.bin: upload failed: (PTP_)?"
                            r"SendObjectInfo: StoreFull \(0x200c\)", line) for line in lines), lines


def _serve(port: int = 0) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpctl", "serve", "--listen",
                             f"127.0.0.1:{port}"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert m, line
    return proc, int(m.group(1))


def _wait_for(path: Path, pattern: str) -> str:
    """Wait (bounded) until the log at *path* matches *pattern*; returns the log."""
    for _ in range(600):
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in the log:\n{text}")


def test_link_loss_and_reconnect_reach_the_background_log(tmp_path: Path) -> None:
    log = tmp_path / "link.log"
    server, port = _serve()
    second: subprocess.Popen[str] | None = None
    try:
        with _mountpoint() as mnt:
            res = _ptpfs("--device", f"ptpip:127.0.0.1:{port}", "-o",
                         f"logfile={log},timeout=2", mnt)
            assert res.returncode == 0, res.stderr
            assert "SD1" in os.listdir(mnt)
            pid = _log_pid(log.read_text())
            server.terminate()                    # the camera goes away
            server.wait(timeout=30)
            _wait_for(log, rf"ptpfs\[{pid}\]: device connection lost")
            second, _ = _serve(port)              # and comes back on the same address
            text = _wait_for(log, rf"ptpfs\[{pid}\]: device reconnected")
            assert "Traceback" not in text
            unmount(mnt)
            _wait_gone(pid)
    finally:
        for proc in (server, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
