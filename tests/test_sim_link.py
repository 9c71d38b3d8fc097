"""LinkModel pacing and Faults switches, used directly (as server adapters do)."""

from __future__ import annotations

import threading

import pytest
from virtual_clock import virtual_link_time

from ptpfs.sim import Faults, LinkDropped, LinkModel


# Modelled time (tests/virtual_clock.py), not wall time: these hold on a loaded machine.
def test_pace_rate_over_many_chunks(monkeypatch) -> None:
    with virtual_link_time(monkeypatch) as clock:
        link = LinkModel(bandwidth=20_000_000)
        start = clock.monotonic()
        for _ in range(40):
            link.pace(50_000)          # 2 MB in 40 chunks
        assert clock.monotonic() - start == pytest.approx(0.1 - link.LEAD)
        link.drain()
        assert clock.monotonic() - start == pytest.approx(0.1)


def test_pace_shared_by_two_senders(monkeypatch) -> None:
    with virtual_link_time(monkeypatch) as clock:
        link = LinkModel(bandwidth=10_000_000)

        def send() -> None:
            for _ in range(10):
                link.pace(50_000)

        threads = [threading.Thread(target=send) for _ in range(2)]
        start = clock.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        link.drain()
        assert clock.monotonic() - start == pytest.approx(0.1)   # 1 MB total at 10 MB/s


def test_unlimited_and_idle_link_does_not_bank_credit(monkeypatch) -> None:
    with virtual_link_time(monkeypatch) as clock:
        link = LinkModel()
        link.pace(10**9)
        assert clock.sleeps == 0                 # unlimited: never waits
        link.bandwidth = 1_000_000
        clock.advance(0.05)                      # idle time must not become a burst allowance
        start = clock.monotonic()
        link.pace(50_000)
        assert clock.monotonic() - start == pytest.approx(0.05 - link.LEAD)
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
    f.stall(None)                    # until cleared
    assert f.wait_while_stalled(0.01) is False
    f.stall(0.1)                     # a timed stall ends by itself
    assert f.stall_remaining() > 0 or f.wait_while_stalled(0) is True
    assert f.wait_while_stalled(30.0) is True
    f.stall(None)
    threading.Timer(0.05, f.clear).start()
    assert f.wait_while_stalled(30.0) is True    # cleared: the wait ends (False on timeout)


def test_wall_clock_figures_script_runs() -> None:
    """scripts/link_model_timing.py reports the real-time figures (none asserted here)."""
    import importlib.util
    import io
    import json
    from contextlib import redirect_stdout
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "link_model_timing.py"
    spec = importlib.util.spec_from_file_location("link_model_timing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with redirect_stdout(out):
        assert module.main(["--repeat", "1", "--json"]) == 0
    figures = json.loads(out.getvalue())
    assert set(figures) == {"pace_2MB_at_20MBps", "overlap_20_chunks", "ptpip_get_object_3MB"}
    assert all(f["median"] > 0 and f["ideal"] > 0 for f in figures.values())
