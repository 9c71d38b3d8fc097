"""The QEMU harness's guest scripts (tools/usb-vm/vmlib/guest.py), without booting anything."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "usb-vm"))

from vmlib.guest import GUEST_BIN, guest_path, run_script


def _exported_path(script: str) -> str:
    line = next(line for line in script.splitlines() if line.startswith("export PATH="))
    return line.removeprefix("export PATH=").strip("'")


def test_busybox_module_tools_come_before_the_hosts_modprobe() -> None:
    # kmod's /sbin/modprobe cannot read the guest's module layout: busybox's must win.
    script = run_script(["modprobe fuse"], "/", {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    path = _exported_path(script).split(":")
    assert path[0] == GUEST_BIN
    assert path.index(GUEST_BIN) < path.index("/sbin") and path.index(GUEST_BIN) < path.index("/usr/sbin")


def test_default_path_when_the_host_has_none() -> None:
    path = _exported_path(run_script(["true"], "/", {})).split(":")
    assert path[0] == GUEST_BIN and "/sbin" in path and "/usr/bin" in path


def test_guest_bin_appears_once() -> None:
    assert guest_path(f"/bin:{GUEST_BIN}:/sbin").split(":") == [GUEST_BIN, "/bin", "/sbin"]
