"""The server side of the ``websockets`` engine: :class:`WebsocketsServer` and :func:`serve`.

HTTP goes through ``websockets``' ``process_request`` hook: plain requests are answered by the
same ``http_handler``, upgrade requests are admitted, checked and offered to ``process_upgrade``
by :class:`wslab.infrastructure.server.Server` (as on wslab's engine) before ``websockets``
accepts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import urllib.parse
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.datastructures import Headers as WsHeaders
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from wslab.foundation import handshake
from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import HandshakeError, InvalidUpgrade
from wslab.foundation.http import Headers, Request, RequestParser, reason_phrase, require_host
from wslab.infrastructure.connection import ConnectionLimits
from wslab.infrastructure.events import NULL_EVENT_LOG, EventLog
from wslab.infrastructure.server import (
    TOO_MANY_ATTEMPTS,
    AdmissionHook,
    Handler,
    HttpHandler,
    HttpResponse,
    Server,
    UpgradeHook,
)

from .connection import WebsocketsConnection, _Hooks, address, websockets_limits

__all__ = ["WebsocketsServer", "serve"]


#: Each ``websockets`` server's WebsocketsServer, so that its connections find its bookkeeping.
_OWNERS: weakref.WeakKeyDictionary[WsServer, WebsocketsServer] = weakref.WeakKeyDictionary()


class _ServerConnection(_Hooks, ServerConnection):
    """``websockets``' server connection with our hooks, and our HTTP rules in front.

    ``websockets`` parses only what a WebSocket handshake needs: it lets nothing but GET
    through, and it drops the connection without an answer on a method it does not know or a
    bare-LF line end. The head of each request is read by wslab's own strict parser first
    (:class:`~wslab.foundation.http.RequestParser`, the one wslab's engine uses), so that the
    hub answers HTTP by RFC 9110/9112 on either engine: a malformed head is refused with its
    status, a plain request other than GET (HEAD, POST...) is answered by the server's
    ``http_handler``, and only a GET goes on to ``websockets``, bytes unchanged.
    """

    _gate: RequestParser | None = None
    _refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._gate = RequestParser()
        owner = _OWNERS.get(self.server)
        if owner is not None:
            owner._unwrapped.add(self)

    def data_received(self, data: bytes) -> None:
        gate = self._gate
        if gate is None:
            if not self._refused:
                super().data_received(data)
            return
        try:
            request = gate.feed(data)
            if request is not None:
                require_host(request)
        except HandshakeError as error:
            self._gate, self._refused = None, True
            owner = _OWNERS.get(self.server)
            if owner is not None:
                owner.refused(error, address(self.transport.get_extra_info("peername")))
            self.transport.write(handshake.reject(error))
            self.transport.close()
            return
        if request is None:
            return
        self._gate = None
        if request.method == "GET":
            super().data_received(gate.head + gate.leftover)
            return
        self._refused = True  # answered here: websockets never sees this request
        owner = _OWNERS.get(self.server)
        if owner is None:
            self.transport.close()
            return
        owner._track(asyncio.ensure_future(self._answer_plain(owner, request)))

    async def _answer_plain(self, owner: WebsocketsServer, request: Request) -> None:
        response = await owner.answer_http(request)
        if not self.transport.is_closing():
            self.transport.write(response.encode(head=request.method == "HEAD"))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        owner = _OWNERS.get(self.server)
        if owner is not None:
            owner._unwrapped.discard(self)


def _to_request(ws_request: WsRequest) -> Request:
    """A ``websockets`` request as the :class:`wslab.foundation.http.Request` our hooks take."""
    try:
        headers = Headers(ws_request.headers.raw_items())
    except ValueError as error:  # e.g. a non-ASCII byte, which our parser refuses too
        raise InvalidUpgrade(str(error)) from None
    target = ws_request.path
    path, _, query = target.partition("?")
    return Request(
        method="GET",  # websockets' parser lets nothing else through
        target=target,
        path=path,
        query=urllib.parse.parse_qs(query, keep_blank_values=True),
        version="HTTP/1.1",
        headers=headers,
    )


def _ws_response(
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
) -> WsResponse:
    """A complete ``websockets`` response, framed like ``build_response`` frames ours."""
    fields = WsHeaders()
    for name, value in headers:
        fields[name] = value
    if content_type is not None:
        fields["Content-Type"] = content_type
    if status not in (204, 304):
        fields["Content-Length"] = str(len(body))
    if "Connection" not in fields:
        fields["Connection"] = "close"  # websockets closes the connection after it anyway
    return WsResponse(status, reason_phrase(status), fields, body)


def _http_response(response: HttpResponse) -> WsResponse:
    return _ws_response(response.status, response.headers, response.body, response.content_type)


def _refusal(error: HandshakeError) -> WsResponse:
    body = (error.message + "\n").encode("utf-8")
    return _ws_response(error.status, error.headers.items(), body, "text/plain; charset=utf-8")


@dataclass
class WebsocketsServer(Server):
    """A listening server on the ``websockets`` engine, with :class:`Server`'s surface.

    ``port``, ``host``, ``url``, ``connections``, ``close(code=1001)`` and ``async with`` behave
    as on the wslab engine. Create it with :func:`serve`.
    """

    engine: str = "websockets"
    _ws_server: Any = None
    #: TCP connections not handed to a handler yet (HTTP, handshake): dropped on close().
    _unwrapped: weakref.WeakSet[ServerConnection] = field(default_factory=weakref.WeakSet)

    async def _process_request(
        self, ws: ServerConnection, ws_request: WsRequest
    ) -> WsResponse | None:
        """websockets' request hook: admission, plain HTTP routes, handshake checks, hooks."""
        remote = address(ws.remote_address)
        try:
            request = _to_request(ws_request)
        except HandshakeError as error:
            self.refused(error, remote)
            return _refusal(error)
        if not self.admits(request, remote):
            return _http_response(TOO_MANY_ATTEMPTS)
        if not handshake.is_upgrade_request(request):
            return _http_response(await self.answer_http(request))
        try:
            upgrade, context = await self.check_upgrade(request, remote)
        except HandshakeError as error:
            return _refusal(error)
        assert isinstance(ws, _ServerConnection)  # serve() makes its connections of our class
        ws.wslab_upgrade = (upgrade, context)
        return None  # websockets sends the 101

    async def _accept(self, ws: ServerConnection) -> None:
        """websockets' connection handler: wrap the connection and run ours, as _Wire does."""
        task = asyncio.current_task()
        assert task is not None
        self._track(task)  # so that close() waits for it, and cancels it when it must
        self._unwrapped.discard(ws)
        assert isinstance(ws, _ServerConnection)  # serve() makes its connections of our class
        upgrade, context = ws.wslab_upgrade or (None, None)
        connection = WebsocketsConnection(
            ws,
            "server",
            self.limits,
            event_log=self.event_log,
            remote=address(ws.remote_address),
            path=upgrade.path if upgrade else "/",
            query=upgrade.query if upgrade else None,
            headers=upgrade.headers if upgrade else None,
            subprotocol=ws.subprotocol,
        )
        if context:
            connection.context.update(context)
        self._register(connection)
        try:
            await self._run_handler(connection)
        finally:
            await connection._join()

    async def close(
        self,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "server shutting down",
        *,
        timeout: float | None = None,
    ) -> None:
        """Stop accepting, close every connection with ``code``, wait for the handlers.

        Connections still in their opening handshake are refused by ``websockets`` with 503.
        """
        first = not self._closing
        await super().close(code, reason, timeout=timeout)
        ws_server = self._ws_server
        if not first or ws_server is None:
            return
        ws_server.close(close_connections=True, code=code, reason=reason)
        # Like the wslab engine, shutdown does not wait for clients still in their opening
        # handshake or reading a plain HTTP answer: websockets would wait for each of them
        # to close TCP for up to close_timeout.
        for straggler in list(self._unwrapped):
            straggler.transport.abort()
        close_task = ws_server.close_task
        timeout = self.limits.close_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(close_task), timeout)
        except asyncio.TimeoutError:
            for task in list(ws_server.handler_tasks):
                task.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(close_task, 1.0)


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
) -> WebsocketsServer:
    """Listen on ``host:port`` and run ``handler(connection)`` for each connection, on websockets.

    Same arguments and behaviour as :func:`wslab.infrastructure.engines.wslab.serve`.
    """
    limits = limits or ConnectionLimits()
    server = WebsocketsServer(
        handler=handler,
        limits=limits,
        process_upgrade=process_upgrade,
        admission=admission,
        event_log=event_log if event_log is not None else NULL_EVENT_LOG,
    )
    if http_handler is not None:
        server.http_handler = http_handler
    ws_server = await websockets_serve(
        server._accept,
        host,
        port,
        process_request=server._process_request,
        server_header=None,
        open_timeout=limits.handshake_timeout,
        create_connection=_ServerConnection,
        ssl=ssl,
        backlog=backlog,
        **websockets_limits(limits, server=True),
    )
    server._ws_server = ws_server
    _OWNERS[ws_server] = server  # lets our connection class find the server's bookkeeping
    server._server = ws_server.server
    server._scheme = "wss" if ssl is not None else "ws"
    return server


# -- the client ---------------------------------------------------------------------------------------
