"""The server side of wslab's own engine: :class:`WslabServer` and :func:`serve`.

One TCP connection is one :class:`_Wire`: first it reads an HTTP head (with a size limit and a
deadline); a plain request is answered by the server's ``http_handler``; an upgrade request is
admitted, validated and offered to ``process_upgrade`` (see :class:`wslab.infrastructure.server.
Server`, which does all of that for both engines), answered with 101, and from then on the bytes
belong to a :class:`~.connection.WslabConnection` whose ``handler`` coroutine runs as a task —
until it hands the connection over (:meth:`~wslab.infrastructure.connection.Connection.hand_over`):
then a task runs only while there are messages to handle.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from dataclasses import dataclass
from typing import ClassVar, cast

from wslab.foundation import deflate, handshake
from wslab.foundation.errors import HandshakeError
from wslab.foundation.http import Request, RequestParser, require_host
from wslab.foundation.protocol import Role
from wslab.infrastructure.connection import Connection, ConnectionLimits
from wslab.infrastructure.events import NULL_EVENT_LOG, EventLog
from wslab.infrastructure.server import (
    TOO_MANY_ATTEMPTS,
    AdmissionHook,
    Handler,
    HttpHandler,
    Server,
    UpgradeHook,
    default_http,
)

from .connection import WslabConnection, _ForwardsFlowControl

__all__ = ["WslabServer", "serve"]


@dataclass
class WslabServer(Server):
    """A listening server on wslab's engine. Create it with :func:`serve`."""

    engine: str = "wslab"
    #: A connection is a protocol object fed by the transport's callbacks: once its handler has
    #: handed it over, an idle one holds no task.
    hands_over: ClassVar[bool] = True

    def _opened(self, connection: Connection) -> None:
        self._register(connection)
        self._track(asyncio.ensure_future(self._run_handler(connection)))


_NO_PARSER = RequestParser()  # what an upgraded _Wire holds instead of its own parser


class _Wire(_ForwardsFlowControl):
    """One accepted TCP connection: HTTP until the upgrade, then a :class:`WslabConnection`."""

    __slots__ = ("_deadline", "_http_task", "connection", "parser", "remote", "server", "transport")

    def __init__(self, server: WslabServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser()
        self.connection: WslabConnection | None = None
        self.remote: tuple[str, int] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._http_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio types the argument for every kind of protocol; a stream's is a Transport.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.remote = (peer[0], peer[1]) if peer else None
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(
            self.server.limits.handshake_timeout, self._handshake_timeout
        )

    def _handshake_timeout(self) -> None:
        if self.connection is None and self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.data_received(data)
            return
        if self._http_task is not None:
            return  # a plain HTTP request is being answered; pipelining is not supported
        try:
            request = self.parser.feed(data)
        except HandshakeError as error:
            self._refuse(error)
            return
        if request is None:
            return
        try:
            require_host(request)
        except HandshakeError as error:
            self._refuse(error)
            return
        if not self.server.admits(request, self.remote):
            assert self.transport is not None
            self.transport.write(TOO_MANY_ATTEMPTS.encode())
            self.transport.close()
            return
        if handshake.is_upgrade_request(request):
            self._http_task = asyncio.ensure_future(self._upgrade(request, self.parser.leftover))
        else:
            self._http_task = asyncio.ensure_future(self._answer_http(request))
        self.server._track(self._http_task)

    def _refuse(self, error: HandshakeError) -> None:
        assert self.transport is not None
        self.server.refused(error, self.remote)
        self._reject(error)

    def _reject(self, error: HandshakeError) -> None:
        """Answer with ``error``'s status and close (already reported to the server)."""
        assert self.transport is not None
        self.transport.write(handshake.reject(error))
        self.transport.close()

    async def _answer_http(self, request: Request) -> None:
        assert self.transport is not None
        response = await self.server.answer_http(request)
        if not self.transport.is_closing():
            self.transport.write(response.encode(head=request.method == "HEAD"))
            self.transport.close()

    async def _upgrade(self, request: Request, leftover: bytes) -> None:
        transport = self.transport
        assert transport is not None
        server = self.server
        try:
            upgrade, context = await server.check_upgrade(request, self.remote)
        except HandshakeError as error:
            self._reject(error)
            return
        if transport.is_closing():
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        settings = server.limits.compression
        params = deflate.negotiate(upgrade.extensions, settings) if settings else None
        connection = WslabConnection(
            transport,
            Role.SERVER,
            server.limits,
            event_log=server.event_log,
            deflate_params=params,
            remote=self.remote,
            path=upgrade.path,
            query=upgrade.query,
            headers=upgrade.headers,
        )
        if context:
            connection.context.update(context)
        transport.write(
            handshake.build_upgrade_response(
                upgrade, extensions=params.header() if params else None
            )
        )
        connection.protocol.open(cause="handshake accepted")
        self.connection = connection
        # The HTTP side is done: its parser (with the request head) and this finished task
        # would otherwise stay with the TCP connection for its whole life.
        self.parser = _NO_PARSER
        self._http_task = None
        server._opened(connection)
        if leftover:
            connection.data_received(leftover)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self.connection is not None:
            self.connection.connection_lost(exc)


# -- the server --------------------------------------------------------------------------------------


async def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    limits: ConnectionLimits | None = None,
    http_handler: HttpHandler | None = None,
    process_upgrade: UpgradeHook | None = None,
    admission: AdmissionHook | None = None,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | None = None,
    backlog: int = 1024,
) -> WslabServer:
    """Listen on ``host:port`` and run ``handler(connection)`` for each WebSocket connection."""
    server = WslabServer(
        handler=handler,
        limits=limits or ConnectionLimits(),
        http_handler=http_handler or default_http,
        process_upgrade=process_upgrade,
        admission=admission,
        event_log=event_log if event_log is not None else NULL_EVENT_LOG,
    )
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(
        lambda: _Wire(server), host, port, ssl=ssl, backlog=backlog
    )
    server._scheme = "wss" if ssl is not None else "ws"
    return server
