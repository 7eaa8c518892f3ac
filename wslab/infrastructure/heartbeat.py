"""Heartbeats: find peers that stopped answering, and measure the round-trip time of those that do.

TCP alone cannot tell a quiet peer from a dead one: a half-open connection (the peer's machine
lost power, a NAT forgot the mapping) or a frozen process looks exactly like silence, for hours.
So the hub pings every ``ping_interval`` seconds and declares the peer dead when no pong arrives
within ``pong_timeout``. The worst case for detection is therefore ``ping_interval +
pong_timeout`` after the peer's last pong (plus one scheduling tick).

The decision is pure (:class:`HeartbeatTimer`: times in, verdicts out, so a notebook can drive it
with a fake clock); :class:`HeartbeatMonitor` runs one timer per connection on the event loop and
acts on the verdicts: a ping, or closing the connection with 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConfigError, ConnectionClosed
from wslab.foundation.state import ConnectionState

from .connection import Connection
from .events import NULL_EVENT_LOG, EventKind, EventLog

__all__ = ["HeartbeatAction", "HeartbeatMonitor", "HeartbeatTimer"]

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


class HeartbeatMonitor:
    """Runs a :class:`HeartbeatTimer` for every watched connection.

    ``on_rtt(connection, seconds)`` is called for each pong (metrics feed on it); ``on_error``
    hears of a heartbeat task that failed (it is also logged). A dead peer gets
    a close frame with 1011 and its TCP connection is closed (aborted if even that cannot go out).
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
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.dead_peers = 0

    @property
    def watched(self) -> int:
        """How many connections are being watched."""
        return len(self._tasks)

    def watch(self, connection: Connection) -> None:
        """Start the heartbeat of ``connection``; it stops by itself when the connection closes."""
        if connection.id in self._tasks:
            return
        task = asyncio.ensure_future(self._run(connection))
        self._tasks[connection.id] = task
        task.add_done_callback(functools.partial(self._done, connection.id))

    def unwatch(self, connection: Connection) -> None:
        """Stop the heartbeat of ``connection``."""
        task = self._tasks.pop(connection.id, None)
        if task is not None:
            task.cancel()

    def _done(self, connection_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.pop(connection_id, None)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("heartbeat of %s failed", connection_id, exc_info=error)
            if self.on_error is not None:
                self.on_error(error)

    async def close(self) -> None:
        """Stop every heartbeat."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, connection: Connection) -> None:
        timer = HeartbeatTimer(self.ping_interval, self.pong_timeout, started_at=self.clock())
        pong: asyncio.Future[float] | None = None
        while not connection.closed:
            now = self.clock()
            action = timer.due(now)
            if action is HeartbeatAction.PING:
                timer.ping_sent(now)
                pong = connection.ping()
            elif action is HeartbeatAction.DEAD:
                self._declare_dead(connection, timer, now)
                return
            wait = timer.next_check(self.clock())
            if pong is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(pong), wait)
                except asyncio.TimeoutError:
                    continue  # the timer will now say DEAD
                except ConnectionClosed:
                    # Closed, or a close is under way (this end's, or the peer's): the ping could
                    # not go out, and the close timeout now bounds how long the connection lives.
                    if connection.state is not ConnectionState.OPEN:
                        return
                    raise
                except asyncio.CancelledError:
                    if connection.closed:
                        return
                    raise
                rtt = timer.pong_received(self.clock())
                pong = None
                if rtt is not None and self.on_rtt is not None:
                    self.on_rtt(connection, rtt)
            else:
                await asyncio.sleep(wait)

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
