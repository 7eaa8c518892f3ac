"""permessage-deflate over real sockets, across engines: websockets <-> wslab's own transport."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.extensions.permessage_deflate import PerMessageDeflate

from tests.infrastructure.conftest import RawClient
from wslab.foundation.codes import Opcode
from wslab.infrastructure import engines
from wslab.infrastructure.connection import ConnectionLimits
from wslab.infrastructure.echo import echo_handler
from wslab.infrastructure.engines import wslab as wslab_engine
from wslab.infrastructure.events import EventKind, EventLog

TEXT = "compress me, " * 500


async def test_websockets_client_negotiates_with_the_wslab_server() -> None:
    async with await wslab_engine.serve(echo_handler) as server, ws_connect(server.url) as ws:
        (extension,) = ws.protocol.extensions
        assert isinstance(extension, PerMessageDeflate)
        for message in (TEXT, TEXT + "!", b"\x00" * 5000, "short"):
            await ws.send(message)
            assert await ws.recv() == message


async def test_wslab_client_negotiates_with_a_websockets_server() -> None:
    seen: list[bool] = []

    async def echo(ws: ServerConnection) -> None:
        seen.append(any(isinstance(e, PerMessageDeflate) for e in ws.protocol.extensions))
        async for message in ws:
            await ws.send(message)

    async with ws_serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        connection = await wslab_engine.connect(f"ws://127.0.0.1:{port}/")
        try:
            assert connection.protocol.deflate is not None
            for message in (TEXT, TEXT + "?", b"\x01" * 5000):
                await connection.send(message)
                assert await connection.recv() == message
            # The wire really carried less than the text: the client compressed it.
            assert connection.protocol.stats.bytes_out < len(TEXT)
        finally:
            await connection.close()
    assert seen == [True]


@pytest.mark.parametrize("compression", [True, False])
async def test_wslab_to_wslab_with_and_without_compression(compression: bool) -> None:
    limits = ConnectionLimits() if compression else ConnectionLimits(compression=None)
    async with await wslab_engine.serve(echo_handler, limits=limits) as server:
        connection = await wslab_engine.connect(server.url)
        try:
            assert (connection.protocol.deflate is not None) is compression
            await connection.send(TEXT)
            assert await connection.recv() == TEXT
        finally:
            await connection.close()


async def test_a_bomb_from_a_real_client_is_closed_with_1009() -> None:
    limits = ConnectionLimits(max_message_size=1 << 16)
    async with await wslab_engine.serve(echo_handler, limits=limits) as server:
        connection = await wslab_engine.connect(server.url)
        try:
            await connection.send("\x00" * (1 << 20))  # ~1 KiB compressed, 1 MiB inflated
            with pytest.raises(Exception):  # noqa: B017 - the connection is closed on us
                await connection.recv()
            assert connection.close_code == 1009
        finally:
            await connection.close()


async def test_the_event_log_shows_wire_and_inflated_sizes() -> None:
    log = EventLog(level="frames")
    async with await wslab_engine.serve(echo_handler, event_log=log) as server:
        connection = await wslab_engine.connect(server.url)
        try:
            await connection.send(TEXT)
            assert await connection.recv() == TEXT
            await connection.send("short")  # under the threshold: sent as it is
            assert await connection.recv() == "short"
        finally:
            await connection.close()
    frames = [e for e in log.events([EventKind.FRAME_IN, EventKind.FRAME_OUT])]
    data = [e for e in frames if e.fields["opcode"] == "TEXT"]
    assert [e.kind for e in data] == [EventKind.FRAME_IN, EventKind.FRAME_OUT] * 2
    for event in data[:2]:  # the long text, both ways: RSV1, small on the wire, full inflated
        assert event.fields["rsv"] == 4
        assert event.fields["inflated"] == len(TEXT)
        assert 0 < event.fields["length"] < len(TEXT) // 10
    for event in data[2:]:
        assert event.fields["rsv"] == 0 and event.fields["inflated"] is None
        assert event.fields["length"] == len("short")


# -- decompression bombs -----------------------------------------------------------------------

LIMIT = 1 << 16  # the server's max_message_size in the bomb tests


def _deflate(data: bytes, final: bool = False) -> bytes:
    """Raw deflate of ``data`` as a sender puts it in a frame (tail removed unless ``final``)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = z.compress(data) + (z.flush() if final else z.flush(zlib.Z_SYNC_FLUSH))
    return out if final else out[:-4]


def _fragmented_bomb() -> list[tuple[Opcode, bytes, bool]]:
    """Fifty fragments of one message, each under the limit, together far over it."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    pieces = [z.compress(b"a" * 60_000) + z.flush(zlib.Z_SYNC_FLUSH) for _ in range(50)]
    pieces[-1] = pieces[-1][:-4]
    return [
        (Opcode.TEXT if i == 0 else Opcode.CONT, piece, i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]


#: shape -> (bytes the message inflates to, its frames)
BOMBS: dict[str, tuple[int, list[tuple[Opcode, bytes, bool]]]] = {
    # 50 MB of zeros in one ~50 KB frame: the classic.
    "one frame, 1000x": (50_000_000, [(Opcode.BINARY, _deflate(b"\x00" * 50_000_000), True)]),
    # A complete deflate stream (BFINAL) of 4 MB: legal framing, still past the limit.
    "final block": (4_000_000, [(Opcode.BINARY, _deflate(b"\x00" * 4_000_000, True), True)]),
    # Every fragment inflates to less than the limit (60 KB); the limit counts the message.
    "fragments": (3_000_000, _fragmented_bomb()),
    # Valid UTF-8 text, so only the size can stop it.
    "text": (10_000_000, [(Opcode.TEXT, _deflate(b"chat " * 2_000_000), True)]),
}


@pytest.mark.parametrize("shape", list(BOMBS))
async def test_bombs_close_with_1009_at_bounded_memory(
    shape: str, engine: str, raw_client: Callable[..., Awaitable[RawClient]]
) -> None:
    limits = ConnectionLimits(max_message_size=LIMIT)
    server = await engines.serve(echo_handler, engine=engine, limits=limits)
    try:
        bystander = await engines.connect(server.url, engine=engine)
        client = await raw_client(server.port)
        response = await client.upgrade(extensions="permessage-deflate")
        assert response.headers.get("Sec-WebSocket-Extensions", "").startswith(
            "permessage-deflate"
        )
        inflated, frames = BOMBS[shape]
        sent = sum(len(payload) for _, payload, _ in frames)
        gc.collect()
        tracemalloc.start()
        try:
            for opcode, payload, fin in frames:
                await client.send_frame(opcode, payload, fin=fin, rsv1=opcode is not Opcode.CONT)
            _, close = await asyncio.wait_for(client.read_until_close(), 10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert close is not None and close[0] == 1009, close
        # Everything Python allocated meanwhile (server and client: reads, frames, the inflated
        # output) stayed within a few limits plus the bomb's own bytes, far below its size.
        assert peak < 16 * LIMIT + 3 * sent < inflated, (peak, sent, inflated)
        # Everyone else is still served.
        await bystander.send(TEXT)
        assert await asyncio.wait_for(bystander.recv(), 5) == TEXT
        await bystander.close()
    finally:
        await server.close()
