"""Checkers for the course's exercises: a clear "correct" or a hint that points at the mistake.

Each ``check_*`` function takes the student's answer, prints a one-line success message when it
is right and raises :class:`AssertionError` with a hint when it is not. A hint names what is wrong
and where to look (the RFC section, the field), never the expected answer itself. The final word
always belongs to the engine: an answer is only "correct" once wslab's own protocol accepts it.

Chapter 1 (``01_frames.ipynb``):

- :func:`check_frame_exercise` — a masked client text frame built by hand;
- :func:`check_header_size_exercise` — a function giving a frame header's size;
- :func:`check_deflate_exercise` — a function compressing a message as permessage-deflate does.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from wslab.foundation import (
    Frame,
    Opcode,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
    encode_frame,
    encode_header,
)
from wslab.foundation.deflate import TAIL, DeflateParams, Inflater
from wslab.foundation.errors import WslabError

from .verdicts import exercise, hint, success

__all__ = [
    "DEFLATE_EXERCISE_MESSAGES",
    "FRAME_EXERCISE_KEY",
    "FRAME_EXERCISE_TEXT",
    "check_deflate_exercise",
    "check_frame_exercise",
    "check_header_size_exercise",
]

FRAME_EXERCISE_TEXT = "wslab"
FRAME_EXERCISE_KEY = bytes([1, 2, 3, 4])


# -- exercise 1: a frame by hand -------------------------------------------------------------------


@exercise('01.frame', 'Build `my_frame` from two header bytes, the key and the masked payload (§5.2, §5.3).')
def check_frame_exercise(student_bytes: object) -> None:
    """Check a hand-built frame: a masked client text frame carrying ``"wslab"``, key ``01 02 03 04``.

    The exercise: with ``bytes``/``struct`` only (not ``encode_frame``), build the frame a client
    sends for the text message ``"wslab"``, masked with the key ``01 02 03 04``.
    """
    data = _as_bytes(student_bytes)
    text = FRAME_EXERCISE_TEXT.encode("utf-8")
    key = FRAME_EXERCISE_KEY
    if len(data) < 2:
        raise hint(f"got {len(data)} byte(s); every frame starts with two header bytes (5.2).")
    first, second = data[0], data[1]
    if not first & 0x80:
        raise hint(
            f"the first byte is {first:#04x}: its top bit, FIN, is 0, which says more fragments "
            "follow. This message is a single frame (RFC 6455 5.2)."
        )
    if first & 0x70:
        raise hint(
            f"the first byte is {first:#04x}: one of RSV1-3 (bits 1-3) is set. No extension was "
            "negotiated, so they must be 0; a server would close with 1002."
        )
    if first & 0x0F != Opcode.TEXT:
        raise hint(
            f"the opcode (low 4 bits of the first byte) is {first & 0x0F:#x}; which opcode "
            "marks a text frame? (RFC 6455 5.2, 11.8)"
        )
    if not second & 0x80:
        raise hint(
            f"the second byte is {second:#04x}: the MASK bit (its top bit) is 0. A client MUST "
            "mask every frame it sends (RFC 6455 5.1, 5.3)."
        )
    len7 = second & 0x7F
    if len7 in (126, 127):
        raise hint(
            f"payload len is {len7}, an escape for an extended length, but {len(text)} bytes fit "
            "in the 7 bits: the minimal encoding MUST be used (5.2)."
        )
    if len7 != len(text):
        raise hint(
            f"payload len (low 7 bits of the second byte) says {len7}; how many bytes does the "
            f"UTF-8 encoding of {FRAME_EXERCISE_TEXT!r} have?"
        )
    if len(data) < 6:
        raise hint("after the two header bytes of a masked frame comes the 4-byte masking key.")
    if data[2:6] != key:
        raise hint(
            f"the masking key (bytes 2-5) is {data[2:6].hex(' ')}; the exercise asks for "
            f"{key.hex(' ')}."
        )
    payload = data[6:]
    if len(payload) != len(text):
        raise hint(
            f"after the 6 header bytes there are {len(payload)} payload bytes, but the header "
            f"announces {len7}."
        )
    if payload == text:
        raise hint(
            "the payload is the plain text: a masked frame carries each byte XOR-ed with the "
            "masking key (RFC 6455 5.3)."
        )
    for i, (wire, want) in enumerate(zip(payload, text, strict=True)):
        if wire ^ key[i % 4] != want:
            raise hint(
                f"payload byte {i} is {wire:#04x}; XOR-ed with the key byte that applies to "
                f"position {i} it should give {chr(want)!r}. Which key byte is that? "
                "(j = i MOD 4, RFC 6455 5.3)"
            )
    # The last word belongs to the engine: a server must accept the frame as the same message.
    server = Protocol(Role.SERVER, now=0.0)
    server.open(now=0.0)
    events = server.receive_data(data, now=0.0)
    if events != [TextReceived(FRAME_EXERCISE_TEXT)]:  # pragma: no cover - checks above catch it
        failure = next((e for e in events if isinstance(e, ProtocolFailure)), None)
        detail = failure.error.message if failure else repr(events)
        raise hint(f"wslab's server does not read it as the message: {detail}")
    success(
        f"{len(data)} bytes: a FIN text frame, masked with {key.hex(' ')}; wslab's server "
        f"engine decodes it as {events[0]!r}."
    )


def _as_bytes(value: object) -> bytes:
    if isinstance(value, str):
        raise hint(
            "that is a str (text). A frame is bytes: build it with bytes([...]), b'...' "
            "literals or struct.pack()."
        )
    if isinstance(value, (list, tuple)):
        raise hint("that is a list of numbers; turn it into a frame with bytes(...).")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise hint(f"expected bytes, got {type(value).__name__}.")
    return bytes(value)


# -- exercise 2: the size of a header --------------------------------------------------------------

# Payload lengths around every boundary of the three length encodings (RFC 6455 5.2).
_SIZE_CASES = (0, 1, 125, 126, 127, 1000, 65535, 65536, 2**32, 2**63 - 1)


def _expected_header_size(payload_length: int, masked: bool) -> int:
    key = b"\x00" * 4 if masked else None
    return len(encode_header(Opcode.BINARY, payload_length, mask_key=key))


@exercise('01.header_size', 'Replace `raise NotImplementedError` with the rules of §5.2: a 2-byte base, the extended length, the key.')
def check_header_size_exercise(header_size: Callable[[int, bool], int]) -> None:
    """Check ``header_size(payload_length, masked) -> int``, the bytes a frame header takes.

    The function must apply the rules of RFC 6455 5.2 itself (two fixed bytes, the shortest of the
    three length encodings, the masking key when masked) — checked at every boundary.
    """
    if not callable(header_size):
        raise hint(f"expected a function header_size(payload_length, masked), got {header_size!r}.")
    for masked in (False, True):
        for n in _SIZE_CASES:
            try:
                got = header_size(n, masked)
            except Exception as exc:  # the student's code may fail in any way; report it
                raise hint(
                    f"header_size({n}, {masked}) raised {type(exc).__name__}: {exc}"
                ) from exc
            want = _expected_header_size(n, masked)
            if got == want:
                continue
            raise hint(
                f"header_size({n}, masked={masked}) returned {got!r}. {_size_hint(n, masked, got)}"
            )
    sizes = {n: _expected_header_size(n, False) for n in (125, 126, 65536)}
    success(
        "your function agrees with the engine at every boundary "
        f"(unmasked: 125 -> {sizes[125]}, 126 -> {sizes[126]}, 65536 -> {sizes[65536]} bytes; "
        "a client adds 4 for the key)."
    )


def _size_hint(n: int, masked: bool, got: object) -> str:
    if not isinstance(got, int):
        return "It should return an int, a number of bytes."
    unmasked_want = _expected_header_size(n, False)
    if masked and got == unmasked_want:
        return "A masked frame also carries its masking key in the header: how long is it?"
    if not masked and got == unmasked_want + 4:
        return "Only masked frames carry a masking key."
    if n < 126:
        return f"{n} fits in the 7-bit payload len field; the header is just the fixed part."
    if n < 65536:
        return (
            f"{n} does not fit in 7 bits (126 and 127 are escape codes): which extended length "
            "field is the smallest that holds it?"
        )
    return f"{n} does not fit in 16 bits: which extended length field holds it?"


# -- exercise 3: a compressed payload (permessage-deflate) -----------------------------------------

#: The messages the student's function compresses, in this order: two chat messages that share
#: most of their bytes (a compressor that keeps its context shows up on the second), and a
#: repetitive one with non-ASCII text (the payload is the UTF-8 bytes).
DEFLATE_EXERCISE_MESSAGES = (
    '{"type": "chat:message", "room": "lobby", "from_user": "alice", "content": "hello!"}',
    '{"type": "chat:message", "room": "lobby", "from_user": "bob", "content": "hi alice"}',
    "ça va ? " * 40,
)
_INFLATE_LIMIT = 1 << 20  # far above any right answer; a runaway stream is refused, not held


@exercise('01.deflate', 'Replace `raise NotImplementedError` with zlib calls: raw DEFLATE, a sync flush, the tail removed (RFC 7692 §7.2.1).')
def check_deflate_exercise(compress_message: Callable[[str], bytes]) -> None:
    """Check ``compress_message(text) -> bytes``: the payload of a compressed frame (RFC 7692).

    The function must do what a sender does in RFC 7692 7.2.1 — raw DEFLATE of the message's
    UTF-8 bytes, flushed, the ``00 00 ff ff`` tail removed — for each message on its own (the
    checker negotiates no context takeover). The verdict is wslab's server engine's: it must
    read each payload, in an RSV1 text frame, as the message.
    """
    if not callable(compress_message):
        raise hint(f"expected a function compress_message(text), got {compress_message!r}.")
    payloads: list[bytes] = []  # the answers so far: a compressor that kept its context needs them
    for index, text in enumerate(DEFLATE_EXERCISE_MESSAGES):
        raw = text.encode("utf-8")
        try:
            data = compress_message(text)
        except Exception as exc:  # the student's code may fail in any way; report it
            raise hint(
                f"compress_message(message {index}) raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(data, str):
            raise hint("that returned a str; a frame's payload is bytes (compress text.encode()).")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise hint(f"expected bytes, got {type(data).__name__}.")
        data = bytes(data)
        if data == raw:
            raise hint(
                "that is the message itself, uncompressed: an RSV1 frame carries DEFLATE data "
                "(RFC 7692 7.2.1)."
            )
        inflated = _inflate(Inflater(15, no_context_takeover=True), data)
        if inflated != raw:
            raise hint(_deflate_hint(data, raw, inflated, payloads))
        payloads.append(data)
        if data.endswith(TAIL):
            raise hint(
                "the payload ends with 00 00 ff ff, the empty block a sync flush writes: the "
                "sender MUST remove those 4 bytes, the receiver puts them back (RFC 7692 7.2.1)."
            )
        if len(data) >= len(raw) and len(raw) > 100:
            raise hint(
                f"message {index} is {len(raw)} bytes and its payload {len(data)}: nothing was "
                "compressed. Which compression level stores data as it is?"
            )
        # The last word belongs to the engine: a server that agreed permessage-deflate (without
        # context takeover) must read the RSV1 frame as the very message.
        server = Protocol(
            Role.SERVER,
            now=0.0,
            deflate=DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
        )
        server.open(now=0.0)
        frame = encode_frame(Frame(Opcode.TEXT, data, rsv1=True), FRAME_EXERCISE_KEY)
        events = server.receive_data(frame, now=0.0)
        if events != [TextReceived(text)]:  # pragma: no cover - the checks above catch it
            failure = next((e for e in events if isinstance(e, ProtocolFailure)), None)
            detail = failure.error.message if failure else repr(events)
            raise hint(f"wslab's server does not read message {index}: {detail}")
    sizes = ", ".join(
        f"{len(m.encode())} -> {len(compress_message(m))}" for m in DEFLATE_EXERCISE_MESSAGES
    )
    success(
        f"raw DEFLATE, flushed, tail removed: wslab's server inflates all "
        f"{len(DEFLATE_EXERCISE_MESSAGES)} RSV1 frames to the messages (bytes: {sizes})."
    )


def _inflate(inflater: Inflater, data: bytes) -> bytes | None:
    """``data`` inflated as a whole message, or None if it is not valid raw DEFLATE."""
    try:
        return inflater.inflate(data, fin=True, limit=_INFLATE_LIMIT)
    except WslabError:
        inflater.reset()
        return None


def _deflate_hint(data: bytes, raw: bytes, inflated: bytes | None, earlier: list[bytes]) -> str:
    """Why ``data`` does not inflate, on its own, to ``raw`` (``earlier``: the right answers so far)."""
    index = len(earlier)
    if data[:2] == b"\x1f\x8b":
        return (
            "the payload starts with 1f 8b, a gzip header (RFC 1952). permessage-deflate carries "
            "raw DEFLATE (RFC 1951), no header, no checksum: how does zlib's wbits select it?"
        )
    if inflated is None and _is_zlib(data):
        return (
            f"the payload starts with {data[:2].hex(' ')}, a zlib header (RFC 1950). "
            "permessage-deflate carries raw DEFLATE (RFC 1951), no header, no checksum: how "
            "does zlib's wbits select it?"
        )
    if earlier and _with_context(earlier, data) == raw:
        return (
            f"message {index} only inflates with the previous messages' context: your "
            "compressor kept it between calls. Without context takeover (what this checker "
            "negotiates) each message starts from a fresh compressor."
        )
    if inflated is not None and raw.startswith(inflated):
        return (
            f"message {index} inflates to only {len(inflated)} of its {len(raw)} bytes: zlib keeps "
            "the rest until a flush. Which flush mode ends the output on a byte boundary and "
            "keeps the stream open? (RFC 7692 7.2.1)"
        )
    if inflated is not None:
        return (
            f"message {index} inflates to {len(inflated)} bytes that are not the UTF-8 encoding of "
            "the message."
        )
    return f"message {index} is not valid raw DEFLATE data; wslab's inflater cannot read it."


def _with_context(earlier: list[bytes], data: bytes) -> bytes | None:
    """``data`` inflated after ``earlier`` on one inflater: what context takeover would give."""
    inflater = Inflater(15)
    for payload in earlier:
        _inflate(inflater, payload)
    return _inflate(inflater, data)


def _is_zlib(data: bytes) -> bool:
    # RFC 1950 2.2: CM = 8 (deflate) in the low nibble, and the two bytes a multiple of 31.
    if len(data) < 2 or data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31:
        return False
    try:
        zlib.decompressobj().decompress(data)
    except zlib.error:
        return False
    return True
