"""The chapter 3 checker: good heartbeat settings pass, each broken requirement gets its hint."""

from __future__ import annotations

import math

import pytest

from wslab.lab.checkers.heartbeat import (
    DETECT_WITHIN,
    JITTER_MARGIN,
    MAX_PINGS_PER_MINUTE,
    SLOWEST_RTT,
    check_heartbeat_exercise,
    simulate_heartbeat,
)


def test_settings_that_meet_every_requirement_pass(capsys: pytest.CaptureFixture[str]) -> None:
    check_heartbeat_exercise(30, 10)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("interval", "timeout"),
    [
        (60 / MAX_PINGS_PER_MINUTE, DETECT_WITHIN - 60 / MAX_PINGS_PER_MINUTE),  # both at the limit
        (40.0, SLOWEST_RTT + JITTER_MARGIN + 0.5),
        (30.5, 12.25),
    ],
)
def test_boundary_and_other_valid_settings_pass(interval: float, timeout: float) -> None:
    check_heartbeat_exercise(interval, timeout)


@pytest.mark.parametrize(
    ("interval", "timeout", "hint"),
    [
        (30, SLOWEST_RTT, "declared dead"),  # a pong at the deadline is too late
        (30, 3.0001, "jitter"),  # a hair above the slowest round trip leaves no margin
        (30, SLOWEST_RTT + JITTER_MARGIN, "declared dead"),  # the margin's own edge is too late
        (30, 1, "declared dead"),
        (20, 10, "pings per minute"),  # the hub's defaults ping too often here
        (29.99, 5, "2.001 pings per minute"),
        (30, 16, "unnoticed for 46 s"),
        (60, 5, "the wait for the next ping"),
        (0, 10, "positive"),
        (30, -1, "positive"),
        (math.inf, 10, "finite"),
        ("30", 10, "number of seconds"),
        (True, 10, "number of seconds"),
    ],
)
def test_each_broken_requirement_gets_a_hint(interval: object, timeout: object, hint: str) -> None:
    with pytest.raises(AssertionError, match="Not yet") as refused:
        check_heartbeat_exercise(interval, timeout)
    assert hint in str(refused.value)


def test_a_hint_never_gives_the_answer() -> None:
    with pytest.raises(AssertionError) as refused:
        check_heartbeat_exercise(60, 5)
    assert "30" not in str(refused.value) and "15" not in str(refused.value)


def test_the_simulation_follows_the_engine_timer() -> None:
    healthy = simulate_heartbeat(20, 10, rtt=0.5, duration=100)
    assert healthy.dead_at is None
    assert healthy.pings[:3] == [20.0, 40.5, 61.0]  # next ping: one interval after the pong
    assert healthy.pongs[:2] == [20.5, 41.0]

    dying = simulate_heartbeat(20, 10, rtt=0.5, dies_at=50)
    assert dying.dead_at == pytest.approx(61.0 + 10)  # the unanswered ping, plus the timeout
    assert dying.dead_at - dying.last_pong == pytest.approx(20 + 10)  # the detection bound

    silent = simulate_heartbeat(20, 10, rtt=0.5, dies_at=0)
    assert silent.pongs == [] and silent.dead_at == 30.0
