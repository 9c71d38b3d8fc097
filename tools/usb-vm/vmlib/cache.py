"""Prepare and cache the guest's boot artefacts: kernel, initramfs, busybox, locale preload.

Everything comes from Debian packages fetched with ``apt-get download`` (never installed) and is
kept under one cache directory; a second run finds the artefacts and does no work.
"""

from __future__ import annotations

import fcntl
import hashlib
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import guest, kmod
from .cpio import CpioWriter

#: Modules loaded at boot, before the command runs (dependencies are added automatically).
BOOT_MODULES = [
    "virtio_pci", "virtio_rng", "9p", "9pnet_virtio", "overlay", "fuse", "xhci_pci", "ehci_pci",
]

_PRELOAD_SOURCE = """\
#include <locale.h>
/* QEMU's usb-mtp converts file names with mbstowcs() but never calls setlocale(). */
__attribute__((constructor)) static void ptpfs_vm_utf8(void) { setlocale(LC_CTYPE, "C.UTF-8"); }
"""


class PrepareError(Exception):
    """The guest's artefacts could not be prepared (a package, a tool or a module is missing)."""


@dataclass(frozen=True)
class Artefacts:
    """Paths of everything needed to boot the guest."""

    kernel: Path
    initrd: Path
    kernel_version: str
    preload: Path | None


def log(message: str) -> None:
    """Progress message on stderr."""
    print(f"usb-vm: {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``$PTPFS_VM_CACHE``, else ``/var/cache/ptpfs-vm`` for root, else ``$XDG_CACHE_HOME/ptpfs-vm``."""
    if os.environ.get("PTPFS_VM_CACHE"):
        return Path(os.environ["PTPFS_VM_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/ptpfs-vm")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ptpfs-vm"


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise PrepareError(f"{cmd[0]} not found") from exc
    except subprocess.CalledProcessError as exc:
        raise PrepareError(f"{' '.join(cmd)} failed:\n{exc.stderr.strip()}") from exc


def _kernel_package(root: Path) -> str:
    """The versioned kernel package the ``linux-image-amd64`` meta-package currently depends on.

    apt-cache takes most of a second, so the answer is remembered until the apt lists change.
    """
    override = os.environ.get("PTPFS_VM_KERNEL_PACKAGE")
    if override:
        return override
    lists = Path("/var/lib/apt/lists")
    stamp = str(lists.stat().st_mtime_ns) if lists.exists() else ""
    memo = root / "kernel-package"
    if stamp and memo.exists():
        seen, _, name = memo.read_text().partition(" ")
        if seen == stamp and name.startswith("linux-image-"):
            return name
    name = _ask_apt_kernel_package()
    if stamp:
        memo.write_text(f"{stamp} {name}")
    return name


def _ask_apt_kernel_package() -> str:
    for attempt in range(2):
        out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                             text=True, capture_output=True).stdout
        for line in out.splitlines():
            name = line.strip().removeprefix("Depends:").strip()
            if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
                return name
        if attempt == 0:
            log("apt lists know no linux-image-amd64; running apt-get update")
            _run(["apt-get", "update", "-q"])
    raise PrepareError("apt-cache knows no linux-image-amd64 package")


def _download(package: str, debs: Path) -> Path:
    """Return the cached ``.deb`` of ``package``, downloading it with apt-get if needed."""
    existing = sorted(debs.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    if package.startswith("linux-image-"):
        for stale in debs.glob("linux-image-*.deb"):
            log(f"removing the superseded {stale.name}")
            stale.unlink()
    log(f"downloading {package} with apt-get download")
    cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
    try:
        _run(cmd, cwd=debs)
    except PrepareError:
        log("apt-get download failed; running apt-get update and retrying")
        _run(["apt-get", "update", "-q"])
        _run(cmd, cwd=debs)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise PrepareError(f"apt-get download {package} left no .deb in {debs}")
    return found[-1]


def _extract(deb: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest)])


def _is_static(path: Path) -> bool:
    """True when the ELF file at ``path`` has no program interpreter (statically linked)."""
    try:
        out = _run(["readelf", "-l", str(path)]).stdout
    except PrepareError:
        # No binutils: fall back to looking for the interpreter's path in the file.
        return b"/lib64/ld-linux" not in path.read_bytes()
    return "INTERP" not in out


def _busybox(root: Path) -> Path:
    """A static busybox: the host's if static, else unpacked from the busybox-static package."""
    host = Path("/bin/busybox")
    if host.exists() and _is_static(host):
        return host
    cached = root / "busybox"
    if cached.exists():
        return cached
    deb = _download("busybox-static", root / "debs")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        _extract(deb, Path(tmp))
        shutil.copy2(Path(tmp) / "bin" / "busybox", cached.with_suffix(".tmp"))
    cached.with_suffix(".tmp").rename(cached)
    return cached


def _preload(root: Path) -> Path | None:
    """Build (once) the LD_PRELOAD library that gives QEMU a UTF-8 LC_CTYPE; None without a compiler."""
    digest = hashlib.sha256(_PRELOAD_SOURCE.encode()).hexdigest()[:12]
    lib = root / f"utf8-locale-{digest}.so"
    if lib.exists():
        return lib
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        log("warning: no C compiler; QEMU will show non-ASCII MTP file names as 'Oops'")
        return None
    src = root / f"utf8-locale-{digest}.c"
    src.write_text(_PRELOAD_SOURCE)
    _run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib) + ".tmp", str(src)])
    os.rename(str(lib) + ".tmp", lib)
    return lib


#: An ELF note "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), any descriptor size: a PVH entry point.
_PVH_NOTE = re.compile(re.escape(struct.pack("<I", 4)) + b"(?s:.{4})" + re.escape(struct.pack("<I", 18) + b"Xen\0"))


def _pvh_vmlinux(bzimage: Path, out: Path) -> bool:
    """Unpack the XZ-compressed ELF kernel inside ``bzimage`` to ``out`` if it can boot via PVH.

    QEMU loads such an ELF directly, which skips the in-guest decompression (about 3 s under TCG).
    """
    data = bzimage.read_bytes()
    start = data.find(b"\xfd7zXZ\0")
    if start < 0:
        return False
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    except lzma.LZMAError:
        return False
    if not elf.startswith(b"\x7fELF") or not _PVH_NOTE.search(elf):
        return False
    out.with_suffix(".tmp").write_bytes(elf)
    out.with_suffix(".tmp").rename(out)
    return True


def _build_initramfs(moddir: Path, version: str, busybox: Path, out: Path) -> None:
    order = kmod.load_order(moddir, BOOT_MODULES, kmod.read_builtin(moddir))
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        cpio = CpioWriter(fh)
        for d in ("bin", "dev", "proc", "sys", "mnt", "mnt/ctl", "newroot", "lib", "lib/modules",
                  f"lib/modules/{version}"):
            cpio.directory(d)
        cpio.chardev("dev/console", 5, 1)
        cpio.chardev("dev/null", 1, 3, 0o666)
        cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
        cpio.symlink("bin/sh", "busybox")
        made: set[str] = set()
        # Modules go in uncompressed (busybox insmod cannot read .ko.xz), as lib/modules/V/<rel>.ko.
        rels = {kmod.module_name(ko): ko.relative_to(moddir).with_name(ko.name.split(".ko")[0] + ".ko")
                for ko in order}
        for ko in order:
            rel = rels[kmod.module_name(ko)]
            for parent in reversed(rel.parents[:-1]):
                key = f"lib/modules/{version}/{parent}"
                if key not in made:
                    cpio.directory(key)
                    made.add(key)
            cpio.file(f"lib/modules/{version}/{rel}", kmod.read_module(ko))
        # modules.dep in the text format busybox modprobe reads: "path: dep-paths".
        dep_lines = []
        for ko in order:
            deps = [str(rels[kmod.normalize(d)])
                    for values in kmod.modinfo(ko).get("depends", [])
                    for d in values.split(",") if kmod.normalize(d) in rels]
            dep_lines.append(f"{rels[kmod.module_name(ko)]}:" + "".join(f" {d}" for d in deps))
        cpio.file(f"lib/modules/{version}/modules.dep", ("\n".join(dep_lines) + "\n").encode())
        for name in ("modules.builtin", "modules.order"):
            if (moddir / name).exists():
                cpio.file(f"lib/modules/{version}/{name}", (moddir / name).read_bytes())
        load = "\n".join(f"insmod /lib/modules/{version}/{rels[kmod.module_name(ko)]} || "
                         f"echo 'usb-vm: insmod {kmod.module_name(ko)} failed'" for ko in order)
        cpio.file("init", guest.init_script(version, load).encode(), 0o755)
        cpio.close()
    tmp.rename(out)


def _prune(root: Path, kdir: Path, initrd: Path) -> None:
    """Remove artefacts of superseded kernels and initramfs recipes."""
    for other in root.iterdir():
        if other != kdir and other.is_dir() and (other / "vmlinuz").exists():
            log(f"removing the superseded {other}")
            shutil.rmtree(other, ignore_errors=True)
    for old in kdir.glob("initramfs-*.cpio"):
        if old != initrd:
            old.unlink()


def prepare() -> Artefacts:
    """Return the boot artefacts, building whatever is not cached yet (idempotent, locked)."""
    root = cache_root()
    (root / "debs").mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        package = _kernel_package(root)
        version = package.removeprefix("linux-image-").removesuffix("-unsigned")
        kdir = root / version
        bzimage = kdir / "vmlinuz"
        vmlinux = kdir / "vmlinux"
        busybox = _busybox(root)
        recipe = hashlib.sha256(
            (guest.INIT_VERSION + " ".join(BOOT_MODULES)).encode() + busybox.read_bytes()
        ).hexdigest()[:12]
        initrd = kdir / f"initramfs-{recipe}.cpio"
        if not (bzimage.exists() and initrd.exists()):
            deb = _download(package, root / "debs")
            log(f"unpacking {deb.name}")
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                unpacked = Path(tmp)
                _extract(deb, unpacked)
                moddir = unpacked / "lib" / "modules" / version
                if not moddir.is_dir():
                    raise PrepareError(f"{deb.name} has no lib/modules/{version}")
                kdir.mkdir(exist_ok=True)
                if not bzimage.exists():
                    shutil.copy2(unpacked / "boot" / f"vmlinuz-{version}", bzimage.with_suffix(".tmp"))
                    bzimage.with_suffix(".tmp").rename(bzimage)
                log("building initramfs")
                _build_initramfs(moddir, version, busybox, initrd)
        if not vmlinux.exists() and not (kdir / "no-pvh").exists():
            log("unpacking the kernel for a direct (PVH) boot")
            if not _pvh_vmlinux(bzimage, vmlinux):
                (kdir / "no-pvh").touch()
        kernel = vmlinux if vmlinux.exists() else bzimage
        _prune(root, kdir, initrd)
        preload = _preload(root)
    return Artefacts(kernel=kernel, initrd=initrd, kernel_version=version, preload=preload)
