"""RedisBroker under faults, against the real Redis server.

Connections are cut in two ways that leave the shared server running for everyone else:
``CLIENT KILL ID`` on exactly this broker's connection, and a TCP proxy on 127.0.0.1 between the
broker and Redis (:class:`wslab.lab.faults.TcpProxy`) that the test stops, restarts or turns
into a black hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wslab.foundation.errors import ConfigError, DependencyError
from wslab.integration.backends import broker_from_url
from wslab.integration.broker import BrokerMessage
from wslab.lab.faults import TcpProxy
from wslab.testing import wait_until

redis_asyncio = pytest.importorskip("redis.asyncio")

from wslab.infrastructure.urls import redact_url  # noqa: E402
from wslab.integration.redis_broker import RedisBroker  # noqa: E402

WAIT = 10.0  # generous bound for recoveries; never a timing assertion

# Short timers so a fault test takes a second, not a minute.
FAST = {"op_timeout": 0.5, "ping_interval": 0.3, "backoff_min": 0.05, "backoff_max": 0.3}


class Inbox:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []

    async def __call__(self, msg: BrokerMessage) -> None:
        self.messages.append(msg)

    def has(self, **payload: Any) -> bool:
        return any(m.payload == payload for m in self.messages)


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"wslab-test:{unique_name}:"


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Any]:
    """A plain client on the real server, to inspect and kill connections."""
    client = redis_asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of Redis.

    ``stop`` cuts every connection and ``start`` reopens on the same port, like a server that
    went away and came back; ``blackhole`` keeps the connections open but forwards nothing: a
    dead network path with no EOF.
    """
    async with TcpProxy.for_url(redis_url) as proxy:
        yield proxy


@pytest.fixture
async def brokers() -> AsyncIterator[list[RedisBroker]]:
    """Brokers appended here are closed after the test, whatever happened."""
    made: list[RedisBroker] = []
    yield made
    for broker in made:
        await broker.close()


async def start(
    brokers: list[RedisBroker], url: str, hub_id: str, prefix: str, **options: Any
) -> RedisBroker:
    broker = RedisBroker(url, hub_id, prefix=prefix, **{**FAST, **options})
    brokers.append(broker)
    await broker.start()
    return broker


def record_states(broker: RedisBroker) -> list[bool]:
    states: list[bool] = []
    broker.on_state_change(lambda healthy, reason: states.append(healthy))
    return states


async def client_id(admin: Any, name: str) -> int:
    (entry,) = [c for c in await admin.client_list() if c.get("name") == name]
    return int(entry["id"])


async def publish_marker(publisher: RedisBroker, channel: str, inbox: Inbox, n: int) -> None:
    """Publish ``{"marker": n}`` until it arrives (a publish may race the resubscription)."""
    await publisher.publish(channel, {"marker": n})
    await wait_until(lambda: inbox.has(marker=n), what=f"marker {n}")


async def test_kill_subscriber_connection_mid_traffic(
    redis_url: str, prefix: str, unique_name: str, admin: Any, brokers: list[RedisBroker]
) -> None:
    # A hub id no other test run on the shared server uses: its connections are killed.
    a = await start(brokers, redis_url, f"a-{unique_name}", prefix)
    b = await start(brokers, redis_url, "b", prefix)
    states = record_states(a)
    inbox = Inbox()
    await a.subscribe("room", inbox)

    stop = asyncio.Event()

    async def traffic() -> None:
        i = 0
        while not stop.is_set():
            await b.publish("room", {"i": i})
            i += 1
            await asyncio.sleep(0.002)

    sender = asyncio.create_task(traffic())
    try:
        await wait_until(lambda: len(inbox.messages) >= 20, what="traffic to flow")
        await admin.execute_command(
            "CLIENT", "KILL", "ID", await client_id(admin, f"wslab-broker-sub:{a.hub_id}")
        )
        await wait_until(lambda: states == [False, True], what="down then up")
        received_before = len(inbox.messages)
        await wait_until(lambda: len(inbox.messages) > received_before + 20, what="traffic")
    finally:
        stop.set()
        await sender

    assert a.healthy
    assert a.status()["reconnects"] == 1
    assert a.status()["last_error"]
    # No duplicates, order kept; messages sent while the subscriber was gone are a gap.
    seqs = [m.origin_seq for m in inbox.messages]
    assert seqs == sorted(set(seqs))
    # Both directions work after the recovery.
    await publish_marker(b, "room", inbox, 1)
    back = Inbox()
    await b.subscribe("back", back)
    await publish_marker(a, "back", back, 2)


async def test_kill_publisher_connection_does_not_break_the_broker(
    redis_url: str, prefix: str, unique_name: str, admin: Any, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, redis_url, f"a-{unique_name}", prefix, echo_own=True)
    inbox = Inbox()
    await a.subscribe("room", inbox)
    await a.publish("room", {"n": 1})
    await admin.execute_command(
        "CLIENT", "KILL", "ID", await client_id(admin, f"wslab-broker-pub:{a.hub_id}")
    )
    # The pool notices the dead idle connection and opens a new one for the next publish.
    # (Should the kill race that publish, it fails with DependencyError and the next works.)
    with contextlib.suppress(DependencyError):
        await a.publish("room", {"n": 2})
    await publish_marker(a, "room", inbox, 3)
    assert a.healthy
    assert a.status()["reconnects"] == 0  # the subscriber side was never touched
    seqs = [m.origin_seq for m in inbox.messages]
    assert seqs == sorted(set(seqs))


async def test_redis_going_away_degrades_then_recovers(
    redis_url: str, prefix: str, proxy: TcpProxy, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, proxy.url_for(redis_url), "a", prefix)
    b = await start(brokers, redis_url, "b", prefix)  # direct: it keeps working throughout
    states = record_states(a)
    inbox_a, inbox_b = Inbox(), Inbox()
    await a.subscribe("room", inbox_a)
    await b.subscribe("room", inbox_b)
    await publish_marker(b, "room", inbox_a, 0)

    await proxy.stop()
    await wait_until(lambda: not a.healthy, what="a to notice the outage")
    assert states == [False]
    status = a.status()
    assert status["connected"] is False
    assert status["last_error"]
    # Publishing while down fails fast with the error the hub turns into DEGRADED.
    with pytest.raises(DependencyError):
        await asyncio.wait_for(a.publish("room", {"while": "down"}), WAIT)
    await b.publish("room", {"missed": True})  # a cannot get this one
    # It keeps trying, with backoff, while Redis is away.
    attempts = status["connect_attempts"]
    await wait_until(lambda: a.status()["connect_attempts"] >= attempts + 2, what="retries")

    await proxy.start()  # same port: Redis is back
    await wait_until(lambda: a.healthy, what="a to reconnect")
    assert states == [False, True]
    assert a.status()["reconnects"] == 1
    # After recovery: resubscribed (receives) and publishing again (sends).
    await publish_marker(b, "room", inbox_a, 1)
    await publish_marker(a, "room", inbox_b, 2)
    assert not inbox_a.has(missed=True)
    assert not inbox_b.has(**{"while": "down"})


async def test_silent_network_is_detected_by_ping(
    redis_url: str, prefix: str, proxy: TcpProxy, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, proxy.url_for(redis_url), "a", prefix)
    b = await start(brokers, redis_url, "b", prefix)
    states = record_states(a)
    inbox = Inbox()
    await a.subscribe("room", inbox)

    proxy.blackhole()  # no EOF, no reset: only silence
    # A publish into the silence is bounded by op_timeout, not stuck forever.
    with pytest.raises(DependencyError):
        await asyncio.wait_for(a.publish("room", {"x": 1}), WAIT)
    await wait_until(lambda: not a.healthy, what="ping timeout")
    assert states == [False]

    proxy.restore()
    await wait_until(lambda: a.healthy, what="recovery")
    assert states == [False, True]
    await publish_marker(b, "room", inbox, 1)


async def test_start_fails_fast_when_redis_is_unreachable(unique_name: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", "a", prefix=unique_name, **FAST)
    with pytest.raises(DependencyError):
        await asyncio.wait_for(broker.start(), WAIT)
    assert not broker.healthy
    assert broker.status()["last_error"]
    await broker.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("wslab-broker")]


async def test_close_while_down_is_clean(
    redis_url: str, prefix: str, proxy: TcpProxy, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, proxy.url_for(redis_url), "a", prefix)
    await a.subscribe("room", Inbox())
    await proxy.stop()
    await wait_until(lambda: not a.healthy, what="outage")
    await asyncio.wait_for(a.close(), WAIT)
    leftover = [
        t for t in asyncio.all_tasks() if t.get_name().startswith("wslab-broker") and not t.done()
    ]
    assert leftover == []


async def test_subscribe_while_down_takes_effect_on_reconnect(
    redis_url: str, prefix: str, proxy: TcpProxy, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, proxy.url_for(redis_url), "a", prefix)
    b = await start(brokers, redis_url, "b", prefix)
    await proxy.stop()
    await wait_until(lambda: not a.healthy, what="outage")
    inbox = Inbox()
    await asyncio.wait_for(a.subscribe("later", inbox), WAIT)  # returns although down
    await proxy.start()
    await wait_until(lambda: a.healthy, what="recovery")
    await publish_marker(b, "later", inbox, 1)


async def test_malformed_message_on_our_channel_is_counted(
    redis_url: str, prefix: str, admin: Any, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, redis_url, "a", prefix, echo_own=True)
    inbox = Inbox()
    await a.subscribe("room", inbox)
    await admin.publish(f"{prefix}room", b"not json")
    await publish_marker(a, "room", inbox, 1)
    assert a.status()["malformed"] == 1
    assert a.healthy


async def test_broker_from_url_builds_a_redis_broker(
    redis_url: str, prefix: str, brokers: list[RedisBroker]
) -> None:
    broker = broker_from_url(redis_url, "hub-x", prefix=prefix, echo_own=True)
    assert isinstance(broker, RedisBroker)
    brokers.append(broker)
    assert not broker.healthy  # built, not started
    await broker.start()
    inbox = Inbox()
    await broker.subscribe("room", inbox)
    await publish_marker(broker, "room", inbox, 1)
    assert inbox.messages[0].origin_hub == "hub-x"


def test_broker_from_url_accepts_a_unix_socket_url() -> None:
    broker = broker_from_url("unix:///run/redis/redis.sock?db=2", "a")
    assert isinstance(broker, RedisBroker)
    assert not broker.healthy


def test_urls_never_leak_passwords() -> None:
    assert redact_url("redis://user:s3cret@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
    broker = RedisBroker("rediss://user:s3cret@h:6380/1", "a")
    assert "s3cret" not in repr(broker)
    assert "s3cret" not in str(broker.status())


async def test_password_not_in_start_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = RedisBroker(f"redis://u:s3cret@127.0.0.1:{port}/0", "a", **FAST)
    with pytest.raises(DependencyError) as info:
        await broker.start()
    assert "s3cret" not in str(info.value)
    await broker.close()


def test_redis_broker_refuses_bad_configuration() -> None:
    with pytest.raises(ConfigError):
        RedisBroker("memory://", "a")
    with pytest.raises(ConfigError):
        RedisBroker("redis://h/0", "a", op_timeout=0)
    with pytest.raises(ConfigError):
        RedisBroker("redis://h/0", "a", backoff_min=1, backoff_max=0.5)


async def test_hub_id_with_spaces_is_a_valid_client_name(
    redis_url: str, prefix: str, unique_name: str, admin: Any, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, redis_url, f"hub one {unique_name}", prefix, echo_own=True)
    assert await client_id(admin, f"wslab-broker-sub:hub_one_{unique_name}")
    inbox = Inbox()
    await a.subscribe("room", inbox)
    await publish_marker(a, "room", inbox, 1)


async def test_prefix_subscription_survives_a_reconnect(
    redis_url: str, prefix: str, unique_name: str, admin: Any, brokers: list[RedisBroker]
) -> None:
    a = await start(brokers, redis_url, f"a-{unique_name}", prefix)
    b = await start(brokers, redis_url, "b", prefix)
    states = record_states(a)
    inbox = Inbox()
    await a.subscribe_prefix("room:", inbox)
    await publish_marker(b, "room:x", inbox, 1)

    await admin.execute_command(
        "CLIENT", "KILL", "ID", await client_id(admin, f"wslab-broker-sub:{a.hub_id}")
    )
    await wait_until(lambda: states == [False, True], what="down then up")
    await publish_marker(b, "room:y", inbox, 2)
    assert {m.channel for m in inbox.messages} == {"room:x", "room:y"}
