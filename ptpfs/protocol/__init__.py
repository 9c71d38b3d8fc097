"""The pure PTP codec: bytes in, objects out, no I/O (in the spirit of h11).

Submodules: ``codes`` (code tables and names), ``wire`` (primitives), ``datasets`` (DeviceInfo,
StorageInfo, ObjectInfo, DevicePropDesc, MTP property lists), ``eos`` (Canon EOS datasets),
``container`` (USB generic container), ``ptpip`` (PTP/IP packets and stream parser), ``messages``.
"""

from .codes import (
                    DPC,
                    DT,
                    EC,
                    OC,
                    OFC,
                    OPC,
                    RC,
                    datatype_name,
                    event_name,
                    format_for_filename,
                    format_name,
                    object_prop_name,
                    operation_name,
                    property_name,
                    render,
                    response_name,
)
from .datasets import (
                    DeviceInfo,
                    DevicePropDesc,
                    ObjectInfo,
                    ObjectPropEntry,
                    PropEnum,
                    PropRange,
                    StorageInfo,
                    decode_prop_list,
                    decode_u16_array,
                    decode_u32_array,
                    encode_prop_list,
                    encode_u16_array,
                    encode_u32_array,
)
from .eos import (
                    EOSEvent,
                    EOSObjectEntry,
                    decode_eos_events,
                    decode_object_info_ex,
                    encode_eos_events,
                    encode_object_info_ex,
)
from .messages import DATA_IN, DATA_OUT, NO_DATA, Event, Request, Response
from .wire import Reader, Writer, decode_value, encode_value, format_datetime, parse_datetime

__all__ = [
    "DPC", "DT", "EC", "OC", "OFC", "OPC", "RC", "datatype_name", "event_name", "format_for_filename",
    "format_name", "object_prop_name", "operation_name", "property_name", "render", "response_name",
    "DeviceInfo", "DevicePropDesc", "ObjectInfo", "ObjectPropEntry", "PropEnum", "PropRange",
    "StorageInfo", "decode_prop_list", "decode_u16_array", "decode_u32_array", "encode_prop_list",
    "encode_u16_array", "encode_u32_array",
    "EOSEvent", "EOSObjectEntry", "decode_eos_events", "decode_object_info_ex", "encode_eos_events",
    "encode_object_info_ex",
    "DATA_IN", "DATA_OUT", "NO_DATA", "Event", "Request", "Response",
    "Reader", "Writer", "decode_value", "encode_value", "format_datetime", "parse_datetime",
]
