"""Checkers for the exercises of chapter 5 (``05_scaling.ipynb``): several hubs, one chat.

Like the other checkers, each ``check_*`` function takes the student's answer (here a function),
tries it on a set of cases, prints a one-line success message when every case is right and raises
:class:`AssertionError` with a hint at the first wrong one. A hint says which case failed and what
is wrong with the answer in the terms of the chapter (a hub that fills up, a duplicate, a user who
never sees the message), never the expected number or set by itself.

- :func:`check_hub_count_exercise` — how many hubs N users need when each hub holds C
  connections and the service must survive losing any one hub;
- :func:`check_broker_targets_exercise` — which hubs the broker must bring a room message to,
  given where the room's members are connected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from .verdicts import exercise, hint, success

__all__ = [
    "BROKER_TARGET_CASES",
    "HUB_COUNT_CASES",
    "Presence",
    "check_broker_targets_exercise",
    "check_hub_count_exercise",
    "hubs_with_members",
]

#: Where users are: hub id -> room -> the user ids connected to that hub and in that room.
#: (Any collection of ids will do for the users: a set, a list, or a dict keyed by user id, as
#: ``hub.chat.presence.local_snapshot()`` returns.)
Presence = Mapping[str, Mapping[str, Collection[str]]]

#: (users, connections one hub holds) pairs the hub-count checker tries, in this order. They
#: include the boundaries where rounding goes wrong: exact multiples of the capacity, one user
#: more, and fewer users than one hub holds.
HUB_COUNT_CASES: tuple[tuple[int, int], ...] = (
    (23_000, 5_000),
    (10_000, 5_000),
    (10_001, 5_000),
    (5_000, 5_000),
    (1, 5_000),
    (1_000_000, 20_000),
    (999_999, 20_000),
)

#: (origin hub, room, presence) cases the broker-target checker tries, in this order.
BROKER_TARGET_CASES: tuple[tuple[str, str, Presence], ...] = (
    (  # members on every hub
        "hub-a",
        "lobby",
        {
            "hub-a": {"lobby": {"alice", "bob"}},
            "hub-b": {"lobby": {"carol"}},
            "hub-c": {"lobby": {"erin"}},
        },
    ),
    (  # hub-c has users, but none in this room
        "hub-a",
        "standup",
        {
            "hub-a": {"lobby": {"alice"}, "standup": {"alice"}},
            "hub-b": {"lobby": {"carol"}, "standup": {"carol", "dave"}},
            "hub-c": {"lobby": {"erin", "frank"}},
        },
    ),
    (  # everyone else in the room is on the sender's own hub
        "hub-b",
        "ops",
        {
            "hub-a": {"lobby": {"alice"}},
            "hub-b": {"ops": {"carol", "dave"}},
            "hub-c": {"lobby": {"erin"}},
        },
    ),
    (  # a room entry left empty once its last member went away
        "hub-c",
        "design",
        {
            "hub-a": {"design": set()},
            "hub-b": {"design": ["dave"]},
            "hub-c": {"design": {"erin": "Erin"}},
            "hub-d": {},
        },
    ),
    (  # five hubs, members on two of the others
        "hub-e",
        "release",
        {
            "hub-a": {"release": {"alice"}},
            "hub-b": {"lobby": {"bob"}},
            "hub-c": {"release": {"carol"}, "lobby": {"carol"}},
            "hub-d": {"lobby": {"dave"}},
            "hub-e": {"release": {"erin"}},
        },
    ),
)


def _call(function: Callable[..., Any], case: str, *args: Any) -> Any:
    """Call the student's function; an exception becomes a hint naming the case."""
    try:
        return function(*args)
    except Exception as error:
        raise hint(f"{case}: it raised {type(error).__name__}: {error}") from error


# -- exercise 1: how many hubs ----------------------------------------------------------------------


def _hubs_needed(users: int, capacity: int) -> int:
    # Enough hubs for everyone, plus one: when any hub stops, its users reconnect to the others.
    return math.ceil(users / capacity) + 1


@exercise('05.hub_count', 'Replace `raise NotImplementedError` in `hubs_needed` with the count, remembering that one hub may be gone.')
def check_hub_count_exercise(hubs_needed: Callable[[int, int], int]) -> None:
    """Check ``hubs_needed(users, capacity)``: the fewest hubs that survive losing any one.

    The exercise: each hub holds at most ``capacity`` connections. How many hubs does a chat with
    ``users`` connected users need so that it keeps everyone connected when any one hub stops
    (its users reconnect to the others)? The checker tries :data:`HUB_COUNT_CASES`.
    """
    if not callable(hubs_needed):
        raise hint(
            f"pass the function itself (hubs_needed, no parentheses), not "
            f"{type(hubs_needed).__name__}."
        )
    for users, capacity in HUB_COUNT_CASES:
        case = f"{users:,} users, {capacity:,} connections per hub"
        answer = _call(hubs_needed, f"hubs_needed({users}, {capacity})", users, capacity)
        if isinstance(answer, bool) or not isinstance(answer, int):
            if isinstance(answer, float):
                raise hint(
                    f"{case}: it returned {answer!r}, a float. "
                    "A hub runs or it doesn't: return a whole number (math.ceil rounds up)."
                )
            raise hint(
                f"{case}: it returned {type(answer).__name__} {answer!r}; return an int, "
                "the number of hubs."
            )
        right = _hubs_needed(users, capacity)
        if answer == right:
            continue
        if answer < 2:
            raise hint(
                f"{case}: {answer} hub(s). With a single hub, stopping it disconnects everyone; "
                "surviving the loss of a hub needs another one to take its users."
            )
        if answer * capacity < users:
            raise hint(
                f"{case}: {answer} hubs hold {answer * capacity:,} connections in all, fewer "
                "than the users, even while every hub is up."
            )
        remaining = answer - 1
        if remaining * capacity < users:
            raise hint(
                f"{case}: {answer} hubs hold everyone while all are up, but when one stops its "
                f"users reconnect to the other {remaining}: {users:,} users on {remaining} hubs "
                f"is {users / remaining:,.0f} per hub, more than {capacity:,}."
            )
        raise hint(
            f"{case}: {answer} hubs is more than needed; with one hub fewer the service still "
            f"survives losing any hub ({users:,} users on {answer - 2} hubs fit). Check how "
            "you round, especially when the users are an exact multiple of the capacity."
        )
    success(
        "N users at C per hub need ceil(N / C) hubs to hold everyone, plus one so that losing "
        "any hub leaves enough room for its users to reconnect elsewhere (N + 1 redundancy)."
    )


# -- exercise 2: which hubs must the broker reach ---------------------------------------------------


def hubs_with_members(origin: str, room: str, presence: Presence) -> set[str]:
    """The hubs other than ``origin`` with at least one member of ``room`` connected.

    These are the hubs a message sent to ``room`` on ``origin`` must reach through the broker:
    the origin hub has delivered to its own clients already, and a hub with nobody in the room
    has nobody to deliver to.
    """
    return {
        hub for hub, rooms in presence.items() if hub != origin and len(rooms.get(room, ())) > 0
    }


def _as_hub_set(answer: object, case: str) -> set[str]:
    if isinstance(answer, (str, bytes)):
        raise hint(
            f"{case}: it returned the string {answer!r}; return a set of hub ids "
            "(a message may have to reach several hubs, or none)."
        )
    if answer is None:
        raise hint(f"{case}: it returned None; did you forget the return statement?")
    if isinstance(answer, Mapping) or not isinstance(answer, Iterable):
        raise hint(f"{case}: it returned {type(answer).__name__}; return a set of hub ids.")
    hubs = set(answer)
    strange = sorted(repr(h) for h in hubs if not isinstance(h, str))
    if strange:
        raise hint(
            f"{case}: the answer holds {', '.join(strange)}; return hub ids (the keys of "
            "presence), not rooms' contents or counts."
        )
    return hubs


def _members(presence: Presence, hub: str, room: str) -> str:
    return ", ".join(sorted(presence[hub].get(room, ()))) or "nobody"


@exercise('05.broker_targets', 'Replace `raise NotImplementedError` in `must_receive` with the set of hubs that need the message.')
def check_broker_targets_exercise(
    must_receive: Callable[[str, str, Presence], Collection[str]],
) -> None:
    """Check ``must_receive(origin, room, presence)``: the hubs the broker must bring a message to.

    The exercise: a member of ``room`` connected to hub ``origin`` sends a message to the room.
    ``presence`` says, per hub, which users of each room are connected there. Return the set of
    hubs that must receive the message through the broker for every member to see it live
    exactly once, and no hub that has no use for it. The checker tries
    :data:`BROKER_TARGET_CASES`.
    """
    if not callable(must_receive):
        raise hint(
            f"pass the function itself (must_receive, no parentheses), not "
            f"{type(must_receive).__name__}."
        )
    everywhere = targeted = 0
    for origin, room, presence in BROKER_TARGET_CASES:
        case = f"a message to {room!r} sent on {origin}"
        answer = _as_hub_set(_call(must_receive, case, origin, room, presence), case)
        right = hubs_with_members(origin, room, presence)
        unknown = sorted(answer - set(presence))
        if unknown:
            raise hint(
                f"{case}: {', '.join(unknown)} is not a hub of this case; the hubs are the "
                "keys of presence."
            )
        if origin in answer:
            raise hint(
                f"{case}: the answer includes {origin} itself. The origin hub delivered the "
                "message to its own clients before publishing it; bringing it back would be the "
                "duplicate each hub's broker skips (origin_hub == its own hub_id)."
            )
        missing = sorted(right - answer)
        if missing:
            hub = missing[0]
            verb = "is" if len(presence[hub].get(room, ())) == 1 else "are"
            raise hint(
                f"{case}: {hub} is missing, and {_members(presence, hub, room)} {verb} in "
                f"{room!r} there. Without the broker those users never see the message live."
            )
        extra = sorted(answer - right)
        if extra:
            hub = extra[0]
            elsewhere = sorted(r for r, users in presence[hub].items() if len(users) > 0)
            where = f"its users are in {', '.join(elsewhere)}" if elsewhere else "no users there"
            raise hint(
                f"{case}: {hub} has nobody in {room!r} ({where}). Sending it the message is "
                "wasted broker and hub work: it would deliver to no one."
            )
        # What a single all-rooms channel costs: the bus hands every message to every hub,
        # the publisher included (it skips its own).
        everywhere += len(presence)
        targeted += len(right)
    success(
        f"over the {len(BROKER_TARGET_CASES)} cases your routing makes {targeted} broker "
        f"deliveries where one channel for all rooms makes {everywhere}: per-room channels, "
        "subscribed only by hubs with members in the room, save the rest."
    )
