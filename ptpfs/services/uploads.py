"""Upload confirmation: which object did an upload really create?

The device side of an upload, shared by the mount (:mod:`ptpfs.fs.uploads`)
and ``ptpctl --upload``: after SendObjectInfo + SendObject, find the object by
the handle the device announced, or by name when the device registers it late
or answers with another object's handle.
"""

from __future__ import annotations

import time

from ptpfs.errors import ProtocolError, ResponseError
from ptpfs.protocol.codes import RC, wire_parent
from ptpfs.session import Session

U32_MAX = 0xFFFFFFFF
#: How long an upload's predicted handle may take to appear (devices that register
#: uploaded objects asynchronously, e.g. from a file watch).
CONFIRM_WAIT = 2.0


def confirm_upload(session: Session, storage_id: int, parent: int, name: str, predicted: int,
                   wait: float = CONFIRM_WAIT) -> tuple[int, int | None]:
    """Find the object just uploaded as *name* in *parent*: ``(handle, reported size)``.

    Devices may answer SendObjectInfo with a handle they register only later, or
    with another object's handle (an existing file whose name matches, written in
    place).  The predicted handle is trusted only if the device lists it under
    that name; otherwise the folder is listed and the object found by name.  The
    size is ``None`` when the device reports 0xFFFFFFFF (4 GiB or more).
    """
    deadline = time.monotonic() + wait
    tries = 0
    while True:
        try:
            info = session.get_object_info(predicted)
        except ResponseError as exc:
            if exc.code != RC.InvalidObjectHandle:
                raise
        else:
            if info.filename == name and info.storage_id in (storage_id, 0):
                size = info.compressed_size
                return predicted, (None if size == U32_MAX else size)
        tries += 1
        if tries <= 3:   # registered a moment later (from the device's own file watch)
            time.sleep(0.005 * 2 ** tries)
            continue
        for handle in reversed(session.get_object_handles(storage_id, 0, wire_parent(parent))):
            if handle == predicted:
                continue
            try:
                info = session.get_object_info(handle)
            except ResponseError:
                continue
            if info.filename == name:
                size = info.compressed_size
                return handle, (None if size == U32_MAX else size)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise ProtocolError(f"the device does not list {name!r} after the upload "
                        f"(it announced handle 0x{predicted:08x})")
