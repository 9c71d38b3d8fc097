"""``ptpfs --install-mount-helper``: make ptpfs findable by mount(8) and fstab.

mount(8) starts ``mount.fuse3``, which runs ``ptpfs DEVICE MOUNTPOINT -o ...``
through ``/bin/sh`` with a fixed PATH
(``/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin``), so a ptpfs
in a virtual environment, ``~/.local/bin`` or pipx's default place is not
found.  This writes small launchers ``PREFIX/bin/ptpfs`` and ``PREFIX/bin/ptpctl``
(default PREFIX ``/usr/local``) that start the running installation's Python
on its ptpfs package.  A ``ptpfs`` already there that is not one of these
launchers (e.g. pipx's own link) is left alone when it is the same
installation, refused otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = "# ptpfs mount helper launcher"
PROGRAMS = {"ptpfs": "ptpfs.cli.ptpfs_main", "ptpctl": "ptpfs.cli.ptpctl"}


def _package_root() -> str:
    import ptpfs
    return str(Path(ptpfs.__file__).resolve().parent.parent)


def launcher_text(module: str, python: str | None = None, package_root: str | None = None) -> str:
    """The launcher script for *module*."""
    python = python or sys.executable
    root = package_root or _package_root()
    in_site = Path(root) in _site_dirs()
    env = "" if in_site else f'PYTHONPATH={_sh_quote(root)}${{PYTHONPATH:+:$PYTHONPATH}} '
    return (f"#!/bin/sh\n{MARKER} (ptpfs --install-mount-helper; remove this file to undo)\n"
            f"{env}exec {_sh_quote(python)} -m {module} \"$@\"\n")


def _site_dirs() -> set[Path]:
    import site
    dirs = list(site.getsitepackages())
    try:
        dirs.append(site.getusersitepackages())
    except AttributeError:
        pass
    return {Path(d).resolve() for d in dirs}


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _same_installation(path: Path) -> bool:
    """Whether an existing *path* (e.g. pipx's link) is a script of this very
    installation: its ``#!`` interpreter is this Python, or lies in this
    virtual environment's bin folder (paths compared unresolved: every venv's
    python resolves to the same system binary)."""
    try:
        first = path.read_bytes()[:512].decode("utf-8", "replace").splitlines()[0]
    except (OSError, IndexError):
        return False
    words = first[2:].split() if first.startswith("#!") else []
    if not words:
        return False
    interp = os.path.abspath(words[0])
    if interp == os.path.abspath(sys.executable):
        return True
    in_venv = sys.prefix != sys.base_prefix
    return in_venv and os.path.dirname(interp) == os.path.join(os.path.abspath(sys.prefix), "bin")


def install(prefix: str = "/usr/local") -> list[str]:
    """Write the launchers under *prefix*/bin; returns one line per program
    saying what was done.  Raises OSError (e.g. EACCES without root) or
    FileExistsError for a foreign program in the way."""
    bindir = Path(prefix) / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    for name, module in PROGRAMS.items():
        target = bindir / name
        if target.exists() or target.is_symlink():
            try:
                ours = MARKER in target.read_text(encoding="utf-8", errors="replace")[:300]
            except OSError:
                ours = False
            if not ours:
                if _same_installation(target):
                    done.append(f"{target}: already this installation, left as it is")
                    continue
                raise FileExistsError(f"{target} exists and is another program; "
                                      f"remove it first or choose another prefix")
        tmp = target.with_name(f".{name}.ptpfs-tmp")
        tmp.write_text(launcher_text(module), encoding="utf-8")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        done.append(f"{target}: runs {sys.executable} -m {module}")
    return done
