"""A client that completes the WebSocket handshake and then goes silent (never reads, never answers).

:class:`ZombieClient` is a program stuck in a deadlock after connecting: its kernel keeps the TCP
connection alive (it still acknowledges every byte), yet nothing is read or answered, so only a
heartbeat can tell it from a quiet peer. What the hub sends it waits in the kernel's receive
buffer, which the kernel bounds (TCP flow control then stops the hub).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import cast

from wslab.foundation import handshake
from wslab.foundation.errors import ConfigError, InvalidHandshakeResponse, OperationTimeout
from wslab.foundation.http import Response, ResponseParser

__all__ = ["ZombieClient"]


# -- a client that goes silent after the handshake --------------------------------------------------


class _ZombieWire(asyncio.Protocol):
    """Reads the 101 response, then stops reading for good."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.response: asyncio.Future[Response] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio types the argument for every kind of protocol; a stream's is a Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.response.done():
            return
        try:
            response = self.parser.feed(data)
        except InvalidHandshakeResponse as error:
            self.response.set_exception(error)
            return
        if response is not None:
            # From here on the zombie is silent: whatever follows the 101 (the hub's greeting,
            # its pings) stays unread in the kernel's receive buffer, and nothing is answered.
            assert self.transport is not None
            self.transport.pause_reading()
            self.response.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.response.done():
            self.response.set_exception(
                InvalidHandshakeResponse("connection closed during the handshake")
            )
        if not self.lost.done():
            self.lost.set_result(None)


class ZombieClient:
    """A WebSocket client that completes the opening handshake and then never reads again.

    ::

        zombie = await ZombieClient.connect(hub.ws_url, token=hub.token("zed"))
        ...                        # the hub's pings go unanswered: 1011 after its bound
        await zombie.close()

    Because it never reads, it never sees the hub's close frame either: its socket stays open
    until :meth:`close`, which drops it without a closing handshake (a zombie says no goodbye).
    The hub knows it by :attr:`local_address`, the ``remote`` of the hub's connection.
    """

    def __init__(self, url: str, wire: _ZombieWire, response: Response) -> None:
        assert wire.transport is not None
        self.url = url
        self._wire = wire
        self._transport = wire.transport
        #: The server's answer to the upgrade request (status 101 and its headers).
        self.response = response
        sock = self._transport.get_extra_info("sockname")
        #: ``(host, port)`` of this end of the TCP connection: what the server sees as remote.
        self.local_address: tuple[str, int] = (sock[0], sock[1])

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        origin: str | None = None,
        timeout: float = 10.0,
    ) -> ZombieClient:
        """Open a TCP connection to ``url`` (``ws://`` only), upgrade it, and go silent.

        ``token`` is sent as ``Authorization: Bearer <token>``; ``headers`` are added as given.
        Raises :class:`~wslab.foundation.errors.InvalidHandshakeResponse` if the server refuses
        the upgrade and :class:`~wslab.foundation.errors.OperationTimeout` after ``timeout``.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ConfigError(f"a zombie speaks plain ws:// only; got {url!r}")
        host = parts.hostname
        port = parts.port or 80
        extra = list(headers.items() if isinstance(headers, Mapping) else headers)
        if token is not None:
            extra.append(("Authorization", f"Bearer {token}"))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        request, key = handshake.build_upgrade_request(
            host_header, target, origin=origin, extra_headers=extra
        )
        loop = asyncio.get_running_loop()
        transport: asyncio.Transport | None = None

        async def open_and_upgrade() -> tuple[_ZombieWire, Response]:
            nonlocal transport
            transport, wire = await loop.create_connection(_ZombieWire, host, port)
            transport.write(request)
            return wire, await wire.response

        try:
            wire, response = await asyncio.wait_for(open_and_upgrade(), timeout)
            handshake.validate_upgrade_response(response, key)
        except asyncio.TimeoutError:
            if transport is not None:
                transport.abort()
            raise OperationTimeout(f"opening handshake with {url} timed out") from None
        except BaseException:
            if transport is not None:
                transport.abort()
            raise
        return cls(url, wire, response)

    @property
    def closed(self) -> bool:
        """True once this end's socket is closed."""
        return self._wire.lost.done()

    async def close(self) -> None:
        """Drop the TCP connection (no close frame) and wait until the socket is closed."""
        self._transport.abort()
        await asyncio.shield(self._wire.lost)

    async def __aenter__(self) -> ZombieClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "silent"
        return (
            f"<ZombieClient {state} {self.local_address[0]}:{self.local_address[1]} -> {self.url}>"
        )
