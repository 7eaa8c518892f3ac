"""Fair reading in the transport: a read of tiny frames is parsed no faster than the budget.

One socket read can carry ~256 KiB: ~37,000 one-byte pings. The transport parses it a
:data:`READ_SLICE` at a time, and charges each slice's frames to the connection's budget; once
in debt, the rest of the read must wait for the budget like the socket does, or the budget bounds
nothing (the whole read is parsed, the debt grows to a minute, reading stays paused that long,
and the flooder is never judged: it ended with the heartbeat's 1011 instead of 1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from wslab.foundation.codes import Opcode
from wslab.foundation.frames import Frame, encode_frame
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.fairness import FRAMES_PER_TURN, READ_SLICE

PING = encode_frame(Frame(Opcode.PING, b"p"), os.urandom(4))  # 7 bytes on the wire
BURST = 200


@contextlib.asynccontextmanager
async def served_pair(
    limits: ConnectionLimits | None = None,
) -> AsyncIterator[tuple[Connection, Connection]]:
    """A wslab server reading everything one client sends: (the client, the server's side)."""
    accepted: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    async def handler(connection: Connection) -> None:
        accepted.set_result(connection)
        async for _ in connection:
            pass

    server = await serve(handler, engine="wslab", limits=limits)
    async with server:
        client = await connect(server.url)
        try:
            yield client, await asyncio.wait_for(accepted, 10)
        finally:
            client.abort()


async def test_the_rest_of_a_big_read_waits_for_the_budget() -> None:
    limits = ConnectionLimits(max_frames_per_second=BURST, frame_burst=BURST, close_timeout=1.0)
    async with served_pair(limits) as (client, side):
        flood = PING * (256 * 1024 // len(PING))
        client.transport.write(flood)  # type: ignore[attr-defined]
        while side.protocol.stats.frames_in == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        for _ in range(200):  # turns of the loop, not time: the old code parsed a slice per turn
            await asyncio.sleep(0)
        parsed = side.protocol.stats.frames_in  # type: ignore[attr-defined]
        # The burst, and at most the slice that went into debt (plus one straddling slice).
        assert parsed <= BURST + 2 * (READ_SLICE // len(PING) + 1), parsed
        assert parsed < len(flood) // len(PING)


async def test_a_turn_parses_a_bounded_number_of_frames_not_bytes() -> None:
    """A 256 KiB message in one frame is parsed in the turn its bytes arrive (no pause, no
    yield: per-frame work is what a flood multiplies); the same bytes as tiny frames stop after
    a turn's worth of frames, the rest left for the next turn."""
    async with served_pair() as (_, side):
        stats = side.protocol.stats  # type: ignore[attr-defined]
        big = encode_frame(Frame(Opcode.BINARY, os.urandom(256 * 1024)), os.urandom(4))
        before = stats.frames_in
        side.data_received(big)  # type: ignore[attr-defined]  # as the socket would, same turn
        assert stats.frames_in == before + 1
        assert side._backlog is None  # type: ignore[attr-defined]  # nothing left for later
        before = stats.frames_in
        side.data_received(PING * (len(big) // len(PING)))  # type: ignore[attr-defined]
        parsed = stats.frames_in - before
        assert FRAMES_PER_TURN <= parsed <= FRAMES_PER_TURN + READ_SLICE // len(PING) + 1, parsed
        assert side._backlog is not None  # type: ignore[attr-defined]  # the rest: next turn


async def test_tiny_frames_right_after_a_big_payload_are_still_bounded_per_turn() -> None:
    """The rest of a big frame is fed in one go (payload holds no header); the frames that
    follow it in the same read still stop after a turn's worth."""
    async with served_pair() as (_, side):
        stats = side.protocol.stats  # type: ignore[attr-defined]
        big = encode_frame(Frame(Opcode.BINARY, os.urandom(64 * 1024)), os.urandom(4))
        before = stats.frames_in
        side.data_received(big + PING * 20_000)  # type: ignore[attr-defined]
        parsed = stats.frames_in - before
        assert 1 + FRAMES_PER_TURN <= parsed <= 1 + FRAMES_PER_TURN + READ_SLICE // len(PING) + 1
        assert side._backlog is not None  # type: ignore[attr-defined]
