"""Fair reading in the transport: a read of tiny frames is parsed no faster than the budget.

One socket read can carry ~256 KiB: ~37,000 one-byte pings. The transport parses it a
:data:`READ_SLICE` at a time, and charges each slice's frames to the connection's budget; once
in debt, the rest of the read must wait for the budget like the socket does, or the budget bounds
nothing (the whole read is parsed, the debt grows to a minute, reading stays paused that long,
and the flooder is never judged: it ended with the heartbeat's 1011 instead of 1008).
"""

from __future__ import annotations

import asyncio
import os

from wslab.foundation.codes import Opcode
from wslab.foundation.frames import Frame, encode_frame
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.fairness import READ_SLICE

PING = encode_frame(Frame(Opcode.PING, b"p"), os.urandom(4))  # 7 bytes on the wire
BURST = 200


async def test_the_rest_of_a_big_read_waits_for_the_budget() -> None:
    limits = ConnectionLimits(max_frames_per_second=BURST, frame_burst=BURST, close_timeout=1.0)
    accepted: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    async def handler(connection: Connection) -> None:
        accepted.set_result(connection)
        async for _ in connection:
            pass

    server = await serve(handler, engine="wslab", limits=limits)
    async with server:
        client = await connect(server.url)
        side = await asyncio.wait_for(accepted, 10)
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
        client.abort()
