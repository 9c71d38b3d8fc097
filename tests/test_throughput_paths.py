"""The throughput paths: the link model's lead and drain, the pipelined
read-ahead of :class:`PartialReader`, the simulator's background upload writer,
and the PTP/IP server's pacing of whole transactions."""

from __future__ import annotations

import os
import random
import time

import pytest
from virtual_clock import virtual_link_time

from ptpfs.errors import PTPError
from ptpfs.fs.reader import PartialReader, _Pipeline
from ptpfs.fs.tree import Tree
from ptpfs.protocol.codes import OC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.session import Session
from ptpfs.sim import SD2, LinkModel, make_camera
from ptpfs.sim.ptpip_server import PtpipServer
from ptpfs.sim.store import StoreError
from ptpfs.transport.inprocess import InProcessTransport
from ptpfs.transport.ptpip import PtpipTransport

MIB = 1 << 20


# ------------------------------------------------------------------ link model
# Modelled time (tests/virtual_clock.py), not wall time: these hold on a loaded machine.
# scripts/benchmark.py measures the real thing.
def test_lead_is_bounded_and_drain_waits_for_the_wire(monkeypatch) -> None:
    with virtual_link_time(monkeypatch) as clock:
        link = LinkModel(bandwidth=10_000_000)
        start = clock.monotonic()
        link.pace(200_000)                       # 20 ms of wire time
        assert clock.monotonic() - start == pytest.approx(0.020 - link.LEAD)  # LEAD ahead, no more
        link.drain()
        assert clock.monotonic() - start == pytest.approx(0.020)   # the wire is done only now
        sleeps = clock.sleeps
        link.drain()                              # nothing outstanding: no wait
        assert clock.sleeps == sleeps


def test_slow_sender_work_overlaps_the_wire(monkeypatch) -> None:
    """Work between chunks shorter than the lead is not charged as idle wire."""
    with virtual_link_time(monkeypatch) as clock:
        link = LinkModel(bandwidth=20_000_000)
        start = clock.monotonic()
        for _ in range(20):
            link.pace(50_000)                     # 2.5 ms per chunk on the wire
            clock.advance(0.001)                  # the sender's own work per chunk
        link.drain()
        # exactly the wire time: the model that slept to the wire's end and then worked
        # took 20 x 3.5 ms = 70 ms
        assert clock.monotonic() - start == pytest.approx(20 * 0.0025)


def test_ptpip_transaction_never_beats_the_wire(monkeypatch) -> None:
    with virtual_link_time(monkeypatch) as clock:
        camera = make_camera(None, "android-mtp", folders=1, files_per_folder=1,
                             big_file=3_000_000, bandwidth=20_000_000, latency=0.001)
        server = PtpipServer(camera).start()
        try:
            with Session(PtpipTransport("127.0.0.1", server.port)) as session:
                handle = camera.store.find("DCIM/100CANON/MVI_9999.MP4").handle
                for _ in range(2):
                    start = clock.monotonic()
                    data = session.get_object(handle)
                    elapsed = clock.monotonic() - start
                    assert len(data) == 3_000_000
                    # 3 MB at 20 MB/s + 1 ms latency (+ the response's few bytes)
                    assert elapsed == pytest.approx(0.151, abs=0.0005), elapsed
                info = ObjectInfo(storage_id=SD2, object_format=0x3000, compressed_size=2_000_000,
                                  parent=0, filename="up.bin")
                payload = os.urandom(2_000_000)
                start = clock.monotonic()
                session.send_object_info(SD2, 0xFFFFFFFF, info)
                session.send_object(payload)
                elapsed = clock.monotonic() - start
                assert elapsed == pytest.approx(0.102, abs=0.0005), elapsed   # 2 MB + 2 x 1 ms
                assert camera.store.find("up.bin", SD2).read(0, 2_000_000) == payload
        finally:
            server.stop()
            camera.store.close()


# ------------------------------------------------------------------ pipelined read-ahead
def _reader_setup(profile: str = "android-mtp", size: int = 12_000_000):
    camera = make_camera(None, profile, folders=1, files_per_folder=1, big_file=size)
    session = Session(InProcessTransport(camera)).open()
    node = Tree(session).lookup("/SD1/DCIM/100CANON/MVI_9999.MP4")
    expected = camera.store.get(node.handle).read(0, node.size)
    return camera, session, node, expected


@pytest.mark.parametrize("profile", ["generic", "canon-eos", "android-mtp"])
def test_streaming_reader_is_exact_and_moves_each_byte_once(profile: str) -> None:
    camera, session, node, expected = _reader_setup(profile)
    try:
        reader = PartialReader(session, node.handle, node.size, maximum=1 * MIB)
        got = bytearray()
        offset = 0
        while chunk := reader.read(offset, 131072):
            got += chunk
            offset += len(chunk)
        assert bytes(got) == expected
        assert reader.transferred == len(expected)        # no byte fetched twice
        assert reader.transactions <= 3 + len(expected) // MIB + 1
        reader.close()
    finally:
        session.close()


def test_reader_out_of_order_and_random_requests() -> None:
    camera, session, node, expected = _reader_setup()
    rng = random.Random(7)
    try:
        reader = PartialReader(session, node.handle, node.size, maximum=1 * MIB)
        offset = 0
        while offset < 6_000_000:                 # sequential with local reordering
            order = [offset + 131072, offset]
            for off in order:
                assert reader.read(off, 131072) == expected[off:off + 131072]
            offset += 2 * 131072
        moved = reader.transferred
        assert moved <= 6_000_000 + 3 * MIB       # the pipeline runs ahead by <= 2 windows
        for _ in range(40):                       # then jumps anywhere, any size
            off = rng.randrange(0, len(expected) + 1000)
            n = rng.choice([1, 4096, 131072, 3 * MIB])
            assert reader.read(off, n) == expected[off:off + n]
        reader.close()
    finally:
        session.close()


def test_pipeline_stops_depth_windows_ahead_of_a_paused_reader() -> None:
    camera, session, node, expected = _reader_setup(size=40_000_000)
    try:
        reader = PartialReader(session, node.handle, node.size, maximum=1 * MIB)
        offset = 0
        while offset < 3 * MIB:
            offset += len(reader.read(offset, 131072))
        # The reader stalls; the worker must stop too.  Wait (bounded) until it has stopped
        # moving, however slow the machine, then check where: at most DEPTH windows ahead.
        buffered_end = reader._start + len(reader._buf)
        deadline = time.monotonic() + 30
        last = -1
        while reader.transferred != last and time.monotonic() < deadline:
            last = reader.transferred
            time.sleep(0.2)
        assert reader.transferred == last, "the read-ahead worker never stopped"
        assert reader.transferred <= buffered_end + _Pipeline.DEPTH * MIB
        time.sleep(0.1)
        assert reader.transferred <= buffered_end + _Pipeline.DEPTH * MIB
        reader.close()
        assert reader._pipeline is None
    finally:
        session.close()


def test_pipeline_error_reaches_the_reader() -> None:
    camera, session, node, expected = _reader_setup(size=40_000_000)
    try:
        reader = PartialReader(session, node.handle, node.size, maximum=1 * MIB)
        offset = 0
        while offset < 2 * MIB:
            offset += len(reader.read(offset, 131072))
        camera.faults.drop_after(1_500_000)
        with pytest.raises(PTPError):
            while offset < len(expected):
                data = reader.read(offset, 131072)
                assert data == expected[offset:offset + len(data)]
                offset += len(data)
        reader.close()                            # must not hang
    finally:
        camera.faults.clear()
        session.close()


def test_eos_reader_closes_with_transfer_complete() -> None:
    camera, session, node, expected = _reader_setup("canon-eos")
    try:
        reader = PartialReader(session, node.handle, node.size, maximum=1 * MIB)
        offset = 0
        while offset < 4 * MIB:                   # a pipeline is in flight at close
            offset += len(reader.read(offset, 131072))
        before = camera.stats.count(OC.EOS_TransferComplete)
        reader.close()
        assert camera.stats.count(OC.EOS_TransferComplete) == before + 1
    finally:
        session.close()


# ------------------------------------------------------------------ simulator upload writer
def _pending(camera, name: str, size: int | None):
    return camera.store.prepare_object(SD2, 0, name, 0x3000, size)


def test_background_upload_writer_keeps_order_and_bounds_memory() -> None:
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    try:
        payload = os.urandom(3 * MIB + 12345)
        upload = camera.store.begin_upload(_pending(camera, "a.bin", len(payload)))
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        for pos in range(0, len(payload), len(buf)):
            part = payload[pos:pos + len(buf)]
            view[:len(part)] = part               # the caller reuses its buffer
            upload.write(view[:len(part)])
            assert upload._queued <= upload.QUEUE_LIMIT
        obj = upload.commit()
        assert obj.read(0, len(payload) + 1) == payload
    finally:
        camera.store.close()


def test_upload_disk_error_surfaces_and_leaves_nothing() -> None:
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    try:
        upload = camera.store.begin_upload(_pending(camera, "b.bin", 2 * MIB))
        good = upload.fd
        upload.fd = os.open(os.devnull, os.O_RDONLY)     # writes now fail (EBADF)
        try:
            upload.write(b"x" * MIB)
            deadline = time.monotonic() + 30             # the writer thread fails meanwhile
            while upload._error is None and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(OSError):                 # the next write reports it
                upload.write(b"y" * MIB)
            with pytest.raises(StoreError):              # and so does commit
                upload.commit()
        finally:
            os.close(good)
        names = [o.name for o in camera.store.children(SD2, 0)]
        assert "b.bin" not in names
    finally:
        camera.store.close()


def test_store_full_mid_upload() -> None:
    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    try:
        upload = camera.store.begin_upload(_pending(camera, "c.bin", None))
        upload.write(b"x" * 1000)
        camera.set_full(SD2, True)
        with pytest.raises(StoreError):
            upload.write(b"y" * 1000)
        upload.abort()
        assert "c.bin" not in [o.name for o in camera.store.children(SD2, 0)]
    finally:
        camera.store.close()


def test_pipeline_keeps_the_generation_it_started_in() -> None:
    """After a reconnect (a new session generation) the read-ahead worker must
    not send the old handle to the device."""
    camera, session, node, expected = _reader_setup(size=40_000_000)
    try:
        reader = PartialReader(session, node.handle, node.size, maximum=1 * MIB)
        offset = 0
        while offset < 2 * MIB:
            offset += len(reader.read(offset, 131072))
        assert reader._pipeline is not None
        session.generation += 1                   # what a reconnect does
        with pytest.raises(PTPError):
            while offset < len(expected):
                offset += len(reader.read(offset, 131072))
        reader.close()
    finally:
        session.close()


# ------------------------------------------------------------------ ptpfs upload spool writer
def test_spool_writes_in_background_read_back_truncate_and_send(tmp_path) -> None:
    from ptpfs.fs.spool import SpoolDir
    from ptpfs.fs.uploads import Upload

    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    session = Session(InProcessTransport(camera)).open()
    try:
        upload = Upload(SpoolDir(str(tmp_path)), SD2, 0, "spooled.bin")
        payload = os.urandom(20 * MIB + 77)
        for pos in range(0, len(payload), MIB):
            upload.write(payload[pos:pos + MIB], pos)
            assert upload._spool._queued <= upload._spool.LIMIT
        assert upload.size == len(payload)
        assert upload.read(5 * MIB - 3, 10) == payload[5 * MIB - 3:5 * MIB + 7]   # sees queued data
        upload.write(b"tail", len(payload) - 4)
        upload.truncate(len(payload) - 2)                # after the queued write, not before
        expected = payload[:-4] + b"ta"
        handle, _ = upload.commit(session)
        assert camera.store.get(handle).read(0, len(expected) + 10) == expected
        upload.close()
    finally:
        session.close()
        camera.store.close()


def test_spool_write_error_fails_the_commit(tmp_path) -> None:
    from ptpfs.fs.spool import SpoolDir
    from ptpfs.fs.uploads import Upload

    camera = make_camera(None, "generic", folders=1, files_per_folder=1)
    session = Session(InProcessTransport(camera)).open()
    try:
        upload = Upload(SpoolDir(str(tmp_path)), SD2, 0, "broken.bin")
        good = upload.fd
        upload.fd = upload._spool.fd = os.open(os.devnull, os.O_RDONLY)   # writes fail
        upload.write(b"x" * 1000, 0)
        with pytest.raises(OSError):
            upload.commit(session)
        assert "broken.bin" not in [o.name for o in camera.store.children(SD2, 0)]
        upload.close()
        os.close(good)
    finally:
        session.close()
        camera.store.close()
