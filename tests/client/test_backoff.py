"""Tests of ``wslab.client.backoff``: the full-jitter reconnect schedule.

The schedule is checked with an injected ``rng``, never with clocks.
"""

from __future__ import annotations

import random

from wslab.client import ChatClient
from wslab.client.backoff import full_jitter


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


def test_backoff_delay_is_full_jitter_within_capped_bounds() -> None:
    client = ChatClient(
        "ws://127.0.0.1:9/ws", backoff_initial=0.1, backoff_max=2.0, rng=random.Random(7)
    )
    for attempt in range(12):
        bound = min(2.0, 0.1 * 2**attempt)
        samples = [client.backoff_delay(attempt) for _ in range(200)]
        assert all(0 <= s <= bound for s in samples)
        assert max(samples) - min(samples) > bound / 4  # jittered over the range, not fixed
    assert client.backoff_delay(10_000) <= 2.0  # huge attempt numbers do not overflow
