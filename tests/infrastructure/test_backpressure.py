"""A client that never reads must cost bounded memory, and must not slow anyone else down.

A raw-socket client completes the handshake and then never reads, while the server sends it
1 KiB..64 KiB messages in a loop. Its kernel buffers fill, then the transport's write buffer,
then the connection's outgoing queue — and at the queue's bound the slow-consumer policy acts:
close with 1013, or drop (and count) the oldest or the newest message. Meanwhile a normal client
of the same server receives every message, in order. Memory is measured as what the server holds
for the slow client (queued bytes plus the transport's write buffer), never with timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest

from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.state import ConnectionState
from wslab.infrastructure.connection import Connection, ConnectionLimits, SlowConsumerPolicy
from wslab.infrastructure.engines import connect, serve
from wslab.infrastructure.events import EventKind, EventLog

SIZES = (1 << 10, 4 << 10, 16 << 10, 64 << 10)
LARGEST_FRAME = SIZES[-1] + 14  # payload plus the longest frame header
MESSAGES = 200  # ~4 MiB in all: far more than the slow client's buffers and queue can hold
WINDOW = 4  # messages in flight to the normal client: its queue never gets near the bound


def _message(index: int) -> bytes:
    """Message ``index``: its number in the first 4 bytes, then padding up to its size."""
    return index.to_bytes(4, "big") + bytes(SIZES[index % len(SIZES)] - 4)


@pytest.mark.parametrize("policy", list(SlowConsumerPolicy))
async def test_a_client_that_never_reads_is_bounded_and_others_keep_receiving(
    engine: str, policy: SlowConsumerPolicy, raw_client: Any
) -> None:
    limits = ConnectionLimits(
        max_queue=64,
        max_queue_bytes=512 << 10,
        write_high=64 << 10,
        write_low=16 << 10,
        slow_consumer_policy=policy,
        close_timeout=10.0,  # the test reads the slow client's socket well before this
    )
    log = EventLog()
    connections: dict[str, Connection] = {}
    both_in = asyncio.Event()

    async def handler(connection: Connection) -> None:
        connections[connection.path] = connection
        if len(connections) == 2:
            both_in.set()
        async for _ in connection:
            pass

    server = await serve(handler, engine=engine, limits=limits, event_log=log)
    async with server:
        slow = await raw_client(server.port, rcvbuf=16 << 10)
        assert (await slow.upgrade("/slow")).status == 101
        normal = await connect(server.url + "/normal", engine=engine)
        await asyncio.wait_for(both_in.wait(), 10)
        slow_side, normal_side = connections["/slow"], connections["/normal"]
        # A small kernel send buffer too, so the backlog reaches the server's own buffers fast
        # (loopback would otherwise absorb megabytes first).
        slow_side.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 32 << 10
        )

        received: list[int] = []
        progress = asyncio.Event()

        async def consume() -> None:
            async for message in normal:
                assert isinstance(message, bytes)
                received.append(int.from_bytes(message[:4], "big"))
                progress.set()

        consumer = asyncio.ensure_future(consume())

        async def wait_until_received(count: int) -> None:
            while len(received) < count:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 10)

        peak_queued = peak_buffered = peak_held = 0
        for index in range(MESSAGES):
            message = _message(index)
            slow_side.send_nowait(message)
            assert normal_side.send_nowait(message)  # the normal client is never refused
            peak_queued = max(peak_queued, slow_side.queued_bytes)
            if not slow_side.closed:
                peak_buffered = max(peak_buffered, slow_side.transport.get_write_buffer_size())
            peak_held = max(peak_held, sum(c.queued_bytes for c in server.connections.values()))
            await wait_until_received(index + 1 - WINDOW)
            await asyncio.sleep(0)

        # The normal client got every message, in order, none dropped or queued for long.
        await wait_until_received(MESSAGES)
        assert received == list(range(MESSAGES))
        assert normal_side.stats.dropped_out == 0
        assert normal_side.stats.queue_peak <= WINDOW

        # What the server held for the slow client stayed within the bounds.
        assert peak_queued <= limits.max_queue_bytes + LARGEST_FRAME
        assert peak_buffered <= limits.write_high + LARGEST_FRAME + 1024
        assert peak_held <= 2 * (limits.max_queue_bytes + LARGEST_FRAME)
        assert slow_side.stats.queue_peak <= limits.max_queue
        assert peak_queued > 0  # the backlog did reach the queue: the bound was exercised

        # Every overflow was counted and logged.
        dropped = slow_side.stats.dropped_out
        assert dropped > 0
        overflows = log.events(EventKind.SLOW_CONSUMER, slow_side.id)
        assert len(overflows) == dropped
        assert {e.get("policy") for e in overflows} == {policy.value}

        if policy is SlowConsumerPolicy.CLOSE:
            assert dropped == 1  # once closing, nothing more is accepted (or counted)
            assert slow_side.state is not ConnectionState.OPEN
            assert slow_side.queued_bytes == 0
            assert not slow_side.send_nowait(b"more")
            closes = [
                e for e in log.events(EventKind.CLOSE, slow_side.id) if e.get("direction") == "out"
            ]
            assert [e.get("code") for e in closes] == [CloseCode.TRY_AGAIN_LATER]
            # When the client finally reads, it finds what was already on its way, in order,
            # then the close frame with 1013.
            frames, close = await asyncio.wait_for(slow.read_until_close(), 10)
            indices = [int.from_bytes(f.payload[:4], "big") for f in frames]
            assert indices == list(range(len(indices)))
            assert close is not None and close[0] == CloseCode.TRY_AGAIN_LATER
            slow.close()
            await asyncio.wait_for(slow_side.wait_closed(), 10)
            assert slow_side.closed_locally
        else:
            # The slow client is still welcome; once it reads it gets every message that was
            # not dropped, in order — for drop_oldest the newest one last.
            assert slow_side.state is ConnectionState.OPEN
            indices: list[int] = []
            while len(indices) < MESSAGES - dropped:
                frame = await asyncio.wait_for(slow.read_frame(), 10)
                assert frame is not None
                indices.append(int.from_bytes(frame.payload[:4], "big"))
            assert indices == sorted(set(indices))
            if policy is SlowConsumerPolicy.DROP_OLDEST:
                assert indices[-1] == MESSAGES - 1
            else:
                assert indices[0] == 0
            slow.close()

        await normal.close()
        await consumer


async def test_a_ping_flood_from_a_client_that_never_reads_is_cut_off(raw_client: Any) -> None:
    """Pongs skip the slow-consumer policy but not the bound: a peer that floods pings and never
    reads is aborted once the pongs queued for it would pass ``max_queue_bytes``."""
    limits = ConnectionLimits(max_queue_bytes=64 << 10, write_high=16 << 10, write_low=4 << 10)
    log = EventLog()
    opened: list[Connection] = []

    async def handler(connection: Connection) -> None:
        opened.append(connection)
        async for _ in connection:
            pass

    server = await serve(handler, engine="wslab", limits=limits, event_log=log)
    async with server:
        flooder = await raw_client(server.port, rcvbuf=4 << 10)
        assert (await flooder.upgrade("/")).status == 101
        while not opened:
            await asyncio.sleep(0.01)
        side = opened[0]
        side.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 10
        )
        peak = 0
        payload = bytes(125)  # the largest ping: 127 bytes per pong
        with contextlib.suppress(ConnectionError):
            for _ in range(20_000):  # ~2.5 MiB of pongs asked for, never read
                await flooder.send_frame(Opcode.PING, payload)
                peak = max(peak, side.queued_bytes)
                if side.closed:
                    break
        await asyncio.wait_for(side.wait_closed(), 10)
        assert peak <= limits.max_queue_bytes
        assert side.stats.dropped_out == 1
        assert [e.get("policy") for e in log.events(EventKind.SLOW_CONSUMER, side.id)] == ["abort"]
