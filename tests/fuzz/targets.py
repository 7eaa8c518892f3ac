"""Fuzz targets: one function per parser, each taking arbitrary bytes and checking the contract.

The contract, for every parser the hub exposes to the network: any input yields events (or a
parsed value), a clean protocol error with the right close code or HTTP status, or an error
envelope — never an unhandled exception, and memory held bounded by the configured limits.
A target raises :class:`AssertionError` (or lets an unexpected exception escape) when the
contract is broken; otherwise it returns None.

The same targets are driven three ways: by hypothesis (``test_targets.py``, in the normal
suite), by atheris for coverage-guided runs (``run.py``), and by replaying the committed seed
corpus in ``corpus/<target>/``. The first byte or two of an input choose options (role, limits,
chunking), so the fuzzer explores those too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from wslab.application.validation import MAX_SEQ, SCHEMAS, validate
from wslab.foundation.codes import Opcode, is_valid_wire_close_code
from wslab.foundation.deflate import DeflateParams
from wslab.foundation.errors import (
    HandshakeError,
    InvalidCloseFrame,
    InvalidUTF8,
    ProtocolError,
    ValidationError,
    WslabError,
)
from wslab.foundation.frames import (
    FrameParser,
    encode_close_payload,
    parse_close_payload,
)
from wslab.foundation.handshake import (
    is_upgrade_request,
    reject,
    validate_upgrade_request,
    validate_upgrade_response,
)
from wslab.foundation.http import RequestParser, ResponseParser
from wslab.foundation.protocol import (
    BinaryReceived,
    CloseReceived,
    PingReceived,
    PongReceived,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
)
from wslab.infrastructure.router import MessageRouter, error_envelope

__all__ = ["TARGETS"]

_EVENTS = (TextReceived, BinaryReceived, PingReceived, PongReceived, CloseReceived, ProtocolFailure)
#: Close codes a receiving engine may fail with: protocol error, bad UTF-8, too big.
_FAILURE_CODES = {1002, 1007, 1009}
#: (max_frame_size, max_message_size, max_fragments) variants the option byte picks from.
_LIMITS: list[tuple[int | None, int | None, int | None]] = [
    (None, None, None),
    (300, 600, 8),
    (64, 1024, None),
    (None, 200, 4),
]
#: Longest error envelope the hub may send back for one bad message (echoed fields are bounded).
MAX_ENVELOPE = 1024


def _chunks(data: bytes, step: int) -> list[bytes]:
    """``data`` cut in pieces of ``step`` bytes (0: in one piece)."""
    if step == 0:
        return [data]
    return [data[i : i + step] for i in range(0, len(data), step)]


def _options(data: bytes) -> tuple[int, int, bytes]:
    """The option byte, the chunk-size byte and the rest of ``data``."""
    head = data[:2].ljust(2, b"\0")
    return head[0], head[1], data[2:]


# -- WebSocket frames through the engine ---------------------------------------------------------


def frames(data: bytes) -> None:
    """Bytes from a peer into :class:`Protocol`: events, or one failure with 1002/1007/1009."""
    opts, step, stream = _options(data)
    role = Role.SERVER if opts & 1 else Role.CLIENT
    frame_limit, message_limit, fragments = _LIMITS[(opts >> 1) % len(_LIMITS)]
    deflate = DeflateParams() if opts & 0x10 else None
    proto = Protocol(
        role,
        now=0.0,
        max_frame_size=frame_limit,
        max_message_size=message_limit,
        max_fragments=fragments,
        deflate=deflate,
    )
    proto.open(now=0.0)
    finished = False
    for piece in _chunks(stream, step % 17):
        events = proto.receive_data(piece)
        proto.data_to_send()
        if finished:
            assert events == [], "input after a close or a failure must be ignored"
        for i, event in enumerate(events):
            assert isinstance(event, _EVENTS), event
            if isinstance(event, (ProtocolFailure, CloseReceived)):
                assert i == len(events) - 1, "nothing may follow a close or a failure"
                finished = True
            if isinstance(event, ProtocolFailure):
                assert isinstance(event.error, ProtocolError)
                assert event.close_code in _FAILURE_CODES, event.close_code
            if message_limit is not None and isinstance(event, (TextReceived, BinaryReceived)):
                size = len(event.text.encode() if isinstance(event, TextReceived) else event.data)
                assert size <= message_limit, f"a {size}-byte message passed a {message_limit} limit"
        # Memory held between reads: one partial frame and one partial message, both bounded.
        if frame_limit is not None:
            assert proto.parser.buffered <= frame_limit + 14, proto.parser.buffered
        if message_limit is not None:
            assert proto.assembler.buffered <= message_limit, proto.assembler.buffered
    proto.connection_lost(now=1.0)


def frame_parser(data: bytes) -> None:
    """The bare :class:`FrameParser`: frames, or a :class:`ProtocolError` it keeps raising."""
    opts, step, stream = _options(data)
    parser = FrameParser(max_frame_size=256 if opts & 2 else None, require_mask=bool(opts & 1))
    failed: ProtocolError | None = None
    for piece in _chunks(stream, step % 9):
        try:
            for frame in parser.feed(piece):
                assert isinstance(frame.opcode, Opcode)
                if frame.is_control:
                    assert len(frame.payload) <= 125 and frame.fin
        except ProtocolError as error:
            assert failed is None or parser.error is not None
            failed = error
    if failed is not None:
        assert parser.error is not None


def close_payload(data: bytes) -> None:
    """A close frame's payload: ``(code, reason)`` that re-encodes to the same bytes, or 1002/1007."""
    try:
        code, reason = parse_close_payload(data)
    except (InvalidCloseFrame, InvalidUTF8) as error:
        assert error.close_code in (1002, 1007), error.close_code
        return
    if not data:
        assert code == 1005 and reason == ""
        return
    assert is_valid_wire_close_code(code)
    assert encode_close_payload(code, reason) == data


# -- HTTP heads and the opening handshake ---------------------------------------------------------


def _check_rejection(error: HandshakeError) -> None:
    assert 400 <= error.status < 600, error.status
    answer = reject(error)
    parser = ResponseParser()
    response = parser.feed(answer)
    assert response is not None and response.status == error.status
    assert len(answer) < 4096, "an error answer must not echo the request"


def http_request(data: bytes) -> None:
    """A request head (then the upgrade checks): a Request, or an HTTP error with its status."""
    _, step, stream = _options(data)
    parser = RequestParser(max_head_size=2048, max_headers=32)
    try:
        request = None
        for piece in _chunks(stream, step % 13):
            request = parser.feed(piece)
            if request is not None:
                break
            assert len(parser._buffer) <= 2048 + max(step % 13, len(stream))
        if request is None:
            return
        if is_upgrade_request(request) or data[:1] == b"U":
            upgrade = validate_upgrade_request(request)
            assert len(upgrade.accept) == 28
    except HandshakeError as error:
        _check_rejection(error)


def http_response(data: bytes) -> None:
    """A response head, as a client reads it, then checked as the answer to a fixed key."""
    _, step, stream = _options(data)
    parser = ResponseParser(max_head_size=2048, max_headers=32)
    try:
        response = None
        for piece in _chunks(stream, step % 13):
            response = parser.feed(piece)
            if response is not None:
                break
        if response is None:
            return
        validate_upgrade_response(response, "dGhlIHNhbXBsZSBub25jZQ==")
    except HandshakeError as error:
        assert 100 <= error.status < 600


# -- the JSON router and the validation layer -----------------------------------------------------

_ROUTER = MessageRouter()


async def _noop(_request: Any) -> None:  # pragma: no cover - never awaited: parse only
    return None


for _type in SCHEMAS:
    _ROUTER.add_route(_type, _noop)


def _envelope_ok(error: WslabError, ref: Any = None) -> None:
    text = json.dumps(error_envelope(error, ref))
    assert len(text) <= MAX_ENVELOPE, f"a {len(text)}-character error envelope echoes input"


def router(data: bytes) -> None:
    """A raw text message through the router's parse and the schema: a request or an envelope."""
    raw: str | bytes = data[1:] if data[:1] == b"\x00" else data.decode("utf-8", "replace")
    try:
        request = _ROUTER.parse(None, raw)  # type: ignore[arg-type] - parse never reads it
    except WslabError as error:
        assert error.code.name in ("INVALID_INPUT", "NOT_FOUND"), error.code
        _envelope_ok(error, getattr(error, "ref", None))
        return
    assert isinstance(request.body, dict) and request.type in SCHEMAS
    _validated(request.type, request.body)


def _validated(message_type: str, body: dict[str, Any]) -> None:
    try:
        clean = validate(message_type, body)
    except ValidationError as error:
        _envelope_ok(error)
        return
    for name, value in clean.items():
        if name in ("room",) and value is not None:
            assert value.isascii() and value.isprintable() and 1 <= len(value) <= 64, value
        if name.endswith("_seq") and value is not None:
            assert 0 <= value <= MAX_SEQ
        if name == "content":
            assert 1 <= len(value) <= 5000


def validation(data: bytes) -> None:
    """A JSON body (the first byte picks the message type) straight into :func:`validate`."""
    types = sorted(SCHEMAS)
    message_type = types[data[0] % len(types)] if data else types[0]
    try:
        body = json.loads(data[1:].decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return
    if isinstance(body, dict):
        _validated(message_type, body)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frames": frames,
    "frame_parser": frame_parser,
    "close_payload": close_payload,
    "http_request": http_request,
    "http_response": http_response,
    "router": router,
    "validation": validation,
}
