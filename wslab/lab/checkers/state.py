"""Checker for the exercise of chapter 2 (``02_state_machine.ipynb``): predict a connection's life.

The exercise describes a few scenarios — a polite goodbye, a hub shutting down, a cable pulled,
a refused upgrade... — and asks, for one side of each connection, the states it goes through
and the close code it reports in the end (what a browser's ``CloseEvent.code`` would say).

:func:`check_state_exercise` replays every scenario on wslab's own sans-I/O engine (a client
and a server :class:`~wslab.foundation.protocol.Protocol` on a fake clock, the bytes carried by
hand) and compares. The engine has the last word; a hint says what is wrong with an answer in
terms of the rules (which frame crossed, which section of RFC 6455), never the answer itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from wslab.foundation.codes import CloseCode
from wslab.foundation.protocol import Protocol, Role
from wslab.foundation.state import TRANSITIONS, ConnectionState
from wslab.testing import FakeClock, fixed_mask

from .verdicts import exercise, hint, success

__all__ = ["STATE_SCENARIOS", "Scenario", "check_state_exercise"]


@dataclass(frozen=True)
class Scenario:
    """One situation of the exercise: what happens, and which side the answer is about."""

    description: str
    side: str  # "client" or "server"


#: The scenarios of the exercise, by name. The answer gives, for each, the states the named
#: side goes through (from the first to the last) and the close code it reports at the end.
STATE_SCENARIOS: dict[str, Scenario] = {
    "client_says_goodbye": Scenario(
        "The client sends a close frame with 1000 (normal closure); the server answers with its "
        "own close frame and closes the TCP connection.",
        "client",
    ),
    "hub_shuts_down": Scenario(
        "The hub is shutting down: it sends a close frame with 1001 (going away); the client "
        "answers, and the hub closes the TCP connection.",
        "client",
    ),
    "cable_pulled": Scenario(
        "After a few messages, the client's network cable is pulled: the server's TCP connection "
        "ends without any close frame.",
        "server",
    ),
    "upgrade_refused": Scenario(
        "The client sends its upgrade request; the server refuses it with HTTP 403 and closes "
        "the TCP connection.",
        "client",
    ),
    "close_without_a_code": Scenario(
        "The client sends a close frame with an empty payload (no status code); the server "
        "answers and closes the TCP connection.",
        "server",
    ),
    "both_close_at_once": Scenario(
        "Both ends decide to close at the same moment — the client with 1000, the server with "
        "1001 — so the two close frames cross on the wire; then the server closes TCP.",
        "client",
    ),
}

_S = ConnectionState


# -- the scenarios, replayed on the engine ----------------------------------------------------------


def _pair(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client = Protocol(Role.CLIENT, clock=clock, mask_key_factory=fixed_mask())
    server = Protocol(Role.SERVER, clock=clock)
    return client, server


def _open(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _pair(clock)
    clock.advance(0.01)
    server.open()  # the 101 went out
    client.open()  # the 101 came in and checks out
    return client, server


def _client_says_goodbye(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _open(clock)
    server.receive_data(client.send_close(CloseCode.NORMAL_CLOSURE))
    client.receive_data(server.data_to_send())  # the echo
    server.connection_lost()  # RFC 6455 7.1.1: the server closes TCP first
    client.connection_lost()
    return client, server


def _hub_shuts_down(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _open(clock)
    client.receive_data(server.send_close(CloseCode.GOING_AWAY, "hub shutting down"))
    server.receive_data(client.data_to_send())
    server.connection_lost()
    client.connection_lost()
    return client, server


def _cable_pulled(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _open(clock)
    for text in ("hello", "anyone?"):
        server.receive_data(client.send_text(text))
    server.connection_lost()  # the kernel gave up on the peer: no close frame ever came
    client.connection_lost()
    return client, server


def _upgrade_refused(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _pair(clock)
    clock.advance(0.01)
    client.connection_lost()  # the 403 came, then the end of the TCP connection
    server.connection_lost()
    return client, server


def _close_without_a_code(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _open(clock)
    server.receive_data(client.send_close(None))
    client.receive_data(server.data_to_send())
    server.connection_lost()
    client.connection_lost()
    return client, server


def _both_close_at_once(clock: FakeClock) -> tuple[Protocol, Protocol]:
    client, server = _open(clock)
    from_client = client.send_close(CloseCode.NORMAL_CLOSURE)
    from_server = server.send_close(CloseCode.GOING_AWAY)
    client.receive_data(from_server)
    server.receive_data(from_client)
    server.connection_lost()
    client.connection_lost()
    return client, server


_REPLAYS: dict[str, Callable[[FakeClock], tuple[Protocol, Protocol]]] = {
    "client_says_goodbye": _client_says_goodbye,
    "hub_shuts_down": _hub_shuts_down,
    "cable_pulled": _cable_pulled,
    "upgrade_refused": _upgrade_refused,
    "close_without_a_code": _close_without_a_code,
    "both_close_at_once": _both_close_at_once,
}


@dataclass(frozen=True)
class _Outcome:
    states: tuple[ConnectionState, ...]
    code: int
    sent_code: int | None
    received_code: int | None
    started_close: bool  # this end sent the first close frame


def _replay(name: str) -> _Outcome:
    client, server = _REPLAYS[name](FakeClock())
    side = client if STATE_SCENARIOS[name].side == "client" else server
    history = side.machine.history
    states = (history[0].new, *(t.new for t in history[1:]))
    sent, received = side.close_sent, side.close_received
    return _Outcome(
        states=states,
        code=side.close_code,
        sent_code=sent[0] if sent else None,
        received_code=received[0] if received else None,
        started_close=side.closed_locally,
    )


# -- checking an answer ----------------------------------------------------------------------------


def _state_of(value: object, where: str) -> ConnectionState:
    if isinstance(value, ConnectionState):
        return value
    if isinstance(value, str) and value.strip().upper() in ConnectionState.__members__:
        return ConnectionState[value.strip().upper()]
    names = ", ".join(ConnectionState.__members__)
    raise hint(f"{where}: {value!r} is not a state; use the four names {names}.")


def _parse(name: str, answer: object) -> tuple[tuple[ConnectionState, ...], object]:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise hint(
            f"{name}: give a pair (states, close_code), e.g. ([...], 1000); got {answer!r}."
        )
    states, code = answer
    if isinstance(states, (str, bytes)) or not isinstance(states, Sequence):
        raise hint(f"{name}: the states must be a list of state names, got {states!r}.")
    return tuple(_state_of(s, name) for s in states), code


def _states_hint(name: str, given: tuple[ConnectionState, ...], want: _Outcome) -> str | None:
    side = STATE_SCENARIOS[name].side
    if not given:
        return f"{name}: the list of states is empty."
    if given[0] is not _S.CONNECTING:
        return (
            f"{name}: your sequence starts with {given[0].name}. Where is every connection "
            "before its opening handshake completes? (RFC 6455 4.1, the browser's readyState 0)"
        )
    if given[-1] is not _S.CLOSED:
        return (
            f"{name}: your sequence ends in {given[-1].name}. In every scenario the TCP "
            "connection ends at last: what is the state after that? (RFC 6455 7.1.4)"
        )
    for old, new in itertools.pairwise(given):
        if new not in TRANSITIONS[old]:
            return (
                f"{name}: {old.name} -> {new.name} is not in the transition table "
                "(wslab.foundation.state.TRANSITIONS). Each state appears once, in order."
            )
    if _S.OPEN in want.states and _S.OPEN not in given:
        return f"{name}: the opening handshake did succeed here: which state follows it?"
    if _S.OPEN not in want.states and _S.OPEN in given:
        return (
            f"{name}: your {side} reaches OPEN, but the server refused the upgrade: the "
            "connection never opens (RFC 6455 4.1: the client fails the connection)."
        )
    if _S.CLOSING in want.states and _S.CLOSING not in given:
        what = "sent" if want.started_close else "received"
        return (
            f"{name}: your {side} goes from OPEN straight to CLOSED, but it {what} a close "
            "frame before TCP ended. Which state does sending or receiving a close frame lead "
            "to? (RFC 6455 7.1.2, 7.1.3)"
        )
    if _S.CLOSING not in want.states and _S.CLOSING in given:
        return (
            f"{name}: your {side} goes through CLOSING, but no close frame was sent or received "
            "by it: the closing handshake never started. (RFC 6455 7.1.5)"
        )
    return None  # pragma: no cover - the checks above cover every difference


def _code_hint(name: str, given: object, want: _Outcome) -> str:
    side = STATE_SCENARIOS[name].side
    if not isinstance(given, int) or isinstance(given, bool):
        return f"{name}: the close code must be an int (like 1000), got {given!r}."
    if want.received_code is None:
        return (
            f"{name}: no close frame ever reached the {side}. Which code does the API report "
            "when the TCP connection ends without one? (RFC 6455 7.1.5, 7.4.1)"
        )
    if want.received_code == CloseCode.NO_STATUS_RCVD:
        return (
            f"{name}: a close frame did arrive, but with no status code in it. RFC 6455 7.1.5 "
            "and 7.4.1 name a code for exactly that case (one that is never sent on the wire)."
        )
    if given == want.sent_code:
        return (
            f"{name}: {given} is the code the {side} itself sent. Which one does an end report: "
            "the code it sent, or the one in the close frame it received? (RFC 6455 7.1.5)"
        )
    return (
        f"{name}: {given} is not what the {side} reports. It reports the status code of the "
        "close frame it received (RFC 6455 7.1.5): what did the other end put in its frame?"
    )


@exercise('02.state', 'Replace each `...` with (list of states, close code) for that scenario.')
def check_state_exercise(answers: Mapping[str, object]) -> None:
    """Check predictions for every scenario of :data:`STATE_SCENARIOS`.

    ``answers`` maps each scenario's name to ``(states, close_code)``: the states the scenario's
    side goes through, first to last, as names (``"OPEN"``) or :class:`ConnectionState` members,
    and the close code that side reports at the end. Prints a success line when all of them
    match wslab's engine; raises :class:`AssertionError` with a hint at the first that does not.
    """
    if not isinstance(answers, Mapping):
        raise hint(f"expected a dict of scenario name -> (states, code), got {answers!r}.")
    unknown = sorted(set(map(str, answers)) - set(STATE_SCENARIOS))
    if unknown:
        raise hint(f"unknown scenario(s) {unknown}; the names are {list(STATE_SCENARIOS)}.")
    missing = [name for name in STATE_SCENARIOS if name not in answers]
    if missing:
        raise hint(f"no answer yet for {missing}.")
    for name in STATE_SCENARIOS:
        states, code = _parse(name, answers[name])
        want = _replay(name)
        if states != want.states:
            raise hint(_states_hint(name, states, want) or f"{name}: check the states again.")
        if code != want.code or isinstance(code, bool):
            raise hint(_code_hint(name, code, want))
    success(
        f"all {len(STATE_SCENARIOS)} scenarios match what wslab's engine does, state by state "
        "and code by code."
    )
