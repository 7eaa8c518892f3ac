"""The chapter 4 checkers: right answers pass, the usual wrong answers get a useful hint."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wslab.lab.checkers.messaging import (
    GAP_EXERCISE_LATEST,
    GAP_EXERCISE_RECEIVED,
    check_delivery_exercise,
    check_gap_request_exercise,
)

# -- the gap request -------------------------------------------------------------------------------


def test_the_situation_is_the_one_the_notebook_describes() -> None:
    assert GAP_EXERCISE_RECEIVED == (1, 2, 3, 4, 7, 8) and GAP_EXERCISE_LATEST == 8


@pytest.mark.parametrize(
    ("request_", "said"),
    [
        ({"type": "chat:history", "room": "lobby", "since_seq": 4}, "[5, 6, 7, 8]"),
        ({"type": "chat:history", "since_seq": 4}, "plus [7, 8] again"),  # room defaults to lobby
        ({"type": "chat:history", "room": "lobby", "since_seq": 4, "limit": 2}, "[5, 6]."),
        ({"type": "chat:history", "room": "lobby", "before_seq": 7, "limit": 2}, "[5, 6]."),
        ('{"type": "chat:history", "room": "lobby", "since_seq": 4, "ref": "r1"}', "[5, 6, 7, 8]"),
    ],
)
def test_requests_that_fetch_the_gap_pass(
    request_: object, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    check_gap_request_exercise(request_)
    out = capsys.readouterr().out
    assert "Correct" in out and said in out


@pytest.mark.parametrize(
    ("request_", "hint"),
    [
        (["chat:history"], "expected a dict"),
        ("since_seq=4", "not JSON"),
        ({"type": "chat:message", "since_seq": 4}, "which request type"),
        ({"type": "chat:history", "since_seq": 4, "limit": 500}, "INVALID_INPUT: 'limit'"),
        ({"type": "chat:history", "since_seq": "4"}, "INVALID_INPUT: 'since_seq' must be an"),
        ({"type": "chat:history", "since_seq": 4, "before_seq": 7}, "not both"),
        ({"type": "chat:history", "room": "general", "since_seq": 4}, "'general'"),
        ({"type": "chat:history", "since_seq": 4, "with_user": "bob"}, "direct conversation"),
        # "since" means after: starting at the first message seen after the gap misses the gap.
        ({"type": "chat:history", "since_seq": 7}, "[5, 6] stay missing. since_seq=7"),
        ({"type": "chat:history", "since_seq": 5}, "[5] stay missing"),
        ({"type": "chat:history", "since_seq": 4, "limit": 1}, "at most limit=1"),
        ({"type": "chat:history", "before_seq": 7, "limit": 1}, "before_seq=7 means"),
        ({"type": "chat:history", "limit": 2}, "Without a cursor"),
        ({"type": "chat:history"}, "also [1, 2, 3, 4]"),
        ({"type": "chat:history", "since_seq": 0}, "already has"),
        ({"type": "chat:history", "since_seq": 2}, "also [3, 4]"),
    ],
)
def test_typical_mistakes_get_a_hint(request_: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_gap_request_exercise(request_)
    assert hint in str(caught.value)


# -- delivering each message once, in order --------------------------------------------------------


def right_deliver(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {m["message_id"]: m for m in incoming if m["seq"] > last_seq}
    out = []
    for message in sorted(by_id.values(), key=lambda m: m["seq"]):
        if message["seq"] != last_seq + 1:
            break
        out.append(message)
        last_seq = message["seq"]
    return out


def test_a_right_merge_passes(capsys: pytest.CaptureFixture[str]) -> None:
    check_delivery_exercise(right_deliver)
    assert "Correct" in capsys.readouterr().out


def test_a_tuple_of_the_messages_is_fine_too() -> None:
    check_delivery_exercise(lambda last, incoming: tuple(right_deliver(last, incoming)))


def no_dedupe(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((m for m in incoming if m["seq"] > last_seq), key=lambda m: m["seq"])


def no_order(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for m in incoming:
        if m["seq"] > last_seq and m["message_id"] not in seen:
            seen.add(m["message_id"])
            out.append(m)
    return out


def keeps_old(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {m["message_id"]: m for m in incoming}
    return sorted(by_id.values(), key=lambda m: m["seq"])


def ignores_gaps(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {m["message_id"]: m for m in incoming if m["seq"] > last_seq}
    return sorted(by_id.values(), key=lambda m: m["seq"])


def stops_too_early(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return right_deliver(last_seq, incoming)[:1]


def invents(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*right_deliver(last_seq, incoming), {"seq": 99, "message_id": "m99"}]


def crashes(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [incoming[5]]


@pytest.mark.parametrize(
    ("deliver", "hint"),
    [
        (no_dedupe, "appear(s) twice"),
        (no_order, "not in seq order"),
        (keeps_old, "already shown"),
        (ignores_gaps, "seq 5 has not arrived, so [6, 7] must wait"),
        (stops_too_early, "without a gap: show it"),
        (invents, "did not arrive"),
        (crashes, "raised IndexError"),
        (lambda last, incoming: None, "returned NoneType"),
        (lambda last, incoming: [m["seq"] for m in incoming], "the message dicts themselves"),
        ("deliver", "expected a function"),
    ],
)
def test_typical_merges_get_a_hint(deliver: Any, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_delivery_exercise(deliver)
    assert hint in str(caught.value)


def test_the_input_is_a_fresh_copy_each_time() -> None:
    """A function that changes its input cannot break the next case."""
    calls: list[str] = []

    def mutating(last_seq: int, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append(json.dumps(incoming))
        result = [dict(m) for m in right_deliver(last_seq, incoming)]
        for m in incoming:
            m["seq"] = -1
        incoming.clear()
        return result

    check_delivery_exercise(mutating)
    assert len(calls) == 10
