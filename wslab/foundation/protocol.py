"""The sans-I/O WebSocket protocol: bytes in, events out; calls in, bytes out.

:class:`Protocol` holds everything RFC 6455 says about an open connection — frames, masking,
fragmentation, UTF-8, ping/pong, the closing handshake, failing the connection — and does no I/O
at all. A transport (``wslab.infrastructure.engines.wslab``, or a test, or a notebook cell) moves the
bytes::

    proto = Protocol(Role.SERVER)
    proto.open(now=0.0)                      # after the opening handshake succeeded
    events = proto.receive_data(chunk)       # -> [TextReceived(...), PingReceived(...), ...]
    sock.send(proto.data_to_send())          # automatic replies: pongs, the close echo
    sock.send(proto.send_text("hello"))      # our own messages
    if proto.close_expected: sock.close()

When the peer violates the protocol, ``receive_data`` returns the events for everything valid
that came before, then a :class:`ProtocolFailure`; the close frame with the right code is waiting
in :meth:`Protocol.data_to_send`, and all further input is ignored.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from .assembler import MessageAssembler
from .codes import CloseCode, Opcode
from .deflate import DeflateParams, Deflater, DeflateSettings, Inflater
from .errors import (
    ConnectionBroken,
    ConnectionClosedLocally,
    InvalidStateTransition,
    ProtocolError,
)
from .frames import (
    MAX_CONTROL_PAYLOAD,
    Frame,
    FrameParser,
    encode_close_payload,
    encode_frame,
    parse_close_payload,
    truncate_close_reason,
)
from .state import ConnectionState, StateMachine, Transition

__all__ = [
    "BinaryReceived",
    "CloseReceived",
    "Event",
    "PingReceived",
    "PongReceived",
    "Protocol",
    "ProtocolFailure",
    "Role",
    "TextReceived",
]

State = ConnectionState


class Role(enum.Enum):
    """Which end of the connection this is; it decides who masks (the client does)."""

    SERVER = "server"
    CLIENT = "client"


# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextReceived:
    """A complete text message."""

    text: str
    frames: int = 1


@dataclass(frozen=True, slots=True)
class BinaryReceived:
    """A complete binary message."""

    data: bytes
    frames: int = 1


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A ping; unless ``auto_pong`` is off, the pong is already in ``data_to_send()``."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong (solicited or not)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame; ``code`` is 1005 when it carried no status."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolFailure:
    """The peer broke the protocol; we are failing the connection with ``close_code``."""

    error: ProtocolError

    @property
    def close_code(self) -> int:
        """The close code sent to the peer."""
        return int(self.error.close_code)


Event = (
    TextReceived | BinaryReceived | PingReceived | PongReceived | CloseReceived | ProtocolFailure
)

#: ``(direction, frame, inflated)``: ``inflated`` is the payload's size before compression (out)
#: or after inflation (in) for a permessage-deflate frame, ``None`` for an uncompressed one.
FrameObserver = Callable[[str, Frame, int | None], None]
TransitionObserver = Callable[[Transition], None]


@dataclass(slots=True)
class ProtocolStats:
    """Counters of what crossed the connection, kept by the protocol at almost no cost."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    #: Pings answered by a later pong only (see MAX_QUEUED_PONGS).
    pongs_coalesced: int = 0


#: Unsent pongs at most; past it only the newest ping is answered (RFC 6455 5.5.3).
MAX_QUEUED_PONGS = 16


class Protocol:
    """One end of a WebSocket connection, with no I/O. See the module docstring for the flow.

    Parameters:
        role: ``Role.SERVER`` or ``Role.CLIENT``.
        max_frame_size / max_message_size: limits on received data (1009 beyond); ``None`` = none.
        auto_pong: answer each ping with a pong carrying the same payload (RFC 6455 5.5.2).
        clock: where ``now`` comes from when a call doesn't pass one (a fake clock in tests).
        mask_key_factory: the client's source of masking keys (4 unpredictable bytes each).
        frame_observer: called with ``("in" | "out", frame, inflated)`` for every frame as it is
            on the wire (the event log); ``inflated`` is the uncompressed size of a compressed one.
        transition_observer: called with each :class:`Transition` of the state machine.
        now: the creation time recorded in the state history (default: ``clock()``).
        defer_failure: on a peer's violation, do not queue the close frame yet: the caller first
            lets the application answer the messages that arrived before the violation (an echo
            server echoes them), then calls :meth:`fail_pending`. Input is ignored meanwhile.
    """

    # One per connection: slots keep thousands of them small.
    __slots__ = (
        "_clock", "_close_received", "_close_sent", "_closed_locally", "_compressing", "_deflater",
        "_failed_locally", "_failure", "_ignore_input", "_inflater", "_inflating", "_last_pong",
        "_mask_key_factory", "_max_message_size", "_outgoing", "_queued_pongs", "_sending",
        "assembler", "auto_pong", "defer_failure", "deflate", "frame_observer", "machine",
        "parser", "role", "stats", "transition_observer",
    )

    def __init__(
        self,
        role: Role,
        *,
        max_frame_size: int | None = None,
        max_message_size: int | None = None,
        auto_pong: bool = True,
        clock: Callable[[], float] = time.monotonic,
        mask_key_factory: Callable[[int], bytes] = os.urandom,
        frame_observer: FrameObserver | None = None,
        transition_observer: TransitionObserver | None = None,
        now: float | None = None,
        defer_failure: bool = False,
        deflate: DeflateParams | None = None,
        deflate_settings: DeflateSettings | None = None,
        max_fragments: int | None = None,
    ) -> None:
        self.role = role
        self.defer_failure = defer_failure
        self.auto_pong = auto_pong
        self._clock = clock
        self._mask_key_factory = mask_key_factory
        self.frame_observer = frame_observer
        self.transition_observer = transition_observer
        # A frame can never be larger than the message it belongs to may be.
        limits = [limit for limit in (max_frame_size, max_message_size) if limit is not None]
        self.parser = FrameParser(
            max_frame_size=min(limits) if limits else None,
            require_mask=role is Role.SERVER,
            allowed_rsv=0b100 if deflate is not None else 0,  # RSV1 = compressed (RFC 7692 6)
        )
        # permessage-deflate, when the handshake negotiated it (see wslab.foundation.deflate).
        self.deflate = deflate
        server = role is Role.SERVER
        self._deflater = (
            deflate.deflater(server=server, settings=deflate_settings) if deflate else None
        )
        self._inflater = deflate.inflater(server=server) if deflate else None
        self._max_message_size = max_message_size
        self._inflating = False  # the message being received is compressed
        self._compressing = False  # the message being sent is compressed
        self.assembler = MessageAssembler(max_message_size, max_fragments)
        self.machine = StateMachine(ConnectionState.CONNECTING, now=clock() if now is None else now)
        self.stats = ProtocolStats()
        self._outgoing: list[bytes] = []
        # Pongs waiting in _outgoing, and where the newest one is (see MAX_QUEUED_PONGS).
        self._queued_pongs = 0
        self._last_pong = -1
        self._sending: Opcode | None = None  # the type of a fragmented message we are sending
        self._close_sent: tuple[int | None, str] | None = None
        self._close_received: tuple[int, str] | None = None
        self._failure: ProtocolError | None = None
        self._closed_locally = False
        self._failed_locally = False
        self._ignore_input = False

    # -- state -------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        return self.machine.state

    @property
    def close_sent(self) -> tuple[int | None, str] | None:
        """``(code, reason)`` of the close frame we sent, or ``None``."""
        return self._close_sent

    @property
    def close_received(self) -> tuple[int, str] | None:
        """``(code, reason)`` of the close frame the peer sent, or ``None``."""
        return self._close_received

    @property
    def failure(self) -> ProtocolError | None:
        """The peer's protocol violation that failed this connection, if any."""
        return self._failure

    @property
    def close_expected(self) -> bool:
        """True when the transport should now close the TCP connection.

        That is once both close frames have crossed, or once we failed the connection. RFC 6455
        7.1.1 has the server close TCP first; a client waits a little for the server to do it.
        """
        if self._failed_locally or (self._failure is not None and self._close_sent is not None):
            return True
        return self._close_sent is not None and self._close_received is not None

    @property
    def close_code(self) -> int:
        """The close code as the browser API reports it: the peer's, or 1006 if none came."""
        if self._close_received is not None:
            return self._close_received[0]
        return CloseCode.ABNORMAL_CLOSURE

    @property
    def closed_locally(self) -> bool:
        """True if this end started the close (``send_close``/``fail``), not the peer."""
        return self._closed_locally

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _move(self, new: ConnectionState, now: float | None, cause: str) -> None:
        record = self.machine.transition(new, now=self._now(now), cause=cause)
        if self.transition_observer is not None:
            self.transition_observer(record)

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self, *, now: float | None = None, cause: str = "handshake accepted") -> None:
        """The opening handshake succeeded: CONNECTING -> OPEN."""
        self._move(State.OPEN, now, cause)

    def connection_lost(self, *, now: float | None = None, cause: str = "") -> None:
        """The transport is closed: any state -> CLOSED (a no-op if already CLOSED)."""
        if self.state is State.CLOSED:
            return
        if not cause:
            cause = "closing handshake complete" if self.close_expected else "transport lost"
        self._move(State.CLOSED, now, cause)
        self._ignore_input = True

    def release_buffers(self) -> None:
        """Free every buffer and compressor of a closed connection (the caller is done with it)."""
        self.parser.release()
        self.assembler.reset()
        self._outgoing.clear()
        self._queued_pongs, self._last_pong = 0, -1
        self._deflater = self._inflater = None

    # -- receiving ---------------------------------------------------------------------------------

    def receive_data(
        self, data: bytes | bytearray | memoryview, *, now: float | None = None
    ) -> list[Event]:
        """Process received bytes; return the events they complete, in order."""
        if self.state is State.CONNECTING:
            raise InvalidStateTransition("receive_data() before the opening handshake completed")
        if self._ignore_input or not data:
            return []  # after a close frame or a failure, RFC 6455 says to discard input
        self.stats.bytes_in += len(data)
        events: list[Event] = []
        try:
            for frame in self.parser.feed(data):
                self._handle_frame(frame, events, now)
                if self._ignore_input:
                    break  # a close frame: whatever follows it, even garbage, is discarded
            else:
                if self.parser.error is not None:
                    raise self.parser.error  # after the valid frames that preceded it
                header = self.parser.partial_header
                # A compressed frame's partial payload is deflate data, not UTF-8: it is checked
                # once inflated.
                if (
                    header is not None
                    and not header.is_control
                    and not (header.rsv1 or self._inflating)
                ):
                    self.assembler.check_partial(header, self.parser.partial_payload)
        except ProtocolError as error:
            events.append(ProtocolFailure(error))
            self._fail(error, now)
        return events

    def _handle_frame(self, frame: Frame, events: list[Event], now: float | None) -> None:
        self.stats.frames_in += 1
        opcode = frame.opcode
        observer = self.frame_observer
        if opcode < 0x8 and (frame.rsv1 or self._inflating):
            wire = frame
            try:
                frame = self._inflate(frame)
            finally:
                # Logged as it came, with its inflated size (None: a bomb or bad deflate data).
                if observer is not None:
                    observer("in", wire, len(frame.payload) if frame is not wire else None)
        elif observer is not None:
            observer("in", frame, None)
        if opcode < 0x8:  # data frame
            message = self.assembler.add(frame)
            if message is not None:
                self.stats.messages_in += 1
                match message.data:  # str exactly when the message is text
                    case str() as text:
                        events.append(TextReceived(text, message.frames))
                    case data:
                        events.append(BinaryReceived(data, message.frames))
        elif frame.rsv1:
            raise ProtocolError(
                f"RSV1 set on a {opcode.name} frame: control frames are never compressed"
            )
        elif opcode is Opcode.PING:
            events.append(PingReceived(frame.payload))
            if self.auto_pong and self._close_sent is None:
                self._queue_pong(frame.payload)
        elif opcode is Opcode.PONG:
            events.append(PongReceived(frame.payload))
        else:  # CLOSE
            code, reason = parse_close_payload(frame.payload)
            self._close_received = (code, reason)
            events.append(CloseReceived(code, reason))
            self._ignore_input = True  # nothing after a close frame means anything
            if self._close_sent is None:
                # Echo the status code (RFC 6455 5.5.1); no code received -> none sent back.
                echo = None if code == CloseCode.NO_STATUS_RCVD else code
                self._close_sent = (echo, "")
                self._queue(Frame(Opcode.CLOSE, encode_close_payload(echo)))
                self._move(State.CLOSING, now, f"close received ({code})")

    # -- sending -----------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes the protocol produced by itself (pongs, the close echo, a failure's close)."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        self._queued_pongs, self._last_pong = 0, -1
        return data

    def _queue_pong(self, payload: bytes) -> None:
        """Answer a ping; past MAX_QUEUED_PONGS unsent pongs, answer only the newest ping.

        RFC 6455 5.5.3 allows it ("MAY elect to send a Pong frame for only the most recently
        processed Ping frame"), and it bounds, in count, what a peer flooding pings is owed.
        """
        if self._queued_pongs < MAX_QUEUED_PONGS:
            self._queue(Frame(Opcode.PONG, payload))
            self._queued_pongs += 1
            self._last_pong = len(self._outgoing) - 1
        else:
            self._outgoing[self._last_pong] = self._encode(Frame(Opcode.PONG, payload))
            self.stats.pongs_coalesced += 1

    def send_text(self, text: str, *, fin: bool = True) -> bytes:
        """A text message (or its first fragment when ``fin`` is false)."""
        return self._send_data(Opcode.TEXT, text.encode("utf-8"), fin)

    def send_binary(self, data: bytes | bytearray | memoryview, *, fin: bool = True) -> bytes:
        """A binary message (or its first fragment when ``fin`` is false)."""
        return self._send_data(Opcode.BINARY, bytes(data), fin)

    def send_continuation(self, data: bytes, *, fin: bool) -> bytes:
        """The next fragment of the message started with ``fin=False``."""
        if self._sending is None:
            raise ProtocolError("no fragmented message to continue")
        return self._send_data(Opcode.CONT, data, fin)

    def send_ping(self, payload: bytes = b"") -> bytes:
        """A ping; the peer must answer with a pong carrying the same payload."""
        return self._send_control(Opcode.PING, payload)

    def send_pong(self, payload: bytes = b"") -> bytes:
        """A pong (unsolicited pongs serve as a one-way heartbeat)."""
        return self._send_control(Opcode.PONG, payload)

    def send_close(
        self,
        code: int | None = CloseCode.NORMAL_CLOSURE,
        reason: str = "",
        *,
        now: float | None = None,
    ) -> bytes:
        """Start the closing handshake: OPEN -> CLOSING. Returns ``b""`` if already closing."""
        if self._close_sent is not None or self.state is State.CLOSED:
            return b""
        if self.state is State.CONNECTING:
            raise InvalidStateTransition("send_close() before the opening handshake completed")
        reason = truncate_close_reason(reason)
        payload = encode_close_payload(code, reason)
        self._close_sent = (code, reason)
        self._closed_locally = self._close_received is None and self._failure is None
        if self.state is State.OPEN:
            self._move(State.CLOSING, now, f"close sent ({code})")
        return self._encode(Frame(Opcode.CLOSE, payload))

    def fail(self, code: int, reason: str = "", *, now: float | None = None) -> bytes:
        """Fail the connection ourselves (e.g. 1008 flooding, 1011 dead peer): close, stop reading."""
        # Input is ignored from now on, so the peer's close reply would never be seen: the
        # transport must not wait for it (close_expected becomes true at once).
        self._ignore_input = True
        self._failed_locally = True
        return self.send_close(code, reason, now=now)

    # -- internals ---------------------------------------------------------------------------------

    def fail_pending(self, *, now: float | None = None) -> bytes:
        """With ``defer_failure``: the close frame for the peer's violation, now that the
        messages received before it have been answered. ``b""`` if there is nothing to do."""
        error = self._failure
        if error is None or self._close_sent is not None or self.state is not State.OPEN:
            return b""
        return self.send_close(int(error.close_code), error.message, now=now)

    def _fail(self, error: ProtocolError, now: float | None) -> None:
        self._failure = error
        self._ignore_input = True
        if not self.defer_failure:
            self._outgoing.append(self.fail_pending(now=now))

    def _check_can_send(self, control: bool) -> None:
        if self.state is State.OPEN and self._close_sent is None:
            return
        if self.state is State.CONNECTING:
            raise InvalidStateTransition("cannot send before the opening handshake completed")
        if control and self._close_sent is None and self.state is State.CLOSING:
            return
        if self._closed_locally:
            code, reason = self._close_sent or (None, "")
            raise ConnectionClosedLocally(
                "this end closed the connection", close_code=code, reason=reason
            )
        code, reason = self._close_received or (CloseCode.ABNORMAL_CLOSURE, "")
        raise ConnectionBroken(
            "the peer or the network ended the connection", close_code=code, reason=reason
        )

    def _inflate(self, frame: Frame) -> Frame:
        """A compressed data frame with its payload inflated, bounded by the message limit."""
        assert self._inflater is not None  # the parser refuses RSV1 without the extension
        if frame.opcode is Opcode.CONT and frame.rsv1:
            raise ProtocolError("RSV1 set on a continuation frame (only the first is marked)")
        if frame.opcode is not Opcode.CONT and self._inflating:
            raise ProtocolError(f"new {frame.opcode.name} frame while a fragmented message is open")
        limit = self._max_message_size
        if limit is not None:
            limit -= self.assembler.buffered  # what the message may still grow by, inflated
        payload = self._inflater.inflate(frame.payload, fin=frame.fin, limit=limit)
        self._inflating = not frame.fin
        return Frame(frame.opcode, payload, frame.fin)

    @property
    def deflater(self) -> Deflater | None:
        """This end's compressor when permessage-deflate was negotiated, else ``None``."""
        return self._deflater

    @property
    def inflater(self) -> Inflater | None:
        """The decompressor of the peer's messages when permessage-deflate was negotiated."""
        return self._inflater

    def _send_data(self, opcode: Opcode, payload: bytes, fin: bool) -> bytes:
        self._check_can_send(control=False)
        if opcode is not Opcode.CONT and self._sending is not None:
            raise ProtocolError("cannot start a message while a fragmented one is being sent")
        self._sending = None if fin else (self._sending or opcode)
        if fin:
            self.stats.messages_out += 1
        rsv1 = False
        inflated: int | None = None
        if self._deflater is not None:
            if opcode is not Opcode.CONT:  # the first fragment decides for the whole message
                self._compressing = self._deflater.should_compress(len(payload))
                rsv1 = self._compressing
            if self._compressing:
                inflated = len(payload)
                payload = self._deflater.compress(payload, fin=fin)
        return self._encode(Frame(opcode, payload, fin, rsv1=rsv1), inflated)

    def _send_control(self, opcode: Opcode, payload: bytes) -> bytes:
        self._check_can_send(control=True)
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payloads are limited to 125 bytes")
        return self._encode(Frame(opcode, bytes(payload)))

    def _queue(self, frame: Frame) -> None:
        self._outgoing.append(self._encode(frame))

    def _encode(self, frame: Frame, inflated: int | None = None) -> bytes:
        if self.role is Role.CLIENT:
            key = self._mask_key_factory(4)
            frame.masked, frame.mask_key = True, key
            data = encode_frame(frame, key)
        else:
            data = encode_frame(frame)
        self.stats.frames_out += 1
        self.stats.bytes_out += len(data)
        if self.frame_observer is not None:
            self.frame_observer("out", frame, inflated)
        return data
