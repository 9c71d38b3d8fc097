"""The soak test, short: ptpfs over PTP/IP with injected faults for ~25 s
(scripts/soak.py --minutes N runs it for longer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fuse_helpers import ROOT

pytestmark = pytest.mark.fuse



def test_short_soak_with_faults_loses_no_data() -> None:
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "soak.py"),
                        "--seconds", "22", "--fault-interval", "2.5", "--readers", "8",
                        "--big-file", str(8 << 20), "--seed", "3", "--json"],
                       capture_output=True, text=True, timeout=240)
    report = json.loads(r.stdout)
    # the whole report as text (a tuple's repr gets cut before the fields that matter)
    assert r.returncode == 0, json.dumps(report, indent=1) + r.stderr[-2000:]
    assert report["mismatches"] == [] and report["leftover_partial_uploads"] == []
    assert report["healthy_at_end"] and report["ptpfs_exit_status"] == 0
    ops = report["operations"]
    assert ops.get("read", 0) > 50 and ops.get("upload", 0) > 10 and ops.get("ls -lR", 0) > 5
    assert sum(report["faults_injected"].values()) >= 4
    assert report["reconnects"] >= 1           # at least one drop/unplug/garbage reopened it
