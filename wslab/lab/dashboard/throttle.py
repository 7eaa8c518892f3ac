"""The redraw throttle: at most ``max_per_second`` redraws, and none when nothing changed.

A dashboard is asked to redraw on every sampler tick and every control change; drawing a
figure is far more work than sampling, so the throttle decides. It counts what it did
(``draws``, ``skipped_unchanged``, ``deferred``) so a test can check it without timing anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wslab.foundation.errors import ConfigError

__all__ = ["Throttle"]


class Throttle:
    """``ready(version)`` says whether to draw now; ``drawn(version)`` records that it did."""

    def __init__(self, max_per_second: float = 4.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < max_per_second <= 4:
            raise ConfigError(f"redraws per second must be in (0, 4]; got {max_per_second!r}")
        self.min_interval = 1.0 / max_per_second
        self.clock = clock
        self.last_at: float | None = None
        self.last_version: object = None
        self.draws = 0
        self.skipped_unchanged = 0
        self.deferred = 0

    def ready(self, version: object) -> bool:
        """True if ``version`` differs from the last drawn one and the interval has passed."""
        if version == self.last_version:
            self.skipped_unchanged += 1
            return False
        if self.last_at is not None and self.clock() - self.last_at < self.min_interval:
            self.deferred += 1
            return False
        return True

    def drawn(self, version: object) -> None:
        self.last_at = self.clock()
        self.last_version = version
        self.draws += 1

    def counts(self) -> dict[str, int]:
        return {"draws": self.draws, "skipped_unchanged": self.skipped_unchanged,
                "deferred": self.deferred}
