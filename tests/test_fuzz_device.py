"""Device-side fuzzing: a hostile simulated camera against the client (issue 5).

Every case runs the Session operations the filesystem uses, and a walk of the filesystem
tree, against a :class:`~ptpfs.testing.hostile.HostileCamera` (in process, over the real USB
transport on a hostile pyusb backend, and over the real PTP/IP transport on a hostile
PTP/IP server).  The property: each operation ends in data or a ``PTPError`` subclass, no
case hangs, memory stays within 4 x the bytes received + 4 MiB, and the tree only shows
safe, unique names.  The long mode is ``scripts/fuzz.py``; ``PTPFS_HYPOTHESIS=long`` runs
more examples here.

The last tests are regression tests for bugs the fuzzer found (quadratic duplicate naming,
a probe flood defeating the PTP/IP timeout, array-typed values in a GetObjectPropList).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptpfs.errors import ConnectionLost, ProtocolError, PTPError, TransportTimeout
from ptpfs.fs.tree import Tree
from ptpfs.protocol.codes import OC, OFC
from ptpfs.protocol.datasets import ObjectInfo
from ptpfs.services.naming import unique_names
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.testing.hostile import (
    HOSTILE_NAMES,
    PTPIP_KINDS,
    RESPONDER_KINDS,
    TARGET_OPS,
    USB_KINDS,
    Fabric,
    HostileCamera,
    HostilePtpipServer,
    HostileUsbBackend,
    Mutation,
    Plan,
)
from ptpfs.transport.inprocess import InProcessTransport
from ptpfs.transport.ptpip import PtpipTransport
from ptpfs.transport.usb import open_usb

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import fuzz

ALL = 0xFFFFFFFF
LONG = os.environ.get("PTPFS_HYPOTHESIS") == "long"


def _examples(n: int) -> int:
    return n * 20 if LONG else n


# ------------------------------------------------------------------------------ strategies
def mutations(kinds: tuple[str, ...]) -> st.SearchStrategy[Mutation]:
    return st.builds(Mutation, st.sampled_from(kinds),
                     st.one_of(st.none(), st.sampled_from(TARGET_OPS)),
                     st.integers(0, 2**32 - 1), st.one_of(st.none(), st.integers(0, 2)))


#: Invented object graphs of at most 40 objects (keeps the CI run short; the long mode
#: in scripts/fuzz.py goes further).
fabrics = st.builds(Fabric, seed=st.integers(0, 2**32 - 1), count=st.integers(0, 40),
                    fanout=st.integers(1, 12), echo_parent=st.booleans(),
                    same_name=st.booleans(), folder_ratio=st.floats(0, 1))


def plans(extra: tuple[str, ...] = ()) -> st.SearchStrategy[Plan]:
    return st.builds(Plan, seed=st.integers(0, 2**31), profile=st.sampled_from(
        ("generic", "android-mtp", "canon-eos")),
        mutations=st.lists(mutations(RESPONDER_KINDS + extra), max_size=3).map(tuple),
        fabric=st.one_of(st.none(), fabrics))


def _check(outcome: fuzz.Outcome) -> None:
    assert outcome.ok, "\n".join([outcome.plan.describe()] + outcome.failures)


_SETTINGS = dict(deadline=None, derandomize=not LONG,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------- the properties
@settings(max_examples=_examples(80), **_SETTINGS)
@given(plans())
def test_session_layer_ends_in_data_or_ptperror(plan: Plan) -> None:
    _check(fuzz.run_case(plan, "session", case_timeout=20))


@settings(max_examples=_examples(25), **_SETTINGS)
@given(plans(USB_KINDS))
def test_usb_layer_ends_in_data_or_ptperror(plan: Plan) -> None:
    _check(fuzz.run_case(plan, "usb", timeout=0.5, case_timeout=20))


@settings(max_examples=_examples(25), **_SETTINGS)
@given(plans(PTPIP_KINDS))
def test_ptpip_layer_ends_in_data_or_ptperror(plan: Plan) -> None:
    _check(fuzz.run_case(plan, "ptpip", timeout=0.5, case_timeout=20))


def test_seeded_plans_as_the_long_mode_runs_them() -> None:
    """The exact path of ``scripts/fuzz.py`` (``Plan.random``), for a few seeds per layer,
    with folders capped at 40 objects."""
    for seed in range(40):
        for layer in ("session", "usb", "ptpip") if seed % 8 == 0 else ("session",):
            plan = Plan.random(seed, layer)
            if plan.fabric is not None:
                plan = dataclasses.replace(plan, fabric=dataclasses.replace(
                    plan.fabric, count=min(plan.fabric.count, 40),
                    fanout=min(plan.fabric.fanout, 12)))
            _check(fuzz.run_case(plan, layer, timeout=0.5, case_timeout=20))


# ------------------------------------------------- the hostile device really is hostile
CAMERA = {"profile": "android-mtp", "files_per_folder": 3, "jpeg_size": 3000, "raw_size": 5000}


def _session(camera, *muts: Mutation, fabric: Fabric | None = None) -> tuple[Session,
                                                                             HostileCamera]:
    hostile = HostileCamera(camera, Plan(mutations=muts, fabric=fabric))
    session = Session(InProcessTransport(hostile, timeout=1.0), busy_retries=0)
    session.get_device_info()
    session.open_session()
    return session, hostile


def test_array_count_ffffffff_over_few_bytes_is_a_protocol_error(camera) -> None:
    session, hostile = _session(camera, Mutation("array_ff", OC.GetObjectHandles))
    with pytest.raises(ProtocolError):
        session.get_object_handles(ALL, 0, 0)
    assert hostile.applied


def test_lone_surrogate_and_count_255_strings_are_protocol_errors(camera) -> None:
    session, _ = _session(camera, Mutation("surrogate", OC.GetObjectInfo, nth=0),
                          Mutation("str255", OC.GetObjectInfo, nth=1))
    handle = session.get_object_handles(ALL, 0, 0)[0]
    with pytest.raises(ProtocolError, match="UTF-16"):
        session.get_object_info(handle)
    with pytest.raises(ProtocolError, match="truncated"):
        session.get_object_info(handle)
    assert session.get_object_info(handle).filename      # the third answer is honest


def test_wrong_datatype_in_prop_list_is_a_protocol_error_or_data(camera) -> None:
    session, hostile = _session(camera, Mutation("datatype_swap", OC.GetObjectPropList, 5))
    try:
        entries = session.get_object_prop_list(0, 0, ALL, 0, 1)
    except ProtocolError:
        pass
    else:
        assert entries is not None
    assert hostile.applied


def test_send_object_info_without_handle_is_a_protocol_error(camera) -> None:
    session, _ = _session(camera, Mutation("params_none", OC.SendObjectInfo))
    info = ObjectInfo(0x00010001, OFC.Text, compressed_size=4, filename="a.txt")
    with pytest.raises(ProtocolError, match="handle"):
        session.send_object_info(0x00010001, ALL, info)


def test_data_phase_shorter_than_announced_still_ends(camera) -> None:
    session, hostile = _session(camera, Mutation("length_short", OC.GetObjectInfo, 1))
    handle = session.get_object_handles(ALL, 0, 0)[0]
    try:
        session.get_object_info(handle)
    except PTPError:
        pass
    assert hostile.applied


def test_hostile_names_are_sanitised_and_unique(camera) -> None:
    listing = ((0, tuple(range(Fabric.BASE, Fabric.BASE + 40))),)
    fabric = Fabric(seed=3, count=40, echo_parent=False, folder_ratio=0.0, listing=listing)
    session, _ = _session(camera, fabric=fabric)
    raw = {fabric.name(h) for h in fabric.handles()}
    assert {"..", "a/b", "../../x"} & raw        # the device really sends hostile names
    tree = Tree(session)
    for storage in tree.storages().values():
        names = list(tree.children(storage))
        assert len(names) == len(set(names))
        for name in names:
            assert fuzz.name_problem(name) is None, name


def test_usb_wrong_transaction_id_is_a_protocol_error(camera) -> None:
    hostile = HostileCamera(camera, Plan(mutations=(Mutation("usb_tid", OC.GetStorageIDs),)))
    backend = HostileUsbBackend(hostile)
    transport = open_usb("usb", backend=backend, timeout=0.5)
    session = Session(transport, busy_retries=0)
    try:
        session.get_device_info()
        session.open_session()
        with pytest.raises(ProtocolError, match="transaction ID"):
            session.get_storage_ids()
    finally:
        session.close()
        backend.close()


@pytest.mark.parametrize("kind, error", [("ip_tid_resp", ProtocolError),
                                         ("ip_start_lie", PTPError),
                                         ("ip_no_start", ProtocolError),
                                         ("ip_huge_control", ProtocolError),
                                         ("ip_close", ConnectionLost),
                                         ("ip_silence", TransportTimeout)])
def test_ptpip_framing_lies_are_ptp_errors(camera, kind: str, error: type) -> None:
    hostile = HostileCamera(camera, Plan(mutations=(Mutation(kind, OC.GetStorageIDs, 3),)))
    with HostilePtpipServer(hostile) as server:
        session = Session(PtpipTransport("127.0.0.1", server.port, guid=bytes(16), name="t",
                                         timeout=0.5), busy_retries=0)
        try:
            session.get_device_info()
            session.open_session()
            with pytest.raises(error):
                session.get_storage_ids()
        finally:
            session.close()


def test_name_problem_flags_every_unsafe_name() -> None:
    assert fuzz.name_problem("IMG_0001.JPG") is None
    for bad in ("", ".", "..", "a/b", "a\x00b", "\ud800", "é" * 128):
        assert fuzz.name_problem(bad), bad
    assert set(HOSTILE_NAMES) >= {"../../x", "a/b", "", "\x00", ".."}


# ------------------------------------------------------------- bugs found by the fuzzer
def test_cyclic_parents_do_not_make_node_path_loop(camera) -> None:
    """Found by the fuzzer (Node.path looped forever, allocating); fixed in ptpfs/fs/tree.py
    by dropping listings that would make an object its own ancestor."""
    a, b = Fabric.BASE, Fabric.BASE + 1
    fabric = Fabric(count=2, echo_parent=True, folder_ratio=1.0,
                    listing=((0, (a,)), (a, (b,)), (b, (a,))))
    session, _ = _session(camera, fabric=fabric)
    tree = Tree(session)
    storage = next(iter(tree.storages().values()))
    node_a = next(iter(tree.children(storage).values()))
    node_b = next(iter(tree.children(node_a).values()))
    tree.children(node_b)                                   # lists A again, under B
    assert not fuzz._cyclic(node_a), "A's ancestors loop: A -> B -> A -> ..."
    assert fuzz._bounded(2.0, lambda: node_a.path).startswith("/")


def test_thousands_of_same_named_files_are_named_quickly() -> None:
    started = time.perf_counter()
    names = unique_names((i, "IMG_0001.JPG") for i in range(10000))
    assert len(set(names.values())) == 10000
    # linear naming takes milliseconds here; the quadratic one took over 30 s
    assert time.perf_counter() - started < 5.0


def test_probe_flood_does_not_defeat_the_timeout(camera) -> None:
    hostile = HostileCamera(camera, Plan(mutations=(Mutation("ip_probe_forever",
                                                             OC.GetStorageIDs),)))
    with HostilePtpipServer(hostile) as server:
        session = Session(PtpipTransport("127.0.0.1", server.port, guid=bytes(16), name="t",
                                         timeout=0.5), busy_retries=0)
        try:
            session.get_device_info()
            session.open_session()
            with pytest.raises(PTPError):
                fuzz._bounded(3.0, session.get_storage_ids)   # StepHang if it never ends
        except fuzz.StepHang:
            pytest.fail("GetStorageIDs still waiting after 3 s with a 0.5 s timeout")
        finally:
            server.stop()
            session.close()


def test_prop_list_with_array_datatype_does_not_raise_type_error() -> None:
    cam = make_camera(None, "android-mtp", files_per_folder=1, jpeg_size=3000, raw_size=5000)
    try:
        session, hostile = _session(cam, Mutation("datatype_swap", OC.GetObjectPropList, 5))
        tree = Tree(session)
        stack = list(tree.storages().values())
        while stack:
            try:
                children = tree.children(stack.pop())
            except PTPError:
                continue
            stack += [n for n in children.values() if n.is_dir]
        assert hostile.applied
    finally:
        cam.close()
