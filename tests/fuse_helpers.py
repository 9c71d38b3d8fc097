"""Mount ptpfs for a test and always unmount it.

``mounted_session(session, ...)`` serves an open Session in a thread of the
test process (so the test can act on the simulated camera it also holds);
``mounted_process(args, ...)`` runs the ``ptpfs`` command line in the
foreground as a subprocess.  Both wait until the mount is up and, whatever
happens, unmount with ``fusermount3 -u`` (``-z`` as a fallback) and remove
the mount point.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def is_mounted(path: str) -> bool:
    """Whether *path* is a mount point right now (reads /proc/self/mounts)."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == path for line in mounts)


def unmount(path: str, timeout: float = 10.0) -> None:
    """``fusermount3 -u``, retried while busy; ``-u -z`` as the last resort."""
    deadline = time.monotonic() + timeout
    while is_mounted(path) and time.monotonic() < deadline:
        subprocess.run(["fusermount3", "-u", path], capture_output=True)
        if is_mounted(path):
            time.sleep(0.2)
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)


def _wait_mounted(path: str, alive: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not is_mounted(path):
        if not alive():
            raise RuntimeError(f"ptpfs exited before mounting {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"ptpfs did not mount {path} within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def mounted_session(session: Any, options: list[str] | None = None,
                    timeout: float = 15.0) -> Iterator[str]:
    """Mount an open *session* in a thread; yields the mount point."""
    from ptpfs.fs.mount import mount, parse_options

    mountpoint = tempfile.mkdtemp(prefix="ptpfs-mnt-")
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["ok"] = mount(session, mountpoint, parse_options(options or []))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            result["error"] = exc

    thread = threading.Thread(target=run, name="ptpfs-test-mount", daemon=True)
    thread.start()
    try:
        _wait_mounted(mountpoint, thread.is_alive, timeout)
        yield mountpoint
    finally:
        unmount(mountpoint)
        thread.join(timeout=15)
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)
    if "error" in result:
        raise result["error"]


@contextlib.contextmanager
def mounted_process(args: list[str], timeout: float = 20.0,
                    env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``ptpfs -f ARGS MOUNTPOINT`` in a subprocess; yields (mountpoint, process)."""
    mountpoint = tempfile.mkdtemp(prefix="ptpfs-mnt-")
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpfs_main", "-f", *args, mountpoint],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            _wait_mounted(mountpoint, lambda: proc.poll() is None, timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {proc.communicate()[1].decode(errors='replace')}") from None
        yield mountpoint, proc
    finally:
        unmount(mountpoint)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    """Run a real tool; capture text output; never raise on failure."""
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)
