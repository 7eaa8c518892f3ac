"""The chat end to end on one hub: real sockets, authentication on, a SQLite file.

Rooms, acks and seq, direct messages, history paging and retention, recovery after a dropped
connection, presence, validation, versions, rate limits, admin broadcasts, output safety and
internal failures — each as a client sees it on the wire.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import ConnectionClosed, HandshakeError
from wslab.hub import Hub
from wslab.testing import wait_until

from .conftest import WAIT, Connect, RawClient, StartHub, both_engines, frames_in, record_writes

pytestmark = pytest.mark.timeout(60)


def error_code(reply: dict[str, Any]) -> int:
    assert reply["type"] == "error", reply
    return int(reply["error"]["code"])


async def say(client: RawClient, content: str, room: str = "lobby", **extra: Any) -> dict[str, Any]:
    """Send a chat message and return the ack (failing on anything else)."""
    reply = await client.request(
        {"type": "chat:message", "room": room, "content": content, **extra}
    )
    assert reply["type"] == "ack", reply
    return reply


# -- rooms, acks, seq --------------------------------------------------------------------------------


async def test_connected_greeting(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice", roles=("admin",))
    assert alice.hello["user_id"] == "alice"
    assert alice.hello["username"] == "Alice"
    assert alice.hello["server"] == hub.hub_id
    assert alice.hello["protocol_version"] == "1.0"
    assert alice.connection_id in hub.server.connections
    assert len(hub.connections) == 1


@both_engines
async def test_two_users_chat_in_a_room(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    acks = [await say(alice, f"hello {i}") for i in range(3)]

    assert [a["seq"] for a in acks] == [1, 2, 3]
    assert all(a["status"] == "success" and a["message_id"] for a in acks)
    for ack in acks:
        # An ack promises durability: the message is in the store when the ack arrives.
        stored = await hub.store.get(ack["message_id"])
        assert stored is not None and stored.seq == ack["seq"]
    for client in (alice, bob):
        got = [await client.expect("chat:message", message_id=a["message_id"]) for a in acks]
        assert [m["seq"] for m in got] == [1, 2, 3]
        assert [m["content"] for m in got] == ["hello 0", "hello 1", "hello 2"]
        assert {m["room"] for m in got} == {"lobby"}
        assert {m["from_user"] for m in got} == {"alice"}
        assert {m["from_username"] for m in got} == {"Alice"}
        assert all(m["to_user"] is None for m in got)
        assert all(m["timestamp"].endswith("Z") for m in got)
    # bob answers: the room's seq goes on without a gap
    assert (await say(bob, "hi alice"))["seq"] == 4
    assert (await alice.expect("chat:message", from_user="bob"))["seq"] == 4


async def test_the_senders_own_copy_comes_just_before_its_ack(hub: Hub, client_for: Connect) -> None:
    """The order docs/protocol.md states: stored, delivered to the room (the sender included),
    then acknowledged; both carry the same message_id and seq."""
    alice = await client_for(hub, "alice")
    acks = [await say(alice, f"in order {i}") for i in range(3)]
    for ack in acks:
        await alice.expect("chat:message", message_id=ack["message_id"])
    mine = [
        (m["type"], m.get("message_id"))
        for m in alice.received
        if (m["type"] == "ack" and "seq" in m)
        or (m["type"] == "chat:message" and m["from_user"] == "alice")
    ]
    expected = []
    for ack in acks:
        expected += [("chat:message", ack["message_id"]), ("ack", ack["message_id"])]
    assert mine == expected


async def test_the_senders_own_copy_and_its_ack_leave_in_one_write(
    hub: Hub, client_for: Connect
) -> None:
    """One socket write per message for the sender (the copy, then the ack), not two."""
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    written = record_writes(hub.server.connections[alice.connection_id].transport)  # type: ignore[attr-defined]
    ack = await say(alice, "one write")
    await bob.expect("chat:message", message_id=ack["message_id"])
    # Alice's socket got one write for the whole exchange: two frames, her copy then the ack
    # (their order on the wire: test_the_senders_own_copy_comes_just_before_its_ack).
    assert [frames_in(data) for data in written] == [2]


async def test_each_room_has_its_own_seq_and_members(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    joined = await alice.request({"type": "room:join", "room": "dev"})
    assert joined["type"] == "ack" and joined["room"] == "dev" and joined["latest_seq"] == 0
    await say(alice, "lobby message")
    assert (await say(alice, "dev message", room="dev"))["seq"] == 1
    await bob.expect("chat:message", content="lobby message")
    await bob.expect_none("chat:message", content="dev message")
    # bob may not post to a room he has not joined
    refused = await bob.request({"type": "chat:message", "room": "dev", "content": "let me in"})
    assert error_code(refused) == ErrorCode.INVALID_INPUT
    assert (await bob.request({"type": "room:join", "room": "dev"}))["latest_seq"] == 1
    assert (await say(bob, "in now", room="dev"))["seq"] == 2
    await alice.expect("chat:message", content="in now", room="dev")
    left = await alice.request({"type": "room:leave", "room": "dev"})
    assert left["type"] == "ack"
    await say(bob, "alone", room="dev")
    await alice.expect_none("chat:message", content="alone")
    not_in = await alice.request({"type": "room:leave", "room": "dev"})
    assert error_code(not_in) == ErrorCode.INVALID_INPUT


async def test_typing_reaches_the_others_only(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    await alice.send({"type": "chat:typing", "room": "lobby", "is_typing": True})
    typing = await bob.expect("chat:typing")
    assert typing == {
        "type": "chat:typing",
        "room": "lobby",
        "user_id": "alice",
        "username": "Alice",
        "is_typing": True,
    }
    await alice.expect_none("chat:typing")


# -- direct messages ---------------------------------------------------------------------------------


@both_engines
async def test_direct_message_reaches_only_its_target(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    alice_tab2 = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    carol = await client_for(hub, "carol")

    ack = await say(alice, "just for you", to_user="bob")
    assert ack["seq"] == 1  # a conversation has its own seq
    for client in (bob, alice, alice_tab2):
        dm = await client.expect("chat:message", message_id=ack["message_id"])
        assert dm["to_user"] == "bob" and dm["from_user"] == "alice"
        assert dm["content"] == "just for you"
    await carol.expect_none("chat:message")
    assert carol.of_type("chat:message") == []

    # The conversation's history is the same from both sides; carol's is empty.
    for client, other in ((alice, "bob"), (bob, "alice")):
        page = await client.request({"type": "chat:history", "with_user": other})
        assert [m["content"] for m in page["messages"]] == ["just for you"]
    page = await carol.request({"type": "chat:history", "with_user": "bob"})
    assert page["messages"] == []


async def test_direct_message_to_someone_offline_is_kept(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    ack = await say(alice, "read this later", to_user="dave")
    dave = await client_for(hub, "dave")
    page = await dave.request({"type": "chat:history", "with_user": "alice", "since_seq": 0})
    assert [m["message_id"] for m in page["messages"]] == [ack["message_id"]]
    assert page["complete"] is True


# -- history -----------------------------------------------------------------------------------------


async def test_history_paging_and_retention(start_hub: StartHub, client_for: Connect) -> None:
    hub = await start_hub(history_retention=10)
    alice = await client_for(hub, "alice")
    await alice.request({"type": "room:join", "room": "hist"})
    acks = [await say(alice, f"m{i}", room="hist") for i in range(1, 16)]
    assert [a["seq"] for a in acks] == list(range(1, 16))

    async def history(**cursor: Any) -> tuple[list[int], bool]:
        page = await alice.request({"type": "chat:history", "room": "hist", **cursor})
        assert page["type"] == "chat:history" and page["room"] == "hist", page
        return [m["seq"] for m in page["messages"]], page["complete"]

    # Newest first pages, each oldest first; 1..5 were deleted by retention.
    assert await history(limit=5) == ([11, 12, 13, 14, 15], True)
    assert await history(limit=5, before_seq=11) == ([6, 7, 8, 9, 10], True)
    assert await history(limit=5, before_seq=6) == ([], False)
    seqs, complete = await history(limit=3, before_seq=8)
    assert seqs == [6, 7] and complete is False  # asked for 5..7, 5 is gone
    # Forward from a cursor: what a reconnecting client asks.
    assert await history(since_seq=10) == ([11, 12, 13, 14, 15], True)
    assert await history(since_seq=15) == ([], True)
    assert await history(since_seq=12, limit=2) == ([13, 14], True)
    seqs, complete = await history(since_seq=0, limit=100)
    assert seqs == list(range(6, 16)) and complete is False  # never a silent gap
    # Messages come back whole, as they were delivered.
    page = await alice.request({"type": "chat:history", "room": "hist", "limit": 1})
    last = page["messages"][0]
    assert last["message_id"] == acks[-1]["message_id"]
    assert last["content"] == "m15" and last["type"] == "chat:message"


async def test_history_of_an_empty_room(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    page = await alice.request({"type": "chat:history", "room": "nothing-here"})
    assert page["messages"] == [] and page["complete"] is True


# -- recovery ----------------------------------------------------------------------------------------


@both_engines
async def test_recovery_after_a_forced_disconnect(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    await say(bob, "before 1")
    await say(bob, "before 2")
    last_seen = (await alice.expect("chat:message", content="before 2"))["seq"]
    assert last_seen == 2

    # The network drops alice: the hub aborts her TCP connection without a closing handshake.
    hub.server.connections[alice.connection_id].abort("test: network gone")
    assert await alice.closed_with() == CloseCode.ABNORMAL_CLOSURE
    await wait_until(
        lambda: alice.connection_id not in hub.chat.sessions, "alice's session to end", timeout=WAIT
    )

    missed = [await say(bob, f"while away {i}") for i in range(5)]
    alice_again = await client_for(hub, "alice")
    page = await alice_again.request(
        {"type": "chat:history", "room": "lobby", "since_seq": last_seen}
    )
    assert [m["message_id"] for m in page["messages"]] == [a["message_id"] for a in missed]
    assert [m["seq"] for m in page["messages"]] == [3, 4, 5, 6, 7]
    assert [m["content"] for m in page["messages"]] == [f"while away {i}" for i in range(5)]
    assert page["complete"] is True
    # and she is live again
    await say(bob, "welcome back")
    assert (await alice_again.expect("chat:message", content="welcome back"))["seq"] == 8


# -- presence ----------------------------------------------------------------------------------------


@both_engines
async def test_presence_join_list_and_leave(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    joined = await alice.expect("presence:join", user_id="bob")
    assert joined == {"type": "presence:join", "room": "lobby", "user_id": "bob", "username": "Bob"}
    listing = await bob.request({"type": "presence:list", "room": "lobby"})
    assert listing["type"] == "presence:list" and listing["room"] == "lobby"
    assert listing["users"] == [
        {"user_id": "alice", "username": "Alice"},
        {"user_id": "bob", "username": "Bob"},
    ]

    # A second tab of bob's is not announced again; closing one of two tabs says nothing.
    bob_tab2 = await client_for(hub, "bob")
    await alice.expect_none("presence:join", user_id="bob")
    await bob_tab2.close()
    await alice.expect_none("presence:leave", user_id="bob")
    await bob.close()
    left = await alice.expect("presence:leave", user_id="bob")
    assert left["room"] == "lobby"
    listing = await alice.request({"type": "presence:list", "room": "lobby"})
    assert [u["user_id"] for u in listing["users"]] == ["alice"]


async def test_presence_follows_room_changes(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    await alice.request({"type": "room:join", "room": "dev"})
    await bob.request({"type": "room:join", "room": "dev"})
    await alice.expect("presence:join", room="dev", user_id="bob")
    await bob.request({"type": "room:leave", "room": "dev"})
    await alice.expect("presence:leave", room="dev", user_id="bob")
    listing = await alice.request({"type": "presence:list", "room": "dev"})
    assert [u["user_id"] for u in listing["users"]] == ["alice"]


# -- validation and versions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", ErrorCode.INVALID_INPUT),
        ("[1, 2, 3]", ErrorCode.INVALID_INPUT),
        ('"just a string"', ErrorCode.INVALID_INPUT),
        ('{"ref": "x1"}', ErrorCode.INVALID_INPUT),
        ('{"type": 42}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:shout", "ref": "x2"}', ErrorCode.NOT_FOUND),
        ('{"type": "chat:message", "content": 5}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:message", "content": "' + "x" * 5001 + '"}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:message", "content": ""}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:typing", "room": "lobby", "is_typing": "yes"}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:history", "limit": 101}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:history", "limit": "10"}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:history", "before_seq": 3, "since_seq": 1}', ErrorCode.INVALID_INPUT),
        ('{"type": "room:join", "room": "no spaces"}', ErrorCode.INVALID_INPUT),
        ('{"type": "chat:message", "content": "hi", "version": "7.3"}', ErrorCode.INVALID_INPUT),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_stays_open(
    hub: Hub, client_for: Connect, raw: str, code: ErrorCode
) -> None:
    alice = await client_for(hub, "alice")
    await alice.send(raw)
    error = await alice.expect("error")
    assert error["error"]["code"] == code
    assert error["error"]["name"] == code.name
    assert error["error"]["message"]
    if '"ref"' in raw:
        assert error["ref"] in raw
    # still open, still working
    assert (await say(alice, "still here"))["seq"] == 1
    assert not alice.closed


@both_engines
async def test_binary_messages_are_refused_politely(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    await alice.connection.send(b"\x00\x01")
    assert error_code(await alice.expect("error")) == ErrorCode.INVALID_INPUT
    await say(alice, "still here")


@both_engines
async def test_deprecated_version_is_served_with_a_warning(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    ack = await alice.request({"type": "chat:message", "version": "0.9", "text": "old style"})
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert "deprecated" in ack["warning"]
    assert (await bob.expect("chat:message"))["content"] == "old style"
    current = await alice.request({"type": "presence:list", "version": "1.0"})
    assert "warning" not in current


# -- limits ------------------------------------------------------------------------------------------


@both_engines
async def test_flooding_is_rate_limited_then_closed(
    start_hub: StartHub, client_for: Connect
) -> None:
    hub = await start_hub(rate_messages_per_second=1, rate_burst=3, rate_flood_close_after=5)
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    with contextlib.suppress(ConnectionClosed):
        for _ in range(30):
            await alice.send({"type": "presence:list"})
    assert await alice.closed_with() == CloseCode.POLICY_VIOLATION
    limited = [m for m in alice.of_type("error") if m["error"]["code"] == ErrorCode.RATE_LIMITED]
    assert limited, alice.received
    assert limited[0]["error"]["name"] == "RATE_LIMITED"
    assert len(alice.of_type("presence:list")) >= 1  # the first ones were served
    # the others are not affected
    await say(bob, "unaffected")


@both_engines
async def test_oversize_message_closes_with_1009(start_hub: StartHub, client_for: Connect) -> None:
    hub = await start_hub(max_message_size=1024, max_frame_size=1024)
    alice = await client_for(hub, "alice")
    with contextlib.suppress(ConnectionClosed):
        await alice.send({"type": "chat:message", "content": "x" * 2000})
    assert await alice.closed_with() == CloseCode.MESSAGE_TOO_BIG


@both_engines
async def test_a_full_hub_refuses_with_503(start_hub: StartHub, client_for: Connect) -> None:
    hub = await start_hub(max_connections=2)
    alice = await client_for(hub, "alice")
    await client_for(hub, "bob")
    with pytest.raises(HandshakeError) as info:
        await client_for(hub, "carol")
    assert info.value.status == 503
    assert sorted(s.user_id for s in hub.chat.sessions.values()) == ["alice", "bob"]
    # A place frees up when someone leaves.
    await alice.close()
    await wait_until(
        lambda: len(hub.server.connections) < 2, "alice's connection to end", timeout=WAIT
    )
    carol = await client_for(hub, "carol")
    assert (await say(carol, "made it"))["type"] == "ack"


# -- admin -------------------------------------------------------------------------------------------


async def test_admin_broadcast_reaches_everyone(start_hub: StartHub, client_for: Connect) -> None:
    hub_a = await start_hub()
    hub_b = await start_hub()
    admin = await client_for(hub_a, "root", roles=("admin",))
    local = await client_for(hub_a, "alice")
    remote = await client_for(hub_b, "bob")
    ack = await admin.request({"type": "admin:broadcast", "content": "maintenance at noon"})
    assert ack["type"] == "ack" and ack["delivered"] == 2
    for client in (admin, local, remote):
        note = await client.expect("system:broadcast")
        assert note["content"] == "maintenance at noon"
        assert note["from_user"] == "root"
    await remote.expect_none("system:broadcast")  # exactly once


async def test_non_admin_broadcast_is_denied_then_closed(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    for _ in range(2):
        denied = await alice.request({"type": "admin:broadcast", "content": "all mine"})
        assert error_code(denied) == ErrorCode.PERMISSION_DENIED
        assert not alice.closed
    await alice.send({"type": "admin:broadcast", "content": "all mine"})
    assert await alice.closed_with() == CloseCode.FORBIDDEN
    assert bob.of_type("system:broadcast") == []


# -- output safety and internal errors ---------------------------------------------------------------


@both_engines
async def test_content_comes_back_byte_identical(hub: Hub, client_for: Connect) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")
    content = "<script>alert('x')</script> &lt;b&gt; \"quoted\" \\ é 🎉 \u2028 end"
    ack = await say(alice, content)
    received = await bob.expect("chat:message", message_id=ack["message_id"])
    assert received["content"] == content
    # On the wire too: no HTML escaping, no \\u escapes of the markup.
    frame = next(text for text in bob.raw if ack["message_id"] in text)
    assert "<script>alert('x')</script> &lt;b&gt;" in frame
    page = await bob.request({"type": "chat:history", "limit": 1})
    assert page["messages"][0]["content"] == content


@both_engines
async def test_internal_failure_is_contained(
    hub: Hub, client_for: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await client_for(hub, "alice")
    bob = await client_for(hub, "bob")

    async def broken_history(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in /srv/wslab/secret_module.py line 42")

    monkeypatch.setattr(hub.store, "history", broken_history)
    reply = await alice.request({"type": "chat:history", "room": "lobby"})
    assert error_code(reply) == ErrorCode.INTERNAL_ERROR
    message = reply["error"]["message"]
    assert "boom" not in message and "/srv" not in message and "Traceback" not in message
    assert "secret_module" not in str(reply)
    assert any(e["error"] == "RuntimeError" for e in hub.errors)
    # The hub keeps serving, alice included.
    assert (await say(bob, "still fine"))["seq"] == 1
    assert (await say(alice, "me too"))["seq"] == 2
    assert (await hub.health())["status"] == "ok"


async def test_a_lone_hub_publishes_nothing_and_a_second_hub_gets_every_message(
    start_hub: StartHub, client_for: Connect
) -> None:
    first = await start_hub()
    alice = await client_for(first, "alice")
    before = first.broker.status()["published"]  # presence's own snapshots go out as ever
    await say(alice, "nobody else to tell")
    # Alone on its in-process bus: the message is stored and delivered, not encoded for no one.
    assert first.broker.status()["published"] == before
    second = await start_hub()
    bob = await client_for(second, "bob")
    await wait_until(lambda: not first.broker.alone)
    ack = await say(alice, "now there is")
    got = await bob.expect("chat:message", message_id=ack["message_id"])
    assert got["content"] == "now there is" and got["seq"] == 2


async def test_the_greeting_and_the_lobby_snapshot_leave_in_one_write(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new connection's greeting and lobby snapshot leave in one socket write, not two."""
    from .conftest import open_client

    recorded: list[list[bytes]] = []
    handler = hub.server.handler  # type: ignore[attr-defined]

    async def spied(connection: Any) -> None:
        # Upgraded (the 101 is out), not greeted yet: every write from here on is counted.
        recorded.append(record_writes(connection.transport))
        await handler(connection)

    monkeypatch.setattr(hub.server, "handler", spied)
    alice = await open_client(hub.ws_url, hub.token("alice"), name="alice")
    try:
        await alice.expect("presence:snapshot", room="lobby")
        await alice.request({"type": "presence:list", "room": "lobby"})
        # Everything before the reply came in one write: the greeting, the snapshot (and her
        # own presence:join, announced while the lobby join finished); then the reply. It was
        # four writes.
        (written,) = recorded
        assert len(written) == 2
        assert frames_in(written[0]) >= 2 and frames_in(written[1]) == 1
    finally:
        await alice.close()
