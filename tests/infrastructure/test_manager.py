"""``ConnectionManager``: the registry, keys and groups, and fan-out to real connections.

Every connection here is the server side of a real WebSocket connection on 127.0.0.1, so a
broadcast is proved by what the clients actually receive. The fan-out tests run on both engines;
the "encoded once" test looks inside wslab's engine, the only one that shares frame bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from wslab.foundation.codes import ErrorCode
from wslab.foundation.deflate import DeflateSettings
from wslab.foundation.errors import ConflictError
from wslab.infrastructure.connection import Connection, ConnectionLimits, Message, Prepared
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.manager import ConnectionManager, FanoutResult
from wslab.infrastructure.server import Server

GUARD = 10.0  # give up (fail, not hang) after this long


@dataclass
class Pair:
    """Both ends of one connection: the test's client and the server's side of it."""

    client: Connection
    server_side: Connection


class Peers:
    """A server that holds every connection open, and a way to open connected pairs to it."""

    def __init__(self, engine: str, limits: ConnectionLimits | None = None) -> None:
        self.engine = engine
        self.limits = limits
        self.server: Server | None = None
        self.pairs: list[Pair] = []
        self._accepted: asyncio.Queue[Connection] = asyncio.Queue(maxsize=64)

    async def start(self) -> None:
        async def hold(connection: Connection) -> None:
            await self._accepted.put(connection)
            await connection.wait_closed()

        self.server = await serve(hold, engine=self.engine, limits=self.limits)

    async def open(self, n: int) -> list[Pair]:
        assert self.server is not None
        pairs = []
        for _ in range(n):
            client = await connect(self.server.url, engine=self.engine, limits=self.limits)
            server_side = await asyncio.wait_for(self._accepted.get(), GUARD)
            pairs.append(Pair(client, server_side))
        self.pairs += pairs
        return pairs

    async def close(self) -> None:
        for pair in self.pairs:
            pair.client.abort()
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def peers(engine: str) -> AsyncIterator[Peers]:
    """Connected pairs on the engine under test."""
    peers = Peers(engine)
    await peers.start()
    yield peers
    await peers.close()


@pytest.fixture
async def local_peers() -> AsyncIterator[Peers]:
    """Connected pairs on wslab's engine (for the bookkeeping tests, where the engine is moot)."""
    peers = Peers("wslab")
    await peers.start()
    yield peers
    await peers.close()


async def recv(client: Connection) -> Message:
    return await asyncio.wait_for(client.recv(), GUARD)


async def assert_got_nothing_before(marker: str, client: Connection) -> None:
    """``client`` received nothing before ``marker`` (messages keep their order on a connection)."""
    assert await recv(client) == marker


# -- registry and keys ------------------------------------------------------------------------------


async def test_add_get_remove(local_peers: Peers) -> None:
    a, b, c = (p.server_side for p in await local_peers.open(3))
    manager = ConnectionManager()
    for connection in (a, b, c):
        manager.add(connection)
    assert len(manager) == 3
    assert manager.get(b.id) is b
    assert b in manager and "not a connection" not in manager
    assert {x.id for x in manager} == {a.id, b.id, c.id}
    manager.join(b, "room")
    assert manager.remove(b) == {"room"}
    assert manager.get(b.id) is None
    assert b not in manager
    assert len(manager) == 2
    assert manager.remove(b) == set()  # removing twice is harmless


async def test_keys_index_connections_and_can_be_replaced(local_peers: Peers) -> None:
    alice1, alice2, bob = (p.server_side for p in await local_peers.open(3))
    manager = ConnectionManager()
    manager.add(alice1, key="alice")
    manager.add(alice2, key="alice")
    manager.add(bob, key="bob")
    assert {x.id for x in manager.by_key("alice")} == {alice1.id, alice2.id}
    assert manager.key_of(bob) == "bob"
    assert manager.by_key("nobody") == []
    manager.set_key(bob, "robert")
    assert manager.by_key("bob") == []
    assert manager.by_key("robert") == [bob]
    manager.remove(alice1)
    assert manager.by_key("alice") == [alice2]
    assert manager.key_of(alice1) is None


async def test_the_connection_limit_raises_conflict(local_peers: Peers) -> None:
    a, b, c = (p.server_side for p in await local_peers.open(3))
    manager = ConnectionManager(max_connections=2)
    manager.add(a)
    manager.add(b)
    with pytest.raises(ConflictError) as refused:
        manager.add(c)
    assert refused.value.code is ErrorCode.CONFLICT
    assert c not in manager and len(manager) == 2
    manager.remove(a)
    manager.add(c)  # room again once one left
    assert c in manager


# -- groups -----------------------------------------------------------------------------------------


async def test_join_leave_and_empty_groups_vanish(local_peers: Peers) -> None:
    a, b = (p.server_side for p in await local_peers.open(2))
    manager = ConnectionManager()
    manager.add(a)
    manager.add(b)
    assert manager.join(a, "lobby") is True
    assert manager.join(a, "lobby") is False  # already a member
    assert manager.join(b, "lobby") is True
    assert manager.join(a, "dev") is True
    assert manager.groups() == {"lobby": 2, "dev": 1}
    assert manager.groups_of(a) == {"lobby", "dev"}
    assert {x.id for x in manager.members("lobby")} == {a.id, b.id}
    assert manager.leave(a, "dev") is True
    assert manager.leave(a, "dev") is False
    assert manager.leave(b, "never-joined") is False
    assert "dev" not in manager.groups()  # the last one left: the group is gone
    assert manager.members("dev") == []
    assert manager.remove(b) == {"lobby"}
    assert manager.groups() == {"lobby": 1}
    manager.remove(a)
    assert manager.groups() == {}  # removing the last member removes the group too


async def test_the_group_limit_per_connection_raises_conflict(local_peers: Peers) -> None:
    (pair,) = await local_peers.open(1)
    a = pair.server_side
    manager = ConnectionManager(max_groups_per_connection=2)
    manager.add(a)
    manager.join(a, "one")
    manager.join(a, "two")
    assert manager.join(a, "two") is False  # re-joining at the limit is not a new group
    with pytest.raises(ConflictError) as refused:
        manager.join(a, "three")
    assert refused.value.code is ErrorCode.CONFLICT
    assert manager.groups_of(a) == {"one", "two"}
    assert "three" not in manager.groups()
    manager.leave(a, "one")
    assert manager.join(a, "three") is True


# -- fan-out over real sockets ------------------------------------------------------------------------


async def test_broadcast_reaches_every_member_of_a_group(peers: Peers) -> None:
    pairs = await peers.open(5)
    outsider = (await peers.open(1))[0]
    manager = ConnectionManager()
    for pair in (*pairs, outsider):
        manager.add(pair.server_side)
    for pair in pairs:
        manager.join(pair.server_side, "room")
    assert manager.broadcast("hello room", "room") == FanoutResult(delivered=5, failed=0)
    assert manager.broadcast(b"\x00\xffbinary", "room").delivered == 5
    for pair in pairs:
        assert await recv(pair.client) == "hello room"
        assert await recv(pair.client) == b"\x00\xffbinary"  # the same type as sent
    # Without a group: everyone registered, the outsider too.
    everyone = manager.broadcast("hello all")
    assert everyone == FanoutResult(delivered=6, failed=0) and everyone.attempted == 6
    for pair in (*pairs, outsider):
        assert await recv(pair.client) == "hello all"
    assert manager.broadcast("nobody hears", "no-such-room") == FanoutResult(0, 0)


async def _spied_room(
    limits: ConnectionLimits, n: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Peers, list[Pair], list[bytes], ConnectionManager, list[Prepared]]:
    """``n`` pairs in one room, every byte the server writes recorded (the very objects)."""
    peers = Peers("wslab", limits)
    await peers.start()
    pairs = await peers.open(n)
    written: list[bytes] = []
    for pair in pairs:
        transport = pair.server_side.transport  # type: ignore[attr-defined]
        original = transport.write

        def spy(data: bytes, original: Callable[[bytes], None] = original) -> None:
            written.append(data)
            original(data)

        monkeypatch.setattr(transport, "write", spy)
    fanouts: list[Prepared] = []
    manager = ConnectionManager(on_fanout=lambda p, r: fanouts.append(p))
    for pair in pairs:
        manager.add(pair.server_side)
        manager.join(pair.server_side, "room")
    return peers, pairs, written, manager, fanouts


async def test_broadcast_encodes_once_and_shares_the_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers, pairs, written, manager, fanouts = await _spied_room(
        ConnectionLimits(compression=None), 5, monkeypatch
    )
    try:
        message = "x" * 1000
        assert manager.broadcast(message, "room").delivered == 5
        (prepared,) = fanouts
        assert prepared.encodes == 1 and prepared.compressions == 0  # one encode, five receivers
        assert prepared.payload_length == len(message)
        assert len(written) == 5
        assert all(data is written[0] for data in written)  # the very same bytes object
        for pair in pairs:
            assert await recv(pair.client) == message
    finally:
        await peers.close()


async def test_context_free_connections_share_one_compressed_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = ConnectionLimits(compression=DeflateSettings(no_context_takeover=True))
    peers, pairs, written, manager, fanouts = await _spied_room(limits, 5, monkeypatch)
    try:
        message = '{"type":"chat:message","text":"' + "hello " * 100 + '"}'
        for _ in range(2):
            manager.broadcast(message, "room")
        for prepared in fanouts:
            assert prepared.compressions == 1 and prepared.encodes == 0
        assert len(written) == 10
        assert all(data is written[0] for data in written[:5])  # shared, not just equal
        assert written[0][0] & 0x40  # RSV1: compressed
        assert len(written[0]) < len(message) // 4
        assert written[5] == written[0]  # no context: the same message compresses the same
        for pair in pairs:
            assert [await recv(pair.client) for _ in range(2)] == [message, message]
    finally:
        await peers.close()


async def test_context_takeover_compresses_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers, pairs, written, manager, fanouts = await _spied_room(
        ConnectionLimits(), 3, monkeypatch
    )
    try:
        message = '{"type":"chat:message","text":"' + "hello " * 100 + '"}'
        for _ in range(2):
            manager.broadcast(message, "room")
        assert all(p.compressions == 0 and p.encodes == 0 for p in fanouts)
        first, second = written[:3], written[3:]
        assert all(data[0] & 0x40 for data in written)
        assert len(second[0]) < len(first[0]) // 2  # the window remembers the first copy
        assert first[0] is not first[1]  # each connection's own compressor
        short = manager.broadcast("hi", "room")  # below the threshold: shared and uncompressed
        assert short.delivered == 3 and fanouts[-1].encodes == 1
        assert not written[-1][0] & 0x40
        for pair in pairs:
            assert [await recv(pair.client) for _ in range(3)] == [message, message, "hi"]
    finally:
        await peers.close()


async def test_a_failing_member_costs_only_itself(
    peers: Peers, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = await peers.open(4)
    closed, broken, fine1, fine2 = pairs
    manager = ConnectionManager()
    for pair in pairs:
        manager.add(pair.server_side)
        manager.join(pair.server_side, "room")
    # One member's client has gone (but the connection is still registered)...
    await closed.client.close()
    await asyncio.wait_for(closed.server_side.wait_closed(), GUARD)
    assert closed.server_side in manager

    # ...and another one's send blows up.
    def explode(prepared: Prepared) -> bool:
        raise RuntimeError("socket on fire")

    monkeypatch.setattr(broken.server_side, "send_prepared", explode)
    with caplog.at_level(logging.ERROR, logger="wslab.manager"):
        result = manager.broadcast("still delivered", "room")
    assert result == FanoutResult(delivered=2, failed=2)
    assert result.attempted == 4
    for pair in (fine1, fine2):
        assert await recv(pair.client) == "still delivered"
    assert any(broken.server_side.id in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert manager.send_to(broken.server_side.id, "after the failure")
    assert await recv(broken.client) == "after the failure"
    assert not manager.send_to(closed.server_side.id, "to a closed one")


async def test_send_to_key_reaches_every_connection_of_the_key(peers: Peers) -> None:
    tab1, tab2, other = await peers.open(3)
    manager = ConnectionManager()
    manager.add(tab1.server_side, key="alice")
    manager.add(tab2.server_side, key="alice")
    manager.add(other.server_side, key="bob")
    assert manager.send_to_key("alice", "for alice") == FanoutResult(delivered=2, failed=0)
    assert await recv(tab1.client) == "for alice"
    assert await recv(tab2.client) == "for alice"
    assert manager.send_to(other.server_side.id, "marker")
    await assert_got_nothing_before("marker", other.client)
    assert manager.send_to_key("nobody", "lost") == FanoutResult(0, 0)
    assert not manager.send_to("no-such-id", "lost")


async def test_broadcast_can_exclude_the_sender(peers: Peers) -> None:
    sender, a, b = await peers.open(3)
    manager = ConnectionManager()
    for pair in (sender, a, b):
        manager.add(pair.server_side)
        manager.join(pair.server_side, "room")
    result = manager.broadcast("typing...", "room", exclude=[sender.server_side.id])
    assert result == FanoutResult(delivered=2, failed=0)
    assert await recv(a.client) == "typing..."
    assert await recv(b.client) == "typing..."
    assert manager.send_to(sender.server_side.id, "marker")
    await assert_got_nothing_before("marker", sender.client)
