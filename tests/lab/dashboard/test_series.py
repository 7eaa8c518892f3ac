"""Bounded series and the redraw throttle, on their own."""

from __future__ import annotations

import pytest

from wslab.foundation.errors import ConfigError
from wslab.lab.dashboard import Series, SeriesBook, Throttle


def test_series_keeps_the_newest_samples_only() -> None:
    series = Series("x", maxlen=5)
    for i in range(12):
        series.append(float(i), float(i))
    t, v = series.points()
    assert len(series) == 5
    assert t == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert v == t
    assert series.dropped == 7
    assert series.last == 11.0


def test_a_flat_series_does_not_change_its_version() -> None:
    series = Series("x", maxlen=10)
    series.append(0.0, 3.0)
    version = series.version
    for t in range(1, 8):
        series.append(float(t), 3.0)
    assert series.version == version  # nothing new to draw
    series.append(9.0, 4.0)
    assert series.version == version + 1


def test_a_book_is_bounded_in_series_too() -> None:
    book = SeriesBook(maxlen=3, max_series=2)
    book.append("a", 0.0, 1.0)
    book.append("b", 0.0, 1.0)
    with pytest.raises(ConfigError, match="at most 2"):
        book.append("c", 0.0, 1.0)
    with pytest.raises(ConfigError):
        Series("bad", maxlen=0)


def test_throttle_skips_unchanged_and_caps_the_rate() -> None:
    now = [0.0]
    throttle = Throttle(4.0, clock=lambda: now[0])
    assert throttle.ready(1)
    throttle.drawn(1)
    assert not throttle.ready(1)  # nothing changed
    assert throttle.skipped_unchanged == 1
    now[0] = 0.1
    assert not throttle.ready(2)  # changed, but too soon after the last drawing
    assert throttle.deferred == 1
    now[0] = 0.26
    assert throttle.ready(2)
    throttle.drawn(2)
    # Ten seconds of new versions asked for every 10 ms: at most 4 drawings a second.
    for step in range(1000):
        now[0] = 0.26 + step * 0.01
        if throttle.ready(step + 3):
            throttle.drawn(step + 3)
    assert throttle.draws <= 2 + 4 * 10 + 1


def test_throttle_refuses_more_than_four_a_second() -> None:
    with pytest.raises(ConfigError, match=r"\(0, 4\]"):
        Throttle(10)
