"""Per-room and per-user broker routing (wslab.application.routing), on both real brokers.

- A channel is subscribed when its first local member arrives and unsubscribed when the last
  one leaves; members are counted, so one subscription serves many.
- ``acquire`` returns only once the subscription is active: a message published right after it
  arrives.
- Above the limit a family falls back to one prefix subscription, and back below half of it;
  the broker never holds more than ``limit`` channel subscriptions of the family.
- Switching under traffic loses nothing and delivers nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wslab.application.routing import (
    DIRECT,
    ROOMS,
    BrokerRouting,
    ChannelFamily,
    room_channel,
    user_channel,
    user_of,
)
from wslab.foundation.errors import ConfigError
from wslab.integration.broker import Broker, BrokerMessage, MemoryBroker, MemoryBus
from wslab.testing import wait_until

pytestmark = pytest.mark.timeout(60)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []

    async def __call__(self, msg: BrokerMessage) -> None:
        self.messages.append(msg)


@pytest.fixture(params=["memory", "redis"])
async def make_broker(
    request: pytest.FixtureRequest, unique_name: str
) -> AsyncIterator[Callable[[str], Any]]:
    """``await make_broker("a")``: a started broker; all of one test reach each other."""
    if request.param == "memory":
        bus = MemoryBus(unique_name)

        def build(hub_id: str) -> Broker:
            return MemoryBroker(bus, hub_id)

    else:
        url = request.getfixturevalue("redis_url")
        pytest.importorskip("redis")
        from wslab.integration.redis_broker import RedisBroker

        def build(hub_id: str) -> Broker:
            return RedisBroker(url, hub_id, prefix=f"wslab-test:{unique_name}:")

    made: list[Broker] = []

    async def make(hub_id: str) -> Broker:
        broker = build(hub_id)
        made.append(broker)
        await broker.start()
        return broker

    yield make
    for broker in made:
        await broker.close()


def room_subscriptions(broker: Broker) -> set[str]:
    return {c for c in broker.channels if c.startswith("room:")}


async def test_first_member_subscribes_last_member_unsubscribes(make_broker: Any) -> None:
    broker = await make_broker("a")
    family = ChannelFamily(broker, "room:", Inbox(), limit=10)

    await family.acquire("x")
    assert room_subscriptions(broker) == {"room:x"}
    await family.acquire("x")  # a second member: no second subscription
    await family.acquire("y")
    assert room_subscriptions(broker) == {"room:x", "room:y"}
    assert broker.status()["subscriptions"] == 2

    family.release("x")
    family.release("y")
    await wait_until(lambda: room_subscriptions(broker) == {"room:x"}, what="room:y dropped")
    family.release("x")
    await wait_until(lambda: room_subscriptions(broker) == set(), what="room:x dropped")
    assert family.status() == {
        "keys": 0,
        "channels": 0,
        "wide": False,
        "switches": 0,
        "limit": 10,
    }


async def test_a_message_published_right_after_acquire_arrives(make_broker: Any) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    family = ChannelFamily(a, "room:", inbox, limit=10)
    for i in range(20):
        # No waiting between the join and the publish: acquire returned, so it is active.
        await family.acquire(f"r{i}")
        await b.publish(room_channel(f"r{i}"), {"i": i})
    await wait_until(lambda: len(inbox.messages) == 20, what="every message")
    assert sorted(m.payload["i"] for m in inbox.messages) == list(range(20))


async def test_concurrent_joins_of_one_room_all_wait_for_the_subscription(
    make_broker: Any,
) -> None:
    broker = await make_broker("a")
    family = ChannelFamily(broker, "room:", Inbox(), limit=10)
    await asyncio.gather(*(family.acquire("x") for _ in range(5)))
    assert family.covered("x") and family.refs == {"x": 5}
    assert room_subscriptions(broker) == {"room:x"}


async def test_many_rooms_fall_back_to_one_prefix_subscription_and_back(
    make_broker: Any,
) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    family = ChannelFamily(a, "room:", inbox, limit=4)

    for i in range(4):
        await family.acquire(f"r{i}")
    assert len(room_subscriptions(a)) == 4 and a.prefixes == frozenset()

    for i in range(4, 50):
        await family.acquire(f"r{i}")
        # Bounded at every step: never more than the limit of channels.
        assert len(room_subscriptions(a)) <= 4
    assert family.wide and room_subscriptions(a) == set()
    assert a.prefixes == frozenset({"room:"})
    assert a.status()["subscriptions"] == 1

    for i in range(50):
        await b.publish(room_channel(f"r{i}"), {"i": i})
    await wait_until(lambda: len(inbox.messages) == 50, what="every room's message")

    # Down to 3 members: still wide (hysteresis: back at half the limit, 2).
    for i in range(3, 50):
        family.release(f"r{i}")
    await wait_until(lambda: family.refs.keys() == {"r0", "r1", "r2"})
    await family.acquire("r0")  # a pass after the releases
    assert family.wide
    family.release("r2")
    await wait_until(lambda: not family.wide, what="back to channels")
    assert room_subscriptions(a) == {"room:r0", "room:r1"}
    assert a.prefixes == frozenset()
    assert family.status()["switches"] == 2


async def test_switching_under_traffic_loses_nothing_and_duplicates_nothing(
    make_broker: Any,
) -> None:
    a, b = await make_broker("a"), await make_broker("b")
    inbox = Inbox()
    routing = BrokerRouting(a, on_room=inbox, on_direct=Inbox(), max_room_channels=6)
    rooms = [f"r{i}" for i in range(12)]
    for room in rooms[:3]:
        await routing.join_room(room)
    stop = asyncio.Event()
    sent = Counter[str]()

    async def traffic() -> None:
        while not stop.is_set():
            for room in rooms[:3]:  # rooms joined all along
                await b.publish(room_channel(room), {"room": room})
                sent[room] += 1
            await asyncio.sleep(0)

    sender = asyncio.create_task(traffic())
    try:
        for _ in range(3):  # wide and back, three times, while messages flow
            for room in rooms[3:]:
                await routing.join_room(room)
            await wait_until(lambda: routing.rooms.wide, what="wide")
            for room in rooms[3:]:
                routing.leave_room(room)
            await wait_until(lambda: not routing.rooms.wide, what="narrow")
    finally:
        stop.set()
        await sender
    assert routing.rooms.switches == 6
    # The overlaps did deliver second copies, and they were dropped.
    assert routing.status()["duplicates"] > 0
    total = sum(sent.values())
    await wait_until(lambda: len(inbox.messages) >= total, what="every message")
    await asyncio.sleep(0)
    ids = [(m.channel, m.origin_seq) for m in inbox.messages]
    assert len(ids) == len(set(ids)) == total  # each exactly once
    for room in rooms[:3]:
        seqs = [m.origin_seq for m in inbox.messages if m.channel == room_channel(room)]
        assert sorted(seqs) == list(range(1, sent[room] + 1))


async def test_hub_mode_uses_the_hub_wide_channels(make_broker: Any) -> None:
    a = await make_broker("a")
    routing = BrokerRouting(a, on_room=Inbox(), on_direct=Inbox(), mode="hub")
    await routing.start()
    assert a.channels == frozenset({ROOMS, DIRECT})
    await routing.join_room("x")
    await routing.user_connected("alice")
    assert a.channels == frozenset({ROOMS, DIRECT})  # nothing per room or user
    assert routing.room_channel("x") == ROOMS
    assert routing.direct_channels("bob", "alice") == [DIRECT]
    await routing.stop()
    assert a.channels == frozenset()


async def test_room_mode_channels_and_user_channels(make_broker: Any) -> None:
    a = await make_broker("a")
    routing = BrokerRouting(a, on_room=Inbox(), on_direct=Inbox(), mode="room")
    await routing.start()
    assert a.channels == frozenset()  # nothing until someone is here
    await routing.user_connected("alice")
    await routing.join_room("x")
    assert a.channels == frozenset({"room:x", "user:alice"})
    assert routing.room_channel("x") == "room:x"
    assert routing.direct_channels("bob", "alice") == ["user:bob", "user:alice"]
    assert routing.direct_channels("alice", "alice") == ["user:alice"]
    assert user_of(user_channel("bob")) == "bob" and user_of("room:x") is None
    await routing.stop()
    assert a.channels == frozenset()


def test_mode_defaults_to_per_room_and_is_checked() -> None:
    broker = MemoryBroker(MemoryBus(), "a")
    assert BrokerRouting(broker, on_room=Inbox(), on_direct=Inbox(), mode="hub").mode == "hub"
    assert BrokerRouting(broker, on_room=Inbox(), on_direct=Inbox()).mode == "room"
    with pytest.raises(ConfigError, match="broker routing must be one of room, hub"):
        BrokerRouting(broker, on_room=Inbox(), on_direct=Inbox(), mode="everywhere")
    with pytest.raises(ConfigError, match="at least 2"):
        ChannelFamily(broker, "room:", Inbox(), limit=1)


async def test_a_member_arriving_while_the_family_narrows_is_subscribed(
    make_broker: Any,
) -> None:
    a = await make_broker("a")
    family = ChannelFamily(a, "room:", Inbox(), limit=4)
    for i in range(6):
        await family.acquire(f"r{i}")
    assert family.wide
    for i in range(1, 6):
        family.release(f"r{i}")  # down to one: the next pass narrows
    # Joins while that pass runs: covered by the prefix, so they return at once.
    joins = [asyncio.create_task(family.acquire(f"late{i}")) for i in range(2)]
    await asyncio.gather(*joins)
    await wait_until(lambda: not family.wide, what="narrow")
    assert room_subscriptions(a) == {"room:r0", "room:late0", "room:late1"}
    assert all(family.covered(k) for k in family.refs)


async def test_members_leaving_while_their_channel_is_subscribed_leave_no_subscription(
    make_broker: Any,
) -> None:
    """Passes look only at the keys that changed; a key whose last member left while its
    subscription was under way is still unsubscribed, through switches both ways too."""
    broker = await make_broker("a")
    family = ChannelFamily(broker, "room:", Inbox(), limit=8)
    for round_ in range(3):
        joins = [asyncio.ensure_future(family.acquire(f"k{i}")) for i in range(12)]
        await asyncio.sleep(0)  # the pass is under way
        for i in range(0, 12, 2):
            family.release(f"k{i}")  # before its subscription is confirmed
        await asyncio.gather(*joins)
        kept = {f"room:k{i}" for i in range(1, 12, 2)}
        await wait_until(
            lambda kept=kept: family.wide or room_subscriptions(broker) == kept,
            what=f"round {round_}: only the members' channels",
        )
        for i in range(1, 12, 2):
            family.release(f"k{i}")
        await wait_until(
            lambda: not family.wide and room_subscriptions(broker) == set(),
            what=f"round {round_}: nothing left",
        )
    assert family.status()["keys"] == 0
