"""Tests of the chat client's reconnect delays (``ChatClient.backoff_delay``).

The schedule is checked with an injected ``rng``, never with clocks.
"""

from __future__ import annotations

import random

from wslab.client import ChatClient


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
