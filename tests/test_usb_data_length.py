"""A data phase shorter or longer than its container announces, over the real USB transport
(pyusb through SimUsbBackend): stray bytes after the data are discarded as libgphoto2 does;
a phase that ends early keeps the link in step and is an error, never a silently short file."""

from __future__ import annotations

import io
import logging
import struct

import pytest

from ptpfs.errors import ProtocolError
from ptpfs.protocol.codes import OC, RC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.protocol.messages import Request
from ptpfs.sim import make_camera
from ptpfs.sim.usb_backend import SimUsbBackend
from ptpfs.transport.usb import open_usb

FOLDER = "DCIM/100CANON"


class LyingBackend(SimUsbBackend):
    """The simulator, with the next data container of operation *code* altered on its way
    to the host: *extra* stray bytes appended to its transfer, or its length field raised by
    *claim* bytes (it then announces more than it carries)."""

    def __init__(self, cameras: list, code: int, *, extra: int = 0, claim: int = 0) -> None:
        super().__init__(cameras)
        self.code, self.extra, self.claim = code, extra, claim
        self.armed = False
        self.applied = 0

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):   # type: ignore[override]
        n = super().bulk_read(dev_handle, ep, intf, buff, timeout)
        view = memoryview(buff).cast("B")
        if not (self.armed and n >= 12):
            return n
        length, ctype, code, _tid = struct.unpack_from("<IHHI", view)
        if ctype != 2 or code != self.code or length != n:
            return n
        self.armed = False
        self.applied += 1
        if self.claim:
            struct.pack_into("<I", view, 0, length + self.claim)
        view[n:n + self.extra] = b"\xee" * self.extra
        return n + self.extra


@pytest.fixture
def camera():
    cam = make_camera(None, "generic", folders=1, files_per_folder=2, jpeg_size=3000,
                      raw_size=4000)
    yield cam
    cam.close()


def _open(backend):
    transport = open_usb("usb", backend=backend, timeout=1.0)
    tid = iter(range(1_000_000))

    def call(code, *params):
        sink = io.BytesIO()
        response = transport.transact(Request(code, next(tid), params), data_in=sink)
        return response, sink.getvalue()

    assert call(OC.OpenSession, 1)[0].code == RC.OK
    return transport, call


@pytest.mark.parametrize("extra", [1, 4, 11])
def test_stray_bytes_after_the_data_are_discarded(camera, caplog, extra) -> None:
    handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
    backend = LyingBackend([camera], OC.GetObjectInfo, extra=extra)
    transport, call = _open(backend)
    try:
        honest = call(OC.GetObjectInfo, handle)[1]
        backend.armed = True
        with caplog.at_level(logging.INFO, logger="ptpfs.transport.usb"):
            for _ in range(2):                         # logged once per link
                backend.armed = True
                response, data = call(OC.GetObjectInfo, handle)
                assert response.code == RC.OK
                assert data == honest                  # the announced bytes, no more
        assert backend.applied == 2
        notes = [r for r in caplog.records if "more data than it announced" in r.getMessage()]
        assert len(notes) == 1
        assert ObjectInfo.decode(data).filename == "IMG_0001.JPG"
        assert call(OC.GetStorageIDs)[0].code == RC.OK    # the link is in step
    finally:
        transport.close()
        backend.close()


@pytest.mark.parametrize("claim", [1, 100, 1 << 20])
def test_data_phase_ending_early_is_an_error_and_the_link_stays_in_step(camera, claim) -> None:
    handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
    backend = LyingBackend([camera], OC.GetObject, claim=claim)
    transport, call = _open(backend)
    try:
        whole = call(OC.GetObject, handle)[1]
        backend.armed = True
        with pytest.raises(ProtocolError, match=f"ended after {len(whole)} of the "
                                                f"{len(whole) + claim} bytes"):
            call(OC.GetObject, handle)
        assert backend.applied == 1
        # no recover() and no cancel: the response was read, the next transaction just runs
        assert backend.devices[0].cancels == 0
        response, again = call(OC.GetObject, handle)
        assert response.code == RC.OK and again == whole
    finally:
        transport.close()
        backend.close()


def test_a_second_container_glued_to_the_data_is_still_the_response(camera) -> None:
    """Twelve or more surplus bytes are a container (the response a device sent without a
    zero-length packet), never discarded as stray bytes: garbage there is a protocol error."""
    handle = camera.store.find(f"{FOLDER}/IMG_0001.JPG").handle
    backend = LyingBackend([camera], OC.GetObjectInfo, extra=12)
    transport, call = _open(backend)
    try:
        backend.armed = True
        with pytest.raises(ProtocolError):
            call(OC.GetObjectInfo, handle)
        assert backend.applied == 1
    finally:
        transport.close()
        backend.close()
