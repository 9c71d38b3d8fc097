#!/usr/bin/env python3
"""Device-side fuzzing: a hostile simulated camera against the ptpfs client.

    scripts/fuzz.py --cases 100000 [--seed N] [--layer session|ptpip|usb|all]

Every case builds a small simulated camera, wraps it in a
:class:`~ptpfs.testing.hostile.HostileCamera` driven by ``Plan.random(seed)``, connects the
client through the chosen layer (``session``: in-process, ``usb``: the real pyusb transport
over a hostile simulated backend, ``ptpip``: the real PTP/IP transport over a hostile
PTP/IP server) and runs the Session operations the filesystem uses plus a walk of the
filesystem tree.  A case fails when an operation ends in anything but data or a
``PTPError`` subclass, when it hangs past the case timeout, when it allocates more than
``4 x bytes received + 4 MiB`` (tracemalloc peak), or when the tree shows a name that is not
a safe, unique path component.  Failures print their seed; ``--seed S --cases 1 --layer L``
reproduces one.  The exit status is 1 when any case failed.  ``--memcheck-every N``
checks the memory bound on every Nth case only (tracemalloc makes a case ~4x slower).

This module is also imported by ``tests/test_fuzz_device.py`` (``run_case``).
"""

from __future__ import annotations

import argparse
import collections
import io
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ptpfs.errors import PTPError
from ptpfs.protocol.codes import DPC, OFC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.protocol.messages import Event
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.testing.hostile import HostileCamera, HostilePtpipServer, HostileUsbBackend, Plan
from ptpfs.transport.inprocess import InProcessTransport

ALL = 0xFFFFFFFF
LAYERS = ("session", "usb", "ptpip")
#: Memory allowed per case: MEMORY_FACTOR x bytes the device sent + MEMORY_CONSTANT.
MEMORY_FACTOR = 4
MEMORY_CONSTANT = 4 << 20
#: Directories the tree walk visits at most.
MAX_TREE_DIRS = 40


#: Address-space ceiling of the fuzz process, so a runaway allocation is a MemoryError.
MEMORY_CEILING = 4 << 30


def _limit_memory(limit: int) -> None:
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


class CaseHang(BaseException):
    """Raised in the main thread when a case exceeds its time limit.  A BaseException so
    that library code catching ``Exception`` cannot swallow it."""


class StepHang(BaseException):
    """Raised in the main thread when one bounded step exceeds its time limit."""


#: Time limit of one tree step (listing a folder, applying an event).
TREE_STEP_LIMIT = 2.0


def _bounded(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """Call *fn* with a time limit (main thread only), keeping the case's own limit."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    outer, _ = signal.getitimer(signal.ITIMER_REAL)

    def on_alarm(signum: int, frame: Any) -> None:
        raise StepHang() if not outer or seconds < outer else CaseHang()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL,
                             max(0.001, outer - (time.monotonic() - started)))


@dataclass
class Outcome:
    """What one case did."""

    layer: str
    plan: Plan
    failures: list[str] = field(default_factory=list)
    steps: int = 0
    bytes_out: int = 0
    peak: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def reproducer(self) -> str:
        return f"scripts/fuzz.py --layer {self.layer} --seed {self.plan.seed} --cases 1"


class _CountSink:
    """A sink that keeps nothing (memory stays bounded whatever the device sends)."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes | memoryview) -> int:
        self.n += len(data)
        return len(data)


def _short_tb(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return " <- ".join(f"{os.path.relpath(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))


def name_problem(name: str) -> str | None:
    """Why *name* is not a safe single path component on Linux (``None`` if it is)."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"name {name!r}"
    if "/" in name or "\x00" in name:
        return f"name {name!r} contains '/' or NUL"
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return f"name {name!r} is not encodable as UTF-8 (lone surrogate)"
    if len(raw) > 255:
        return f"name of {len(raw)} bytes (> 255)"
    return None


class _Runner:
    """Runs the client steps of one case, recording non-PTPError outcomes."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def step(self, name: str, fn: Callable[..., Any], *args: Any,
             limit: float | None = None) -> Any:
        self.outcome.steps += 1
        try:
            if limit is not None:
                return _bounded(limit, fn, *args)
            return fn(*args)
        except PTPError:
            return None
        except CaseHang:
            raise
        except StepHang as exc:
            self.fail(f"{name}: hang (> {limit:g} s) in {_hang_site(exc)}")
        except RecursionError as exc:
            self.fail(f"{name}: RecursionError: {str(exc)[:200]}")
        except MemoryError:
            self.fail(f"{name}: MemoryError")
        except Exception as exc:  # noqa: BLE001 - every unexpected exception is a finding
            self.fail(f"{name}: {type(exc).__name__}: {str(exc)[:300]} [{_short_tb(exc)}]")
        return None

    def fail(self, message: str) -> None:
        self.outcome.failures.append(message)


def _walk_tree(run: _Runner, session: Session) -> None:
    """Build the filesystem tree from the device and check every name it shows."""
    try:
        from ptpfs.fs.tree import Tree
    except ImportError:
        return
    tree = run.step("tree", Tree, session, limit=TREE_STEP_LIMIT)
    if tree is None:
        return
    storages = run.step("tree.storages", tree.storages, limit=TREE_STEP_LIMIT) or {}
    queue: collections.deque[Any] = collections.deque()
    for name, node in storages.items():
        problem = name_problem(name)
        if problem:
            run.fail(f"tree: storage {problem}")
        queue.append(node)
    seen: set[tuple[int, int]] = set()
    handles: list[int] = []
    dirs = 0
    while queue and dirs < MAX_TREE_DIRS:
        node = queue.popleft()
        if node.folder_key in seen:
            continue
        seen.add(node.folder_key)
        dirs += 1
        kids = run.step("tree.children", tree.children, node, limit=TREE_STEP_LIMIT)
        if not kids:
            continue
        for name, child in kids.items():
            problem = name_problem(name)
            if problem:
                run.fail(f"tree: child of {node.handle:#x}: {problem}")
            if child.name != name:
                run.fail(f"tree: node named {child.name!r} listed as {name!r}")
            if _cyclic(child):
                # Node.path (and every other walk up the parents) would never end
                run.fail(f"tree: cyclic parent chain at handle {child.handle:#x} "
                         "(ptpfs/fs/tree.py Node.path loops forever)")
                continue
            run.step("tree.node.path", lambda c=child: c.path)
            handles.append(child.handle)
            if child.is_dir:
                queue.append(child)
    if any(f.startswith("tree: cyclic") for f in run.outcome.failures):
        return          # apply_event would loop in Node.path too
    for handle in handles[:3]:
        node = tree.node_for_handle(handle)
        if node is None or _cyclic(node):
            continue
        run.step("tree.apply_event(ObjectInfoChanged)", tree.apply_event,
                 Event(0x4007, 0, (handle,)), limit=TREE_STEP_LIMIT)
        run.step("tree.apply_event(ObjectAdded)", tree.apply_event, Event(0x4002, 0, (handle,)),
                 limit=TREE_STEP_LIMIT)


def _cyclic(node: Any, limit: int = 10_000) -> bool:
    """True when following ``.parent`` from *node* never reaches the root."""
    for _ in range(limit):
        if node is None:
            return False
        node = node.parent
    return True


def _client(run: _Runner, session: Session) -> None:
    """The Session operations the filesystem uses, in a plausible order."""
    s = session
    run.step("get_device_info", s.get_device_info)
    run.step("open_session", s.open_session)
    caps = run.step("capabilities", lambda: s.capabilities)
    ids = run.step("get_storage_ids", s.get_storage_ids) or ()
    for sid in list(ids)[:2]:
        run.step("get_storage_info", s.get_storage_info, sid)
    sid = next((i for i in ids if i & 0xFFFF), 0x00010001)
    handles = run.step("get_object_handles", s.get_object_handles, sid, 0, 0) or ()
    files = []
    for h in list(handles)[:12]:
        info = run.step("get_object_info", s.get_object_info, h)
        if info is not None and not info.is_folder:
            files.append(h)
    if caps is not None and caps.prop_list:
        run.step("get_object_prop_list(depth 1)", s.get_object_prop_list, 0, 0, ALL, 0, 1)
        if files:
            run.step("get_object_prop_list", s.get_object_prop_list, files[0])
    if caps is not None and caps.eos_listing:
        run.step("eos_get_object_info_ex", s.eos_get_object_info_ex, sid, ALL)
        run.step("eos_get_event", s.eos_get_event)
    target = files[0] if files else (handles[0] if handles else 1)
    if caps is not None and caps.partial_read:
        run.step("read_partial", s.read_partial, target, 0, 1000)
        run.step("read_partial(sink)", s.read_partial, target, 10, 5000, _CountSink())
    run.step("get_object(sink)", s.get_object, target, _CountSink())
    run.step("get_device_prop_desc", s.get_device_prop_desc, DPC.BatteryLevel)
    run.step("get_device_prop_value", s.get_device_prop_value, DPC.BatteryLevel)
    run.step("get_device_prop_value(str)", s.get_device_prop_value, DPC.DeviceFriendlyName)
    payload = b"fuzz" * 64
    info = ObjectInfo(sid, OFC.Text, compressed_size=len(payload), filename="fuzz.txt")
    if run.step("send_object_info", s.send_object_info, sid, ALL, info) is not None:
        run.step("send_object", s.send_object, io.BytesIO(payload), len(payload))
    run.step("read_event", s.transport.read_event, 0.0)
    _walk_tree(run, s)
    run.step("close_session", s.close_session)


def _alarm(seconds: float) -> Callable[[], None]:
    """Arm a per-case time limit (main thread only); returns the disarm function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseHang()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return disarm


def run_case(plan: Plan, layer: str = "session", *, timeout: float = 1.0,
             case_timeout: float = 30.0, memcheck: bool = True) -> Outcome:
    """Run one fuzz case; the returned outcome lists its failures (empty = passed)."""
    outcome = Outcome(layer, plan)
    started = time.perf_counter()
    camera = make_camera(None, plan.profile, folders=1 + plan.seed % 2, files_per_folder=3,
                         jpeg_size=3000, raw_size=5000)
    hostile = HostileCamera(camera, plan)
    run = _Runner(outcome)
    cleanups: list[Callable[[], None]] = [camera.close]
    disarm = _alarm(case_timeout)
    tracing = False
    try:
        transport: Any = None
        if layer == "session":
            transport = InProcessTransport(hostile, timeout=timeout)
        elif layer == "usb":
            from ptpfs.transport.usb import open_usb
            backend = HostileUsbBackend(hostile)
            cleanups.append(backend.close)
            transport = run.step("open_usb", open_usb, "usb", backend, timeout)
        elif layer == "ptpip":
            from ptpfs.transport.ptpip import PtpipTransport
            server = HostilePtpipServer(hostile).start()
            cleanups.append(server.stop)
            transport = run.step("PtpipTransport", lambda: PtpipTransport(
                "127.0.0.1", server.port, guid=bytes(16), name="fuzz", timeout=timeout,
                connect_timeout=timeout))
        else:
            raise ValueError(f"unknown layer {layer!r}")
        if transport is not None:
            session = Session(transport, busy_retries=2, busy_delay=0.0)
            cleanups.insert(0, lambda: run.step("session.close", session.close))
            if memcheck:
                tracemalloc.start()
                tracing = True
            _client(run, session)
    except CaseHang as exc:
        outcome.failures.append(f"hang: case exceeded {case_timeout:g} s in {_hang_site(exc)}")
    finally:
        disarm()
        if tracing:
            outcome.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        disarm2 = _alarm(max(10.0, case_timeout))
        try:
            for cleanup in cleanups:
                try:
                    cleanup()
                except Exception as exc:  # noqa: BLE001 - reported, not fatal
                    outcome.failures.append(f"cleanup: {type(exc).__name__}: {exc}")
        except CaseHang:
            outcome.failures.append("hang: cleanup did not finish")
        finally:
            disarm2()
    outcome.bytes_out = hostile.bytes_out
    limit = MEMORY_FACTOR * outcome.bytes_out + MEMORY_CONSTANT
    if tracing and outcome.peak > limit:
        outcome.failures.append(f"memory: peak {outcome.peak} B > {MEMORY_FACTOR} x "
                                f"{outcome.bytes_out} B received + {MEMORY_CONSTANT} B")
    outcome.seconds = time.perf_counter() - started
    if outcome.failures:
        outcome.failures.append(f"applied mutations: {_applied(hostile)}")
    return outcome


def _hang_site(exc: BaseException) -> str:
    """Where a hang was interrupted: the innermost ptpfs frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}ptpfs{os.sep}" in f.filename][-3:]
    return " <- ".join(f"{os.path.relpath(f.filename)}:{f.lineno} {f.name}"
                       for f in reversed(frames)) or "the harness"


def _applied(hostile: HostileCamera) -> str:
    seen = []
    for m in hostile.applied:
        text = f"{m.kind}@{m.op:#06x}" if m.op is not None else f"{m.kind}@any"
        if text not in seen:
            seen.append(text)
    return ", ".join(seen) or "none"


def _layer_for(index: int, layer: str) -> str:
    if layer != "all":
        return layer
    # most cases on the fast in-process layer, one in ten each over USB and PTP/IP
    return {0: "usb", 1: "ptpip"}.get(index % 10, "session")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000, help="number of cases (default 1000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="first seed (default: random); case i uses seed+i")
    parser.add_argument("--layer", choices=LAYERS + ("all",), default="all")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="transport timeout in seconds (default 1)")
    parser.add_argument("--case-timeout", type=float, default=20.0,
                        help="a case running longer counts as a hang (default 20 s)")
    parser.add_argument("--no-memcheck", action="store_true",
                        help="skip the tracemalloc memory bound (about 4x faster)")
    parser.add_argument("--memcheck-every", type=int, default=1, metavar="N",
                        help="check the memory bound on every Nth case only (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    _limit_memory(MEMORY_CEILING)
    logging.disable(logging.WARNING)   # the library logs every recovery it makes
    base = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"fuzz: {args.cases} cases, layer {args.layer}, seeds {base}..{base + args.cases - 1}",
          flush=True)
    started = last = time.monotonic()
    per_layer: collections.Counter[str] = collections.Counter()
    failed: list[Outcome] = []
    signatures: collections.Counter[str] = collections.Counter()
    memchecked = 0
    for i in range(args.cases):
        layer = _layer_for(i, args.layer)
        plan = Plan.random(base + i, layer)
        memcheck = not args.no_memcheck and i % max(1, args.memcheck_every) == 0
        memchecked += memcheck
        outcome = run_case(plan, layer, timeout=args.timeout, case_timeout=args.case_timeout,
                           memcheck=memcheck)
        per_layer[layer] += 1
        if not outcome.ok:
            failed.append(outcome)
            signature = re.sub(r"0x[0-9a-f]+|\d+", "N", outcome.failures[0].split("[")[0])[:120]
            signatures[signature] += 1
            print(f"FAIL seed={plan.seed} layer={layer}: {outcome.failures[0]}", flush=True)
            if signatures[signature] == 1:
                for line in outcome.failures[1:]:
                    print(f"    {line}")
                print(f"    plan: {plan.describe()}")
            print(f"    reproduce: {outcome.reproducer()}", flush=True)
        now = time.monotonic()
        if not args.quiet and now - last >= 5:
            last = now
            print(f"  {i + 1}/{args.cases} cases, {(i + 1) / (now - started):.0f}/s, "
                  f"{len(failed)} failed", flush=True)
    elapsed = time.monotonic() - started
    layers = ", ".join(f"{k} {v}" for k, v in sorted(per_layer.items()))
    print(f"fuzz: {args.cases} cases ({layers}; {memchecked} memory-checked) in {elapsed:.1f} s, "
          f"{len(failed)} failed")
    for signature, count in signatures.most_common():
        print(f"  {count:6d} x {signature}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
