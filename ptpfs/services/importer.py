"""Import the new shots from a camera into a folder (``ptpctl import DEST``).

*New* means: a file object not yet recorded in this camera's import journal,
``$XDG_STATE_HOME/ptpfs/imports/<serial>.log`` (``~/.local/state`` when the
variable is unset), one key per line: storage, camera path, size and capture
date, so a reformatted card whose ``IMG_0001.JPG`` is a new photo counts as
new.  A file whose destination already exists with the same size (and, with
``hash_existing``, the same SHA-256 as the camera's copy) is not copied again
and is recorded; a different file under that name gets ``-1``, ``-2``… added.

Each copy goes to ``.NAME.ptpfs-part`` beside its destination, is checked
(byte count against ObjectInfo; with ``verify`` a second read from the camera
must hash the same as the first read and as the file on disk), gets the
capture time as its mtime, is fsynced and renamed into place, and only then
is recorded in the journal: an interrupted import leaves no file that counts
as imported.  The next run resumes a part file from where it stopped when
the camera offers partial reads, and copies only what is still missing.
``move`` deletes each camera object only after its copy was verified (it
implies ``verify``).  A lost link ends the run with the exception; the
journal and the :attr:`Importer.report` so far stay valid.

Destination names come from a template, :data:`DEFAULT_TEMPLATE`, with the
fields of :data:`TEMPLATE_FIELDS` (capture date and time from ObjectInfo,
falling back to the modification date).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ptpfs.errors import InvalidValue, ResponseError
from ptpfs.protocol.wire import parse_datetime
from ptpfs.services.objects import ListedObject, walk_storage
from ptpfs.session import Session

#: The default destination template.
DEFAULT_TEMPLATE = "{year}/{year}-{month}-{day}/{name}"
#: Fields a template may use.
TEMPLATE_FIELDS = ("year", "month", "day", "hour", "minute", "second", "name", "stem", "ext",
                   "folder", "storage", "model", "serial")
#: Suffix of files being copied (hidden: a leading dot is added).
PART_SUFFIX = ".ptpfs-part"
#: Bytes per partial-read request when resuming a part file.
RESUME_CHUNK = 8 << 20

_UNSAFE = re.compile(r"[\x00-\x1f/\\]")

#: ``progress(files_done, files_total, bytes_done, bytes_total, current_name)``.
Progress = Callable[[int, int, int, int, str], None]


def state_dir(environ: dict[str, str] | None = None) -> str:
    """Where import journals live: ``$XDG_STATE_HOME/ptpfs/imports``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"),
                                                      ".local", "state")
    return os.path.join(base, "ptpfs", "imports")


def camera_id(manufacturer: str, model: str, serial: str) -> str:
    """A file-name-safe identity for a camera: its serial number, else maker and model."""
    raw = serial.strip() or f"{manufacturer.strip()}-{model.strip()}".strip("-") or "unknown"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:100].lstrip(".") or "unknown"


def safe_component(name: str, fallback: str) -> str:
    """*name* as one safe path component (no separators, control bytes, ``.``/``..``)."""
    cleaned = _UNSAFE.sub("_", name).strip()
    if cleaned in ("", ".", "..") or not cleaned.strip("._ "):
        return fallback
    return cleaned[:255]


def object_key(obj: ListedObject) -> str:
    """The journal key of a camera file: storage, path, size and capture date."""
    date = obj.info.capture_date or obj.info.modification_date
    return f"{obj.info.storage_id:08x}\t{obj.path}\t{obj.size}\t{date}"


def capture_time(obj: ListedObject) -> datetime | None:
    """Capture date from ObjectInfo, else its modification date (``None`` if neither parses)."""
    info = obj.info
    when = info.capture_datetime
    if when is None and info.modification_date:
        when = parse_datetime(info.modification_date)
    return when


def render_template(template: str, fields: dict[str, str]) -> list[str]:
    """The template's path components for *fields*; :class:`InvalidValue` if it is unusable."""
    if template.startswith("/") or not template.strip():
        raise InvalidValue(f"bad template {template!r}: must be a relative path")
    try:
        text = template.format_map(fields)
    except KeyError as exc:
        raise InvalidValue(f"bad template {template!r}: unknown field {{{exc.args[0]}}} "
                           f"(known: {', '.join(TEMPLATE_FIELDS)})") from None
    except (ValueError, IndexError, AttributeError) as exc:
        raise InvalidValue(f"bad template {template!r}: {exc}") from None
    parts = [p for p in text.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise InvalidValue(f"bad template {template!r}: gives {text!r}, not a path inside DEST")
    return [safe_component(p, "_") for p in parts]


def template_fields(obj: ListedObject, when: datetime, model: str, serial: str) -> dict[str, str]:
    """The values a template can use for one camera file."""
    name = safe_component(obj.info.filename, f"object-{obj.handle:08x}")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    folder = obj.path.rsplit("/", 2)[-2] if obj.path.count("/") >= 2 else ""
    return {"year": f"{when.year:04d}", "month": f"{when.month:02d}", "day": f"{when.day:02d}",
            "hour": f"{when.hour:02d}", "minute": f"{when.minute:02d}",
            "second": f"{when.second:02d}", "name": name, "stem": stem, "ext": ext,
            "folder": safe_component(folder, "_") if folder else "_",
            "storage": f"{obj.info.storage_id:08x}", "model": safe_component(model, "camera"),
            "serial": safe_component(serial, "unknown")}


@dataclass
class ImportOptions:
    """What to import and how (the ``ptpctl import`` options)."""

    template: str = DEFAULT_TEMPLATE
    extensions: frozenset[str] = frozenset()   # lower case, no dot; empty = every file
    since: datetime | None = None               # only files captured at or after this
    dry_run: bool = False
    verify: bool = False                        # second read from the camera, hashes compared
    hash_existing: bool = False                 # "already in DEST" also needs equal SHA-256
    move: bool = False                          # delete from the camera after verification
    everything: bool = False                    # ignore the journal (still skip what DEST has)
    journal_dir: str | None = None              # default: state_dir()

    def __post_init__(self) -> None:
        if self.move:
            self.verify = True


@dataclass
class PlannedFile:
    """One camera file and where it goes."""

    obj: ListedObject
    key: str
    dest: str
    when: datetime | None


@dataclass
class ImportReport:
    """What an import did (the ``--json`` summary)."""

    camera: str
    dest: str
    dry_run: bool = False
    found: int = 0                     # camera files matching the filters
    planned: int = 0                   # to copy this run
    planned_bytes: int = 0
    copied: list[dict[str, Any]] = field(default_factory=list)
    skipped_imported: int = 0          # in the journal already
    skipped_existing: int = 0          # already in DEST (name + size [+ hash])
    failed: list[dict[str, Any]] = field(default_factory=list)
    deleted: int = 0
    resumed_bytes: int = 0             # bytes of part files that did not need fetching again
    bytes_copied: int = 0              # bytes fetched from the camera into DEST this run
    bytes_read: int = 0                # every byte read from the camera (verification included)
    seconds: float = 0.0
    interrupted: str = ""              # why the run stopped early, if it did

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"camera": self.camera, "dest": self.dest, "dry_run": self.dry_run,
                "found": self.found, "planned": self.planned, "planned_bytes": self.planned_bytes,
                "copied": self.copied, "copied_count": len(self.copied),
                "skipped_imported": self.skipped_imported,
                "skipped_existing": self.skipped_existing, "failed": self.failed,
                "deleted": self.deleted, "resumed_bytes": self.resumed_bytes,
                "bytes_copied": self.bytes_copied, "bytes_read": self.bytes_read,
                "seconds": round(self.seconds, 3), "interrupted": self.interrupted}


class _HashingFile:
    """A sink writing to a file while hashing and counting."""

    def __init__(self, f: Any, digest: Any) -> None:
        self.f = f
        self.digest = digest
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.f.write(data)
        self.digest.update(data)
        self.count += len(data)
        return len(data)


class _HashSink:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.count += len(data)
        return len(data)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class VerifyError(Exception):
    """A copy did not match the camera's file."""


class Importer:
    """Imports one camera's new files into *dest*.  :meth:`plan` then :meth:`run`,
    or just :meth:`run`; :attr:`report` is valid even after an exception."""

    def __init__(self, session: Session, dest: str, options: ImportOptions | None = None,
                 progress: Progress | None = None) -> None:
        self.session = session
        self.dest = os.path.abspath(dest)
        self.options = options or ImportOptions()
        self.progress = progress
        info = session.device_info
        self.model = info.model or "camera"
        self.serial = info.serial_number or ""
        self.camera = camera_id(info.manufacturer, info.model, info.serial_number)
        self.journal_path = os.path.join(self.options.journal_dir or state_dir(),
                                         f"{self.camera}.log")
        self.report = ImportReport(camera=self.camera, dest=self.dest,
                                   dry_run=self.options.dry_run)
        # Check the template before touching the camera.
        render_template(self.options.template, dict.fromkeys(TEMPLATE_FIELDS, "x"))

    # -- journal -------------------------------------------------------------------------

    def imported_keys(self) -> set[str]:
        """Keys recorded by earlier imports from this camera."""
        try:
            with open(self.journal_path, encoding="utf-8", errors="replace") as f:
                return {line.rstrip("\n") for line in f if line.strip()}
        except FileNotFoundError:
            return set()

    def _record(self, journal: Any, key: str) -> None:
        journal.write(key + "\n")
        journal.flush()

    # -- planning ------------------------------------------------------------------------

    def camera_files(self) -> list[ListedObject]:
        """Every file (not folder) on every present storage."""
        files: list[ListedObject] = []
        for sid in self.session.get_storage_ids():
            if not sid & 0xFFFF:
                continue  # an empty slot
            files.extend(o for o in walk_storage(self.session, sid) if not o.info.is_folder)
        return files

    def _wanted(self, obj: ListedObject, when: datetime | None) -> bool:
        opts = self.options
        if opts.extensions:
            ext = obj.info.filename.rpartition(".")[2].lower() if "." in obj.info.filename else ""
            if ext not in opts.extensions:
                return False
        return not (opts.since is not None and (when is None or when < opts.since))

    def plan(self, files: Iterable[ListedObject] | None = None) -> list[PlannedFile]:
        """The files this run would copy (journal and DEST checked), in camera order."""
        done = set() if self.options.everything else self.imported_keys()
        taken: set[str] = set()
        planned: list[PlannedFile] = []
        for obj in self.camera_files() if files is None else files:
            when = capture_time(obj)
            if not self._wanted(obj, when):
                continue
            self.report.found += 1
            key = object_key(obj)
            if key in done:
                self.report.skipped_imported += 1
                continue
            stamp = when or datetime.fromtimestamp(0)
            parts = render_template(self.options.template,
                                    template_fields(obj, stamp, self.model, self.serial))
            dest = self._free_name(os.path.join(self.dest, *parts), obj, taken)
            if dest is None:
                self.report.skipped_existing += 1
                if not self.options.dry_run:
                    self._record_existing(key)
                continue
            taken.add(dest)
            planned.append(PlannedFile(obj, key, dest, when))
            self.report.planned += 1
            self.report.planned_bytes += obj.size
        return planned

    def _record_existing(self, key: str) -> None:
        os.makedirs(os.path.dirname(self.journal_path), exist_ok=True)
        with open(self.journal_path, "a", encoding="utf-8") as journal:
            self._record(journal, key)

    def _same_file(self, path: str, obj: ListedObject) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if st.st_size != obj.size:
            return False
        if not self.options.hash_existing:
            return True
        sink = _HashSink()
        self.session.get_object(obj.handle, sink=sink)
        self.report.bytes_read += sink.count
        return sink.digest.hexdigest() == _file_sha256(path)

    def _free_name(self, path: str, obj: ListedObject, taken: set[str]) -> str | None:
        """*path*, or a ``-N`` variant, that is free; ``None`` if DEST has this file already."""
        stem, ext = os.path.splitext(path)
        for n in range(10000):
            candidate = path if n == 0 else f"{stem}-{n}{ext}"
            if candidate in taken:
                continue
            if not os.path.lexists(candidate):
                return candidate
            if os.path.isfile(candidate) and self._same_file(candidate, obj):
                return None
        raise InvalidValue(f"{path}: 10000 different files already use this name")

    # -- copying -------------------------------------------------------------------------

    def run(self, planned: list[PlannedFile] | None = None) -> ImportReport:
        """Copy every planned file (planning first if not given); returns the report."""
        start = time.monotonic()
        try:
            if planned is None:
                planned = self.plan()
            if self.options.dry_run:
                for p in planned:
                    self.report.copied.append(self._entry(p))
                return self.report
            os.makedirs(os.path.dirname(self.journal_path), exist_ok=True)
            total_bytes = sum(p.obj.size for p in planned)
            done_bytes = 0
            with open(self.journal_path, "a", encoding="utf-8") as journal:
                for index, item in enumerate(planned):
                    base = done_bytes

                    def moved(n: int, base: int = base, item: PlannedFile = item,
                              index: int = index) -> None:
                        if self.progress is not None:
                            self.progress(index, len(planned), base + n, total_bytes,
                                          item.obj.info.filename)

                    moved(0)
                    try:
                        self._copy(item, moved)
                    except (VerifyError, OSError) as exc:
                        self.report.failed.append({**self._entry(item), "error": str(exc)})
                        done_bytes += item.obj.size
                        continue
                    self._record(journal, item.key)
                    self.report.copied.append(self._entry(item))
                    done_bytes += item.obj.size
                    if self.options.move:
                        self._delete(item)
                if self.progress is not None:
                    self.progress(len(planned), len(planned), done_bytes, total_bytes, "")
        except BaseException as exc:
            self.report.interrupted = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.report.seconds = time.monotonic() - start
        return self.report

    def _entry(self, item: PlannedFile) -> dict[str, Any]:
        return {"handle": item.obj.handle, "camera_path": item.obj.path, "dest": item.dest,
                "size": item.obj.size,
                "captured": item.when.isoformat() if item.when is not None else None}

    def _delete(self, item: PlannedFile) -> None:
        try:
            self.session.delete_object(item.obj.handle)
        except ResponseError as exc:
            self.report.failed.append({**self._entry(item),
                                       "error": f"copied, but not deleted from the camera: {exc}"})
        else:
            self.report.deleted += 1

    def _copy(self, item: PlannedFile, moved: Callable[[int], None]) -> None:
        obj = item.obj
        directory, name = os.path.split(item.dest)
        os.makedirs(directory, exist_ok=True)
        part = os.path.join(directory, f".{name}{PART_SUFFIX}")
        digest = hashlib.sha256()
        have = self._resumable(part, obj.size)
        with open(part, "r+b" if have else "w+b") as f:
            if have:
                left = have
                while left:
                    block = f.read(min(left, 1 << 20))
                    digest.update(block)
                    left -= len(block)
                f.seek(have)
                f.truncate()
                self.report.resumed_bytes += have
            sink = _HashingFile(f, digest)
            if have:
                offset = have
                while offset < obj.size:
                    want = min(RESUME_CHUNK, obj.size - offset)
                    got = self.session.read_partial(obj.handle, offset, want, sink=sink)
                    if not got:
                        break
                    offset += int(got)
                    moved(offset)
            else:
                self.session.get_object(obj.handle, sink=sink, progress=moved)
            f.flush()
            self.report.bytes_copied += sink.count
            self.report.bytes_read += sink.count
            written = os.fstat(f.fileno()).st_size
            if written != obj.size:
                raise VerifyError(f"{obj.path}: received {written} bytes, the camera "
                                  f"announced {obj.size}")
            if self.options.verify:
                f.seek(0)
                on_disk = hashlib.sha256()
                for block in iter(lambda: f.read(1 << 20), b""):
                    on_disk.update(block)
                again = _HashSink()
                self.session.get_object(obj.handle, sink=again)
                self.report.bytes_read += again.count
                first = digest.hexdigest()
                if not first == on_disk.hexdigest() == again.digest.hexdigest():
                    os.unlink(part)  # a bad copy must not be resumed from
                    raise VerifyError(f"{obj.path}: verification failed: the second read "
                                      f"or the file on disk differs from the first read")
            os.fsync(f.fileno())
        if item.when is not None:
            ts = item.when.timestamp()
            os.utime(part, (ts, ts))
        os.replace(part, item.dest)

    def _resumable(self, part: str, size: int) -> int:
        """Bytes of an earlier part file to keep (0: start over)."""
        try:
            have = os.stat(part).st_size
        except FileNotFoundError:
            return 0
        if 0 < have <= size and self.session.capabilities.partial_read is not None:
            return have
        return 0


def parse_since(text: str) -> datetime:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` as a local date-time."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue(f"bad --since {text!r}: expected YYYY-MM-DD or "
                           f"YYYY-MM-DDTHH:MM[:SS]") from None


def parse_extensions(text: str) -> frozenset[str]:
    """``jpg,CR3,.mp4`` as ``{"jpg", "cr3", "mp4"}``."""
    exts = frozenset(e.strip().lower().lstrip(".") for e in text.split(",") if e.strip(" ."))
    if not exts:
        raise InvalidValue(f"bad --ext {text!r}: expected extensions like jpg,cr3")
    return exts
