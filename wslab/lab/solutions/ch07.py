"""Chapter 7 (reliability): a reconnect schedule that spreads a herd."""

from __future__ import annotations

import random


def reconnect_delay(attempt: int, rng: random.Random) -> float:
    """Full jitter: a random pause up to an exponentially growing cap, itself capped at 2 s."""
    return rng.uniform(0.0, min(2.0, 0.1 * 2**attempt))
