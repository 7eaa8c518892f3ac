"""The connection state machine of RFC 6455, as a table.

The rules, in one place (RFC 6455 sections 4, 5.5.1, 7)::

    CONNECTING --handshake accepted-------------------> OPEN
    CONNECTING --handshake refused / transport lost---> CLOSED
    OPEN       --close frame sent or received---------> CLOSING
    OPEN       --transport lost (no close handshake)--> CLOSED
    CLOSING    --transport closed --------------------> CLOSED

Every other transition is a bug in the caller and raises :class:`InvalidStateTransition`.
CLOSED is final. Each transition is recorded with the time it happened and its cause, so that
the notebooks can draw a connection's life and the tests can assert it. Time is passed in by the
caller (``now``) rather than read from a clock, so a fake clock can drive the machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import InvalidStateTransition

__all__ = ["TRANSITIONS", "ConnectionState", "StateMachine", "Transition"]


class ConnectionState(enum.Enum):
    """The four states of a WebSocket connection (the ``readyState`` of the browser API)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


_S = ConnectionState

#: Allowed transitions: state -> the states it may move to.
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    _S.CONNECTING: frozenset({_S.OPEN, _S.CLOSED}),
    _S.OPEN: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change of state."""

    old: ConnectionState
    new: ConnectionState
    at: float
    cause: str


class StateMachine:
    """Holds a connection's state, enforces :data:`TRANSITIONS` and records the history.

    The history is bounded by construction: the table has no cycles, so a connection makes at
    most three transitions (plus the initial entry).
    """

    # One per connection: slots keep thousands of them small.
    __slots__ = ("_history", "_state")

    def __init__(
        self, initial: ConnectionState = ConnectionState.CONNECTING, *, now: float = 0.0
    ) -> None:
        self._state = initial
        # A list, not a deque: bounded by the table already, and a few hundred bytes smaller,
        # which thousands of connections held at once notice.
        self._history: list[Transition] = [Transition(initial, initial, now, "created")]

    @property
    def state(self) -> ConnectionState:
        """The current state."""
        return self._state

    @property
    def history(self) -> tuple[Transition, ...]:
        """Every transition so far, oldest first; the first entry records the creation."""
        return tuple(self._history)

    def can(self, new: ConnectionState) -> bool:
        """True if the table allows moving from the current state to ``new``."""
        return new in TRANSITIONS[self._state]

    def transition(self, new: ConnectionState, *, now: float, cause: str) -> Transition:
        """Move to ``new``; raise :class:`InvalidStateTransition` if the table forbids it."""
        old = self._state
        if new not in TRANSITIONS[old]:
            raise InvalidStateTransition(f"cannot go from {old.name} to {new.name} ({cause})")
        self._state = new
        record = Transition(old, new, now, cause)
        self._history.append(record)
        return record

    def time_in(self, state: ConnectionState, *, now: float) -> float:
        """Seconds spent in ``state`` (up to ``now`` if it is the current one)."""
        total = 0.0
        entries = list(self._history)
        for i, entry in enumerate(entries):
            if entry.new is not state:
                continue
            end = entries[i + 1].at if i + 1 < len(entries) else now
            total += end - entry.at
        return total

    def __repr__(self) -> str:
        return f"<StateMachine {self._state.name}>"
