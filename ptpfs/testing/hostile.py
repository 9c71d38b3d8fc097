"""A hostile PTP device for fuzzing the client side.

:class:`HostileCamera` wraps a :class:`~ptpfs.sim.camera.SimCamera` with the same responder
interface and, following a :class:`Plan` of :class:`Mutation` records, answers with malformed
datasets and replies: truncated or padded data, lying lengths and counts (an array count of
0xFFFFFFFF over a few bytes), wrong datatypes in property lists and descriptions, invalid UTF-16
(lone surrogates), strings whose count is 255 with no units after it, wrong response codes and
parameters (SendObjectInfo without a handle), data phases whose announced length is not what
arrives.  A :class:`Fabric` replaces the object listing with an invented graph: thousands of
same-named files, names such as ``../../x``, ``a/b``, ``""``, NUL, ``..`` or 500-byte names,
cyclic parents (A parent of B parent of A) and objects that are their own parent.

Raw-level hostility (wrong transaction IDs, garbage containers or packets, lying container and
StartData lengths, unexpected packet types, probe floods) needs the transport framing:
:class:`HostileUsbBackend` (a :class:`~ptpfs.sim.usb_backend.SimUsbBackend` whose devices can
corrupt what they queue on bulk IN) and :class:`HostilePtpipServer` (a small PTP/IP responder
that reads through the one packet parser and writes its framing itself, broken on purpose)
take the same plan.  Slow modes for deadline tests: ``ip_trickle`` and ``ip_trickle_init``.

Everything is deterministic: ``Plan.random(seed)`` always gives the same plan, and a plan
always gives the same bytes, so a failing case is reproduced by its seed.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ptpfs.errors import ProtocolError, PTPError
from ptpfs.protocol import container
from ptpfs.protocol import ptpip as pk
from ptpfs.protocol.codes import DT, OC, OFC, OPC, RC
from ptpfs.protocol.datasets import decode_prop_list
from ptpfs.protocol.eos import ENTRY_BODY
from ptpfs.protocol.messages import DATA_OUT, Event, Request
from ptpfs.protocol.transaction import RESPONDER, DataStart, Transaction, ptpip_data_events, ptpip_events
from ptpfs.protocol.wire import Reader
from ptpfs.sim.camera import Reply

__all__ = [
    "Mutation", "Fabric", "Plan", "HostileCamera", "HostileUsbBackend", "HostilePtpipServer",
    "HOSTILE_NAMES", "RESPONDER_KINDS", "USB_KINDS", "PTPIP_KINDS", "PTPIP_SPECIAL_KINDS",
    "TARGET_OPS", "raw_string",
]

ALL = 0xFFFFFFFF
#: Data phases longer than this are only wrapped (length lies), never read into memory.
MAX_MUTATED = 8 << 20

#: Names a hostile device may give its objects (and storages).
HOSTILE_NAMES: tuple[str, ...] = (
    "../../x", "a/b", "", "\x00", "..", ".", "/", "//", "a\x00b", "\x01\x7f", "\n",
    "IMG_0001.JPG", "IMG_0001.JPG", "img_0001.jpg", "IMG_0001~2.JPG", ".ptp", " ",
    "x" * 254, "\u00e9" * 200, "\U0001F600" * 127, "a" * 120 + ".JPG" * 30,
    "\ud800", "ab\udfffcd", "\u202eevil", "a\\b", "CON", "~2",
)

#: Mutation kinds the responder applies (any layer).
RESPONDER_KINDS: tuple[str, ...] = (
    "truncate", "extend", "flip", "garbage", "empty", "no_data", "int_lie", "array_ff",
    "str255", "surrogate", "name", "parent_self", "parent_other", "format_swap",
    "datatype_swap", "count_lie", "entry_size_lie", "length_short", "length_long",
    "length_huge", "params_none", "params_garbage", "code", "ok_no_data", "error_with_data",
)
#: Mutation kinds of the USB container layer.
USB_KINDS: tuple[str, ...] = (
    "usb_tid", "usb_data_tid", "usb_garbage", "usb_type", "usb_len_lie", "usb_data_len_lie",
    "usb_no_response", "usb_double_response", "usb_short", "usb_many_params",
    "usb_data_twice",
)
#: Mutation kinds of the PTP/IP packet layer.
PTPIP_KINDS: tuple[str, ...] = (
    "ip_tid_start", "ip_tid_data", "ip_tid_resp", "ip_start_lie", "ip_no_start",
    "ip_unexpected", "ip_garbage", "ip_huge_control", "ip_short_header", "ip_close",
    "ip_probe_flood", "ip_event_on_cmd", "ip_data_len_lie", "ip_dribble", "ip_silence",
    "ip_bad_type", "ip_init_fail", "ip_init_garbage", "ip_event_garbage",
)
#: PTP/IP kinds that are never chosen at random: ``ip_probe_forever`` keeps sending
#: ProbeRequests every 0.2 s instead of answering (a device that never lets go).
PTPIP_SPECIAL_KINDS: tuple[str, ...] = ("ip_probe_forever", "ip_trickle", "ip_trickle_init")

#: Operations the client exercises (mutations target these).
TARGET_OPS: tuple[int, ...] = (
    OC.GetDeviceInfo, OC.OpenSession, OC.GetStorageIDs, OC.GetStorageInfo, OC.GetObjectHandles,
    OC.GetObjectInfo, OC.GetObject, OC.GetPartialObject, OC.GetPartialObject64,
    OC.EOS_GetPartialObject, OC.GetObjectPropList, OC.EOS_GetObjectInfoEx, OC.EOS_GetEvent,
    OC.GetDevicePropDesc, OC.GetDevicePropValue, OC.SendObjectInfo, OC.SendObject,
    OC.GetObjectPropValue, OC.CloseSession,
)

_CODES = (RC.OK, RC.GeneralError, RC.InvalidObjectHandle, RC.DeviceBusy, 0x0000, 0xFFFF,
          RC.SessionNotOpen, RC.InvalidTransactionID, RC.OperationNotSupported,
          RC.IncompleteTransfer, 0x2FFF, 0xA801)
_HOSTILE_U32 = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000, 0, 1, 0xFFFFFFFE)

# Dataset layouts: "u8" "u16" "u32" "u64" "str" "a16" "a32" (arrays).
_LAYOUTS: dict[int, tuple[str, ...]] = {
    OC.GetDeviceInfo: ("u16", "u32", "u16", "str", "u16", "a16", "a16", "a16", "a16", "a16",
                       "str", "str", "str", "str"),
    OC.GetStorageInfo: ("u16", "u16", "u16", "u64", "u64", "u32", "str", "str"),
    OC.GetObjectInfo: ("u32", "u16", "u16", "u32", "u16", "u32", "u32", "u32", "u32", "u32",
                       "u32", "u32", "u16", "u32", "u32", "str", "str", "str", "str"),
    OC.GetStorageIDs: ("a32",),
    OC.GetObjectHandles: ("a32",),
    OC.EOS_GetStorageIDs: ("a32",),
    OC.GetObjectPropsSupported: ("a16",),
}
_OBJECTINFO_PARENT = 38
_OBJECTINFO_FORMAT = 4
_OBJECTINFO_NAME = 52
_EOS_PARENT = 4 + 24
_EOS_FORMAT = 4 + 8
_EOS_NAME = 4 + 32


@dataclass(frozen=True)
class Mutation:
    """One hostile act: *kind* applied to operation *op* (``None`` = any operation) on its
    *nth* call (``None`` = every call); *arg* seeds the details (offsets, values, bytes)."""

    kind: str
    op: int | None = None
    arg: int = 0
    nth: int | None = None

    def matches(self, code: int, index: int) -> bool:
        return (self.op is None or self.op == code) and (self.nth is None or self.nth == index)


@dataclass(frozen=True)
class Fabric:
    """An invented object graph that replaces the device's listing.

    *count* objects with handles ``0x10000 + i``; each folder listing shows up to *fanout*
    of them, picked by *seed* (a listing may include the folder itself and its ancestors).
    ``echo_parent`` makes every object claim the folder being listed as its parent (the
    source of cycles: list A, then B, then A again); otherwise each object has one fixed,
    possibly absurd, parent (itself, another object, a missing handle).  ``same_name`` gives
    every file the same name; otherwise names come from :data:`HOSTILE_NAMES`.
    *listing* (``((folder, (child, ...)), ...)``, folder 0 = root) fixes the listings
    instead of the seed, for minimal reproducers.
    """

    seed: int = 0
    count: int = 8
    fanout: int = 8
    echo_parent: bool = True
    same_name: bool = False
    folder_ratio: float = 0.5
    listing: tuple[tuple[int, tuple[int, ...]], ...] | None = None

    BASE = 0x10000

    def handles(self) -> range:
        return range(self.BASE, self.BASE + self.count)

    def is_fake(self, handle: int) -> bool:
        return self.BASE <= handle < self.BASE + self.count

    def _rng(self, *salt: int) -> random.Random:
        return random.Random(hash((self.seed,) + salt) & 0xFFFFFFFFFFFF)

    def is_folder(self, handle: int) -> bool:
        if self.folder_ratio >= 1.0:
            return True
        return self._rng(1, handle).random() < self.folder_ratio

    def name(self, handle: int) -> str:
        if self.same_name:
            return "IMG_0001.JPG"
        return self._rng(2, handle).choice(HOSTILE_NAMES)

    def size(self, handle: int) -> int:
        return 0 if self.is_folder(handle) else self._rng(3, handle).randrange(0, 5000)

    def fixed_parent(self, handle: int) -> int:
        rng = self._rng(4, handle)
        return rng.choice((0, ALL, handle, self.BASE + rng.randrange(max(1, self.count)),
                           0xDEAD, self.BASE + self.count + 5))

    def children(self, parent: int) -> list[int]:
        """The handles listed in folder *parent* (0 or ALL = root)."""
        if self.count == 0:
            return []
        parent = 0 if parent in (0, ALL) else parent
        if self.listing is not None:
            return list(dict(self.listing).get(parent, ()))
        rng = self._rng(5, parent)
        n = min(self.fanout, self.count)
        if parent == 0:
            return list(self.handles())[:n]
        picks = [self.BASE + rng.randrange(self.count) for _ in range(rng.randrange(n + 1))]
        if rng.random() < 0.3 and self.is_fake(parent):
            picks.append(parent)          # the folder lists itself
        return picks

    def content(self, handle: int) -> bytes:
        return self._rng(6, handle).randbytes(self.size(handle))


@dataclass(frozen=True)
class Plan:
    """Everything a hostile device will do in one case."""

    seed: int = 0
    profile: str = "generic"
    mutations: tuple[Mutation, ...] = ()
    fabric: Fabric | None = None

    @classmethod
    def random(cls, seed: int, layer: str = "session") -> Plan:
        """A deterministic plan for *seed*; *layer* adds ``usb`` or ``ptpip`` raw kinds."""
        rng = random.Random(seed)
        profile = rng.choice(("generic", "android-mtp", "canon-eos"))
        kinds = list(RESPONDER_KINDS)
        extra = {"usb": USB_KINDS, "ptpip": PTPIP_KINDS}.get(layer, ())
        mutations = []
        for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
            use_raw = extra and rng.random() < 0.5
            kind = rng.choice(extra if use_raw else kinds)
            op = None if rng.random() < 0.1 else rng.choice(TARGET_OPS)
            nth = None if rng.random() < 0.5 else rng.randrange(3)
            mutations.append(Mutation(kind, op, rng.getrandbits(32), nth))
        fabric = None
        if rng.random() < 0.2:
            big = rng.random() < 0.01
            count = rng.randrange(1000, 2000) if big else rng.randrange(0, 40)
            fabric = Fabric(seed=rng.getrandbits(32), count=count,
                            fanout=count if big else rng.randrange(1, 12),
                            echo_parent=rng.random() < 0.6, same_name=big or rng.random() < 0.2,
                            folder_ratio=0.0 if big else rng.random())
        return cls(seed, profile, tuple(mutations), fabric)

    def describe(self) -> str:
        """A one-line, copy-pasteable description."""
        muts = ", ".join(f"Mutation({m.kind!r}, {_opname(m.op)}, {m.arg:#x}, {m.nth})"
                         for m in self.mutations)
        return f"Plan(seed={self.seed}, profile={self.profile!r}, mutations=({muts},), " \
               f"fabric={self.fabric!r})"

    def kinds(self) -> set[str]:
        return {m.kind for m in self.mutations}


def _opname(op: int | None) -> str:
    return "None" if op is None else f"{op:#06x}"


# ---------------------------------------------------------------------------------- raw encoders
def raw_string(text: str, count: int | None = None) -> bytes:
    """A PTP string without any validation: lone surrogates and NULs are encoded as given,
    more than 254 units are cut; *count* overrides the count byte."""
    units = text.encode("utf-16-le", "surrogatepass")[:254 * 2]
    n = len(units) // 2 + 1
    return bytes((n if count is None else count,)) + units + b"\x00\x00"


def _skip_field(r: Reader, kind: str) -> None:
    if kind == "str":
        r.string()
    elif kind == "a16":
        r.array(DT.UINT16)
    elif kind == "a32":
        r.array(DT.UINT32)
    else:
        r.raw({"u8": 1, "u16": 2, "u32": 4, "u64": 8}[kind])


def _fields(code: int, data: bytes) -> list[tuple[str, int]]:
    """``(kind, offset)`` of each field of a dataset the simulator produced (valid data)."""
    layout = _LAYOUTS.get(code)
    if layout is None:
        return []
    r = Reader(data)
    out = []
    try:
        for kind in layout:
            out.append((kind, r.offset))
            _skip_field(r, kind)
    except PTPError:
        pass
    return out


def _string_end(data: bytes, off: int) -> int:
    if off >= len(data):
        return off
    return min(len(data), off + 1 + 2 * data[off])


# --------------------------------------------------------------------------------- data sources
class _Bytes:
    """A data phase from a buffer whose announced *length* may lie."""

    def __init__(self, data: bytes, length: int | None, counter: Callable[[int], None]) -> None:
        self._data = data
        self._pos = 0
        self.length = len(data) if length is None else length
        self._count = counter

    def read(self, n: int) -> bytes:
        chunk = self._data[self._pos:self._pos + max(0, n)]
        self._pos += len(chunk)
        self._count(len(chunk))
        return chunk


class _Counted:
    """Passes a data source through, counting bytes and optionally lying about its length."""

    def __init__(self, inner: Any, length: int, counter: Callable[[int], None]) -> None:
        self._inner = inner
        self.length = length
        self._left = inner.length
        self._count = counter

    def read(self, n: int) -> bytes:
        chunk = self._inner.read(min(max(0, n), self._left)) if self._left > 0 else b""
        self._left -= len(chunk)
        self._count(len(chunk))
        return chunk


class _Receiver:
    """Wraps the camera's DataReceiver so the final reply can be mutated."""

    def __init__(self, inner: Any, finish: Callable[[Reply], Reply]) -> None:
        self._inner = inner
        self._finish = finish

    def write(self, chunk: bytes | memoryview) -> None:
        self._inner.write(chunk)

    def finish(self) -> Reply:
        return self._finish(self._inner.finish())

    def abort(self) -> None:
        abort = getattr(self._inner, "abort", None)
        if callable(abort):
            abort()


# ---------------------------------------------------------------------------- hostile responder
class HostileCamera:
    """The responder interface of ``SimCamera``, answering as *plan* says.

    ``bytes_out`` counts every data byte handed to a transport (for memory bounds).
    """

    def __init__(self, camera: Any, plan: Plan) -> None:
        self.camera = camera
        self.plan = plan
        self.profile = camera.profile
        self.calls: Counter[int] = Counter()
        self.bytes_out = 0
        self.applied: list[Mutation] = []
        self._last_listed = 0
        self._lock = threading.RLock()

    # -- responder interface -------------------------------------------------------------
    @property
    def stats(self) -> Any:
        return self.camera.stats

    @property
    def link(self) -> Any:
        return self.camera.link

    @property
    def faults(self) -> Any:
        return self.camera.faults

    def takes_data(self, code: int) -> bool:
        return bool(self.camera.takes_data(code))

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        unsubscribe: Callable[[], None] = self.camera.subscribe(callback)
        return unsubscribe

    def count_out(self, n: int) -> None:
        self.bytes_out += n

    def mutations_for(self, code: int, kinds: tuple[str, ...] | None = None,
                      index: int | None = None) -> list[Mutation]:
        """The plan's mutations for this call of *code* (restricted to *kinds*)."""
        if index is None:
            index = self.calls[code] - 1
        return [m for m in self.plan.mutations
                if m.matches(code, index) and (kinds is None or m.kind in kinds)]

    def command(self, request: Request) -> Reply:
        with self._lock:
            self.calls[request.code] += 1
            reply = self.camera.command(request)   # keeps the camera's transaction IDs in step
            fabric = self.plan.fabric
            if fabric is not None:
                reply = self._fabricate(fabric, request, reply)
            return self._mutate(request, reply)

    def begin_data(self, request: Request, length: int | None) -> Any:
        with self._lock:
            self.calls[request.code] += 1
            inner = self.camera.begin_data(request, length)
            index = self.calls[request.code] - 1
            return _Receiver(inner, lambda reply: self._mutate(request, reply, index))

    # -- the invented object graph ---------------------------------------------------------
    def _fabricate(self, fabric: Fabric, request: Request, reply: Reply) -> Reply:
        code, p = request.code, tuple(request.params) + (0,) * 5
        if code == OC.GetObjectHandles:
            self._last_listed = p[2]
            return self._data(struct.pack("<I", len(fabric.children(p[2])))
                              + b"".join(struct.pack("<I", h) for h in fabric.children(p[2])))
        if code == OC.GetNumObjects:
            return Reply(RC.OK, (len(fabric.children(p[2])),))
        if code == OC.GetObjectInfo and fabric.is_fake(p[0]):
            return self._data(self._object_info(fabric, p[0], self._parent_of(fabric, p[0])))
        if code == OC.EOS_GetObjectInfoEx:
            sid = p[0] if p[0] not in (0, ALL) else 0x00010001
            entries = [_eos_entry(h, sid, self._format(fabric, h), fabric.size(h),
                                  p[1] if fabric.echo_parent else fabric.fixed_parent(h),
                                  fabric.name(h)) for h in fabric.children(p[1])]
            return self._data(struct.pack("<I", len(entries)) + b"".join(entries))
        if code == OC.GetObjectPropList:
            handles = fabric.children(p[0]) if p[4] else [p[0]]
            out = []
            for h in handles:
                parent = p[0] if fabric.echo_parent and p[4] else fabric.fixed_parent(h)
                out += [_prop(h, OPC.StorageID, DT.UINT32, struct.pack("<I", 0x00010001)),
                        _prop(h, OPC.ObjectFormat, DT.UINT16,
                              struct.pack("<H", self._format(fabric, h))),
                        _prop(h, OPC.ObjectSize, DT.UINT64, struct.pack("<Q", fabric.size(h))),
                        _prop(h, OPC.ObjectFileName, DT.STR, raw_string(fabric.name(h))),
                        _prop(h, OPC.ParentObject, DT.UINT32, struct.pack("<I", parent))]
            return self._data(struct.pack("<I", len(out)) + b"".join(out))
        if code in (OC.GetObject, OC.GetPartialObject, OC.GetPartialObject64,
                    OC.EOS_GetPartialObject) and fabric.is_fake(p[0]):
            data = fabric.content(p[0])
            if code == OC.GetPartialObject:
                data = data[p[1]:p[1] + p[2]]
                return Reply(RC.OK, (len(data),), self._source(data))
            return self._data(data)
        if code == OC.GetObjectPropValue and fabric.is_fake(p[0]):
            return self._data(struct.pack("<Q", fabric.size(p[0])))
        return reply

    def _parent_of(self, fabric: Fabric, handle: int) -> int:
        return self._last_listed if fabric.echo_parent else fabric.fixed_parent(handle)

    @staticmethod
    def _format(fabric: Fabric, handle: int) -> int:
        return OFC.Association if fabric.is_folder(handle) else OFC.EXIF_JPEG

    def _object_info(self, fabric: Fabric, handle: int, parent: int) -> bytes:
        fmt = self._format(fabric, handle)
        head = struct.pack("<IHHIHIIIIIIIHII", 0x00010001, fmt, 0, fabric.size(handle), 0, 0, 0,
                           0, 0, 0, 0, parent, 1 if fmt == OFC.Association else 0, 0, 0)
        return head + raw_string(fabric.name(handle)) + raw_string("20240101T120000") \
            + raw_string("20240101T120000") + raw_string("")

    # -- mutating replies ------------------------------------------------------------------
    def _source(self, data: bytes, length: int | None = None) -> _Bytes:
        return _Bytes(data, length, self.count_out)

    def _data(self, data: bytes) -> Reply:
        return Reply(RC.OK, (), self._source(data))

    def _mutate(self, request: Request, reply: Reply, index: int | None = None) -> Reply:
        muts = self.mutations_for(request.code, RESPONDER_KINDS, index)
        source = reply.data
        data: bytes | None = None
        length: int | None = None
        if source is not None:
            if muts and source.length <= MAX_MUTATED:
                data = source.read(source.length)
            else:
                reply = Reply(reply.code, reply.params,
                              _Counted(source, source.length, self.count_out))
        for m in muts:
            self.applied.append(m)
            rng = random.Random(m.arg)
            if m.kind in ("params_none", "params_garbage", "code", "ok_no_data",
                          "error_with_data"):
                reply = _mutate_response(m.kind, rng, reply)
                if m.kind == "ok_no_data":
                    data = None
                elif m.kind == "error_with_data" and data is None:
                    data = rng.randbytes(rng.randrange(64))
                continue
            if m.kind == "no_data":
                data = None
                reply = Reply(reply.code, reply.params, None)
                continue
            if data is None:
                continue
            if m.kind in ("length_short", "length_long", "length_huge"):
                length = _lie_length(m.kind, rng, len(data))
            else:
                data = mutate_dataset(request.code, m.kind, rng, data,
                                      tuple(request.params))
        if data is not None:
            return Reply(reply.code, reply.params, self._source(data, length))
        if isinstance(reply.data, (_Counted, _Bytes)) or reply.data is None:
            return reply
        return Reply(reply.code, reply.params, _Counted(reply.data, reply.data.length,
                                                        self.count_out))


def _mutate_response(kind: str, rng: random.Random, reply: Reply) -> Reply:
    if kind == "params_none":
        return Reply(reply.code, (), reply.data)
    if kind == "params_garbage":
        return Reply(reply.code, tuple(rng.choice(_HOSTILE_U32) for _ in range(rng.randrange(6))),
                     reply.data)
    if kind == "code":
        return Reply(rng.choice(_CODES), reply.params, reply.data)
    if kind == "ok_no_data":
        return Reply(RC.OK, reply.params, None)
    # error_with_data: an error code, but a data phase anyway
    return Reply(rng.choice((RC.GeneralError, RC.InvalidObjectHandle, RC.AccessDenied)),
                 reply.params, reply.data)


def _lie_length(kind: str, rng: random.Random, n: int) -> int:
    if kind == "length_short":      # announces more than it sends
        return n + rng.choice((1, 3, 512, 1 << 20, 0x7FFFFFFF))
    if kind == "length_long":       # announces less than it has
        return max(0, n - rng.randrange(1, n + 2)) if n else 0
    return rng.choice((0xFFFFFFFF, 0xFFFFFFFE, 1 << 40, (1 << 63) - 1))


def _eos_entry(handle: int, storage: int, fmt: int, size: int, parent: int, name: str,
               size_field: int | None = None) -> bytes:
    """One raw EOS GetObjectInfoEx entry; names that are not short ASCII go in the UTF-8 tail
    (encoded as given: surrogates and NULs included)."""
    raw = name.encode("utf-8", "surrogatepass")
    short = raw[:15].ljust(16, b"\x00")
    tail = b"" if raw == short.rstrip(b"\x00") and len(raw) < 16 and raw.isascii() \
        else raw + b"\x00"
    tail += b"\x00" * (-len(tail) % 4)
    body = struct.pack("<IIHHIIIII", handle, storage, fmt & 0xFFFF, 0,
                       1 if fmt == OFC.Association else 0, 0, size & 0xFFFFFFFF, parent,
                       handle) + short + struct.pack("<I", 1_700_000_000) + tail
    return struct.pack("<I", 4 + len(body) if size_field is None else size_field) + body


def _prop(handle: int, prop: int, datatype: int, value: bytes) -> bytes:
    return struct.pack("<IHH", handle, prop, datatype) + value


# ------------------------------------------------------------------------- dataset mutations
def mutate_dataset(code: int, kind: str, rng: random.Random, data: bytes,
                   params: tuple[int, ...] = ()) -> bytes:
    """Apply one responder-level mutation *kind* to the data phase of operation *code*."""
    n = len(data)
    if kind == "truncate":
        return data[:rng.randrange(n)] if n else data
    if kind == "extend":
        return data + rng.randbytes(rng.choice((1, 2, 3, 4, 9, 100)))
    if kind == "flip":
        buf = bytearray(data)
        for _ in range(rng.randrange(1, 9)):
            if buf:
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if kind == "garbage":
        return rng.randbytes(rng.choice((0, 1, 3, 4, 7, 8, 12, 60, 300, 5000)))
    if kind == "empty":
        return b""
    if code == OC.GetObjectPropList:
        return _mutate_prop_list(kind, rng, data)
    if code in (OC.EOS_GetObjectInfoEx, OC.Canon_GetObjectInfoEx64):
        return _mutate_eos_listing(kind, rng, data)
    if code == OC.EOS_GetEvent:
        return _mutate_eos_events(kind, rng, data)
    if code == OC.GetDevicePropDesc:
        return _mutate_prop_desc(kind, rng, data)
    fields = _fields(code, data)
    if kind == "int_lie":
        ints = [(k, o) for k, o in fields if k in ("u16", "u32", "u64")] or \
            ([("u32", rng.randrange(n - 3))] if n >= 4 else [])
        if not ints:
            return data
        k, off = rng.choice(ints)
        size = {"u16": 2, "u32": 4, "u64": 8}[k]
        value = rng.choice(_HOSTILE_U32).to_bytes(4, "little").ljust(size, b"\xff")[:size]
        return data[:off] + value + data[off + size:]
    if kind in ("array_ff", "count_lie"):
        arrays = [o for k, o in fields if k in ("a16", "a32")] or ([0] if n >= 4 else [])
        if not arrays:
            return data
        off = rng.choice(arrays)
        word = 0xFFFFFFFF if kind == "array_ff" else rng.choice(_HOSTILE_U32)
        return data[:off] + struct.pack("<I", word) + data[off + 4:]
    strings = [o for k, o in fields if k == "str"]
    if kind == "str255":
        if not strings:
            return data[:rng.randrange(n + 1)] + b"\xff"
        off = rng.choice(strings)
        return data[:off] + b"\xff" + rng.randbytes(rng.choice((0, 1, 2, 3, 10)))
    if kind == "surrogate":
        if not strings:
            return data
        off = rng.choice(strings)
        bad = rng.choice(("\ud800", "a\udc00", "\udbff\udbff", "x\ud83d"))
        return data[:off] + raw_string(bad) + data[_string_end(data, off):]
    if code == OC.GetObjectInfo and n >= _OBJECTINFO_NAME + 1:
        if kind == "name":
            off = _OBJECTINFO_NAME
            return data[:off] + raw_string(rng.choice(HOSTILE_NAMES)) + data[_string_end(data, off):]
        if kind in ("parent_self", "parent_other"):
            parent = params[0] if kind == "parent_self" and params else \
                rng.choice((params[0] if params else 0, 0xDEAD, 3, 1, ALL, 0))
            return data[:_OBJECTINFO_PARENT] + struct.pack("<I", parent) \
                + data[_OBJECTINFO_PARENT + 4:]
        if kind == "format_swap":
            fmt = struct.unpack_from("<H", data, _OBJECTINFO_FORMAT)[0]
            new = OFC.EXIF_JPEG if fmt == OFC.Association else OFC.Association
            return data[:_OBJECTINFO_FORMAT] + struct.pack("<H", new) \
                + data[_OBJECTINFO_FORMAT + 2:]
    if code == OC.GetStorageInfo and kind == "name" and strings:
        off = strings[0]
        return data[:off] + raw_string(rng.choice(HOSTILE_NAMES)) + data[_string_end(data, off):]
    return data


def _mutate_prop_list(kind: str, rng: random.Random, data: bytes) -> bytes:
    try:
        entries = decode_prop_list(data)
    except PTPError:
        return data
    raw: list[list[Any]] = []    # [handle, prop, datatype, encoded value]
    for e in entries:
        value = _encode_loose(e.datatype, e.value)
        raw.append([e.handle, e.prop, e.datatype, value])
    if kind == "count_lie" or kind == "array_ff":
        count = 0xFFFFFFFF if kind == "array_ff" else rng.choice(_HOSTILE_U32)
        return struct.pack("<I", count) + data[4:]
    if raw:
        target = rng.choice(raw)
        if kind == "datatype_swap":
            target[2] = rng.choice((DT.UINT8, DT.STR, DT.UINT128, 0x0000, 0x4006, 0x400A, 0xFFFE,
                                    DT.INT64, 0x000B))
        elif kind == "name":
            for r in raw:
                if r[1] == OPC.ObjectFileName:
                    r[3] = raw_string(rng.choice(HOSTILE_NAMES))
        elif kind == "surrogate":
            target[2], target[3] = DT.STR, raw_string("\ud800x")
        elif kind == "str255":
            target[2], target[3] = DT.STR, b"\xff"
        elif kind in ("parent_self", "parent_other"):
            for r in raw:
                if r[1] == OPC.ParentObject:
                    r[3] = struct.pack("<I", r[0] if kind == "parent_self"
                                       else rng.choice((0xDEAD, r[0] + 1, ALL)))
        elif kind == "int_lie":
            target[3] = rng.randbytes(len(target[3]))
        elif kind == "format_swap":
            for r in raw:
                if r[1] == OPC.ObjectFormat:
                    r[3] = struct.pack("<H", OFC.Association)
    return struct.pack("<I", len(raw)) + b"".join(_prop(h, p, d, v) for h, p, d, v in raw)


def _encode_loose(datatype: int, value: Any) -> bytes:
    if datatype == DT.STR:
        return raw_string(str(value))
    from ptpfs.protocol.wire import encode_value
    return encode_value(datatype, value)


def _mutate_eos_listing(kind: str, rng: random.Random, data: bytes) -> bytes:
    if len(data) < 4:
        return data
    count = struct.unpack_from("<I", data)[0]
    if kind in ("count_lie", "array_ff"):
        return struct.pack("<I", 0xFFFFFFFF if kind == "array_ff"
                           else count + rng.choice((1, 2, 100))) + data[4:]
    # walk entries: (offset, size)
    spans, pos = [], 4
    for _ in range(count):
        if pos + 4 > len(data):
            break
        size = struct.unpack_from("<I", data, pos)[0]
        if size < 4 + ENTRY_BODY or pos + size > len(data):
            break
        spans.append((pos, size))
        pos += size
    if not spans:
        return data
    off, size = rng.choice(spans)
    entry = bytearray(data[off:off + size])
    if kind == "entry_size_lie":
        struct.pack_into("<I", entry, 0, rng.choice((0, 3, 4, 55, size + 1, 0xFFFFFFFF)))
    elif kind in ("parent_self", "parent_other"):
        handle = struct.unpack_from("<I", entry, 4)[0]
        struct.pack_into("<I", entry, _EOS_PARENT, handle if kind == "parent_self"
                         else rng.choice((0xDEAD, handle + 1)))
    elif kind == "format_swap":
        struct.pack_into("<H", entry, _EOS_FORMAT, OFC.Association)
    elif kind in ("name", "surrogate", "str255"):
        handle, storage = struct.unpack_from("<II", entry, 4)
        name = rng.choice(HOSTILE_NAMES) if kind == "name" else "\ud800bad"
        new = _eos_entry(handle, storage, struct.unpack_from("<H", entry, _EOS_FORMAT)[0], 10,
                         struct.unpack_from("<I", entry, _EOS_PARENT)[0], name)
        if kind == "str255":       # long-name tail without a terminating NUL
            new = new[:4 + ENTRY_BODY] + b"x" * 8
            new = struct.pack("<I", len(new)) + new[4:]
        entry = bytearray(new)
    elif kind == "int_lie":
        p = rng.randrange(4, len(entry) - 3)
        struct.pack_into("<I", entry, p, rng.choice(_HOSTILE_U32))
    return data[:off] + bytes(entry) + data[off + size:]


def _mutate_eos_events(kind: str, rng: random.Random, data: bytes) -> bytes:
    records = [
        struct.pack("<II", 8 + 4, 0xC187) + struct.pack("<I", 7),                  # removed
        struct.pack("<II", 12, 0xC181) + b"\x01\x02\x03\x04",                     # short added
        struct.pack("<II", 0x28 + 4, 0xC181) + b"\x00" * 0x20 + b"abcd",         # name no NUL
        struct.pack("<II", 0x28 + 4, 0xC181) + b"\x00" * 0x20 + b"\xff\xfe\x00\x00",
        struct.pack("<II", 0xFFFFFFFF, 0xC189),                                    # size lie
        struct.pack("<II", 4, 0xC189),
        struct.pack("<II", 16, 0) + b"\x00" * 8,                                   # bad terminator
        struct.pack("<II", 8, 0xC187),                                             # removed, empty
    ]
    body = b"".join(rng.choice(records) for _ in range(rng.randrange(1, 4)))
    return body + (struct.pack("<II", 8, 0) if rng.random() < 0.5 else b"")


def _mutate_prop_desc(kind: str, rng: random.Random, data: bytes) -> bytes:
    if len(data) < 5:
        return data
    if kind == "datatype_swap":
        dt = rng.choice((DT.STR, DT.UINT8, DT.UINT128, 0x0000, 0x4004, 0xFFFE, 0x4FFF))
        return data[:2] + struct.pack("<H", dt) + data[4:]
    if kind in ("count_lie", "array_ff"):
        # replace the form with an enumeration claiming many values
        return data + b"\x02" + struct.pack("<H", 0xFFFF) + b"\x01"
    if kind == "str255":
        return data[:5] + b"\xff"
    if kind == "surrogate":
        return data[:2] + struct.pack("<H", DT.STR) + data[4:5] + raw_string("\udc00") * 2 + b"\x00"
    if kind == "int_lie":
        return data[:-1] + bytes((rng.choice((3, 7, 0xFF)),))   # unknown form flag
    return data


# ------------------------------------------------------------------------------------- USB
def _usb_classes() -> tuple[type, type]:
    """Hostile subclasses of the simulator's USB backend, built lazily (pyusb import)."""
    from ptpfs.sim import usb_backend as ub

    class HostileUsbDevice(ub.SimUsbDevice):
        """A simulated USB device that corrupts what it queues on bulk IN."""

        hostile: HostileCamera

        def _queue_reply(self, request: Request, reply: Any) -> None:
            hostile = self.hostile
            muts = hostile.mutations_for(request.code, USB_KINDS)
            if not muts:
                super()._queue_reply(request, reply)
                return
            m = muts[0]
            hostile.applied.append(m)
            self._machine.reset()     # the corrupted reply breaks the sequence on purpose
            rng = random.Random(m.arg)
            tid = request.transaction_id
            code = reply.code if reply is not None else RC.GeneralError
            params = tuple(reply.params) if reply is not None else ()
            data = b""
            source = reply.data if reply is not None else None
            if source is not None:
                data = source.read(min(source.length, MAX_MUTATED))
            containers: list[bytes] = []
            dheader = container.encode_header(container.TYPE_DATA, request.code, tid, len(data))
            response = container.encode_response(code, tid, params)
            if m.kind == "usb_data_tid" and source is not None:
                dheader = container.encode_header(container.TYPE_DATA, request.code,
                                                  (tid + 1) & ALL, len(data))
            if m.kind == "usb_data_len_lie" and source is not None:
                lie = rng.choice((0, 11, 12, 13, len(data) + 12 + 1, len(data) + 11,
                                  0xFFFFFFFF, 0xFFFFFFFE, len(data) + 12 + 4096))
                dheader = struct.pack("<I", lie) + dheader[4:]
            if m.kind == "usb_data_twice" and source is not None:
                containers.append(dheader + data)
            if source is not None:
                containers.append(dheader + data)
            if m.kind == "usb_tid":
                response = container.encode_response(code, (tid + rng.randrange(1, 9)) & ALL,
                                                     params)
            elif m.kind == "usb_garbage":
                response = rng.randbytes(rng.choice((1, 5, 12, 16, 40, 600)))
            elif m.kind == "usb_type":
                ctype = rng.choice((container.TYPE_COMMAND, container.TYPE_EVENT,
                                    container.TYPE_DATA, 0, 7, 0xFFFF))
                response = response[:4] + struct.pack("<H", ctype) + response[6:]
            elif m.kind == "usb_len_lie":
                lie = rng.choice((0, 8, 11, len(response) + 1, len(response) - 1, 0xFFFFFFFF))
                response = struct.pack("<I", lie) + response[4:]
            elif m.kind == "usb_short":
                response = response[:rng.randrange(1, 12)]
            elif m.kind == "usb_many_params":
                response = container.encode_header(container.TYPE_RESPONSE, code, tid, 28) \
                    + rng.randbytes(28)
            if m.kind != "usb_no_response":
                containers.append(response)
            if m.kind == "usb_double_response":
                containers.append(response)
            for raw in containers:
                hostile.count_out(len(raw))
                self._queue.append(ub._Outgoing(raw))
            self._in_cond.notify_all()

    class HostileUsbBackend(ub.SimUsbBackend):
        """``SimUsbBackend`` over one :class:`HostileCamera`; raw USB kinds of its plan
        corrupt the containers."""

        def __init__(self, hostile: HostileCamera) -> None:
            import usb.backend
            usb.backend.IBackend.__init__(self)
            device = HostileUsbDevice(hostile, 1, 4)
            device.hostile = hostile
            self.devices = [device]

    return HostileUsbDevice, HostileUsbBackend


def HostileUsbBackend(hostile: HostileCamera) -> Any:  # noqa: N802 - a class factory
    """A pyusb backend presenting *hostile* as a USB camera (see module docstring)."""
    return _usb_classes()[1](hostile)


# ----------------------------------------------------------------------------------- PTP/IP
class _Gone(Exception):
    """The client closed the connection or the server stops."""


class HostilePtpipServer:
    """A one-client-at-a-time PTP/IP responder over *hostile* that corrupts its framing as the
    plan's ``ip_*`` mutations say.  ``start()``, ``port``, ``stop()``.

    It reads through the one packet parser and checks the initiator's data phases with the
    transaction machine; its replies break the sequence on purpose and so bypass the machine.
    Slow modes: ``ip_trickle`` answers the chosen operation with a StartData announcing 4 GiB
    and then one payload byte every *trickle_interval* seconds, for ever; ``ip_trickle_init``
    (any operation) answers InitCommandRequest with an InitCommandAck carrying a
    2,000-character name at the same pace."""

    def __init__(self, hostile: HostileCamera, host: str = "127.0.0.1", *,
                 trickle_interval: float = 1.0) -> None:
        self.hostile = hostile
        #: Seconds between the bytes of a trickled reply (``ip_trickle``, ``ip_trickle_init``).
        self.trickle_interval = trickle_interval
        self._parsers: dict[socket.socket, pk.PacketParser] = {}
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(4)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> HostilePtpipServer:
        self._thread = threading.Thread(target=self._run, name="hostile-ptpip", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for s in list(self._socks) + [self._listener]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HostilePtpipServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing
    def _accept(self) -> socket.socket:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                raise _Gone() from exc
            conn.settimeout(0.1)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self._socks.append(conn)
            return conn
        raise _Gone()

    def _recv(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if self._stop.is_set():
                raise _Gone()
            try:
                got = sock.recv(n - len(buf))
            except TimeoutError:
                continue
            except OSError as exc:
                raise _Gone() from exc
            if not got:
                raise _Gone()
            buf += got
        return bytes(buf)

    def _next(self, sock: socket.socket) -> pk.Packet | pk.DataHeader:
        """The next packet from *sock* (a data packet: its header, see :meth:`_payload`)."""
        parser = self._parsers.setdefault(sock, pk.PacketParser(64 << 20, stream_data=True))
        while True:
            try:
                item = parser.next_packet()
                if item is not None:
                    assert not isinstance(item, pk.DataPayload)
                    return item
                parser.feed(self._recv(sock, parser.wanted()))
            except PTPError:
                raise _Gone() from None

    def _payload(self, sock: socket.socket, n: int) -> bytes:
        data = self._recv(sock, n)
        self._parsers[sock].payload_consumed(n)
        return data

    def _trickle(self, sock: socket.socket, data: bytes | None) -> None:
        """Send *data* (``None``: zero bytes for ever) one byte per ``trickle_interval``
        until done or stopped."""
        i = 0
        while data is None or i < len(data):
            if self._stop.wait(self.trickle_interval if i else 0):
                raise _Gone()
            self._send(sock, b"\x00" if data is None else data[i:i + 1])
            i += 1

    def _send(self, sock: socket.socket, data: bytes, dribble: bool = False) -> None:
        self.hostile.count_out(len(data))
        try:
            if dribble:
                for i in range(0, len(data), 3):
                    sock.sendall(data[i:i + 3])
            else:
                sock.sendall(data)
        except OSError as exc:
            raise _Gone() from exc

    def _run(self) -> None:
        try:
            self._serve()
        except _Gone:
            pass
        except Exception as exc:  # noqa: BLE001 - a harness bug: keep it for the test to see
            self.errors.append(exc)
        finally:
            for sock in list(self._socks):   # hang up, as a device that gives up would
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self) -> None:
        hostile = self.hostile
        cmd = self._accept()
        self._next(cmd)
        if any(m.kind == "ip_trickle_init" for m in hostile.plan.mutations):
            ack = pk.InitCommandAck(1, b"hostile-camera!!", "x" * 2000)
            self._trickle(cmd, pk.encode_packet(ack))
        init = [m for m in hostile.plan.mutations if m.kind in ("ip_init_fail", "ip_init_garbage")]
        if init:
            rng = random.Random(init[0].arg)
            hostile.applied.append(init[0])
            if init[0].kind == "ip_init_fail":
                self._send(cmd, pk.encode_packet(pk.InitFail(rng.choice((1, 2, 3, 0xFFFF)))))
            else:
                self._send(cmd, struct.pack("<II", 8 + 30, pk.TYPE_INIT_COMMAND_ACK)
                           + rng.randbytes(30))
            return
        self._send(cmd, pk.encode_packet(pk.InitCommandAck(1, b"hostile-camera!!", "hostile")))
        evt = self._accept()
        self._next(evt)
        self._send(evt, pk.encode_packet(pk.InitEventAck()))
        if any(m.kind == "ip_event_garbage" for m in hostile.plan.mutations):
            self._send(evt, random.Random(hostile.plan.seed).randbytes(40))
        while not self._stop.is_set():
            op = self._next(cmd)
            if isinstance(op, pk.DataHeader):
                self._payload(cmd, op.payload_length)    # stray data
                continue
            if not isinstance(op, pk.OperationRequest):
                continue            # probe responses, cancels
            request = op.to_request()
            if op.data_phase == pk.DATA_PHASE_SEND or hostile.takes_data(request.code):
                reply = self._receive(cmd, op)
                if reply is None:
                    continue
            else:
                reply = hostile.command(request)
            index = hostile.calls[request.code] - 1
            muts = hostile.mutations_for(request.code, PTPIP_KINDS + PTPIP_SPECIAL_KINDS, index)
            if self._reply(cmd, request, reply, muts[0] if muts else None):
                return

    def _receive(self, sock: socket.socket, op: pk.OperationRequest) -> Reply | None:
        """The initiator's data phase, checked by the transaction machine (``None``: it broke
        the sequence, and the request is dropped)."""
        request = op.to_request()
        machine = Transaction(RESPONDER)
        try:
            machine.receive(ptpip_events(op, DATA_OUT)[0])
            start = self._next(sock)
            events = [] if isinstance(start, pk.DataHeader) else ptpip_events(start)
            if not events or not isinstance(events[0], DataStart):
                return None
            machine.receive(events[0])
            total = machine.data_length
            receiver = self.hostile.begin_data(
                request, pk.UNKNOWN_TOTAL_LENGTH if total is None else total)
            while machine.in_data_phase:
                item = self._next(sock)
                if not isinstance(item, pk.DataHeader):
                    return None
                chunk, *end = ptpip_data_events(item.transaction_id, item.payload_length,
                                                item.end, machine)
                machine.receive(chunk)
                receiver.write(self._payload(sock, item.payload_length))
                for event in end:
                    machine.receive(event)
        except ProtocolError:
            return None
        reply: Reply | None = receiver.finish()
        return reply

    def _reply(self, sock: socket.socket, request: Request, reply: Reply,
               m: Mutation | None) -> bool:
        """Send the reply, corrupted by *m*; ``True`` ends the connection."""
        tid = request.transaction_id
        kind = m.kind if m is not None else ""
        rng = random.Random(m.arg if m is not None else 0)
        if m is not None:
            self.hostile.applied.append(m)
        source = reply.data
        data = source.read(min(source.length, MAX_MUTATED)) if source is not None else None
        dribble = kind == "ip_dribble"
        if kind == "ip_close":
            return True
        if kind == "ip_silence":
            return False
        if kind == "ip_short_header":
            self._send(sock, b"\x10\x00\x00")
            return True
        if kind == "ip_huge_control":
            self._send(sock, struct.pack("<II", rng.choice((0x7FFFFFFF, 70000, 0xFFFFFFFF)),
                                         pk.TYPE_OPERATION_RESPONSE) + b"\x01\x20")
            return True
        if kind == "ip_trickle":
            self._send(sock, pk.encode_packet(pk.StartData(tid, 4 << 30)))
            self._send(sock, pk.encode_packet_header(pk.TYPE_DATA, 4 + (1 << 30))
                       + struct.pack("<I", tid))
            self._trickle(sock, None)
            return True
        if kind == "ip_probe_forever":
            while not self._stop.wait(0.2):
                self._send(sock, pk.encode_packet(pk.ProbeRequest()))
            return True
        if kind == "ip_bad_type":
            self._send(sock, struct.pack("<II", 12, rng.choice((0, 15, 99, 0xFFFFFFFF)))
                       + b"\x00" * 4)
        if kind == "ip_garbage":
            self._send(sock, rng.randbytes(rng.choice((4, 8, 16, 100))))
            return True
        if kind == "ip_unexpected":
            packet = rng.choice((pk.InitEventAck(), pk.InitCommandAck(2, b"x" * 16, "x"),
                                 pk.CancelPacket(tid), pk.ProbeResponse(), pk.InitFail(1),
                                 pk.OperationRequest(1, 0x1001, tid), pk.StartData(tid, 0),
                                 pk.InitEventRequest(1)))
            self._send(sock, pk.encode_packet(packet))
        if kind == "ip_event_on_cmd":
            for _ in range(rng.randrange(1, 5)):
                self._send(sock, pk.encode_packet(pk.EventPacket(0x4002, 0, (1,))))
        if kind == "ip_probe_flood":
            for _ in range(rng.randrange(1, 200)):
                self._send(sock, pk.encode_packet(pk.ProbeRequest()))
        if data is not None:
            start_tid = (tid + 1) & ALL if kind == "ip_tid_start" else tid
            total = len(data)
            if kind == "ip_start_lie":
                total = rng.choice((0, max(0, len(data) - 1), len(data) + 1, len(data) + 4096,
                                    0xFFFFFFFFFFFFFFFF, 1 << 40))
            if kind != "ip_no_start":
                self._send(sock, pk.encode_packet(pk.StartData(start_tid, total)), dribble)
            data_tid = (tid + 1) & ALL if kind == "ip_tid_data" else tid
            payload = struct.pack("<I", data_tid) + data
            length = 8 + len(payload)
            if kind == "ip_data_len_lie":
                length = rng.choice((8, 11, 12, length - 1, length + 1, length + 100))
            self._send(sock, struct.pack("<II", length, pk.TYPE_END_DATA) + payload, dribble)
        resp_tid = (tid + rng.randrange(1, 5)) & ALL if kind == "ip_tid_resp" else tid
        params = tuple(p & ALL for p in reply.params)[:5]
        self._send(sock, pk.encode_packet(pk.OperationResponse(reply.code & 0xFFFF, resp_tid,
                                                               params)), dribble)
        return False
