"""Fixtures for end-to-end chat tests: real hubs, real sockets, a raw protocol-level client.

``RawClient`` speaks the chat protocol (``docs/protocol.md``) directly over
:func:`wslab.infrastructure.engines.wslab.connect`, with no reconnect or recovery logic of its own, so
a test sees exactly what the hub sends. A reader task collects every message; ``expect`` takes
the first unread one that matches, ``request`` sends with a fresh ``ref`` and returns the reply
with that ``ref``. Every wait has a generous timeout and fails the test, never hangs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from wslab.foundation.errors import ConnectionClosed
from wslab.hub import Hub
from wslab.infrastructure.engines.wslab import WslabConnection, connect
from wslab.lab.faults import TcpProxy
from wslab.testing import http_request

#: Upper bound for anything to arrive. Generous: only a broken hub ever reaches it.
WAIT = 5.0
SECRET = "chat-e2e-test-secret-0123456789abcdef"

_refs = itertools.count(1)


class RawClient:
    """One WebSocket connection to a hub, speaking JSON messages."""

    def __init__(self, connection: WslabConnection, name: str = "") -> None:
        self.connection = connection
        self.name = name
        #: Every message received, in order (a test's traffic is small).
        self.received: list[dict[str, Any]] = []
        #: The same messages as the text frames that carried them.
        self.raw: list[str] = []
        self._unread: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self.hello: dict[str, Any] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await self.connection.recv()
                if isinstance(raw, bytes):  # never expected: the protocol is JSON text
                    message: dict[str, Any] = {"type": "<binary>", "size": len(raw)}
                else:
                    message = json.loads(raw)
                    self.raw.append(raw)
                self.received.append(message)
                self._unread.append(message)
                self._arrived.set()
        self._arrived.set()  # wake waiters: nothing more will come

    # -- identity ----------------------------------------------------------------------------------

    @property
    def connection_id(self) -> str:
        """The hub's id for this connection (from ``system:connected``)."""
        return str(self.hello["connection_id"])

    @property
    def user_id(self) -> str:
        return str(self.hello["user_id"])

    # -- sending and receiving ---------------------------------------------------------------------

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send a JSON object (or raw text as given)."""
        text = message if isinstance(message, str) else json.dumps(message)
        await self.connection.send(text)

    async def request(self, message: dict[str, Any], timeout: float = WAIT) -> dict[str, Any]:
        """Send ``message`` with a fresh ``ref``; the reply (ack, data or error) with that ref."""
        ref = f"r{next(_refs)}"
        await self.send({**message, "ref": ref})
        return await self.expect(ref=ref, timeout=timeout)

    async def expect(
        self, type: str | None = None, *, timeout: float = WAIT, **fields: Any
    ) -> dict[str, Any]:
        """The first unread message of ``type`` whose ``fields`` equal the given values."""

        def matches(message: dict[str, Any]) -> bool:
            if type is not None and message.get("type") != type:
                return False
            return all(message.get(k, _MISSING) == v for k, v in fields.items())

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, message in enumerate(self._unread):
                if matches(message):
                    del self._unread[index]
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0 or (self._reader.done() and not self._unread_match(matches)):
                what = f"{type or 'any message'} {fields or ''}".strip()
                state = "closed" if self._reader.done() else "open"
                pytest.fail(
                    f"{self.name or 'client'} ({state}) got no {what} within {timeout:g}s; "
                    f"unread: {self._unread[-5:]}"
                )
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def _unread_match(self, matches: Callable[[dict[str, Any]], bool]) -> bool:
        return any(matches(m) for m in self._unread)

    async def expect_none(self, type: str, wait: float = 0.3, **fields: Any) -> None:
        """Assert that no such message arrives within ``wait`` seconds (absence check)."""
        await asyncio.sleep(wait)
        found = [
            m
            for m in self._unread
            if m.get("type") == type and all(m.get(k, _MISSING) == v for k, v in fields.items())
        ]
        assert not found, f"{self.name}: unexpected {found}"

    def of_type(self, type: str) -> list[dict[str, Any]]:
        """Every message of ``type`` received so far (read or not)."""
        return [m for m in self.received if m.get("type") == type]

    def drain(self) -> list[dict[str, Any]]:
        """Mark everything received so far as read; returns it."""
        unread, self._unread = self._unread, []
        return unread

    # -- closing -----------------------------------------------------------------------------------

    async def closed_with(self, timeout: float = WAIT) -> int | None:
        """Wait for the hub to close the connection; the close code it sent."""
        try:
            await asyncio.wait_for(self.connection.wait_closed(), timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"{self.name or 'client'}: the hub did not close within {timeout:g}s")
        return self.connection.close_code

    @property
    def closed(self) -> bool:
        return self.connection.closed

    async def close(self) -> None:
        if not self.connection.closed:
            await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


_MISSING = object()


async def open_client(
    url: str,
    token: str | None = None,
    *,
    via: str = "header",
    origin: str | None = None,
    name: str = "",
    greet: bool = True,
) -> RawClient:
    """Connect to ``url`` (the hub's ``ws_url``) and authenticate ``via`` header, query or message.

    With ``greet`` (default) wait for ``system:connected`` and keep it in ``client.hello``.
    """
    headers: list[tuple[str, str]] = []
    if token is not None and via == "header":
        headers.append(("Authorization", f"Bearer {token}"))
    elif token is not None and via == "query":
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"token": token})
    connection = await connect(url, headers=headers, origin=origin, open_timeout=WAIT)
    client = RawClient(connection, name)
    if token is not None and via == "message":
        await client.send({"type": "auth", "token": token})
    if greet:
        client.hello = await client.expect("system:connected")
    return client


async def healthz(url: str) -> dict[str, Any]:
    """The hub's ``/healthz`` document (HTTP 200 when ok, 503 when degraded)."""
    status, _, body = await http_request(url, "/healthz", timeout=WAIT)
    health = dict(json.loads(body))
    assert status == (200 if health["status"] == "ok" else 503), (status, health)
    return health


# -- fixtures ---------------------------------------------------------------------------------------

StartHub = Callable[..., Awaitable[Hub]]
Connect = Callable[..., Awaitable[RawClient]]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own (hubs of one test share it)."""
    return f"sqlite:///{tmp_path / 'chat.db'}"


#: Mark a test to run on both WebSocket engines (the hub's own and the websockets library).
both_engines = pytest.mark.parametrize("engine", ["wslab", "websockets"], indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The engine test hubs run on: wslab's own, unless a test is marked ``both_engines``."""
    return str(getattr(request, "param", "wslab"))


@pytest.fixture
async def start_hub(db_url: str, unique_name: str, engine: str) -> AsyncIterator[StartHub]:
    """Start hubs on free ports sharing this test's SQLite file and in-process bus.

    Keyword arguments override settings (``hub_id``, ``history_retention``...). Every hub started
    is stopped at the end of the test.
    """
    hubs: list[Hub] = []
    count = itertools.count(1)

    async def start(**overrides: Any) -> Hub:
        settings: dict[str, Any] = {
            "port": 0,
            "database": db_url,
            "broker": f"memory://{unique_name}",
            "hub_id": f"{unique_name}-{next(count)}",
            "jwt_secret": SECRET,
            "engine": engine,
        }
        settings.update(overrides)
        hub = await Hub.start(**settings)
        hubs.append(hub)
        return hub

    yield start
    for hub in reversed(hubs):
        await hub.stop()


@pytest.fixture
async def hub(start_hub: StartHub) -> Hub:
    """One running hub with authentication, on SQLite and the in-process broker."""
    return await start_hub()


@pytest.fixture
async def client_for() -> AsyncIterator[Connect]:
    """``await client_for(hub, "alice", roles=..., via=...)``: an authenticated RawClient.

    Every client is closed at the end of the test.
    """
    clients: list[RawClient] = []

    async def make(
        hub: Hub,
        user: str,
        *,
        roles: tuple[str, ...] = (),
        via: str = "header",
        ttl: float = 3600,
        greet: bool = True,
    ) -> RawClient:
        token = hub.token(user, username=user.title(), roles=roles, ttl=ttl)
        client = await open_client(hub.ws_url, token, via=via, name=user, greet=greet)
        clients.append(client)
        return client

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


def postgres_url(dsn: str, schema: str) -> str:
    """``dsn`` with its tables in ``schema`` (``?search_path=``).

    asyncpg passes unknown DSN parameters on as server settings, so a hub configured with only
    a URL keeps to the test's own schema.
    """
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.urlencode({"search_path": schema})
    return urllib.parse.urlunsplit(parts._replace(query=query))


@pytest.fixture
async def pg_proxy(postgres_dsn: str) -> AsyncIterator[TcpProxy]:
    """A running TCP proxy in front of the test PostgreSQL server.

    Connect through ``pg_proxy.url_for(dsn)``; ``stop()`` is an outage (it also cuts every open
    connection), ``start()`` its end, on the same port as a database coming back on its address.
    """
    async with TcpProxy.for_url(postgres_dsn) as proxy:
        yield proxy


# -- socket writes, counted -----------------------------------------------------------------------


def record_writes(transport: Any) -> list[bytes]:
    """Every ``transport.write`` from now on, as written (the bytes still go out)."""
    written: list[bytes] = []
    write = transport.write

    def recorded(data: bytes) -> None:
        written.append(bytes(data))
        write(data)

    transport.write = recorded
    return written


def frames_in(data: bytes) -> int:
    """How many whole server frames (unmasked) ``data`` holds, read from their headers."""
    count = offset = 0
    while offset < len(data):
        length = data[offset + 1] & 0x7F
        header = 2
        if length == 126:
            length, header = int.from_bytes(data[offset + 2 : offset + 4], "big"), 4
        elif length == 127:
            length, header = int.from_bytes(data[offset + 2 : offset + 10], "big"), 10
        offset += header + length
        count += 1
    assert offset == len(data)
    return count
