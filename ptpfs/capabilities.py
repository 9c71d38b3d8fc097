"""What a device can do, decided once from its DeviceInfo.

Upper layers ask these questions instead of testing vendor IDs or model
names: which listing, partial-read, rename and event mechanisms exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ptpfs.protocol.codes import OC
from ptpfs.protocol.datasets import DeviceInfo


class PartialRead(str, Enum):
    """Partial-read mechanisms, best first (the value is what ``/.ptp`` shows)."""

    OFFSET64 = "64"   # Android GetPartialObject64 (0x95C1): 64-bit offsets
    EOS = "eos"       # Canon EOS GetPartialObject (0x9107) + TransferComplete
    OFFSET32 = "32"   # standard GetPartialObject (0x101B): 32-bit offsets

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)



@dataclass(frozen=True)
class Capabilities:
    """Mechanisms a device offers, derived from its operations list."""

    operations: frozenset[int] = field(repr=False)
    prop_list: bool
    eos_listing: bool
    partial_read: PartialRead | None
    rename: bool
    move: bool
    eos_events: bool
    upload: bool
    delete: bool
    object_props: bool

    @classmethod
    def from_device_info(cls, info: DeviceInfo) -> Capabilities:
        """Derive the capabilities advertised by *info*."""
        ops = frozenset(info.operations_supported)
        if OC.GetPartialObject64 in ops:
            partial: PartialRead | None = PartialRead.OFFSET64
        elif OC.EOS_GetPartialObject in ops and OC.EOS_TransferComplete in ops:
            partial = PartialRead.EOS
        elif OC.GetPartialObject in ops:
            partial = PartialRead.OFFSET32
        else:
            partial = None
        return cls(
            operations=ops,
            prop_list=OC.GetObjectPropList in ops,
            eos_listing=OC.EOS_GetObjectInfoEx in ops,
            partial_read=partial,
            rename=OC.SetObjectPropValue in ops,
            move=OC.MoveObject in ops,
            eos_events=OC.EOS_GetEvent in ops and OC.EOS_SetEventMode in ops,
            upload=OC.SendObjectInfo in ops and OC.SendObject in ops,
            delete=OC.DeleteObject in ops,
            object_props=OC.GetObjectPropValue in ops,
        )

    def supports(self, code: int) -> bool:
        """Whether the device lists operation *code*."""
        return code in self.operations
