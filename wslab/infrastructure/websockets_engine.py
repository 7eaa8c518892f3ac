"""The ``websockets`` library as a second engine behind the same :class:`Connection` interface.

wslab's own engine (:mod:`wslab.infrastructure.transport`) is the default; this module runs the
very same handlers, limits and policies on ``websockets`` (its asyncio implementation), so that
the test suite can prove both engines behave alike and a notebook can compare them. It follows
the shape of the wslab engine wherever the library allows:

- **incoming** — a reader task moves messages from ``websockets`` into the bounded incoming
  queue of :class:`Connection`. When that queue is full the reader stops calling ``recv()``;
  ``websockets`` then buffers at most ``max_queue`` frames (set to ``limits.max_incoming``) and
  stops reading the socket, so TCP pushes back on the peer as with the wslab engine.
- **outgoing** — while the socket keeps up, a message is written at once (as
  ``websockets.broadcast`` does); while the transport's buffer is over ``write_high`` it waits in
  the bounded outgoing queue, which a writer task flushes with ``send()`` as the socket drains.
  The slow-consumer policy (close 1013, drop_oldest, drop_new) applies to that queue exactly as
  on the wslab engine, so a peer that never reads cannot grow memory past the bound.
- **ping** — ``websockets``' own ``ping()``; its pong resolves :meth:`Connection.ping`'s future.
  Unsolicited pongs are not reported by the library, so they are neither counted nor logged.
- **close** — ``close()`` sends the close frame after what is queued; ``fail()`` sends it at
  once and closes TCP; ``abort()`` drops TCP. ``close_code``/``close_reason`` come from the close
  frame received (``protocol.close_rcvd``); ``closed_locally`` is true when this end started.
- **events** — CONNECT, DISCONNECT, CLOSE (in and out), PING, PONG, ERROR, BACKPRESSURE and
  SLOW_CONSUMER are recorded. Frames and state transitions are *not* observable on this engine
  (the library keeps them inside), so FRAME_IN/FRAME_OUT/TRANSITION events never appear,
  ``frame_counts()`` is ``None`` (the hub exposes no frame counter), and ``bytes_out`` counts
  message payloads rather than frame bytes.

HTTP on :func:`serve_websockets` goes through ``websockets``' ``process_request`` hook: plain
requests are answered by the same ``http_handler`` (given a :class:`wslab.foundation.http.Request`),
upgrade requests are checked by :mod:`wslab.foundation.handshake` and offered to
``process_upgrade`` before ``websockets`` accepts them. Differences that remain: only ``GET``
requests without a body reach the ``http_handler`` (the library refuses the others), and
``admission`` is asked once the request head has arrived rather than on TCP accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
import time
import urllib.parse
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.datastructures import Headers as WsHeaders
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.extensions.base import ClientExtensionFactory, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.protocol import State as WsState

from wslab.foundation import handshake
from wslab.foundation.codes import CloseCode
from wslab.foundation.deflate import DeflateSettings
from wslab.foundation.errors import (
    HandshakeError,
    InvalidHandshakeResponse,
    InvalidUpgrade,
    OperationTimeout,
)
from wslab.foundation.http import Headers, Request, reason_phrase
from wslab.foundation.state import ConnectionState

from .connection import Connection, ConnectionLimits, Message, SlowConsumerPolicy
from .events import EventKind, EventLog
from .transport import AdmissionHook, Handler, HttpHandler, HttpResponse, Server, UpgradeHook

__all__ = [
    "WebsocketsConnection",
    "WebsocketsServer",
    "connect_websockets",
    "serve_websockets",
]

log = logging.getLogger("wslab.websockets_engine")

_STATES = {
    WsState.CONNECTING: ConnectionState.CONNECTING,
    WsState.OPEN: ConnectionState.OPEN,
    WsState.CLOSING: ConnectionState.CLOSING,
    WsState.CLOSED: ConnectionState.CLOSED,
}

_MAX_CLOSE_REASON = 123  # bytes: a control frame payload is 125 at most, 2 are the code


def _truncate_reason(reason: str) -> str:
    """Cut a close reason to what fits in a close frame, on a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= _MAX_CLOSE_REASON:
        return reason
    return data[:_MAX_CLOSE_REASON].decode("utf-8", errors="ignore")


def _deflate_factories(
    settings: DeflateSettings | None, *, server: bool
) -> list[ServerExtensionFactory] | list[ClientExtensionFactory]:
    """permessage-deflate as wslab's engine negotiates it, in ``websockets``' terms.

    Same window cap, context-takeover choice, level and memLevel, so a run on the reference
    engine compares like with like. (``websockets`` has no size threshold: it compresses every
    data message.)
    """
    if settings is None:
        return []
    bits = settings.max_window_bits if settings.max_window_bits < 15 else None
    reset = settings.no_context_takeover
    zlib_settings = {"level": settings.level, "memLevel": settings.mem_level}
    if server:
        return [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=reset,
                client_no_context_takeover=reset,
                server_max_window_bits=bits,
                client_max_window_bits=bits,
                compress_settings=zlib_settings,
            )
        ]
    return [
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=reset,
            client_no_context_takeover=reset,
            server_max_window_bits=bits,
            client_max_window_bits=bits or True,
            compress_settings=zlib_settings,
        )
    ]


def _websockets_limits(limits: ConnectionLimits, *, server: bool) -> dict[str, Any]:
    """The ``websockets`` arguments that carry our limits and compression settings."""
    return {
        # Our heartbeat (wslab.infrastructure.heartbeat) pings; the library's keepalive is off.
        "ping_interval": None,
        "ping_timeout": None,
        "close_timeout": limits.close_timeout,
        "max_size": (limits.max_message_size, limits.frame_limit),
        # Frames the library buffers once our incoming queue is full: the same bound again,
        # so at most ~2 * max_incoming messages wait before TCP pushes back on the peer.
        "max_queue": (limits.max_incoming, limits.max_incoming // 4),
        "write_limit": (limits.write_high, limits.write_low),
        "compression": None,  # replaced by the extensions below, which mirror our settings
        "extensions": _deflate_factories(limits.compression, server=server),
    }


# -- websockets' connection objects, with the callbacks we need ----------------------------------


class _Hooks:
    """Mixed into ``websockets``' connection classes: tells our connection what asyncio says.

    ``websockets`` documents ``create_connection`` as the way to customise its connections; we
    only observe (bytes received, flow control, TCP closed) and always call the library first.
    """

    wslab_connection: WebsocketsConnection | None = None
    #: Set by the server's request hook: the validated upgrade and the context to attach.
    wslab_upgrade: tuple[handshake.Upgrade, dict[str, Any] | None] | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.wslab_connection is not None:
            self.wslab_connection._after_data(len(data))

    def send_data(self) -> None:
        super().send_data()  # type: ignore[misc]
        if self.wslab_connection is not None:
            # A close frame websockets sent by itself (a protocol failure) is logged at once.
            self.wslab_connection._sync_close_frames()

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self.wslab_connection is not None:
            self.wslab_connection._writing_paused()

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        if self.wslab_connection is not None:
            self.wslab_connection._writing_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        if self.wslab_connection is not None:
            self.wslab_connection._transport_lost(exc)


class _ServerConnection(_Hooks, ServerConnection):
    """``websockets``' server connection with our hooks."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        owner: WebsocketsServer | None = getattr(self.server, "wslab_server", None)
        if owner is not None:
            owner._unwrapped.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        owner: WebsocketsServer | None = getattr(self.server, "wslab_server", None)
        if owner is not None:
            owner._unwrapped.discard(self)


class _ClientConnection(_Hooks, ClientConnection):
    """``websockets``' client connection with our hooks."""


# -- one connection ----------------------------------------------------------------------------


class WebsocketsConnection(Connection):
    """A :class:`Connection` whose I/O is done by a ``websockets`` connection (``self.ws``)."""

    engine = "websockets"

    def __init__(
        self,
        ws: ServerConnection | ClientConnection,
        role: str,
        limits: ConnectionLimits,
        *,
        event_log: EventLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(role=role, limits=limits, event_log=event_log, **kwargs)
        self.ws = ws
        # Outgoing messages waiting for the socket: (payload, is_text). Bounded by max_queue and
        # max_queue_bytes; the slow-consumer policy decides at the bound.
        self._queue: deque[tuple[bytes, bool]] = deque()
        self._queued_bytes = 0
        self._in_flight = 0  # bytes of the message the writer is handing to websockets
        self._writer_wakeup: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reader_wakeup: asyncio.Future[None] | None = None
        self._close_request: tuple[int, str] | None = None
        self._close_now = False  # the close frame was written directly, not by the writer
        self._closed_by_us = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._transport_gone = False
        self._transport_exc: Exception | None = None
        self._close_in_recorded = False
        self._close_out_recorded = False
        self._ping_tasks: set[asyncio.Task[None]] = set()
        ws.wslab_connection = self  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop(), name=f"wslab-reader-{self.id}")
        self._writer = loop.create_task(self._write_loop(), name=f"wslab-writer-{self.id}")
        if ws.protocol.state is WsState.CLOSED:  # lost before we were attached
            self._transport_gone = True

    # -- state -------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        if self.closed:
            return ConnectionState.CLOSED
        state = _STATES[self.ws.protocol.state]
        if state is ConnectionState.OPEN and self._close_request is not None:
            return ConnectionState.CLOSING  # our close frame waits behind the queue
        return state

    @property
    def close_code(self) -> int | None:
        received = self.ws.protocol.close_rcvd
        if received is not None:
            return int(received.code)
        if self.closed or self.ws.protocol.state is WsState.CLOSED:
            return int(CloseCode.ABNORMAL_CLOSURE)
        return None

    @property
    def close_reason(self) -> str:
        received = self.ws.protocol.close_rcvd
        return received.reason if received is not None else ""

    @property
    def closed_locally(self) -> bool:
        return self._closed_by_us

    @property
    def close_sent(self) -> tuple[int, str] | None:
        sent = self.ws.protocol.close_sent
        return (int(sent.code), sent.reason) if sent is not None else None

    @property
    def extensions(self) -> str | None:
        response = self.ws.response
        return response.headers.get("Sec-WebSocket-Extensions") if response else None

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def transport(self) -> asyncio.Transport:
        """The asyncio transport under ``websockets`` (write buffer size, socket options)."""
        return self.ws.transport

    def _mark_local_close(self) -> None:
        if self.ws.protocol.state is WsState.OPEN and self.ws.protocol.close_rcvd is None:
            self._closed_by_us = True

    # -- incoming ----------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Move messages from websockets into our queue; report the end once all are moved."""
        ws = self.ws
        cause = ""
        try:
            while True:
                if self._reading_paused and not self._transport_gone:
                    # Our queue is full: stop calling recv(), websockets' buffer fills up to
                    # max_queue frames and then it stops reading the socket.
                    self._reader_wakeup = asyncio.get_running_loop().create_future()
                    await self._reader_wakeup
                    continue
                message = await ws.recv()
                self._deliver(message)
        except WsConnectionClosed:
            pass  # websockets returns every queued message before raising this
        except asyncio.CancelledError:
            cause = "reader cancelled"
            ws.transport.abort()
            raise
        except Exception as error:
            log.exception("reading from %s failed", self.id)
            self._record(EventKind.ERROR, error=type(error).__name__, message=str(error))
            cause = f"reader failed: {error}"
            ws.transport.abort()
        finally:
            self._sync_close_frames()
            self._lost(cause or self._lost_cause())

    def _lost_cause(self) -> str:
        protocol = self.ws.protocol
        if protocol.close_rcvd is not None and protocol.close_sent is not None:
            return "closing handshake complete"
        if self._transport_exc is not None:
            return f"transport error: {self._transport_exc}"
        return "transport lost"

    def _resume_reading(self) -> None:
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._reader_wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _after_data(self, size: int) -> None:
        """Bytes arrived (websockets has processed them): count them, log close frames."""
        self.stats.bytes_in += size
        self._sync_close_frames()

    def _sync_close_frames(self) -> None:
        """Record close frames websockets received or sent on its own (echo, protocol failure)."""
        protocol = self.ws.protocol
        received = protocol.close_rcvd
        if received is not None and not self._close_in_recorded:
            self._close_in_recorded = True
            self._record(
                EventKind.CLOSE, direction="in", code=int(received.code), reason=received.reason
            )
        sent = protocol.close_sent
        if sent is not None and not self._close_out_recorded:
            self._close_out_recorded = True
            if not protocol.close_rcvd_then_sent:
                # Not our close and not an echo: websockets failed the connection (1002, 1007,
                # 1009...), as the wslab engine does on a ProtocolFailure.
                error = protocol.parser_exc
                self._record(
                    EventKind.ERROR,
                    error=type(error).__name__ if error is not None else "ProtocolError",
                    message=str(error) if error is not None else sent.reason,
                    close_code=int(sent.code),
                )
                self._record(
                    EventKind.CLOSE, direction="out", code=int(sent.code), reason=sent.reason
                )
                # Like the wslab engine, close TCP right after the failure's close frame
                # instead of waiting for a peer that broke the protocol to answer.
                self.ws.transport.close()

    def _transport_lost(self, exc: Exception | None) -> None:
        """TCP is closed. The reader moves what websockets still holds, then calls _lost."""
        self._transport_gone = True
        self._transport_exc = exc
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._wake_reader()

    def _lost(self, cause: str) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._queue.clear()
        self._queued_bytes = 0
        if not self._writer.done():
            self._writer.cancel()
        super()._lost(cause)
        self._wake_writable()

    # -- outgoing ----------------------------------------------------------------------------------

    def _write_message(self, message: Message) -> None:
        if isinstance(message, str):
            data, text = message.encode("utf-8"), True
        else:
            data, text = bytes(message), False
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
        ws = self.ws
        if not self._queue and not self._in_flight and not ws.paused:
            # The socket keeps up: write now, as websockets' broadcast() does.
            if text:
                ws.protocol.send_text(data)
            else:
                ws.protocol.send_binary(data)
            ws.send_data()
            return
        limits = self.limits
        if (
            len(self._queue) >= limits.max_queue
            or self._queued_bytes + len(data) > limits.max_queue_bytes
        ) and not self._overflow():
            self.stats.messages_out -= 1
            self.stats.bytes_out -= len(data)
            return
        self._queue.append((data, text))
        self._queued_bytes += len(data)
        if len(self._queue) > self.stats.queue_peak:
            self.stats.queue_peak = len(self._queue)
        self._wake_writer()

    def _overflow(self) -> bool:
        """The outgoing queue is full. Returns True if the new message may still be queued."""
        policy = self.limits.slow_consumer_policy
        self.stats.dropped_out += 1
        self._record(EventKind.SLOW_CONSUMER, policy=policy.value, queued=len(self._queue))
        if policy is SlowConsumerPolicy.DROP_OLDEST:
            dropped, _ = self._queue.popleft()
            self._queued_bytes -= len(dropped)
            return True
        if policy is SlowConsumerPolicy.CLOSE:
            # The peer is not reading, so it would not read what is queued either: drop it,
            # send the close now, and abort if the handshake does not finish in time.
            self._queue.clear()
            self._queued_bytes = 0
            self._start_close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outgoing queue overflowed")
        return False

    async def _write_loop(self) -> None:
        """Flush the queue while the socket drains; then send the requested close frame."""
        ws = self.ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                if ws.paused or not self._queue:
                    if not self._queue and not ws.paused:
                        self._wake_writable()
                        if self._close_request is not None and not self._close_now:
                            if ws.protocol.state is WsState.OPEN:
                                # Waits for the closing handshake (websockets aborts TCP after
                                # its close_timeout; our own timer covers a stuck drain).
                                await ws.close(*self._close_request)
                            return
                    self._writer_wakeup = loop.create_future()
                    await self._writer_wakeup
                    continue
                data, text = self._queue.popleft()
                self._queued_bytes -= len(data)
                self._in_flight = len(data)
                try:
                    await ws.send(data, text=text)
                finally:
                    self._in_flight = 0
        except WsConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("writing to %s failed", self.id)
            self._record(EventKind.ERROR, error=type(error).__name__, message=str(error))
            self.abort(f"writer failed: {error}")

    def _wake_writer(self) -> None:
        waiter = self._writer_wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writable(self) -> None:
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _writing_paused(self) -> None:
        self.stats.writes_paused += 1
        self._record(
            EventKind.BACKPRESSURE, paused=True, buffered=self.ws.transport.get_write_buffer_size()
        )

    def _writing_resumed(self) -> None:
        self._record(EventKind.BACKPRESSURE, paused=False, queued=len(self._queue))
        self._wake_writer()

    async def wait_writable(self) -> None:
        loop = asyncio.get_running_loop()
        while (self.ws.paused or self._queue or self._in_flight) and not self.closed:
            if self._writable is None or self._writable.done():
                self._writable = loop.create_future()
            self._wake_writer()
            await self._writable

    # -- ping --------------------------------------------------------------------------------------

    def _send_ping(self, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._ping(payload))
        self._ping_tasks.add(task)
        task.add_done_callback(self._ping_tasks.discard)

    async def _ping(self, payload: bytes) -> None:
        try:
            pong = await self.ws.ping(payload)
            await pong
        except WsConnectionClosed:
            return  # Connection._lost fails our future with the right error
        except Exception as error:  # e.g. a second ping with the same payload
            self._record(EventKind.ERROR, error=type(error).__name__, message=str(error))
            entry = self._pings.pop(payload, None)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(error)
            return
        if not self.closed:
            self._pong(payload)

    # -- closing -----------------------------------------------------------------------------------

    def _start_close(self, code: int, reason: str) -> None:
        ws = self.ws
        if self._close_request is not None or ws.protocol.state is not WsState.OPEN:
            return
        reason = _truncate_reason(reason)
        self._mark_local_close()
        self._close_request = (code, reason)
        self._close_out_recorded = True
        self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
        if code == CloseCode.TRY_AGAIN_LATER or ws.transport.is_closing():
            # The slow consumer's queue was dropped: the close frame goes out now.
            self._close_now = True
            ws.protocol.send_close(code, reason)
            ws.send_data()
        else:
            self._wake_writer()
        self._arm_close_timer("closing handshake timed out")

    def _arm_close_timer(self, reason: str) -> None:
        if self._close_timer is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.limits.close_timeout, self.abort, reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Close with ``code`` without waiting for the peer (dead peer 1011, flooding 1008...).

        The close frame is written at once (what is queued is dropped), TCP is closed after it,
        and aborted if the peer cannot even take that within ``close_timeout``.
        """
        ws = self.ws
        protocol = ws.protocol
        if protocol.state is WsState.OPEN:
            reason = _truncate_reason(reason)
            self._mark_local_close()
            self._close_request = (code, reason)
            self._close_now = True
            self._close_out_recorded = True
            self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
            self._queue.clear()
            self._queued_bytes = 0
            protocol.fail(code, reason)
            ws.send_data()
        if protocol.state is not WsState.CLOSED:
            ws.transport.close()
            self._arm_close_timer("peer did not take the close")

    def abort(self, reason: str = "aborted") -> None:
        if self.closed or self._transport_gone:
            return
        self._mark_local_close()
        self._record(EventKind.ERROR, error="abort", message=reason)
        self.ws.transport.abort()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until TCP is closed (aborting after ``timeout``) and this engine's tasks ended."""
        await super().wait_closed(timeout)
        await self._join()

    async def _join(self) -> None:
        """Wait for the reader, the writer and any ping task to finish (after TCP closed)."""
        tasks = {self._reader, self._writer, *self._ping_tasks}
        current = asyncio.current_task()
        tasks.discard(current)  # type: ignore[arg-type]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


# -- the server --------------------------------------------------------------------------------------


def _address(peer: Any) -> tuple[str, int] | None:
    return (peer[0], peer[1]) if peer else None


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
    as on the wslab engine. Create it with :func:`serve_websockets`.
    """

    engine: str = "websockets"
    _ws_server: Any = None
    #: TCP connections not handed to a handler yet (HTTP, handshake): dropped on close().
    _unwrapped: weakref.WeakSet[ServerConnection] = field(default_factory=weakref.WeakSet)

    async def _process_request(
        self, ws: ServerConnection, ws_request: WsRequest
    ) -> WsResponse | None:
        """websockets' request hook: admission, plain HTTP routes, handshake checks, hooks."""
        remote = _address(ws.remote_address)
        try:
            request = _to_request(ws_request)
        except HandshakeError as error:
            return self._refuse(error, remote)
        # Plain HTTP (/healthz, /metrics) is outside the WebSocket admission budget: monitoring
        # behind the same NAT as a busy crowd of clients must still get its answer.
        upgrading = handshake.is_upgrade_request(request)
        if upgrading and self.admission is not None and remote and not self.admission(remote[0]):
            self.record(EventKind.RATE_LIMIT, None, scope="address", address=remote[0])
            return _http_response(HttpResponse(429, b"too many connection attempts\n"))
        if not upgrading:
            try:
                response = await self.http_handler(request)
            except Exception:
                log.exception("HTTP handler failed for %s", request.path)
                response = HttpResponse(500, b"internal error\n")
            return _http_response(response)
        try:
            upgrade = handshake.validate_upgrade_request(request)
            context = await self.process_upgrade(upgrade, remote) if self.process_upgrade else None
        except HandshakeError as error:
            return self._refuse(error, remote)
        except Exception:
            log.exception("upgrade hook failed")
            return self._refuse(HandshakeError("internal error", status=500), remote)
        ws.wslab_upgrade = (upgrade, context)  # type: ignore[attr-defined]
        return None  # websockets sends the 101

    def _refuse(self, error: HandshakeError, remote: tuple[str, int] | None) -> WsResponse:
        self.refused(error, remote)
        self.record(
            EventKind.ERROR,
            None,
            error=type(error).__name__,
            status=error.status,
            message=error.message,
        )
        return _refusal(error)

    async def _accept(self, ws: ServerConnection) -> None:
        """websockets' connection handler: wrap the connection and run ours, as _Wire does."""
        task = asyncio.current_task()
        assert task is not None
        self._track(task)  # so that close() waits for it, and cancels it when it must
        self._unwrapped.discard(ws)
        upgrade, context = ws.wslab_upgrade or (None, None)  # type: ignore[attr-defined]
        connection = WebsocketsConnection(
            ws,
            "server",
            self.limits,
            event_log=self.event_log,
            remote=_address(ws.remote_address),
            path=upgrade.path if upgrade else "/",
            query=upgrade.query if upgrade else None,
            headers=upgrade.headers if upgrade else None,
            subprotocol=ws.subprotocol,
        )
        if context:
            connection.context.update(context)
        self._hold(connection)
        self.record(
            EventKind.CONNECT, connection.id, remote=str(connection.remote), path=connection.path
        )
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


async def serve_websockets(
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

    Same arguments and behaviour as :func:`wslab.infrastructure.transport.serve`.
    """
    limits = limits or ConnectionLimits()
    server = WebsocketsServer(
        handler=handler,
        limits=limits,
        process_upgrade=process_upgrade,
        admission=admission,
        event_log=event_log,
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
        **_websockets_limits(limits, server=True),
    )
    server._ws_server = ws_server
    ws_server.wslab_server = server  # lets our connection class find the server's bookkeeping
    server._server = ws_server.server
    server._scheme = "wss" if ssl is not None else "ws"
    return server


# -- the client ---------------------------------------------------------------------------------------


async def connect_websockets(
    url: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    subprotocols: Iterable[str] = (),
    limits: ConnectionLimits | None = None,
    event_log: EventLog | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    open_timeout: float = 10.0,
) -> WebsocketsConnection:
    """Open a WebSocket connection to ``url`` on websockets; same signature as ``transport.connect``.

    Errors are wslab's: a refused handshake raises :class:`InvalidHandshakeResponse` whose
    ``status`` is the server's, a timeout :class:`OperationTimeout`.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidUpgrade(f"not a WebSocket URL: {url!r}")
    limits = limits or ConnectionLimits()
    extra: dict[str, Any] = {}
    if parts.scheme == "wss":
        extra["ssl"] = True if ssl is None else ssl
    offered = list(subprotocols)
    started = time.monotonic()
    try:
        ws = await websockets_connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            subprotocols=offered or None,  # type: ignore[arg-type]
            additional_headers=list(headers) or None,
            user_agent_header=None,
            proxy=None,  # 127.0.0.1 in a notebook must not go through a system proxy
            open_timeout=open_timeout,
            create_connection=_ClientConnection,
            **_websockets_limits(limits, server=False),
            **extra,
        )
    except InvalidStatus as error:
        status = error.response.status_code
        raise InvalidHandshakeResponse(
            f"expected 101 Switching Protocols, got {status}", status=status
        ) from None
    except InvalidURI as error:
        raise InvalidUpgrade(str(error)) from None
    except InvalidHandshake as error:
        raise InvalidHandshakeResponse(str(error)) from error
    except (asyncio.TimeoutError, TimeoutError):
        raise OperationTimeout(f"opening handshake with {url} timed out") from None
    response = ws.response
    connection = WebsocketsConnection(
        ws,
        "client",
        limits,
        event_log=event_log,
        remote=_address(ws.remote_address),
        path=parts.path or "/",
        headers=Headers(response.headers.raw_items()) if response is not None else None,
        subprotocol=ws.subprotocol,
    )
    connection.stats.opened_at = started
    connection._record(EventKind.CONNECT, remote=str(connection.remote), path=connection.path)
    return connection
