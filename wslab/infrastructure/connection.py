"""``Connection``: one WebSocket connection as the layers above see it, whatever the engine.

A connection has two bounded queues and a small set of verbs:

- **incoming** — complete messages waiting for ``recv()`` / ``async for``. At ``max_incoming``
  the transport stops reading from the socket (TCP pushes back on the peer) until the queue
  drains to half.
- **outgoing** — frames waiting for the socket while the transport's write buffer is over its
  high-water mark (``pause_writing``). ``send_nowait()`` never waits: when the queue is full the
  *slow-consumer policy* decides — ``"close"`` (default: close with 1013, try again later),
  ``"drop_oldest"`` or ``"drop_new"`` (dropped messages are counted). So one slow client can
  neither stall a broadcast nor grow memory without bound. ``await send()`` is the flow-controlled
  variant for a single producer: it waits until the socket has drained.

A handler that is done waiting may instead **hand the connection over** to a
:class:`MessageConsumer` (:meth:`Connection.hand_over`): the server then runs a task only while
there are messages to handle, so an idle connection holds no task and no coroutine frames (the
hub's authenticated connections). The incoming queue, its bound and the order stay the same.

The two engines — wslab's own (:mod:`wslab.infrastructure.engines.wslab`) and the
``websockets`` library (:mod:`wslab.infrastructure.engines.websockets`) — subclass this and
provide the I/O. The outgoing queue (:class:`~wslab.infrastructure.outgoing.OutgoingQueue`) and
the slow-consumer policy at its bound live here, once for both; the limits and counters
(:mod:`wslab.infrastructure.connection_limits`) are re-exported from here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wslab.foundation.codes import CloseCode
from wslab.foundation.errors import (
    ConnectionBroken,
    ConnectionClosed,
    ConnectionClosedLocally,
)
from wslab.foundation.http import Headers
from wslab.foundation.state import ConnectionState

from .connection_limits import MAX_RTTS, ConnectionLimits, ConnectionStats, SlowConsumerPolicy
from .events import NULL_EVENT_LOG, EventKind, EventLog
from .outgoing import OutgoingQueue

__all__ = [
    "Connection",
    "ConnectionLimits",
    "ConnectionStats",
    "MessageConsumer",
    "Prepared",
    "SlowConsumerPolicy",
    "new_connection_id",
]

Message = str | bytes

log = logging.getLogger("wslab.connection")

_ids = itertools.count(1)
_ping_payloads = itertools.count()


def new_connection_id() -> str:
    """A short id, unique in this process, that reads well in logs and DataFrames."""
    return f"c{next(_ids)}"


#: Distinct compressed forms one broadcast keeps (one per deflate parameter set in use); past
#: it, a connection with yet another set compresses the message for itself.
MAX_SHARED_COMPRESSIONS = 8

CompressionKey = tuple[int, int, int]  # (window bits, level, memLevel)


@dataclass
class Prepared:
    """A message encoded once for many receivers (``ConnectionManager.broadcast``).

    A server's frames are not masked, so the bytes of one message are the same for every
    connection of the wslab engine: they are computed on first use and shared. The same holds for
    the *compressed* frame among connections that negotiated permessage-deflate without context
    takeover and with the same parameters: deflate is deterministic and each message starts from
    an empty window, so the message is compressed once per such group (:meth:`compressed`).
    """

    data: Message
    #: The frame bytes once :meth:`wire` has encoded them (None before): read as is by the
    #: fan-out for every recipient after the first.
    frame: bytes | None = None
    _payload: bytes | None = None
    _compressed: dict[CompressionKey, bytes] = field(default_factory=dict)
    #: How many times the message was encoded: 1 however many connections it went to.
    encodes: int = 0
    #: How many times it was compressed for a group of context-free connections.
    compressions: int = 0
    #: The payload's length in bytes, known once encoded (the frame adds its header).
    payload_length: int = 0

    @property
    def payload(self) -> bytes:
        """The message as bytes (text encoded as UTF-8), computed once."""
        if self._payload is None:
            data = self.data
            self._payload = data.encode() if isinstance(data, str) else bytes(data)
            self.payload_length = len(self._payload)
        return self._payload

    def wire(self, encode: Callable[[Message], tuple[bytes, int]]) -> bytes:
        """The frame bytes, encoded on the first call only."""
        if self.frame is None:
            self.frame, self.payload_length = encode(self.data)
            self.encodes += 1
        return self.frame

    def compressed(
        self, key: CompressionKey, encode: Callable[[bytes], bytes]
    ) -> bytes | None:
        """The compressed frame for connections sharing ``key``, encoded once per key.

        ``None`` when :data:`MAX_SHARED_COMPRESSIONS` forms are already kept: the caller then
        compresses for its connection alone.
        """
        wire = self._compressed.get(key)
        if wire is None:
            if len(self._compressed) >= MAX_SHARED_COMPRESSIONS:
                return None
            wire = self._compressed[key] = encode(self.payload)
            self.compressions += 1
        return wire


class _ReleasedHeaders(Headers):
    """What a connection holds once its upgrade request's headers are released: none, for good."""

    __slots__ = ()

    def add(self, name: str, value: str) -> None:
        raise TypeError("this connection's upgrade headers were released")


_RELEASED_HEADERS = _ReleasedHeaders()
#: Shared by every connection whose upgrade was released; nothing writes a connection's query.
_RELEASED_QUERY: dict[str, list[str]] = {}


class MessageConsumer(Protocol):
    """What takes over a connection's messages from its handler (:meth:`Connection.hand_over`).

    An idle connection then costs no task and no coroutine frames: a task runs only while there
    are messages to handle, and calls these in order, one message at a time.
    """

    def resumed(self, connection: Connection) -> None:
        """A task starts handling messages again (set up its log context, for instance)."""

    async def message(self, connection: Connection, message: Message) -> bool:
        """Handle one message; False stops the handling (the connection is closing)."""
        ...

    async def finished(self, connection: Connection) -> None:
        """The last message is handled and the connection closed (or the handling stopped)."""


class ConsumerHost(Protocol):
    """What runs the handling task of a handed-over connection: its server."""

    def _consume_soon(self, connection: Connection) -> None: ...


class Connection:
    """The engine-independent part of a connection: identity, queues, stats, waiting.

    Subclasses implement :meth:`_write_message`, :meth:`_write_prepared`, :meth:`_start_close`,
    :meth:`_send_ping`, :meth:`abort` and report what happens through :meth:`_deliver`,
    :meth:`_pong`, :meth:`_lost`.
    """

    engine: str = "abstract"

    # Slots: thousands of mostly idle connections each save the instance dict (over a KiB with
    # this many attributes). ``__dict__`` stays available, created only if something sets an
    # attribute of its own (a test's instrumentation, a subclass without slots).
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_close_callbacks",
        "_close_error",
        "_closed",
        "_consumer",
        "_consuming",
        "_host",
        "_incoming",
        "_incoming_waiter",
        "_pings",
        "_queue",
        "_reading_paused",
        "clock",
        "context",
        "events",
        "headers",
        "id",
        "limits",
        "path",
        "query",
        "remote",
        "role",
        "stats",
        "subprotocol",
    )

    def __init__(
        self,
        *,
        role: str,
        limits: ConnectionLimits,
        remote: tuple[str, int] | None = None,
        path: str = "/",
        query: dict[str, list[str]] | None = None,
        headers: Headers | None = None,
        subprotocol: str | None = None,
        event_log: EventLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        connection_id: str | None = None,
    ) -> None:
        self.id = connection_id or new_connection_id()
        self.role = role
        self.limits = limits
        self.remote = remote
        self.path = path
        self.query = query or {}
        self.headers = headers or Headers()
        self.subprotocol = subprotocol
        #: The event log (a null one that records nothing when none is given).
        self.events = event_log if event_log is not None else NULL_EVENT_LOG
        self.clock = clock
        self.stats = ConnectionStats(opened_at=clock())
        #: Free slot for the layers above (identity, rooms...): the transport never reads it.
        self.context: dict[str, Any] = {}
        # Received messages waiting for recv(): a deque only while there are any to hold (an idle
        # connection needs none, and an empty deque is some 600 bytes).
        self._incoming: deque[Message] | None = None
        self._incoming_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._closed = asyncio.get_running_loop().create_future()
        self._close_error: ConnectionClosed | None = None
        # Pings waiting for their pong: a dict only while there are any (most of the time an
        # idle connection has none, and a dict that once held some keeps its table).
        self._pings: dict[bytes, tuple[float, asyncio.Future[float]]] | None = None
        self._close_callbacks: list[tuple[Callable[..., object], tuple[Any, ...]]] | None = None
        #: Outgoing messages waiting for the socket; what each engine's writer needs, sized.
        #: Created when the socket first pushes back (:meth:`_outgoing`) and dropped once
        #: drained: most connections of a hub never need one, and an empty queue is over a KiB.
        self._queue: OutgoingQueue[Any] | None = None
        #: Once the handler has handed the connection over: what handles its messages.
        self._consumer: MessageConsumer | None = None
        #: Whether a task is handling this connection's messages now (see hand_over).
        self._consuming = False
        #: The server that runs the handling tasks (set when a server lists the connection).
        self._host: ConsumerHost | None = None

    def release_upgrade(self) -> None:
        """Forget the upgrade request's headers and query once they have served (authentication).

        A connection held for hours would otherwise keep them all that time — over a KiB for a
        browser's request, more than the rest of an idle connection's own state. ``path``,
        ``remote``, ``subprotocol`` and ``extensions`` stay.
        """
        self.headers = _RELEASED_HEADERS
        self.query = _RELEASED_QUERY

    # -- what the engines implement ----------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        raise NotImplementedError

    def _write_message(self, message: Message) -> None:
        """Encode and write (or queue) one message; apply the slow-consumer policy."""
        raise NotImplementedError

    def _write_prepared(self, prepared: Prepared) -> None:
        """Write (or queue) a message encoded once for many connections."""
        self._write_message(prepared.data)

    def _send_ping(self, payload: bytes) -> None:
        raise NotImplementedError

    def _start_close(self, code: int, reason: str) -> None:
        """Send the close frame (after what is queued) and arrange for TCP to close."""
        raise NotImplementedError

    def abort(self, reason: str = "aborted") -> None:
        """Drop the TCP connection now, without a closing handshake."""
        raise NotImplementedError

    def fail(self, code: int, reason: str = "") -> None:
        """Close with ``code`` without waiting for the peer's answer, and stop reading.

        For verdicts on the peer (a dead heartbeat 1011, flooding 1008): the close frame is sent
        if it can be, TCP is closed after it, and aborted if the peer cannot even take that.
        """
        raise NotImplementedError

    @property
    def queue_depth(self) -> int:
        """Outgoing messages waiting for the socket."""
        queue = self._queue
        return len(queue) if queue is not None else 0

    @property
    def queued_bytes(self) -> int:
        """Bytes of the outgoing messages waiting for the socket (at most ``max_queue_bytes``)."""
        queue = self._queue
        return queue.nbytes if queue is not None else 0

    @property
    def close_code(self) -> int | None:
        """The close code received from the peer (1006 if none), once closed; else ``None``."""
        raise NotImplementedError

    @property
    def close_reason(self) -> str:
        """The reason that came with the peer's close frame."""
        return ""

    @property
    def closed_locally(self) -> bool:
        """True if this end started the close."""
        raise NotImplementedError

    @property
    def close_sent(self) -> tuple[int, str] | None:
        """The code and reason of the close frame this end sent, once sent; else ``None``."""
        return None

    def frame_counts(self) -> tuple[int, int] | None:
        """Frames received and sent so far, on engines that see frames (``None`` otherwise)."""
        return None

    async def wait_writable(self) -> None:
        """Wait until the socket accepts more data (flow control for a single producer)."""

    # -- receiving ---------------------------------------------------------------------------------

    async def recv(self) -> Message:
        """The next message; raises ``ConnectionClosed`` once the connection has ended."""
        while not self._incoming:
            if self._closed.done():
                raise self._closed_error()
            self._incoming_drained()
            waiter = self._incoming_waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._incoming_waiter = None
        return self._take(self._incoming)

    def _take(self, incoming: deque[Message]) -> Message:
        """The oldest received message, out of the (non-empty) incoming queue."""
        message = incoming.popleft()
        if not incoming:
            self._incoming = None
        if self._reading_paused and len(incoming) <= self.limits.max_incoming // 2:
            self._reading_paused = False
            self._resume_reading()
        return message

    def next_message(self) -> Message | None:
        """The next received message without waiting (``None``: none yet, or never again).

        For a :class:`MessageConsumer`'s host; everyone else awaits :meth:`recv`.
        """
        incoming = self._incoming
        if not incoming:
            return None
        return self._take(incoming)

    def hand_over(self, consumer: MessageConsumer) -> bool:
        """From now on, ``consumer`` handles this connection's messages instead of :meth:`recv`.

        For a handler about to return while the connection stays open: thousands of idle
        connections then hold no task and no coroutine frames. Each message that arrives starts
        (if none is running) a task on the server that hands the queued messages to
        ``consumer.message`` one at a time, in order, and ends once they are handled; the
        incoming queue's bound and the pause of reading at it stay as with ``recv()``. After the
        close, ``consumer.finished`` runs once. False (nothing changed) where the connection has
        no server to run those tasks (a client's connection): keep calling ``recv()`` then.
        """
        if self._host is None or self._consumer is not None:
            return False
        self._consumer = consumer
        if self._incoming or self._closed.done():
            self._wake_consumer()
        return True

    @property
    def handed_over(self) -> bool:
        """True once :meth:`hand_over` succeeded (until the consumer has finished)."""
        return self._consumer is not None

    def _wake_consumer(self) -> None:
        if not self._consuming and self._host is not None:
            self._consuming = True
            self._host._consume_soon(self)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        """Messages until the connection closes (then the loop simply ends)."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    def _deliver(self, message: Message) -> None:
        """An engine received a complete message."""
        self.stats.messages_in += 1
        incoming = self._incoming
        if incoming is None:
            incoming = self._incoming = deque()
        incoming.append(message)
        if len(incoming) >= self.limits.max_incoming and not self._reading_paused:
            self._reading_paused = True
            self._pause_reading()
        if self._consumer is not None:
            if not self._consuming:
                self._wake_consumer()
            return
        waiter = self._incoming_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _incoming_drained(self) -> None:
        """The application has taken every received message (engines finish a deferred close)."""

    def _pause_reading(self) -> None:
        """Stop reading from the socket (the incoming queue is full)."""

    def _resume_reading(self) -> None:
        """Read from the socket again."""

    # -- sending -----------------------------------------------------------------------------------

    def send_nowait(self, message: Message) -> bool:
        """Send without waiting. False if the connection is not open or the message was dropped."""
        if not self._can_send():
            return False
        before = self.stats.dropped_out
        self._write_message(message)
        return self.stats.dropped_out == before

    def send_prepared(self, prepared: Prepared) -> bool:
        """Send a message encoded once for many connections (see :class:`Prepared`)."""
        if not self._can_send():
            return False
        before = self.stats.dropped_out
        self._write_prepared(prepared)
        return self.stats.dropped_out == before

    def cork(self) -> None:
        """Hold what is written from now on until :meth:`uncork` writes it in one go.

        For a handler writing several frames in a row (a sender's own copy of its message, then
        the ack): one socket write instead of one each. Bounded, ended by a close; order and the
        slow-consumer policy are unchanged. An engine that cannot hold writes leaves this a no-op
        (the ``websockets`` engine): the frames then go out one by one, as before.
        """

    def uncork(self) -> None:
        """Write what :meth:`cork` held and write straight away again (a no-op if not corked)."""

    async def send(self, message: Message) -> None:
        """Send, waiting while the peer reads slower than we write. Raises if closed."""
        if not self._can_send():
            raise self._closed_error()
        await self.wait_writable()
        if not self._can_send():
            raise self._closed_error()
        self._write_message(message)

    def _can_send(self) -> bool:
        return self.state is ConnectionState.OPEN

    def _queue_outgoing(self, item: object, size: int) -> bool:
        """Queue ``item`` (``size`` bytes) for the socket; at the bound, apply the policy.

        Returns False if the item was not queued (dropped, or the connection is closing).
        """
        queue = self._outgoing()
        if not queue.fits(size) and not self._overflow():
            return False
        queue.append(item, size)
        if len(queue) > self.stats.queue_peak:
            self.stats.queue_peak = len(queue)
        return True

    def _outgoing(self) -> OutgoingQueue[Any]:
        """The outgoing queue, created on first use."""
        queue = self._queue
        if queue is None:
            limits = self.limits
            queue = self._queue = OutgoingQueue(limits.max_queue, limits.max_queue_bytes)
        return queue

    def _drop_queue(self) -> None:
        """Forget everything queued and give the queue back (drained, closed or cut off)."""
        self._queue = None

    def _overflow(self) -> bool:
        """The outgoing queue is full. Returns True if the new message may still be queued."""
        policy = self.limits.slow_consumer_policy
        self.stats.dropped_out += 1
        self._record(EventKind.SLOW_CONSUMER, policy=policy.value, queued=self.queue_depth)
        if policy is SlowConsumerPolicy.DROP_OLDEST and self._queue:
            self._queue.popleft()
            return True
        if policy is SlowConsumerPolicy.CLOSE:
            # The peer is not reading, so it would not read what is queued either: drop it,
            # send the close now, and abort if the handshake does not finish in time.
            self._drop_queue()
            self._start_close(CloseCode.TRY_AGAIN_LATER, "slow consumer: outgoing queue overflowed")
        return False

    # -- ping / pong -------------------------------------------------------------------------------

    def ping(self, payload: bytes | None = None) -> asyncio.Future[float]:
        """Send a ping; the future resolves to the round-trip time in seconds when the pong comes.

        A pong answers its own ping and every earlier one still waiting (RFC 6455 5.5.3 allows a
        peer to answer only the latest). At most ``max_pending_pings`` wait at once; the oldest
        is cancelled beyond that.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        if not self._can_send():
            future.set_exception(self._closed_error())
            return future
        if payload is None:
            # One counter for the process: payloads need only tell this connection's pings
            # apart, and a counter per connection is one more object each of them holds.
            payload = (next(_ping_payloads) & 0xFFFFFFFF).to_bytes(4, "big")
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        while len(pings) >= self.limits.max_pending_pings:
            _, (_, oldest) = next(iter(pings.items()))
            pings.pop(next(iter(pings)))
            oldest.cancel()
        pings[payload] = (self.clock(), future)
        self.stats.pings_sent += 1
        self._record(EventKind.PING, payload=payload.hex())
        self._send_ping(payload)
        return future

    def _pong(self, payload: bytes) -> None:
        """An engine received a pong: resolve its ping and the earlier ones."""
        self.stats.pongs_received += 1
        pings = self._pings
        if pings is None or payload not in pings:
            self._record(EventKind.PONG, payload=payload.hex(), rtt=None, unsolicited=True)
            return
        now = self.clock()
        rtt = None
        for key in list(pings):
            sent_at, future = pings.pop(key)
            if not future.done():
                future.set_result(now - sent_at)
            if key == payload:
                rtt = now - sent_at
                break
        if not pings:
            self._pings = None
        self.stats.last_rtt = rtt
        if rtt is not None:
            rtts = self.stats.rtts
            if rtts is None:
                rtts = self.stats.rtts = array("d")
            elif len(rtts) >= MAX_RTTS:
                del rtts[0]
            rtts.append(rtt)
        self._record(EventKind.PONG, payload=payload.hex(), rtt=rtt)

    # -- closing -----------------------------------------------------------------------------------

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code``: queued messages go first, then the closing handshake.

        Returns once TCP is closed; if the peer does not answer within ``close_timeout`` the
        connection is aborted.
        """
        if self.state is ConnectionState.OPEN:
            self._start_close(code, reason)
        await self.wait_closed(self.limits.close_timeout)

    def close_nowait(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start closing without waiting (from synchronous code, e.g. a policy decision)."""
        if self.state is ConnectionState.OPEN:
            self._start_close(code, reason)

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until TCP is closed; with a ``timeout``, abort the connection when it expires."""
        if timeout is None:
            await asyncio.shield(self._closed)
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except asyncio.TimeoutError:
            self.abort("closing handshake timed out")
            await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        """True once TCP is closed."""
        return self._closed.done()

    def add_close_callback(self, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(connection, *args)`` soon after TCP is closed (at once if it already is).

        ``args`` as with ``loop.call_soon``: a shared callback and its arguments cost less per
        connection than a closure made for each.

        For bookkeeping that needs the final counters and close codes (metrics, the close log
        line): it runs on the event loop, in the context of the task that added the first one
        (the connection's handler, for the hub's). One callback on the closing future serves
        them all: each would otherwise cost its own closure and context copy per connection.
        """
        if self._closed.done():
            asyncio.get_running_loop().call_soon(callback, self, *args)
            return
        if self._close_callbacks is None:
            self._close_callbacks = []
            self._closed.add_done_callback(self._run_close_callbacks)
        self._close_callbacks.append((callback, args))

    def _run_close_callbacks(self, _: asyncio.Future[None]) -> None:
        callbacks, self._close_callbacks = self._close_callbacks or [], None
        for callback, args in callbacks:
            try:
                callback(self, *args)
            except Exception:
                # As asyncio does for a failing callback: logged, and the others still run.
                log.exception("close callback of %s failed", self.id)

    def _lost(self, cause: str) -> None:
        """An engine reports that TCP is closed: wake every waiter."""
        if self._closed.done():
            return
        # Closed first: close_code reads it, and says 1006 (not None) when no close frame came.
        self._closed.set_result(None)
        self._close_error = self._make_closed_error()
        waiter = self._incoming_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        for _, future in (self._pings or {}).values():
            if not future.done():
                future.set_exception(self._close_error)
                future.exception()  # mark retrieved: nobody may be waiting for this ping
        self._pings = None
        self._record(
            EventKind.DISCONNECT,
            code=self.close_code,
            reason=self.close_reason,
            by="local" if self.closed_locally else "peer",
            cause=cause,
        )
        if self._consumer is not None:
            self._wake_consumer()

    def _make_closed_error(self) -> ConnectionClosed:
        code = self.close_code
        if self.closed_locally:
            return ConnectionClosedLocally(
                "this end closed the connection", close_code=code, reason=self.close_reason
            )
        return ConnectionBroken(
            "the peer or the network ended the connection",
            close_code=code,
            reason=self.close_reason,
        )

    def _closed_error(self) -> ConnectionClosed:
        return self._close_error or self._make_closed_error()

    # -- observability -----------------------------------------------------------------------------

    def _record(self, kind: EventKind, **fields: object) -> None:
        log = self.events
        if log.enabled_for(kind):
            log.record(kind, self.id, **fields)

    @property
    def extensions(self) -> str | None:
        """The ``Sec-WebSocket-Extensions`` the handshake agreed on (``None``: none)."""
        return None

    def info(self) -> dict[str, object]:
        """One row of ``hub.connections``: who, where, state, RTT, queue depth, counters."""
        stats = self.stats
        return {
            "connection_id": self.id,
            "engine": self.engine,
            "remote": f"{self.remote[0]}:{self.remote[1]}" if self.remote else None,
            "path": self.path,
            "state": self.state.name,
            "extensions": self.extensions,
            "age_s": round(self.clock() - stats.opened_at, 3),
            "rtt_ms": None if stats.last_rtt is None else round(stats.last_rtt * 1000, 3),
            "queue_depth": self.queue_depth,
            "queued_bytes": self.queued_bytes,
            "messages_in": stats.messages_in,
            "messages_out": stats.messages_out,
            "bytes_in": stats.bytes_in,
            "bytes_out": stats.bytes_out,
            "dropped_out": stats.dropped_out,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.name} {self.remote}>"
