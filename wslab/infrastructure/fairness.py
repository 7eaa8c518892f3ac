"""Fair reading: what one connection's input may cost the event loop everyone shares.

Two pieces, used by wslab's transport:

:class:`FrameBudget`
    Every frame a peer sends — data, continuation, ping, pong — costs one token **when it
    arrives**, not when (or whether) it completes a message: a peer sending empty continuation
    frames or tiny pings pays for each. The budget holds ``burst`` tokens and refills at ``rate``
    per second. When a read leaves it in debt, the transport stops reading that socket until the
    debt is paid (TCP then pushes back on the sender): the flood waits in the peer's own buffers,
    not in the hub's loop. A connection that stays in debt for ``flood_seconds`` — paid back,
    and at once in debt again, read after read — is flooding and is closed with 1008.

    A well-behaved client whose messages piled up while the hub was stalled arrives as one
    burst; it is paused for a moment at most (the rate is far above any chat client's), and is
    never in debt long enough to be judged a flood.

:class:`LoopStallWatch`
    Notices that the event loop was blocked. A ticker runs every ``interval`` seconds (every
    ``idle_interval`` once the hub has been idle a while); a tick later than ``threshold`` marks
    a stall, and :meth:`forgives` is true during it (the ticker
    is overdue) and for ``grace`` seconds plus twice the stall's length after it: the backlog is
    handled within moments of the loop coming back, so the window stays short and a real flood
    right after a stall is still caught. The message rate limiter asks it before it
    counts a rejection towards closing a connection for flooding: the backlog a stall created
    is the hub's doing, not the client's. It forgives only what the stall can explain:
    :meth:`forgiven_seconds` says how long the loop was stalled in the current window (stalls
    that follow each other add up), and the limiter forgives at most what a client keeping to
    its rate could have sent in that time — on a hub that is slow for minutes, a flooder that
    sends ten times the rate is still closed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from wslab.foundation.errors import ConfigError

__all__ = ["FRAMES_PER_TURN", "READ_SLICE", "FrameBudget", "LoopStallWatch"]

#: Bytes handed to the parser at a time. A read is parsed in such slices; see FRAMES_PER_TURN.
READ_SLICE = 4 * 1024

#: Frames one connection may have parsed in one turn of the event loop before the rest of its
#: read waits for the next turn, so one socket read of 256 KiB of tiny frames cannot hold the
#: loop for its ~40k frames (a slice of tiny frames is already past it: one slice per turn),
#: while a message of a few big frames is parsed in one go.
FRAMES_PER_TURN = 64

Clock = Callable[[], float]


class FrameBudget:
    """Tokens for incoming frames, charged at arrival (see the module docstring)."""

    __slots__ = ("_clock", "_last", "_level", "_over_since", "burst", "flood_seconds", "rate")

    def __init__(
        self,
        rate: float,
        burst: float,
        flood_seconds: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)) or not (burst >= 1 and math.isfinite(burst)):
            raise ConfigError(f"frame budget: rate must be > 0 and burst >= 1, got {rate}, {burst}")
        if not flood_seconds > 0:
            raise ConfigError(f"frame budget: flood_seconds must be > 0, got {flood_seconds}")
        self.rate, self.burst, self.flood_seconds = float(rate), float(burst), flood_seconds
        self._clock = clock
        self._last = clock()
        self._level = self.burst
        self._over_since: float | None = None

    @property
    def level(self) -> float:
        """Tokens left as of the last charge (negative: in debt)."""
        return self._level

    def charge(self, frames: int, now: float | None = None) -> float:
        """Take ``frames`` tokens; return how many seconds reading must pause (0: none)."""
        if now is None:
            now = self._clock()
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:
            self._level = min(self.burst, self._level + elapsed * self.rate)
        self._level -= frames
        if self._level >= 0:
            if self._level >= self.burst / 2:
                self._over_since = None  # back to healthy: a later burst starts a new count
            return 0.0
        if self._over_since is None:
            self._over_since = now
        return -self._level / self.rate

    def flooding(self, now: float | None = None) -> bool:
        """True once the connection has been in debt for ``flood_seconds`` without recovering."""
        if self._over_since is None:
            return False
        return (self._clock() if now is None else now) - self._over_since >= self.flood_seconds


class LoopStallWatch:
    """Tells whether the event loop is, or just was, stalled (see the module docstring).

    The ticker is a bare loop timer, not a task. A timer's lateness measures a stall that spans
    its due time, whatever the interval, but a shorter interval catches shorter stalls: a stall
    longer than ``interval + threshold`` is always caught. So it ticks every ``interval``
    seconds while the hub is busy and every ``idle_interval`` seconds once ``activity`` (a
    counter the hub bumps per message) has not moved for ``idle_after`` seconds: every wake-up
    of an idle process costs CPU (~0.2 ms each on a small VM, ten a second was most of an idle
    hub's CPU), and an idle hub has no backlog a short stall could pile up. A stall while idle
    is still caught once it is longer than ``idle_interval + threshold``, its length then
    measured short by up to ``idle_interval``. Without ``activity`` it always ticks fast.

    Why 0.25 s busy: a stall only matters to the rate limiter once the backlog it piles up is
    past the burst, two seconds of the rate with the defaults (40 messages at 20/s); every stall
    over half a second is caught, with four wake-ups a second instead of ten.
    """

    def __init__(
        self,
        interval: float = 0.25,
        threshold: float = 0.25,
        grace: float = 1.0,
        *,
        idle_interval: float = 1.0,
        idle_after: float = 1.0,
        activity: Callable[[], int] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 < interval <= idle_interval:
            raise ConfigError("need 0 < interval <= idle_interval")
        self.interval, self.threshold, self.grace = interval, threshold, grace
        self.idle_interval, self.idle_after = idle_interval, idle_after
        self._activity = activity
        self._clock = clock
        self._last_tick = clock()
        #: The interval the pending tick was scheduled with (its lateness is measured against it).
        self._due_in = interval
        self._seen = 0
        self._quiet_since = self._last_tick
        self._forgive_until = -math.inf
        # Seconds the loop was stalled since the current forgiveness window opened.
        self._stalled = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Stalls seen, and the longest (seconds), for display.
        self.stalls = 0
        self.longest = 0.0
        #: Ticks run so far (what an idle hub's watch costs is counted in them).
        self.ticks = 0

    @property
    def idle(self) -> bool:
        """True while the ticker runs at ``idle_interval`` (no activity lately)."""
        return self._due_in != self.interval

    def start(self) -> None:
        """Start the ticker on the running loop (idempotent)."""
        if self._timer is None:
            self._loop = asyncio.get_running_loop()
            self._last_tick = self._quiet_since = self._clock()
            self._seen = self._activity() if self._activity is not None else 0
            self._schedule(self.interval)

    async def stop(self) -> None:
        """Stop the ticker."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _schedule(self, interval: float) -> None:
        assert self._loop is not None
        self._due_in = interval
        self._timer = self._loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        now = self._clock()
        late = now - self._last_tick - self._due_in
        if late > self.threshold:
            self.stalls += 1
            self.longest = max(self.longest, late)
            if now >= self._forgive_until:
                self._stalled = 0.0  # the last window had closed: this one starts afresh
            self._stalled += late
            self._forgive_until = max(self._forgive_until, now + self.grace + 2 * late)
        self._last_tick = now
        interval = self.interval
        if self._activity is not None:
            seen = self._activity()
            if seen != self._seen:
                self._seen, self._quiet_since = seen, now
            elif now - self._quiet_since >= self.idle_after:
                interval = self.idle_interval
        self._schedule(interval)

    def forgives(self, now: float | None = None) -> bool:
        """True while the loop is stalled (the ticker is overdue) or just after (see above)."""
        return self.forgiven_seconds(now) > 0.0

    def forgiven_seconds(self, now: float | None = None) -> float:
        """Seconds of stall that may explain a backlog now, ``grace`` included (0.0: none)."""
        if now is None:
            now = self._clock()
        overdue = now - self._last_tick - self._due_in
        if self._timer is not None and overdue > self.threshold:
            # The ticker has not run yet: we are coming back from a stall right now.
            stalled = self._stalled if now < self._forgive_until else 0.0
            return stalled + overdue + self.grace
        return self._stalled + self.grace if now < self._forgive_until else 0.0
