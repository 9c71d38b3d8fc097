"""The mount's kernel read-ahead: larger FUSE read requests for sequential readers."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from fuse_helpers import mounted_process

from ptpfs.fs.mount import _mount_device, parse_options


def _bdi_readahead(mountpoint: str) -> int:
    dev = _mount_device(os.path.realpath(mountpoint))
    assert dev is not None, "mount not found in mountinfo"
    with open(f"/sys/class/bdi/{dev}/read_ahead_kb") as f:
        return int(f.read())


def test_option_parsing() -> None:
    assert parse_options([]).kernel_readahead == 512 << 10
    assert parse_options(["kernel_readahead=1M"]).kernel_readahead == 1 << 20
    assert parse_options(["kernel_readahead=0"]).kernel_readahead == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the bdi read-ahead can only be set by root")
@pytest.mark.parametrize("option, expected_kb", [([], 512), (["-o", "kernel_readahead=1M"], 1024)])
def test_mount_sets_the_bdi_readahead(option: list[str], expected_kb: int) -> None:
    with mounted_process(["--simulate", *option]) as (mnt, _proc):
        # a hang bound, not a timing assertion: the mount sets it from its INIT thread
        deadline = time.monotonic() + 60
        while _bdi_readahead(mnt) != expected_kb and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _bdi_readahead(mnt) == expected_kb
        # and sequential reads still return the right bytes
        folder = os.path.join(mnt, "SD1", "DCIM", "100CANON")
        name = sorted(n for n in os.listdir(folder) if n.endswith(".CR3"))[0]
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        assert len(data) == os.stat(os.path.join(folder, name)).st_size
        assert hashlib.sha256(data).hexdigest() != hashlib.sha256(b"").hexdigest()
