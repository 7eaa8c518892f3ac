"""TcpProxy's network faults and tap, against a real hub and real ChatClients.

Latency must move the measured round trip by what was added; a bandwidth cap must make a large
reply take at least as long as the cap allows; a partition must hold messages back without
closing anything and deliver them on heal; a stall must hold back one direction only; a reset
must look like a dead network (1006) to the client; the tap must show the bearer token of a
``ws://`` upgrade and the frames that followed, decoded, and nothing readable of ``wss://``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from wslab.client import ChatClient, Disconnected
from wslab.client.events import ChatMessage
from wslab.foundation.errors import ConfigError
from wslab.hub import Hub
from wslab.infrastructure.engines.wslab import connect, serve
from wslab.lab.faults import TcpProxy

pytestmark = pytest.mark.timeout(60)

#: A wait after which something that should not happen is taken not to happen.
QUIET = 0.3


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    hub = await Hub.start(
        port=0,
        auth_required=True,
        database=f"sqlite:///{tmp_path}/h.db",
        rate_burst=1000,
        rate_messages_per_second=1000,
    )
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
async def proxy(hub: Hub) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy.for_url(hub.ws_url).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def client(url: str, hub: Hub, user: str) -> ChatClient:
    return await ChatClient(url, token=hub.token(user), reconnect=False).connect()


async def next_chat(c: ChatClient, timeout: float = 10.0) -> ChatMessage:
    return await c.next_event(ChatMessage, timeout=timeout)


async def test_added_latency_moves_the_round_trip_median_by_as_much(
    hub: Hub, proxy: TcpProxy
) -> None:
    alice = await client(proxy.url_for(hub.ws_url), hub, "alice")
    try:
        before = [await alice.ping() for _ in range(15)]
        proxy.set_latency(0.050, direction="client->server")
        after = [await alice.ping() for _ in range(15)]
        proxy.set_latency(0.025, direction="both")  # split across both ways: the same total
        split = [await alice.ping() for _ in range(15)]
    finally:
        await alice.close()
    added = statistics.median(after) - statistics.median(before)
    assert 0.040 <= added <= 0.060, f"p50 moved by {added * 1000:.1f} ms, not 50 ms"
    added_split = statistics.median(split) - statistics.median(before)
    assert 0.040 <= added_split <= 0.060, f"p50 moved by {added_split * 1000:.1f} ms"


async def test_jitter_never_reorders_the_stream(hub: Hub, proxy: TcpProxy) -> None:
    alice = await client(hub.ws_url, hub, "alice")
    bob = await client(proxy.url_for(hub.ws_url), hub, "bob")
    try:
        proxy.set_latency(0.0, jitter=0.02, direction="down")
        for i in range(20):
            await alice.send_message(f"m{i}")
        got = [(await next_chat(bob)).content for _ in range(20)]
        assert got == [f"m{i}" for i in range(20)]
    finally:
        await alice.close()
        await bob.close()


async def test_a_bandwidth_cap_slows_a_large_reply_to_the_cap(hub: Hub, proxy: TcpProxy) -> None:
    alice = await client(hub.ws_url, hub, "alice")
    bob = await client(proxy.url_for(hub.ws_url), hub, "bob")
    try:
        for i in range(20):
            # Random text: permessage-deflate cannot shrink it much, so the reply stays large.
            await alice.send_message(f"{i:04d}" + secrets.token_urlsafe(1497))
        rate = 20_000
        proxy.set_bandwidth(rate, direction="down", burst=4096)
        before = proxy.bytes_down
        started = time.monotonic()
        page = await bob.history("lobby", limit=20)
        elapsed = time.monotonic() - started
        assert len(page.messages) == 20
        relayed = proxy.bytes_down - before
        # A token bucket cannot go faster than its rate: a lower bound, not a timing guess.
        assert relayed > 30_000
        assert elapsed >= (relayed - 4096) / rate * 0.95
        proxy.set_bandwidth(None)
        started = time.monotonic()
        await bob.history("lobby", limit=20)
        assert time.monotonic() - started < elapsed  # the cap is gone
    finally:
        await alice.close()
        await bob.close()


async def test_partition_holds_everything_back_and_heal_delivers_it(
    hub: Hub, proxy: TcpProxy
) -> None:
    alice = await client(hub.ws_url, hub, "alice")
    bob = await client(proxy.url_for(hub.ws_url), hub, "bob")
    try:
        proxy.partition()
        assert proxy.blackholed
        await alice.send_message("while partitioned")
        bob_send = asyncio.ensure_future(bob.send_message("from the other side"))
        await asyncio.sleep(QUIET)
        assert not [e for e in bob.pending_events() if isinstance(e, ChatMessage)]
        assert not bob_send.done()
        assert bob.connected and proxy.connections == 1  # nothing closed
        proxy.heal()
        ack = await asyncio.wait_for(bob_send, 10)
        assert ack.seq is not None
        contents = {(await next_chat(bob)).content for _ in range(2)}
        assert contents == {"while partitioned", "from the other side"}
    finally:
        await alice.close()
        await bob.close()


async def test_a_stall_holds_back_one_direction_only(hub: Hub, proxy: TcpProxy) -> None:
    alice = await client(hub.ws_url, hub, "alice")
    bob = await client(proxy.url_for(hub.ws_url), hub, "bob")
    try:
        proxy.stall("server->client")
        sent = asyncio.ensure_future(bob.send_message("one way"))
        # Up still flows: the hub stores it and alice gets it, but bob's ack is held back.
        assert (await next_chat(alice)).content == "one way"
        await asyncio.sleep(QUIET)
        assert not sent.done()
        proxy.unstall("down")
        await asyncio.wait_for(sent, 10)
    finally:
        await alice.close()
        await bob.close()


async def test_reset_looks_like_a_dead_network_to_the_client(hub: Hub, proxy: TcpProxy) -> None:
    bob = await client(proxy.url_for(hub.ws_url), hub, "bob")
    try:
        proxy.reset()
        gone = await bob.next_event(Disconnected, timeout=10)
        assert gone.code == 1006
    finally:
        await bob.close()


async def test_the_tap_shows_the_bearer_token_and_the_frames_of_ws(
    hub: Hub, proxy: TcpProxy
) -> None:
    tap = proxy.tap()
    token = hub.token("bob")
    bob = await ChatClient(proxy.url_for(hub.ws_url), token=token, reconnect=False).connect()
    try:
        await bob.send_message("read me")
    finally:
        await bob.close()
    request = tap.upgrade_request()
    assert request is not None and f"Bearer {token}".encode() in request
    assert tap.upgrade_response() is not None and b" 101 " in tap.upgrade_response()
    frames = tap.frames()
    up = frames[frames["direction"] == "up"]
    assert up["masked"].all()  # clients mask every frame (RFC 6455 5.1)
    # The chat message went compressed (permessage-deflate); the tap shows it inflated.
    assert up["text"].str.contains('"read me"', regex=False).any()
    down = frames[frames["direction"] == "down"]
    assert not down["masked"].any()
    assert down["text"].str.contains('"ack"', regex=False).any()
    assert "CLOSE" in set(frames["opcode"])
    tap.close()
    assert proxy._taps == []


async def test_the_tap_is_bounded(hub: Hub, proxy: TcpProxy) -> None:
    tap = proxy.tap(max_bytes=100)
    bob = await client(proxy.url_for(hub.ws_url), hub, "bob")
    await bob.close()
    assert len(tap.raw(direction="up")) == 100
    assert tap.dropped_bytes > 0


def test_fault_controls_refuse_bad_input() -> None:
    proxy = TcpProxy("127.0.0.1", 1)
    with pytest.raises(ConfigError):
        proxy.set_latency(-1)
    with pytest.raises(ConfigError):
        proxy.set_bandwidth(0)
    with pytest.raises(ConfigError):
        proxy.stall("sideways")
    with pytest.raises(ConfigError):
        TcpProxy("127.0.0.1", 1, max_buffer=0)


async def test_the_tap_sees_only_ciphertext_on_wss() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def echo(connection: Any) -> None:
        async for message in connection:
            await connection.send(message)

    server = await serve(echo, port=0, ssl=server_context)
    try:
        async with TcpProxy("127.0.0.1", server.port) as proxy:
            tap = proxy.tap()
            url = proxy.url_for(server.url)
            secret = "Bearer not-for-your-eyes"
            conn = await connect(url, ssl=client_context, headers=[("Authorization", secret)])
            await conn.send("read me")
            assert await conn.recv() == "read me"
            await conn.close()
            raw = tap.raw(direction="up")
            assert raw and secret.encode() not in raw and b"read me" not in raw
            assert tap.upgrade_request() is None
            frames = tap.frames()
            assert frames["error"].str.contains("not HTTP").all()
    finally:
        await server.close()


async def test_a_throttled_flood_stays_within_the_buffer_bound() -> None:
    """A server that writes 8 MiB as fast as it can, through a 100 KB/s cap: TCP pushes back."""
    written = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(128):
                writer.write(b"x" * 65536)
                await writer.drain()
            written.set()
        writer.close()

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limit = 64 * 1024
    try:
        async with TcpProxy("127.0.0.1", port, max_buffer=limit) as proxy:
            proxy.set_bandwidth(100_000, direction="down")
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            peak = 0
            for _ in range(20):
                await reader.read(65536)
                peak = max(peak, proxy.buffered)
                await asyncio.sleep(0.02)
            # At most the bound plus the one read that crossed it (asyncio reads <= 256 KiB).
            assert 0 < peak <= limit + 256 * 1024
            assert not written.is_set()  # the server was stopped by flow control, not buffered
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_the_proxy_keeps_its_old_names() -> None:
    # A direction's shaping moved out of proxy.py; its old import path works.
    from wslab.lab.faults import proxy, shaping

    assert proxy.LinkShape is shaping.LinkShape
    assert proxy.DIRECTIONS is shaping.DIRECTIONS
    assert proxy.DIRECTIONS["both"] == ("up", "down")
