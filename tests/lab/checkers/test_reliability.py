"""The chapter 7 checker: a live hub killed and restarted judges a reconnect schedule.

Bad values are refused before any hub starts; the schedules that fail for the two reasons of
the exercise (a herd without jitter, a pause that grows too long) are refused on a live run.
"""

from __future__ import annotations

import math

import pytest

from wslab.lab.checkers.reliability import (
    BACK_WITHIN,
    check_reconnect_exercise,
    peak_in_window,
)


def test_peak_in_window_counts_the_densest_interval() -> None:
    assert peak_in_window([], 0.1) == 0
    assert peak_in_window([0.0, 0.05, 0.1, 0.5, 0.55], 0.1) == 3
    assert peak_in_window([0.5, 0.0, 0.25], 0.1) == 1


@pytest.mark.parametrize(
    ("delay", "hint"),
    [
        (lambda a, rng: "soon", "return seconds"),
        (lambda a, rng: -1.0, ">= 0"),
        (lambda a, rng: math.nan, ">= 0"),
        (lambda a, rng: None, "return seconds"),
    ],
)
async def test_values_that_are_not_delays_are_refused_at_once(delay: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        await check_reconnect_exercise(delay)


@pytest.mark.slow
async def test_the_same_pause_for_everyone_is_a_herd() -> None:
    with pytest.raises(AssertionError, match="knocked within 100 ms"):
        await check_reconnect_exercise(lambda attempt, rng: min(2.0, 0.1 * 2**attempt))


@pytest.mark.slow
async def test_a_pause_that_grows_without_a_cap_comes_back_too_late() -> None:
    with pytest.raises(AssertionError, match=r"last client came back|still away"):
        await check_reconnect_exercise(lambda attempt, rng: rng.uniform(0, 0.5 * 3**attempt))
    assert BACK_WITHIN < 0.5 * 3**4
