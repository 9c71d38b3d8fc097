"""The transaction state machine (ptpfs.protocol.transaction): rules and random event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptpfs.errors import ProtocolError
from ptpfs.protocol.messages import DATA_IN, DATA_OUT, NO_DATA
from ptpfs.protocol.transaction import (
    INITIATOR,
    MAX_EXCESS,
    RESPONDER,
    Cancel,
    Command,
    DataChunk,
    DataEnd,
    DataStart,
    Expect,
    Response,
    Transaction,
    usb_container_event,
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
       st.sampled_from([INITIATOR, RESPONDER]), st.booleans())
def test_random_sequences_raise_only_protocol_error(
        seq: list[tuple[bool, bool, object]], role: object, tolerant: bool) -> None:
    m = Transaction(role, tolerant=tolerant)  # type: ignore[arg-type]
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


# ------------------------------------------------------------------ wrong-length data phases
@settings(max_examples=300, deadline=None)
@given(st.integers(0, 3 * MAX_EXCESS), st.lists(st.integers(0, MAX_EXCESS), max_size=4),
       st.booleans(), st.booleans())
def test_tolerant_initiator_takes_wrong_length_data_like_libgphoto2(
        announced: int, chunks: list[int], tolerant: bool, end: bool) -> None:
    """A responder's data phase of *announced* bytes that carries sum(chunks): a tolerant
    initiator takes a short one (ended by DataEnd) and discards up to MAX_EXCESS surplus
    bytes; a strict one, and any surplus past the bound, is a ProtocolError."""
    m = Transaction(INITIATOR, tolerant=tolerant)
    m.send(Command(0x1008, 7, (1,)))
    m.receive(DataStart(7, announced))
    sent = sum(chunks)
    try:
        for size in chunks:
            m.receive(DataChunk(size))
        if end:
            m.receive(DataEnd())
        m.receive(Response(OK, 7))
    except ProtocolError:
        ok = False
    else:
        ok = True
    exact = sent == announced
    short_ok = sent < announced and end
    long_ok = sent > announced and sent - announced <= MAX_EXCESS
    assert ok == (exact or (tolerant and (short_ok or long_ok)))
    if ok:
        assert m.idle
    elif not exact and not tolerant:
        assert not m.idle                    # the strict machine stopped at the bad event


def test_tolerant_counts_are_exposed_until_the_response() -> None:
    m = Transaction(INITIATOR, tolerant=True)
    m.send(Command(0x1008, 1))
    m.receive(DataStart(1, 100))
    m.receive(DataChunk(60))
    m.receive(DataEnd())
    assert (m.data_done, m.data_short, m.expecting) == (60, 40, Expect.RESPONSE)
    m.receive(Response(OK, 1))
    m.send(Command(0x1008, 2))
    m.receive(DataStart(2, 10))
    m.receive(DataChunk(14))                  # 4 stray bytes in the same transfer
    m.receive(DataChunk(512))                 # and a stray packet after it
    assert (m.data_done, m.data_excess, m.data_short) == (10, 516, 0)
    m.receive(Response(OK, 2))
    assert m.idle and m.data_excess == 0


def test_host_to_device_data_is_always_held_to_its_length() -> None:
    """Tolerance is for what a device sends; an initiator never sends a wrong length, and
    a responder machine never takes one."""
    for machine in (Transaction(INITIATOR, tolerant=True), Transaction(RESPONDER, tolerant=True)):
        own = machine.send if machine.role is INITIATOR else machine.receive
        own(Command(0x100D, 3, (), DATA_OUT))
        own(DataStart(3, 8))
        with pytest.raises(ProtocolError, match="more than the 8 announced"):
            own(DataChunk(9))
        own(DataChunk(4))
        with pytest.raises(ProtocolError, match="after 4 of the 8"):
            own(DataEnd())


def test_unknown_length_data_has_no_excess() -> None:
    m = Transaction(INITIATOR, tolerant=True)
    m.send(Command(0x1009, 5))
    m.receive(DataStart(5, None))
    m.receive(DataChunk(100))
    m.receive(DataEnd())
    with pytest.raises(ProtocolError, match="data bytes while waiting for response"):
        m.receive(DataChunk(4))


@given(st.binary(max_size=40), st.integers(0, 0xFFFFFFFF))
def test_is_response_for_agrees_with_the_container_decoder(data: bytes, tid: int) -> None:
    """How the USB pump tells a device's response from more data (container.is_response_for)
    says yes exactly when the decoder reads a whole response of that transaction."""
    from ptpfs.protocol.container import is_response_for
    try:
        event = usb_container_event(data)
    except ProtocolError:
        expected = False
    else:
        expected = isinstance(event, Response) and event.transaction_id == tid
    assert is_response_for(data, tid) == expected
