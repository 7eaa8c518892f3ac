"""Tests of :class:`wslab.client.ChatClient` (``wslab/client/chat_client.py`` and its mixins).

Two kinds of peer, both over real sockets on 127.0.0.1:

- the real :class:`~wslab.hub.Hub` (SQLite file store) for what a user sees end to end: chat
  between two clients, acks, error mapping, timeouts, and reconnect + recovery after the hub's
  side of the connection is aborted;
- ``ScriptedHub``, a small server written here on wslab's transport, for protocol situations a
  real hub produces only by chance: a live message that never arrives (a seq gap), acks out of
  order, a history page with ``complete: false``, ``system:resync``, a close with 4001, a flood of
  events. A scripted peer makes those scenarios deterministic.

The reconnect schedule is checked with an injected ``rng`` and ``sleep``, never with clocks.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from wslab.client import (
    Ack,
    AuthExpiring,
    ChatClient,
    ChatMessage,
    Connected,
    Disconnected,
    ErrorEvent,
    HistoryGap,
    LateAck,
    PresenceJoin,
    Reconnected,
    SystemBroadcast,
    TooManyPending,
    Typing,
    User,
)
from wslab.foundation.codes import CloseCode, ErrorCode
from wslab.foundation.errors import (
    AuthenticationError,
    ConnectionBroken,
    ConnectionClosed,
    DegradedError,
    NotFoundError,
    OperationTimeout,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
)
from wslab.hub import Hub
from wslab.infrastructure.connection import Connection
from wslab.infrastructure.engines import serve
from wslab.testing import wait_until

pytestmark = pytest.mark.timeout(30)

Reply = dict[str, Any] | None
Override = Callable[[Connection, dict[str, Any]], Awaitable[Reply]]


# -- a scripted peer --------------------------------------------------------------------------------


class ScriptedHub:
    """Speaks just enough of the chat protocol, with knobs for the situations under test.

    Messages are kept per room with gap-free seqs; ``hidden`` seqs are stored but not sent live
    (a lost live message); messages at or below ``floor[room]`` are gone from "retention".
    ``overrides`` replace the handler of a message type; ``refuse`` lists connection numbers
    (0-based) closed with 1011 before ``system:connected``.
    """

    def __init__(self, user_id: str = "alice") -> None:
        self.user_id = user_id
        self.rooms: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.hidden: set[tuple[str, int]] = set()
        self.floor: dict[str, int] = {}
        self.overrides: dict[str, Override] = {}
        self.refuse: set[int] = set()
        self.close_with: int | None = None  # close every new connection with this code
        self.connections: list[Connection] = []
        self.received: list[dict[str, Any]] = []
        self.server: Any = None

    async def start(self) -> ScriptedHub:
        self.server = await serve(self._handler, port=0)
        return self

    @property
    def url(self) -> str:
        return f"{self.server.url}/ws"

    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("type") == kind]

    def store(self, room: str, content: str, from_user: str = "bob") -> dict[str, Any]:
        messages = self.rooms[room]
        wire = {
            "type": "chat:message",
            "room": room,
            "message_id": f"{room}-{len(messages) + 1}",
            "seq": len(messages) + 1,
            "from_user": from_user,
            "from_username": from_user.title(),
            "to_user": None,
            "content": content,
            "timestamp": "2024-05-01T12:00:00.123Z",
        }
        messages.append(wire)
        return wire

    def publish(self, room: str, content: str, from_user: str = "bob") -> dict[str, Any]:
        wire = self.store(room, content, from_user)
        if (room, wire["seq"]) not in self.hidden:
            self.send_all(wire)
        return wire

    def send_all(self, message: dict[str, Any]) -> None:
        for connection in self.open_connections():
            connection.send_nowait(json.dumps(message))

    def abort_all(self) -> None:
        for connection in self.open_connections():
            connection.abort("test drops the connection")

    async def _handler(self, connection: Connection) -> None:
        number = len(self.connections)
        self.connections.append(connection)
        if number in self.refuse:
            await connection.close(CloseCode.INTERNAL_ERROR, "not now")
            return
        if self.close_with is not None:
            await connection.close(self.close_with, "authentication failed")
            return
        hello = {
            "type": "system:connected",
            "connection_id": f"c{number}",
            "user_id": self.user_id,
            "username": self.user_id.title(),
            "server": "scripted",
            "protocol_version": "1.0",
        }
        await connection.send(json.dumps(hello))
        async for raw in connection:
            message = json.loads(raw)
            self.received.append(message)
            kind = message.get("type")
            handler = self.overrides.get(kind) or getattr(self, "_on_" + kind.replace(":", "_"))
            reply = await handler(connection, message)
            if reply is not None:
                if "ref" in message:
                    reply.setdefault("ref", message["ref"])
                connection.send_nowait(json.dumps(reply))

    async def _on_auth(self, connection: Connection, message: dict[str, Any]) -> Reply:
        return None  # recorded in `received`; this peer admits everyone

    async def _on_room_join(self, connection: Connection, message: dict[str, Any]) -> Reply:
        room = message["room"]
        return {
            "type": "ack",
            "status": "success",
            "room": room,
            "latest_seq": len(self.rooms[room]),
        }

    async def _on_room_leave(self, connection: Connection, message: dict[str, Any]) -> Reply:
        return {"type": "ack", "status": "success", "room": message["room"]}

    async def _on_chat_message(self, connection: Connection, message: dict[str, Any]) -> Reply:
        wire = self.publish(message.get("room", "lobby"), message["content"], self.user_id)
        return {
            "type": "ack",
            "status": "success",
            "message_id": wire["message_id"],
            "seq": wire["seq"],
        }

    async def _on_chat_typing(self, connection: Connection, message: dict[str, Any]) -> Reply:
        return None

    async def _on_presence_list(self, connection: Connection, message: dict[str, Any]) -> Reply:
        users = [{"user_id": "alice", "username": "Alice"}, {"user_id": "bob", "username": "Bob"}]
        return {"type": "presence:list", "room": message["room"], "users": users}

    async def _on_auth_refresh(self, connection: Connection, message: dict[str, Any]) -> Reply:
        return {"type": "auth:refreshed", "expires_in": 60}

    async def _on_chat_history(self, connection: Connection, message: dict[str, Any]) -> Reply:
        room = message.get("room", "lobby")
        limit = message.get("limit", 50)
        floor = self.floor.get(room, 0)
        kept = [m for m in self.rooms[room] if m["seq"] > floor]
        since = message.get("since_seq")
        if since is not None:
            page = [m for m in kept if m["seq"] > since][:limit]
            complete = since >= floor
        else:
            page = kept[-limit:]
            complete = True
        return {"type": "chat:history", "room": room, "messages": page, "complete": complete}


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedHub]:
    hub = await ScriptedHub().start()
    try:
        yield hub
    finally:
        await hub.server.close()


class Gate:
    """An injected ``sleep``: records each backoff delay and waits until the test opens it."""

    def __init__(self, *, open_: bool = True) -> None:
        self.delays: list[float] = []
        self.opened = asyncio.Event()
        if open_:
            self.opened.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self.opened.wait()


class UpperBound:
    """An injected ``rng`` whose ``uniform(a, b)`` returns ``b``, recording the bounds asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b


async def chat_messages(client: ChatClient, count: int) -> list[ChatMessage]:
    return [await client.next_event(ChatMessage, timeout=5) for _ in range(count)]


# -- backoff ----------------------------------------------------------------------------------------


async def test_reconnect_schedule_is_capped_and_resets_after_success(scripted: ScriptedHub) -> None:
    rng, gate = UpperBound(), Gate()
    client = ChatClient(
        scripted.url, rooms=(), backoff_initial=0.1, backoff_max=0.3, rng=rng, sleep=gate
    )
    async with client:
        scripted.refuse = {1, 2, 3}  # the next three attempts fail, the fourth succeeds
        scripted.abort_all()
        assert (await client.next_event(Reconnected)).attempt == 4
        assert gate.delays == [0.1, 0.2, 0.3, 0.3]
        assert client.stats.failed_attempts == 3
        assert client.stats.reconnects == 1

        scripted.abort_all()  # after a success the schedule starts again from the bottom
        assert (await client.next_event(Reconnected)).attempt == 1
        assert gate.delays[4:] == [0.1]
    assert all(a == 0 for a, _ in rng.calls)  # full jitter: the lower bound is always 0
    assert list(client.backoff_delays) == gate.delays


async def test_no_reconnect_after_close_or_when_disabled(scripted: ScriptedHub) -> None:
    gate = Gate()
    client = await ChatClient(scripted.url, rooms=(), reconnect=False, sleep=gate).connect()
    scripted.abort_all()
    gone = await client.next_event(Disconnected)
    assert gone.will_reconnect is False
    assert [type(e) for e in [e async for e in client]] == [Connected]  # then the end
    assert gate.delays == [] and len(scripted.connections) == 1

    client = await ChatClient(scripted.url, rooms=(), sleep=gate).connect()
    await client.close()
    await client.close()  # idempotent
    assert gate.delays == [] and len(scripted.connections) == 2
    with pytest.raises(ConnectionClosed):
        await client.send_message("after close")


# -- authentication ---------------------------------------------------------------------------------


async def test_4001_during_connect_raises_authentication_error(scripted: ScriptedHub) -> None:
    scripted.close_with = CloseCode.AUTHENTICATION_FAILED
    with pytest.raises(AuthenticationError):
        await ChatClient(scripted.url, token="bad").connect()


async def test_a_close_while_connect_joins_its_rooms_fails_connect_with_the_close(
    scripted: ScriptedHub,
) -> None:
    # The hub greets, then closes before answering the lobby join (its heartbeat gave up on a
    # slow link): connect() must fail with that close, not wait out the request timeout.
    async def close_instead(connection: Connection, message: dict[str, Any]) -> Reply:
        await connection.close(CloseCode.INTERNAL_ERROR, "no pong")
        return None

    scripted.overrides["room:join"] = close_instead
    client = ChatClient(scripted.url, token="t", reconnect=False, request_timeout=20)
    with pytest.raises(ConnectionBroken) as caught:
        await client.connect()
    assert caught.value.close_code == CloseCode.INTERNAL_ERROR


@pytest.mark.parametrize("code", [CloseCode.AUTHENTICATION_FAILED, CloseCode.FORBIDDEN])
async def test_4001_and_4003_after_connect_are_final(scripted: ScriptedHub, code: int) -> None:
    gate = Gate()
    client = await ChatClient(scripted.url, rooms=(), sleep=gate).connect()
    await scripted.connections[0].close(code, "go away")
    gone = await client.next_event(Disconnected)
    assert (gone.code, gone.reason, gone.will_reconnect) == (code, "go away", False)
    assert client.closed
    assert gate.delays == [] and len(scripted.connections) == 1


@pytest.mark.parametrize("auth", ["header", "query", "message"])
async def test_token_travels_as_chosen(scripted: ScriptedHub, auth: str) -> None:
    async with ChatClient(scripted.url, token="t0k3n", auth=auth, rooms=()):
        connection = scripted.connections[0]
        header = connection.headers.get("Authorization")
        query = connection.query.get("token")
        first = scripted.received[0] if scripted.received else None
    if auth == "header":
        assert header == "Bearer t0k3n" and not query
    elif auth == "query":
        assert query in (["t0k3n"], "t0k3n") and header is None
    else:
        assert first == {"type": "auth", "token": "t0k3n"} and header is None and not query


async def test_auth_expiring_calls_the_token_provider(scripted: ScriptedHub) -> None:
    async def provider() -> str:
        return "fresh"

    async with ChatClient(scripted.url, token="old", rooms=(), token_provider=provider) as client:
        scripted.send_all({"type": "auth:expiring", "expires_in": 30})
        assert (await client.next_event(AuthExpiring)).expires_in == 30
        await wait_until(
            lambda: bool(scripted.of_type("auth:refresh")), "auth:refresh", timeout=5.0
        )
        assert scripted.of_type("auth:refresh")[0]["token"] == "fresh"
        await wait_until(lambda: client.token == "fresh", "the fresh token", timeout=5.0)


# -- requests, acks and errors ----------------------------------------------------------------------


async def test_acks_are_matched_by_ref_even_out_of_order(scripted: ScriptedHub) -> None:
    waiting: list[tuple[Connection, dict[str, Any]]] = []

    async def collect(connection: Connection, message: dict[str, Any]) -> Reply:
        waiting.append((connection, message))
        if len(waiting) == 3:  # answer the three in reverse order
            for conn, request in reversed(waiting):
                ack = {"type": "ack", "status": "success", "ref": request["ref"]}
                ack |= {"message_id": "id-" + request["content"], "seq": len(request["content"])}
                conn.send_nowait(json.dumps(ack))
        return None

    scripted.overrides["chat:message"] = collect
    async with ChatClient(scripted.url, rooms=()) as client:
        acks = await asyncio.gather(*(client.send_message(c) for c in ("a", "bb", "ccc")))
    assert [(a.message_id, a.seq) for a in acks] == [("id-a", 1), ("id-bb", 2), ("id-ccc", 3)]
    refs = [m["ref"] for _, m in waiting]
    assert len(set(refs)) == 3 and all(isinstance(a, Ack) for a in acks)


async def test_degraded_keeps_the_message_id_and_a_late_ack_is_reported(
    scripted: ScriptedHub,
) -> None:
    late: list[tuple[Connection, str]] = []

    async def degraded(connection: Connection, message: dict[str, Any]) -> Reply:
        late.append((connection, message["ref"]))
        error = {"code": int(ErrorCode.DEGRADED), "name": "DEGRADED", "message": "store down"}
        return {"type": "error", "error": error, "message_id": "m-77"}

    scripted.overrides["chat:message"] = degraded
    async with ChatClient(scripted.url, rooms=()) as client:
        with pytest.raises(DegradedError) as caught:
            await client.send_message("hello")
        assert caught.value.message_id == "m-77"  # type: ignore[attr-defined]
        connection, ref = late[0]
        ack = {"type": "ack", "status": "success", "ref": ref, "message_id": "m-77", "seq": 9}
        connection.send_nowait(json.dumps(ack))
        assert await client.next_event(LateAck) == LateAck(ref, "m-77", 9)


async def test_timeout_then_pending_bound_then_all_pending_fail_on_drop(
    scripted: ScriptedHub,
) -> None:
    async def silent(connection: Connection, message: dict[str, Any]) -> Reply:
        return None

    scripted.overrides["chat:message"] = silent
    client = ChatClient(scripted.url, rooms=(), request_timeout=0.2, max_pending=2, sleep=Gate())
    async with client:
        with pytest.raises(OperationTimeout):
            await client.send_message("lost in the void")
        client.request_timeout = 30
        first = asyncio.ensure_future(client.send_message("one"))
        second = asyncio.ensure_future(client.send_message("two"))
        await wait_until(
            lambda: len(scripted.of_type("chat:message")) == 3, "3 messages", timeout=5.0
        )
        with pytest.raises(TooManyPending):
            await client.send_message("three")
        scripted.abort_all()
        for pending in (first, second):
            with pytest.raises(ConnectionClosed):
                await pending
        await client.next_event(Reconnected)
        # Chat messages are never resent by the client: the hub saw each one once.
        assert [m["content"] for m in scripted.of_type("chat:message")] == [
            "lost in the void",
            "one",
            "two",
        ]


async def test_presence_typing_and_events(scripted: ScriptedHub) -> None:
    async with ChatClient(scripted.url, rooms=()) as client:
        assert isinstance(await client.next_event(Connected), Connected)
        assert await client.presence("lobby") == [User("alice", "Alice"), User("bob", "Bob")]
        await client.typing("lobby", True)
        await wait_until(lambda: bool(scripted.of_type("chat:typing")), "chat:typing", timeout=5.0)
        assert "ref" not in scripted.of_type("chat:typing")[0]  # fire and forget
        scripted.send_all(
            {
                "type": "chat:typing",
                "room": "lobby",
                "user_id": "bob",
                "username": "Bob",
                "is_typing": True,
            }
        )
        scripted.send_all(
            {"type": "presence:join", "room": "lobby", "user_id": "bob", "username": "Bob"}
        )
        scripted.send_all(
            {"type": "system:broadcast", "content": "maintenance at noon", "from_user": "root"}
        )
        error = {"code": 8, "name": "RATE_LIMITED", "message": "slow down"}
        scripted.send_all({"type": "error", "error": error})
        assert await client.next_event(Typing) == Typing("lobby", "bob", "Bob", True)
        assert await client.next_event(PresenceJoin) == PresenceJoin("lobby", "bob", "Bob")
        assert (await client.next_event(SystemBroadcast)).content == "maintenance at noon"
        assert await client.next_event(ErrorEvent) == ErrorEvent(8, "RATE_LIMITED", "slow down")


async def test_inbox_is_bounded_and_drops_the_oldest(scripted: ScriptedHub) -> None:
    async with ChatClient(scripted.url, rooms=(), max_inbox=3) as client:
        for n in range(5):
            scripted.send_all(
                {
                    "type": "chat:typing",
                    "room": "lobby",
                    "user_id": str(n),
                    "username": "",
                    "is_typing": True,
                }
            )
        await client.presence("lobby")  # its reply comes after the five events
        assert client.dropped_events == 3  # Connected and the first two typing events
        assert [e.user_id for e in client.pending_events()] == ["2", "3", "4"]  # type: ignore[attr-defined]


# -- ordering, gaps and recovery --------------------------------------------------------------------


async def test_live_seq_gap_is_filled_from_history_in_order(scripted: ScriptedHub) -> None:
    async with ChatClient(scripted.url) as client:
        scripted.hidden = {("lobby", 3), ("lobby", 4)}
        for n in range(1, 6):
            scripted.publish("lobby", f"m{n}")
        received = await chat_messages(client, 5)
        assert [(m.seq, m.recovered) for m in received] == [
            (1, False),
            (2, False),
            (3, True),
            (4, True),
            (5, False),
        ]
        history = scripted.of_type("chat:history")
        assert [(h["since_seq"], h["limit"]) for h in history] == [(2, 100)]
        assert [m.seq for m in client.messages("lobby")] == [1, 2, 3, 4, 5]
        assert client.stats.recovered == 2


async def test_reconnect_pages_through_history_and_merges_live_without_duplicates(
    scripted: ScriptedHub,
) -> None:
    gate = Gate(open_=False)
    async with ChatClient(scripted.url, sleep=gate, rng=UpperBound()) as client:
        scripted.publish("lobby", "before 1")
        scripted.publish("lobby", "before 2")
        assert [m.seq for m in await chat_messages(client, 2)] == [1, 2]

        scripted.abort_all()
        assert (await client.next_event(Disconnected)).will_reconnect
        for n in range(3, 253):  # 250 messages while the client is away
            scripted.store("lobby", f"missed {n}")

        served = 0

        async def history_with_live_traffic(
            connection: Connection, message: dict[str, Any]
        ) -> Reply:
            nonlocal served
            served += 1
            if served == 1:
                # During recovery, live: a new message, one the first page also holds, and
                # a repeat of one delivered before the drop.
                scripted.publish("lobby", "live during recovery")
                connection.send_nowait(json.dumps(scripted.rooms["lobby"][99]))
                connection.send_nowait(json.dumps(scripted.rooms["lobby"][1]))
            return await scripted._on_chat_history(connection, message)

        scripted.overrides["chat:history"] = history_with_live_traffic
        gate.opened.set()
        await client.next_event(Reconnected)
        received = await chat_messages(client, 251)
        assert [m.seq for m in received] == list(range(3, 254))
        # Recovered means "came from history": not seq 100 and 253, which also came live.
        assert [m.seq for m in received if not m.recovered] == [100, 253]
        assert len({m.message_id for m in received}) == 251
        pages = [(h["since_seq"], h["limit"]) for h in scripted.of_type("chat:history")]
        assert pages == [(2, 100), (102, 100), (202, 100)]
        assert [j["room"] for j in scripted.of_type("room:join")] == ["lobby", "lobby"]
        assert client.stats.duplicates == 1  # the repeat of seq 2
        with pytest.raises(OperationTimeout):
            await client.next_event(ChatMessage, timeout=0.1)


async def test_reconnect_without_missed_messages_asks_no_history(scripted: ScriptedHub) -> None:
    async with ChatClient(scripted.url, sleep=Gate()) as client:
        scripted.publish("lobby", "one")
        await chat_messages(client, 1)
        scripted.abort_all()
        await client.next_event(Reconnected)
        await client.wait_connected(5)
        await client.presence("lobby")  # a round trip after the rejoin
        assert scripted.of_type("chat:history") == []  # the join's latest_seq said so


async def test_retention_gap_is_reported_not_hidden(scripted: ScriptedHub) -> None:
    gate = Gate(open_=False)
    async with ChatClient(scripted.url, sleep=gate) as client:
        scripted.publish("lobby", "seen")
        await chat_messages(client, 1)
        scripted.abort_all()
        await client.next_event(Disconnected)
        for n in range(2, 13):
            scripted.store("lobby", f"m{n}")
        scripted.floor["lobby"] = 10  # seq 1..10 dropped from retention
        gate.opened.set()
        assert await client.next_event(HistoryGap) == HistoryGap("lobby", 1)
        assert [m.seq for m in await chat_messages(client, 2)] == [11, 12]
        assert client.stats.gaps == 1


async def test_system_resync_recovers_the_rooms_it_names(scripted: ScriptedHub) -> None:
    async with ChatClient(scripted.url, rooms=("lobby", "dev")) as client:
        scripted.publish("dev", "visible")
        await chat_messages(client, 1)
        scripted.hidden = {("dev", 2), ("dev", 3)}
        scripted.publish("dev", "missed a")
        scripted.publish("dev", "missed b")
        scripted.send_all({"type": "system:resync", "rooms": ["dev"], "reason": "broker back"})
        received = await chat_messages(client, 2)
        assert [(m.room, m.seq, m.recovered) for m in received] == [
            ("dev", 2, True),
            ("dev", 3, True),
        ]
        assert [h["room"] for h in scripted.of_type("chat:history")] == ["dev"]


# -- the real hub -----------------------------------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    hub = await Hub.start(
        port=0,
        auth_required=True,
        database=f"sqlite:///{tmp_path}/h.db",
        rate_burst=1000,  # the recovery test sends a burst of messages on purpose
        rate_messages_per_second=1000,
    )
    try:
        yield hub
    finally:
        await hub.stop()


def abort_user(hub: Hub, user_id: str) -> None:
    """Drop the hub's side of every connection of ``user_id`` without a closing handshake."""
    for connection in list(hub.connections):
        session = hub.chat.sessions.get(connection.id)
        if session is not None and session.user_id == user_id:
            connection.abort("test drops the connection")


async def test_two_clients_chat_through_the_hub(hub: Hub) -> None:
    alice = ChatClient(hub.ws_url, token=hub.token("alice", username="Alice"))
    bob = ChatClient(hub.ws_url, token=hub.token("bob", username="Bob"), auth="message")
    async with alice, bob:
        assert alice.user_id == "alice" and bob.user_id == "bob"
        ack = await alice.send_message("hi bob")
        got = await bob.next_event(ChatMessage)
        assert (got.from_user, got.from_username, got.content) == ("alice", "Alice", "hi bob")
        assert (got.message_id, got.seq) == (ack.message_id, ack.seq)
        assert got.timestamp is not None and got.timestamp.tzinfo is not None
        own = await alice.next_event(ChatMessage)
        assert own.message_id == ack.message_id
        assert len(alice.latencies) == 1 and alice.latencies[0] >= 0

        dm = await bob.send_message("psst", to_user="alice")
        private = await alice.next_event(ChatMessage)
        assert (private.content, private.to_user, private.seq) == ("psst", "alice", dm.seq)
        assert alice.messages(with_user="bob") == [private]

        await bob.join("dev")
        await bob.send_message("in dev", room="dev")
        history = await bob.history("dev")
        assert [m.content for m in history.messages] == ["in dev"] and history.complete
        assert {u.user_id for u in await alice.presence("lobby")} == {"alice", "bob"}


async def test_hub_errors_map_to_exceptions_and_missing_replies_time_out(hub: Hub) -> None:
    async with ChatClient(hub.ws_url, token=hub.token("carol")) as carol:
        with pytest.raises(ValidationError):
            await carol.send_message("x" * 5001)
        with pytest.raises(ValidationError):
            await carol.send_message("not a member", room="elsewhere")
        with pytest.raises(PermissionDeniedError):
            await carol.admin_broadcast("I am not an admin")
        with pytest.raises(NotFoundError):
            await carol.request({"type": "no:such"})
        with pytest.raises(OperationTimeout):  # typing has no reply
            await carol.request(
                {"type": "chat:typing", "room": "lobby", "is_typing": True}, timeout=0.3
            )
        assert (await carol.send_message("still connected")).seq == 1


async def test_bad_token_is_refused(hub: Hub) -> None:
    with pytest.raises(AuthenticationError):
        await ChatClient(hub.ws_url, token="not-a-jwt").connect()


async def test_admin_broadcast_reaches_everyone(hub: Hub) -> None:
    root = ChatClient(hub.ws_url, token=hub.token("root", roles=("admin",)))
    dave = ChatClient(hub.ws_url, token=hub.token("dave"))
    async with root, dave:
        await root.admin_broadcast("the hub restarts at noon")
        assert (await dave.next_event(SystemBroadcast)).content == "the hub restarts at noon"


async def test_forced_disconnect_loses_nothing_and_duplicates_nothing(hub: Hub) -> None:
    gate = Gate(open_=False)
    alice = ChatClient(hub.ws_url, token=hub.token("alice"))
    bob = ChatClient(hub.ws_url, token=hub.token("bob"), sleep=gate, rooms=("lobby", "dev"))
    async with alice, bob:
        await alice.join("dev")
        for n in range(3):
            await alice.send_message(f"before {n}")
        await alice.send_message("dm before", to_user="bob")
        await chat_messages(bob, 4)

        abort_user(hub, "bob")
        assert (await bob.next_event(Disconnected)).will_reconnect
        sent = [await alice.send_message(f"missed {n}") for n in range(120)]
        await alice.send_message("missed in dev", room="dev")
        await alice.send_message("dm missed", to_user="bob")
        gate.opened.set()
        assert (await bob.next_event(Reconnected)).attempt == 1

        await alice.send_message("after")
        received = await chat_messages(bob, 123)
        lobby = [m for m in received if m.room == "lobby"]
        assert [m.seq for m in lobby] == list(range(4, 125))
        assert [m.message_id for m in lobby[:120]] == [a.message_id for a in sent]
        assert all(m.recovered for m in lobby[:120])
        assert [m.content for m in received if m.room == "dev"] == ["missed in dev"]
        direct = [m for m in received if m.to_user == "bob"]
        assert [(m.content, m.seq, m.recovered) for m in direct] == [("dm missed", 2, True)]
        assert [m.content for m in bob.messages(with_user="alice")] == ["dm before", "dm missed"]
        assert [m.seq for m in bob.messages("lobby")] == list(range(1, 125))
        with pytest.raises(OperationTimeout):
            await bob.next_event(ChatMessage, timeout=0.2)
        assert bob.stats.reconnects == 1


async def test_websockets_engine_client(hub: Hub) -> None:
    async with ChatClient(hub.ws_url, token=hub.token("erin"), engine="websockets") as erin:
        ack = await erin.send_message("over the reference engine")
        assert (await erin.next_event(ChatMessage)).message_id == ack.message_id


async def test_rate_limited_send_raises_rate_limited_error(tmp_path: Path) -> None:
    hub = await Hub.start(
        port=0,
        auth_required=False,
        database=f"sqlite:///{tmp_path}/h.db",
        rate_burst=2,
        rate_messages_per_second=0.1,
    )
    try:
        async with ChatClient(hub.ws_url, request_timeout=1.0) as fast:
            with pytest.raises(RateLimitedError):
                for n in range(5):
                    await fast.send_message(f"flood {n}")
    finally:
        await hub.stop()
