"""Transport-neutral PTP messages: a request, a response, an event."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Data-phase directions of a transaction.
NO_DATA = 0
DATA_IN = 1   # device -> host
DATA_OUT = 2  # host -> device


@dataclass(frozen=True)
class Request:
    """An operation request: code, transaction ID and up to five parameters."""

    code: int
    transaction_id: int
    params: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Response:
    """The device's answer to a request."""

    code: int
    transaction_id: int
    params: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Event:
    """An asynchronous event from the device."""

    code: int
    transaction_id: int = 0
    params: tuple[int, ...] = field(default_factory=tuple)
