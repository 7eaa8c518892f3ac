"""Tests of ``wslab.infrastructure.backoff``: the one full-jitter reconnect schedule.

The schedule is checked with an injected ``rng``, never with clocks.
"""

from __future__ import annotations

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.backoff import FullJitterBackoff, full_jitter


class UpperBound:
    """An ``rng`` whose ``uniform(a, b)`` returns ``b``, recording the bounds asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b


def test_full_jitter_draws_from_zero_to_the_capped_exponential() -> None:
    rng = UpperBound()
    delays = [full_jitter(attempt, 0.1, 1.0, rng) for attempt in range(6)]
    assert rng.calls == [(0, 0.1), (0, 0.2), (0, 0.4), (0, 0.8), (0, 1.0), (0, 1.0)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    backoff = FullJitterBackoff(0.1, 5.0)
    assert [backoff.ceiling(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert backoff.ceiling(10) == 5.0
    assert backoff.ceiling(10_000) == 5.0
    delays = [backoff.delay(20) for _ in range(200)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, not a fixed schedule
    with pytest.raises(ConfigError):
        FullJitterBackoff(0, 1)
    with pytest.raises(ConfigError):
        FullJitterBackoff(2, 1)


def test_supervisor_attempts_count_from_one_on_the_same_schedule() -> None:
    rng = UpperBound()
    backoff = FullJitterBackoff(0.1, 1.0, rng=rng)
    assert [backoff.delay(n) for n in range(1, 7)] == [
        full_jitter(n, 0.1, 1.0, UpperBound()) for n in range(6)
    ]
