"""Tests of ``wslab.client.events``: events built from the protocol's JSON, tolerantly."""

from __future__ import annotations

from datetime import datetime, timezone

from wslab.client import ChatMessage, Connected


def test_chat_message_from_wire_reads_every_field() -> None:
    wire = {
        "type": "chat:message",
        "room": "lobby",
        "message_id": "m1",
        "seq": 3,
        "from_user": "bob",
        "from_username": "Bob",
        "to_user": None,
        "content": "hi",
        "timestamp": "2024-05-01T12:00:00.123Z",
    }
    message = ChatMessage.from_wire(wire, recovered=True)
    assert (message.room, message.message_id, message.seq) == ("lobby", "m1", 3)
    assert (message.from_user, message.from_username, message.content) == ("bob", "Bob", "hi")
    assert message.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)
    assert message.recovered


def test_chat_message_from_wire_keeps_a_message_with_bad_fields() -> None:
    message = ChatMessage.from_wire({"content": "hi", "seq": True, "timestamp": "yesterday"})
    assert message.content == "hi"
    assert message.seq is None  # a bool is not a seq
    assert message.timestamp is None  # unknown, rather than dropping the message
    assert (message.room, message.message_id, message.recovered) == ("", "", False)


def test_connected_from_wire_reads_roles_and_defaults() -> None:
    hello = {"connection_id": "c1", "user_id": "u1", "server": "s", "roles": ["admin", 7]}
    connected = Connected.from_wire(hello)
    assert connected == Connected("c1", "u1", "s", "", "", ("admin", "7"))
    assert Connected.from_wire({"roles": "admin"}).roles == ()
