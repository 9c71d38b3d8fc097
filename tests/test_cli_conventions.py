"""ptpfs and ptpctl behave like well-kept Linux tools: --version from one
source, --help, man pages and shell completion that list every option, option
values checked before mounting (exit 2, one line), exit codes like ptpctl's,
the busy device's holder named, the log destinations.  No FUSE needed here
(tests/test_mount_conventions.py mounts for real)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import ptpfs
from ptpfs.cli import holders, logsetup, ptpfs_main
from ptpfs.cli import ptpctl as ptpctl_cli
from ptpfs.fs.mount import DOCUMENTED_OPTIONS, fuse_conf_allows_other, parse_options

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "docs" / "man"
COMPLETION = ROOT / "contrib" / "completion"
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(check=False, args=[sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout, stdin=subprocess.DEVNULL)


def _option_strings(parser: object) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:  # type: ignore[attr-defined]
        found.update(s for s in action.option_strings if s not in ("-h", "--help"))
    return found


def _man_text(name: str) -> str:
    """The man page source with roff's escaped hyphens made plain."""
    return (MAN / name).read_text(encoding="utf-8").replace("\\-", "-")


# ------------------------------------------------------------------ version

def test_version_has_one_source_read_by_pyproject() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", ptpfs.__version__)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in text
    assert re.search(r'^version\s*=\s*\{\s*attr\s*=\s*"ptpfs\.__version__"\s*\}', text, re.MULTILINE)
    assert not re.search(r'^version\s*=\s*"', text, re.MULTILINE)   # no second, literal version


@pytest.mark.parametrize("module,prog", [("ptpfs.cli.ptpfs_main", "ptpfs"),
                                         ("ptpfs.cli.ptpctl", "ptpctl")])
@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag(module: str, prog: str, flag: str) -> None:
    res = _run(module, flag)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{prog} {ptpfs.__version__}"


def test_man_pages_carry_the_version() -> None:
    for name in ("ptpfs.1", "ptpctl.1"):
        th = next(line for line in _man_text(name).splitlines() if line.startswith(".TH"))
        assert f"ptpfs {ptpfs.__version__}" in th, name


# ------------------------------------------------------------------ help, man pages, completion

def test_ptpfs_help_lists_every_option_and_a_clear_usage_line() -> None:
    res = _run("ptpfs.cli.ptpfs_main", "--help")
    assert res.returncode == 0
    out = res.stdout
    assert out.startswith("usage: ptpfs [options] [DEVICE] MOUNTPOINT\n")
    assert "[[DEVICE] MOUNTPOINT" not in out and "MOUNTPOINT ...]" not in out
    for opt in _option_strings(ptpfs_main.build_parser()):
        assert opt in out, opt
    for name in DOCUMENTED_OPTIONS:
        assert re.search(rf"(^|[\s,]){re.escape(name)}", out, re.MULTILINE), name
    for code in range(8):
        assert re.search(rf"^\s+{code}\s+\S", out, re.MULTILINE), f"exit code {code}"


def test_every_mount_option_ptpfs_parses_is_documented() -> None:
    from ptpfs.fs.mount import OWN_FLAGS, OWN_OPTIONS
    documented = {n.rstrip("=") for n in DOCUMENTED_OPTIONS}
    assert documented >= OWN_OPTIONS and set(OWN_FLAGS) <= documented


def test_ptpfs_man_page_matches_the_parser() -> None:
    man = _man_text("ptpfs.1")
    for opt in _option_strings(ptpfs_main.build_parser()):
        assert re.search(rf"\\fB{re.escape(opt)}\\fR|\B{re.escape(opt)}\b", man), opt
    for name in DOCUMENTED_OPTIONS:
        assert name.rstrip("=") in man, name
    exit_section = man.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    listed = {int(c) for c in re.findall(r"^\.B (\d+)$", exit_section, re.MULTILINE)}
    assert listed == set(range(8))
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
        assert f".SH {section}" in man


def test_ptpctl_man_page_matches_the_parsers() -> None:
    man = _man_text("ptpctl.1")
    main_part, serve_part = man.split(".SH SERVE", 1)
    for opt in _option_strings(ptpctl_cli.build_parser()):
        assert opt in main_part, opt
    for opt in _option_strings(ptpctl_cli.build_serve_parser()):
        assert opt in serve_part, f"serve {opt}"
    codes = {int(c) for c in re.findall(r"^  (\d+)  ", ptpctl_cli.EXIT_CODES_HELP, re.MULTILINE)}
    exit_section = man.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    assert codes <= {int(c) for c in re.findall(r"^\.B (\d+)$", exit_section, re.MULTILINE)}


@pytest.mark.skipif(shutil.which("man") is None, reason="man(1) is not installed")
@pytest.mark.parametrize("name", ["ptpfs.1", "ptpctl.1"])
def test_man_pages_render_without_warnings(name: str) -> None:
    res = subprocess.run(check=False, args=["man", "--warnings", "-l", str(MAN / name)], capture_output=True,
                         text=True, env=dict(os.environ, MANPAGER="cat", PAGER="cat",
                                             MANWIDTH="100"), timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr
    assert "EXIT STATUS" in res.stdout


def test_completion_files_cover_every_option() -> None:
    bash = (COMPLETION / "ptpfs.bash").read_text(encoding="utf-8")
    zsh_ptpfs = (COMPLETION / "_ptpfs").read_text(encoding="utf-8")
    zsh_ptpctl = (COMPLETION / "_ptpctl").read_text(encoding="utf-8")
    for opt in _option_strings(ptpfs_main.build_parser()):
        assert re.search(rf"(^|[\s'(]){re.escape(opt)}([\s'=+\[\"]|$)", bash, re.MULTILINE), opt
        assert opt in zsh_ptpfs, opt
    for opt in _option_strings(ptpctl_cli.build_parser()) | _option_strings(
            ptpctl_cli.build_serve_parser()):
        assert re.search(rf"(^|[\s'(]){re.escape(opt)}([\s'=+\[\"]|$)", bash, re.MULTILINE), opt
        assert opt in zsh_ptpctl, opt
    for name in DOCUMENTED_OPTIONS:
        assert name in bash and name.rstrip("=") in zsh_ptpfs, name
    assert zsh_ptpfs.startswith("#compdef ptpfs") and zsh_ptpctl.startswith("#compdef ptpctl")


def _bash_complete(words: list[str]) -> list[str]:
    script = (f"source {COMPLETION / 'ptpfs.bash'}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              f"_{words[0]}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    res = subprocess.run(check=False, args=["bash", "--norc", "-c", script], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_options_and_mount_options() -> None:
    assert _bash_complete(["ptpfs", "--inst"]) == ["--install-mount-helper"]
    assert sorted(_bash_complete(["ptpfs", "-o", "ro,readahead_m"])) == [
        "ro,readahead_max=", "ro,readahead_min="]
    assert _bash_complete(["ptpfs", "--profile", "canon"]) == ["canon-eos"]
    assert _bash_complete(["ptpctl", "--list-prop"]) == [
        "--list-properties", "--list-properties-description"]
    assert _bash_complete(["ptpctl", "serve", "--lis"]) == ["--listen"]


# ------------------------------------------------------------------ option checks

BAD_OPTIONS = [
    "readahead_max=0", "readahead_max=99999G", "readahead_max=2G", "readahead_min=1",
    "readahead_min=4M,readahead_max=1M", "readahead_max=abc", "kernel_readahead=1",
    "kernel_readahead=5G", "cache_ttl=-5", "cache_ttl=inf", "cache_ttl=nan", "cache_ttl=1e309",
    "cache_ttl=", "gid=-1", "uid=-1", "uid=4294967295", "uid=root", "umask=999", "umask=",
    "attr_timeout=-1", "entry_timeout=inf", "negative_timeout=x", "timeout=0", "timeout=-1",
    "timeout=99999", "max_threads=0", "max_idle_threads=-1", "logfile=", "spool_dir=",
    "min_rate=-1", "min_rate=fast",
]


@pytest.mark.parametrize("option", BAD_OPTIONS)
def test_bad_option_value_is_one_line_and_exit_2(option: str, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = _run("ptpfs.cli.ptpfs_main", "--simulate", "-o", option, str(mnt))
    assert res.returncode == 2, (option, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptpfs: "), res.stderr
    assert "Traceback" not in res.stderr
    assert option.split("=")[0].split(",")[0] in lines[0] or "readahead" in lines[0]


def test_no_bad_option_reaches_the_camera(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Every bad option value is refused before the device is opened: a PTP/IP
    "camera" listening for the whole sweep is never connected to."""
    camera = socket.socket()
    camera.bind(("127.0.0.1", 0))
    camera.listen(8)
    camera.setblocking(False)
    port = camera.getsockname()[1]
    try:
        for option in BAD_OPTIONS:
            code = ptpfs_main.main(["--device", f"ptpip:127.0.0.1:{port}", "-o", option,
                                    str(tmp_path)])
            assert code == 2, option
        with pytest.raises(BlockingIOError):
            camera.accept()                       # nobody connected
    finally:
        camera.close()
    assert len(capsys.readouterr().err.strip().splitlines()) == len(BAD_OPTIONS)


def test_option_values_in_range_are_taken() -> None:
    opts = parse_options(["readahead_min=64k,readahead_max=1G,cache_ttl=0,uid=1000,gid=0",
                          "umask=022,kernel_readahead=0,timeout=0.5,max_threads=4",
                          "noauto,user,x-systemd.automount,nosuid,nodev"])
    assert (opts.readahead_min, opts.readahead_max, opts.cache_ttl) == (64 << 10, 1 << 30, 0)
    assert (opts.uid, opts.gid, opts.umask, opts.kernel_readahead) == (1000, 0, 0o22, 0)
    assert opts.timeout == 0.5 and opts.fuse["max_threads"] == "4"
    assert "noauto" not in opts.fuse and "user" not in opts.fuse
    # a small readahead_max alone lowers the default minimum with it
    assert parse_options(["readahead_max=64k"]).readahead_min == 64 << 10
    # libfuse's idle-thread count is always set (libfuse 3.14 warns when it is not)
    assert parse_options([]).fuse["max_idle_threads"] == 10


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    res = _run("ptpfs.cli.ptpfs_main")
    assert res.returncode == 2 and "a mount point is required" in res.stderr
    res = _run("ptpfs.cli.ptpfs_main", "a", "b", "c")
    assert res.returncode == 2 and "expected [DEVICE] MOUNTPOINT" in res.stderr
    res = _run("ptpfs.cli.ptpfs_main", "--no-such-option", str(tmp_path))
    assert res.returncode == 2
    res = _run("ptpfs.cli.ptpfs_main", "--simulate", str(tmp_path / "missing"))
    assert res.returncode == 2 and "is not a directory" in res.stderr


# ------------------------------------------------------------------ exit codes

def test_no_camera_is_exit_3(tmp_path: Path) -> None:
    with socket.socket() as s:       # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _run("ptpfs.cli.ptpfs_main", "--device", f"ptpip:127.0.0.1:{port}", str(tmp_path))
    assert res.returncode == 3, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "nothing listens" in res.stderr
    res = _run("ptpfs.cli.ptpfs_main", "--simulate=" + str(tmp_path / "nope"), str(tmp_path))
    assert res.returncode == 3, res.stderr


def test_exit_codes_follow_ptpctl() -> None:
    from ptpfs.errors import (
        ConnectionLost,
        DeviceClaimed,
        DeviceNotFound,
        DevicePermissionError,
        ResponseError,
    )
    cases = [(DeviceNotFound("no camera"), 3), (DeviceClaimed("opening usb:001,002: busy"), 4),
             (DevicePermissionError("opening usb:001,002: denied"), 5),
             (ResponseError(0x2019, 0x1002), 6), (ConnectionLost("gone"), 7)]
    for exc, code in cases:
        assert ptpfs_main._fail(exc, "usb") == code
    # the permission message carries the udev hint
    assert "udev" in ptpctl_cli.error_exit_code(DevicePermissionError("x"))[1]


def test_busy_device_names_the_holding_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    node = tmp_path / "usbnode"
    node.write_bytes(b"")
    code = "import sys,time; f=open(sys.argv[1]); print('x', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(node)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        found = holders.holders(str(node))
        assert [pid for pid, _ in found] == [holder.pid]
        assert found[0][1].startswith("python")
    finally:
        holder.kill()
        holder.wait()
    assert holders.holders(str(node)) == []
    assert holders.usb_node("opening usb:001,004: another program") == "/dev/bus/usb/001/004"
    assert holders.usb_node("ptpip:host") is None
    assert holders.describe_holders("no device named here") == ""
    from ptpfs.errors import DeviceClaimed
    assert ptpfs_main._fail(DeviceClaimed("opening usb:001,004: another program holds it")) == 4
    assert "another program holds it" in capsys.readouterr().err


def test_allow_other_needs_user_allow_other(tmp_path: Path) -> None:
    conf = tmp_path / "fuse.conf"
    conf.write_text("# user_allow_other\nmount_max = 1000\n")
    assert not fuse_conf_allows_other(str(conf))
    conf.write_text("mount_max = 1000\nuser_allow_other   # for ptpfs\n")
    assert fuse_conf_allows_other(str(conf))
    assert not fuse_conf_allows_other(str(tmp_path / "missing"))


# ------------------------------------------------------------------ logging destinations

def test_syslog_destination_sends_ptpfs_pid_lines(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    sock_path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.settimeout(10)
    monkeypatch.setenv("PTPFS_SYSLOG_SOCKET", sock_path)
    root = logging.getLogger("ptpfs")
    saved = (root.level, root.propagate, list(root.handlers))
    try:
        logsetup.set_levels(verbose=False, debug=False)
        assert logsetup.for_background(None) == "syslog"
        logging.getLogger("ptpfs.session").warning("device connection lost: cable")
        logging.getLogger("ptpfs.session").debug("GetObjectInfo(...) -> OK")  # not without -v
        logging.getLogger("ptpfs.activity").info("/SD1/a.txt: upload failed: x")
        first = server.recv(4096).decode()
        second = server.recv(4096).decode()
    finally:
        server.close()
        for h in list(root.handlers):
            if h not in saved[2]:
                root.removeHandler(h)
                h.close()
        logsetup._handler = None
        root.setLevel(saved[0])
        root.propagate = saved[1]
    # <PRI>ident message, facility daemon (3): warning = 3*8+4, info = 3*8+6
    assert first == f"<28>ptpfs[{os.getpid()}]: device connection lost: cable\x00"
    assert second == f"<30>ptpfs[{os.getpid()}]: /SD1/a.txt: upload failed: x\x00"


def test_without_syslog_socket_the_log_falls_back_to_a_file(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import logging
    monkeypatch.setenv("PTPFS_SYSLOG_SOCKET", str(tmp_path / "no-such-socket"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = logging.getLogger("ptpfs")
    saved = (root.level, root.propagate, list(root.handlers))
    try:
        logsetup.set_levels(verbose=True, debug=False)
        where = logsetup.for_background(None)
        assert where == str(tmp_path / "state" / "ptpfs" / "ptpfs.log")
        logging.getLogger("ptpfs.session").debug("GetStorageIDs() -> OK, 12 B in")
        for h in root.handlers:
            h.flush()
    finally:
        for h in list(root.handlers):
            if h not in saved[2]:
                root.removeHandler(h)
                h.close()
        logsetup._handler = None
        root.setLevel(saved[0])
        root.propagate = saved[1]
        logging.getLogger("ptpfs.session").setLevel(logging.NOTSET)
    text = Path(where).read_text()
    assert re.search(rf"ptpfs\[{os.getpid()}\]: GetStorageIDs\(\) -> OK", text)


# ------------------------------------------------------------------ mount helper (no root needed)

def test_install_mount_helper_writes_working_launchers(tmp_path: Path) -> None:
    res = _run("ptpfs.cli.ptpfs_main", f"--install-mount-helper={tmp_path}")
    assert res.returncode == 0, res.stderr
    for prog in ("ptpfs", "ptpctl"):
        launcher = tmp_path / "bin" / prog
        assert os.access(launcher, os.X_OK)
        out = subprocess.run(check=False, args=[str(launcher), "--version"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"}, timeout=60)
        assert out.stdout.strip() == f"{prog} {ptpfs.__version__}", out.stderr
    # again: replaces its own launchers
    assert _run("ptpfs.cli.ptpfs_main", f"--install-mount-helper={tmp_path}").returncode == 0
    # a foreign program in the way is refused, not overwritten
    foreign = tmp_path / "bin" / "ptpctl"
    foreign.write_text("#!/bin/sh\necho other\n")
    res = _run("ptpfs.cli.ptpfs_main", f"--install-mount-helper={tmp_path}")
    assert res.returncode == 1 and "exists and is another program" in res.stderr
    assert foreign.read_text() == "#!/bin/sh\necho other\n"
    res = _run("ptpfs.cli.ptpfs_main", f"--install-mount-helper={tmp_path}", str(tmp_path))
    assert res.returncode == 2   # a mount point makes no sense with it


def test_install_mount_helper_keeps_this_installations_own_scripts(tmp_path: Path) -> None:
    """pipx with PIPX_BIN_DIR=/usr/local/bin already put ptpfs there: left alone."""
    (tmp_path / "bin").mkdir()
    own = f"#!{sys.executable}\nfrom ptpfs.cli.ptpfs_main import main\nmain()\n"
    for prog in ("ptpfs", "ptpctl"):
        (tmp_path / "bin" / prog).write_text(own)
    res = _run("ptpfs.cli.ptpfs_main", f"--install-mount-helper={tmp_path}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("already this installation, left as it is") == 2
    assert all((tmp_path / "bin" / p).read_text() == own for p in ("ptpfs", "ptpctl"))


def test_files_a_project_needs_exist() -> None:
    assert (ROOT / "ptpfs" / "py.typed").exists()
    lic = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert lic.startswith("MIT License") and 'license = { text = "MIT" }' in (
        ROOT / "pyproject.toml").read_text(encoding="utf-8")
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "-m pytest" in contributing and "tests/test_layers.py" in contributing


def test_readme_setup_is_two_one_line_commands_run_by_ci() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)\n```$", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2 and all("\n" not in b for b in blocks[:2])
    first, second = blocks[:2]
    assert "pip install ." not in first and "pipx install" in first      # PEP 668
    assert "ptpfs --simulate /tmp/cam" in first and "apt-get install" in first
    assert "pytest" in second and "venv" in second
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and "stock-debian-check" in ci
    # CI runs the README's own lines (read from README.md, not a copy)
    assert "readme_command" in ci
