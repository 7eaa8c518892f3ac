"""Checkers for the exercises of chapter 4 (``04_messaging_patterns.ipynb``): delivery guarantees.

Like :mod:`wslab.lab.checkers`, each ``check_*`` function prints a one-line success message when
the answer is right and raises :class:`AssertionError` with a hint when it is not; a hint names
what is wrong and why, never the expected answer itself.

- :func:`check_gap_request_exercise` — the ``chat:history`` request that fetches the messages a
  client missed. The hub's own validator has the first word (a request it would refuse with
  ``INVALID_INPUT`` is refused here with the same message); which messages the request returns
  follows the store's paging rules (``since_seq`` pages forward, ``before_seq`` and no cursor
  page backward, ``limit`` messages at most).
- :func:`check_delivery_exercise` — ``deliver(last_seq, incoming)``, the merge a client does
  after a reconnect: every message once, in ``seq`` order, nothing already shown, and nothing
  beyond a gap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wslab.application.validation import DEFAULT_ROOM, validate
from wslab.foundation.errors import ValidationError

from .verdicts import exercise, hint, success

__all__ = [
    "GAP_EXERCISE_LATEST",
    "GAP_EXERCISE_RECEIVED",
    "GAP_EXERCISE_ROOM",
    "check_delivery_exercise",
    "check_gap_request_exercise",
]

#: The room of the gap exercise.
GAP_EXERCISE_ROOM = DEFAULT_ROOM
#: The ``seq`` values the client of the gap exercise received live, in the order they came.
GAP_EXERCISE_RECEIVED = (1, 2, 3, 4, 7, 8)
#: The newest ``seq`` of the room in the gap exercise: the store holds 1..8.
GAP_EXERCISE_LATEST = 8


# -- exercise 1: the request that fills a gap ------------------------------------------------------


def _missing(received: Sequence[int], latest: int) -> list[int]:
    have = set(received)
    return [seq for seq in range(1, latest + 1) if seq not in have]


def _contiguous_until(received: Sequence[int]) -> int:
    """The last seq up to which nothing is missing (what a client remembers as ``last_seq``)."""
    have, last = set(received), 0
    while last + 1 in have:
        last += 1
    return last


def _page(fields: Mapping[str, Any], latest: int) -> list[int]:
    """The seqs a store holding 1..latest returns for a validated ``chat:history`` request."""
    stored = list(range(1, latest + 1))
    limit = fields["limit"]
    if fields["since_seq"] is not None:
        return [seq for seq in stored if seq > fields["since_seq"]][:limit]
    if fields["before_seq"] is not None:
        older = [seq for seq in stored if seq < fields["before_seq"]]
        return older[-limit:]
    return stored[-limit:]


def _as_request(request: object) -> dict[str, Any]:
    if isinstance(request, (str, bytes)):
        try:
            request = json.loads(request)
        except ValueError:
            raise hint(
                "that is text but not JSON; write the request as a dict, "
                '{"type": "chat:history", ...}.'
            ) from None
    if not isinstance(request, Mapping):
        raise hint(f"expected a dict (one JSON object), got {type(request).__name__}.")
    return dict(request)


@exercise('04.gap_request', 'Replace `...` with the `chat:history` request, as a dict.')
def check_gap_request_exercise(request: object) -> None:
    """Check the ``chat:history`` request that fetches what the client missed.

    The situation: in ``lobby`` a client received the messages with ``seq``
    :data:`GAP_EXERCISE_RECEIVED` (1, 2, 3, 4, 7, 8); the room holds 1..8. The request must be one
    the hub accepts, ask for ``lobby``, and return every missing message without fetching again
    the ones the client had before the gap. Getting 7 and 8 a second time is fine: the client
    drops them as duplicates.
    """
    body = _as_request(request)
    if body.get("type") != "chat:history":
        raise hint(
            f"the type is {body.get('type')!r}; which request type of the protocol asks the hub "
            "for stored messages?"
        )
    fields = {k: v for k, v in body.items() if k not in ("type", "ref", "version")}
    try:
        clean = validate("chat:history", fields)
    except ValidationError as error:
        raise hint(f"the hub would refuse it with INVALID_INPUT: {error.message}") from None
    if clean["with_user"] is not None:
        raise hint("with_user asks for a direct conversation; the gap is in a room.")
    if clean["room"] != GAP_EXERCISE_ROOM:
        raise hint(f"that asks for room {clean['room']!r}; the gap is in {GAP_EXERCISE_ROOM!r}.")
    got = _page(clean, GAP_EXERCISE_LATEST)
    missing = _missing(GAP_EXERCISE_RECEIVED, GAP_EXERCISE_LATEST)
    have_before_gap = _contiguous_until(GAP_EXERCISE_RECEIVED)
    not_fetched = [seq for seq in missing if seq not in got]
    if not_fetched:
        raise hint(
            f"the hub would return seq {got or 'nothing'}, so {not_fetched} stay missing. "
            + _cursor_hint(clean)
        )
    again = [seq for seq in got if seq <= have_before_gap]
    if again:
        raise hint(
            f"the hub would return seq {got}: the missing ones, but also {again}, which the "
            "client already has. Start right after the last seq it has without a gap."
        )
    extra = [seq for seq in got if seq not in missing]
    note = f", plus {extra} again, which the client drops as duplicates" if extra else ""
    success(f"the hub would return seq {got}: the missing {missing}{note}.")


def _cursor_hint(fields: Mapping[str, Any]) -> str:
    if fields["since_seq"] is not None:
        return (
            f"since_seq={fields['since_seq']} means 'the messages after seq "
            f"{fields['since_seq']}' (and at most limit={fields['limit']} of them)."
        )
    if fields["before_seq"] is not None:
        return (
            f"before_seq={fields['before_seq']} means 'the limit={fields['limit']} messages "
            f"right before seq {fields['before_seq']}'."
        )
    return (
        f"Without a cursor the hub returns the newest limit={fields['limit']} messages; a "
        "reconnecting client names where it stopped instead."
    )


# -- exercise 2: deliver each message once, in order -----------------------------------------------

Deliver = Callable[[int, list[dict[str, Any]]], Sequence[Mapping[str, Any]]]


def _message(seq: int) -> dict[str, Any]:
    return {
        "type": "chat:message",
        "room": "lobby",
        "message_id": f"m{seq}",
        "seq": seq,
        "from_user": "alice",
        "content": f"message {seq}",
    }


# (what the case shows, last_seq, the seqs arriving in this order, the seqs to deliver now)
_DELIVERY_CASES: tuple[tuple[str, int, tuple[int, ...], tuple[int, ...]], ...] = (
    ("messages in order", 3, (4, 5, 6), (4, 5, 6)),
    ("nothing arrived", 0, (), ()),
    ("a first message", 0, (1,), (1,)),
    ("messages out of order", 3, (5, 4, 6), (4, 5, 6)),
    ("the same message live and from history", 3, (4, 5, 4, 6, 5), (4, 5, 6)),
    ("messages the client already showed", 5, (3, 4, 5, 6, 7), (6, 7)),
    ("a gap: seq 5 has not arrived", 3, (4, 6, 7), (4,)),
    ("a gap right away", 3, (5, 6), ()),
    ("only old messages", 7, (6, 7, 7), ()),
    ("everything at once", 10, (13, 9, 11, 12, 11, 10, 15, 13), (11, 12, 13)),
)


@exercise('04.delivery', 'Replace `raise NotImplementedError` in `deliver` with the merge: each message once, in seq order, none past a gap.')
def check_delivery_exercise(deliver: Deliver) -> None:
    """Check ``deliver(last_seq, incoming) -> messages``, the merge after a reconnect.

    ``incoming`` holds ``chat:message`` dicts (with ``message_id`` and ``seq``) as they arrived,
    live and from history, in any order and some twice. ``deliver`` returns the ones to show
    now: each ``message_id`` once, in ``seq`` order, only after ``last_seq``, and none beyond a
    missing ``seq`` (those wait until the gap is fetched).
    """
    if not callable(deliver):
        raise hint(f"expected a function deliver(last_seq, incoming), got {deliver!r}.")
    for what, last_seq, arriving, expected in _DELIVERY_CASES:
        incoming = [_message(seq) for seq in arriving]  # fresh dicts: equal, never the same object
        try:
            result = deliver(last_seq, list(incoming))
        except Exception as exc:  # the student's code may fail in any way; report it
            raise hint(
                f"with {what} (last_seq={last_seq}, seqs arriving {list(arriving)}), deliver "
                f"raised {type(exc).__name__}: {exc}"
            ) from exc
        got = _seqs_of(result, what)
        if got == list(expected):
            continue
        case = f"with {what} (last_seq={last_seq}, seqs arriving {list(arriving)}) "
        raise hint(case + _delivery_hint(last_seq, arriving, got, expected))
    success(
        f"deliver handled all {len(_DELIVERY_CASES)} cases: duplicates dropped, seq order kept, "
        "and nothing shown past a gap."
    )


def _seqs_of(result: object, what: str) -> list[Any]:
    if not isinstance(result, (list, tuple)):
        raise hint(
            f"with {what}, deliver returned {type(result).__name__}; return a list of the "
            "message dicts to show."
        )
    seqs = []
    for item in result:
        if not isinstance(item, Mapping) or "seq" not in item:
            raise hint(
                f"with {what}, deliver returned {item!r} in its list; return the message dicts "
                "themselves (with their seq and message_id)."
            )
        seqs.append(item["seq"])
    return seqs


def _delivery_hint(
    last_seq: int, arriving: Sequence[int], got: list[Any], expected: Sequence[int]
) -> str:
    shown = f"your function delivers seq {got}. "
    repeated = sorted({seq for seq in got if got.count(seq) > 1})
    if repeated:
        return shown + (
            f"seq {repeated} appear(s) twice: the same message can arrive live and again from "
            "history. Keep each message_id once."
        )
    numbers = [seq for seq in got if isinstance(seq, int)]
    old = [seq for seq in numbers if seq <= last_seq]
    if old:
        return shown + f"{old} were already shown (last_seq={last_seq}): skip seq <= last_seq."
    if sorted(got) == sorted(expected):
        return shown + "Those are the right messages, but not in seq order."
    invented = [seq for seq in got if seq not in arriving]
    if invented:
        return shown + f"{invented} did not arrive in this batch: deliver only what came in."
    beyond = [seq for seq in got if seq not in expected]
    if beyond:
        hole = min(set(range(last_seq + 1, max(beyond))) - set(arriving))
        return shown + (
            f"seq {hole} has not arrived, so {beyond} must wait: a client that shows them now "
            "shows the conversation out of order (or with a hole nobody notices)."
        )
    left_out = [seq for seq in expected if seq not in got]
    return shown + f"{left_out} follow(s) on from last_seq={last_seq} without a gap: show it."
