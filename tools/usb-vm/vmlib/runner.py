"""Boot the guest under QEMU (TCG), stream the command's output, return its exit status."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import gadget, guest
from .cache import Artefacts, log

#: Exit statuses of the harness itself (a command's own status is passed through).
EXIT_TIMEOUT = 124
EXIT_HARNESS = 125

MTP_ID = "mtp0"
XHCI_ID = "xhci"


@dataclass
class VmConfig:
    """Everything one run needs besides the boot artefacts."""

    command: list[str]
    mtp_dir: Path | None = None
    mtp_desc: str = "ptpfs test MTP"
    shares: list[Path] = field(default_factory=list)
    qmp: Path | None = None
    timeout: float = 600.0
    mem_mb: int = 1024
    smp: int = 1
    cwd: str = field(default_factory=os.getcwd)
    verbose: bool = False
    trace: list[str] = field(default_factory=list)
    trace_file: Path | None = None
    umtp_dir: Path | None = None            # served by uMTP-Responder on a FunctionFS gadget
    umtp_name: str = "uMTP store"
    sim_profiles: list[str] = field(default_factory=list)   # simulators on FunctionFS gadgets
    sim_root: Path | None = None            # ... serving this folder (default: a sample card)


def mtp_properties(config: VmConfig) -> dict[str, object]:
    """The usb-mtp device's properties, as given to ``-device`` and to QMP ``device_add``."""
    assert config.mtp_dir is not None
    return {
        "driver": "usb-mtp",
        "id": MTP_ID,
        "bus": f"{XHCI_ID}.0",
        # a fixed port: QEMU derives the device's USB serial number from it, and a
        # camera re-plugged keeps its serial number
        "port": "1",
        "rootdir": str(config.mtp_dir),
        "readonly": False,
        "desc": config.mtp_desc,
    }


def _device_arg(props: dict[str, object]) -> str:
    parts = [str(props["driver"])]
    for key, value in props.items():
        if key == "driver":
            continue
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        parts.append(f"{key}={text.replace(',', ',,')}")
    return ",".join(parts)


def _fsdev(index: int, tag: str, path: Path, readonly: bool) -> list[str]:
    opts = f"local,id=fs{index},path={str(path).replace(',', ',,')},security_model=none,multidevs=remap"
    if readonly:
        opts += ",readonly=on"
    return ["-fsdev", opts, "-device", f"virtio-9p-pci,fsdev=fs{index},mount_tag={tag}"]


def qemu_command(art: Artefacts, config: VmConfig, ctl: Path, fds: list[int]) -> list[str]:
    """The qemu-system-x86_64 command line; ``fds`` are the write ends for ttyS0..ttyS2."""
    cmd = [
        "qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-no-user-config", "-no-reboot",
        "-display", "none", "-machine", "pc", "-cpu", "max",
        "-smp", str(config.smp), "-m", str(config.mem_mb),
        "-kernel", str(art.kernel), "-initrd", str(art.initrd),
        "-append", "console=ttyS0 loglevel=0 quiet panic=-1 mitigations=off random.trust_cpu=on",
    ]
    for name, fd in zip(("con", "out", "err"), fds):
        cmd += ["-chardev", f"file,id={name},path=/dev/fd/{fd}", "-serial", f"chardev:{name}"]
    cmd += ["-device", "virtio-rng-pci"]
    cmd += _fsdev(0, "root", Path("/"), readonly=True)
    cmd += _fsdev(1, "ctl", ctl, readonly=False)
    for index, share in enumerate(config.shares):
        cmd += _fsdev(2 + index, f"share{index}", share, readonly=False)
    cmd += ["-device", f"qemu-xhci,id={XHCI_ID}"]
    if config.mtp_dir is not None:
        cmd += ["-device", _device_arg(mtp_properties(config))]
    if config.qmp is not None:
        cmd += ["-qmp", f"unix:{config.qmp},server=on,wait=off"]
    for pattern in config.trace:
        cmd += ["-trace", f"enable={pattern.replace(',', ',,')}"]
    if config.trace and config.trace_file is not None:
        cmd += ["-D", str(config.trace_file)]   # the "log" trace backend writes to the -D file
    return cmd


def _pump(source: int, sinks: list[BinaryIO], keep: bytearray | None) -> None:
    """Copy a pipe to ``sinks`` until EOF, optionally keeping a copy."""
    with os.fdopen(source, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            if keep is not None:
                keep += chunk
            for sink in sinks:
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError):
                    pass


def _console_tail(console: bytearray) -> str:
    text = console.decode("utf-8", "replace").strip()
    return f"; guest console:\n{text[-4000:]}" if text else " (guest console empty)"


def run(art: Artefacts, config: VmConfig) -> int:
    """Boot, run ``config.command`` in the guest, and return its exit status."""
    if shutil.which("qemu-system-x86_64") is None:
        log("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
        return EXIT_HARNESS
    ctl = Path(tempfile.mkdtemp(prefix="usb-vm-"))
    if config.qmp is not None:
        config.qmp.unlink(missing_ok=True)
        sidecar = Path(f"{config.qmp}.json")
        sidecar.write_text(json.dumps({"mtp": mtp_properties(config)} if config.mtp_dir else {}))
    try:
        setup: list[str] = []
        if config.umtp_dir is not None:
            if config.umtp_dir not in config.shares:   # served folder: shared read-write
                config = dataclasses.replace(config, shares=[*config.shares, config.umtp_dir])
            (ctl / "umtp.sh").write_text(gadget.setup_script(config.umtp_dir, config.umtp_name))
            setup = gadget.insmod_lines(gadget.gadget_modules(art), "/newroot")
            setup.append(f"chroot /newroot /bin/sh {guest.GUEST_CTL}/umtp.sh || "
                         "fail cannot start uMTP-Responder")
        if config.sim_profiles:
            if config.umtp_dir is not None:
                raise gadget.PrepareError("--sim-gadget and --umtp cannot be combined")
            if config.sim_root is not None and config.sim_root not in config.shares:
                config = dataclasses.replace(config, shares=[*config.shares, config.sim_root])
            setup = gadget.insmod_lines(gadget.gadget_modules(art), "/newroot",
                                        udcs=len(config.sim_profiles))
            for index, profile in enumerate(config.sim_profiles):
                (ctl / f"sim{index}.sh").write_text(gadget.sim_setup_script(
                    profile, config.sim_root, sys.executable, index))
                setup.append(f"chroot /newroot /bin/sh {guest.GUEST_CTL}/sim{index}.sh || "
                             f"fail cannot start the simulator gadget {profile}")
        (ctl / "stage2.sh").write_text(
            guest.stage2_script(art.kernel_version, config.shares, config.verbose,
                                wait_usb=(config.mtp_dir is not None or config.umtp_dir is not None
                                          or bool(config.sim_profiles)),
                                setup=setup))
        (ctl / "run.sh").write_text(
            guest.run_script(config.command, config.cwd, guest.host_environment()))
        pipes = [os.pipe() for _ in range(3)]
        env = dict(os.environ)
        if art.preload is not None:
            env["LD_PRELOAD"] = " ".join(filter(None, [str(art.preload), env.get("LD_PRELOAD")]))
        cmd = qemu_command(art, config, ctl, [w for _, w in pipes])
        if config.verbose:
            log("running " + " ".join(cmd))
        console = bytearray()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                pass_fds=[w for _, w in pipes], env=env)
        for _, w in pipes:
            os.close(w)
        con_sinks = [sys.stderr.buffer] if config.verbose else []
        threads = [
            threading.Thread(target=_pump, args=(pipes[0][0], con_sinks, console), daemon=True),
            threading.Thread(target=_pump, args=(pipes[1][0], [sys.stdout.buffer], None), daemon=True),
            threading.Thread(target=_pump, args=(pipes[2][0], [sys.stderr.buffer], None), daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            proc.wait(timeout=config.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log(f"timed out after {config.timeout:g} s" + _console_tail(console))
            return EXIT_TIMEOUT
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            raise
        for t in threads:
            t.join(timeout=5)
        elapsed = time.monotonic() - start
        status_file = ctl / "status"
        if proc.returncode != 0 or not status_file.exists():
            log(f"guest gave no exit status (qemu exit {proc.returncode})" + _console_tail(console))
            return EXIT_HARNESS
        status = int(status_file.read_text().strip() or EXIT_HARNESS)
        if config.verbose:
            log(f"guest finished in {elapsed:.1f} s with status {status}")
        return status
    finally:
        shutil.rmtree(ctl, ignore_errors=True)
        if config.qmp is not None:
            config.qmp.unlink(missing_ok=True)
            Path(f"{config.qmp}.json").unlink(missing_ok=True)
