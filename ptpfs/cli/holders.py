"""Which processes hold a device node open (to name them when a camera is busy)."""

from __future__ import annotations

import os
import re

_BUSDEV = re.compile(r"usb:(\d{1,3}),(\d{1,3})")


def usb_node(text: str) -> str | None:
    """``/dev/bus/usb/BBB/DDD`` for the first ``usb:BBB,DDD`` in *text* (an error message)."""
    m = _BUSDEV.search(text)
    if m is None:
        return None
    return f"/dev/bus/usb/{int(m.group(1)):03d}/{int(m.group(2)):03d}"


def holders(path: str, proc: str = "/proc") -> list[tuple[int, str]]:
    """``(pid, command name)`` of every process with *path* open, as far as
    this user may see (other users' processes are only visible to root)."""
    target = os.path.realpath(path)
    found: list[tuple[int, str]] = []
    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in sorted(pids):
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip()
        except OSError:
            name = "?"
        found.append((pid, name))
    return found


def describe_holders(message: str) -> str:
    """`` (held by gvfs-gphoto2-vo, PID 1234)`` for the USB device named in
    *message*, or ``""`` when no holder can be seen."""
    node = usb_node(message)
    if node is None:
        return ""
    procs = [(pid, name) for pid, name in holders(node) if pid != os.getpid()]
    if not procs:
        return ""
    return " (held by " + ", ".join(f"{name}, PID {pid}" for pid, name in procs) + ")"
