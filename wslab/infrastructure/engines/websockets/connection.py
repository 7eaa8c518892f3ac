"""One connection on the ``websockets`` engine: :class:`WebsocketsConnection`.

A reader task moves messages from ``websockets`` into the bounded incoming queue; a writer task
flushes the bounded outgoing queue (shared with wslab's engine, in
:class:`~wslab.infrastructure.connection.Connection`) as the socket drains. ``websockets``'
own connection classes get small hooks (:class:`_Hooks`) that tell ours what asyncio says.
The package docstring (:mod:`wslab.infrastructure.engines.websockets`) lists what is and is not
observable on this engine.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.connection import Connection as WsConnection
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.extensions.base import ClientExtensionFactory, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.protocol import State as WsState

from wslab.foundation import handshake
from wslab.foundation.codes import CloseCode
from wslab.foundation.deflate import DeflateSettings
from wslab.foundation.frames import truncate_close_reason
from wslab.foundation.state import ConnectionState
from wslab.infrastructure.connection import Connection, ConnectionLimits, Message
from wslab.infrastructure.events import EventKind, EventLog

__all__ = ["WebsocketsConnection"]

log = logging.getLogger("wslab.websockets_engine")

_STATES = {
    WsState.CONNECTING: ConnectionState.CONNECTING,
    WsState.OPEN: ConnectionState.OPEN,
    WsState.CLOSING: ConnectionState.CLOSING,
    WsState.CLOSED: ConnectionState.CLOSED,
}


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
        factories: list[ServerExtensionFactory] = [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=reset,
                client_no_context_takeover=reset,
                server_max_window_bits=bits,
                client_max_window_bits=bits,
                compress_settings=zlib_settings,
            )
        ]
        return factories
    offers: list[ClientExtensionFactory] = [
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=reset,
            client_no_context_takeover=reset,
            server_max_window_bits=bits,
            client_max_window_bits=bits or True,
            compress_settings=zlib_settings,
        )
    ]
    return offers


def websockets_limits(limits: ConnectionLimits, *, server: bool) -> dict[str, Any]:
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


if TYPE_CHECKING:
    # What _Hooks is mixed into, so that its super() calls are checked against the library's.
    _HooksBase = WsConnection
else:
    _HooksBase = object


class _Hooks(_HooksBase):
    """Mixed into ``websockets``' connection classes: tells our connection what asyncio says.

    ``websockets`` documents ``create_connection`` as the way to customise its connections; we
    only observe (bytes received, flow control, TCP closed) and always call the library first.
    """

    wslab_connection: WebsocketsConnection | None = None
    #: Set by the server's request hook: the validated upgrade and the context to attach.
    wslab_upgrade: tuple[handshake.Upgrade, dict[str, Any] | None] | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.wslab_connection is not None:
            self.wslab_connection._after_data(len(data))

    def send_data(self) -> None:
        super().send_data()
        if self.wslab_connection is not None:
            # A close frame websockets sent by itself (a protocol failure) is logged at once.
            self.wslab_connection._sync_close_frames()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.wslab_connection is not None:
            self.wslab_connection._writing_paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.wslab_connection is not None:
            self.wslab_connection._writing_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.wslab_connection is not None:
            self.wslab_connection._transport_lost(exc)


# -- one connection ----------------------------------------------------------------------------


class WebsocketsConnection(Connection):
    """A :class:`Connection` whose I/O is done by a ``websockets`` connection (``self.ws``)."""

    engine = "websockets"

    def __init__(
        self,
        ws: _Hooks,
        role: str,
        limits: ConnectionLimits,
        *,
        event_log: EventLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(role=role, limits=limits, event_log=event_log, **kwargs)
        self.ws = ws
        # Outgoing messages wait in Connection._queue as (payload, is_text) pairs.
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
        ws.wslab_connection = self
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
        self._drop_queue()
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
        if not self._queue_outgoing((data, text), len(data)):
            self.stats.messages_out -= 1
            self.stats.bytes_out -= len(data)
            return
        self._wake_writer()

    async def _write_loop(self) -> None:
        """Flush the queue while the socket drains; then send the requested close frame."""
        ws = self.ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                queue = self._queue
                if ws.paused or not queue:
                    if not queue and not ws.paused:
                        self._drop_queue()  # drained: give the buffer back
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
                data, text = queue.popleft()
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
        self._record(EventKind.BACKPRESSURE, paused=False, queued=self.queue_depth)
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
            entry = self._pings.pop(payload, None) if self._pings else None
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
        reason = truncate_close_reason(reason)
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
            reason = truncate_close_reason(reason)
            self._mark_local_close()
            self._close_request = (code, reason)
            self._close_now = True
            self._close_out_recorded = True
            self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
            self._drop_queue()
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
        tasks.discard(current)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


# -- the server --------------------------------------------------------------------------------------


def address(peer: Any) -> tuple[str, int] | None:
    """A peer address as ``(host, port)`` (``None`` if unknown)."""
    return (peer[0], peer[1]) if peer else None
