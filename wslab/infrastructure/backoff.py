"""Reconnect schedules: capped exponential backoff with full jitter, for every reconnecting part.

The chat client reconnecting to a hub and the Redis broker reconnecting to its server share one
rule. Before reconnect attempt ``n`` (from 0) the caller sleeps ``uniform(0, min(maximum,
initial * 2**n))``. The jitter spreads the whole interval, not a band around the exponential:
when a hub drops a thousand clients at once (or Redis restarts under ten hubs), they come back
spread out instead of in waves. The exponent is capped at 64 so that a very long outage cannot
overflow the float.
"""

from __future__ import annotations

import random
from typing import Protocol

from wslab.foundation.errors import ConfigError

__all__ = ["FullJitterBackoff", "UniformSource", "full_jitter"]


class UniformSource(Protocol):
    """Where the jitter comes from: :class:`random.Random`, or a scripted one in tests."""

    def uniform(self, a: float, b: float) -> float:
        """A number between ``a`` and ``b``."""
        ...


def full_jitter(attempt: int, initial: float, maximum: float, rng: UniformSource) -> float:
    """The sleep before reconnect attempt ``attempt`` (0-based): full jitter, capped at ``maximum``."""
    return float(rng.uniform(0, _ceiling(attempt, initial, maximum)))


def _ceiling(attempt: int, initial: float, maximum: float) -> float:
    # min() on the exponent first, so a long outage does not build a huge float.
    return min(maximum, initial * 2 ** min(max(attempt, 0), 64))


class FullJitterBackoff:
    """:func:`full_jitter` with its bounds kept, for a supervisor that counts attempts from 1.

    The n-th delay (n = 1, 2, ...) is uniform in ``[0, min(cap, base * 2**(n-1))]``.
    """

    def __init__(
        self, base: float = 0.1, cap: float = 5.0, rng: UniformSource | None = None
    ) -> None:
        if base <= 0 or cap < base:
            raise ConfigError("backoff needs 0 < backoff_min <= backoff_max")
        self.base = base
        self.cap = cap
        self._rng: UniformSource = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the ``attempt``-th delay (1-based)."""
        return _ceiling(attempt - 1, self.base, self.cap)

    def delay(self, attempt: int) -> float:
        """A random delay for the ``attempt``-th reconnect (1-based)."""
        return full_jitter(attempt - 1, self.base, self.cap, self._rng)
