"""Faults against real hub processes, judged by the history checker.

Each test runs ``wslab serve`` as subprocesses with recording clients chatting in two rooms,
injects one fault mid-traffic, lets the clients reconnect and chat on, then reads every room
back from the store and hands the whole record to :func:`wslab.lab.history.check_history`:

- ``kill -9`` of the hub (SQLite): every acknowledged message is in the store after a restart;
- the SQLite file locked by another writer (``BEGIN EXCLUSIVE`` on a second connection);
- a partition through a TCP proxy between the clients and the hub;
- Redis (a private ``redis-server`` on a port of its own) restarted under two hubs;
- PostgreSQL unreachable (a proxy between hub and server cut) and back.

The verdict each time: no acknowledged message lost or duplicated, per-room order kept, and
``complete`` never lies. Waiting is by progress (acks counted), never by a timed assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.application.conftest import postgres_url
from tests.application.hubproc import Chatter, HubProcess, record_final_history
from tests.conftest import need_service, port_open
from wslab.lab.faults import TcpProxy
from wslab.lab.history import HistoryRecorder, check_history
from wslab.testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOMS = ["lobby", "ops"]
#: Bound on any wait for progress; only a broken hub reaches it.
PROGRESS = 60.0


async def acks_reach(chatters: list[Chatter], count: int) -> None:
    """Wait until the chatters together have ``count`` more acks than now."""
    target = sum(c.acked for c in chatters) + count
    await wait_until(lambda: sum(c.acked for c in chatters) >= target,
                     f"{count} more acks", timeout=PROGRESS)  # fmt: skip


async def judge(url: str, chatters: list[Chatter], recorder: HistoryRecorder) -> None:
    """Stop the chatters, read the store back and assert the checker's verdict.

    A message answered DEGRADED was queued for a retry and must be acked late: the chatters
    stay connected (sending nothing more) until every such ack has come.
    """
    for chatter in chatters:
        chatter.quiet()
    await wait_until(lambda: not any(c.degraded for c in chatters),
                     "the late acks of every DEGRADED message", timeout=PROGRESS)  # fmt: skip
    for chatter in chatters:
        await chatter.stop()
    await record_final_history(url, ROOMS, recorder)
    verdict = check_history(recorder)
    acks = recorder.frames()["acks"]
    assert len(acks) > 0
    print(f"verdict: valid={verdict.valid} {verdict.stats} {verdict.counts}; reconnects "
          f"{[c.incarnation - 1 for c in chatters]}, resyncs {[c.resyncs for c in chatters]}, "
          f"errors {[c.errors for c in chatters]}")
    assert verdict.valid, verdict.anomalies.head(20).to_string()


def chatters_for(url_of: list[str], recorder: HistoryRecorder, count: int = 3) -> list[Chatter]:
    """``count`` chatters over both rooms, connecting to ``url_of[i % len]``."""
    return [
        Chatter(f"u{i}", ROOMS, recorder, lambda i=i: url_of[i % len(url_of)]).start()
        for i in range(count)
    ]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chat.db'}"


@contextlib.asynccontextmanager
async def hub(database: str, **options: object) -> AsyncIterator[HubProcess]:
    process = await HubProcess(database, **options).start()  # type: ignore[arg-type]
    try:
        yield process
    finally:
        await process.stop()


# -- the hub process dies ---------------------------------------------------------------------------


async def test_kill_9_loses_no_acknowledged_message(sqlite_url: str) -> None:
    recorder = HistoryRecorder()
    first = await HubProcess(sqlite_url).start()
    url = [first.ws_url]
    chatters = chatters_for(url, recorder)
    try:
        await acks_reach(chatters, 60)
        first.kill()  # mid-traffic: acks in flight, clients attached
        await first.stop()
        async with hub(sqlite_url) as second:
            url[0] = second.ws_url
            await acks_reach(chatters, 60)  # everyone reconnected and chats on
            assert all(c.incarnation >= 2 for c in chatters)
            await judge(second.ws_url, chatters, recorder)
    finally:
        for chatter in chatters:
            await chatter.stop()
        await first.stop()


# -- the store is held by someone else --------------------------------------------------------------


async def test_sqlite_locked_by_another_writer(sqlite_url: str) -> None:
    recorder = HistoryRecorder()
    async with hub(sqlite_url) as process:
        chatters = chatters_for([process.ws_url], recorder)
        await acks_reach(chatters, 30)
        # A second writer takes the file: the hub can neither write nor read it meanwhile.
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=30,
                                isolation_level=None)  # fmt: skip
        other.execute("BEGIN EXCLUSIVE")
        locked_at = sum(c.acked for c in chatters)
        await asyncio.sleep(3)  # the fault's duration, not an assertion
        during = sum(c.acked for c in chatters) - locked_at
        other.execute("ROLLBACK")
        other.close()
        await acks_reach(chatters, 30)  # it comes back: late acks, then new ones
        await judge(process.ws_url, chatters, recorder)
    # What happened in between is the hub's choice (wait, or DEGRADED then a late ack); it is
    # reported, not asserted.
    print(f"acks while locked: {during}; errors {[c.errors for c in chatters]}")


# -- the network between clients and hub ------------------------------------------------------------


async def test_partition_between_clients_and_hub(sqlite_url: str) -> None:
    recorder = HistoryRecorder()
    beat = {"WSLAB_PING_INTERVAL": "1", "WSLAB_PONG_TIMEOUT": "1"}
    async with hub(sqlite_url, env=beat) as process:
        proxy = await TcpProxy("127.0.0.1", process.port).start()
        try:
            chatters = chatters_for([proxy.url_for(process.ws_url)], recorder)
            await acks_reach(chatters, 30)
            proxy.partition()
            await asyncio.sleep(4)  # longer than the heartbeat: the hub gives up on them
            proxy.heal()
            proxy.cut()  # what the partition left half-open is reset, as a NAT would
            await acks_reach(chatters, 30)
            await judge(process.ws_url, chatters, recorder)
        finally:
            await proxy.stop()


# -- the broker restarts ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis(port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A ``redis-server`` of this test's own (never the shared one), without persistence."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


async def wait_for_port(port: int) -> None:
    await wait_until(lambda: port_open("127.0.0.1", port, 0.2), f"port {port}", timeout=20)


async def test_redis_restarted_under_two_hubs(sqlite_url: str, tmp_path: Path) -> None:
    need_service(shutil.which("redis-server") is not None, "redis-server is not installed")
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    recorder = HistoryRecorder()
    server = private_redis(port, tmp_path)
    redis = server.__enter__()
    try:
        await wait_for_port(port)
        async with hub(sqlite_url, broker=broker) as a, hub(sqlite_url, broker=broker) as b:
            chatters = chatters_for([a.ws_url, b.ws_url], recorder, count=4)
            await acks_reach(chatters, 40)
            redis.kill()
            redis.wait(10)
            await acks_reach(chatters, 20)  # local delivery and the store go on without it
            with private_redis(port, tmp_path):
                await wait_for_port(port)
                await acks_reach(chatters, 40)
                await judge(a.ws_url, chatters, recorder)
    finally:
        server.__exit__(None, None, None)


# -- the database goes away -------------------------------------------------------------------------


async def test_postgres_unreachable_and_back(postgres_dsn: str, pg_schema: str) -> None:
    need_service(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    recorder = HistoryRecorder()
    async with TcpProxy.for_url(postgres_dsn) as proxy:
        database = postgres_url(proxy.url_for(postgres_dsn), pg_schema)
        async with hub(database) as process:
            chatters = chatters_for([process.ws_url], recorder)
            await acks_reach(chatters, 30)
            await proxy.stop()  # every connection to PostgreSQL cut, new ones refused
            await asyncio.sleep(3)
            await proxy.start()
            await acks_reach(chatters, 30)
            await judge(process.ws_url, chatters, recorder)
