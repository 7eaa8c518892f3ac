"""The runner's raw-socket client: one connection playing one conformance case.

:func:`_connect` opens TCP (and TLS for wss), sends the opening handshake with the case's
permessage-deflate offers and judges the answer; :class:`_Session` then plays the script on
asyncio streams with the independent codec in :mod:`.wire`, answers the server's pings and
close as a correct client would, and records what the server did in an :class:`Observation`
for :mod:`.judging`. :class:`RunConfig` holds the knobs (timeouts, bounds) of a run.

How a case ends:

- the server must fail the connection (``initiator='server'``): the runner waits up to the
  timeout for the server's close frame and for the server to close TCP, answering the close;
- the client closes (``initiator='client'``): when the script has not sent a close itself, the
  runner waits for the expected number of events (as Autobahn does) or, when no event is
  expected, ``settle`` seconds (so a stray reply, e.g. a pong to an unsolicited pong, is seen),
  then sends close 1000 and waits for the server's answer and its TCP close.

Writes never leave a frame half-sent when the server has closed: a frame being written in chops
is completed first, so the close reply that follows is parsed as a frame by the server.

permessage-deflate: a case with ``offers`` sends them in the handshake; the answer is judged
(:func:`.pmd.check_answer`) before anything else, a server that declines makes the case
UNIMPLEMENTED (the runner then just closes), and an agreement gives the session a
:class:`.pmd.Compression` that deflates the script's compressed messages and inflates the
server's RSV1 messages (bounded by ``max_message``). With server_no_context_takeover agreed,
the judge also checks that identical messages were echoed as identical deflate bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl as ssl_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wslab.foundation.errors import ConfigError

from .cases import (
    Case,
    Ev,
    Frame,
    Pause,
    Send,
    SendMessage,
    SendPart,
    as_bytes,
    data_length,
)
from .pmd import Agreement, AnswerError, Compression, WireInfo, check_answer
from .wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WireFrame,
    build_request,
    check_response,
    encode_frame,
    header_values,
    make_key,
    parse_close_payload,
)

__all__ = ["Observation", "RunConfig"]

_MAX_PENDING = 64


@dataclass(frozen=True)
class RunConfig:
    """Knobs of a run. Times are seconds.

    ``timeout`` bounds every wait of a case (for the expected events, for the server's close,
    for its TCP close); heavy cases use ``max(timeout, case.min_timeout)``. ``settle`` is how
    long the runner keeps listening before closing when no event at all is expected. ``pause`` is the
    length of the script's pauses (Autobahn uses 1 s). ``max_message`` bounds what the runner
    buffers for one server message; ``max_events`` bounds the recorded events per case (later
    ones are counted, not stored).
    """

    timeout: float = 3.0
    settle: float = 0.2
    pause: float = 1.0
    max_message: int = 64 * 1024 * 1024
    max_events: int = 5000
    ssl: ssl_module.SSLContext | None = None


@dataclass
class Observation:
    """Everything the runner saw the server do during one case."""

    events: list[Ev] = field(default_factory=list)
    events_dropped: int = 0
    close_seen: bool = False
    close_code: int | None = None
    close_reason: bytes = b""
    close_problem: str | None = None
    server_closed_first: bool = False
    #: How TCP ended: "server" (EOF), "reset" (RST from the server) or "client" (we gave up).
    tcp: str | None = None
    violations: list[str] = field(default_factory=list)
    server_pings: int = 0
    frames_after_close: int = 0
    error: str | None = None
    waited_for_close: float = 0.0
    #: permessage-deflate: what was agreed (None: not offered or declined), why the case could
    #: not run (the server declined), and how each recorded message crossed the wire.
    agreement: Agreement | None = None
    unimplemented: str | None = None
    message_wire: list[WireInfo] = field(default_factory=list)


class _Session:
    """One client connection running one case."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cfg: RunConfig,
        compression: Compression | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.cfg = cfg
        self.obs = Observation()
        self.compression = compression
        if compression is not None:
            self.obs.agreement = compression.agreement
        self.parser = FrameReader(cfg.max_message, allowed_rsv=4 if compression else 0)
        self.changed = asyncio.Event()
        self.client_close_sent = False
        self.eof = False
        self.aborted = False
        self.write_failed = False
        # Control replies made while a frame is only partly written wait here (bounded, see
        # _emit_control).
        self.mid_frame = False
        self.pending: list[bytes] = []
        self._msg_opcode: int | None = None
        self._msg_parts: list[bytes] = []
        self._msg_size = 0
        self._msg_compressed = False

    # -- state ------------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Neither a close frame nor the end of TCP has come from the server."""
        return not self.obs.close_seen and not self.eof

    def _notify(self) -> None:
        self.changed.set()

    def _echoed_since(self, before: int) -> bool:
        """True once an event came after the first ``before`` ones, or the connection closed."""
        return len(self.obs.events) + self.obs.events_dropped > before or not self.open

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every change) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    # -- reading ----------------------------------------------------------------------------------

    async def read_loop(self) -> None:
        """Read and handle the server's frames until TCP ends."""
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    self.obs.tcp = "client" if self.aborted else "server"
                    break
                for frame in self.parser.feed(data):
                    self._on_frame(frame)
                self._notify()
        except (ConnectionResetError, BrokenPipeError):
            self.obs.tcp = "client" if self.aborted else "reset"
        except ValueError as exc:
            # The parser cannot go on (absurd length): record it and drop the connection.
            self.obs.violations.append(str(exc))
            self.aborted = True
            self.obs.tcp = "client"
            self.writer.transport.abort()
        except OSError as exc:
            self.obs.tcp = "client" if self.aborted else "reset"
            if not self.aborted:
                self.obs.violations.append(f"read error: {exc!r}")
        finally:
            # What the parser noted (masking, RSV bits, control frame rules) is judged too.
            for text in self.parser.violations:
                if text not in self.obs.violations:
                    self.obs.violations.append(text)
            self.eof = True
            self._notify()

    def _on_frame(self, frame: WireFrame) -> None:
        obs = self.obs
        if obs.close_seen:
            obs.frames_after_close += 1
            return
        op = frame.opcode
        if op == OP_PING:
            obs.server_pings += 1
            if not self.client_close_sent:
                self._emit_control(encode_frame(OP_PONG, frame.payload))
        elif op == OP_PONG:
            self._record(Ev("pong", frame.payload))
        elif op == OP_CLOSE:
            obs.close_seen = True
            obs.server_closed_first = not self.client_close_sent
            obs.close_code, obs.close_reason, obs.close_problem = parse_close_payload(frame.payload)
            if not self.client_close_sent:
                # Answer as a correct client: echo the code (RFC 6455 section 5.5.1).
                self.client_close_sent = True
                reply = frame.payload[:2] if obs.close_problem is None else b"\x03\xea"
                self._emit_control(encode_frame(OP_CLOSE, reply))
        elif op in (OP_TEXT, OP_BINARY):
            if self._msg_opcode is not None:
                obs.violations.append("server started a new data message inside a fragmented one")
            self._msg_opcode, self._msg_parts, self._msg_size = op, [], 0
            # RSV1 marks a compressed message on its first frame only (RFC 7692 section 6.1).
            self._msg_compressed = self.compression is not None and bool(frame.rsv & 4)
            self._add_fragment(frame)
        elif op == OP_CONT:
            if self._msg_opcode is None:
                obs.violations.append("server sent a continuation frame with nothing to continue")
                return
            if self.compression is not None and frame.rsv & 4:
                text = "server set RSV1 on a continuation frame (RFC 7692 6.1: first frame only)"
                if text not in obs.violations:
                    obs.violations.append(text)
            self._add_fragment(frame)
        # Reserved opcodes were noted by the parser; there is nothing else to do with them.

    def _add_fragment(self, frame: WireFrame) -> None:
        data = frame.payload
        if self._msg_compressed:
            assert self.compression is not None
            # Bounded: inflating stops past what the message may still grow by.
            room = self.cfg.max_message - self._msg_size
            data = self.compression.inflate(data, fin=frame.fin, limit=room)
        self._msg_size += len(data)
        if self._msg_size > self.cfg.max_message:
            raise ValueError(
                f"server message exceeds the runner's limit of {self.cfg.max_message} bytes"
            )
        self._msg_parts.append(data)
        if frame.fin:
            opcode = self._msg_opcode or OP_TEXT
            payload = b"".join(self._msg_parts)
            self._msg_opcode, self._msg_parts, self._msg_size = None, [], 0
            if opcode == OP_TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    self.obs.violations.append("server sent a text message that is not valid UTF-8")
            if self._msg_compressed:
                assert self.compression is not None
                wire = self.compression.finish_message()
            else:
                wire = WireInfo(False, len(payload), b"")
            self._record(Ev("message", payload, opcode), wire)

    def _record(self, ev: Ev, wire: WireInfo | None = None) -> None:
        if len(self.obs.events) < self.cfg.max_events:
            self.obs.events.append(ev)
            if wire is not None:
                self.obs.message_wire.append(wire)
        else:
            self.obs.events_dropped += 1

    # -- writing ----------------------------------------------------------------------------------

    def _emit_control(self, data: bytes) -> None:
        if self.mid_frame:
            # Bounded: beyond _MAX_PENDING queued replies (a ping flood while we write a long
            # chopped frame) further pongs are dropped; the close reply always gets a place.
            if len(self.pending) < _MAX_PENDING or data[0] & 0x0F == OP_CLOSE:
                self.pending.append(data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.write_failed or self.aborted:
            return
        try:
            self.writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            self.write_failed = True

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            self.write_failed = True

    def _flush_pending(self) -> None:
        pending, self.pending = self.pending, []
        for data in pending:
            self._write(data)

    async def write_frames(
        self, frames: list[bytes], chop: int, delay: float, per_frame: bool
    ) -> None:
        """Write encoded frames whole, one write per frame, or in chops; stop between frames
        once the server has closed, but never in the middle of one."""
        if not chop and not per_frame:
            self._write(b"".join(frames))
            self._note_written(frames)
            await self._drain()
            return
        for data in frames:
            if not self.open or self.write_failed:
                return
            if not chop:
                self._write(data)
                self._note_written([data])
                await self._drain()
                await asyncio.sleep(delay)
                continue
            self.mid_frame = True
            try:
                for i in range(0, len(data), chop):
                    if not self.open or self.write_failed:
                        self._write(data[i:])  # finish this frame at once
                        break
                    self._write(data[i : i + chop])
                    await self._drain()
                    await asyncio.sleep(delay)
            finally:
                self.mid_frame = False
            self._note_written([data])
            self._flush_pending()

    def _note_written(self, frames: list[bytes]) -> None:
        # Only a close with a well-formed header starts the closing handshake; a close with RSV
        # bits or FIN clear (3.7) is just a bad frame, and the server's close is then answered.
        if any(f[0] & 0x0F == OP_CLOSE and f[0] & 0xF0 == 0x80 for f in frames):
            self.client_close_sent = True

    # -- the script -------------------------------------------------------------------------------

    async def run_script(self, case: Case, timeout: float) -> None:
        """Play the case's steps; stop early once the server has closed."""
        # Frames delivered piecewise (SendPart): encoded once, with how much was written so far.
        partial: dict[Frame, tuple[bytes, int]] = {}
        for step in case.steps:
            if not self.open or self.write_failed:
                break
            if isinstance(step, Pause):
                seconds = self.cfg.pause if step.seconds is None else step.seconds
                await self.wait_for(lambda: not self.open, seconds)
                if step.label is not None and self.open:
                    self._record(Ev("timeout", step.label.encode()))
            elif isinstance(step, Send):
                encoded = [_encode(f) for f in step.frames]
                if step.split == "chops":
                    await self.write_frames(encoded, step.chop, step.delay, per_frame=True)
                else:
                    await self.write_frames(
                        encoded, 0, step.delay, per_frame=step.split == "frames"
                    )
            elif isinstance(step, SendMessage):
                before = len(self.obs.events) + self.obs.events_dropped
                await self.write_frames(
                    self._message_frames(step), step.chop, step.delay, per_frame=bool(step.chop)
                )
                if step.await_echo:
                    await self.wait_for(
                        functools.partial(self._echoed_since, before),
                        timeout,
                    )
            elif isinstance(step, SendPart):
                data, _ = partial.get(step.frame) or (_encode(step.frame), 0)
                head = len(data) - data_length(step.frame.payload)
                start = 0 if step.start == 0 else head + step.start
                end = head + step.end
                self._write(data[start:end])
                partial[step.frame] = (data, end)
                # Until the frame is complete, control replies must wait for its last piece.
                self.mid_frame = end < len(data)
                await self._drain()
        # A frame left unfinished (the server closed during a pause) is completed, so that the
        # close reply which follows is parsed by the server as a frame of its own.
        for data, written in partial.values():
            if written < len(data):
                self._write(data[written:])
        self.mid_frame = False
        self._flush_pending()
        await self._drain()

    def _message_frames(self, step: SendMessage) -> list[bytes]:
        if not step.compressed:
            return _fragment(step)
        # Only cases with offers compress, and they run only once an agreement exists.
        assert self.compression is not None
        parts = self.compression.message_frames(as_bytes(step.payload), step.fragment, step.stream)
        return [
            encode_frame(step.opcode if i == 0 else OP_CONT, data, fin=fin, rsv=4 if i == 0 else 0)
            for i, (data, fin) in enumerate(parts)
        ]

    async def close_unrun(self, timeout: float) -> None:
        """End a case that could not run: a clean close 1000, then wait for the server's TCP close."""
        if self.open:
            self.client_close_sent = True
            self._write(encode_frame(OP_CLOSE, b"\x03\xe8"))
            await self._drain()
        await self.wait_for(lambda: self.eof, timeout)
        if not self.eof:
            self.aborted = True
            self.writer.transport.abort()

    async def finish(self, case: Case, timeout: float) -> None:
        """Close as the case demands and wait for the server to end the connection."""
        if case.closing.initiator == "client" and not self.client_close_sent and self.open:
            want = len(case.expected)
            if want:
                await self.wait_for(lambda: len(self.obs.events) >= want or not self.open, timeout)
            else:
                # Nothing is expected: listen a little so that a reply nobody asked for (a pong
                # to an unsolicited pong, an echo after our close) is seen, not cut off.
                await self.wait_for(lambda: not self.open, self.cfg.settle)
            if self.open:
                self.client_close_sent = True
                self._write(encode_frame(OP_CLOSE, b"\x03\xe8"))
                await self._drain()
        started = time.monotonic()
        await self.wait_for(lambda: self.eof, timeout)
        self.obs.waited_for_close = time.monotonic() - started
        if not self.eof:
            # The server did not close TCP in time: the runner drops it (a failure for strict cases).
            self.aborted = True
            self.writer.transport.abort()


def _encode(frame: Frame) -> bytes:
    return encode_frame(frame.opcode, as_bytes(frame.payload), fin=frame.fin, rsv=frame.rsv)


def _fragment(step: SendMessage) -> list[bytes]:
    """The frames of one message cut into fragments of ``step.fragment`` payload bytes."""
    payload = as_bytes(step.payload)
    size = step.fragment or len(payload) or 1
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    last = len(pieces) - 1
    return [
        encode_frame(step.opcode if i == 0 else OP_CONT, piece, fin=i == last)
        for i, piece in enumerate(pieces)
    ]


# -- connecting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    resource: str
    secure: bool


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"not a ws:// or wss:// URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.hostname, port, resource, secure)


async def _connect(
    target: _Target, cfg: RunConfig, offers: tuple[str, ...] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Agreement | None]:
    """Open TCP (and TLS for wss) and complete the opening handshake; raise on any problem.

    With ``offers``, they are sent as ``Sec-WebSocket-Extensions`` lines and the server's answer
    is judged: the agreement is returned (None when the server declined), an invalid answer
    fails the handshake.
    """
    ctx = (cfg.ssl or ssl_module.create_default_context()) if target.secure else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port, ssl=ctx), cfg.timeout
    )
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Chops must leave as separate segments, not be coalesced by Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = make_key()
        default_port = 443 if target.secure else 80
        request = build_request(
            target.host,
            target.port,
            target.resource,
            key,
            default_port=default_port,
            extensions=offers or (),
        )
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), cfg.timeout)
        problem = check_response(head[:-4], key, extensions_offered=offers is not None)
        if problem is not None:
            raise ConnectionError(f"handshake failed: {problem}")
        agreement = None
        if offers is not None:
            answer = header_values(head[:-4], "Sec-WebSocket-Extensions")
            try:
                agreement = check_answer(offers, answer)
            except AnswerError as exc:
                raise ConnectionError(f"handshake failed: {exc}") from None
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer, agreement
