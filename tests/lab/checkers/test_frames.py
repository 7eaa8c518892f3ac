"""The exercise checkers: a right answer passes, the usual wrong answers get a useful hint."""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable

import pytest

from wslab.foundation import (
    Frame,
    Opcode,
    Protocol,
    Role,
    TextReceived,
    encode_frame,
    encode_header,
)
from wslab.foundation.deflate import DeflateParams, Deflater
from wslab.lab import check_frame_exercise, check_header_size_exercise
from wslab.lab.checkers.frames import DEFLATE_EXERCISE_MESSAGES, check_deflate_exercise

KEY = bytes([1, 2, 3, 4])
TEXT = b"wslab"


def hand_built(
    first: int = 0x81, second: int = 0x85, key: bytes = KEY, payload: bytes | None = None
) -> bytes:
    if payload is None:
        payload = bytes(b ^ KEY[i % 4] for i, b in enumerate(TEXT))
    return struct.pack("!BB", first, second) + key + payload


# -- the frame exercise ----------------------------------------------------------------------------


def test_a_right_frame_passes_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    check_frame_exercise(hand_built())
    out = capsys.readouterr().out
    assert "Correct" in out and "TextReceived(text='wslab'" in out


def test_the_engines_own_frame_passes_too() -> None:
    check_frame_exercise(bytearray(encode_frame(Frame(Opcode.TEXT, TEXT), KEY)))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ("\x81\x85", "str"),
        ([0x81, 0x85], "bytes(...)"),
        (42, "expected bytes"),
        (b"\x81", "two header bytes"),
        (hand_built(first=0x01), "FIN"),
        (hand_built(first=0xC1), "RSV"),
        (hand_built(first=0x82), "opcode"),
        (hand_built(second=0x05), "MASK"),
        (hand_built(second=0x86), "payload len"),
        (b"\x81\xfe\x00\x05" + KEY + hand_built()[6:], "minimal encoding"),
        (b"\x81\x85\x01\x02", "masking key"),
        (hand_built(key=b"\x04\x03\x02\x01"), "01 02 03 04"),
        (hand_built(payload=b"wsla"), "payload bytes"),
        (hand_built(payload=TEXT), "plain text"),
        # The usual slip: the key does not wrap, so byte 4 is XOR-ed with the wrong key byte.
        (hand_built(payload=hand_built()[6:10] + bytes([ord("b") ^ 0])), "byte 4"),
    ],
)
def test_typical_mistakes_get_a_hint(answer: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_frame_exercise(answer)
    assert hint in str(caught.value)


def test_hints_do_not_give_the_answer_away() -> None:
    right = hand_built()
    wrong_answers = [hand_built(first=0x01), hand_built(payload=TEXT), hand_built(second=0x05)]
    for answer in wrong_answers:
        with pytest.raises(AssertionError) as caught:
            check_frame_exercise(answer)
        message = str(caught.value)
        assert right.hex() not in message and right[6:].hex(" ") not in message


# -- the header size exercise ----------------------------------------------------------------------


def right_header_size(payload_length: int, masked: bool) -> int:
    size = 2 if payload_length < 126 else 4 if payload_length < 65536 else 10
    return size + (4 if masked else 0)


def test_a_right_function_passes(capsys: pytest.CaptureFixture[str]) -> None:
    check_header_size_exercise(right_header_size)
    assert "125 -> 2, 126 -> 4, 65536 -> 10" in capsys.readouterr().out


def test_the_engine_agrees_with_the_reference_solution() -> None:
    for n in (0, 125, 126, 65535, 65536):
        assert len(encode_header(Opcode.TEXT, n)) == right_header_size(n, False)


@pytest.mark.parametrize(
    ("function", "hint"),
    [
        ("not a function", "expected a function"),
        (lambda n, masked: 2, "126 and 127 are escape codes"),
        (lambda n, masked: 2 if n < 126 else 4, "does not fit in 16 bits"),
        (lambda n, masked: 2 if n <= 126 else 4 if n < 65536 else 10, "header_size(126"),
        (lambda n, masked: right_header_size(n, False), "masking key"),
        (lambda n, masked: right_header_size(n, True), "Only masked frames"),
        (lambda n, masked: str(right_header_size(n, masked)), "int"),
        (lambda n, masked: 1 // 0, "ZeroDivisionError"),
    ],
)
def test_wrong_functions_get_a_hint(function: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_header_size_exercise(function)  # type: ignore[arg-type]
    assert hint in str(caught.value)


# -- the permessage-deflate exercise ---------------------------------------------------------------


def right_compress(text: str) -> bytes:
    compressor = zlib.compressobj(wbits=-15)  # raw DEFLATE
    data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]  # without the 00 00 ff ff tail


def with_tail(text: str) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)


def never_flushed(text: str) -> bytes:
    return zlib.compressobj(wbits=-15).compress(text.encode())


def stored(text: str) -> bytes:
    compressor = zlib.compressobj(0, wbits=-15)  # level 0: stored blocks, nothing compressed
    return (compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def latin1(text: str) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(text.encode("latin-1")) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


def kept_context() -> Callable[[str], bytes]:
    shared = zlib.compressobj(wbits=-15)  # one compressor for every message: context takeover

    def compress(text: str) -> bytes:
        return (shared.compress(text.encode()) + shared.flush(zlib.Z_SYNC_FLUSH))[:-4]

    return compress


def test_a_right_compressor_passes(capsys: pytest.CaptureFixture[str]) -> None:
    check_deflate_exercise(right_compress)
    out = capsys.readouterr().out
    assert "Correct" in out and "inflates all 3 RSV1 frames" in out


def finished(text: str) -> bytes:
    # A final block (Z_FINISH) is allowed too: the next message starts afresh (RFC 7692 7.2.3.2).
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(text.encode()) + compressor.flush()


def engines_deflater(text: str) -> bytes:
    return Deflater(15, no_context_takeover=True).compress(text.encode())


@pytest.mark.parametrize("compress", [engines_deflater, finished])
def test_other_valid_compressors_pass(compress: Callable[[str], bytes]) -> None:
    check_deflate_exercise(compress)


def test_every_message_is_read_by_the_engine() -> None:
    params = DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True)
    for text in DEFLATE_EXERCISE_MESSAGES:
        server = Protocol(Role.SERVER, now=0.0, deflate=params)
        server.open(now=0.0)
        frame = encode_frame(Frame(Opcode.TEXT, right_compress(text), rsv1=True), KEY)
        assert server.receive_data(frame, now=0.0) == [TextReceived(text)]


@pytest.mark.parametrize(
    ("compress", "hint"),
    [
        ("not a function", "expected a function"),
        (lambda text: text, "str"),
        (lambda text: 42, "expected bytes"),
        (lambda text: text.encode(), "uncompressed"),
        (lambda text: 1 // 0, "ZeroDivisionError"),
        (lambda text: zlib.compress(text.encode()), "zlib header"),
        (lambda text: gzip.compress(text.encode()), "gzip header"),
        (with_tail, "00 00 ff ff"),
        (never_flushed, "until a flush"),
        (kept_context(), "context"),
        (stored, "nothing was compressed"),
        (latin1, "UTF-8"),
        (lambda text: b"\xff\xff\xff\xff", "not valid raw DEFLATE"),
    ],
)
def test_wrong_compressors_get_a_hint(compress: object, hint: str) -> None:
    with pytest.raises(AssertionError, match=r"^Not yet: ") as caught:
        check_deflate_exercise(compress)  # type: ignore[arg-type]
    assert hint in str(caught.value)
