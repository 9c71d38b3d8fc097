"""A tiny QMP client: unplug and re-plug the guest's usb-mtp device while it runs."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

MTP_ID = "mtp0"


class QmpError(Exception):
    """QEMU refused a command, or the socket closed or timed out."""


class Qmp:
    """One QMP connection (capabilities negotiated on connect); use as a context manager."""

    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as exc:
            self._sock.close()
            raise QmpError(f"cannot connect to QMP socket {path}: {exc}") from exc
        self._file = self._sock.makefile("rb")
        self.events: list[dict[str, Any]] = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"not a QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except OSError as exc:
            raise QmpError(f"QMP read failed: {exc}") from exc
        if not line:
            raise QmpError("QMP socket closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run ``command`` and return its ``return`` value; events seen meanwhile go to ``events``."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise QmpError(f"{command}: {reply['error'].get('desc', reply['error'])}")
            elif "return" in reply:
                return reply["return"]

    def wait_event(self, name: str, timeout: float, **data: Any) -> dict[str, Any]:
        """Wait for event ``name`` whose data contains ``data``; raise QmpError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["event"] == name and all(event.get("data", {}).get(k) == v for k, v in data.items()):
                    self.events.remove(event)
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpError(f"no {name} event within {timeout:g} s")
            self._sock.settimeout(left)
            try:
                self.events.append(self._read())
            except TimeoutError:
                continue


def device_exists(conn: Qmp, device_id: str = MTP_ID) -> bool:
    """True when a device with ``device_id`` is plugged in."""
    try:
        conn.execute("qom-get", path=f"/machine/peripheral/{device_id}", property="type")
    except QmpError:
        return False
    return True


def unplug(socket_path: str | Path, device_id: str = MTP_ID, timeout: float = 10.0) -> None:
    """Remove the MTP device and wait until QEMU reports it deleted."""
    with Qmp(socket_path) as conn:
        conn.execute("device_del", id=device_id)
        conn.wait_event("DEVICE_DELETED", timeout, device=device_id)


def plug(socket_path: str | Path, properties: dict[str, Any] | None = None) -> None:
    """Add the MTP device back with the properties usb-vm recorded beside the socket."""
    if properties is None:
        sidecar = Path(f"{socket_path}.json")
        try:
            properties = json.loads(sidecar.read_text())["mtp"]
        except (OSError, KeyError, ValueError) as exc:
            raise QmpError(f"no MTP device properties in {sidecar}") from exc
    assert properties is not None
    with Qmp(socket_path) as conn:
        conn.execute("device_add", **properties)


def main(argv: list[str]) -> int:
    """``usb-vm qmp SOCKET unplug|plug|status``."""
    if len(argv) != 2 or argv[1] not in ("unplug", "plug", "status"):
        print("usage: usb-vm qmp SOCKET unplug|plug|status", file=sys.stderr)
        return 2
    path, action = argv
    try:
        if action == "unplug":
            unplug(path)
        elif action == "plug":
            plug(path)
        else:
            with Qmp(path) as conn:
                print("plugged" if device_exists(conn) else "unplugged")
    except QmpError as exc:
        print(f"usb-vm qmp: {exc}", file=sys.stderr)
        return 1
    return 0
