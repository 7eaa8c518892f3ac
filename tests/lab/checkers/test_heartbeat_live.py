"""The live chapter 3 checker: settings plugged into a real hub under a jittery proxy."""

from __future__ import annotations

import pytest

from wslab.lab.checkers.heartbeat_live import check_live_heartbeat_exercise


@pytest.mark.parametrize(
    ("interval", "timeout", "hint"),
    [(0.1, 1.6, "at least 0.25 s apart"), ("1", 1.6, "number of seconds"), (0.5, -1, "positive")],
)
async def test_settings_refused_before_any_hub_starts(interval: object, timeout: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        await check_live_heartbeat_exercise(interval, timeout)


@pytest.mark.slow
async def test_a_timeout_below_the_jittery_round_trip_kills_a_healthy_client() -> None:
    # Round trips through the checker's link take 0.6-1.2 s (0.3 s + up to 0.3 s each way): a
    # 0.6 s timeout is below every one of them, so the first ping's pong is already too late.
    # (0.9 s, the mean round trip, now and then let every ping of the run come back in time.)
    with pytest.raises(AssertionError, match="healthy client"):
        await check_live_heartbeat_exercise(0.5, 0.6)


@pytest.mark.slow
async def test_a_timeout_that_kills_the_client_while_it_connects_gets_the_same_hint() -> None:
    # 0.25 s + 0.05 s: the hub gives up on the healthy client before its lobby join is
    # answered. That is the same mistake, and the same hint, not a client error.
    with pytest.raises(AssertionError, match="healthy client"):
        await check_live_heartbeat_exercise(0.25, 0.05)


@pytest.mark.slow
async def test_a_slow_heartbeat_finds_the_silent_client_too_late() -> None:
    with pytest.raises(AssertionError, match="silent client was closed"):
        await check_live_heartbeat_exercise(2.0, 1.6)
