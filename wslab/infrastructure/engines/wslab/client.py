"""The client side of wslab's own engine: :func:`connect`.

A client TCP connection is one :class:`_ClientWire`: it sends the upgrade request, waits for the
101 (within ``open_timeout``), checks it, and hands the socket — with any bytes that followed
the 101 — to a :class:`~.connection.WslabConnection` with the client role (masked frames).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any, cast

from wslab.foundation import deflate, handshake
from wslab.foundation.errors import (
    HandshakeError,
    InvalidHandshakeResponse,
    InvalidUpgrade,
    OperationTimeout,
    WslabError,
)
from wslab.foundation.http import Headers, ResponseParser
from wslab.foundation.protocol import Role
from wslab.infrastructure.connection import ConnectionLimits
from wslab.infrastructure.events import EventLog

from .connection import WslabConnection, _ForwardsFlowControl

__all__ = ["connect"]


class _ClientWire(_ForwardsFlowControl):
    """A client TCP connection: waits for the 101, then hands the bytes to the connection."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.response: asyncio.Future[tuple[Any, bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.connection: WslabConnection | None = None
        #: Set if TCP closed after the 101 but before ``connect()`` took the connection over.
        self.lost_early: tuple[Exception | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio types the argument for every kind of protocol; a stream's is a Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.data_received(data)
            return
        try:
            response = self.parser.feed(data)
        except HandshakeError as error:
            if not self.response.done():
                self.response.set_exception(InvalidHandshakeResponse(error.message))
            return
        if response is not None and not self.response.done():
            # The server may send frames right behind its 101, before connect() has built the
            # connection (a few loop turns later): stop reading until then (see attach()).
            assert self.transport is not None
            self.transport.pause_reading()
            self.response.set_result((response, self.parser.leftover))

    def attach(self, connection: WslabConnection, leftover: bytes) -> None:
        """Hand the socket to ``connection``, with the bytes that followed the 101."""
        self.connection = connection
        if leftover:
            connection.data_received(leftover)
        if self.lost_early is not None:
            connection.connection_lost(self.lost_early[0])
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.connection_lost(exc)
        elif not self.response.done():
            self.response.set_exception(
                InvalidHandshakeResponse("connection closed during the handshake")
            )
        else:
            self.lost_early = (exc,)


async def connect(
    url: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    subprotocols: Iterable[str] = (),
    limits: ConnectionLimits | None = None,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    open_timeout: float = 10.0,
) -> WslabConnection:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``) on wslab's engine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidUpgrade(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    limits = limits or ConnectionLimits()
    if secure and ssl is None:
        ssl = True
    offered = tuple(subprotocols)
    loop = asyncio.get_running_loop()
    started = time.monotonic()

    async def open_and_handshake() -> tuple[asyncio.Transport, _ClientWire, Any, bytes, str]:
        transport, wire = await loop.create_connection(
            lambda: _ClientWire(limits),
            host,
            port,
            ssl=ssl if secure else None,
            server_hostname=host if secure else None,
        )
        host_header = host if parts.port is None else f"{host}:{port}"
        request, key = handshake.build_upgrade_request(
            host_header,
            target,
            origin=origin,
            subprotocols=offered,
            extra_headers=tuple(headers),
            extensions=deflate.client_offer(limits.compression) if limits.compression else None,
        )
        transport.write(request)
        try:
            response, leftover = await wire.response
        except BaseException:
            transport.abort()
            raise
        return transport, wire, response, leftover, key

    try:
        transport, wire, response, leftover, key = await asyncio.wait_for(
            open_and_handshake(), open_timeout
        )
    except asyncio.TimeoutError:
        raise OperationTimeout(f"opening handshake with {url} timed out") from None
    try:
        subprotocol = handshake.validate_upgrade_response(
            response, key, offered, extensions_offered=limits.compression is not None
        )
        params = (
            deflate.accept_response(
                response.headers.get_all("Sec-WebSocket-Extensions"), limits.compression
            )
            if limits.compression
            else None
        )
    except WslabError:
        transport.abort()
        raise
    connection = WslabConnection(
        transport,
        Role.CLIENT,
        limits,
        event_log=event_log,
        deflate_params=params,
        remote=(host, port),
        path=parts.path or "/",
        headers=response.headers if isinstance(response.headers, Headers) else None,
        subprotocol=subprotocol,
    )
    connection.stats.opened_at = started
    connection.protocol.open(cause="handshake accepted")
    wire.attach(connection, leftover)
    return connection
