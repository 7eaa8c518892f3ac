"""A corked connection holds its frames and writes them in one go (wslab's engine).

What a chat message uses so that the sender's own copy and its ack leave in one socket write;
the hold must be bounded, keep the order, end with a close, and be a no-op where the engine
cannot hold writes (the ``websockets`` engine).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wslab.infrastructure.connection import Connection, ConnectionLimits, Prepared
from wslab.infrastructure.engines.wslab.connection import CORK_LIMIT

from .test_manager import Peers, recv


def spy_writes(server_side: Connection, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every ``transport.write`` of the server's side of a connection, as written."""
    written: list[bytes] = []
    transport = server_side.transport  # type: ignore[attr-defined]
    original = transport.write

    def spy(data: bytes, original: Callable[[bytes], None] = original) -> None:
        written.append(bytes(data))
        original(data)

    monkeypatch.setattr(transport, "write", spy)
    return written


async def test_frames_written_while_corked_leave_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers = Peers("wslab")
    await peers.start()
    try:
        (pair,) = await peers.open(1)
        written = spy_writes(pair.server_side, monkeypatch)
        pair.server_side.cork()
        assert pair.server_side.send_prepared(Prepared("copy"))
        assert pair.server_side.send_nowait("ack")
        assert written == []  # held
        pair.server_side.uncork()
        assert len(written) == 1
        assert [await recv(pair.client), await recv(pair.client)] == ["copy", "ack"]
        pair.server_side.uncork()  # not corked: nothing happens
        assert pair.server_side.send_nowait("after")
        assert len(written) == 2  # straight to the socket again
        assert await recv(pair.client) == "after"
    finally:
        await peers.close()


async def test_the_hold_is_bounded_and_keeps_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    peers = Peers("wslab", ConnectionLimits(compression=None))  # frames as long as the messages
    await peers.start()
    try:
        (pair,) = await peers.open(1)
        written = spy_writes(pair.server_side, monkeypatch)
        pair.server_side.cork()
        chunk = "x" * 1000
        count = CORK_LIMIT // 1000 + 10
        for i in range(count):
            pair.server_side.send_nowait(f"{i:04d}{chunk}")
        assert written and all(len(data) < CORK_LIMIT + 1100 for data in written)
        pair.server_side.uncork()
        assert [(await recv(pair.client))[:4] for _ in range(count)] == [
            f"{i:04d}" for i in range(count)
        ]
    finally:
        await peers.close()


async def test_a_close_writes_what_was_held_first() -> None:
    peers = Peers("wslab")
    await peers.start()
    try:
        (pair,) = await peers.open(1)
        pair.server_side.cork()
        pair.server_side.send_nowait("last words")
        await pair.server_side.close()
        assert await recv(pair.client) == "last words"
    finally:
        await peers.close()


async def test_the_websockets_engine_does_not_cork() -> None:
    peers = Peers("websockets")
    await peers.start()
    try:
        (pair,) = await peers.open(1)
        pair.server_side.cork()
        assert pair.server_side.send_nowait("one")
        assert await recv(pair.client) == "one"  # not held
        pair.server_side.uncork()
    finally:
        await peers.close()
