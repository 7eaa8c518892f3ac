"""The series of a metric: what the hot path touches, and the timer that feeds a histogram.

A :class:`CounterChild`, :class:`GaugeChild` or :class:`HistogramChild` holds the values of one
label set in ``__slots__`` updated with plain arithmetic; the metrics of
:mod:`wslab.infrastructure.metrics_types` own them and the registry in
:mod:`wslab.infrastructure.metrics` reads them. A histogram series keeps cumulative buckets
over its whole life and a bounded ring of recent samples for exact nearest-rank quantiles.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from prometheus_client.utils import floatToGoString

from wslab.foundation.errors import ConfigError

__all__ = ["DEFAULT_BUCKETS", "CounterChild", "GaugeChild", "HistogramChild", "Timer"]

logger = logging.getLogger("wslab.metrics")

#: Latency buckets in seconds, 100 µs to 10 s: WebSocket round trips on localhost sit at the
#: bottom, a slow store or a congested network at the top.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: The label value of the series that collects label sets beyond ``max_series``. Chosen so it
_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


# -- series (children): what the hot path touches ------------------------------------------------


class CounterChild:
    """One series of a counter: a value that only goes up (or one read from a function)."""

    __slots__ = ("_fn", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self._fn: Callable[[], float] | None = None

    def inc(self, n: float = 1) -> None:
        """Add ``n`` (>= 0)."""
        if n < 0:
            raise ConfigError(f"a counter can only increase, got inc({n})")
        self.value += n

    def set_function(self, fn: Callable[[], float]) -> None:
        """Read the value from ``fn()`` (plus what ``inc`` added) whenever it is read.

        For totals that live elsewhere as plain ints (bytes and frames counted by each
        connection): the hot path keeps incrementing its own ints and pays nothing for the
        metric. ``fn`` must never go down. If it raises, the reading is NaN and the error is
        logged on ``wslab.metrics``.
        """
        self._fn = fn

    def get(self) -> float:
        """The current value."""
        fn = self._fn
        if fn is None:
            return self.value
        try:
            return self.value + float(fn())
        except Exception:
            logger.exception("counter function %r failed", fn)
            return math.nan

    def _reset(self) -> None:
        # A total read from a function cannot be zeroed at its source: start from its current
        # reading instead, so the series counts up from 0 again.
        fn = self._fn
        self.value = 0
        if fn is not None:
            self.value = -self.get()


class GaugeChild:
    """One series of a gauge: a value that goes up and down, or is read from a function."""

    __slots__ = ("_fn", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self._fn: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        """Set the value (and stop reading it from a function, if one was set)."""
        self._fn = None
        self.value = value

    def inc(self, n: float = 1) -> None:
        """Add ``n``."""
        self.value += n

    def dec(self, n: float = 1) -> None:
        """Subtract ``n``."""
        self.value -= n

    def set_function(self, fn: Callable[[], float]) -> None:
        """Read the value from ``fn()`` whenever the gauge is read (e.g. a queue's length).

        If ``fn`` raises, the reading is NaN and the error is logged on ``wslab.metrics``.
        """
        self._fn = fn

    def get(self) -> float:
        """The current value."""
        fn = self._fn
        if fn is None:
            return self.value
        try:
            return float(fn())
        except Exception:
            logger.exception("gauge function %r failed", fn)
            return math.nan

    def _reset(self) -> None:
        self.value = 0


class HistogramChild:
    """One series of a histogram: buckets, count, sum, min, max and a window of recent samples."""

    __slots__ = ("_bounds", "_counts", "_window", "count", "max", "min", "sum")

    def __init__(self, bounds: tuple[float, ...], window: int) -> None:
        self._bounds = bounds  # finite upper bounds, ascending; +Inf is implicit
        self._counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last is +Inf
        self._window: deque[float] = deque(maxlen=window)
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def observe(self, value: float) -> None:
        """Record one sample (a duration in seconds for latency histograms)."""
        # bisect_left finds the first bound >= value: Prometheus buckets include their bound.
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._window.append(value)
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def time(self, clock: Callable[[], float] = time.perf_counter) -> Timer:
        """A context manager that observes how long its block took."""
        return Timer(self, clock=clock)

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q``-quantile (0 < q <= 1) of the window, or None if it is empty."""
        return _nearest_rank(sorted(self._window), q)

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative ``(le, count)`` pairs, ending with ``(inf, count)``."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self._bounds, math.inf), tuple(self._counts), strict=True):
            running += n
            pairs.append((bound, running))
        return pairs

    def summary(self) -> dict[str, Any]:
        """Plain data: count, sum, min, max, p50, p90, p99, window and cumulative buckets.

        ``min``/``max``/quantiles are None while nothing has been observed.
        """
        ordered = sorted(tuple(self._window))
        data: dict[str, Any] = {
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }
        for key, q in _QUANTILES:
            data[key] = _nearest_rank(ordered, q)
        data["window"] = len(ordered)
        data["buckets"] = {floatToGoString(le): n for le, n in self.buckets()}
        return data

    def _reset(self) -> None:
        self._counts = [0] * (len(self._bounds) + 1)
        self._window.clear()
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf


def _nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    if not 0 < q <= 1:
        raise ConfigError(f"a quantile must be in (0, 1], got {q}")
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- timing --------------------------------------------------------------------------------------


class Timer:
    """Observe the duration of a ``with`` block (also when it raises) into a histogram series.

    The default clock is :func:`time.perf_counter`, the finest clock Python has for short
    intervals; pass a fake clock to drive it in tests. ``elapsed`` holds the last duration.
    """

    __slots__ = ("_clock", "_start", "_target", "elapsed")

    def __init__(
        self, target: HistogramChild, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._target = target
        self._clock = clock
        self._start = 0.0
        self.elapsed: float | None = None

    def __enter__(self) -> Timer:
        self._start = self._clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed = self._clock() - self._start
        self._target.observe(self.elapsed)
