"""The generated sample card: layout, deterministic content, cheap huge cards."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from ptp_client import Client

from ptpfs.protocol.codes import OC, OFC
from ptpfs.protocol.datasets import ObjectInfo, decode_u32_array
from ptpfs.sim import SD1, GeneratedContent, SampleStore, make_camera


def test_default_layout_is_a_canon_card() -> None:
    store = SampleStore()
    try:
        folder = store.find("DCIM/100CANON")
        kids = store.children(SD1, folder.handle)
        assert len(kids) == 10
        jpgs = [o for o in kids if o.name.endswith(".JPG")]
        cr3s = [o for o in kids if o.name.endswith(".CR3")]
        assert len(jpgs) == len(cr3s) == 5
        assert all(4_500_000 <= o.size <= 5_500_000 and o.format == OFC.EXIF_JPEG for o in jpgs)
        assert all(18_000_000 <= o.size <= 22_000_000 and o.format == OFC.CANON_CR3 for o in cr3s)
        assert jpgs[0].read(0, 4) == b"\xff\xd8\xff\xe1"
        assert jpgs[0].read(jpgs[0].size - 2, 2) == b"\xff\xd9"
        assert cr3s[0].read(4, 8) == b"ftypcrx "
    finally:
        store.close()


def test_content_is_deterministic_and_reads_are_consistent() -> None:
    a, b = SampleStore(files_per_folder=2), SampleStore(files_per_folder=2)
    try:
        for path in ("DCIM/100CANON/IMG_0001.JPG", "DCIM/100CANON/IMG_0001.CR3"):
            x, y = a.find(path), b.find(path)
            assert x.size == y.size and x.sha256() == y.sha256()
            whole = x.read(0, x.size)
            assert hashlib.sha256(whole).hexdigest() == x.sha256()
            for off, n in ((0, 1), (65535, 3), (65536 * 7 + 11, 200_000), (x.size - 5, 100)):
                assert x.read(off, n) == whole[off:off + n]
        assert a.find("DCIM/100CANON/IMG_0001.JPG").read(1000, 100) != \
            a.find("DCIM/100CANON/IMG_0001.CR3").read(1000, 100)
        c = SampleStore(files_per_folder=2, seed=2)
        assert c.find("DCIM/100CANON/IMG_0001.JPG").sha256() != \
            a.find("DCIM/100CANON/IMG_0001.JPG").sha256()
        c.close()
    finally:
        a.close()
        b.close()


def test_benchmark_options_are_cheap() -> None:
    # cheap = nothing is generated up front: a 1 GiB file and 10,000 photos in a few MB
    tracemalloc.start()
    store = SampleStore(folders=20, files_per_folder=500, big_file=1 << 30)
    try:
        objs = store.all_objects(SD1)
        assert len(objs) == 1 + 20 + 20 * 500 + 1
        assert store.find("DCIM/119CANON").is_folder
        big = store.find("DCIM/100CANON/MVI_9999.MP4")
        assert big.size == 1 << 30
        assert len(big.read((1 << 30) - 100, 1000)) == 100
        assert store.capacity(SD1) > sum(o.size for o in objs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    assert peak < 64 << 20, peak


def test_generated_content_edges() -> None:
    g = GeneratedContent(5, 10, b"HEADERHEADERHEADER", b"")
    assert g.read(0, 100) == b"HEADERHEAD"
    g = GeneratedContent(5, 100, b"H", b"TT")
    assert g.read(98, 10) == b"TT" and g.read(0, 1) == b"H" and g.read(100, 5) == b""


def test_served_over_transport_matches_expected_bytes() -> None:
    cam = make_camera(None, "generic", files_per_folder=2, jpeg_size=400_000, raw_size=1_000_000)
    c = Client(cam)
    try:
        c.open()
        folder = cam.store.find("DCIM/100CANON").handle
        for h in decode_u32_array(c.ok(OC.GetObjectHandles, SD1, 0, folder).data):
            obj = cam.store.get(h)
            data = c.ok(OC.GetObject, h).data
            assert hashlib.sha256(data).hexdigest() == obj.sha256()
            assert ObjectInfo.decode(c.ok(OC.GetObjectInfo, h).data).compressed_size == len(data)
    finally:
        c.close()
        cam.close()


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        SampleStore(second_slot="sometimes")
    with pytest.raises(TypeError):
        make_camera(None, "generic", bogus=1)
    with pytest.raises(ValueError):
        make_camera(None, "no-such-profile")
