"""Hostile clients against the hub's shared tables and its validation, with others chatting.

One user with many connections must not fill the hub-wide room table; at a full table a join
gets a clear error (never INTERNAL_ERROR) and leaves no half state; a newcomer still reaches the
lobby; an out-of-range integer gets INVALID_INPUT without a traceback in the logs.
"""

from __future__ import annotations

import logging

import pytest

from wslab.foundation.codes import ErrorCode
from wslab.hub import Hub

from .conftest import Connect, RawClient, StartHub


async def join(client: RawClient, room: str) -> dict:
    return await client.request({"type": "room:join", "room": room})


async def test_one_user_with_many_connections_cannot_fill_the_room_table(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(max_rooms=30, max_rooms_per_connection=6, max_rooms_per_user=10)
    alice = await client_for(hub, "alice")  # well-behaved, chatting meanwhile
    mallory = [await client_for(hub, "mallory") for _ in range(10)]
    refused = 0
    for i, connection in enumerate(mallory):
        for j in range(5):
            reply = await join(connection, f"m-{i}-{j}")
            if reply["type"] == "error":
                assert reply["error"]["code"] == ErrorCode.RATE_LIMITED
                refused += 1
    assert refused == 40  # 10 of 50 rooms allowed for the user, whatever the connection count
    assert len(hub.chat.presence.local_snapshot()) <= 11  # 10 rooms + the lobby
    assert (await join(alice, "general"))["type"] == "ack"
    reply = await alice.request({"type": "chat:message", "room": "general", "content": "hi"})
    assert reply["type"] == "ack"
    newcomer = await client_for(hub, "newcomer")
    assert "lobby" in hub.chat.sessions[newcomer.connection_id].rooms


async def test_a_full_table_refuses_with_conflict_and_leaves_no_half_join(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(max_rooms=4, max_rooms_per_user=2)
    users = [await client_for(hub, name) for name in ("u1", "u2")]
    for n, user in enumerate(users):
        for j in range(2):
            assert (await join(user, f"r{n}{j}"))["type"] == "ack"
        # Everyone leaves the lobby: it must be re-created for the next user, table full or not.
        assert (await user.request({"type": "room:leave", "room": "lobby"}))["type"] == "ack"
    carol = await client_for(hub, "carol")
    reply = await join(carol, "fresh")
    assert reply["type"] == "error"
    assert reply["error"]["code"] == ErrorCode.CONFLICT
    # No half-applied join: not a member, and a message to it is refused, not acked.
    assert "fresh" not in hub.chat.sessions[carol.connection_id].rooms
    assert "fresh" not in hub.manager.groups()
    post = await carol.request({"type": "chat:message", "room": "fresh", "content": "x"})
    assert post["type"] == "error"
    assert post["error"]["code"] == ErrorCode.INVALID_INPUT
    # The newcomer was admitted to the lobby and can talk there.
    lobby = await carol.request({"type": "chat:message", "room": "lobby", "content": "hello"})
    assert lobby["type"] == "ack"
    assert not carol.closed


@pytest.mark.parametrize("field", ["since_seq", "before_seq"])
async def test_history_seq_past_int64_is_invalid_input_without_traceback(
    hub: Hub, client_for: Connect, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    alice = await client_for(hub, "alice")
    caplog.set_level(logging.DEBUG)
    reply = await alice.request({"type": "chat:history", "room": "lobby", field: 2**70})
    assert reply["type"] == "error"
    assert reply["error"]["code"] == ErrorCode.INVALID_INPUT
    assert not [r for r in caplog.records if r.exc_info]
    assert (await alice.request({"type": "chat:history", "room": "lobby"}))["type"] == "chat:history"


async def test_echoed_client_fields_are_length_bounded(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    await alice.send({"type": "chat:message", "ref": "r" * 4000, "content": "x"})
    reply = await alice.expect("error")
    assert len(reply.get("ref", "")) <= 128
    await alice.send({"type": "x" * 4000, "version": "v" * 4000, "ref": 1})
    reply = await alice.expect("error")
    assert len(reply["error"]["message"]) <= 200


async def test_a_hundred_connections_of_one_user_stay_within_the_user_limit(
    start_hub: StartHub, client_for: Connect
) -> None:
    # Default per-connection and per-user limits; a table small enough that 100 connections
    # joining 2 rooms each would fill it without the per-user limit.
    hub = await start_hub(
        max_rooms=150, connections_per_ip_per_minute=1000, max_connections_per_ip=200
    )
    alice = await client_for(hub, "alice")
    mallory = [await client_for(hub, "mallory") for _ in range(100)]
    codes = []
    for i, connection in enumerate(mallory):
        for j in range(2):
            reply = await join(connection, f"m-{i}-{j}")
            codes.append(reply["error"]["code"] if reply["type"] == "error" else 0)
    assert codes.count(0) == hub.config.max_rooms_per_user
    assert set(codes) == {0, ErrorCode.RATE_LIMITED}
    assert (await join(alice, "general"))["type"] == "ack"
    newcomer = await client_for(hub, "newcomer")
    reply = await newcomer.request({"type": "chat:message", "content": "hello lobby"})
    assert reply["type"] == "ack"
