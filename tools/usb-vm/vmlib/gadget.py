"""uMTP-Responder as a real USB device inside the guest (``usb-vm --umtp DIR``).

The guest becomes its own USB device: ``dummy_hcd`` is a software host controller wired to a
software device controller (UDC), ``libcomposite`` builds a gadget from configfs, and
``usb_f_fs`` (FunctionFS) lets a user-space daemon — here ``umtprd`` from the Debian package
``umtp-responder`` — implement the function's endpoints. The guest's own USB stack then
enumerates the gadget on the dummy bus exactly like a device on a cable.

The modules are not in the boot initramfs (its recipe is shared); they are unpacked once from
the cached kernel package into ``<cache>/<kernel>/gadget-<hash>/`` and loaded by stage2 with
busybox ``insmod`` before the command runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import shlex
import shutil
import tempfile
from pathlib import Path

from . import kmod
from .cache import (
    Artefacts,
    PrepareError,
    _download,
    _extract,
    _kernel_package,
    cache_root,
    log,
)

#: Modules for a FunctionFS gadget on the dummy host controller (dependencies added automatically).
GADGET_MODULES = ["dummy_hcd", "libcomposite", "usb_f_fs"]

#: Identity umtprd announces (the Debian default: Linux Foundation "PTP Gadget").
UMTP_VENDOR = 0x1D6B
UMTP_PRODUCT = 0x0100

#: Where the guest's umtprd log goes (inside the guest; copy it to a share to keep it).
UMTP_LOG = "/run/usb-vm/umtprd.log"


def gadget_modules(art: Artefacts) -> list[Path]:
    """The gadget modules (uncompressed ``.ko``), in load order, unpacked once into the cache."""
    kdir = art.kernel.parent
    recipe = hashlib.sha256(" ".join(GADGET_MODULES).encode()).hexdigest()[:12]
    gdir = kdir / f"gadget-{recipe}"
    order_file = gdir / "order"
    if order_file.exists():
        return [gdir / name for name in order_file.read_text().split()]
    root = cache_root()
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if order_file.exists():
            return [gdir / name for name in order_file.read_text().split()]
        deb = _download(_kernel_package(root), root / "debs")
        log(f"unpacking the USB gadget modules from {deb.name}")
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            _extract(deb, Path(tmp))
            moddir = Path(tmp) / "lib" / "modules" / art.kernel_version
            builtin = kmod.read_builtin(moddir)
            try:
                order = kmod.load_order(moddir, GADGET_MODULES, builtin)
            except kmod.ModuleError as exc:
                raise PrepareError(str(exc)) from exc
            staging = Path(tempfile.mkdtemp(dir=kdir, prefix="gadget-tmp-"))
            names = []
            for ko in order:
                name = kmod.module_name(ko) + ".ko"
                (staging / name).write_bytes(kmod.read_module(ko))
                names.append(name)
            (staging / "order").write_text("\n".join(names) + "\n")
            shutil.rmtree(gdir, ignore_errors=True)
            staging.rename(gdir)
    return [gdir / name for name in order_file.read_text().split()]


def umtprd_conf(storage: Path, name: str) -> str:
    """Our own ``umtprd.conf``: one read-write storage, FunctionFS endpoints under /dev/ffs-mtp."""
    def q(text: str) -> str:
        return '"' + text.replace('"', "'") + '"'
    return "\n".join([
        "loop_on_disconnect 1",
        f"storage {q(str(storage))} {q(name)} \"rw\"",
        'manufacturer "uMTP-Responder"',
        'product "ptpfs usb-vm uMTP"',
        'serial "usbvm0001"',
        'firmware_version "usb-vm"',
        'interface "MTP"',
        f"usb_vendor_id 0x{UMTP_VENDOR:04X}",
        f"usb_product_id 0x{UMTP_PRODUCT:04X}",
        "usb_class 0x6",
        "usb_subclass 0x1",
        "usb_protocol 0x1",
        "usb_dev_version 0x3008",
        "usb_functionfs_mode 0x1",
        'usb_dev_path "/dev/ffs-mtp/ep0"',
        'usb_epin_path "/dev/ffs-mtp/ep1"',
        'usb_epout_path "/dev/ffs-mtp/ep2"',
        'usb_epint_path "/dev/ffs-mtp/ep3"',
        "usb_max_packet_size 0x200",
        "",
    ])


def insmod_lines(modules: list[Path], newroot: str, udcs: int = 1) -> list[str]:
    """stage2 lines (busybox, before the chroot) loading the gadget modules from the host root;
    ``udcs`` dummy device controllers (one gadget each), each on its own dummy host bus."""
    def params(ko: Path) -> str:
        return f" num={udcs}" if ko.stem == "dummy_hcd" and udcs > 1 else ""
    return [f"[ -d /sys/module/{ko.stem} ] || insmod {shlex.quote(newroot + str(ko))}{params(ko)} || "
            f"echo 'usb-vm: insmod {ko.stem} failed'" for ko in modules]   # boot loaded usbcore


def setup_script(storage: Path, name: str) -> str:
    """Run chrooted in the guest: configfs gadget with ffs.mtp, functionfs, umtprd, bind the UDC."""
    g = "/sys/kernel/config/usb_gadget/umtp"
    conf = umtprd_conf(storage, name)
    return f"""set -e
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
mkdir -p /etc/umtprd
cat > /etc/umtprd/umtprd.conf <<'USBVM_EOF'
{conf}USBVM_EOF
mkdir {g}
echo 0x{UMTP_VENDOR:04x} > {g}/idVendor
echo 0x{UMTP_PRODUCT:04x} > {g}/idProduct
echo 0x0200 > {g}/bcdUSB
mkdir {g}/strings/0x409
echo usbvm0001 > {g}/strings/0x409/serialnumber
echo uMTP-Responder > {g}/strings/0x409/manufacturer
echo "ptpfs usb-vm uMTP" > {g}/strings/0x409/product
mkdir {g}/configs/c.1
mkdir {g}/configs/c.1/strings/0x409
echo "MTP" > {g}/configs/c.1/strings/0x409/configuration
echo 120 > {g}/configs/c.1/MaxPower
mkdir {g}/functions/ffs.mtp
ln -s {g}/functions/ffs.mtp {g}/configs/c.1
mkdir -p /dev/ffs-mtp
mount -t functionfs mtp /dev/ffs-mtp
umtprd -conf /etc/umtprd/umtprd.conf > {UMTP_LOG} 2>&1 &
n=0
# umtprd writes the descriptors to ep0; then the endpoint files appear
until [ -e /dev/ffs-mtp/ep1 ]; do
    n=$((n+1)); [ $n -gt 200 ] && {{ echo 'usb-vm: umtprd did not set up FunctionFS'; cat {UMTP_LOG}; exit 1; }}
    sleep 0.1
done
ls /sys/class/udc | head -n 1 > {g}/UDC
"""


#: Where the guest's simulator log goes (``ptpctl serve --usb-gadget``; inside the guest).
SIM_LOG = "/run/usb-vm/sim-gadget.log"
#: The simulator's FunctionFS mount in the guest.
SIM_FFS = "/dev/ffs-sim"


def _repo() -> Path:
    """The repository this harness belongs to (the folder holding the ptpfs package)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "ptpfs" / "__init__.py").exists():
            return parent
    raise PrepareError("cannot find the ptpfs package above " + str(Path(__file__).parent))


def sim_identity(profile: str) -> dict[str, str]:
    """The configfs IDs and strings of *profile*, asked of the simulator itself
    (``python3 -m ptpfs.sim.gadget --identity PROFILE`` in the repository; nothing imported)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ptpfs.sim.gadget", "--identity", profile],
                          cwd=_repo(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PrepareError(proc.stderr.strip() or f"no identity for profile {profile!r}")
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def sim_ffs(index: int) -> str:
    """The FunctionFS mount of the *index*-th simulator gadget in the guest."""
    return SIM_FFS if index == 0 else f"{SIM_FFS}{index}"


def sim_log(index: int) -> str:
    """The log of the *index*-th simulator gadget's server in the guest."""
    return SIM_LOG if index == 0 else SIM_LOG.replace(".log", f"{index}.log")


def sim_setup_script(profile: str, root: Path | None, python: str, index: int = 0) -> str:
    """Run chrooted in the guest: a configfs gadget with the profile's identity and an ffs
    function, ``ptpctl serve --usb-gadget`` on it (from this repository), then bind the
    *index*-th UDC (``dummy_udc.INDEX``)."""
    name = f"sim{index}" if index else "sim"
    g = f"/sys/kernel/config/usb_gadget/{name}"
    ident = sim_identity(profile)
    repo = _repo()
    ffs, log_file = sim_ffs(index), sim_log(index)
    serve = [python, "-m", "ptpfs.cli.ptpctl", "serve", "--usb-gadget", ffs,
             "--profile", profile]
    if root is not None:
        serve += ["--root", str(root)]
    q = shlex.quote
    return f"""set -e
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
mkdir {g}
echo {ident['idVendor']} > {g}/idVendor
echo {ident['idProduct']} > {g}/idProduct
echo 0x0200 > {g}/bcdUSB
mkdir {g}/strings/0x409
echo {q(ident['serialnumber'])} > {g}/strings/0x409/serialnumber
echo {q(ident['manufacturer'])} > {g}/strings/0x409/manufacturer
echo {q(ident['product'])} > {g}/strings/0x409/product
mkdir {g}/configs/c.1
mkdir {g}/configs/c.1/strings/0x409
echo PTP > {g}/configs/c.1/strings/0x409/configuration
echo 120 > {g}/configs/c.1/MaxPower
mkdir {g}/functions/ffs.{name}
ln -s {g}/functions/ffs.{name} {g}/configs/c.1
mkdir -p {ffs}
mount -t functionfs {name} {ffs}
cd {q(str(repo))}
{shlex.join(serve)} > {log_file} 2>&1 &
n=0
# the server writes the descriptors to ep0; then the endpoint files appear
until [ -e {ffs}/ep1 ]; do
    n=$((n+1)); [ $n -gt 600 ] && {{ echo 'usb-vm: the simulator did not set up FunctionFS'; cat {log_file}; exit 1; }}
    sleep 0.1
done
echo dummy_udc.{index} > {g}/UDC
"""
