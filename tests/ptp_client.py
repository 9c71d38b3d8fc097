"""A raw PTP client for tests: numbered transactions straight over a transport.

It sends what a session would (OpenSession as transaction 0, then 1, 2, …)
without a session's retries and checks, so tests see the responder's answers
as they are.  ``RawClient(transport)`` works over any transport (USB, PTP/IP,
in-process); ``Client(camera)`` is one over an in-process link to a simulated
camera.  The ``client`` fixture (tests/conftest.py) gives an opened one.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from ptpfs.protocol.codes import OC, OFC, RC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.protocol.messages import Request
from ptpfs.sim import SD1
from ptpfs.transport.inprocess import InProcessTransport

FOLDER = "DCIM/100CANON"


@dataclass
class Result:
    """A response and the data the device sent (empty when streamed to a sink)."""

    code: int
    params: tuple[int, ...]
    data: bytes
    transaction_id: int


class RawClient:
    """Numbers transactions the way a session does (OpenSession = 0, then 1, 2, ...)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.tid = 0

    @property
    def t(self) -> Any:
        """The transport (short name used by the transport tests)."""
        return self.transport

    def open(self, session_id: int = 1) -> None:
        self.tid = 0
        assert self.call(OC.OpenSession, session_id).code == RC.OK

    def call(self, code: int, *params: int, data: bytes | None = None,
             data_in: BinaryIO | None = None, timeout: float | None = None) -> Result:
        """One transaction; a failed one still uses its ID."""
        sink = io.BytesIO() if data_in is None else data_in
        out = io.BytesIO(data) if data is not None else None
        tid, self.tid = self.tid, self.tid + 1
        r = self.transport.transact(Request(code, tid, tuple(params)), data_out=out,
                                    data_out_length=len(data or b""), data_in=sink,
                                    timeout=timeout)
        assert r.transaction_id == tid
        return Result(r.code, tuple(r.params), sink.getvalue() if data_in is None else b"",
                      r.transaction_id)

    def ok(self, code: int, *params: int, data: bytes | None = None) -> Result:
        r = self.call(code, *params, data=data)
        assert r.code == RC.OK, f"0x{code:04x} answered 0x{r.code:04x}"
        return r

    def get(self, code: int, *params: int) -> bytes:
        r = self.call(code, *params)
        assert r.code == RC.OK, hex(r.code)
        return r.data

    def upload(self, camera: Any, name: str, payload: bytes) -> int:
        """SendObjectInfo + SendObject into FOLDER on SD1; the new object's handle."""
        parent = camera.store.find(FOLDER).handle
        info = ObjectInfo(storage_id=SD1, object_format=OFC.Undefined,
                          compressed_size=len(payload), filename=name)
        r = self.call(OC.SendObjectInfo, SD1, parent, data=info.encode())
        assert r.code == RC.OK, hex(r.code)
        r = self.call(OC.SendObject, data=payload)
        assert r.code == RC.OK, hex(r.code)
        return camera.store.find(f"{FOLDER}/{name}").handle

    def close(self) -> None:
        self.transport.close()


def event_while_transacting(camera: Any, transport: Any, client: RawClient) -> tuple[Any, int]:
    """Wait for an event on *transport* in a thread while *client* runs a transaction and
    the camera adds a file: ``(the event received or None, the new file's handle)``."""
    assert transport.read_event(0.05) is None
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(transport.read_event(3.0)))
    waiter.start()
    try:
        time.sleep(0.05)
        # a transaction on the command channel while the event channel is being read
        assert client.call(OC.GetStorageIDs, data_in=io.BytesIO()).code == RC.OK
        handle = camera.add_file(f"{FOLDER}/NEW.JPG", b"\xff\xd8hello\xff\xd9")
    finally:
        waiter.join(5)
    return (got[0] if got else None), handle


class Client(RawClient):
    """A :class:`RawClient` over an in-process link to *camera*."""

    def __init__(self, camera: Any, **kw: Any) -> None:
        super().__init__(InProcessTransport(camera, **kw))
