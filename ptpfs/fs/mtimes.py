"""Modification times programs set, remembered per device.

Devices keep a file's date in whole seconds, and many cannot change it at all
(no MTP DateModified property, no SetObjectPropValue).  So that ``touch -d``,
``cp -a`` and ``rsync -a`` see the time they set, every time set through the
mount is also kept here, in ``$XDG_STATE_HOME/ptpfs/mtimes-<device>.json``
(``~/.local/state`` without XDG_STATE_HOME), keyed by storage and object
handle, and valid only while the object keeps the name, size and device date
it had when the time was set: a file changed by anything else shows the
device's own date again.  Nothing is written until a time is set.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any

from ptpfs.protocol.datasets import DeviceInfo

log = logging.getLogger("ptpfs.fs")

#: Most records kept per device (the oldest go first).
MAX_RECORDS = 200_000
#: Records set within this many seconds are written to disk together.
SAVE_DELAY = 1.0


def state_dir() -> str:
    """``$XDG_STATE_HOME/ptpfs`` (``~/.local/state/ptpfs`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return os.path.join(base, "ptpfs")


def device_key(device_info: DeviceInfo) -> str:
    """A file-name-safe key for a device: model and serial number."""
    model = device_info.model or "device"
    serial = device_info.serial_number or "noserial"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}-{serial}")[:120]


class MTimes:
    """The persistent ``(storage, handle) -> mtime`` record of one device."""

    def __init__(self, key: str, directory: str | None = None) -> None:
        self.key = key
        self.directory = directory
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] | None = None
        self._timer: threading.Timer | None = None

    @property
    def path(self) -> str:
        """The JSON file holding the records."""
        return os.path.join(self.directory or state_dir(), f"mtimes-{self.key}.json")

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._records is None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    data = json.load(f)
                self._records = {k: v for k, v in data.items() if isinstance(v, dict)} \
                    if isinstance(data, dict) else {}
            except FileNotFoundError:
                self._records = {}
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable time record %s: %s", self.path, exc)
                self._records = {}
        return self._records

    def _save_soon(self) -> None:
        """Write the records within :data:`SAVE_DELAY` (caller holds the lock), so an
        ``rsync -a`` of many files does not rewrite the file once per file."""
        if self._timer is None:
            self._timer = threading.Timer(SAVE_DELAY, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        """Write pending records now (also called at unmount)."""
        with self._lock:
            timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
                self._save()

    def _save(self) -> None:
        records = self._load()
        path = self.path
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(records, f, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not save modification times to %s: %s", path, exc)

    @staticmethod
    def _id(storage_id: int, handle: int) -> str:
        return f"{storage_id:08x}:{handle:08x}"

    def get(self, storage_id: int, handle: int, name: str, size: int,
            device_mtime: float) -> float | None:
        """The recorded mtime, if the object is still as it was when it was set."""
        with self._lock:
            rec = self._load().get(self._id(storage_id, handle))
        if rec is None:
            return None
        if rec.get("name") != name or rec.get("size") != size or \
                rec.get("device") != int(device_mtime):
            return None
        value = rec.get("ns")
        return value / 1e9 if isinstance(value, int) else None

    def set(self, storage_id: int, handle: int, name: str, size: int, device_mtime: float,
            mtime: float) -> None:
        """Remember *mtime* for the object as it is now (name, size, device date)."""
        with self._lock:
            records = self._load()
            records.pop(self._id(storage_id, handle), None)
            records[self._id(storage_id, handle)] = {
                "name": name, "size": size, "device": int(device_mtime),
                "ns": round(mtime * 1e9)}
            while len(records) > MAX_RECORDS:
                records.pop(next(iter(records)))
            self._save_soon()

    def forget(self, storage_id: int, handle: int) -> None:
        """Drop the record of a deleted object."""
        with self._lock:
            if self._load().pop(self._id(storage_id, handle), None) is not None:
                self._save_soon()
