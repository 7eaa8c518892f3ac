"""Checkers for the course's exercises: a clear "correct" or a hint that points at the mistake.

Each ``check_*`` function takes the student's answer, prints a one-line success message when it
is right and raises :class:`AssertionError` with a hint when it is not. A hint names what is wrong
and where to look (the RFC section, the field), never the expected answer itself. The final word
always belongs to the engine: an answer is only "correct" once wslab's own protocol accepts it.

Chapter 1 (``01_frames.ipynb``):

- :func:`check_frame_exercise` — a masked client text frame built by hand;
- :func:`check_header_size_exercise` — a function giving a frame header's size.
"""

from __future__ import annotations

from collections.abc import Callable

from wslab.foundation import (
    Opcode,
    Protocol,
    ProtocolFailure,
    Role,
    TextReceived,
    encode_header,
)

from .verdicts import hint, success

__all__ = [
    "FRAME_EXERCISE_KEY",
    "FRAME_EXERCISE_TEXT",
    "check_frame_exercise",
    "check_header_size_exercise",
]

FRAME_EXERCISE_TEXT = "wslab"
FRAME_EXERCISE_KEY = bytes([1, 2, 3, 4])


# -- exercise 1: a frame by hand -------------------------------------------------------------------


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


def check_header_size_exercise(header_size: Callable[[int, bool], int]) -> None:
    """Check ``header_size(payload_length, masked) -> int``, the bytes a frame header takes.

    The function must apply the rules of RFC 6455 5.2 itself (two fixed bytes, the shortest of the
    three length encodings, the masking key when masked) — checked at every boundary.
    """
    if not callable(header_size):
        raise hint(
            f"expected a function header_size(payload_length, masked), got {header_size!r}."
        )
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
