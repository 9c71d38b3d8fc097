"""The transaction state machine (ptpfs.protocol.transaction): rules and random event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptpfs.errors import ProtocolError
from ptpfs.protocol.messages import DATA_IN, DATA_OUT, NO_DATA
from ptpfs.protocol.transaction import (
    INITIATOR,
    RESPONDER,
    Cancel,
    Command,
    DataChunk,
    DataEnd,
    DataStart,
    Expect,
    Response,
    Transaction,
)

OK = 0x2001


def both() -> tuple[Transaction, Transaction]:
    return Transaction(INITIATOR), Transaction(RESPONDER)


def step(i: Transaction, r: Transaction, by_initiator: bool, event: object) -> None:
    """Deliver one event to both sides, as originator and as receiver."""
    if by_initiator:
        i.send(event)  # type: ignore[arg-type]
        r.receive(event)  # type: ignore[arg-type]
    else:
        r.send(event)  # type: ignore[arg-type]
        i.receive(event)  # type: ignore[arg-type]


def test_data_in_transaction() -> None:
    i, r = both()
    step(i, r, True, Command(0x1009, 5, (7,), DATA_IN))
    assert i.expecting is Expect.DATA_IN_OR_RESPONSE
    step(i, r, False, DataStart(5, 10))
    step(i, r, False, DataChunk(4))
    assert i.data_remaining == 6
    step(i, r, False, DataChunk(6))
    assert i.expecting is Expect.RESPONSE and r.expecting is Expect.RESPONSE
    step(i, r, False, Response(OK, 5))
    assert i.idle and r.idle


def test_data_out_transaction_and_unknown_length() -> None:
    i, r = both()
    step(i, r, True, Command(0x100D, 1, (), DATA_OUT))
    step(i, r, True, DataStart(1, None))
    step(i, r, True, DataChunk(1 << 20))
    step(i, r, True, DataEnd())
    step(i, r, False, Response(OK, 1))
    assert i.idle


def test_no_data_transaction() -> None:
    i, r = both()
    step(i, r, True, Command(0x1002, 0, (1,)))
    step(i, r, False, Response(OK, 0))
    assert i.idle


@pytest.mark.parametrize("events, message", [
    ([Command(0x1001, 3), Response(OK, 4)], "transaction ID 4, expected 3"),
    ([Command(0x1001, 3), DataStart(9, 4)], "data with transaction ID 9"),
    ([Command(0x1001, 3), DataStart(3, 4), DataChunk(5)], "more than the 4 announced"),
    ([Command(0x1001, 3), DataStart(3, 4), DataChunk(2), DataEnd()], "after 2 of the 4"),
    ([Command(0x1001, 3), DataStart(3, 4), Response(OK, 3)], "response while waiting for data"),
    ([Response(OK, 0)], "response while waiting for command"),
    ([DataChunk(3)], "data bytes while waiting for command"),
])
def test_initiator_rejects_bad_replies(events: list[object], message: str) -> None:
    events = list(events)
    m = Transaction(INITIATOR)
    if isinstance(events[0], Command):
        m.send(events.pop(0))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match=message):
        for e in events:
            m.receive(e)  # type: ignore[arg-type]


def test_direction_is_enforced() -> None:
    m = Transaction(INITIATOR)
    m.send(Command(0x100D, 1, (), DATA_OUT))
    with pytest.raises(ProtocolError, match="wrong direction"):
        m.receive(DataStart(1, 5))          # the device may not send data for SendObject
    r = Transaction(RESPONDER)
    r.receive(Command(0x1009, 1, (), NO_DATA))
    with pytest.raises(ProtocolError, match="wrong direction"):
        r.receive(DataStart(1, 5))
    with pytest.raises(ProtocolError, match="responder sent a command"):
        Transaction(INITIATOR).receive(Command(0x1001, 0))


def test_responder_may_refuse_data_out_early_and_cancel_resets() -> None:
    i, r = both()
    step(i, r, True, Command(0x100D, 2, (), DATA_OUT))
    step(i, r, False, Response(0x200F, 2))       # AccessDenied before any data
    assert i.idle
    step(i, r, True, Command(0x1009, 3))
    step(i, r, False, DataStart(3, 100))
    step(i, r, True, Cancel(3))
    assert i.idle and r.idle
    step(i, r, True, Command(0x1001, 4))         # the link carries on


# ------------------------------------------------------------------ random sequences
_events = st.one_of(
    st.builds(Command, st.sampled_from([0x1001, 0x1009, 0x100D]), st.integers(0, 3),
              st.just(()), st.sampled_from([NO_DATA, DATA_IN, DATA_OUT])),
    st.builds(DataStart, st.integers(0, 3), st.none() | st.integers(0, 20)),
    st.builds(DataChunk, st.integers(0, 25)),
    st.just(DataEnd()),
    st.builds(Response, st.just(OK), st.integers(0, 3)),
    st.builds(Cancel, st.none() | st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), _events), max_size=30),
       st.sampled_from([INITIATOR, RESPONDER]))
def test_random_sequences_raise_only_protocol_error(
        seq: list[tuple[bool, bool, object]], role: object) -> None:
    m = Transaction(role)  # type: ignore[arg-type]
    for outgoing, _, event in seq:
        try:
            (m.send if outgoing else m.receive)(event)  # type: ignore[arg-type]
        except ProtocolError:
            m.reset()
        assert m.expecting in Expect


@st.composite
def _valid_transaction(draw: st.DrawFn, tid: int) -> list[tuple[bool, object]]:
    """One well-formed transaction as (sent by initiator?, event) pairs."""
    direction = draw(st.sampled_from([NO_DATA, DATA_IN, DATA_OUT]))
    out: list[tuple[bool, object]] = [(True, Command(0x1009, tid, (), direction))]
    by_init = direction == DATA_OUT
    if draw(st.booleans()):
        known = draw(st.booleans())
        chunks = draw(st.lists(st.integers(0, 1000), max_size=5))
        out.append((by_init, DataStart(tid, sum(chunks) if known else None)))
        out.extend((by_init, DataChunk(c)) for c in chunks)
        if not known or draw(st.booleans()):
            out.append((by_init, DataEnd()))
    out.append((False, Response(OK, tid, ())))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=5).flatmap(
    lambda tids: st.tuples(*[_valid_transaction(t) for t in tids])))
def test_valid_sequences_are_accepted(transactions: tuple[list[tuple[bool, object]], ...]) -> None:
    i, r = both()
    for transaction in transactions:
        for by_init, event in transaction:
            step(i, r, by_init, event)
        assert i.idle and r.idle
