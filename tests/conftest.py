"""Shared pytest configuration.

* Hypothesis profiles: ``ci`` (default) keeps property tests quick;
  ``PTPFS_HYPOTHESIS=long`` runs 5000 examples each.
* Modules marked ``fuse`` or ``qemu`` (their ``pytestmark``) are skipped with
  the reason when the machine lacks FUSE (``/dev/fuse``, ``fusermount3``,
  libfuse3 for mfusepy) or QEMU (``qemu-system-x86_64``), before they are
  imported, so ``pytest -m "not fuse and not qemu"`` (the fast inner loop)
  and the whole suite both run anywhere.
* Shared fixtures: ``camera`` (a simulated camera), ``client`` (an opened raw
  PTP client), ``server`` (the camera over PTP/IP), ``sim_mount`` (mount a
  simulated camera in-process) and ``wait_for`` (poll a condition with a
  hang-check timeout).
* Subprocesses are started without vfork on Pythons whose vfork keeps the
  interpreter lock (before 3.12, e.g. Debian 12's 3.11.2): see below.
"""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile("long" if os.environ.get("PTPFS_HYPOTHESIS") == "long" else "ci")

# Many tests mount ptpfs in this process and run programs (rm, cp, rsync) while a file on
# the mount is open.  The child closes its inherited descriptors before exec, and closing
# one on the mount sends FUSE a flush that this process's FUSE threads must answer.  Older
# Pythons (before gh-104372, e.g. Debian 12's 3.11.2) hold the interpreter lock while the
# vfork()ed child runs, so those threads could never answer: the test hangs for ever.
# Plain fork() lets this process keep running meanwhile.
if sys.version_info < (3, 12):
    subprocess._USE_VFORK = False  # type: ignore[attr-defined]


# ---------------------------------------------------------------- preconditions

def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "FUSE is not available: no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "FUSE is not available: no fusermount3 (apt-get install fuse3)"
    try:
        # ptpfs.fs first: it chooses libfuse 3 before mfusepy loads a library
        importlib.import_module("ptpfs.fs")
        importlib.import_module("mfusepy")
    except (ImportError, OSError) as exc:
        return f"FUSE is not available: mfusepy cannot load libfuse3 ({exc})"
    return None


def _qemu_missing() -> str | None:
    if shutil.which("qemu-system-x86_64") is None:
        return "QEMU is not available: no qemu-system-x86_64 (apt-get install qemu-system-x86)"
    return None


PRECONDITIONS: dict[str, Callable[[], str | None]] = {"fuse": _fuse_missing,
                                                      "qemu": _qemu_missing}
_missing: dict[str, str | None] = {}


def _module_marks(path: Path) -> set[str]:
    """The marks a test module declares in its ``pytestmark`` (read without importing it)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return set()
    marks: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            for sub in ast.walk(node.value):
                if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute)
                        and sub.value.attr == "mark"):
                    marks.add(sub.attr)
    return marks


class _SkippedModule(pytest.Module):
    """A test module skipped before import because a precondition is missing."""

    reason = ""

    def collect(self) -> Any:
        raise pytest.skip.Exception(self.reason, allow_module_level=True)


def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> Any:
    for mark in sorted(_module_marks(module_path) & PRECONDITIONS.keys()):
        if mark not in _missing:
            _missing[mark] = PRECONDITIONS[mark]()
        if _missing[mark]:
            module = _SkippedModule.from_parent(parent, path=module_path)
            module.reason = _missing[mark] or ""
            return module
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``fuse`` or ``qemu`` one by one (not by module) are skipped the same way."""
    for item in items:
        for mark in sorted({m.name for m in item.iter_markers()} & PRECONDITIONS.keys()):
            if mark not in _missing:
                _missing[mark] = PRECONDITIONS[mark]()
            reason = _missing[mark]
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


# ---------------------------------------------------------------- wait_for

def poll(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Whether *predicate* became true within *timeout* seconds (a hang check, generous on
    purpose on a loaded machine; no test asserts how long it took)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@pytest.fixture
def wait_for() -> Callable[..., bool]:
    """``wait_for(predicate, timeout=30.0)``: poll until true; False after the timeout."""
    return poll


# ---------------------------------------------------------------- camera and client

@pytest.fixture
def camera(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A simulated camera, closed afterwards.

    A module sets ``CAMERA = {"profile": NAME, **make_camera options}``; a
    ``profile`` fixture or parameter, where the module has one, picks the profile.
    """
    from ptpfs.sim import make_camera

    options = dict(getattr(request.module, "CAMERA", {}))
    profile = options.pop("profile", "generic")
    if "profile" in request.fixturenames:
        profile = request.getfixturevalue("profile")
    cam = make_camera(None, profile, **options)
    try:
        yield cam
    finally:
        cam.close()


@pytest.fixture
def client(request: pytest.FixtureRequest, camera: Any) -> Iterator[Any]:
    """An opened :class:`ptp_client.RawClient`: over the module's ``transport`` fixture
    if it has one (USB, PTP/IP), else in process to ``camera``."""
    from ptp_client import Client, RawClient

    try:
        transport = request.getfixturevalue("transport")
    except pytest.FixtureLookupError:
        c: RawClient = Client(camera)
        owned = True
    else:
        c = RawClient(transport)
        owned = False
    c.open()
    try:
        yield c
    finally:
        if owned:
            c.close()


@pytest.fixture
def server(camera: Any) -> Iterator[Any]:
    """``camera`` served over PTP/IP on a free loopback port (``server.port``)."""
    from ptpfs.sim.ptpip_server import PtpipServer

    srv = PtpipServer(camera).start()
    try:
        yield srv
    finally:
        srv.stop()


# ---------------------------------------------------------------- sim_mount

@dataclass
class SimMount:
    """A mounted simulated camera: the camera, the session serving it, the mount point."""

    camera: Any
    session: Any
    mnt: str

    def path(self, *parts: str) -> str:
        return os.path.join(self.mnt, *parts)


@pytest.fixture
def sim_mount(request: pytest.FixtureRequest) -> Iterator[Callable[..., SimMount]]:
    """Factory: ``sim_mount(profile="generic", options=[...], camera=None, reconnect=False,
    timeout=None, **camera_options) -> SimMount``, mounted in a thread of the test process
    over an in-process link; unmounted and closed afterwards.  A module's ``SIM_MOUNT``
    dict gives its defaults (camera options and ``timeout``)."""
    from fuse_helpers import mounted_session

    from ptpfs.connect import reopener
    from ptpfs.session import Session
    from ptpfs.sim import make_camera
    from ptpfs.transport.inprocess import InProcessTransport

    stack: list[tuple[Any, Any, Any]] = []
    defaults = dict(getattr(request.module, "SIM_MOUNT", {}))

    def make(profile: str = "generic", options: list[str] | None = None, camera: Any = None,
             reconnect: bool = False, **camera_options: Any) -> SimMount:
        camera_options = {**defaults, **camera_options}
        timeout = camera_options.pop("timeout", None)
        cam = camera or make_camera(None, profile, **camera_options)
        transport = (InProcessTransport(cam) if timeout is None
                     else InProcessTransport(cam, timeout=timeout))
        factory = reopener("sim", transport) if reconnect else None
        session = Session(transport, timeout=timeout, reopen=factory).open()
        ctx = mounted_session(session, options)
        mnt = ctx.__enter__()
        stack.append((ctx, session, cam))
        return SimMount(cam, session, mnt)

    yield make
    for ctx, session, cam in reversed(stack):
        faults = getattr(cam, "faults", None)
        if faults is not None:
            faults.clear()
        try:
            ctx.__exit__(None, None, None)
        finally:
            session.close()
            close = getattr(cam, "close", None)
            if callable(close):
                close()        # a SimCamera: its listeners and private upload directory
            else:              # a wrapper such as the hostile camera: the store it serves
                cam.camera.store.close()
