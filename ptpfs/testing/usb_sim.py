"""The ``PTPFS_TEST_USB_SIM`` hook: ``usb`` specs reach a simulated camera.

When ``PTPFS_TEST_USB_SIM`` names a simulator profile (``generic``,
``canon-eos``, …), :mod:`ptpfs.connect` asks :func:`backend` for the pyusb
backend to use, so the real USB transport code runs without hardware
(``PTPFS_TEST_USB_SIM_ROOT`` optionally names the directory served).  One
simulated camera per (profile, root) lives for the whole process, like a
device that stays plugged in between sessions.  Only the source tree has
this module (it is not installed).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from typing import Any

#: Environment variable that routes ``usb`` specs to the simulated USB backend.
USB_SIM_ENV = "PTPFS_TEST_USB_SIM"
#: Optional directory the simulated USB camera serves.
USB_SIM_ROOT_ENV = "PTPFS_TEST_USB_SIM_ROOT"

_backends: dict[tuple[str, str | None], Any] = {}


def backend(make_camera: Callable[[str | None, str], Any]) -> Any:
    """The process's simulated USB backend for the profile and root the environment
    names; *make_camera(root, profile)* builds the camera the first time."""
    key = (os.environ[USB_SIM_ENV], os.environ.get(USB_SIM_ROOT_ENV) or None)
    if key not in _backends:
        from ptpfs.sim.usb_backend import SimUsbBackend

        camera = make_camera(key[1], key[0])
        _backends[key] = SimUsbBackend([camera])
        close = getattr(camera, "close", None)
        if callable(close):
            atexit.register(close)
    return _backends[key]
