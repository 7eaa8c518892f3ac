"""Bounded time series for the dashboard: a ring buffer of ``(t, value)`` samples per quantity.

A dashboard may stay open for hours, so nothing it keeps may grow with time: each
:class:`Series` holds the newest ``maxlen`` samples (the oldest is dropped at the limit and
counted), and a :class:`SeriesBook` holds at most ``max_series`` named series.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from wslab.foundation.errors import ConfigError

__all__ = ["Series", "SeriesBook"]


class Series:
    """The newest ``maxlen`` samples of one quantity.

    ``version`` grows only when a sample's value differs from the one before: a quantity that
    stays flat does not ask for a redraw.
    """

    __slots__ = ("appended", "dropped", "maxlen", "name", "t", "v", "version")

    def __init__(self, name: str, maxlen: int = 600) -> None:
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(f"a series keeps at least one sample; got maxlen={maxlen!r}")
        self.name = name
        self.maxlen = maxlen
        self.t: deque[float] = deque(maxlen=maxlen)
        self.v: deque[float | None] = deque(maxlen=maxlen)
        #: Samples pushed out at the limit since creation.
        self.dropped = 0
        self.appended = 0
        self.version = 0

    def append(self, t: float, value: float | None) -> None:
        """Add one sample (``None`` is a gap: the quantity had no value at ``t``)."""
        if len(self.t) == self.maxlen:
            self.dropped += 1
        if not self.v or self.v[-1] != value:
            self.version += 1
        self.t.append(t)
        self.v.append(value)
        self.appended += 1

    @property
    def last(self) -> float | None:
        """The newest value, or None when empty."""
        return self.v[-1] if self.v else None

    def points(self) -> tuple[list[float], list[float | None]]:
        """Copies of the times and the values, oldest first (safe to hand to another process)."""
        return list(self.t), list(self.v)

    def since(self, appended: int) -> tuple[list[float], list[float | None], bool]:
        """The samples appended after the first ``appended`` ones, oldest first, and whether
        that is every sample kept (some were pushed out before they were asked for).

        What the renderer is sent: a redraw carries only what is new since the last one.
        """
        new = self.appended - appended
        if new < 0 or new >= len(self.t):
            t, v = self.points()
            return t, v, True
        times, values = self.t, self.v
        # Indexing a deque near its right end is cheap: only the new samples are touched.
        return ([times[i] for i in range(-new, 0)], [values[i] for i in range(-new, 0)],
                False)

    def __len__(self) -> int:
        return len(self.t)

    def __repr__(self) -> str:
        return f"<Series {self.name} {len(self)}/{self.maxlen} last={self.last!r}>"


class SeriesBook:
    """Named series created on first use, at most ``max_series`` of them (more is a ConfigError)."""

    def __init__(self, maxlen: int = 600, max_series: int = 64) -> None:
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(f"history must be at least one sample; got {maxlen!r}")
        self.maxlen = maxlen
        self.max_series = max_series
        self._series: dict[str, Series] = {}

    def __getitem__(self, name: str) -> Series:
        series = self._series.get(name)
        if series is None:
            if len(self._series) >= self.max_series:
                raise ConfigError(f"a dashboard keeps at most {self.max_series} series")
            series = self._series[name] = Series(name, self.maxlen)
        return series

    def append(self, name: str, t: float, value: float | None) -> None:
        self[name].append(t, value)

    @property
    def version(self) -> int:
        """The sum of every series' version: unchanged means no value changed, nothing to draw."""
        return sum(s.version for s in self._series.values())

    def names(self) -> list[str]:
        return list(self._series)

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __iter__(self) -> Iterator[Series]:
        return iter(list(self._series.values()))

    def __len__(self) -> int:
        return len(self._series)
