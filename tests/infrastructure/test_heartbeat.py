"""Heartbeats: the pure timer on a fake clock, and the monitor finding dead peers over real sockets.

The timer tests pin the arithmetic: a ping is due ``ping_interval`` after the last pong, the peer
is dead exactly ``pong_timeout`` after an unanswered ping, so the worst case is their sum.

The socket tests start a hub-like server whose handler puts every connection under a
:class:`HeartbeatMonitor` and then echoes until the connection ends, and connect peers that stop
answering in each way a real peer does: a *zombie* that never reads, a *half-open* connection
whose network path silently drops everything (a :class:`~wslab.lab.faults.TcpProxy` turned black
hole), and a *frozen process* (a client in a subprocess, stopped with SIGSTOP by a
:class:`~wslab.lab.faults.FrozenProcess`). Each must be closed with 1011 within
``ping_interval + pong_timeout`` (plus a generous scheduling tick) of its last pong, while healthy
peers are never closed and keep being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConfigError
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.events import Event, EventKind, EventLog
from wslab.infrastructure.heartbeat import HeartbeatAction, HeartbeatMonitor, HeartbeatTimer
from wslab.infrastructure.server import Server
from wslab.lab.faults import FrozenProcess, TcpProxy
from wslab.testing import FakeClock, wait_until

PING_INTERVAL = 0.2
PONG_TIMEOUT = 0.3
#: Scheduling slack on top of the configured bound: generous, because CI machines are noisy.
TICK = 0.5
DETECTION_BOUND = PING_INTERVAL + PONG_TIMEOUT + TICK
#: How long a test waits for something before failing instead of hanging (not a timing check).
GUARD = 10.0


# -- the timer, on a fake clock ---------------------------------------------------------------------


def test_a_ping_is_due_one_interval_after_the_start() -> None:
    clock = FakeClock(100.0)
    timer = HeartbeatTimer(ping_interval=20.0, pong_timeout=10.0, started_at=clock())
    assert timer.due(clock()) is HeartbeatAction.WAIT
    assert timer.next_check(clock()) == 20.0
    clock.advance(19.5)
    assert timer.due(clock()) is HeartbeatAction.WAIT
    assert timer.next_check(clock()) == pytest.approx(0.5)
    clock.advance(0.5)
    assert timer.due(clock()) is HeartbeatAction.PING
    assert timer.next_check(clock()) == 0.0


def test_the_peer_is_dead_exactly_pong_timeout_after_an_unanswered_ping() -> None:
    clock = FakeClock()
    timer = HeartbeatTimer(ping_interval=20.0, pong_timeout=10.0)
    clock.advance(20.0)
    timer.ping_sent(clock())
    assert timer.due(clock()) is HeartbeatAction.WAIT  # waiting for the pong, not pinging again
    assert timer.next_check(clock()) == 10.0
    deadline = clock() + 10.0
    assert timer.due(math.nextafter(deadline, 0.0)) is HeartbeatAction.WAIT
    assert not timer.missed
    assert timer.due(deadline) is HeartbeatAction.DEAD
    assert timer.missed
    assert timer.next_check(deadline) == 0.0


def test_a_pong_gives_the_rtt_and_restarts_the_interval() -> None:
    clock = FakeClock()
    timer = HeartbeatTimer(ping_interval=20.0, pong_timeout=10.0)
    clock.advance(20.0)
    timer.ping_sent(clock())
    clock.advance(0.25)
    assert timer.pong_received(clock()) == pytest.approx(0.25)
    assert timer.last_pong_at == clock()
    assert timer.ping_sent_at is None
    # Long after the ping's deadline the peer is fine: the next ping is due 20 s after the pong.
    assert timer.next_check(clock()) == 20.0
    clock.advance(19.0)
    assert timer.due(clock()) is HeartbeatAction.WAIT
    clock.advance(1.0)
    assert timer.due(clock()) is HeartbeatAction.PING
    # A pong nobody asked for (no ping waiting) has no RTT but still counts as a sign of life.
    assert timer.pong_received(clock()) is None
    assert timer.due(clock()) is HeartbeatAction.WAIT


def test_the_detection_bound_is_interval_plus_timeout() -> None:
    assert HeartbeatTimer(ping_interval=20.0, pong_timeout=10.0).detection_bound == 30.0
    assert HeartbeatTimer(ping_interval=0.2, pong_timeout=0.3).detection_bound == pytest.approx(0.5)


@pytest.mark.parametrize(("interval", "timeout"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_intervals_and_timeouts_must_be_positive(interval: float, timeout: float) -> None:
    with pytest.raises(ConfigError):
        HeartbeatTimer(ping_interval=interval, pong_timeout=timeout)
    with pytest.raises(ConfigError):
        HeartbeatMonitor(ping_interval=interval, pong_timeout=timeout)


_seconds = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(start=_seconds, interval=_seconds, timeout=_seconds, rtts=st.lists(_seconds, max_size=5))
def test_a_peer_that_falls_silent_is_declared_dead_at_the_bound(
    start: float, interval: float, timeout: float, rtts: list[float]
) -> None:
    """Driven the way the monitor drives it — ask ``due``, then wait ``next_check`` — the timer
    pings after each interval, and once the peer stops answering says DEAD at ``interval +
    timeout`` after its last pong, in a bounded number of steps (never "check again in 0 s" while
    still saying WAIT)."""
    clock = FakeClock(start)
    timer = HeartbeatTimer(ping_interval=interval, pong_timeout=timeout, started_at=start)
    answers = list(rtts)  # the peer answers these pings (with these RTTs) and then falls silent
    steps = 0
    while True:
        steps += 1
        assert steps <= 3 * (len(rtts) + 1) + 1, "the timer keeps asking to check again"
        action = timer.due(clock())
        if action is HeartbeatAction.DEAD:
            break
        if action is HeartbeatAction.PING:
            timer.ping_sent(clock())
            if answers:
                rtt = min(answers.pop(0), timeout / 2)
                clock.advance(rtt)
                assert timer.pong_received(clock()) == pytest.approx(rtt)
                continue
        wait = timer.next_check(clock())
        assert wait > 0.0  # due() said WAIT, so there is something to wait for
        clock.advance(wait)
    silent_for = clock() - timer.last_pong_at
    assert silent_for == pytest.approx(interval + timeout)
    assert silent_for <= timer.detection_bound * (1 + 1e-9)


# -- a hub-like server with a heartbeat, over real sockets ------------------------------------------


@dataclass
class Hub:
    """A server whose every connection is watched by one :class:`HeartbeatMonitor`."""

    server: Server
    monitor: HeartbeatMonitor
    events: EventLog
    rtts: dict[str, list[float]] = field(default_factory=dict)
    declared_dead: list[str] = field(default_factory=list)

    def connection_events(self, kind: EventKind, connection_id: str) -> list[Event]:
        return self.events.events(kind, connection_id)

    async def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        """Poll ``predicate`` until true; fail (rather than hang) after :data:`GUARD` seconds."""
        await wait_until(predicate, what, timeout=GUARD)

    async def next_connection(self, known: set[str]) -> Connection:
        """The first server-side connection (being watched) whose id is not in ``known``."""
        await self.wait_for(
            lambda: any(
                cid not in known and self.connection_events(EventKind.CUSTOM, cid)
                for cid in self.server.connections
            ),
            "the server to watch a new connection",
        )
        return next(c for cid, c in self.server.connections.items() if cid not in known)

    async def wait_pongs(self, connection_id: str, count: int) -> None:
        await self.wait_for(
            lambda: len(self.connection_events(EventKind.PONG, connection_id)) >= count,
            f"{count} pongs from {connection_id}",
        )

    async def wait_disconnected(self, connection_id: str) -> None:
        await self.wait_for(
            lambda: bool(self.connection_events(EventKind.DISCONNECT, connection_id)),
            f"{connection_id} to be closed",
        )

    def assert_detected_within_bound(self, connection_id: str) -> None:
        """The dead peer was found and closed with 1011 within the bound after its last pong."""
        pongs = self.connection_events(EventKind.PONG, connection_id)
        watched = self.connection_events(EventKind.CUSTOM, connection_id)
        last_sign_of_life = pongs[-1].t if pongs else watched[0].t
        (verdict,) = self.connection_events(EventKind.HEARTBEAT_TIMEOUT, connection_id)
        (disconnect,) = self.connection_events(EventKind.DISCONNECT, connection_id)
        # Never early: a ping is due one interval after the last pong and waits one timeout.
        assert verdict.fields["silent_for"] >= PING_INTERVAL + PONG_TIMEOUT - 1e-6  # type: ignore[operator]
        # Never late (the bound the heartbeat promises, with a generous tick).
        assert verdict.t - last_sign_of_life <= DETECTION_BOUND
        assert disconnect.t - last_sign_of_life <= DETECTION_BOUND
        closes_out = [
            e
            for e in self.connection_events(EventKind.CLOSE, connection_id)
            if e.fields.get("direction") == "out"
        ]
        aborted = [
            e
            for e in self.connection_events(EventKind.ERROR, connection_id)
            if e.fields.get("error") == "abort"
        ]
        assert [e.fields["code"] for e in closes_out] == [CloseCode.INTERNAL_ERROR] or aborted
        assert disconnect.fields["by"] == "local"
        assert connection_id in self.declared_dead


@contextlib.asynccontextmanager
async def running_hub(engine: str = "wslab") -> AsyncIterator[Hub]:
    """Serve on ``engine``: watch each connection, echo until it ends; stop everything after."""
    events = EventLog(level="lifecycle")
    hub: Hub

    def on_rtt(connection: Connection, rtt: float) -> None:
        hub.rtts.setdefault(connection.id, []).append(rtt)

    monitor = HeartbeatMonitor(
        ping_interval=PING_INTERVAL,
        pong_timeout=PONG_TIMEOUT,
        event_log=events,
        on_rtt=on_rtt,
        on_dead=lambda connection: hub.declared_dead.append(connection.id),
    )

    async def handler(connection: Connection) -> None:
        events.record(EventKind.CUSTOM, connection.id, mark="watched")
        monitor.watch(connection)
        try:
            async for message in connection:
                await connection.send(message)
        finally:
            monitor.unwatch(connection)

    limits = ConnectionLimits(close_timeout=1.0)
    server = await serve(handler, engine=engine, limits=limits, event_log=events)
    hub = Hub(server, monitor, events)
    try:
        yield hub
    finally:
        await monitor.close()
        await server.close()


async def _echo_loop(client: Connection, served: list[int], stop: asyncio.Event) -> None:
    """A healthy client: one request/reply after another until told to stop."""
    n = 0
    while not stop.is_set():
        await client.send(f"still here {n}")
        assert await client.recv() == f"still here {n}"
        served.append(n)
        n += 1
        await asyncio.sleep(0.02)


# -- (a) a zombie, and healthy neighbours --------------------------------------------------------


async def test_a_zombie_is_closed_with_1011_while_healthy_clients_are_served(
    engine: str, raw_client: Callable[..., Awaitable[Any]]
) -> None:
    async with running_hub(engine) as hub:
        healthy = await connect(hub.server.url, engine=engine)
        healthy_side = await hub.next_connection(set())
        # The zombie completes the handshake and then never reads a byte: no pong ever comes.
        zombie = await raw_client(hub.server.port)
        assert (await zombie.upgrade("/ws")).status == 101
        zombie_side = await hub.next_connection({healthy_side.id})
        served: list[int] = []
        stop = asyncio.Event()
        chatting = asyncio.ensure_future(_echo_loop(healthy, served, stop))
        try:
            await hub.wait_disconnected(zombie_side.id)
            served_at_verdict = len(served)
            await hub.wait_for(lambda: len(served) > served_at_verdict + 3, "more echoes")
        finally:
            stop.set()
            await chatting  # re-raises if the healthy client was not served
        hub.assert_detected_within_bound(zombie_side.id)
        assert zombie_side.closed
        assert zombie_side.close_code == CloseCode.ABNORMAL_CLOSURE  # the zombie sent no close
        # What finally reached the zombie: pings it never answered, then the 1011.
        _, close = await asyncio.wait_for(zombie.read_until_close(), GUARD)
        assert close is not None and close[0] == CloseCode.INTERNAL_ERROR
        # The healthy neighbour answered every ping and is still open and served.
        assert served
        assert not healthy_side.closed
        assert hub.connection_events(EventKind.PONG, healthy_side.id)
        assert not hub.connection_events(EventKind.HEARTBEAT_TIMEOUT, healthy_side.id)
        assert hub.declared_dead == [zombie_side.id]
        assert hub.monitor.dead_peers == 1
        await healthy.send("after the zombie")
        assert await healthy.recv() == "after the zombie"
        await healthy.close()


# -- (b) half-open TCP: the network path drops everything ----------------------------------------


async def test_a_half_open_connection_is_detected_and_closed(engine: str) -> None:
    async with running_hub(engine) as hub:
        proxy = await TcpProxy("127.0.0.1", hub.server.port).start()
        client = await connect(f"ws://127.0.0.1:{proxy.port}/ws", engine=engine)
        try:
            await client.send("through the proxy")
            assert await client.recv() == "through the proxy"
            server_side = await hub.next_connection(set())
            await hub.wait_pongs(server_side.id, 1)  # the path worked, pings were answered
            proxy.blackhole()
            await hub.wait_disconnected(server_side.id)
            hub.assert_detected_within_bound(server_side.id)
            # Neither side of the proxy was closed: the client still believes it is connected.
            assert not client.closed
        finally:
            client.abort()
            await proxy.stop()


# -- (c) a frozen process ------------------------------------------------------------------------

_CLIENT = """
import asyncio, json, sys
from wslab.infrastructure.engines.wslab import connect

async def main() -> None:
    connection = await connect(sys.argv[1])
    print(json.dumps({"event": "connected"}), flush=True)
    await connection.wait_closed()  # pings are answered by the engine, without any reading

asyncio.run(main())
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP (POSIX)")
async def test_a_frozen_process_is_detected_and_closed() -> None:
    async with running_hub() as hub:
        # Killed (frozen or not) when the block ends.
        with FrozenProcess([sys.executable, "-c", _CLIENT, hub.server.url + "/ws"]) as process:
            assert await process.start(GUARD) == {"event": "connected"}
            server_side = await hub.next_connection(set())
            await hub.wait_pongs(server_side.id, 1)  # alive and answering
            process.freeze()  # SIGSTOP: the kernel still ACKs, nobody pongs
            await hub.wait_disconnected(server_side.id)
            hub.assert_detected_within_bound(server_side.id)


# -- (d) a healthy peer --------------------------------------------------------------------------


async def test_a_healthy_peer_is_never_closed_and_its_rtt_is_measured(engine: str) -> None:
    async with running_hub(engine) as hub:
        client = await connect(hub.server.url, engine=engine)
        server_side = await hub.next_connection(set())
        # Several intervals, several pongs: each one restarts the interval, none is late.
        await hub.wait_pongs(server_side.id, 4)
        assert not server_side.closed and not client.closed
        assert hub.monitor.watched == 1
        assert hub.monitor.dead_peers == 0
        assert not hub.connection_events(EventKind.HEARTBEAT_TIMEOUT, server_side.id)
        rtts = hub.rtts[server_side.id]
        assert len(rtts) >= 3
        assert all(0.0 <= rtt < PONG_TIMEOUT for rtt in rtts)  # answered, hence in time
        assert server_side.stats.pongs_received >= 4
        assert server_side.stats.last_rtt is not None
        assert server_side.info()["rtt_ms"] is not None
        pong_rtts = [e.fields["rtt"] for e in hub.connection_events(EventKind.PONG, server_side.id)]
        assert all(isinstance(rtt, float) for rtt in pong_rtts)
        await client.send("fine")
        assert await client.recv() == "fine"
        await client.close()
        await hub.wait_disconnected(server_side.id)
        # The heartbeat stops with its connection.
        await hub.wait_for(lambda: hub.monitor.watched == 0, "the heartbeat to stop")


# -- the monitor's own bookkeeping ---------------------------------------------------------------


async def test_watch_is_idempotent_and_unwatch_stops_the_pings() -> None:
    events = EventLog()
    monitor = HeartbeatMonitor(ping_interval=0.05, pong_timeout=0.3, event_log=events)
    connected: asyncio.Queue[Connection] = asyncio.Queue(maxsize=1)

    async def handler(connection: Connection) -> None:
        await connected.put(connection)
        await connection.wait_closed()

    async with await serve(handler) as server:
        client = await connect(server.url)
        server_side = await asyncio.wait_for(connected.get(), GUARD)
        monitor.watch(server_side)
        monitor.watch(server_side)
        assert monitor.watched == 1
        for _ in range(int(GUARD / 0.01)):
            if server_side.stats.pongs_received >= 2:
                break
            await asyncio.sleep(0.01)
        assert server_side.stats.pongs_received >= 2
        monitor.unwatch(server_side)
        assert monitor.watched == 0
        await asyncio.sleep(0)  # let the cancelled heartbeat finish
        pings = server_side.stats.pings_sent
        await asyncio.sleep(0.2)  # four intervals: no more pings
        assert server_side.stats.pings_sent == pings
        assert not server_side.closed
        await client.close()
    await monitor.close()


async def test_a_heartbeat_due_while_closing_ends_quietly(
    raw_client: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """A close this end started and the peer never answers is the close timeout's business: the
    heartbeat stops without logging a failure when its ping can no longer be sent."""
    monitor = HeartbeatMonitor(ping_interval=0.05, pong_timeout=0.05)
    closing: asyncio.Queue[Connection] = asyncio.Queue(maxsize=1)

    async def handler(connection: Connection) -> None:
        monitor.watch(connection)
        await closing.put(connection)
        await connection.close()  # the zombie never answers: aborted after close_timeout

    limits = ConnectionLimits(close_timeout=0.5)
    with caplog.at_level(logging.ERROR, logger="wslab.heartbeat"):
        async with await serve(handler, limits=limits) as server:
            zombie = await raw_client(server.port)
            assert (await zombie.upgrade()).status == 101
            server_side = await asyncio.wait_for(closing.get(), GUARD)
            await asyncio.wait_for(server_side.wait_closed(), GUARD)
            await asyncio.sleep(0)
        await monitor.close()
    assert monitor.watched == 0
    assert not [r for r in caplog.records if r.name == "wslab.heartbeat"]


async def test_many_connections_share_the_wheel_and_leave_nothing_behind() -> None:
    """Every watched connection is pinged and answers, the wheel holds each beat at most once,
    and once they are gone it holds nothing (its single loop timer included)."""
    async with running_hub() as hub:
        clients = [await connect(hub.server.url) for _ in range(30)]
        await hub.wait_for(lambda: hub.monitor.watched == 30, "30 watched")
        ids = list(hub.server.connections)
        for connection_id in ids:
            await hub.wait_pongs(connection_id, 2)
        monitor = hub.monitor
        assert sum(len(beats) for beats in monitor._slots.values()) <= 30
        assert monitor.dead_peers == 0
        for client in clients:
            await client.close()
        await hub.wait_for(lambda: monitor.watched == 0, "every heartbeat stopped")
        await hub.wait_for(lambda: not monitor._slots, "the wheel emptied")
