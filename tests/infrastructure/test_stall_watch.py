"""The loop stall watch: stalls caught busy or idle, and an idle hub's watch wakes it seldom.

Real loop, real timers, real blocking (``time.sleep`` in the loop is what a stall is); the
intervals are scaled down so a test takes a second or two.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from wslab.foundation.errors import ConfigError
from wslab.infrastructure.fairness import LoopStallWatch

FAST, SLOW, QUIET, THRESHOLD = 0.02, 0.3, 0.1, 0.05


class Activity:
    """A message counter as the hub keeps one."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def watch_with(activity: Activity) -> LoopStallWatch:
    return LoopStallWatch(
        FAST, THRESHOLD, 0.5, idle_interval=SLOW, idle_after=QUIET, activity=activity
    )


async def busy_for(seconds: float, activity: Activity) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        activity.count += 1
        await asyncio.sleep(FAST / 4)


async def test_an_idle_watch_ticks_at_the_idle_interval_and_a_busy_one_fast() -> None:
    activity = Activity()
    watch = watch_with(activity)
    watch.start()
    try:
        await busy_for(0.5, activity)
        assert not watch.idle
        busy_ticks = watch.ticks
        assert busy_ticks >= 0.5 / FAST / 2  # ~25 ticks in 0.5 s

        await asyncio.sleep(QUIET + 2 * FAST)  # quiet long enough to slow down
        assert watch.idle
        before = watch.ticks
        await asyncio.sleep(1.0)
        assert watch.ticks - before <= 1.0 / SLOW + 1  # ~3 ticks a second, not ~50

        await busy_for(SLOW + 2 * FAST, activity)  # activity again: fast at the next tick
        assert not watch.idle
        assert watch.stalls == 0
    finally:
        await watch.stop()


async def test_a_stall_while_busy_is_caught_and_forgiven_for_its_length() -> None:
    activity = Activity()
    watch = watch_with(activity)
    watch.start()
    try:
        await busy_for(0.2, activity)
        time.sleep(0.4)  # the loop is blocked
        # Coming back: the overdue ticker says so before it has even run.
        assert watch.forgiven_seconds() >= 0.3
        await asyncio.sleep(2 * FAST)
        assert watch.stalls == 1
        assert 0.3 <= watch.longest <= 0.45
    finally:
        await watch.stop()


async def test_a_stall_while_idle_is_caught_once_longer_than_the_idle_interval() -> None:
    activity = Activity()
    watch = watch_with(activity)
    watch.start()
    try:
        await asyncio.sleep(QUIET + 3 * FAST)
        assert watch.idle
        time.sleep(SLOW + 0.4)  # longer than idle_interval + threshold
        assert watch.forgiven_seconds() > 0.0
        await asyncio.sleep(2 * FAST)
        assert watch.stalls == 1
        # Measured from the tick that came late: short by at most the idle interval.
        assert 0.4 - 0.05 <= watch.longest <= SLOW + 0.45
    finally:
        await watch.stop()


async def test_without_an_activity_counter_the_watch_never_slows_down() -> None:
    watch = LoopStallWatch(FAST, THRESHOLD, 0.5, idle_interval=SLOW, idle_after=QUIET)
    watch.start()
    try:
        await asyncio.sleep(QUIET + 0.3)
        assert not watch.idle
        assert watch.ticks >= 0.4 / FAST / 2
    finally:
        await watch.stop()


async def test_stop_ends_the_ticks() -> None:
    watch = LoopStallWatch(FAST, THRESHOLD)
    watch.start()
    await asyncio.sleep(3 * FAST)
    await watch.stop()
    ticks = watch.ticks
    await asyncio.sleep(3 * FAST)
    assert watch.ticks == ticks
    assert watch.forgiven_seconds() == 0.0


def test_an_idle_interval_shorter_than_the_busy_one_is_refused() -> None:
    with pytest.raises(ConfigError):
        LoopStallWatch(1.0, idle_interval=0.5)
