"""permessage-deflate over real sockets, across engines: websockets <-> wslab's own transport."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.extensions.permessage_deflate import PerMessageDeflate

from wslab.infrastructure import transport
from wslab.infrastructure.connection import ConnectionLimits
from wslab.infrastructure.echo import echo_handler

TEXT = "compress me, " * 500


async def test_websockets_client_negotiates_with_the_wslab_server() -> None:
    async with await transport.serve(echo_handler) as server, ws_connect(server.url) as ws:
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
        connection = await transport.connect(f"ws://127.0.0.1:{port}/")
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
    async with await transport.serve(echo_handler, limits=limits) as server:
        connection = await transport.connect(server.url)
        try:
            assert (connection.protocol.deflate is not None) is compression
            await connection.send(TEXT)
            assert await connection.recv() == TEXT
        finally:
            await connection.close()


async def test_a_bomb_from_a_real_client_is_closed_with_1009() -> None:
    limits = ConnectionLimits(max_message_size=1 << 16)
    async with await transport.serve(echo_handler, limits=limits) as server:
        connection = await transport.connect(server.url)
        try:
            await connection.send("\x00" * (1 << 20))  # ~1 KiB compressed, 1 MiB inflated
            with pytest.raises(Exception):  # noqa: B017 - the connection is closed on us
                await connection.recv()
            assert connection.close_code == 1009
        finally:
            await connection.close()
