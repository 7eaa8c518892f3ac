"""The chapter 5 checkers: right answers pass, the usual wrong answers get a useful hint."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

import pytest

from wslab.lab.checkers.scaling import (
    BROKER_TARGET_CASES,
    HUB_COUNT_CASES,
    Presence,
    check_broker_targets_exercise,
    check_hub_count_exercise,
    hubs_with_members,
)

# -- how many hubs ---------------------------------------------------------------------------------


def right_count(users: int, capacity: int) -> int:
    return math.ceil(users / capacity) + 1


def integer_ceiling(users: int, capacity: int) -> int:
    return -(-users // capacity) + 1


def test_a_right_count_passes_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    check_hub_count_exercise(right_count)
    assert "Correct" in capsys.readouterr().out


def test_integer_arithmetic_passes_too() -> None:
    check_hub_count_exercise(integer_ceiling)


def test_the_cases_include_the_rounding_boundaries() -> None:
    assert any(users % capacity == 0 for users, capacity in HUB_COUNT_CASES)
    assert any(users % capacity == 1 for users, capacity in HUB_COUNT_CASES)
    assert any(users < capacity for users, capacity in HUB_COUNT_CASES)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda n, c: math.ceil(n / c), "when one stops"),  # no spare hub
        (lambda n, c: n // c, "fewer than the users"),  # rounds down, no spare
        (lambda n, c: n / c + 1, "float"),
        (lambda n, c: n // c + 1, "when one stops"),  # floor instead of ceil
        (lambda n, c: n // c + 2, "more than needed"),  # wrong at exact multiples only
        (lambda n, c: round(n / c) + 1, "when one stops"),  # 10 001 / 5 000 rounds down
        (lambda n, c: 1, "single hub"),
        (lambda n, c: str(math.ceil(n / c) + 1), "return an int"),
        (lambda n, c: True, "return an int"),
        (lambda n, c: None, "return an int"),
        (lambda n, c: 1 / 0, "ZeroDivisionError"),
        (lambda n: n, "TypeError"),
        (7, "the function itself"),
    ],
)
def test_typical_mistakes_get_a_hint(answer: Any, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_hub_count_exercise(answer)
    assert hint in str(caught.value)


def test_a_hint_never_gives_the_answer_away() -> None:
    with pytest.raises(AssertionError) as caught:
        check_hub_count_exercise(lambda n, c: math.ceil(n / c))
    # The first case is 23 000 users at 5 000: the hint explains 5 hubs fail, not that 6 work.
    assert "6 hubs" not in str(caught.value)
    assert "5 hubs" in str(caught.value)


# -- which hubs must the broker reach --------------------------------------------------------------


def right_targets(origin: str, room: str, presence: Presence) -> set[str]:
    return {hub for hub, rooms in presence.items() if hub != origin and rooms.get(room)}


def test_right_targets_pass_with_the_savings(capsys: pytest.CaptureFixture[str]) -> None:
    check_broker_targets_exercise(right_targets)
    out = capsys.readouterr().out
    assert "Correct" in out
    everywhere = sum(len(presence) for _, _, presence in BROKER_TARGET_CASES)
    targeted = sum(len(hubs_with_members(*case)) for case in BROKER_TARGET_CASES)
    assert f"{targeted} broker deliveries" in out and f"makes {everywhere}" in out


def test_any_collection_of_hub_ids_is_accepted() -> None:
    check_broker_targets_exercise(lambda o, r, p: sorted(right_targets(o, r, p)))
    check_broker_targets_exercise(lambda o, r, p: frozenset(right_targets(o, r, p)))


def test_the_reference_reads_live_presence_snapshots() -> None:
    # hub.chat.presence.local_snapshot() maps room -> {user_id: username}.
    presence = {
        "hub-a": {"lobby": {"alice": "Alice"}, "latency": {"alice": "Alice", "bob": "Bob"}},
        "hub-b": {"lobby": {"carol": "Carol"}, "latency": {"carol": "Carol"}},
        "hub-c": {"lobby": {"erin": "Erin"}},
    }
    assert hubs_with_members("hub-a", "latency", presence) == {"hub-b"}
    assert hubs_with_members("hub-c", "lobby", presence) == {"hub-a", "hub-b"}
    assert hubs_with_members("hub-a", "nowhere", presence) == set()


def every_hub(origin: str, room: str, presence: Presence) -> set[str]:
    return set(presence)


def every_other_hub(origin: str, room: str, presence: Presence) -> set[str]:
    return set(presence) - {origin}


def room_key_present(origin: str, room: str, presence: Presence) -> set[str]:
    return {hub for hub, rooms in presence.items() if hub != origin and room in rooms}


def only_the_first(origin: str, room: str, presence: Presence) -> set[str]:
    hubs = sorted(right_targets(origin, room, presence))
    return set(hubs[:1])


Targets = Callable[[str, str, Presence], Collection[str]]


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (every_hub, "includes hub-a itself"),
        (every_other_hub, "has nobody in"),
        (room_key_present, "has nobody in 'design'"),  # an empty room entry
        (only_the_first, "is missing"),
        (lambda o, r, p: set(), "is missing"),
        (lambda o, r, p: "hub-b", "the string"),
        (lambda o, r, p: None, "return statement"),
        (lambda o, r, p: 2, "return a set"),
        (lambda o, r, p: {h: 1 for h in right_targets(o, r, p)}, "return a set"),
        (lambda o, r, p: [len(p[h][r]) for h in right_targets(o, r, p)], "hub ids"),
        (lambda o, r, p: right_targets(o, r, p) | {"hub-z"}, "not a hub"),
        (lambda o, r, p: p["nowhere"], "KeyError"),
        (right_targets("hub-a", "lobby", BROKER_TARGET_CASES[0][2]), "the function itself"),
    ],
)
def test_typical_routing_mistakes_get_a_hint(answer: Any, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_broker_targets_exercise(answer)
    assert hint in str(caught.value)


def test_a_missing_hub_is_named_with_its_members() -> None:
    with pytest.raises(AssertionError) as caught:
        check_broker_targets_exercise(lambda o, r, p: set())
    text = str(caught.value)
    # The first case: alice on hub-a sends to the lobby; carol on hub-b is the first one missed.
    assert "hub-b is missing" in text and "carol" in text
