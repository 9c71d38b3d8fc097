"""The simulated camera: a real PTP responder over a host directory or a generated card.

``make_camera(root, profile, **options)`` builds one; see :mod:`ptpfs.sim.camera` for the
responder interface that transports and server adapters use.
"""

from __future__ import annotations

from typing import Any

from ptpfs.sim.camera import (
    BytesSource,
    DataReceiver,
    DataSource,
    FirmwareImage,
    ObjectSource,
    Reply,
    SimCamera,
    SimConnection,
    SimStats,
)
from ptpfs.sim.dirstore import DirStore
from ptpfs.sim.faults import Faults, LinkDropped
from ptpfs.sim.link import LinkModel
from ptpfs.sim.profiles import PROFILES, Profile, get_profile
from ptpfs.sim.sample import SD1, SD2, GeneratedContent, SampleStore
from ptpfs.sim.store import ObjectStore, SimObject, Storage, StoreError

__all__ = [
    "BytesSource", "DataReceiver", "DataSource", "DirStore", "Faults", "FirmwareImage",
    "GeneratedContent", "LinkDropped", "LinkModel", "ObjectSource", "ObjectStore", "PROFILES",
    "Profile", "Reply", "SD1", "SD2", "SampleStore", "SimCamera", "SimConnection", "SimObject",
    "SimStats", "Storage", "StoreError", "get_profile", "make_camera",
]

_SAMPLE_OPTIONS = {"folders", "files_per_folder", "jpeg_size", "raw_size", "big_file",
                   "sparse_file",
                   "second_slot", "capacity", "seed"}
_DIR_OPTIONS = {"watch_interval", "read_only"}
_CAMERA_OPTIONS = {"deny_uploads", "uploads", "battery", "link", "faults"}


def make_camera(root: str | None = None, profile: str = "generic", **options: Any) -> SimCamera:
    """A simulated camera serving directory *root* (``sim:DIR``) or, when *root* is
    ``None``, a generated sample card.

    Options: ``bandwidth`` (bytes/s) and ``latency`` (s) for the link model;
    ``uploads`` (accept uploads from the host; default: the profile's, ``canon-eos``
    refuses them), ``deny_uploads``, ``battery``, ``link``, ``faults`` for the camera; for a directory
    ``watch_interval`` (s, default 1.0; ``None`` = rescan only when listing) and
    ``read_only``; for the sample card ``folders``, ``files_per_folder``, ``jpeg_size``,
    ``raw_size``, ``big_file`` (bytes), ``sparse_file``
    (bytes, mostly zeros), ``second_slot`` (``empty``/``absent``/``none``),
    ``capacity``, ``seed``.  Unknown options raise ``TypeError``.
    """
    get_profile(profile)
    bandwidth = options.pop("bandwidth", None)
    latency = options.pop("latency", 0.0)
    camera_opts = {k: options.pop(k) for k in list(options) if k in _CAMERA_OPTIONS}
    store: ObjectStore
    if root is not None:
        unknown = set(options) - _DIR_OPTIONS
        if unknown:
            raise TypeError(f"unknown sim:DIR options: {', '.join(sorted(unknown))}")
        options.setdefault("watch_interval", 1.0)
        store = DirStore(root, **options)
    else:
        unknown = set(options) - _SAMPLE_OPTIONS
        if unknown:
            raise TypeError(f"unknown sample card options: {', '.join(sorted(unknown))}")
        store = SampleStore(**options)
    link = camera_opts.pop("link", None) or LinkModel(bandwidth, latency)
    return SimCamera(store, profile, link=link, **camera_opts)
