"""Hubs route room traffic per room and direct messages per user, over both real brokers.

Counted where the broker hands messages to the hub (``status()["received_by_family"]``): a hub
receives no room message for a room none of its clients is in, and no direct message for users
not connected to it; joining subscribes, leaving the last member unsubscribes; delivery across
hubs stays exactly once. ``broker_routing="hub"``, the old hub-wide
channels, is checked as the contrast.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from wslab.hub import Hub
from wslab.testing import wait_until

from .conftest import Connect, RawClient, StartHub

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(params=["memory", "redis"])
def broker(request: pytest.FixtureRequest, unique_name: str) -> dict[str, Any]:
    """Hub settings for one shared broker of the kind the parameter names."""
    if request.param == "memory":
        return {}
    pytest.importorskip("redis")
    return {
        "broker": request.getfixturevalue("redis_url"),
        "broker_prefix": f"wslab-test:{unique_name}:",
    }


def received(hub: Hub, family: str) -> int:
    """Messages of a channel family the hub's broker received through its subscriptions."""
    counts = hub.broker.status()["received_by_family"].get(family)
    return 0 if counts is None else counts["messages"]


async def join(client: RawClient, room: str) -> dict[str, Any]:
    ack = await client.request({"type": "room:join", "room": room})
    assert ack["type"] == "ack", ack
    return ack


async def post(client: RawClient, room: str, content: str, **extra: Any) -> dict[str, Any]:
    ack = await client.request({"type": "chat:message", "room": room, "content": content, **extra})
    assert ack["type"] == "ack", ack
    return ack


async def test_a_hub_receives_no_message_of_a_room_it_has_no_member_in(
    broker: dict[str, Any], start_hub: StartHub, client_for: Connect, unique_name: str
) -> None:
    hub_a, hub_b, hub_c = [await start_hub(**broker) for _ in range(3)]
    x, y = f"{unique_name}x", f"{unique_name}y"
    alice = await client_for(hub_a, "alice")
    bob = await client_for(hub_b, "bob")
    carol = await client_for(hub_c, "carol")
    for client, room in ((alice, x), (alice, y), (bob, x), (carol, y)):
        await join(client, room)
    assert f"room:{x}" not in hub_c.broker.channels

    for i in range(5):
        await post(alice, x, f"x{i}")
        await bob.send({"type": "chat:typing", "room": x, "is_typing": True})
    last = await post(alice, y, "y")
    await carol.expect("chat:message", message_id=last["message_id"])
    await wait_until(lambda: len(bob.of_type("chat:message")) == 5, what="bob's five")

    # Hub B: alice's five messages and its own five typing notices back; nothing of y.
    await wait_until(lambda: received(hub_b, "room") == 10, what="hub B's ten")
    # Hub C got the one message of its room: none of the ten of x.
    assert received(hub_c, "room") == 1
    assert [m["room"] for m in carol.of_type("chat:message")] == [y]
    assert received(hub_c, "rooms") == received(hub_b, "rooms") == 0


async def test_the_hub_wide_mode_sends_every_room_to_every_hub(
    broker: dict[str, Any],
    start_hub: StartHub,
    client_for: Connect,
    unique_name: str,
) -> None:
    hub_a = await start_hub(**broker, broker_routing="hub")
    hub_b = await start_hub(**broker, broker_routing="hub")
    x, y = f"{unique_name}x", f"{unique_name}y"
    alice = await client_for(hub_a, "alice")
    bob = await client_for(hub_b, "bob")
    await join(alice, x)
    await join(alice, y)
    await join(bob, y)
    for i in range(5):
        await post(alice, x, f"x{i}")
    last = await post(alice, y, "y")
    await bob.expect("chat:message", message_id=last["message_id"])
    assert received(hub_b, "rooms") == 6  # every room's message, bob's or not
    assert received(hub_b, "room") == 0
    assert [m["room"] for m in bob.of_type("chat:message")] == [y]


async def test_join_subscribes_and_the_last_leave_unsubscribes(
    broker: dict[str, Any], start_hub: StartHub, client_for: Connect, unique_name: str
) -> None:
    hub = await start_hub(**broker)
    room, channel = unique_name, f"room:{unique_name}"
    alice = await client_for(hub, "alice")
    assert "user:alice" in hub.broker.channels  # while alice has a connection here
    alice2 = await client_for(hub, "alice")
    await join(alice, room)
    assert channel in hub.broker.channels  # active before the join's ack
    await join(alice2, room)

    assert (await alice.request({"type": "room:leave", "room": room}))["type"] == "ack"
    assert channel in hub.broker.channels  # alice2 is still there
    await alice2.close()  # closing leaves the room too
    await wait_until(lambda: channel not in hub.broker.channels, what="the room unsubscribed")
    assert "user:alice" in hub.broker.channels  # alice's first connection is still open
    await alice.close()
    await wait_until(lambda: "user:alice" not in hub.broker.channels, what="user unsubscribed")
    assert hub.chat.routing.status()["rooms"]["keys"] == 0


async def test_a_message_sent_right_after_a_join_ack_arrives_live(
    broker: dict[str, Any], start_hub: StartHub, client_for: Connect, unique_name: str
) -> None:
    hub_a, hub_b = await start_hub(**broker), await start_hub(**broker)
    alice = await client_for(hub_a, "alice")
    bob = await client_for(hub_b, "bob")
    for i in range(10):
        room = f"{unique_name}{i}"
        await join(alice, room)
        await join(bob, room)  # hub B's first member: its subscription starts here
        ack = await post(alice, room, f"m{i}")  # at once, no waiting
        await bob.expect("chat:message", message_id=ack["message_id"])


async def test_direct_messages_reach_each_party_on_every_hub_once(
    broker: dict[str, Any], start_hub: StartHub, client_for: Connect
) -> None:
    hub_a, hub_b, hub_c, hub_d = [await start_hub(**broker) for _ in range(4)]
    alice = await client_for(hub_a, "alice")
    alice_tab = await client_for(hub_b, "alice")
    bob = await client_for(hub_c, "bob")
    carol = await client_for(hub_b, "carol")
    await client_for(hub_d, "dave")
    parties = (alice, alice_tab, bob)

    acks = [await post(alice, "lobby", f"dm{i}", to_user="bob") for i in range(3)]
    marker = await post(bob, "lobby", "marker", to_user="alice")
    for client in parties:
        await client.expect("chat:message", message_id=marker["message_id"])
    for client in parties:
        counts = Counter(m["message_id"] for m in client.of_type("chat:message"))
        assert counts == Counter({a["message_id"]: 1 for a in (*acks, marker)}), client.name
    assert carol.of_type("chat:message") == []
    # Hub D has neither party: no direct message reached it at all.
    assert received(hub_d, "user") == 0
    # Hub B (alice's tab): one copy of each DM, on alice's channel.
    await wait_until(lambda: received(hub_b, "user") == 4, what="hub B's four")


async def test_a_hub_past_its_channel_limit_falls_back_and_still_delivers_once(
    broker: dict[str, Any], start_hub: StartHub, client_for: Connect, unique_name: str
) -> None:
    hub_a, hub_b = await start_hub(**broker), await start_hub(**broker)
    hub_b.chat.routing.rooms.limit = 4  # the lobby and three more rooms, then one prefix
    alice = await client_for(hub_a, "alice")
    bob = await client_for(hub_b, "bob")
    rooms = [f"{unique_name}{i}" for i in range(8)]
    for room in rooms:
        await join(alice, room)
        await join(bob, room)
        assert sum(c.startswith("room:") for c in hub_b.broker.channels) <= 4
    assert hub_b.chat.routing.rooms.wide
    assert hub_b.broker.prefixes == frozenset({"room:"})
    assert not any(c.startswith("room:") for c in hub_b.broker.channels)

    acks = [await post(alice, room, room) for room in rooms]
    await bob.expect("chat:message", message_id=acks[-1]["message_id"])
    got = Counter(m["message_id"] for m in bob.of_type("chat:message"))
    assert got == Counter({a["message_id"]: 1 for a in acks})

    for room in rooms:  # back under half the limit: channels again
        assert (await bob.request({"type": "room:leave", "room": room}))["type"] == "ack"
    await wait_until(lambda: not hub_b.chat.routing.rooms.wide, what="back to channels")
    assert hub_b.broker.prefixes == frozenset()
    assert {c for c in hub_b.broker.channels if c.startswith("room:")} == {"room:lobby"}


async def test_the_routing_mode_is_a_hub_setting(start_hub: StartHub) -> None:
    """``broker_routing`` (``WSLAB_BROKER_ROUTING``) reaches the chat service's routing."""
    assert (await start_hub()).chat.routing.mode == "room"
    assert (await start_hub(broker_routing="hub")).chat.routing.mode == "hub"
