"""Fragments to messages, with fail-fast UTF-8 validation.

A message is one data frame with FIN set, or a TEXT/BINARY frame without FIN followed by CONT
frames, the last with FIN (RFC 6455 section 5.4). Control frames may arrive between fragments;
they never reach this module (the protocol handles them), so they do not disturb assembly.

Text must be valid UTF-8 (section 8.1), and a receiver should fail the connection as soon as it
sees an invalid byte, not when the message ends: a peer could otherwise make us buffer megabytes
of garbage. Python's incremental UTF-8 decoder reports an error at the first byte that cannot
start or continue a valid sequence, so every byte is checked as it arrives — both across
fragments and inside a frame that is still arriving (:meth:`MessageAssembler.check_partial`).

Memory: a fragmented message is kept in **one** ``bytearray``, whatever the number of fragments,
so it costs its own size and nothing per fragment (a list of parts would cost ~40 bytes per
part: a message in 2-byte fragments would hold 20x its size). A fragmented text is therefore
checked incrementally as it arrives and decoded once more, whole, when it completes: twice the
decoding, on the rare path only. ``max_fragments`` caps the frames of one message, empty ones
included, because an endless run of empty continuation frames costs no memory but unbounded work.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from .codes import Opcode
from .errors import InvalidUTF8, PayloadTooBig, ProtocolError
from .frames import Frame

__all__ = ["Message", "MessageAssembler"]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``data`` is ``str`` for text and ``bytes`` for binary."""

    data: str | bytes
    frames: int = 1

    @property
    def is_text(self) -> bool:
        """True for a text message."""
        return isinstance(self.data, str)


class MessageAssembler:
    """Collects data frames into messages; raises a ``ProtocolError`` on any violation.

    ``max_message_size`` bounds the bytes of one message across all its fragments, and
    ``max_fragments`` the number of its frames, empty ones included (1009 beyond either).
    """

    # One per connection: slots keep thousands of them small.
    __slots__ = (
        "_buffer", "_checked", "_decoder", "_frames", "_opcode", "_size", "max_fragments",
        "max_message_size",
    )

    def __init__(
        self, max_message_size: int | None = None, max_fragments: int | None = None
    ) -> None:
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self._opcode: Opcode | None = None  # the type of the message in progress
        self._buffer = bytearray()  # the fragments so far, as received (text: still UTF-8)
        self._size = 0
        self._frames = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        # Bytes of the frame in progress already decoded by check_partial().
        self._checked = 0

    @property
    def in_progress(self) -> bool:
        """True while a fragmented message has started and not finished."""
        return self._opcode is not None

    @property
    def buffered(self) -> int:
        """Bytes of the message in progress held so far."""
        return self._size

    def check_partial(self, header: Frame, payload_so_far: memoryview) -> None:
        """Validate the UTF-8 of a text frame that is still arriving, up to its last byte.

        ``header`` is the frame in progress (header fields only) and ``payload_so_far`` its
        unmasked payload received so far. Only the new bytes are decoded; the rest is decoded
        when the frame completes, so no byte is decoded twice.
        """
        opcode = header.opcode
        # Order violations are visible from the header: report them before the payload ends.
        if opcode is Opcode.CONT and self._opcode is None:
            raise ProtocolError("continuation frame without a message to continue")
        if opcode is not Opcode.CONT and self._opcode is not None:
            raise ProtocolError(f"new {opcode.name} frame while a fragmented message is open")
        if opcode is Opcode.TEXT and self._opcode is None:
            if self._decoder is None:
                self._decoder = _utf8_decoder()
        elif not (opcode is Opcode.CONT and self._opcode is Opcode.TEXT):
            return
        new = payload_so_far[self._checked :]
        if not new:
            return
        self._check_size(len(new))
        self._validate(new, final=False)
        self._checked += len(new)
        self._size += len(new)
        self._buffer += new

    def add(self, frame: Frame) -> Message | None:
        """Add a data frame; return the message it completes, if any."""
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            if self._opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._opcode is not None:
            raise ProtocolError(f"new {opcode.name} frame while a fragmented message is open")
        elif opcode is not Opcode.TEXT and opcode is not Opcode.BINARY:
            raise ProtocolError(f"{opcode.name} is not a data frame")
        elif frame.fin and self._decoder is None:
            return self._single_frame_message(frame)  # the common case: one frame, one message
        else:
            self._opcode = opcode
            if opcode is Opcode.TEXT and self._decoder is None:
                self._decoder = _utf8_decoder()

        payload = frame.payload
        rest = memoryview(payload)[self._checked :] if self._checked else payload
        self._checked = 0
        self._check_size(len(rest))
        self._frames += 1
        if self.max_fragments is not None and self._frames > self.max_fragments:
            raise PayloadTooBig(f"message in more than {self.max_fragments} fragments")
        if self._opcode is Opcode.TEXT:
            self._validate(rest, final=frame.fin)
        self._buffer += rest
        self._size += len(rest)
        if not frame.fin:
            return None
        buffer = self._buffer
        # Already validated: decoding cannot fail. A single frame's text (checked while it
        # arrived) takes the same path.
        data: str | bytes = buffer.decode("utf-8") if self._opcode is Opcode.TEXT else bytes(buffer)
        message = Message(data, self._frames)
        self._reset()
        return message

    # -- internals ---------------------------------------------------------------------------------

    def _single_frame_message(self, frame: Frame) -> Message:
        payload = frame.payload
        self._check_size(len(payload))
        if frame.opcode is Opcode.BINARY:
            return Message(payload)
        try:
            return Message(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidUTF8(f"invalid UTF-8 in text message at byte {exc.start}") from None

    def _check_size(self, more: int) -> None:
        if self.max_message_size is not None and self._size + more > self.max_message_size:
            raise PayloadTooBig(f"message over the limit of {self.max_message_size} bytes")

    def _validate(self, data: bytes | memoryview, *, final: bool) -> None:
        """Check the next UTF-8 bytes of the message (the decoded text is not kept)."""
        assert self._decoder is not None
        # The decoder may hold the first bytes of a character from the previous chunk; its error
        # positions count from those, and self._size does not include ``data`` yet.
        held = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            offset = self._size - held + exc.start
            raise InvalidUTF8(f"invalid UTF-8 in text message at byte {offset}") from None

    def reset(self) -> None:
        """Forget the message in progress and free its buffer."""
        self._reset()

    def _reset(self) -> None:
        self._opcode = None
        self._buffer = bytearray()
        self._size = 0
        self._frames = 0
        self._decoder = None
        self._checked = 0
