"""The server contract both engines fulfil: :class:`Server`, :class:`HttpResponse`, the hooks.

A server listens, answers plain HTTP with its ``http_handler`` (pages, ``/healthz``,
``/metrics``), offers each upgrade request to ``admission`` (per-address limits) and
``process_upgrade`` (origin and auth checks, which may refuse it with an HTTP status), and runs
``handler(connection)`` as a task for each WebSocket connection it accepts. What does not depend
on the engine is written here once: the registry of open connections, the handler task and what
its failure means (1011 for that connection only), the events and refusals it reports, and
shutdown — :meth:`Server.close` stops accepting, closes every connection with 1001, waits for
the handlers, and cancels those that do not finish in time.

A handler may also hand its connection over to a
:class:`~wslab.infrastructure.connection.MessageConsumer` and return
(:meth:`Connection.hand_over`): the connection stays open, and the server runs a task for it
only while it has messages to handle (:meth:`Server._consume`) — the hub holds thousands of
idle connections that way, without a task and its coroutine frames for each.

The engines subclass it: :class:`~wslab.infrastructure.engines.wslab.server.WslabServer` and
:class:`~wslab.infrastructure.engines.websockets.server.WebsocketsServer`;
:func:`wslab.infrastructure.engines.serve` picks one by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wslab.foundation import handshake
from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import HandshakeError
from wslab.foundation.http import Request, build_response

from .connection import Connection, ConnectionLimits, MessageConsumer
from .events import NULL_EVENT_LOG, EventKind, EventLog

__all__ = [
    "TOO_MANY_ATTEMPTS",
    "AdmissionHook",
    "Handler",
    "HttpHandler",
    "HttpResponse",
    "Server",
    "UpgradeHook",
    "default_http",
]

log = logging.getLogger("wslab.transport")  # the name it had when it lived in transport.py


@dataclass(frozen=True)
class HttpResponse:
    """A plain HTTP response for a non-WebSocket route."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, *, head: bool = False) -> bytes:
        """The response bytes (always with Content-Length; the connection closes after it).

        ``head``: the answer to a HEAD request (RFC 9110 9.3.2), the same head as for GET,
        Content-Length included, without the body.
        """
        data = build_response(
            self.status, (*self.headers, ("Connection", "close")), self.body, self.content_type
        )
        return data[: len(data) - len(self.body)] if head and self.body else data


Handler = Callable[[Connection], Awaitable[None]]
HttpHandler = Callable[[Request], Awaitable[HttpResponse]]
#: Called with the validated upgrade before the 101 is sent. Raise a ``HandshakeError`` to
#: refuse (its status is sent); return a dict to put in ``connection.context``, or None.
UpgradeHook = Callable[
    [handshake.Upgrade, "tuple[str, int] | None"], Awaitable["dict[str, Any] | None"]
]
#: Called for each upgrade request with the client's address; False refuses it (429).
AdmissionHook = Callable[[str], bool]

#: The answer to an upgrade request the admission hook refused.
TOO_MANY_ATTEMPTS = HttpResponse(429, b"too many connection attempts\n")


async def default_http(request: Request) -> HttpResponse:
    """The answer to plain HTTP when the server has no ``http_handler``: speak WebSocket."""
    return HttpResponse(
        426, b"this endpoint speaks WebSocket\n", headers=(("Upgrade", "websocket"),)
    )


@dataclass
class Server:
    """A listening WebSocket server, whatever the engine. Create one with an engine's ``serve``."""

    handler: Handler
    limits: ConnectionLimits
    http_handler: HttpHandler = default_http
    process_upgrade: UpgradeHook | None = None
    admission: AdmissionHook | None = None
    event_log: EventLog = NULL_EVENT_LOG
    on_connection_error: Callable[[Connection, BaseException], None] | None = None
    #: Called with each upgrade request refused with an HTTP status (and the client's address).
    on_refused: Callable[[HandshakeError, tuple[str, int] | None], None] | None = None
    engine: str = "abstract"
    #: Whether its connections can be handed over (:meth:`Connection.hand_over`). Not where the
    #: engine keeps a task per connection anyway and closes the connection when it returns.
    hands_over: ClassVar[bool] = False
    connections: dict[str, Connection] = field(default_factory=dict)
    #: Open connections per client address (kept with ``connections``): the per-IP cap asks
    #: this on every upgrade, so it must not count by walking every connection.
    per_address: dict[str, int] = field(default_factory=dict)
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _scheme: str = "ws"
    _closing: bool = False
    #: While close() waits: resolved when a task starts or a connection is released.
    _changed: asyncio.Future[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def host(self) -> str:
        """The address actually bound."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[0]

    @property
    def url(self) -> str:
        """``ws://host:port`` (or ``wss://``) of this server."""
        return f"{self._scheme}://{self.host}:{self.port}"

    def record(self, kind: EventKind, connection_id: str | None, **fields: object) -> None:
        """Record a server-level event in the event log."""
        if self.event_log.enabled_for(kind):
            self.event_log.record(kind, connection_id, **fields)

    def refused(self, error: HandshakeError, remote: tuple[str, int] | None) -> None:
        """An upgrade request is being refused with ``error.status``: log it, tell ``on_refused``."""
        if self.on_refused is not None:
            self.on_refused(error, remote)
        self.record(
            EventKind.ERROR,
            None,
            error=type(error).__name__,
            status=error.status,
            message=error.message,
        )

    def admits(self, request: Request, remote: tuple[str, int] | None) -> bool:
        """Ask the admission hook about an upgrade request; False (and an event) if it says no.

        Asked once the head shows an upgrade, not on TCP accept: plain HTTP (``/healthz``,
        ``/metrics``) is outside the WebSocket admission budget, so monitoring behind the same
        NAT as a crowd of clients still gets its answer. The engine answers a refusal with
        :data:`TOO_MANY_ATTEMPTS`.
        """
        if not handshake.is_upgrade_request(request):
            return True
        if self.admission is None or not remote or self.admission(remote[0]):
            return True
        self.record(EventKind.RATE_LIMIT, None, scope="address", address=remote[0])
        return False

    async def answer_http(self, request: Request) -> HttpResponse:
        """The ``http_handler``'s answer to a plain request (500 if it fails)."""
        try:
            return await self.http_handler(request)
        except Exception:
            log.exception("HTTP handler failed for %s", request.path)
            return HttpResponse(500, b"internal error\n")

    async def check_upgrade(
        self, request: Request, remote: tuple[str, int] | None
    ) -> tuple[handshake.Upgrade, dict[str, Any] | None]:
        """Validate an upgrade request and offer it to ``process_upgrade``.

        Returns the upgrade and the context to attach to the connection; raises the
        :class:`HandshakeError` to answer with (500 if the hook fails unexpectedly), after
        :meth:`refused` has reported it.
        """
        try:
            upgrade = handshake.validate_upgrade_request(request)
            context = await self.process_upgrade(upgrade, remote) if self.process_upgrade else None
        except HandshakeError as error:
            self.refused(error, remote)
            raise
        except Exception:
            log.exception("upgrade hook failed")
            refusal = HandshakeError("internal error", status=500)
            self.refused(refusal, remote)
            raise refusal from None
        return upgrade, context

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._nudge()

    def _nudge(self) -> None:
        changed = self._changed
        if changed is not None and not changed.done():
            changed.set_result(None)

    def held_by(self, address: str) -> int:
        """How many open connections come from ``address`` (O(1))."""
        return self.per_address.get(address, 0)

    def _hold(self, connection: Connection) -> None:
        """List an open connection (and count it against its address)."""
        self.connections[connection.id] = connection
        if connection.remote:
            address = connection.remote[0]
            self.per_address[address] = self.per_address.get(address, 0) + 1

    def _release(self, connection: Connection) -> None:
        """Unlist a connection whose handler is done (and uncount it)."""
        if self.connections.pop(connection.id, None) is None:
            return
        self._nudge()
        if not connection.remote:
            return
        address = connection.remote[0]
        left = self.per_address.get(address, 0) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)  # bounded by the addresses connected now

    def _register(self, connection: Connection) -> None:
        """A connection is open: list it and log it."""
        if self.hands_over:
            connection._host = self  # it may be handed over to a consumer (Connection.hand_over)
        self._hold(connection)
        self.record(
            EventKind.CONNECT, connection.id, remote=str(connection.remote), path=connection.path
        )

    async def _run_handler(self, connection: Connection) -> None:
        handed_over = False
        try:
            await self.handler(connection)
        except asyncio.CancelledError:
            connection.abort("handler cancelled")
            raise
        except Exception as error:
            await self._handler_failed(connection, error)
        else:
            # Handed over: the connection lives on; its consumer's end closes and unlists it.
            handed_over = connection.handed_over
            if not handed_over:
                await connection.close()
        finally:
            if not handed_over:
                self._release(connection)

    async def _handler_failed(self, connection: Connection, error: Exception) -> None:
        # The handler's failure ends this connection only (1011), never the server.
        log.exception("connection handler failed for %s", connection.id)
        self.record(EventKind.ERROR, connection.id, error=type(error).__name__, message=str(error))
        if self.on_connection_error is not None:
            self.on_connection_error(connection, error)
        await connection.close(CloseCode.INTERNAL_ERROR, "internal error")

    def _consume_soon(self, connection: Connection) -> None:
        """A handed-over connection has messages (or has closed): run a task to handle them."""
        self._track(asyncio.get_running_loop().create_task(self._consume(connection)))

    async def _consume(self, connection: Connection) -> None:
        """Hand the queued messages to the consumer in order; end once they are handled.

        The task ends as soon as the queue is empty and the connection is still open: the next
        message starts another. Once the connection has closed (or the consumer stops), the
        consumer's ``finished`` runs, the connection is closed and unlisted — what the end of a
        handler task does for a connection that was not handed over.
        """
        consumer = connection._consumer
        assert consumer is not None
        try:
            consumer.resumed(connection)
            while True:
                message = connection.next_message()
                if message is None:
                    connection._incoming_drained()  # a deferred close may go out now
                    if not connection.closed:
                        connection._consuming = False  # idle: the next message wakes us
                        return
                    break
                if not await consumer.message(connection, message):
                    break
        except asyncio.CancelledError:
            connection.abort("handler cancelled")
            await self._finish(connection, consumer, None)
            raise
        except Exception as error:
            await self._finish(connection, consumer, error)
        else:
            await self._finish(connection, consumer, None)

    async def _finish(
        self, connection: Connection, consumer: MessageConsumer, error: Exception | None
    ) -> None:
        """The end of a handed-over connection: the consumer's, then the close, then unlisting."""
        connection._consumer = None  # no more tasks for it
        try:
            try:
                await consumer.finished(connection)
            except Exception:
                log.exception("the end of connection %s failed", connection.id)
            if error is not None:
                await self._handler_failed(connection, error)
            else:
                await connection.close()
        finally:
            self._release(connection)

    async def close(
        self,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "server shutting down",
        *,
        timeout: float | None = None,
    ) -> None:
        """Stop accepting, close every connection with ``code``, wait for the handlers."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            connection.close_nowait(code, reason)
        timeout = self.limits.close_timeout if timeout is None else timeout
        if self._tasks or self.connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._settled(), timeout)
            pending = {task for task in self._tasks if not task.done()}
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for connection in list(self.connections.values()):
            connection.abort("server closed")
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _settled(self) -> None:
        """Wait until every handler task has ended and every handed-over connection is unlisted.

        A handed-over connection has no task until its close arrives, so the tasks alone do not
        say when shutdown is done: wait for them, then for a change, until nothing is left.
        """
        loop = asyncio.get_running_loop()
        while self._tasks or any(c.handed_over for c in self.connections.values()):
            if self._tasks:
                await asyncio.wait(set(self._tasks))
                continue
            self._changed = loop.create_future()
            try:
                await self._changed
            finally:
                self._changed = None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
