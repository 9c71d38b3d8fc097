"""``ptpfs-automount ROOT``: mount every camera that is plugged in, under ROOT.

Each camera found (the ``ptpctl --list-devices`` search: USB PTP and MTP
interfaces) is mounted by a ``ptpfs -f --device usb:BUS,DEV`` child at
``ROOT/<product name>`` (``Canon EOS R6``, then ``Canon EOS R6 (2)`` for a
second one), cameras already plugged at start-up included.  When a camera
disappears its folder is unmounted and removed; no stale mount is left.  A
camera another program holds is reported once with the holder's name (ptpfs's
own message, e.g. ``held by gvfs-gphoto2-vo, PID 1234``) and tried again every
``--retry`` seconds until it is free.

Hot-plug detection: with ``udevadm`` available, ``udevadm monitor`` events on
the ``usb`` subsystem trigger a rescan at once; without udev (containers,
minimal systems, the test guest) the bus is polled every ``--interval``
seconds (libusb enumeration, no udev needed).  SIGINT/SIGTERM unmount
everything and exit.

``--install-desktop-integration`` writes a systemd user unit starting the
watcher on ``~/Cameras`` for the logged-in user (and, as root, a udev rule
that asks systemd to start it when a camera appears); ``--print`` shows what
would be written without writing.  Nothing is written anywhere without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ptpfs.connect import DeviceListing

log = logging.getLogger("ptpfs.automount")

PROG = "ptpfs-automount"
#: Exit status of ptpfs for a device claimed by another program.
EXIT_BUSY = 4

_UNSAFE = re.compile(r"[\x00-\x1f/\\]+")
_DESC = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4} (?P<name>.*?) \[[^\]]*\](?: \(serial .*\))?$")


def folder_name(listing: DeviceListing) -> str:
    """A folder name for a camera: its product name as the listing gives it."""
    m = _DESC.match(listing.description)
    name = m.group("name") if m else listing.description
    name = _UNSAFE.sub("_", name).strip(" .") or "camera"
    return name[:100]


def device_key(listing: DeviceListing) -> str:
    """What identifies one plugged camera: the bus address spec (a replug is a new one)."""
    return listing.spec


@dataclass
class Mounted:
    """One camera being served."""

    key: str
    spec: str
    name: str
    path: str
    proc: subprocess.Popen[bytes]
    ready: bool = False
    stderr: list[str] = field(default_factory=list)


def is_mounted(path: str) -> bool:
    """Whether *path* is a mount point (read from /proc/self/mountinfo, no stat)."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                                              fields[4]) == real:
                    return True
    except OSError:
        pass
    return False


def default_lister() -> list[DeviceListing]:
    """The USB cameras connected now: a new libusb context each time, because a
    long-lived one sees devices plugged later only through udev's notifications."""
    from ptpfs import connect
    from ptpfs.transport.usb import fresh_libusb_backend, release_libusb_backend

    backend = None if os.environ.get(connect.USB_SIM_ENV) else fresh_libusb_backend()
    try:
        found = connect.list_devices(usb_backend=backend, include_sim_hint=False)
    finally:
        if backend is not None:
            release_libusb_backend(backend)
    return [d for d in found if d.spec.startswith("usb")]


class Watcher:
    """Keeps ROOT in step with the cameras *lister* reports."""

    def __init__(self, root: str, *, lister: Callable[[], list[DeviceListing]] = default_lister,
                 options: Sequence[str] = (), retry: float = 5.0,
                 say: Callable[[str], None] | None = None,
                 ptpfs_command: Sequence[str] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.lister = lister
        self.options = list(options)
        self.retry = retry
        self.say = say or (lambda text: print(f"{PROG}: {text}", file=sys.stderr, flush=True))
        self.ptpfs_command = list(ptpfs_command or [sys.executable, "-m", "ptpfs.cli.ptpfs_main"])
        self.mounts: dict[str, Mounted] = {}
        self._busy_until: dict[str, float] = {}
        self._busy_reported: set[str] = set()
        self._lock = threading.Lock()

    # -- one pass ---------------------------------------------------------------------------
    def scan(self) -> None:
        """Mount what appeared, unmount what went away, reap children that ended."""
        try:
            present = {device_key(d): d for d in self.lister()}
        except Exception as exc:  # noqa: BLE001 - a failed enumeration is retried next pass
            self.say(f"cannot list USB devices: {exc}")
            return
        with self._lock:
            for key in list(self.mounts):
                m = self.mounts[key]
                if key not in present:
                    self._unmount(m, "is gone")
                elif m.proc.poll() is not None:
                    self._finished(m)
            for key, listing in present.items():
                if key in self.mounts:
                    continue
                if time.monotonic() < self._busy_until.get(key, 0.0):
                    continue
                self._mount(listing)
            for key in list(self._busy_until):
                if key not in present:
                    self._busy_until.pop(key, None)
                    self._busy_reported.discard(key)

    def _unique(self, name: str) -> str:
        taken = {m.name for m in self.mounts.values()}
        candidate, n = name, 2
        while candidate in taken or (os.path.lexists(os.path.join(self.root, candidate))
                                     and (is_mounted(os.path.join(self.root, candidate))
                                          or os.listdir(os.path.join(self.root, candidate)))):
            candidate = f"{name} ({n})"
            n += 1
        return candidate

    def _mount(self, listing: DeviceListing) -> None:
        name = self._unique(folder_name(listing))
        path = os.path.join(self.root, name)
        os.makedirs(path, exist_ok=True)
        args = [*self.ptpfs_command, "-f", "--device", listing.spec]
        if self.options:
            args += ["-o", ",".join(self.options)]
        proc = subprocess.Popen([*args, path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        m = Mounted(device_key(listing), listing.spec, name, path, proc)
        self.mounts[m.key] = m
        threading.Thread(target=self._collect_stderr, args=(m,), daemon=True,
                         name=f"automount-{name}").start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not is_mounted(path):
            time.sleep(0.05)
        if is_mounted(path):
            m.ready = True
            self._busy_until.pop(m.key, None)
            self._busy_reported.discard(m.key)
            self.say(f"mounted {listing.spec} ({listing.description}) on {path}")
        elif proc.poll() is not None:
            self._finished(m)

    def _collect_stderr(self, m: Mounted) -> None:
        assert m.proc.stderr is not None
        for raw in m.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line and not line.startswith("Ignoring invalid max threads"):
                m.stderr.append(line)
                log.info("%s: %s", m.name, line)

    def _finished(self, m: Mounted) -> None:
        """A ptpfs child ended by itself: report why; retry a busy camera later."""
        code = m.proc.wait()
        time.sleep(0.05)   # let the stderr thread take the last line
        self.mounts.pop(m.key, None)
        self._cleanup_dir(m)
        why = " / ".join(m.stderr[-3:]) if m.stderr else f"ptpfs exited with status {code}"
        if code == EXIT_BUSY:
            self._busy_until[m.key] = time.monotonic() + self.retry
            if m.key not in self._busy_reported:
                self._busy_reported.add(m.key)
                self.say(f"{m.spec} is busy, retrying every {self.retry:g} s: {why}")
        else:
            self._busy_until[m.key] = time.monotonic() + self.retry
            if m.key not in self._busy_reported:    # once per device, then retried quietly
                self._busy_reported.add(m.key)
                self.say(f"{m.spec}: {why}; retrying every {self.retry:g} s")

    def _unmount(self, m: Mounted, why: str) -> None:
        for attempt in range(50):
            if not is_mounted(m.path):
                break
            lazy = ["-z"] if attempt >= 30 else []
            subprocess.run(["fusermount3", "-u", *lazy, m.path], capture_output=True)
            if is_mounted(m.path):
                time.sleep(0.1)
        if m.proc.poll() is None:
            m.proc.send_signal(signal.SIGTERM)
            try:
                m.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        self.mounts.pop(m.key, None)
        self._cleanup_dir(m)
        self.say(f"unmounted {m.path} ({m.spec} {why})")

    def _cleanup_dir(self, m: Mounted) -> None:
        if not is_mounted(m.path):
            try:
                os.rmdir(m.path)
            except OSError:
                pass

    def stop(self) -> None:
        """Unmount everything."""
        with self._lock:
            for m in list(self.mounts.values()):
                self._unmount(m, "watcher stopped")

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, interval: float = 1.0, udev: bool = True) -> None:
        """Scan at once, then on every udev USB event or every *interval* seconds."""
        monitor = _udev_monitor() if udev else None
        if monitor is not None:
            self.say("watching udev USB events")
        try:
            while not stop.is_set():
                self.scan()
                if monitor is not None and monitor.stdout is not None:
                    ready, _, _ = select.select([monitor.stdout], [], [], max(interval, 5.0))
                    if ready:
                        os.read(monitor.stdout.fileno(), 65536)
                        stop.wait(0.3)           # let the device settle, then scan
                else:
                    stop.wait(interval)
        finally:
            if monitor is not None:
                monitor.terminate()
                monitor.wait()
            self.stop()


def _udev_monitor() -> subprocess.Popen[bytes] | None:
    """``udevadm monitor`` on the usb subsystem, when udev runs here."""
    udevadm = shutil.which("udevadm")
    if udevadm is None or not os.path.exists("/run/udev/control"):
        return None
    try:
        return subprocess.Popen([udevadm, "monitor", "--udev", "--subsystem-match=usb"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return None


# ------------------------------------------------------------------ desktop integration

def user_unit(root: str, executable: str) -> str:
    """The systemd user unit running the watcher on *root*."""
    return f"""[Unit]
Description=Mount cameras under {root} (ptpfs-automount)
Documentation=https://github.com/ptpfs/ptpfs

[Service]
ExecStartPre=/bin/mkdir -p "{root}"
ExecStart="{executable}" "{root}"
Restart=on-failure

[Install]
WantedBy=default.target
"""


UDEV_RULE = """\
# ptpfs: start the user's ptpfs-automount when a camera (PTP still-image interface) appears
ACTION=="add", SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ENV{ID_USB_INTERFACES}=="*:060101:*", \
TAG+="systemd", ENV{SYSTEMD_USER_WANTS}+="ptpfs-automount.service"
"""


def install_desktop_integration(root: str, *, write: bool, home: str | None = None,
                                rules_dir: str = "/etc/udev/rules.d") -> list[str]:
    """Write (or with ``write=False`` only describe) the user unit and, as root, the udev rule.
    Returns one line per file."""
    home = home or os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    unit_path = os.path.join(config, "systemd", "user", "ptpfs-automount.service")
    executable = shutil.which(PROG) or f"{sys.executable} -m ptpfs.cli.automount"
    files = [(unit_path, user_unit(os.path.abspath(os.path.expanduser(root)), executable))]
    if os.geteuid() == 0:
        files.append((os.path.join(rules_dir, "70-ptpfs-automount.rules"), UDEV_RULE))
    done = []
    for path, text in files:
        if write:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            done.append(f"wrote {path}")
        else:
            done.append(f"would write {path}:\n{text}")
    if write:
        done.append("then: systemctl --user daemon-reload && systemctl --user enable --now "
                    "ptpfs-automount.service")
    return done


# ------------------------------------------------------------------ command line

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ptpfs-automount``."""
    p = argparse.ArgumentParser(
        prog=PROG, description="Mount every camera that is plugged in under ROOT/<name>, "
                               "unmount it when it goes away.")
    p.add_argument("root", metavar="ROOT", nargs="?", help="folder holding the mounts")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                   help="mount options for every camera (as ptpfs -o)")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between USB scans without udev (default 1)")
    p.add_argument("--retry", type=float, default=5.0,
                   help="seconds between attempts on a busy camera (default 5)")
    p.add_argument("--no-udev", action="store_true", help="poll even where udev runs")
    p.add_argument("--install-desktop-integration", action="store_true",
                   help="write a systemd user unit running the watcher on ROOT "
                        "(default ~/Cameras), and as root a udev rule starting it")
    p.add_argument("--print", action="store_true", dest="dry_run",
                   help="with --install-desktop-integration: show, do not write")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the watcher until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.install_desktop_integration:
        for line in install_desktop_integration(args.root or "~/Cameras", write=not args.dry_run):
            print(line)
        return 0
    if not args.root:
        print(f"{PROG}: ROOT is required (the folder holding the mounts)", file=sys.stderr)
        return 2
    if args.interval <= 0 or args.retry <= 0:
        print(f"{PROG}: --interval and --retry must be positive", file=sys.stderr)
        return 2
    os.makedirs(args.root, exist_ok=True)
    options = [o for value in args.options for o in value.split(",") if o]
    watcher = Watcher(args.root, options=options, retry=args.retry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watcher.say(f"watching for cameras; mounts go under {watcher.root}")
    watcher.run(stop, interval=args.interval, udev=not args.no_udev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
