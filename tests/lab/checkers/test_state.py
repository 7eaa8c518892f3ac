"""The chapter 2 checker: the engine's answers pass, the usual mistakes get a pointed hint."""

from __future__ import annotations

from typing import Any

import pytest

from wslab.foundation.state import ConnectionState
from wslab.lab.checkers.state import STATE_SCENARIOS, check_state_exercise

FULL = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]

#: Written out by hand from RFC 6455, independently of the checker's replays.
RIGHT: dict[str, Any] = {
    "client_says_goodbye": (FULL, 1000),
    "hub_shuts_down": (FULL, 1001),
    "cable_pulled": (["CONNECTING", "OPEN", "CLOSED"], 1006),
    "upgrade_refused": (["CONNECTING", "CLOSED"], 1006),
    "close_without_a_code": (FULL, 1005),
    "both_close_at_once": (FULL, 1001),
}


def with_answer(name: str, answer: object) -> dict[str, Any]:
    answers = dict(RIGHT)
    answers[name] = answer
    return answers


def test_the_right_answers_pass(capsys: pytest.CaptureFixture[str]) -> None:
    check_state_exercise(RIGHT)
    assert "Correct" in capsys.readouterr().out


def test_states_may_be_enum_members_and_any_case() -> None:
    answers = dict(RIGHT)
    answers["cable_pulled"] = (
        (ConnectionState.CONNECTING, ConnectionState.OPEN, ConnectionState.CLOSED),
        1006,
    )
    answers["upgrade_refused"] = (["connecting", "Closed"], 1006)
    check_state_exercise(answers)


def test_every_scenario_names_its_side() -> None:
    assert set(STATE_SCENARIOS) == set(RIGHT)
    assert {s.side for s in STATE_SCENARIOS.values()} == {"client", "server"}


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
        ("client_says_goodbye", (["OPEN", "CLOSING", "CLOSED"], 1000), "starts with OPEN"),
        ("client_says_goodbye", (["CONNECTING", "OPEN", "CLOSING"], 1000), "ends in CLOSING"),
        ("client_says_goodbye", (["CONNECTING", "OPEN", "CLOSED"], 1000), "sent a close frame"),
        ("hub_shuts_down", (["CONNECTING", "OPEN", "CLOSED"], 1001), "received a close frame"),
        ("cable_pulled", (FULL, 1006), "no close frame was sent or received"),
        ("upgrade_refused", (["CONNECTING", "OPEN", "CLOSED"], 1006), "refused the upgrade"),
        ("cable_pulled", (["CONNECTING", "CLOSED"], 1006), "did succeed"),
        ("client_says_goodbye", (["CONNECTING", "CLOSING", "CLOSED"], 1000), "not in the"),
        ("client_says_goodbye", (["CONNECTING", "OPEN", "OPEN", "CLOSED"], 1000), "not in the"),
        ("cable_pulled", (["CONNECTING", "OPEN", "CLOSED"], 1000), "no close frame ever"),
        ("upgrade_refused", (["CONNECTING", "CLOSED"], 1002), "no close frame ever"),
        ("close_without_a_code", (FULL, 1000), "no status code"),
        ("close_without_a_code", (FULL, 1006), "no status code"),
        ("both_close_at_once", (FULL, 1000), "the code the client itself sent"),
        ("hub_shuts_down", (FULL, 1000), "what did the other end put"),
        ("hub_shuts_down", (FULL, "1001"), "must be an int"),
        ("hub_shuts_down", (FULL, True), "must be an int"),
        ("hub_shuts_down", (["CONNECTING", "OPENED"], 1001), "is not a state"),
        ("hub_shuts_down", ("CONNECTING OPEN", 1001), "list of state names"),
        ("hub_shuts_down", (FULL,), "pair (states, close_code)"),
        ("hub_shuts_down", ([], 1001), "empty"),
    ],
)
def test_each_mistake_gets_its_hint(name: str, answer: object, hint: str) -> None:
    with pytest.raises(AssertionError, match="Not yet") as refused:
        check_state_exercise(with_answer(name, answer))
    message = str(refused.value)
    assert hint in message and name in message


def test_missing_and_unknown_scenarios_are_named() -> None:
    partial = {k: v for k, v in RIGHT.items() if k != "cable_pulled"}
    with pytest.raises(AssertionError, match="cable_pulled"):
        check_state_exercise(partial)
    with pytest.raises(AssertionError, match="pulled_cable"):
        check_state_exercise({**RIGHT, "pulled_cable": RIGHT["cable_pulled"]})
    with pytest.raises(AssertionError, match="dict"):
        check_state_exercise([RIGHT])  # type: ignore[arg-type]


def test_a_code_hint_never_gives_the_code() -> None:
    with pytest.raises(AssertionError) as refused:
        check_state_exercise(with_answer("cable_pulled", (["CONNECTING", "OPEN", "CLOSED"], 1000)))
    assert "1006" not in str(refused.value)
