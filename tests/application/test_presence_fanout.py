"""Presence at scale: a join costs O(1) messages however large the room.

Real hubs and real sockets. Messages are *counted*, never timed: after each join every client
makes one request, and everything the hub sent it before that reply is what the join cost it
(a connection's messages arrive in order, and presence goes out at the end of the loop turn in
which the change happened, before any later request is read).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wslab.application.presence import PresenceChange, PresenceTracker
from wslab.application.presence_fanout import PresenceFanout
from wslab.hub import Hub
from wslab.infrastructure.manager import ConnectionManager
from wslab.infrastructure.metrics import Metrics

from .conftest import Connect, RawClient, StartHub, frames_in, record_writes

LIMIT = 4
#: No periodic counts during a test unless it asks for them.
QUIET = {"presence_interval": 3600.0, "connections_per_ip_per_minute": 10_000}


async def presence_seen(clients: list[RawClient]) -> int:
    """Presence messages each client got since the last call, summed (after a round trip each)."""
    total = 0
    for client in clients:
        await client.request({"type": "presence:list", "room": "lobby"})
        unread = client.drain()
        total += sum(
            1
            for m in unread
            if str(m.get("type", "")).startswith("presence:") and m["type"] != "presence:list"
        )
    return total


async def join_cost(hub: Hub, client_for: Connect, members: int) -> tuple[int, dict[str, Any]]:
    """Fill the lobby with ``members`` users, then the presence messages one more join costs."""
    clients = [await client_for(hub, f"user{i}") for i in range(members)]
    await presence_seen(clients)  # what filling it cost does not count
    newcomer = await client_for(hub, "newcomer")
    snapshot = await newcomer.expect("presence:snapshot", room="lobby")
    return await presence_seen([*clients, newcomer]) + 1, snapshot


async def test_a_join_costs_the_same_in_a_room_of_8_and_of_32(
    start_hub: StartHub, client_for: Connect
) -> None:
    costs = {}
    for members in (8, 32):
        hub = await start_hub(presence_broadcast_limit=LIMIT, **QUIET)
        costs[members], snapshot = await join_cost(hub, client_for, members)
        # Over the limit: only a count, the names on request.
        assert snapshot["count"] == members + 1 and snapshot["users"] == []
        assert snapshot["complete"] is False
        listing = await (await client_for(hub, "late")).request(
            {"type": "presence:list", "room": "lobby"}
        )
        assert listing["count"] == len(listing["users"]) == members + 2
    assert costs[8] == costs[32] == 1  # the newcomer's own snapshot, nothing to anyone else


async def test_small_rooms_keep_presence_join_and_leave(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(presence_broadcast_limit=LIMIT, **QUIET)
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    snapshot = await bob.expect("presence:snapshot", room="lobby")
    assert snapshot == {
        "type": "presence:snapshot",
        "room": "lobby",
        "count": 2,
        "users": [{"user_id": "alice", "username": "Alice"}, {"user_id": "bob", "username": "Bob"}],
        "complete": True,
    }
    await alice.expect("presence:join", user_id="bob")
    await presence_seen([alice, bob])
    # Bounded by the limit: a join in a small room costs at most one message per member.
    carol = await client_for(hub, "carol")
    await carol.expect("presence:snapshot")
    assert await presence_seen([alice, bob, carol]) == 3  # carol's join, to each of the three


async def test_a_room_back_under_the_limit_gets_one_snapshot(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(presence_broadcast_limit=LIMIT, **QUIET)
    clients = [await client_for(hub, f"user{i}") for i in range(LIMIT + 1)]
    await presence_seen(clients)
    await clients.pop().close()  # LIMIT members now: small again
    snapshots = [await c.expect("presence:snapshot", count=LIMIT) for c in clients]
    assert all(len(s["users"]) == LIMIT and s["complete"] for s in snapshots)
    # ... and from then on changes are announced one by one again.
    gone = clients.pop()
    await gone.close()
    for client in clients:
        await client.expect("presence:leave", user_id=gone.user_id)


async def test_large_rooms_get_a_count_every_presence_interval(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(
        presence_broadcast_limit=LIMIT, presence_interval=0.2, connections_per_ip_per_minute=10_000
    )
    clients = [await client_for(hub, f"user{i}") for i in range(LIMIT + 2)]
    for client in clients:
        await client.expect("presence:count", room="lobby", count=LIMIT + 2)


async def test_presence_messages_are_counted_in_metrics(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(presence_broadcast_limit=LIMIT, **QUIET)
    clients = [await client_for(hub, f"user{i}") for i in range(12)]
    await presence_seen(clients)
    series = hub.metrics.snapshot()["counters"]["presence_messages_total"]
    sent = {s["labels"]["type"]: s["value"] for s in series}
    # 12 snapshots; joins only while the lobby had at most LIMIT members: 1 + 2 + 3 + 4.
    assert sent == {
        "presence:join": 10,
        "presence:leave": 0,
        "presence:snapshot": 12,
        "presence:count": 0,
    }


# -- coalescing within one loop turn (a real tracker and manager, no sockets needed) ---------------


async def test_a_join_and_leave_in_one_turn_is_not_announced() -> None:
    published: list[dict[str, Any]] = []
    tracker = PresenceTracker()
    fanout = PresenceFanout(
        ConnectionManager(),
        tracker,
        broadcast_limit=LIMIT,
        encode=str,
        publish=published.append,
        metrics=Metrics(),
    )
    fanout.changed(tracker.join("lobby", "u1", "Ada", "c1"), publish=True)
    fanout.changed(tracker.join("lobby", "u2", "Bob", "c2"), publish=True)
    fanout.changed(tracker.leave("lobby", "u1", "c1"), publish=True)
    await asyncio.sleep(0)  # the end of the turn
    # One broker message for the turn, with the latest state of each user.
    assert published == [
        {"op": "diff", "changes": [["lobby", "u1", "Ada", False], ["lobby", "u2", "Bob", True]]}
    ]
    assert fanout._pending == {}


def test_a_change_that_is_none_is_ignored() -> None:
    fanout = PresenceFanout(
        ConnectionManager(),
        PresenceTracker(),
        broadcast_limit=LIMIT,
        encode=str,
        publish=pytest.fail,
        metrics=Metrics(),
    )
    fanout.changed(None, publish=True)
    assert PresenceChange("r", "u", "n", True).joined


async def test_changes_of_one_turn_reach_each_member_in_one_write(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(presence_broadcast_limit=LIMIT, **QUIET)
    alice = await client_for(hub, "alice")
    await presence_seen([alice])
    written = record_writes(hub.server.connections[alice.connection_id].transport)  # type: ignore[attr-defined]
    # Two users arrive in the same turn (as a class logging in at once does).
    tracker, fanout = hub.chat.presence, hub.chat.presence_fanout
    fanout.changed(tracker.join("lobby", "u1", "Ada", "c1"), publish=False)
    fanout.changed(tracker.join("lobby", "u2", "Bob", "c2"), publish=False)
    await asyncio.sleep(0)  # the end of the turn
    assert [frames_in(data) for data in written] == [2]
    joined = [await alice.expect("presence:join", room="lobby") for _ in range(2)]
    assert [m["user_id"] for m in joined] == ["u1", "u2"]
