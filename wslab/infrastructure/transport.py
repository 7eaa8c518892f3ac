"""The asyncio transport of wslab's own engine: a server and a client that drive the foundation.

``asyncio.Protocol`` callbacks (not streams) keep the per-frame cost low: bytes from the socket go
straight into :class:`wslab.foundation.Protocol`, and the frames it returns go straight to the
socket's transport. One TCP connection is one :class:`_Wire`: first it reads an HTTP head (with a
size limit and a deadline); a plain request is answered by the ``http_handler`` (pages,
``/healthz``, ``/metrics``); an upgrade request is validated, offered to ``process_upgrade``
(origin and auth checks, which may refuse it with an HTTP status), answered with 101, and from then
on the bytes belong to a :class:`WslabConnection` whose ``handler`` coroutine runs as a task.

Shutdown (:meth:`Server.close`) stops accepting, closes every connection with 1001, waits for the
handlers, and cancels those that do not finish in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wslab.foundation import deflate, handshake
from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.deflate import Deflater
from wslab.foundation.errors import (
    HandshakeError,
    InvalidHandshakeResponse,
    InvalidUpgrade,
    OperationTimeout,
    WslabError,
)
from wslab.foundation.frames import Frame, encode_frame
from wslab.foundation.http import (
    Headers,
    Request,
    RequestParser,
    ResponseParser,
    build_response,
    require_host,
)
from wslab.foundation.protocol import (
    BinaryReceived,
    CloseReceived,
    PongReceived,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
)
from wslab.foundation.state import ConnectionState, Transition

from .connection import Connection, ConnectionLimits, Message, Prepared, SlowConsumerPolicy
from .events import EventKind, EventLog
from .fairness import READ_SLICE, FrameBudget

__all__ = [
    "Handler",
    "HttpHandler",
    "HttpResponse",
    "Server",
    "UpgradeHook",
    "WslabConnection",
    "connect",
    "serve",
]

log = logging.getLogger("wslab.transport")


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
#: Called for each new TCP connection with the client's address; False refuses it (429).
AdmissionHook = Callable[[str], bool]


async def _default_http(request: Request) -> HttpResponse:
    return HttpResponse(
        426, b"this endpoint speaks WebSocket\n", headers=(("Upgrade", "websocket"),)
    )


# -- one WebSocket connection on wslab's engine -----------------------------------------------------


class WslabConnection(Connection):
    """A connection driven by :class:`wslab.foundation.Protocol` over an asyncio transport."""

    engine = "wslab"

    __slots__ = (
        "_aborted_locally",
        "_backlog",
        "_budget",
        "_budget_timer",
        "_close_timer",
        "_fail_timer",
        "_failing",
        "_holds",
        "_machine",
        "_paused",
        "_plain",
        "_protocol_stats",
        "_queue",
        "_queued_bytes",
        "_writable",
        "protocol",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        role: Role,
        limits: ConnectionLimits,
        *,
        event_log: EventLog | None = None,
        deflate_params: deflate.DeflateParams | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(role=role.value, limits=limits, event_log=event_log, **kwargs)
        self.transport = transport
        self.protocol = Protocol(
            role,
            max_frame_size=limits.frame_limit,
            max_message_size=limits.max_message_size,
            clock=self.clock,
            frame_observer=self._observe_frame if event_log is not None else None,
            transition_observer=self._observe_transition if event_log is not None else None,
            defer_failure=True,
            deflate=deflate_params,
            deflate_settings=limits.compression,
            max_fragments=limits.max_fragments,
        )
        # The fan-out's fast path (send_prepared) reads these without going through properties.
        self._machine = self.protocol.machine
        self._protocol_stats = self.protocol.stats
        self._plain = role is Role.SERVER and self.protocol.deflater is None
        rate = limits.max_frames_per_second
        self._budget = (
            FrameBudget(rate, limits.frame_burst or 2 * rate, limits.frame_flood_seconds)
            if rate is not None
            else None
        )
        self._backlog: memoryview | None = None  # received, not parsed yet (see data_received)
        self._holds: set[str] = set()  # why reading is paused: incoming, backlog, budget
        self._budget_timer: asyncio.TimerHandle | None = None
        self._failing = False  # a protocol violation waits for the application to catch up
        self._fail_timer: asyncio.TimerHandle | None = None
        # Created when the socket first pushes back, dropped once drained: most connections of a
        # hub never need one, and an empty deque is some 600 bytes per connection.
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._paused = False
        self._writable: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._aborted_locally = False
        transport.set_write_buffer_limits(high=limits.write_high, low=limits.write_low)

    # -- state -------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.protocol.state

    @property
    def close_code(self) -> int | None:
        if not self.closed and self.protocol.close_received is None:
            return None
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        received = self.protocol.close_received
        return received[1] if received else ""

    @property
    def closed_locally(self) -> bool:
        return self.protocol.closed_locally or self._aborted_locally

    @property
    def close_sent(self) -> tuple[int, str] | None:
        sent = self.protocol.close_sent
        if sent is None or sent[0] is None:
            return None
        return sent[0], sent[1]

    def frame_counts(self) -> tuple[int, int] | None:
        stats = self.protocol.stats
        return stats.frames_in, stats.frames_out

    @property
    def extensions(self) -> str | None:
        params = self.protocol.deflate
        return params.header() if params is not None else None

    @property
    def queue_depth(self) -> int:
        return len(self._queue) if self._queue else 0

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # -- incoming bytes ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: parse them, a slice per turn of the loop, and act on them.

        A read larger than :data:`READ_SLICE` is parsed in slices with a yield to the event loop
        between them (reading paused meanwhile), so one connection's big read of tiny frames
        cannot hold every other connection's turn.
        """
        self.stats.bytes_in += len(data)
        if self._backlog is not None:  # a read that raced the pause: parse it after the rest
            self._backlog = memoryview(bytes(self._backlog) + data)
            return
        self._consume(memoryview(data))

    def _consume(self, data: memoryview) -> None:
        if len(data) > READ_SLICE:
            self._backlog = data[READ_SLICE:]
            data = data[:READ_SLICE]
            self._hold_reading("backlog")
            asyncio.get_running_loop().call_soon(self._continue_backlog)
        self._feed(data)

    def _continue_backlog(self) -> None:
        backlog, self._backlog = self._backlog, None
        if backlog is None or self.closed or self.protocol.failure is not None:
            self._release_reading("backlog")
            return
        self._consume(backlog)
        if self._backlog is None:
            self._release_reading("backlog")

    def _feed(self, data: memoryview) -> None:
        """Run one slice through the protocol and act on the events it completes."""
        protocol = self.protocol
        frames_before = protocol.stats.frames_in
        failure = None
        for event in protocol.receive_data(data):
            kind = type(event)
            if kind is TextReceived:
                self._deliver(event.text)  # type: ignore[union-attr]
            elif kind is BinaryReceived:
                self._deliver(event.data)  # type: ignore[union-attr]
            elif kind is PongReceived:
                self._pong(event.payload)  # type: ignore[union-attr]
            elif kind is CloseReceived:
                self._record(EventKind.CLOSE, direction="in", code=event.code, reason=event.reason)  # type: ignore[union-attr]
            elif kind is ProtocolFailure:
                failure = event.error  # type: ignore[union-attr]
                self._record(
                    EventKind.ERROR,
                    error=type(failure).__name__,
                    message=failure.message,
                    close_code=int(failure.close_code),
                )
        automatic = protocol.data_to_send()  # pongs, the close echo
        if automatic:
            self._raw_write(automatic)
        if failure is not None:
            # Messages that arrived before the violation are still the application's to answer
            # (an echo server echoes them): the close goes out once it has taken them.
            if self._incoming:
                self._failing = True
                loop = asyncio.get_running_loop()
                self._fail_timer = loop.call_later(
                    self.limits.close_timeout, self._incoming_drained
                )
            else:
                self._failing = True
                self._incoming_drained()
        elif self._budget is not None and protocol.stats.frames_in > frames_before:
            self._charge(protocol.stats.frames_in - frames_before)
        if protocol.close_expected:
            self._finish_close()

    def _charge(self, frames: int) -> None:
        """Frames arrived: pay for them, pausing reading while in debt; close a flood."""
        assert self._budget is not None
        wait = self._budget.charge(frames)
        if not wait:
            return
        if self._budget.flooding():
            rate = self._budget.rate
            self._record(EventKind.RATE_LIMIT, verdict="close", frames=frames, limit=rate)
            self.fail(CloseCode.POLICY_VIOLATION, f"sustained flooding: over {rate:g} frames/s")
            return
        self._record(EventKind.RATE_LIMIT, verdict="pause", frames=frames, seconds=wait)
        self._hold_reading("budget")
        if self._budget_timer is None:
            self._budget_timer = asyncio.get_running_loop().call_later(wait, self._budget_paid)

    def _budget_paid(self) -> None:
        self._budget_timer = None
        self._release_reading("budget")

    def _incoming_drained(self) -> None:
        """Send the close for a pending protocol violation, then close TCP."""
        if not self._failing:
            return
        self._failing = False
        if self._fail_timer is not None:
            self._fail_timer.cancel()
        data = self.protocol.fail_pending()
        if not data:
            return
        code, reason = self.protocol.close_sent or (None, "")
        self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
        self._raw_write(data)
        self._finish_close()

    def _finish_close(self) -> None:
        """Both close frames crossed (or we failed): the server closes TCP, the client waits."""
        if self.protocol.role is Role.SERVER or self.protocol.failure is not None:
            self.transport.close()
        elif self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(
                self.limits.close_timeout, self.abort, "server kept TCP open"
            )

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is closed (by us, by the peer, or by the network)."""
        for timer in (self._close_timer, self._fail_timer, self._budget_timer):
            if timer is not None:
                timer.cancel()
        cause = self._why_closed(exc)
        protocol = self.protocol
        protocol.connection_lost(cause=cause)
        # Break the connection -> protocol -> bound-method cycle now, so the buffers of a closed
        # connection go back at once rather than when the cyclic garbage collector next runs.
        protocol.frame_observer = protocol.transition_observer = None
        protocol.release_buffers()
        self._backlog = None
        self._queue = None
        self._queued_bytes = 0
        self._wake_writer()
        self._lost(cause)

    def _why_closed(self, exc: Exception | None) -> str:
        """The cause recorded with the transition to CLOSED."""
        protocol = self.protocol
        sent, received = protocol.close_sent, protocol.close_received
        if sent is not None and received is not None:
            return "closing handshake complete"
        if protocol.failure is not None:
            return f"protocol violation by the peer ({sent[0] if sent else '-'} sent)"
        if sent is not None:
            return f"closed by this end ({sent[0]}); the peer sent no close frame"
        return "transport lost" if exc is None else f"transport error: {exc}"

    def _pause_reading(self) -> None:
        self._hold_reading("incoming")

    def _resume_reading(self) -> None:
        self._release_reading("incoming")

    def _hold_reading(self, reason: str) -> None:
        """Stop reading the socket for ``reason``; it resumes when no reason is left."""
        if not self._holds and not self.transport.is_closing():
            self.transport.pause_reading()
        self._holds.add(reason)

    def _release_reading(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- outgoing bytes ----------------------------------------------------------------------------

    def pause_writing(self) -> None:
        """The transport's buffer is over the high-water mark: queue instead of writing."""
        self._paused = True
        self.stats.writes_paused += 1
        self._record(
            EventKind.BACKPRESSURE, paused=True, buffered=self.transport.get_write_buffer_size()
        )

    def resume_writing(self) -> None:
        """The buffer drained below the low-water mark: flush the queue."""
        self._paused = False
        self._record(EventKind.BACKPRESSURE, paused=False, queued=self.queue_depth)
        queue = self._queue
        while queue and not self._paused:
            data = queue.popleft()
            self._queued_bytes -= len(data)
            self.transport.write(data)
        if not queue and not self._paused:
            self._queue = None  # drained: give the buffer back
            self._wake_writer()

    def _wake_writer(self) -> None:
        writable = self._writable
        if writable is not None and not writable.done():
            writable.set_result(None)

    async def wait_writable(self) -> None:
        while (self._paused or self._queue) and not self.closed:
            if self._writable is None or self._writable.done():
                self._writable = asyncio.get_running_loop().create_future()
            await self._writable

    def _raw_write(self, data: bytes) -> None:
        """Write bytes the protocol produced itself (pongs, close frames, our pings).

        They skip the slow-consumer policy (a close frame must never be dropped), but not the
        bound: a peer that floods pings and never reads would otherwise grow our queue of pongs
        forever. Past ``max_queue_bytes`` it is cut off.
        """
        if self.transport.is_closing():
            return
        if not (self._paused or self._queue):
            self.transport.write(data)
            return
        if self._queued_bytes + len(data) > self.limits.max_queue_bytes:
            self.stats.dropped_out += 1
            self._record(EventKind.SLOW_CONSUMER, policy="abort", queued=self.queue_depth)
            self.abort("control frames piled up: the peer sends but does not read")
            return
        self._enqueue(data)

    def _enqueue(self, data: bytes) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(data)
        self._queued_bytes += len(data)

    def _write_frame_bytes(self, data: bytes, size: int) -> None:
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
        if not self._paused and not self._queue:
            self.transport.write(data)
            return
        limits = self.limits
        if (
            self.queue_depth >= limits.max_queue
            or self._queued_bytes + len(data) > limits.max_queue_bytes
        ) and not self._overflow():
            self.stats.messages_out -= 1
            self.stats.bytes_out -= len(data)
            return
        self._enqueue(data)
        if self.queue_depth > self.stats.queue_peak:
            self.stats.queue_peak = self.queue_depth

    def _overflow(self) -> bool:
        """The outgoing queue is full. Returns True if the new message may still be queued."""
        policy = self.limits.slow_consumer_policy
        self.stats.dropped_out += 1
        self._record(EventKind.SLOW_CONSUMER, policy=policy.value, queued=self.queue_depth)
        if policy is SlowConsumerPolicy.DROP_OLDEST and self._queue:
            dropped = self._queue.popleft()
            self._queued_bytes -= len(dropped)
            return True
        if policy is SlowConsumerPolicy.CLOSE:
            # The peer is not reading, so it would not read a close frame either: drop what is
            # queued, send the close, and abort if the handshake does not finish in time.
            self._queue = None
            self._queued_bytes = 0
            self._start_close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outgoing queue overflowed")
        return False

    def _write_message(self, message: Message) -> None:
        if isinstance(message, str):
            data = self.protocol.send_text(message)
        else:
            data = self.protocol.send_binary(message)
        self._write_frame_bytes(data, len(message))

    def _write_prepared(self, prepared: Prepared) -> None:
        protocol = self.protocol
        if protocol.role is Role.CLIENT:  # masked frames cannot be shared
            self._write_message(prepared.data)
            return
        deflater = protocol.deflater
        inflated: int | None = None
        if deflater is not None and deflater.should_compress(len(prepared.payload)):
            if not deflater.no_context_takeover:
                # This connection's window remembers its own past messages: its compressed bytes
                # are its alone, so the protocol compresses the message for it.
                self._write_message(prepared.data)
                return
            key = (deflater.window_bits, deflater.level, deflater.mem_level)
            data = prepared.compressed(
                key, lambda payload: _encode_compressed(deflater, payload, prepared.data)
            )
            if data is None:  # too many parameter sets in one broadcast: compress for this one
                self._write_message(prepared.data)
                return
            inflated = prepared.payload_length
        else:
            data = prepared.wire(self._encode_unmasked)
        protocol.stats.messages_out += 1
        protocol.stats.frames_out += 1  # encoded once for many, but sent on this connection
        protocol.stats.bytes_out += len(data)
        self._write_frame_bytes(data, len(prepared.data))
        if self.events is not None and self.events.enabled_for(EventKind.FRAME_OUT):
            self._record_shared_frame(prepared, data, inflated)

    def _record_shared_frame(self, prepared: Prepared, data: bytes, inflated: int | None) -> None:
        frame = Frame(_opcode_of(prepared.data), b"", True, rsv1=inflated is not None)
        header = 2 + {126: 2, 127: 8}.get(data[1] & 0x7F, 0)  # 7-, 16- or 64-bit length
        self._observe_frame("out", frame, inflated, len(data) - header)

    def send_prepared(self, prepared: Prepared) -> bool:
        """The fan-out's step for one recipient, kept to the write itself where it can be.

        A server connection without compression writes the broadcast's shared frame bytes as
        they are: no encoding, no allocation, a few counters. Anything else (a client's masked
        frames, deflate, a paused socket) takes the general path.
        """
        if self._machine.state is not _OPEN:
            return False
        if not self._plain or self._paused or self._queue:
            return super().send_prepared(prepared)
        data = prepared.wire(self._encode_unmasked)
        size = len(data)
        counted = self._protocol_stats
        counted.messages_out += 1
        counted.frames_out += 1
        counted.bytes_out += size
        stats = self.stats
        stats.messages_out += 1
        stats.bytes_out += size
        self.transport.write(data)
        events = self.events
        if events is not None and events.enabled_for(EventKind.FRAME_OUT):
            self._record_shared_frame(prepared, data, None)
        return True

    @staticmethod
    def _encode_unmasked(message: Message) -> tuple[bytes, int]:
        payload = message.encode() if isinstance(message, str) else message
        return encode_frame(Frame(_opcode_of(message), payload)), len(payload)

    def _send_ping(self, payload: bytes) -> None:
        self._raw_write(self.protocol.send_ping(payload))

    def _start_close(self, code: int, reason: str) -> None:
        data = self.protocol.send_close(code, reason)
        if not data:
            return
        self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
        if code == CloseCode.TRY_AGAIN_LATER or self.transport.is_closing():
            self.transport.write(data)  # the slow consumer's queue was dropped
        else:
            self._raw_write(data)
        loop = asyncio.get_running_loop()
        if self._close_timer is None:
            self._close_timer = loop.call_later(
                self.limits.close_timeout, self.abort, "closing handshake timed out"
            )

    def fail(self, code: int, reason: str = "") -> None:
        """Close with ``code`` without waiting for the peer (dead peer 1011, flooding 1008...).

        The close frame is written and TCP closed after it; a peer too dead to take even that
        is aborted when ``close_timeout`` expires.
        """
        data = self.protocol.fail(code, reason)
        if data:
            self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
            self._queue = None
            self._queued_bytes = 0
            if not self.transport.is_closing():
                self.transport.write(data)
        self.transport.close()
        if self._close_timer is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(
                self.limits.close_timeout, self.abort, "peer did not take the close"
            )

    def abort(self, reason: str = "aborted") -> None:
        if self.closed:
            return
        if self.protocol.state is ConnectionState.OPEN:
            self._aborted_locally = True  # no close frame either way: this end ended it
        self._record(EventKind.ERROR, error="abort", message=reason)
        self.transport.abort()

    # -- observability -----------------------------------------------------------------------------

    def _observe_frame(
        self,
        direction: str,
        frame: Frame,
        inflated: int | None = None,
        length: int | None = None,
    ) -> None:
        kind = EventKind.FRAME_IN if direction == "in" else EventKind.FRAME_OUT
        log = self.events
        if log is not None and log.enabled_for(kind):
            log.record(
                kind,
                self.id,
                opcode=frame.opcode.name,
                fin=frame.fin,
                rsv=(frame.rsv1 << 2) | (frame.rsv2 << 1) | frame.rsv3,
                masked=frame.masked,
                length=len(frame.payload) if length is None else length,
                inflated=inflated,
            )

    def _observe_transition(self, record: Transition) -> None:
        self._record(
            EventKind.TRANSITION, old=record.old.name, new=record.new.name, cause=record.cause
        )


_OPEN = ConnectionState.OPEN


def _encode_compressed(deflater: Deflater, payload: bytes, message: Message) -> bytes:
    """A whole message compressed by a context-free ``deflater``, as one unmasked RSV1 frame."""
    return encode_frame(Frame(_opcode_of(message), deflater.compress(payload), True, rsv1=True))


def _opcode_of(message: Message) -> Opcode:
    return Opcode.TEXT if isinstance(message, str) else Opcode.BINARY


# -- the TCP connection before and after the upgrade ------------------------------------------------


class _ForwardsFlowControl(asyncio.Protocol):
    """The transport's pause/resume-writing signals go to the connection once there is one."""

    connection: WslabConnection | None = None

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.connection.pause_writing()

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.resume_writing()


_NO_PARSER = RequestParser()  # what an upgraded _Wire holds instead of its own parser


class _Wire(_ForwardsFlowControl):
    """One accepted TCP connection: HTTP until the upgrade, then a :class:`WslabConnection`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser()
        self.connection: WslabConnection | None = None
        self.remote: tuple[str, int] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._http_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = (peer[0], peer[1]) if peer else None
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(
            self.server.limits.handshake_timeout, self._handshake_timeout
        )

    def _admit(self) -> bool:
        """Ask the admission hook about an upgrade; answer 429 and close if it says no.

        Asked once the head shows an upgrade, not on TCP accept: plain HTTP (``/healthz``,
        ``/metrics``) is outside the WebSocket admission budget, so monitoring behind the same
        NAT as a crowd of clients still gets its answer.
        """
        server = self.server
        if server.admission is None or not self.remote or server.admission(self.remote[0]):
            return True
        assert self.transport is not None
        server.record(EventKind.RATE_LIMIT, None, scope="address", address=self.remote[0])
        self.transport.write(HttpResponse(429, b"too many connection attempts\n").encode())
        self.transport.close()
        return False

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
        if handshake.is_upgrade_request(request):
            if not self._admit():
                return
            self._http_task = asyncio.ensure_future(self._upgrade(request, self.parser.leftover))
        else:
            self._http_task = asyncio.ensure_future(self._answer_http(request))
        self.server._track(self._http_task)

    def _refuse(self, error: HandshakeError) -> None:
        assert self.transport is not None
        self.server.refused(error, self.remote)
        self.server.record(
            EventKind.ERROR,
            None,
            error=type(error).__name__,
            status=error.status,
            message=error.message,
        )
        self.transport.write(handshake.reject(error))
        self.transport.close()

    async def _answer_http(self, request: Request) -> None:
        assert self.transport is not None
        try:
            response = await self.server.http_handler(request)
        except Exception:
            log.exception("HTTP handler failed for %s", request.path)
            response = HttpResponse(500, b"internal error\n")
        if not self.transport.is_closing():
            self.transport.write(response.encode(head=request.method == "HEAD"))
            self.transport.close()

    async def _upgrade(self, request: Request, leftover: bytes) -> None:
        transport = self.transport
        assert transport is not None
        server = self.server
        try:
            upgrade = handshake.validate_upgrade_request(request)
            context = (
                await server.process_upgrade(upgrade, self.remote)
                if server.process_upgrade
                else None
            )
        except HandshakeError as error:
            self._refuse(error)
            return
        except Exception:
            log.exception("upgrade hook failed")
            self._refuse(HandshakeError("internal error", status=500))
            return
        if transport.is_closing():
            return
        if self._deadline is not None:
            self._deadline.cancel()
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


@dataclass
class Server:
    """A listening WebSocket server on wslab's engine. Create it with :func:`serve`."""

    handler: Handler
    limits: ConnectionLimits
    http_handler: HttpHandler = _default_http
    process_upgrade: UpgradeHook | None = None
    admission: AdmissionHook | None = None
    event_log: EventLog | None = None
    on_connection_error: Callable[[Connection, BaseException], None] | None = None
    #: Called with each upgrade request refused with an HTTP status (and the client's address).
    on_refused: Callable[[HandshakeError, tuple[str, int] | None], None] | None = None
    engine: str = "wslab"
    connections: dict[str, Connection] = field(default_factory=dict)
    #: Open connections per client address (kept with ``connections``): the per-IP cap asks
    #: this on every upgrade, so it must not count by walking every connection.
    per_address: dict[str, int] = field(default_factory=dict)
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _scheme: str = "ws"
    _closing: bool = False

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
        """Record a server-level event in the event log, if there is one."""
        if self.event_log is not None and self.event_log.enabled_for(kind):
            self.event_log.record(kind, connection_id, **fields)

    def refused(self, error: HandshakeError, remote: tuple[str, int] | None) -> None:
        """An upgrade request is being refused with ``error.status``: tell ``on_refused``."""
        if self.on_refused is not None:
            self.on_refused(error, remote)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def held_by(self, address: str) -> int:
        """How many open connections come from ``address`` (O(1))."""
        return self.per_address.get(address, 0)

    def _hold(self, connection: Connection) -> None:
        """Register an open connection (and count it against its address)."""
        self.connections[connection.id] = connection
        if connection.remote:
            address = connection.remote[0]
            self.per_address[address] = self.per_address.get(address, 0) + 1

    def _release(self, connection: Connection) -> None:
        if self.connections.pop(connection.id, None) is None or not connection.remote:
            return
        address = connection.remote[0]
        left = self.per_address.get(address, 0) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)  # bounded by the addresses connected now

    def _opened(self, connection: Connection) -> None:
        self._hold(connection)
        self.record(
            EventKind.CONNECT, connection.id, remote=str(connection.remote), path=connection.path
        )
        self._track(asyncio.ensure_future(self._run_handler(connection)))

    async def _run_handler(self, connection: Connection) -> None:
        try:
            await self.handler(connection)
        except asyncio.CancelledError:
            connection.abort("handler cancelled")
            raise
        except Exception as error:
            # The handler's failure ends this connection only (1011), never the server.
            log.exception("connection handler failed for %s", connection.id)
            self.record(
                EventKind.ERROR, connection.id, error=type(error).__name__, message=str(error)
            )
            if self.on_connection_error is not None:
                self.on_connection_error(connection, error)
            await connection.close(CloseCode.INTERNAL_ERROR, "internal error")
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
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for connection in list(self.connections.values()):
            connection.abort("server closed")
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


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
) -> Server:
    """Listen on ``host:port`` and run ``handler(connection)`` for each WebSocket connection."""
    server = Server(
        handler=handler,
        limits=limits or ConnectionLimits(),
        http_handler=http_handler or _default_http,
        process_upgrade=process_upgrade,
        admission=admission,
        event_log=event_log,
    )
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(
        lambda: _Wire(server), host, port, ssl=ssl, backlog=backlog
    )
    server._scheme = "wss" if ssl is not None else "ws"
    return server


# -- the client --------------------------------------------------------------------------------------


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
        self.transport = transport  # type: ignore[assignment]

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
