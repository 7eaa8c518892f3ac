"""Heartbeats: find peers that stopped answering, and measure the round-trip time of those that do.

TCP alone cannot tell a quiet peer from a dead one: a half-open connection (the peer's machine
lost power, a NAT forgot the mapping) or a frozen process looks exactly like silence, for hours.
So the hub pings every ``ping_interval`` seconds and declares the peer dead when no pong arrives
within ``pong_timeout``. The worst case for detection is therefore ``ping_interval +
pong_timeout`` after the peer's last pong (plus one scheduling tick).

The decision is pure (:class:`HeartbeatTimer`: times in, verdicts out, so a notebook can drive it
with a fake clock); :class:`HeartbeatMonitor` runs one timer per connection on the event loop and
acts on the verdicts: a ping, or closing the connection with 1011.

The monitor's checks sit on a timer wheel, not one loop timer each: slots of
:data:`TICKS_PER_PERIOD`-ths of the shorter of the two periods, one loop timer for the earliest
slot. Watching a connection puts it in a slot (a set insertion) instead of creating a
``TimerHandle`` and pushing it on the loop's heap, which a hub accepting thousands of
connections paid for each; and the checks due together run in one callback. A check runs at
most one slot late, never early (the timer decides, and says "wait" to a check that came early).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConfigError, ConnectionClosed
from wslab.foundation.state import ConnectionState

from .connection import Connection
from .events import NULL_EVENT_LOG, EventKind, EventLog

__all__ = ["TICKS_PER_PERIOD", "HeartbeatAction", "HeartbeatMonitor", "HeartbeatTimer"]

#: Slots of the timer wheel per ``min(ping_interval, pong_timeout)``: a ping or a verdict comes
#: at most this fraction of that period late (0.5 s with the defaults of 20 s and 10 s).
TICKS_PER_PERIOD = 20

log = logging.getLogger("wslab.heartbeat")


class HeartbeatAction(enum.Enum):
    """What the timer says to do now."""

    WAIT = "wait"
    PING = "ping"
    DEAD = "dead"


@dataclass
class HeartbeatTimer:
    """The heartbeat's logic for one connection, with time passed in.

    ``due(now)`` says whether to ping, to wait, or that the peer is dead; ``next_check(now)`` says
    when to ask again. ``ping_sent(now)`` and ``pong_received(now)`` report what happened.
    """

    ping_interval: float
    pong_timeout: float
    started_at: float = 0.0

    def __post_init__(self) -> None:
        if self.ping_interval <= 0 or self.pong_timeout <= 0:
            raise ConfigError("ping_interval and pong_timeout must be positive")
        self.last_pong_at = self.started_at
        self.ping_sent_at: float | None = None
        self.missed = False

    def _deadline(self) -> float:
        """When the verdict changes: the pong's deadline while a ping waits, else the next ping."""
        if self.ping_sent_at is not None:
            return self.ping_sent_at + self.pong_timeout
        return self.last_pong_at + self.ping_interval

    def due(self, now: float) -> HeartbeatAction:
        """The verdict at ``now``."""
        # Compare against the very deadline next_check() uses: ``now - sent >= timeout`` can be
        # false at ``now == sent + timeout`` (float rounding), and a caller told "check again in
        # 0 s" would then spin without ever getting a verdict.
        if now < self._deadline():
            return HeartbeatAction.WAIT
        if self.ping_sent_at is not None:
            self.missed = True
            return HeartbeatAction.DEAD
        return HeartbeatAction.PING

    def next_check(self, now: float) -> float:
        """Seconds until the verdict can next change (0 if it is due now)."""
        return max(0.0, self._deadline() - now)

    def ping_sent(self, now: float) -> None:
        """A ping went out at ``now``."""
        self.ping_sent_at = now

    def pong_received(self, now: float) -> float | None:
        """The pong came back at ``now``; returns the round-trip time."""
        rtt = None if self.ping_sent_at is None else now - self.ping_sent_at
        self.ping_sent_at = None
        self.last_pong_at = now
        return rtt

    @property
    def detection_bound(self) -> float:
        """The longest a dead peer can go unnoticed after its last pong."""
        return self.ping_interval + self.pong_timeout


RttObserver = Callable[[Connection, float], None]


class _Beat:
    """One watched connection: its timer, the wheel slot of its check, the ping waiting for its
    pong."""

    __slots__ = ("connection", "pong", "slot", "timer")

    def __init__(self, connection: Connection, timer: HeartbeatTimer) -> None:
        self.connection = connection
        self.timer = timer
        self.slot: int | None = None
        self.pong: asyncio.Future[float] | None = None


class HeartbeatMonitor:
    """Runs a :class:`HeartbeatTimer` for every watched connection.

    ``on_rtt(connection, seconds)`` is called for each pong (metrics feed on it); ``on_error``
    hears of a heartbeat check that failed (it is also logged). A dead peer gets
    a close frame with 1011 and its TCP connection is closed (aborted if even that cannot go out).

    No task and no loop timer per connection: each sits in one slot of the monitor's timer
    wheel (the next ping, or the pong's deadline) and has a callback on its ping's future — a
    few hundred bytes instead of a task, its coroutine frame and its sleeps, which matters at
    10,000 idle connections.
    """

    def __init__(
        self,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        *,
        event_log: EventLog | None = None,
        on_rtt: RttObserver | None = None,
        on_dead: Callable[[Connection], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ping_interval <= 0 or pong_timeout <= 0:
            raise ConfigError("ping_interval and pong_timeout must be positive")
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.events = event_log if event_log is not None else NULL_EVENT_LOG
        self.on_rtt = on_rtt
        self.on_dead = on_dead
        self.on_error = on_error
        self.clock = clock
        self._beats: dict[str, _Beat] = {}
        self.dead_peers = 0
        #: The wheel: slot -> the beats whose check is due in it (slot ``k`` ends at loop time
        #: ``k * _tick``). Holds each watched beat at most once: bounded by the watched.
        self._tick = min(ping_interval, pong_timeout) / TICKS_PER_PERIOD
        self._slots: dict[int, set[_Beat]] = {}
        self._wakeup: asyncio.TimerHandle | None = None
        self._wakeup_slot: int | None = None
        self._turning = False  # _turn sets the next wakeup itself, once, when it is done

    @property
    def watched(self) -> int:
        """How many connections are being watched."""
        return len(self._beats)

    def watch(self, connection: Connection) -> None:
        """Start the heartbeat of ``connection``; it stops by itself when the connection closes."""
        if connection.id in self._beats or connection.closed:
            return
        beat = _Beat(
            connection, HeartbeatTimer(self.ping_interval, self.pong_timeout, self.clock())
        )
        self._beats[connection.id] = beat
        self._schedule(beat)

    def unwatch(self, connection: Connection) -> None:
        """Stop the heartbeat of ``connection``."""
        beat = self._beats.pop(connection.id, None)
        if beat is not None:
            self._unschedule(beat)

    async def close(self) -> None:
        """Stop every heartbeat."""
        self._beats.clear()
        self._slots.clear()
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup = self._wakeup_slot = None

    # -- the wheel --

    def _schedule(self, beat: _Beat) -> None:
        """Put ``beat``'s next check in the slot its timer's deadline falls in."""
        self._unschedule(beat)
        loop = asyncio.get_running_loop()
        due = loop.time() + beat.timer.next_check(self.clock())
        slot = math.ceil(due / self._tick)  # the slot that ends at or after the deadline
        beat.slot = slot
        members = self._slots.get(slot)
        if members is None:
            self._slots[slot] = {beat}
            if not self._turning and (self._wakeup_slot is None or slot < self._wakeup_slot):
                self._wake_at(loop, slot)
        else:
            members.add(beat)

    def _unschedule(self, beat: _Beat) -> None:
        if beat.slot is None:
            return
        members = self._slots.get(beat.slot)
        if members is not None:
            members.discard(beat)
            if not members:
                del self._slots[beat.slot]  # the wakeup, if for this slot, finds nothing: fine
        beat.slot = None

    def _wake_at(self, loop: asyncio.AbstractEventLoop, slot: int) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup_slot = slot
        self._wakeup = loop.call_at(slot * self._tick, self._turn)

    def _turn(self) -> None:
        """The wheel's timer: run every check whose slot has ended, then wait for the next."""
        self._wakeup = self._wakeup_slot = None
        loop = asyncio.get_running_loop()
        # A hair of slack: call_at may fire a fraction of a microsecond before slot * tick (a
        # check that comes early is told to wait by its timer, and put back in its slot).
        now = math.floor(loop.time() / self._tick + 1e-6)
        self._turning = True
        try:
            for slot in sorted(s for s in self._slots if s <= now):
                for beat in list(self._slots.pop(slot, ())):
                    beat.slot = None
                    self._check(beat)
        finally:
            self._turning = False
            if self._slots:
                self._wake_at(loop, min(self._slots))

    def _current(self, beat: _Beat) -> bool:
        """True while ``beat`` is still watched and its connection open (else forget it)."""
        if self._beats.get(beat.connection.id) is not beat:
            return False
        if beat.connection.closed:
            self._beats.pop(beat.connection.id, None)
            return False
        return True

    def _check(self, beat: _Beat) -> None:
        """The timer's deadline: ping, declare the peer dead, or wait on."""
        if not self._current(beat):
            return
        try:
            connection, timer = beat.connection, beat.timer
            now = self.clock()
            action = timer.due(now)
            if action is HeartbeatAction.DEAD:
                self._beats.pop(connection.id, None)
                self._declare_dead(connection, timer, now)
                return
            if action is HeartbeatAction.PING:
                timer.ping_sent(now)
                beat.pong = pong = connection.ping()
                pong.add_done_callback(lambda future: self._ponged(beat, future))
            self._schedule(beat)
        except Exception as error:
            self._failed(beat, error)

    def _ponged(self, beat: _Beat, pong: asyncio.Future[float]) -> None:
        """The ping's future is done: a pong (the RTT), or the connection closing."""
        if beat.pong is not pong:
            return
        beat.pong = None
        if pong.cancelled():
            return  # a newer ping replaced it (max_pending_pings)
        error = pong.exception()
        if not self._current(beat):
            return
        if error is not None:
            if (
                isinstance(error, ConnectionClosed)
                and beat.connection.state is not ConnectionState.OPEN
            ):
                # A close is under way (this end's, or the peer's): the close timeout now
                # bounds how long the connection lives.
                self._beats.pop(beat.connection.id, None)
                self._unschedule(beat)
                return
            self._failed(beat, error)
            return
        if beat.timer.ping_sent_at is None:
            return
        rtt = beat.timer.pong_received(self.clock())
        if rtt is not None and self.on_rtt is not None:
            try:
                self.on_rtt(beat.connection, rtt)
            except Exception as failure:
                self._failed(beat, failure)
                return
        self._schedule(beat)

    def _failed(self, beat: _Beat, error: BaseException) -> None:
        """A check failed: stop this heartbeat, log it, tell ``on_error``."""
        connection_id = beat.connection.id
        if self._beats.get(connection_id) is beat:
            del self._beats[connection_id]
        self._unschedule(beat)
        log.error("heartbeat of %s failed", connection_id, exc_info=error)
        if self.on_error is not None:
            self.on_error(error)

    def _declare_dead(self, connection: Connection, timer: HeartbeatTimer, now: float) -> None:
        self.dead_peers += 1
        silent_for = now - timer.last_pong_at
        self.events.record(
            EventKind.HEARTBEAT_TIMEOUT,
            connection.id,
            silent_for=silent_for,
            pong_timeout=self.pong_timeout,
            ping_interval=self.ping_interval,
        )
        log.info("peer %s did not answer a ping within %.1fs", connection.id, self.pong_timeout)
        if self.on_dead is not None:
            self.on_dead(connection)
        connection.fail(CloseCode.INTERNAL_ERROR, "heartbeat: no pong in time")
