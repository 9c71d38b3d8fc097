"""LinkModel pacing and Faults switches, used directly (as server adapters do)."""

from __future__ import annotations

import threading
import time

import pytest

from ptpfs.sim import Faults, LinkDropped, LinkModel


def test_pace_rate_over_many_chunks() -> None:
    link = LinkModel(bandwidth=20_000_000)
    start = time.monotonic()
    for _ in range(40):
        link.pace(50_000)          # 2 MB in 40 chunks
    elapsed = time.monotonic() - start
    assert 0.095 <= elapsed <= 0.25, elapsed


def test_pace_shared_by_two_senders() -> None:
    link = LinkModel(bandwidth=10_000_000)

    def send() -> None:
        for _ in range(10):
            link.pace(50_000)

    threads = [threading.Thread(target=send) for _ in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0.095 <= time.monotonic() - start <= 0.25   # 1 MB total at 10 MB/s


def test_unlimited_and_idle_link_does_not_bank_credit() -> None:
    link = LinkModel()
    start = time.monotonic()
    link.pace(10**9)
    assert time.monotonic() - start < 0.01
    link.bandwidth = 1_000_000
    time.sleep(0.05)                 # idle time must not become a burst allowance
    start = time.monotonic()
    link.pace(50_000)
    assert time.monotonic() - start >= 0.045
    with pytest.raises(ValueError):
        link.bandwidth = 0
    with pytest.raises(ValueError):
        link.latency = -1


def test_faults_drop_busy_stall() -> None:
    f = Faults()
    f.consume(10**9)                 # disarmed: nothing happens
    f.drop_after(100)
    f.consume(60)
    f.consume(40)
    with pytest.raises(LinkDropped):
        f.consume(1)
    f.consume(10**6)                 # one-shot
    assert f.drops == 1
    f.busy(2)
    assert [f.take_busy() for _ in range(3)] == [True, True, False]
    f.stall(0.1)
    assert f.stall_remaining() > 0
    assert f.wait_while_stalled(0.01) is False
    assert f.wait_while_stalled(1.0) is True
    f.stall(None)
    threading.Timer(0.05, f.clear).start()
    start = time.monotonic()
    assert f.wait_while_stalled(2.0) is True
    assert time.monotonic() - start < 1.0
