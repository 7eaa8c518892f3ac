"""The echo server (``serve_echo``) and the ``wslab echo`` command, over real sockets.

The echo server is the target of conformance runs, so it must answer on every path, send each
data message back unchanged and as the same type, accept the 16 MiB messages of the conformance
suite by default, and close with 1009 beyond its ``max_size``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import ConnectionBroken
from wslab.infrastructure.connection import ConnectionLimits
from wslab.infrastructure.echo import DEFAULT_ECHO_MAX_SIZE, serve_echo
from wslab.infrastructure.engines import ENGINES, connect
from wslab.infrastructure.server import Server

GUARD = 30.0  # give up (fail, not hang) after this long; 16 MiB each way takes a moment
MiB = 1 << 20
#: A client that can send and receive the echo server's largest messages.
LARGE = ConnectionLimits(max_message_size=32 * MiB, max_queue_bytes=64 * MiB, close_timeout=2.0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def echo_server() -> AsyncIterator[Server]:
    server = await serve_echo()
    yield server
    await server.close()


@pytest.mark.parametrize("client_engine", ENGINES)
@pytest.mark.parametrize("path", ["/", "/a/b?c=d", "/ws", "/runCase?case=1&agent=x"])
async def test_every_message_comes_back_unchanged_as_the_same_type(
    echo_server: Server, path: str, client_engine: str
) -> None:
    client = await connect(echo_server.url + path, engine=client_engine)
    messages: list[str | bytes] = [
        "hello",
        "",
        "ünïcödé ✓ 🦄",
        b"",
        b"\x00\xff\x81binary",
        bytes(range(256)) * 300,  # over 64 KiB: a 64-bit length
        "text again",
    ]
    for message in messages:
        await client.send(message)
    for message in messages:
        echoed = await asyncio.wait_for(client.recv(), GUARD)
        assert type(echoed) is type(message)
        assert echoed == message
    await client.close()
    assert client.close_code == CloseCode.NORMAL_CLOSURE


async def test_a_message_over_max_size_closes_with_1009() -> None:
    async with await serve_echo(max_size=1024) as server:
        client = await connect(server.url + "/any/path")
        await client.send(b"x" * 1024)  # exactly the limit is fine
        assert await asyncio.wait_for(client.recv(), GUARD) == b"x" * 1024
        await client.send("y" * 1025)
        with pytest.raises(ConnectionBroken) as closed:
            await asyncio.wait_for(client.recv(), GUARD)
        assert closed.value.close_code == CloseCode.MESSAGE_TOO_BIG


async def test_16_mib_is_accepted_by_default_and_one_byte_more_is_not(echo_server: Server) -> None:
    assert 16 * MiB == DEFAULT_ECHO_MAX_SIZE
    client = await connect(echo_server.url, limits=LARGE)
    payload = os.urandom(256) * (16 * MiB // 256)
    await client.send(payload)
    echoed = await asyncio.wait_for(client.recv(), GUARD)
    assert type(echoed) is bytes and len(echoed) == 16 * MiB
    assert echoed == payload
    await client.send(payload + b"!")
    with pytest.raises(ConnectionBroken) as closed:
        await asyncio.wait_for(client.recv(), GUARD)
    assert closed.value.close_code == CloseCode.MESSAGE_TOO_BIG


# -- the command ------------------------------------------------------------------------------------


async def test_the_wslab_echo_command_serves_and_stops_on_sigint() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wslab.cli",
        "echo",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), GUARD)).decode()
        found = re.search(r"(wss?://[^/\s]+)/", banner)
        assert found, f"no URL in the banner {banner!r}"
        url = found.group(1)
        assert not url.endswith(":0")  # the port actually bound, not the one asked for
        client = await connect(url + "/some/path?x=1")
        await client.send("hello from the test")
        assert await asyncio.wait_for(client.recv(), GUARD) == "hello from the test"
        await client.send(b"\x01\x02")
        assert await asyncio.wait_for(client.recv(), GUARD) == b"\x01\x02"
        process.send_signal(signal.SIGINT)
        # Shutting down closes the connected client with 1001 ("going away, reconnect").
        with pytest.raises(ConnectionBroken) as closed:
            await asyncio.wait_for(client.recv(), GUARD)
        assert closed.value.close_code == CloseCode.GOING_AWAY
        assert await asyncio.wait_for(process.wait(), GUARD) == 0
        rest = (await process.stdout.read()).decode()
        assert "shutting down" in rest
        assert process.stderr is not None
        assert b"Traceback" not in await process.stderr.read()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
