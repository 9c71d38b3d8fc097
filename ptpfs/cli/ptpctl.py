"""ptpctl: talk to a PTP/MTP camera from the shell, a la ptpcam and miniPtp.

Listing options combine (``ptpctl -Lodip``); actions run in a fixed order:
info, operations, properties, property descriptions, set-property, upload,
delete, list files, get file.  ``ptpctl serve`` runs the simulated camera as
a PTP/IP server.  Every failure is one ``ptpctl: …`` line on stderr and one of
the exit codes below.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ptpfs import __version__, connect
from ptpfs.cli import output
from ptpfs.cli.exitcodes import (  # noqa: F401 - re-exported: ptpctl's public names
    _BUSY_HINT,
    _PERMISSION_HINT,
    EXIT_BUSY,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_LINK,
    EXIT_NO_DEVICE,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_PTP,
    EXIT_USAGE,
    UsageError,
    error_exit_code,
)
from ptpfs.cli.progress import ProgressBar
from ptpfs.errors import InvalidValue, PTPError, ResponseError
from ptpfs.protocol.codes import (
    ROOT_PARENT,
    format_for_filename,
    norm_parent,
    property_name,
)
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.protocol.wire import format_datetime
from ptpfs.services import properties
from ptpfs.services.listing import object_size as _object_size
from ptpfs.services.objects import walk_storage as _walk_storage

if TYPE_CHECKING:
    from ptpfs.session import Session

PROG = "ptpctl"

#: Exit codes (also listed in ``ptpctl --help``).
EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  other error (local files, unexpected data from the device)
  2  usage error or invalid value (bad option, handle, device spec, property value)
  3  no camera found (no USB device; nothing listening at a PTP/IP address)
  4  device busy: claimed by another program (e.g. gvfs-gphoto2-volume-monitor)
  5  permission denied opening the device (install the udev rule from the README)
  6  the camera answered with a PTP error, e.g. "GetObject: InvalidObjectHandle (0x2009)"
     (also when -d could not read some property; those lines say which)
  7  connection lost or timed out after the device was reached

device specs:
  usb, usb:BUS,DEV, usb:VVVV:PPPP, usb:SERIAL   a USB camera (default: the first found)
  ptpip:HOST[:PORT]                              a PTP/IP camera (port 15740)
  sim, sim:DIR, sim:DIR?profile=canon-eos        the simulated camera in this process

examples:
  ptpctl -Lodip --device sim
  ptpctl -g 0001000a -O photo.jpg
  ptpctl -u 0,notes.txt --parent 00010001
  ptpctl --set-property ExposureTime=1/250 --set-property FNumber=f/5.6
  ptpctl serve --listen 127.0.0.1:15740 --profile canon-eos
"""

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --------------------------------------------------------------------------- arguments

def parse_handle(text: str) -> int:
    """An object handle in hex (``0001000a`` or ``0x0001000a``), as the listing prints it."""
    raw = text.strip().lower()
    digits = raw[2:] if raw.startswith("0x") else raw
    try:
        value = int(digits, 16)
    except ValueError:
        raise InvalidValue(f"bad handle {text!r}: expected hex digits as -L prints them") from None
    if not digits or not 0 <= value <= 0xFFFFFFFF:
        raise InvalidValue(f"bad handle {text!r}: must fit in 32 bits")
    return value


def _handle_arg(text: str) -> int:
    try:
        return parse_handle(text)
    except InvalidValue as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the main command (``serve`` has its own)."""
    p = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Talk to a PTP/MTP camera (USB, PTP/IP or the simulator). "
                            "Subcommands: `ptpctl serve --help`, `ptpctl import --help`, "
                            "`ptpctl firmware --help`.",
                epilog=EXIT_CODES_HELP)
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("-o", "--list-operations", action="store_true",
                   help="list supported operations")
    p.add_argument("-p", "--list-properties", action="store_true",
                   help="list supported device properties")
    p.add_argument("-d", "--list-properties-description", action="store_true",
                   help="describe every property: datatype, value, access, allowed values")
    p.add_argument("-i", "--info", action="store_true", help="show device info")
    p.add_argument("-L", "--list-files", action="store_true",
                   help="list storages and files (handle storage parent format size name)")
    p.add_argument("-g", "--get-file", metavar="HANDLE", type=_handle_arg,
                   help="download the object with this (hex) handle")
    p.add_argument("-O", "--output", metavar="PATH",
                   help="where -g writes (a file, a directory, or - for stdout); "
                        "default: the object's name in the current directory")
    p.add_argument("--force", action="store_true", help="let -g overwrite an existing file")
    p.add_argument("-u", "--upload", metavar="STORAGE,FILE",
                   help="upload FILE; STORAGE is an index into the storage list (0, 1, …) "
                        "or a storage ID like 0x00010001")
    p.add_argument("--parent", metavar="HANDLE", type=_handle_arg,
                   help="folder handle for -u (default: the storage root)")
    p.add_argument("--delete", metavar="HANDLE", type=_handle_arg, help="delete an object")
    p.add_argument("--set-property", metavar="CODE=VALUE", action="append", default=[],
                   help="set a device property; CODE is hex (0x500d) or a name (ExposureTime); "
                        "VALUE is the raw value (80) or its human form (1/250, f/5.6, ISO 400, "
                        "+1/3 EV, 2024-05-01 12:30:00), checked against the property's range "
                        "or enumeration before anything is sent")
    p.add_argument("--device", metavar="SPEC",
                   help="device to use (default: usb if a USB camera is found)")
    p.add_argument("--profile", metavar="NAME",
                   help="simulator profile for sim specs (generic, canon-eos, android-mtp, whole-object)")
    p.add_argument("--timeout", metavar="SECONDS", type=float,
                   help="per-transaction timeout")
    p.add_argument("--list-devices", "--auto-detect", action="store_true", dest="list_devices",
                   help="list the cameras that can be opened")
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    p.add_argument("-v", "--debug", action="store_true",
                   help="log every transaction (code, params, response, bytes, time) to stderr")
    return p


def _profile_names() -> list[str]:
    from ptpfs.sim.profiles import PROFILES
    return list(PROFILES)


#: Hosts meaning "every interface"; ``--listen`` takes them only when spelled out.
ALL_INTERFACES = ("0.0.0.0", "::")


def serve_address(text: str) -> tuple[str, int, str | None]:
    """``--listen`` of ``ptpctl serve``: ``(host, port, warning)``.  A bare ``0``
    or an empty host (which would bind every interface silently) is refused;
    ``0.0.0.0:PORT`` / ``[::]:PORT`` bind every interface with a warning."""
    host, port = connect.parse_host_port(text, connect.PTPIP_PORT)
    if host in ("0", "") or not host.strip("0.:") and host not in ALL_INTERFACES:
        raise InvalidValue(f"--listen {text!r}: ambiguous host; give 127.0.0.1:PORT for this "
                           "machine only, or 0.0.0.0:PORT to listen on every interface")
    if host in ALL_INTERFACES:
        return host, port, (f"listening on every interface ({text}): anyone on the network "
                            "can use the simulated camera")
    return host, port, None


def build_serve_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ptpctl serve``."""
    p = _Parser(prog=f"{PROG} serve",
                description="Serve the simulated camera over PTP/IP (or, with --usb-gadget, as a "
                            "USB device) until SIGINT/SIGTERM.",
                epilog="The first line on stdout is 'listening on HOST:PORT' (with "
                       "--usb-gadget: 'serving on the USB gadget FFS_DIR', --listen unused).  "
                       "WARNING: with --root, every client that can connect may change and "
                       "delete the files under DIR (uploads never overwrite a file and "
                       "FormatStore is refused, but DeleteObject deletes); serve a copy or a "
                       "scratch folder, not your only photos.  All interfaces only when asked "
                       "for explicitly: --listen 0.0.0.0:PORT or [::]:PORT.")
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:15740",
                   help="address to listen on (default 127.0.0.1:15740; port 0 picks a free one)")
    p.add_argument("--usb-gadget", metavar="FFS_DIR",
                   help="serve as a real USB device instead of over PTP/IP: FFS_DIR is a "
                        "mounted FunctionFS instance of a configfs gadget (Linux; root); the "
                        "gadget's IDs and strings for the profile come from "
                        "'python3 -m ptpfs.sim.gadget --identity PROFILE'")
    p.add_argument("--root", metavar="DIR",
                   help="serve the files under DIR, read-write (default: a generated sample "
                        "card); see the warning below")
    p.add_argument("--profile", metavar="NAME", default=connect.DEFAULT_PROFILE,
                   help="simulator profile: " + ", ".join(_profile_names()))
    p.add_argument("--name", metavar="NAME",
                   help="the camera's name in the PTP/IP handshake (default: the profile's "
                        "model name)")
    uploads = p.add_mutually_exclusive_group()
    uploads.add_argument("--allow-uploads", dest="uploads", action="store_const", const=True,
                         help="accept uploads even where the profile refuses them (canon-eos)")
    uploads.add_argument("--deny-uploads", dest="uploads", action="store_const", const=False,
                         help="refuse uploads (SendObjectInfo answers AccessDenied)")
    p.add_argument("--bandwidth", metavar="BYTES/S", type=_parse_rate,
                   help="model a link of this speed (suffixes k, M, G allowed)")
    p.add_argument("--latency", metavar="MS", type=float, default=0.0,
                   help="added delay per transaction in milliseconds")
    p.add_argument("-v", "--debug", action="store_true", help="log the simulator's activity")
    return p


def _parse_rate(text: str) -> float:
    units = {"k": 1e3, "m": 1e6, "g": 1e9}
    t = text.strip().lower().removesuffix("/s").removesuffix("b")
    scale = units.get(t[-1:], 1.0)
    try:
        value = float(t[:-1] if t[-1:] in units else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad bandwidth {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("bandwidth must be positive")
    return value


# --------------------------------------------------------------------------- run state

@dataclass
class _Run:
    """What one invocation prints: text lines or one JSON document."""

    json_mode: bool
    stdout: TextIO
    doc: dict[str, Any] = field(default_factory=dict)
    partial_failure: bool = False

    def line(self, text: str) -> None:
        if not self.json_mode:
            print(text, file=self.stdout)


# --------------------------------------------------------------------------- actions

def _show_info(run: _Run, session: Session) -> None:
    info = session.device_info
    if run.json_mode:
        run.doc["device_info"] = output.device_info_json(info)
        return
    run.line("+ device_info")
    for text in output.device_info_lines(info):
        run.line(text)


def _show_codes(run: _Run, key: str, header: str, kind: str, codes: Any) -> None:
    """One ``0xCODE/Name`` token per line under a ``+ header`` (or a JSON list)."""
    if run.json_mode:
        run.doc[key] = [output.code_json(kind, c) for c in codes]
        return
    run.line(f"+ {header}")
    for code in codes:
        run.line(output.code_token(kind, code))


def _show_operations(run: _Run, session: Session) -> None:
    _show_codes(run, "operations", "operations_supported", "operation",
                session.device_info.operations_supported)


def _show_properties(run: _Run, session: Session) -> None:
    _show_codes(run, "properties", "device_prop_supported", "property",
                session.device_info.device_properties_supported)


def _show_descriptions(run: _Run, session: Session) -> None:
    entries: list[dict[str, Any]] = []
    run.line("+ properties_description")
    for code in session.device_info.device_properties_supported:
        try:
            desc = session.get_device_prop_desc(code)
        except ResponseError as exc:
            run.partial_failure = True
            run.line(f"property_code: {output.code_token('property', code)}, "
                     f"error: {exc.name} (0x{exc.code:04x})")
            entries.append({"code": code, "name": property_name(code),
                            "error": exc.name, "error_code": exc.code})
            continue
        run.line(output.prop_desc_line(desc))
        entries.append(output.prop_desc_json(desc))
    if run.json_mode:
        run.doc["property_descriptions"] = entries


def _list_files(run: _Run, session: Session) -> None:
    storages: list[dict[str, Any]] = []
    run.line("+ storages_and_files")
    for index, sid in enumerate(session.get_storage_ids()):
        info = session.get_storage_info(sid) if sid & 0xFFFF else None
        run.line(output.storage_line(index, sid, info))
        entry = output.storage_json(index, sid, info)
        entry["objects"] = []
        if info is not None:
            for item in _walk_storage(session, sid):
                run.line(output.object_row(item.handle, item.info, item.size))
                entry["objects"].append(output.object_json(item.handle, item.info, item.size,
                                                           item.path))
        storages.append(entry)
    if run.json_mode:
        run.doc["storages"] = storages


def _safe_filename(name: str, handle: int) -> str:
    from ptpfs.services.naming import sanitize

    cleaned = sanitize(name.replace("\\", "_").lstrip(), fallback=f"object-{handle:08x}")
    return cleaned if cleaned.strip("._ ") else f"object-{handle:08x}"


def _get_file(run: _Run, session: Session, handle: int, dest: str | None, force: bool) -> None:
    info = session.get_object_info(handle)
    if info.is_folder:
        raise InvalidValue(f"0x{handle:08x} ({info.filename}) is a folder, not a file")
    size = _object_size(session, handle, info)
    name = _safe_filename(info.filename, handle)
    label = info.filename[:40]
    if dest == "-":
        stream = sys.stdout.buffer
        with ProgressBar(size, label) as bar:
            got = session.get_object(handle, sink=stream, progress=bar)
        stream.flush()
        run.line(f"sent {info.filename} ({got} bytes) to stdout")
        run.doc["get"] = {"handle": handle, "name": info.filename, "path": "-", "size": got}
        return
    path = os.path.join(dest, name) if dest and os.path.isdir(dest) else (dest or name)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite)")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f, ProgressBar(size, label) as bar:
            got = session.get_object(handle, sink=f, progress=bar)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if size != 0xFFFFFFFF and got != size:
        print(f"{PROG}: warning: received {got} bytes, the camera announced {size}",
              file=sys.stderr)
    run.line(f"saved 0x{handle:08x} {info.filename} ({got} bytes) to {path}")
    run.doc["get"] = {"handle": handle, "name": info.filename, "path": path, "size": got}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _resolve_storage(session: Session, text: str) -> int:
    ids = list(session.get_storage_ids())
    t = text.strip().lower()
    if t.startswith("0x"):
        try:
            sid = int(t, 16)
        except ValueError:
            raise InvalidValue(f"bad storage {text!r}: expected an index or 0xID") from None
        if sid not in ids:
            raise InvalidValue(f"no storage 0x{sid:08x} (the camera has "
                               f"{', '.join(f'0x{i:08x}' for i in ids) or 'none'})")
        return sid
    if not t.isdigit():
        raise InvalidValue(f"bad storage {text!r}: expected an index (0, 1, …) or 0xID")
    index = int(t)
    if index >= len(ids):
        raise InvalidValue(f"no storage index {index} (the camera has {len(ids)})")
    return ids[index]


def _upload(run: _Run, session: Session, spec: str, parent: int | None) -> None:
    storage_text, sep, filename = spec.partition(",")
    if not sep or not filename or not storage_text:
        raise InvalidValue(f"bad --upload {spec!r}: expected STORAGE,FILE (e.g. 0,photo.jpg)")
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename}: no such file")
    sid = _resolve_storage(session, storage_text)
    st = os.stat(filename)
    base = os.path.basename(filename)
    info = ObjectInfo(storage_id=sid, object_format=format_for_filename(base),
                      compressed_size=min(st.st_size, 0xFFFFFFFF),
                      parent=parent or 0, filename=base,
                      modification_date=format_datetime(datetime.fromtimestamp(st.st_mtime)))
    with open(filename, "rb") as f:
        got_sid, got_parent, handle = session.send_object_info(
            sid, ROOT_PARENT if parent is None else parent, info)
        with ProgressBar(st.st_size, base[:40]) as bar:
            session.send_object(f, st.st_size, progress=bar)
    # Devices may announce a handle they register later (or another object's): confirm it.
    from ptpfs.services.uploads import confirm_upload

    handle, _ = confirm_upload(session, got_sid or sid,
                               norm_parent(parent or 0), base, handle)
    run.line(f"uploaded {filename} as 0x{handle:08x} (storage 0x{got_sid:08x}, "
             f"parent 0x{got_parent:08x}, {st.st_size} bytes)")
    run.doc["upload"] = {"file": filename, "handle": handle, "storage": got_sid,
                         "parent": got_parent, "size": st.st_size}


def _delete(run: _Run, session: Session, handle: int) -> None:
    session.delete_object(handle)
    run.line(f"deleted 0x{handle:08x}")
    run.doc["delete"] = {"handle": handle}


# --------------------------------------------------------------------------- properties

def _set_property(run: _Run, session: Session, assignment: str) -> None:
    name, sep, raw = assignment.partition("=")
    if not sep or not name.strip():
        raise InvalidValue(f"bad --set-property {assignment!r}: expected CODE=VALUE")
    code = properties.resolve_property(name, session.device_info.device_properties_supported)
    desc = session.get_device_prop_desc(code)
    properties.set_property(session, desc, raw)
    now = session.get_device_prop_value(code, desc.datatype)
    run.line(f"{output.code_token('property', code)} = {properties.format_both(code, now)}")
    run.doc.setdefault("set_property", []).append(
        {"code": code, "name": property_name(code), "value": output.json_value(now),
         "text": properties.format_value(code, now)})


# --------------------------------------------------------------------------- devices

def _list_devices(run: _Run) -> None:
    devices = connect.list_devices()
    if run.json_mode:
        run.doc["devices"] = [d.as_dict() for d in devices]
        return
    for d in devices:
        run.line(f"{d.spec:<16} {d.description}")


# --------------------------------------------------------------------------- errors

def _fail(exc: BaseException) -> int:
    code, message = error_exit_code(exc)
    message = " ".join(str(message).split()) or type(exc).__name__
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


class _LogSetup:
    """Route library log records to stderr for the duration of one run."""

    def __init__(self, debug: bool) -> None:
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.logger = logging.getLogger("ptpfs")
        self.session_logger = logging.getLogger("ptpfs.session")
        self.saved = (self.logger.level, self.session_logger.level, self.logger.propagate)
        self.debug = debug

    def __enter__(self) -> _LogSetup:
        self.logger.addHandler(self.handler)
        self.logger.propagate = False
        # errors end in one "ptpctl: ..." line; the library's own warnings only with -v
        self.logger.setLevel(logging.WARNING if self.debug else logging.ERROR)
        if self.debug:
            self.session_logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.saved[0])
        self.session_logger.setLevel(self.saved[1])
        self.logger.propagate = self.saved[2]


# --------------------------------------------------------------------------- main

def _run(args: argparse.Namespace, run: _Run) -> int:
    if args.output is not None and args.get_file is None:
        raise UsageError("-O/--output only applies to -g/--get-file")
    if args.parent is not None and not args.upload:
        raise UsageError("--parent only applies to -u/--upload")
    if args.output == "-":
        if args.json:
            raise UsageError("-O - (file to stdout) cannot be combined with --json")
        run.stdout = sys.stderr  # stdout carries the file's bytes
    if args.list_devices:
        _list_devices(run)
    wants_device = any((args.list_operations, args.list_properties,
                        args.list_properties_description, args.info, args.list_files,
                        args.get_file is not None, args.upload, args.delete is not None,
                        args.set_property))
    if wants_device:
        spec = args.device or connect.default_spec()
        session = connect.open_session(spec, profile=args.profile, timeout=args.timeout)
        try:
            actions: list[tuple[bool, Callable[[], None]]] = [
                (args.info, lambda: _show_info(run, session)),
                (args.list_operations, lambda: _show_operations(run, session)),
                (args.list_properties, lambda: _show_properties(run, session)),
                (args.list_properties_description, lambda: _show_descriptions(run, session)),
            ]
            actions += [(True, functools.partial(_set_property, run, session, a))
                        for a in args.set_property]
            actions += [
                (bool(args.upload), lambda: _upload(run, session, args.upload, args.parent)),
                (args.delete is not None, lambda: _delete(run, session, args.delete)),
                (args.list_files, lambda: _list_files(run, session)),
                (args.get_file is not None,
                 lambda: _get_file(run, session, args.get_file, args.output, args.force)),
            ]
            for wanted, action in actions:
                if wanted:
                    action()
        finally:
            session.close()
    if run.json_mode:
        json.dump(run.doc, run.stdout, indent=2, sort_keys=True)
        run.stdout.write("\n")
    return EXIT_PTP if run.partial_failure else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ptpctl with *argv* (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        return serve_main(argv[1:])
    if argv and argv[0] == "import":
        from ptpfs.cli.import_cmd import import_main

        return import_main(argv[1:])
    if argv and argv[0] == "firmware":
        from ptpfs.cli.firmware import firmware_main

        return firmware_main(argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: nothing to do (try -i, -L, --list-devices or --help)", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        return _fail(exc)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    run = _Run(json_mode=args.json, stdout=sys.stdout)
    with _LogSetup(args.debug):
        try:
            return _run(args, run)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            return EXIT_ERROR
        except (PTPError, OSError, UsageError) as exc:
            return _fail(exc)


# --------------------------------------------------------------------------- serve

def serve_main(argv: Sequence[str]) -> int:
    """``ptpctl serve``: the simulated camera over PTP/IP until SIGINT/SIGTERM."""
    parser = build_serve_parser()
    try:
        args = parser.parse_args(list(argv))
        host, port, warning = serve_address(args.listen)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        return _fail(exc)
    except InvalidValue as exc:
        return _fail(exc)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.root is not None and not os.path.isdir(args.root):
        return _fail(FileNotFoundError(f"{args.root}: not a directory"))
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if args.root is not None:
        print(f"{PROG}: note: clients may change and delete the files under {args.root} "
              "(serve a copy to keep the originals safe)", file=sys.stderr)
    from ptpfs.sim import make_camera
    from ptpfs.sim.ptpip_server import PtpipServer

    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    with _LogSetup(args.debug):
        if args.debug:
            logging.getLogger("ptpfs").setLevel(logging.DEBUG)
        try:
            camera = _make_camera(make_camera, args)
            server: Any
            if args.usb_gadget is not None:
                from ptpfs.sim.gadget import GadgetServer

                server = GadgetServer(camera, args.usb_gadget)
            else:
                server = PtpipServer(camera, host=host, port=port,
                                     name=args.name or camera.profile.model)
            server.start()
        except (PTPError, OSError, ValueError) as exc:
            return _fail(exc)
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    previous[sig] = signal.signal(sig, lambda *_: stop.set())
                except ValueError:  # not the main thread: rely on KeyboardInterrupt
                    pass
            shown = f"[{host}]" if ":" in host else host
            if args.usb_gadget is not None:
                ident = server.identity
                print(f"serving on the USB gadget {args.usb_gadget} (profile {args.profile}, "
                      f"{ident.vendor_id:04x}:{ident.product_id:04x})", flush=True)
            else:
                print(f"listening on {shown}:{server.port} (profile {args.profile}, "
                      f"device spec ptpip:{shown}:{server.port})", flush=True)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            close = getattr(camera, "close", None)
            if callable(close):
                close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    print(f"{PROG}: server stopped", file=sys.stderr)
    return EXIT_OK


def _make_camera(make_camera: Callable[..., Any], args: argparse.Namespace) -> Any:
    options = {} if args.uploads is None else {"uploads": args.uploads}
    camera = make_camera(args.root, args.profile, **options)
    if args.bandwidth is not None:
        camera.link.bandwidth = args.bandwidth
    if args.latency:
        camera.link.latency = args.latency / 1000.0
    return camera


if __name__ == "__main__":
    sys.exit(main())
