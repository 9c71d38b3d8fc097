"""The shell scripts that run inside the guest.

``/init`` lives in the cached initramfs and only loads modules and mounts the per-run control
share; everything that depends on the run (shares, command, environment) is in ``stage2.sh`` and
``run.sh``, written by the host into that share for each run.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

#: Bump when :func:`init_script` changes, so cached initramfs images are rebuilt.
INIT_VERSION = "usb-vm-init-2"  # stage2/run.sh are per run and need no bump

#: 9p options: large messages; protocol 9p2000.L so ownership, modes and symlinks come through.
_P9 = "trans=virtio,version=9p2000.L,msize=262144"

#: Where the guest sees the control share, and busybox's module tools.  GUEST_BIN goes FIRST on
#: the guest's PATH: the module tree is laid out for busybox's modprobe (a text modules.dep), and
#: the host's /sbin/modprobe (kmod, on every standard Debian install) cannot use it.
GUEST_CTL = "/run/usb-vm/ctl"
GUEST_BIN = "/run/usb-vm/bin"

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ENV_SKIP = {"PWD", "OLDPWD", "SHLVL", "_", "LD_PRELOAD", "TERM_SESSION_ID"}


def init_script(kernel_version: str, load_modules: str) -> str:
    """The initramfs ``/init``: mounts, module loading, then source the run's stage2.sh."""
    return f"""#!/bin/sh
# {INIT_VERSION}
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{load_modules}
if mount -t 9p -o {_P9} ctl /mnt/ctl; then
    . /mnt/ctl/stage2.sh
else
    echo "usb-vm: cannot mount the control share"
fi
echo "usb-vm: stage2 did not reboot"
reboot -f
"""


def _q(text: str) -> str:
    return shlex.quote(text)


def stage2_script(kernel_version: str, shares: list[Path], verbose: bool, wait_usb: bool,
                  setup: list[str] | None = None) -> str:
    """Build the overlay root, mount the shares, run ``run.sh`` chrooted, record its status.

    ``setup`` lines run after the shares are mounted and before the wait for USB (the uMTP
    gadget mode loads its modules and starts its daemon there). With ``wait_usb`` the command
    starts only once a USB device (not a root hub) has enumerated.
    """
    r = "/newroot"
    lines = [
        "fail() { echo \"usb-vm: $*\"; echo 125 > /mnt/ctl/status; reboot -f; }",
        "mkdir -p /mnt/lower /mnt/rw",
        f"mount -t 9p -o {_P9},ro,cache=loose root /mnt/lower || fail cannot mount the host root",
        "mount -t tmpfs -o mode=0755 rw /mnt/rw",
        "mkdir /mnt/rw/upper /mnt/rw/work",
        f"mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work "
        f"overlay {r} || fail cannot mount the overlay root",
        f"mount -t proc proc {r}/proc",
        f"mount -t sysfs sysfs {r}/sys",
        f"mount -t devtmpfs devtmpfs {r}/dev",
        f"mkdir -p {r}/dev/pts {r}/dev/shm",
        f"mount -t devpts devpts {r}/dev/pts",
        f"mount -t tmpfs -o mode=1777 shm {r}/dev/shm",
        f"mount -t tmpfs -o mode=1777 tmp {r}/tmp",
        f"mount -t tmpfs -o mode=0755 run {r}/run",
        f"mkdir -p {r}{GUEST_CTL} {r}{GUEST_BIN} {r}/lib/modules/{kernel_version}",
        f"mount --bind /mnt/ctl {r}{GUEST_CTL}",
        f"mount --bind /lib/modules/{kernel_version} {r}/lib/modules/{kernel_version}",
        f"cp /bin/busybox {r}{GUEST_BIN}/busybox",
        f"for a in modprobe insmod rmmod lsmod; do ln -s busybox {r}{GUEST_BIN}/$a; done",
    ]
    # Shorter paths first, so a share inside another share is mounted on top of it.
    for index, path in sorted(enumerate(shares), key=lambda item: len(str(item[1]))):
        target = _q(f"{r}{path}")
        lines += [
            f"mkdir -p {target}",
            f"mount -t 9p -o {_P9} share{index} {target} || fail cannot mount share {_q(str(path))}",
        ]
    lines += setup or []
    if wait_usb:
        lines += [
            "n=0",
            # Device entries are "BUS-PORT[.PORT]" (interfaces add ":CONFIG.IF"; root hubs are usbN).
            "until ls /sys/bus/usb/devices/ | grep -qE '^[0-9]+-[0-9.]+$'; do",
            "    n=$((n+1)); [ $n -gt 300 ] && { echo 'usb-vm: no USB device after 30 s'; break; }",
            "    sleep 0.1",
            "done",
        ]
    lines += [
        "stty -F /dev/ttyS1 raw -echo",
        "stty -F /dev/ttyS2 raw -echo",
        "[ -e /dev/fuse ] || echo 'usb-vm: /dev/fuse missing'",
        f"chroot {r} /bin/sh {GUEST_CTL}/run.sh </dev/null >/dev/ttyS1 2>/dev/ttyS2",
        "rc=$?",
        "echo $rc > /mnt/ctl/status",
        "echo usb-vm-exit-status=$rc",
        "sync",
        "reboot -f",
    ]
    if verbose:
        lines.insert(0, "set -x")
    return "\n".join(lines) + "\n"


def run_script(command: list[str], cwd: str, env: dict[str, str]) -> str:
    """The script run chrooted in the guest: environment, working directory, then the command.

    A single ``command`` word is a shell script (like ``sh -c``); several words are quoted as argv.
    """
    script = command[0] if len(command) == 1 else shlex.join(command)
    lines = []
    for key, value in sorted(env.items()):
        if key in _ENV_SKIP or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        if key == "PATH":
            value = guest_path(value)
        lines.append(f"export {key}={_q(value)}")
    if "PATH" not in env:
        lines.append(f"export PATH={_q(guest_path(''))}")
    if "HOME" not in env:
        lines.append("export HOME=/root")
    lines += [
        f"cd {_q(cwd)} 2>/dev/null || {{ echo {_q(f'usb-vm: no {cwd} in the guest; running in /')} >&2; cd /; }}",
        f"exec /bin/sh -c {_q(script)}",
    ]
    return "\n".join(lines) + "\n"


def guest_path(host_path: str) -> str:
    """The guest command's PATH: busybox's module tools first, then the host's PATH (or a default).

    ``modprobe``, ``insmod``, ``rmmod`` and ``lsmod`` must resolve to busybox whatever the host has
    installed (kmod's tools cannot read the guest's module layout); nothing else is shadowed.
    """
    rest = [p for p in (host_path or _DEFAULT_PATH).split(":") if p and p != GUEST_BIN]
    return ":".join([GUEST_BIN, *rest])


def host_environment() -> dict[str, str]:
    """The environment handed to the guest command: the host's, with HOME defaulted."""
    env = dict(os.environ)
    env.setdefault("HOME", "/root")
    return env
