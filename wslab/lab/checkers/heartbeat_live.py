"""The live exercise of chapter 3: heartbeat settings plugged into a running hub, judged by a workload.

The exercise: choose ``ping_interval`` and ``pong_timeout`` for a hub (seconds, on a fast clock
so that the check takes seconds, not minutes) such that, under a jittery network,

- a client that goes silent (a :class:`~wslab.lab.faults.ZombieClient`) is closed by the
  heartbeat within :data:`LIVE_DETECT_WITHIN` seconds of connecting (it never answers a ping;
  the hub sends 1011, which the zombie never reads, so the hub records the end as 1006);
- a healthy client behind a :class:`~wslab.lab.faults.TcpProxy` adding :data:`LIVE_DELAY` s
  plus up to :data:`LIVE_JITTER` s in each direction stays connected for :data:`LIVE_RUN`
  seconds — its slowest round trips are ``2 * (LIVE_DELAY + LIVE_JITTER)``;
- pings go out at most every :data:`LIVE_MIN_INTERVAL` seconds (the cost side of the trade-off
  is chapter 3's simulated exercise; here the interval only has a floor).

:func:`check_live_heartbeat_exercise` starts a hub in this process with those settings, runs
both clients against it, reads the verdicts from the hub's event log and stops everything.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .verdicts import exercise, hint, success

__all__ = [
    "LIVE_DELAY",
    "LIVE_DETECT_WITHIN",
    "LIVE_JITTER",
    "LIVE_MIN_INTERVAL",
    "LIVE_RUN",
    "LiveHeartbeatRun",
    "check_live_heartbeat_exercise",
    "live_heartbeat_run",
]

LIVE_DETECT_WITHIN = 2.5
LIVE_DELAY = 0.3
LIVE_JITTER = 0.3
LIVE_RUN = 4.0
LIVE_MIN_INTERVAL = 0.25


@dataclass
class LiveHeartbeatRun:
    """What the hub did: when it closed the zombie, whether the healthy client survived."""

    zombie_closed_after: float | None
    zombie_code: int | None
    healthy_closed_code: int | None
    healthy_pings: int
    duration: float

    @property
    def pings_per_second(self) -> float:
        return self.healthy_pings / self.duration if self.duration else 0.0


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise hint(f"{name} must be a number of seconds, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise hint(f"{name} must be a positive, finite number of seconds, got {value!r}.")
    return float(value)


async def live_heartbeat_run(ping_interval: float, pong_timeout: float) -> LiveHeartbeatRun:
    """Run the workload against a hub with these settings; everything is stopped at the end."""
    from wslab.client import ChatClient
    from wslab.foundation.errors import ConnectionBroken
    from wslab.hub import Hub
    from wslab.infrastructure.events import EventKind
    from wslab.lab.faults import TcpProxy, ZombieClient

    with tempfile.TemporaryDirectory() as folder:
        hub = await Hub.start(
            port=0,
            database=f"sqlite:///{Path(folder) / 'chat.db'}",
            broker=f"memory://heartbeat-live-{uuid.uuid4().hex[:8]}",
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
        )
        proxy = await TcpProxy("127.0.0.1", hub.port).start()
        proxy.set_latency(LIVE_DELAY, LIVE_JITTER)
        healthy = zombie = None
        try:
            healthy = ChatClient(proxy.url_for(hub.ws_url), token=hub.token("hana"), reconnect=False)
            try:
                await healthy.connect()
            except ConnectionBroken as closed:
                # Closed before it had even joined the lobby: a timeout that short kills every
                # client on this link at once.
                return LiveHeartbeatRun(None, None, closed.close_code or 1006, 0, 0.0)
            info = healthy.connection_info
            assert info is not None  # connect() returned, so the greeting came
            healthy_id = info.connection_id
            started = time.monotonic()
            zombie = await ZombieClient.connect(hub.ws_url, token=hub.token("zed"))
            zombie_at = time.monotonic()
            await asyncio.sleep(LIVE_RUN)
            duration = time.monotonic() - started
            closes = hub.events.to_dataframe(EventKind.DISCONNECT)
            ours = closes[closes["connection_id"] != healthy_id]
            zombie_closed_after = zombie_code = None
            if len(ours):
                zombie_closed_after = float(ours["t"].iloc[0]) - zombie_at
                zombie_code = int(ours["code"].iloc[0])
            mine = closes[closes["connection_id"] == healthy_id]
            healthy_code = int(mine["code"].iloc[0]) if len(mine) else None
            pings = hub.events.to_dataframe(EventKind.PING, healthy_id)
        finally:
            if zombie is not None:
                await zombie.close()
            if healthy is not None:
                await healthy.close()
            await proxy.stop()
            await hub.stop()
    return LiveHeartbeatRun(zombie_closed_after, zombie_code, healthy_code, len(pings), duration)


@exercise("03.live_heartbeat", "Set `live_ping_interval` and `live_pong_timeout` to numbers of seconds.")
async def check_live_heartbeat_exercise(ping_interval: object, pong_timeout: object) -> LiveHeartbeatRun:
    """Plug the settings into a live hub under jitter; judge the three requirements."""
    interval = _seconds(ping_interval, "ping_interval")
    timeout = _seconds(pong_timeout, "pong_timeout")
    if interval < LIVE_MIN_INTERVAL:
        raise hint(
            f"a ping every {interval:g} s to every client is the hub's CPU spent on pings; "
            f"at least {LIVE_MIN_INTERVAL:g} s apart, please."
        )
    if interval + timeout > 10 * LIVE_DETECT_WITHIN:
        raise hint(f"with {interval:g} + {timeout:g} s the zombie would outlive the whole check.")
    run = await live_heartbeat_run(interval, timeout)
    if run.healthy_closed_code is not None:
        raise hint(
            f"the healthy client behind a {LIVE_DELAY:g} s + {LIVE_JITTER:g} s jittery link was "
            f"closed with {run.healthy_closed_code}. How long can its pong take, both ways, at "
            "the worst — and does your timeout leave room for that?"
        )
    if run.zombie_closed_after is None or run.zombie_closed_after > LIVE_DETECT_WITHIN:
        seen = "never" if run.zombie_closed_after is None else f"after {run.zombie_closed_after:.2f} s"
        raise hint(
            f"the silent client was closed {seen}; the limit is {LIVE_DETECT_WITHIN:g} s. What "
            "must pass before the hub can be sure: the wait for a ping, then for its pong."
        )
    success(
        f"the silent client was closed after {run.zombie_closed_after:.2f} s (limit "
        f"{LIVE_DETECT_WITHIN:g} s); the healthy one survived {run.duration:.1f} s of jitter, "
        f"answering {run.healthy_pings} pings."
    )
    return run
