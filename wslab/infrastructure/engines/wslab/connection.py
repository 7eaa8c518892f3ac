"""One WebSocket connection on wslab's own engine: :class:`WslabConnection`.

``asyncio.Protocol`` callbacks (not streams) keep the per-frame cost low: bytes from the socket go
straight into :class:`wslab.foundation.Protocol`, and the frames it returns go straight to the
socket's transport. Reading is fair (see :mod:`wslab.infrastructure.fairness`): every frame is
charged to a per-connection budget at arrival, and a big read is parsed a slice per loop turn.
Writing goes to the transport while it keeps up, else to the bounded outgoing queue of
:class:`~wslab.infrastructure.connection.Connection`, whose slow-consumer policy decides at the
bound; a message encoded once for a broadcast (:class:`Prepared`) is shared by every server-side
connection with the same compression parameters.

The TCP side — the server's :class:`~.server._Wire` and the client's :class:`~.client._ClientWire`
— hands its bytes to the connection once the upgrade is done.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wslab.foundation import deflate
from wslab.foundation.codes import CloseCode, Opcode
from wslab.foundation.deflate import Deflater
from wslab.foundation.frames import Frame, encode_frame
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
from wslab.infrastructure.connection import Connection, ConnectionLimits, Message, Prepared
from wslab.infrastructure.events import NULL_EVENT_LOG, EventKind, EventLog
from wslab.infrastructure.fairness import FRAMES_PER_TURN, READ_SLICE, FrameBudget

__all__ = ["CORK_LIMIT", "WslabConnection"]

#: At most this many bytes are held by a cork (:meth:`WslabConnection.cork`) before being written.
CORK_LIMIT = 64 * 1024


class WslabConnection(Connection):
    """A connection driven by :class:`wslab.foundation.Protocol` over an asyncio transport."""

    engine = "wslab"

    # The outgoing queue is the base class's (``_queue``); see Connection for why slots.
    __slots__ = (
        "_aborted_locally",
        "_backlog",
        "_backlog_scheduled",
        "_budget",
        "_budget_timer",
        "_close_timer",
        "_corked",
        "_corked_bytes",
        "_fail_timer",
        "_failing",
        "_holds",
        "_machine",
        "_paused",
        "_plain",
        "_protocol_stats",
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
        observed = self.events is not NULL_EVENT_LOG
        self.protocol = Protocol(
            role,
            max_frame_size=limits.frame_limit,
            max_message_size=limits.max_message_size,
            clock=self.clock,
            # Without a log, the protocol skips building what nobody would read.
            frame_observer=self._observe_frame if observed else None,
            transition_observer=self._observe_transition if observed else None,
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
        self._backlog_scheduled = False  # a _continue_backlog call is pending
        # Why reading is paused (incoming, backlog, budget): a new frozenset per change, so an
        # unpaused connection shares the empty one instead of holding a set of its own.
        self._holds: frozenset[str] = _NO_HOLDS
        self._budget_timer: asyncio.TimerHandle | None = None
        self._failing = False  # a protocol violation waits for the application to catch up
        self._fail_timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._writable: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._aborted_locally = False
        # Frames held while corked (see cork): None when not corked, the common case.
        self._corked: list[bytes] | None = None
        self._corked_bytes = 0
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

    # -- incoming bytes ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: parse them, at most a turn's worth of frames, and act on them.

        The read is parsed :data:`READ_SLICE` bytes at a time; once a turn has parsed
        :data:`FRAMES_PER_TURN` frames, the rest waits for the next turn of the event loop (reading
        paused meanwhile), so one connection's big read of tiny frames cannot hold every other
        connection's turn, while a big message in few frames is parsed in one go.
        """
        self.stats.bytes_in += len(data)
        if self._backlog is not None:  # a read that raced the pause: parse it after the rest
            self._backlog = memoryview(bytes(self._backlog) + data)
            return
        self._consume(memoryview(data))

    def _consume(self, data: memoryview) -> None:
        # Work is bounded in frames, not bytes: per-frame work is what a flood of tiny frames
        # multiplies, while a 64 KiB frame costs little more than a 4 KiB one (the unmasking
        # is one C call). Slicing by bytes alone paused and resumed reading 16 times for every
        # 64 KiB message.
        stats = self.protocol.stats
        parser = self.protocol.parser
        start = stats.frames_in
        while len(data) > READ_SLICE:
            # One frame's bytes (the rest of the one in progress, or the next if its header is
            # here) hold one header at most: they go with the slice, so a 64 KiB message that
            # arrived in one read is one feed, unmasked straight out of the read.
            size = READ_SLICE + parser.span_ahead(data)
            self._feed(data[:size])
            data = data[size:]
            if (
                stats.frames_in - start >= FRAMES_PER_TURN
                or "budget" in self._holds
                or self.closed
                or self.protocol.failure is not None
            ):
                self._backlog = data
                self._hold_reading("backlog")
                self._schedule_backlog()
                return
        self._feed(data)

    def _schedule_backlog(self) -> None:
        if not self._backlog_scheduled:
            self._backlog_scheduled = True
            asyncio.get_running_loop().call_soon(self._continue_backlog)

    def _continue_backlog(self) -> None:
        self._backlog_scheduled = False
        if "budget" in self._holds and self._backlog is not None and not self.closed:
            # In debt: the rest of this read waits for the budget too (_budget_paid resumes
            # it), or one read of tiny frames would be parsed whole whatever the budget says.
            return
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
        if self._backlog is not None:
            self._schedule_backlog()

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
        self._drop_queue()
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
        self._holds = self._holds | {reason}

    def _release_reading(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds = self._holds - {reason}
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
            self.transport.write(queue.popleft())
        if not queue and not self._paused:
            self._drop_queue()  # drained: give the buffer back
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
            if self._corked is None:
                self.transport.write(data)
            else:
                self._hold(data)
            return
        queue = self._outgoing()
        if not queue.fits_bytes(len(data)):
            self.stats.dropped_out += 1
            self._record(EventKind.SLOW_CONSUMER, policy="abort", queued=len(queue))
            self.abort("control frames piled up: the peer sends but does not read")
            return
        queue.append(data, len(data))

    def _write_frame_bytes(self, data: bytes, size: int) -> None:
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
        if not self._paused and not self._queue:
            if self._corked is None:
                self.transport.write(data)
            else:
                self._hold(data)
            return
        if not self._queue_outgoing(data, len(data)):
            self.stats.messages_out -= 1
            self.stats.bytes_out -= len(data)

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
        if self.events.enabled_for(EventKind.FRAME_OUT):
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
        # The shared bytes once encoded (by the first recipient): no call for the others.
        data = prepared.frame or prepared.wire(self._encode_unmasked)
        size = len(data)
        counted = self._protocol_stats
        counted.messages_out += 1
        counted.frames_out += 1
        counted.bytes_out += size
        stats = self.stats
        stats.messages_out += 1
        stats.bytes_out += size
        if self._corked is None:
            self.transport.write(data)
        else:
            self._hold(data)
        if self.events.frames_out:
            self._record_shared_frame(prepared, data, None)
        return True

    @staticmethod
    def _encode_unmasked(message: Message) -> tuple[bytes, int]:
        payload = message.encode() if isinstance(message, str) else message
        return encode_frame(Frame(_opcode_of(message), payload)), len(payload)

    # -- corking ---------------------------------------------------------------------------------------

    def cork(self) -> None:
        """Hold the frames written from now on until :meth:`uncork`, which writes them at once.

        What a handler uses when it writes several frames in a row (the sender's own copy of a
        message, then its ack): one ``transport.write`` and so one ``send`` for all of them
        instead of one each. Only frames that would have gone to the socket straight away are
        held; a paused socket's bounded queue and its slow-consumer policy work as before. The
        hold is bounded (:data:`CORK_LIMIT` bytes: past it, what is held is written and the
        cork stays) and ends with a close or an abort.
        """
        if self._corked is None:
            self._corked = []
            self._corked_bytes = 0

    def uncork(self) -> None:
        """Write what :meth:`cork` held, as one write, and write straight away again."""
        corked = self._corked
        if corked is None:
            return
        self._corked = None
        if corked and not self.transport.is_closing():
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def _hold(self, data: bytes) -> None:
        corked = self._corked
        assert corked is not None
        corked.append(data)
        self._corked_bytes += len(data)
        if self._corked_bytes >= CORK_LIMIT:
            # Bounded: write what is held now (the order stays), keep holding what follows.
            self.uncork()
            self.cork()

    def _send_ping(self, payload: bytes) -> None:
        self._raw_write(self.protocol.send_ping(payload))

    def _start_close(self, code: int, reason: str) -> None:
        self.uncork()  # what was held goes before the close frame
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
        self.uncork()
        data = self.protocol.fail(code, reason)
        if data:
            self._record(EventKind.CLOSE, direction="out", code=code, reason=reason)
            self._drop_queue()
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
        self._corked = None
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
        if log.enabled_for(kind):
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
_NO_HOLDS: frozenset[str] = frozenset()


def _encode_compressed(deflater: Deflater, payload: bytes, message: Message) -> bytes:
    """A whole message compressed by a context-free ``deflater``, as one unmasked RSV1 frame."""
    return encode_frame(Frame(_opcode_of(message), deflater.compress(payload), True, rsv1=True))


def _opcode_of(message: Message) -> Opcode:
    return Opcode.TEXT if isinstance(message, str) else Opcode.BINARY


class _ForwardsFlowControl(asyncio.Protocol):
    """The transport's pause/resume-writing signals go to the connection once there is one."""

    __slots__ = ()  # the server's _Wire has slots: one per TCP connection the hub holds

    connection: WslabConnection | None

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.connection.pause_writing()

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.resume_writing()
