"""Tests of wslab.foundation.state: the transition table, its enforcement and the history."""

from __future__ import annotations

import itertools

import pytest

from wslab.foundation.errors import InvalidStateTransition
from wslab.foundation.state import TRANSITIONS, ConnectionState, StateMachine, Transition

S = ConnectionState
ALLOWED = {
    (S.CONNECTING, S.OPEN),
    (S.CONNECTING, S.CLOSED),
    (S.OPEN, S.CLOSING),
    (S.OPEN, S.CLOSED),
    (S.CLOSING, S.CLOSED),
}


def test_table_is_exactly_the_rfc_lifecycle() -> None:
    table = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.CLOSED] == frozenset()  # CLOSED is final
    assert [s.value for s in S] == [0, 1, 2, 3]  # the browser's readyState numbers


@pytest.mark.parametrize(("old", "new"), list(itertools.product(S, S)))
def test_every_pair_is_allowed_or_refused_by_the_table(
    old: ConnectionState, new: ConnectionState
) -> None:
    machine = StateMachine(old, now=0.0)
    assert machine.can(new) is ((old, new) in ALLOWED)
    if (old, new) in ALLOWED:
        record = machine.transition(new, now=1.0, cause="test")
        assert record == Transition(old, new, 1.0, "test")
        assert machine.state is new
    else:
        with pytest.raises(InvalidStateTransition) as info:
            machine.transition(new, now=1.0, cause="test")
        assert old.name in info.value.message and new.name in info.value.message
        assert machine.state is old  # a refused transition changes nothing
        assert len(machine.history) == 1


def test_history_records_times_and_causes() -> None:
    machine = StateMachine(now=10.0)
    assert machine.state is S.CONNECTING
    machine.transition(S.OPEN, now=11.0, cause="handshake accepted")
    machine.transition(S.CLOSING, now=15.5, cause="close sent (1000)")
    machine.transition(S.CLOSED, now=16.0, cause="closing handshake complete")
    assert machine.history == (
        Transition(S.CONNECTING, S.CONNECTING, 10.0, "created"),
        Transition(S.CONNECTING, S.OPEN, 11.0, "handshake accepted"),
        Transition(S.OPEN, S.CLOSING, 15.5, "close sent (1000)"),
        Transition(S.CLOSING, S.CLOSED, 16.0, "closing handshake complete"),
    )
    assert repr(machine) == "<StateMachine CLOSED>"


def test_time_in_each_state_with_a_fake_clock() -> None:
    machine = StateMachine(now=0.0)
    machine.transition(S.OPEN, now=2.0, cause="open")
    assert machine.time_in(S.CONNECTING, now=100.0) == 2.0
    assert machine.time_in(S.OPEN, now=7.0) == 5.0  # still open: counted up to ``now``
    machine.transition(S.CLOSED, now=9.0, cause="lost")
    assert machine.time_in(S.OPEN, now=50.0) == 7.0
    assert machine.time_in(S.CLOSING, now=50.0) == 0.0
    assert machine.time_in(S.CLOSED, now=50.0) == 41.0


def test_history_is_bounded_by_the_longest_path() -> None:
    machine = StateMachine(now=0.0)
    for i, state in enumerate([S.OPEN, S.CLOSING, S.CLOSED], start=1):
        machine.transition(state, now=float(i), cause=state.name)
    assert len(machine.history) == 4
    assert machine.history[0].cause == "created"  # nothing was dropped


def test_transition_error_is_an_internal_error_without_close_code() -> None:
    machine = StateMachine(S.CLOSED)
    with pytest.raises(InvalidStateTransition) as info:
        machine.transition(S.OPEN, now=0.0, cause="reopen")
    assert int(info.value.code) == 6  # INTERNAL_ERROR: a bug in the caller
    assert info.value.close_code is None
