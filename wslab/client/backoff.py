"""The reconnect schedule of the chat client: capped exponential backoff with full jitter.

Before reconnect attempt ``n`` (from 0) the client sleeps ``uniform(0, min(maximum, initial *
2**n))``. The jitter spreads the whole interval, not a band around the exponential: when a hub
drops a thousand clients at once, they come back spread out instead of in waves. The exponent is
capped at 64 so that a very long outage cannot overflow the float.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["UniformSource", "full_jitter"]


class UniformSource(Protocol):
    """Where the jitter comes from: :class:`random.Random`, or a scripted one in tests."""

    def uniform(self, a: float, b: float) -> float:
        """A number between ``a`` and ``b``."""
        ...


def full_jitter(attempt: int, initial: float, maximum: float, rng: UniformSource) -> float:
    """The sleep before reconnect attempt ``attempt`` (0-based): full jitter, capped at ``maximum``."""
    bound = min(maximum, initial * 2 ** min(attempt, 64))
    return float(rng.uniform(0, bound))
