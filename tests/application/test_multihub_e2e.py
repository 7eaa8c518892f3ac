"""Several hubs sharing a store and a broker, and what happens when either goes away.

- Hubs over the in-process broker and over real Redis, on one SQLite file or one PostgreSQL
  schema, deliver each message exactly once to every client, with a gap-free ``seq``.
- Presence converges across hubs.
- Store down (PostgreSQL behind a proxy the test stops, or the SQLite store closed): the sender
  gets ``DEGRADED`` with the ``message_id``, live delivery goes on, ``/healthz`` says degraded,
  and once the store is back the late ``ack`` arrives and history has the message.
- Broker down: local clients are still served, ``/healthz`` says degraded, and on recovery the
  clients are told ``system:resync``.

Redis is shared with other runs and the hub has no setting for a channel prefix, so these tests
keep to rooms of their own (``unique_name``) and count only those rooms' messages.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.lab.faults import TcpProxy
from wslab.testing import wait_until

from .conftest import (
    WAIT,
    Connect,
    RawClient,
    StartHub,
    both_engines,
    healthz,
    postgres_url,
)

pytestmark = pytest.mark.timeout(90)


def room_messages(client: RawClient, room: str) -> list[dict[str, Any]]:
    return [m for m in client.of_type("chat:message") if m.get("room") == room]


# -- exactly once across hubs ---------------------------------------------------------------------


@pytest.fixture(params=["memory+sqlite", "redis+sqlite", "memory+postgres", "redis+postgres"])
def shared(request: pytest.FixtureRequest, db_url: str) -> dict[str, Any]:
    """Settings for hubs sharing one store and one broker, of the kinds the parameter names."""
    broker_kind, store_kind = request.param.split("+")
    settings: dict[str, Any] = {"database": db_url}
    if broker_kind == "redis":
        settings["broker"] = request.getfixturevalue("redis_url")
    if store_kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        settings["database"] = postgres_url(dsn, request.getfixturevalue("pg_schema"))
    return settings


async def test_every_client_gets_every_message_once(
    shared: dict[str, Any], start_hub: StartHub, client_for: Connect, unique_name: str
) -> None:
    hub_a, hub_b = await start_hub(**shared), await start_hub(**shared)
    room = unique_name
    clients = [
        await client_for(hub_a, "alice"),
        await client_for(hub_a, "carol"),
        await client_for(hub_b, "bob"),
        await client_for(hub_b, "dave"),
    ]
    for client in clients:
        joined = await client.request({"type": "room:join", "room": room})
        assert joined["type"] == "ack", joined
    per_client = 5

    async def chatter(client: RawClient) -> list[dict[str, Any]]:
        acks = []
        for i in range(per_client):
            ack = await client.request(
                {"type": "chat:message", "room": room, "content": f"{client.name} {i}"}
            )
            assert ack["type"] == "ack", ack
            acks.append(ack)
        return acks

    # Everyone talks at once, on both hubs.
    acks = [a for batch in await asyncio.gather(*map(chatter, clients)) for a in batch]
    total = per_client * len(clients)
    assert sorted(a["seq"] for a in acks) == list(range(1, total + 1))  # gap-free across hubs

    expected_ids = {a["message_id"] for a in acks}
    for client in clients:
        await wait_until(
            lambda c=client: len(room_messages(c, room)) >= total,
            f"{client.name}'s messages",
            timeout=WAIT,
        )
    await asyncio.sleep(0.3)  # give any duplicate time to show up
    for client in clients:
        got = room_messages(client, room)
        counts = Counter(m["message_id"] for m in got)
        assert set(counts) == expected_ids, client.name
        assert max(counts.values()) == 1, f"{client.name} got duplicates"
        assert sorted(m["seq"] for m in got) == list(range(1, total + 1))
        # Messages of one sender arrive in the order they were sent.
        for sender in clients:
            mine = [m["content"] for m in got if m["from_user"] == sender.name]
            assert mine == [f"{sender.name} {i}" for i in range(per_client)]


@both_engines
async def test_direct_message_crosses_hubs_to_its_target_only(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub_a, hub_b = await start_hub(), await start_hub()
    alice = await client_for(hub_a, "alice")
    bob = await client_for(hub_b, "bob")
    bob_tab2 = await client_for(hub_a, "bob")
    carol = await client_for(hub_b, "carol")
    ack = await alice.request({"type": "chat:message", "to_user": "bob", "content": "psst"})
    assert ack["type"] == "ack"
    for client in (alice, bob, bob_tab2):
        await client.expect("chat:message", message_id=ack["message_id"])
    await asyncio.sleep(0.3)
    for client in (alice, bob, bob_tab2):
        assert [m["message_id"] for m in client.of_type("chat:message")] == [ack["message_id"]]
    assert carol.of_type("chat:message") == []


# -- presence across hubs -------------------------------------------------------------------------


async def test_presence_converges_across_hubs(start_hub: StartHub, client_for: Connect) -> None:
    hub_a, hub_b = await start_hub(), await start_hub()
    alice = await client_for(hub_a, "alice")
    bob = await client_for(hub_b, "bob")
    # alice hears bob arrive through the broker; bob finds alice already there.
    await alice.expect("presence:join", user_id="bob", room="lobby")

    for client in (alice, bob):
        listing = await client.request({"type": "presence:list", "room": "lobby"})
        assert [u["user_id"] for u in listing["users"]] == ["alice", "bob"]

    # bob also opens a tab on hub A: no second announcement anywhere
    bob_on_a = await client_for(hub_a, "bob")
    await alice.expect_none("presence:join", user_id="bob")
    # bob's tab on hub B goes: he is still present through hub A
    await bob.close()
    await alice.expect_none("presence:leave", user_id="bob")
    await bob_on_a.close()
    await alice.expect("presence:leave", user_id="bob")

    # carol is on hub B, which shuts down: her clients get 1001, the others see her leave
    carol = await client_for(hub_b, "carol")
    await alice.expect("presence:join", user_id="carol")
    await hub_b.stop()
    assert await carol.closed_with() == CloseCode.GOING_AWAY
    await alice.expect("presence:leave", user_id="carol")
    listing = await alice.request({"type": "presence:list", "room": "lobby"})
    assert [u["user_id"] for u in listing["users"]] == ["alice"]
    assert hub_a.chat.presence.remote_hubs == []  # hub B said goodbye


# -- the store goes away --------------------------------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def outage_kind(request: pytest.FixtureRequest) -> str:
    """Which store the outage test takes away; resolves the services that one needs first."""
    if request.param == "postgres":
        request.getfixturevalue("pg_schema")
        request.getfixturevalue("pg_proxy")
    return str(request.param)


async def test_store_down_degrades_and_loses_nothing(
    outage_kind: str, request: pytest.FixtureRequest, start_hub: StartHub, client_for: Connect
) -> None:
    take_down: Callable[[], Awaitable[object]]
    bring_back: Callable[[], Awaitable[object]]
    if outage_kind == "postgres":
        # PostgreSQL behind a proxy: stopping the proxy cuts the hub's connections.
        proxy: TcpProxy = request.getfixturevalue("pg_proxy")
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")
        hub = await start_hub(database=postgres_url(proxy.url_for(dsn), schema))
        take_down, bring_back = proxy.stop, proxy.start
    else:
        hub = await start_hub()
        take_down, bring_back = hub.store.close, hub.store.open
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    before = await alice.request({"type": "chat:message", "content": "before"})
    assert before["type"] == "ack" and before["seq"] == 1
    assert (await healthz(hub.url))["status"] == "ok"

    await take_down()
    ref = "during-the-outage"
    await alice.send({"type": "chat:message", "content": "during", "ref": ref})
    degraded = await alice.expect("error", ref=ref, timeout=15)
    assert degraded["error"]["code"] == ErrorCode.DEGRADED
    assert degraded["error"]["name"] == "DEGRADED"
    message_id = degraded["message_id"]
    # Delivered live all the same, without a seq (it has none yet).
    live = await bob.expect("chat:message", message_id=message_id)
    assert live["content"] == "during" and live["seq"] is None
    health = await healthz(hub.url)
    assert health["status"] == "degraded"
    assert health["store"] == "down" and health["retry_queue"] == 1
    # History is unavailable meanwhile, and says so.
    page = await bob.request({"type": "chat:history"}, timeout=15)
    assert page["type"] == "error" and page["error"]["code"] == ErrorCode.DEGRADED

    await bring_back()
    late = await alice.expect("ack", ref=ref, timeout=20)
    assert late["message_id"] == message_id and late["seq"] == 2
    page = await bob.request({"type": "chat:history"})
    assert [(m["seq"], m["content"]) for m in page["messages"]] == [(1, "before"), (2, "during")]
    assert page["messages"][1]["message_id"] == message_id
    await wait_until(lambda: len(hub.chat.retry) == 0, "the retry queue to empty", timeout=WAIT)
    assert (await healthz(hub.url))["status"] == "ok"
    after = await alice.request({"type": "chat:message", "content": "after"})
    assert after["type"] == "ack" and after["seq"] == 3


async def test_a_sender_that_ignores_degraded_fills_only_its_share_of_the_retry_queue(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(retry_queue_size=10, retry_queue_per_user=3)
    naive = await client_for(hub, "naive")
    polite = await client_for(hub, "polite")
    await hub.store.close()
    codes = []
    for i in range(5):  # keeps sending through DEGRADED, as a naive client does
        reply = await naive.request({"type": "chat:message", "content": f"n{i}"}, timeout=15)
        codes.append(reply["error"]["name"])
    assert codes == ["DEGRADED"] * 3 + ["RATE_LIMITED"] * 2
    assert len(hub.chat.retry) == 3
    # Everyone else's messages still have the rest of the queue.
    reply = await polite.request({"type": "chat:message", "content": "p0"}, timeout=15)
    assert reply["error"]["name"] == "DEGRADED"
    assert len(hub.chat.retry) == 4

    await hub.store.open()
    await wait_until(lambda: len(hub.chat.retry) == 0, "the retry queue to empty", timeout=20)
    page = await polite.request({"type": "chat:history"})
    assert [m["content"] for m in page["messages"]] == ["n0", "n1", "n2", "p0"]


# -- the broker goes away -------------------------------------------------------------------------


@both_engines
async def test_broker_down_keeps_local_clients_served(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub_a, hub_b = await start_hub(), await start_hub()
    alice = await client_for(hub_a, "alice")
    carol = await client_for(hub_a, "carol")
    bob = await client_for(hub_b, "bob")

    await hub_a.broker.simulate_outage("test: broker unreachable")  # type: ignore[attr-defined]
    health = await healthz(hub_a.url)
    assert health["status"] == "degraded" and health["broker"] == "down"
    assert (await healthz(hub_b.url))["status"] == "ok"

    ack = await alice.request({"type": "chat:message", "content": "local only"})
    assert ack["type"] == "ack" and ack["seq"] == 1  # stored, so acknowledged
    await carol.expect("chat:message", message_id=ack["message_id"])
    await bob.expect_none("chat:message")  # the other hub could not be told

    await hub_a.broker.end_outage()  # type: ignore[attr-defined]
    for client in (alice, carol):
        resync = await client.expect("system:resync")
        assert "lobby" in resync["rooms"]
    # The other hub's clients are told too: they missed what hub A's clients said meanwhile.
    resync = await bob.expect("system:resync")
    assert resync["rooms"] == ["lobby"] and hub_a.hub_id in resync["reason"]
    assert (await healthz(hub_a.url))["status"] == "ok"
    # What the other hub's clients missed is in the store; cross-hub delivery works again.
    page = await bob.request({"type": "chat:history", "since_seq": 0})
    assert [m["message_id"] for m in page["messages"]] == [ack["message_id"]]
    again = await alice.request({"type": "chat:message", "content": "back"})
    assert (await bob.expect("chat:message", message_id=again["message_id"]))["seq"] == 2
