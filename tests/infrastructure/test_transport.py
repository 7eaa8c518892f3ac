"""The transports of both engines: echo, HTTP routes, handshake refusals, close codes, shutdown, TLS.

Every test runs on wslab's engine and on the ``websockets`` engine (the ``engine`` fixture), over
real sockets on 127.0.0.1; the echo and TLS tests also cross the engines (each client against
each server). Whatever one engine does here, the other must do too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
import trustme

from wslab.foundation import handshake
from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.errors import (
    ConfigError,
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
    ForbiddenOrigin,
    InvalidHandshakeResponse,
)
from wslab.foundation.frames import Frame, encode_frame
from wslab.foundation.http import Request
from wslab.foundation.protocol import Role
from wslab.foundation.state import ConnectionState
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.echo import echo_handler
from wslab.infrastructure.engines import ENGINES, connect, serve
from wslab.infrastructure.engines import wslab as wslab_engine
from wslab.infrastructure.events import EventKind, EventLog
from wslab.infrastructure.server import HttpResponse

BIG = ConnectionLimits(max_message_size=2 << 20, max_queue_bytes=8 << 20, close_timeout=2.0)


async def _fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` with urllib in a thread: (status, headers, body), also for error statuses."""

    def get() -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(get)


# -- echo -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client_engine", ENGINES)
async def test_echo_round_trips_text_binary_and_1mib(engine: str, client_engine: str) -> None:
    server = await serve(echo_handler, engine=engine, limits=BIG)
    async with server:
        client = await connect(server.url, engine=client_engine, limits=BIG)
        assert client.engine == client_engine
        messages: list[str | bytes] = [
            "hello",
            "naïve café ☕ — 日本語",
            "",
            b"\x00\x01\xfe\xff",
            b"",
            bytes(range(256)) * 4096,  # 1 MiB of binary
            "x" * (1 << 20),  # 1 MiB of text
        ]
        for message in messages:
            await client.send(message)
            echoed = await client.recv()
            assert type(echoed) is type(message)
            assert echoed == message
        assert client.stats.messages_out == len(messages)
        assert client.stats.messages_in == len(messages)
        [server_side] = server.connections.values()
        assert server_side.engine == engine
        assert server_side.info()["engine"] == engine
        assert server_side.info()["state"] == "OPEN"
        await client.close()
        assert client.state is ConnectionState.CLOSED
        assert client.close_code == CloseCode.NORMAL_CLOSURE


async def test_many_messages_keep_their_order(engine: str) -> None:
    server = await serve(echo_handler, engine=engine)
    async with server:
        client = await connect(server.url, engine=engine)
        for i in range(300):  # without waiting: the send queue and flow control keep order
            assert client.send_nowait(f"m{i}")
        assert [await client.recv() for _ in range(300)] == [f"m{i}" for i in range(300)]
        await client.close()


async def test_ping_resolves_to_the_round_trip_time(engine: str) -> None:
    log = EventLog()
    server_rtts: list[float] = []

    async def handler(connection: Connection) -> None:
        server_rtts.append(await connection.ping())
        await echo_handler(connection)

    server = await serve(handler, engine=engine, event_log=log)
    async with server:
        client = await connect(server.url, engine=engine, event_log=log)
        rtt = await asyncio.wait_for(client.ping(), 5)
        assert rtt >= 0
        assert client.stats.pings_sent == 1
        assert client.stats.pongs_received == 1
        assert client.stats.last_rtt == rtt
        await client.send("after the ping")
        assert await client.recv() == "after the ping"
        assert len(server_rtts) == 1 and server_rtts[0] >= 0
        pongs = log.events(EventKind.PONG, client.id)
        assert len(pongs) == 1 and pongs[0].get("rtt") == rtt
        assert len(log.events(EventKind.PING, client.id)) == 1
        [server_side] = server.connections.values()
        assert [e.get("path") for e in log.events(EventKind.CONNECT, server_side.id)] == ["/"]
        await client.close()
        [gone] = log.events(EventKind.DISCONNECT, client.id)
        assert gone.get("by") == "local" and gone.get("code") == CloseCode.NORMAL_CLOSURE
    # A ping on a closed connection fails at once, with the "closed by us" error.
    with pytest.raises(ConnectionClosedLocally):
        await client.ping()


# -- plain HTTP routes ------------------------------------------------------------------------------


async def test_plain_http_routes_are_served(engine: str) -> None:
    seen: list[Request] = []

    async def http_handler(request: Request) -> HttpResponse:
        seen.append(request)
        if request.path == "/healthz":
            body = json.dumps({"status": "ok"}).encode()
            return HttpResponse(200, body, "application/json")
        return HttpResponse(404, b"not found\n")

    server = await serve(echo_handler, engine=engine, http_handler=http_handler)
    async with server:
        base = server.url.replace("ws://", "http://")
        status, headers, body = await _fetch(base + "/healthz?verbose=1")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "ok"}
        status, _, _ = await _fetch(base + "/nowhere")
        assert status == 404
        assert all(isinstance(request, Request) for request in seen)
        assert seen[0].path == "/healthz"
        assert seen[0].query == {"verbose": ["1"]}
        assert seen[0].method == "GET"
        # WebSocket still works next to the routes.
        client = await connect(server.url + "/ws", engine=engine)
        await client.send("still a websocket")
        assert await client.recv() == "still a websocket"
        await client.close()


async def test_a_plain_request_gets_426_by_default(engine: str) -> None:
    server = await serve(echo_handler, engine=engine)
    async with server:
        status, headers, _ = await _fetch(server.url.replace("ws://", "http://") + "/")
        assert status == 426
        assert headers["Upgrade"] == "websocket"


# -- handshake refusals -----------------------------------------------------------------------------


async def test_an_unsupported_version_gets_426_with_version_13(
    engine: str, raw_client: Any
) -> None:
    server = await serve(echo_handler, engine=engine)
    async with server:
        client = await raw_client(server.port)
        response = await client.upgrade("/", version="8")
        assert response.status == 426
        assert response.headers.get("Sec-WebSocket-Version") == "13"


async def test_process_upgrade_can_refuse_with_403_or_admit_with_context(engine: str) -> None:
    seen: list[handshake.Upgrade] = []

    async def check_origin(
        upgrade: handshake.Upgrade, remote: tuple[str, int] | None
    ) -> dict[str, Any]:
        seen.append(upgrade)
        assert remote is not None and remote[0] == "127.0.0.1"
        if upgrade.origin != "http://good.example":
            raise ForbiddenOrigin("origin not allowed")
        return {"user": "ann"}

    async def handler(connection: Connection) -> None:
        await connection.send(f"{connection.context['user']} {connection.path} {connection.query}")
        await echo_handler(connection)

    log = EventLog()
    server = await serve(handler, engine=engine, process_upgrade=check_origin, event_log=log)
    async with server:
        with pytest.raises(InvalidHandshakeResponse) as refused:
            await connect(server.url, engine=engine, origin="http://evil.example")
        assert refused.value.status == 403
        assert [e.get("status") for e in log.events(EventKind.ERROR)] == [403]
        client = await connect(
            server.url + "/chat?room=lobby", engine=engine, origin="http://good.example"
        )
        assert await client.recv() == "ann /chat {'room': ['lobby']}"
        await client.close()
        assert [u.origin for u in seen] == ["http://evil.example", "http://good.example"]


async def test_admission_refusal_is_429(engine: str) -> None:
    log = EventLog()
    asked: list[str] = []

    def admission(address: str) -> bool:
        asked.append(address)
        return False

    server = await serve(echo_handler, engine=engine, admission=admission, event_log=log)
    async with server:
        with pytest.raises(InvalidHandshakeResponse) as refused:
            await connect(server.url, engine=engine)
        assert refused.value.status == 429
        assert asked == ["127.0.0.1"]
        assert len(log.events(EventKind.RATE_LIMIT)) == 1
        assert not server.connections


async def test_a_half_sent_request_is_dropped_after_the_handshake_timeout(
    engine: str, raw_client: Any
) -> None:
    limits = ConnectionLimits(handshake_timeout=0.3)
    server = await serve(echo_handler, engine=engine, limits=limits)
    async with server:
        client = await raw_client(server.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        # Detection within a bound derived from the configuration, with a generous margin.
        received = await asyncio.wait_for(client.wait_eof(), limits.handshake_timeout + 10)
        assert received == b""
        assert not server.connections


# -- close codes ------------------------------------------------------------------------------------


async def test_an_oversize_message_closes_with_1009(engine: str) -> None:
    limits = ConnectionLimits(max_message_size=1024)
    server = await serve(echo_handler, engine=engine, limits=limits)
    async with server:
        client = await connect(server.url, engine=engine)
        await client.send(b"x" * 1024)  # at the limit: fine
        assert await client.recv() == b"x" * 1024
        await client.send(b"x" * 4096)
        with pytest.raises(ConnectionBroken) as closed:
            await client.recv()
        assert closed.value.close_code == CloseCode.MESSAGE_TOO_BIG
        assert client.close_code == CloseCode.MESSAGE_TOO_BIG
        assert not client.closed_locally


async def test_invalid_utf8_closes_with_1007(engine: str, raw_client: Any) -> None:
    log = EventLog()
    server = await serve(echo_handler, engine=engine, event_log=log)
    async with server:
        client = await raw_client(server.port)
        assert (await client.upgrade("/")).status == 101
        await client.send_frame(Opcode.TEXT, b"fine")
        await client.send_frame(Opcode.TEXT, b"caf\xc3(")  # a broken two-byte sequence
        frames, close = await asyncio.wait_for(client.read_until_close(), 10)
        assert [f.payload for f in frames] == [b"fine"]  # what came before is still answered
        assert close is not None and close[0] == CloseCode.INVALID_PAYLOAD
        closes = [e for e in log.events(EventKind.CLOSE) if e.get("direction") == "out"]
        assert [e.get("code") for e in closes] == [CloseCode.INVALID_PAYLOAD]


async def test_a_failing_handler_closes_1011_and_the_server_keeps_serving(engine: str) -> None:
    log = EventLog()

    async def handler(connection: Connection) -> None:
        async for message in connection:
            if message == "boom":
                raise RuntimeError("the handler broke")
            await connection.send(message)

    server = await serve(handler, engine=engine, event_log=log)
    async with server:
        first = await connect(server.url, engine=engine)
        await first.send("boom")
        with pytest.raises(ConnectionBroken) as closed:
            await first.recv()
        assert closed.value.close_code == CloseCode.INTERNAL_ERROR
        errors = [e for e in log.events(EventKind.ERROR) if e.get("error") == "RuntimeError"]
        assert len(errors) == 1
        second = await connect(server.url, engine=engine)
        await second.send("still here?")
        assert await second.recv() == "still here?"
        await second.close()


async def test_closed_locally_versus_broken(engine: str) -> None:
    outcomes: dict[str, ConnectionClosed] = {}

    async def handler(connection: Connection) -> None:
        try:
            while True:
                message = await connection.recv()
                if message == "close me":
                    await connection.close(CloseCode.AUTHENTICATION_FAILED, "bye")
                    await connection.recv()
        except ConnectionClosed as error:
            outcomes[connection.path] = error

    server = await serve(handler, engine=engine)
    async with server:
        # 1. This end closes: using it afterwards is "closed locally"; the peer sees it broken.
        client = await connect(server.url + "/client-closes", engine=engine)
        await client.close()
        assert client.closed_locally
        with pytest.raises(ConnectionClosedLocally):
            await client.recv()
        with pytest.raises(ConnectionClosedLocally):
            await client.send("too late")
        assert not client.send_nowait("too late")
        # 2. The peer closes with a code and a reason: "broken", with both.
        client = await connect(server.url + "/server-closes", engine=engine)
        await client.send("close me")
        with pytest.raises(ConnectionBroken) as broken:
            await client.recv()
        assert broken.value.close_code == CloseCode.AUTHENTICATION_FAILED
        assert broken.value.reason == "bye"
        assert not client.closed_locally
        assert client.close_reason == "bye"
        # 3. This end aborts: no close frame at all; the peer sees 1006.
        client = await connect(server.url + "/client-aborts", engine=engine)
        await client.send("hello")  # the handler is running
        client.abort()
        await client.wait_closed()
        with pytest.raises(ConnectionClosedLocally):
            await client.recv()
        assert client.close_code == CloseCode.ABNORMAL_CLOSURE
        for _ in range(100):
            if len(outcomes) == 3:
                break
            await asyncio.sleep(0.05)
    assert isinstance(outcomes["/client-closes"], ConnectionBroken)
    assert outcomes["/client-closes"].close_code == CloseCode.NORMAL_CLOSURE
    assert isinstance(outcomes["/server-closes"], ConnectionClosedLocally)
    assert isinstance(outcomes["/client-aborts"], ConnectionBroken)
    assert outcomes["/client-aborts"].received_code == CloseCode.ABNORMAL_CLOSURE


# -- shutdown ---------------------------------------------------------------------------------------


async def test_graceful_shutdown_closes_every_client_with_1001(engine: str) -> None:
    finished: list[str] = []

    async def handler(connection: Connection) -> None:
        try:
            await echo_handler(connection)
        finally:
            finished.append(connection.id)

    server = await serve(handler, engine=engine)
    clients = [await connect(server.url, engine=engine) for _ in range(5)]
    for i, client in enumerate(clients):
        await client.send(f"hello {i}")
        assert await client.recv() == f"hello {i}"
    assert len(server.connections) == 5
    waiting = [asyncio.ensure_future(client.recv()) for client in clients]
    await server.close()
    assert len(finished) == 5  # every handler ran to its end
    assert not server.connections
    for client, receiving in zip(clients, waiting, strict=True):
        with pytest.raises(ConnectionBroken) as closed:
            await receiving
        assert closed.value.close_code == CloseCode.GOING_AWAY
        await client.wait_closed()
        assert client.close_code == CloseCode.GOING_AWAY
    assert asyncio.all_tasks() == {asyncio.current_task()}
    # Closing twice is harmless.
    await server.close()


async def test_serve_and_connect_refuse_an_unknown_engine() -> None:
    with pytest.raises(ConfigError):
        await serve(echo_handler, engine="tornado")
    with pytest.raises(ConfigError):
        await connect("ws://127.0.0.1:1/", engine="tornado")


# -- TLS --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context trusting its CA."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


@pytest.mark.parametrize("client_engine", ENGINES)
async def test_wss_echo(
    engine: str, client_engine: str, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls_contexts
    server = await serve(echo_handler, engine=engine, ssl=server_context, limits=BIG)
    async with server:
        assert server.url.startswith("wss://127.0.0.1:")
        client = await connect(server.url, engine=client_engine, ssl=client_context, limits=BIG)
        for message in ("secret", b"\x00" * 100_000):
            await client.send(message)
            assert await client.recv() == message
        await client.close()
        assert client.close_code == CloseCode.NORMAL_CLOSURE
    # Without trusting the CA the handshake fails.
    server = await serve(echo_handler, engine=engine, ssl=server_context)
    async with server:
        with pytest.raises((ssl.SSLError, OSError)):
            await connect(server.url, engine=client_engine, ssl=ssl.create_default_context())


async def test_frames_right_behind_the_101_wait_for_the_connection() -> None:
    """A server may send its first frame right after the 101, and it may arrive before
    ``connect()`` has built the connection: the client wire holds it until then."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    limits = ConnectionLimits()
    wire = wslab_engine.client._ClientWire(limits)
    tcp, _ = await loop.create_connection(lambda: wire, sock=ours)
    try:
        key = handshake.generate_key()
        accept = handshake.accept_key(key)
        await loop.sock_sendall(
            theirs,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode(),
        )
        _, leftover = await asyncio.wait_for(wire.response, 5)
        await loop.sock_sendall(theirs, encode_frame(Frame(Opcode.TEXT, b"hello")))
        await asyncio.sleep(0.1)  # the frame has arrived; nobody has taken the socket over yet
        assert not tcp.is_closing()
        connection = wslab_engine.WslabConnection(tcp, Role.CLIENT, limits)
        connection.protocol.open()
        wire.attach(connection, leftover)
        assert await asyncio.wait_for(connection.recv(), 5) == "hello"
    finally:
        tcp.abort()
        theirs.close()
